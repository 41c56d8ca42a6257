// @fastify/websocket 11 over real HTTP: the upgrade request goes through the plugin's onRequest
// hook, so the socket handler reads `request.session` of the user who signed in over HTTP. The
// reply is hijacked (no onSend), so a change made in the socket handler is stored only by an
// explicit `await request.session.save()`, and only a session the browser already has a cookie for
// is worth changing there: no cookie can be sent on an upgraded connection.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import type { AddressInfo } from 'node:net'
import Fastify, { type FastifyInstance } from 'fastify'
import cookie from '@fastify/cookie'
import formbody from '@fastify/formbody'
import websocket from '@fastify/websocket'
import WebSocket from 'ws'
import './helpers/session-data.js'
import quartSession from '../lib/index.js'
import { MemoryStore } from '../lib/stores/memory.js'
import { SECRET } from './helpers/app.js'
import { send } from './helpers/http.js'

/** Open a socket with `cookie`, send `message` (if any), and resolve with the first message back. */
async function exchange (url: string, cookieHeader: string | undefined, message?: string): Promise<unknown> {
  const socket = new WebSocket(url, { headers: cookieHeader === undefined ? {} : { cookie: cookieHeader } })
  try {
    return await new Promise((resolve, reject) => {
      const timer = setTimeout(() => { reject(new Error('no message within 5 s')) }, 5000)
      socket.once('error', (err) => { clearTimeout(timer); reject(err) })
      socket.once('message', (data) => { clearTimeout(timer); resolve(JSON.parse(String(data))) })
      if (message !== undefined) socket.once('open', () => { socket.send(message) })
    })
  } finally {
    socket.close()
  }
}

describe('@fastify/websocket: the session of the upgrade request in the socket handler', () => {
  let app: FastifyInstance
  let base: string
  let ws: string

  before(async () => {
    app = Fastify()
    await app.register(cookie)
    await app.register(formbody)
    await app.register(quartSession, { store: new MemoryStore(), secret: SECRET })
    await app.register(websocket)
    app.post('/login', async (request) => {
      await request.session.regenerate()
      request.session.set('user', { id: '42', name: (request.body as { name: string }).name })
      return 'signed in'
    })
    app.get('/counter', async (request) => ({ counter: request.session.get('counter') ?? 0 }))
    // Sends who is signed in as soon as the socket opens.
    app.get('/ws/whoami', { websocket: true }, (socket, request) => {
      socket.send(JSON.stringify({ user: request.session.get('user') ?? null, isNew: request.session.isNew }))
    })
    // Changes the session on a message, stored with an explicit save (no onSend on a hijacked reply).
    app.get('/ws/count', { websocket: true }, (socket, request) => {
      socket.on('message', async () => {
        request.session.set('counter', (request.session.get('counter') ?? 0) + 1)
        await request.session.save()
        socket.send(JSON.stringify({ counter: request.session.get('counter') }))
      })
    })
    await app.listen({ port: 0, host: '127.0.0.1' })
    const { port } = app.server.address() as AddressInfo
    base = `http://127.0.0.1:${port}`
    ws = `ws://127.0.0.1:${port}`
  })

  after(async () => { await app.close() })

  it('a login over HTTP, then a websocket sees the user', async () => {
    const login = await send(base, '/login', { method: 'POST', form: { name: 'Ada' } })
    assert.equal(login.status, 200)
    assert.ok(login.cookie, 'the login sent a session cookie')
    assert.deepEqual(await exchange(`${ws}/ws/whoami`, login.cookie.pair), { user: { id: '42', name: 'Ada' }, isNew: false })
  })

  it('without a cookie, or with a forged one, the socket sees no user', async () => {
    assert.deepEqual(await exchange(`${ws}/ws/whoami`, undefined), { user: null, isNew: true })
    const forged = `session=${'A'.repeat(32)}.c2lnbmF0dXJl`
    assert.deepEqual(await exchange(`${ws}/ws/whoami`, forged), { user: null, isNew: true })
  })

  it('a change saved in the socket handler is what the next HTTP request reads', async () => {
    const login = await send(base, '/login', { method: 'POST', form: { name: 'Grace' } })
    assert.ok(login.cookie)
    assert.deepEqual(await exchange(`${ws}/ws/count`, login.cookie.pair, 'visit'), { counter: 1 })
    assert.deepEqual(await exchange(`${ws}/ws/count`, login.cookie.pair, 'visit'), { counter: 2 })
    const read = await send(base, '/counter', { cookie: login.cookie.pair })
    assert.equal(read.body, JSON.stringify({ counter: 2 }))
    // The user set at login is still there next to it.
    assert.deepEqual(await exchange(`${ws}/ws/whoami`, login.cookie.pair), { user: { id: '42', name: 'Grace' }, isNew: false })
  })
})
