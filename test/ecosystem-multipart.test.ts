// @fastify/multipart 10 over real HTTP: an upload handler that sets session data gets its session
// cookie back on the response, and the data is in the store, readable on the next request.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import type { AddressInfo } from 'node:net'
import Fastify, { type FastifyInstance } from 'fastify'
import cookie from '@fastify/cookie'
import multipart from '@fastify/multipart'
import './helpers/session-data.js'
import quartSession from '../lib/index.js'
import { CountingStore, SECRET, cookieOf, type ParsedCookie } from './helpers/app.js'
import { sessionKey } from './helpers/keys.js'

interface Upload { status: number, body: string, cookie: ParsedCookie | undefined }

async function upload (url: string, form: FormData, cookieHeader?: string): Promise<Upload> {
  const response = await fetch(url, { method: 'POST', body: form, headers: cookieHeader === undefined ? {} : { cookie: cookieHeader } })
  return {
    status: response.status,
    body: await response.text(),
    cookie: cookieOf({ headers: { 'set-cookie': response.headers.getSetCookie() } })
  }
}

function avatarForm (): FormData {
  const form = new FormData()
  form.append('caption', 'me at the beach')
  form.append('avatar', new Blob([Buffer.alloc(64 * 1024, 7)], { type: 'image/png' }), 'beach.png')
  return form
}

describe('@fastify/multipart: an upload handler that sets session data', () => {
  const store = new CountingStore()
  let app: FastifyInstance
  let base: string

  before(async () => {
    app = Fastify()
    await app.register(cookie)
    await app.register(multipart)
    await app.register(quartSession, { store, secret: SECRET })
    // Streaming API: one file, read to the end before the reply.
    app.post('/avatar', async (request) => {
      const file = await request.file()
      assert.ok(file)
      const bytes = (await file.toBuffer()).length
      request.session.set('values', { filename: file.filename, mimetype: file.mimetype, bytes })
      return { bytes }
    })
    // Every part, fields and files.
    app.post('/album', async (request) => {
      const parts: string[] = []
      for await (const part of request.parts()) {
        if (part.type === 'file') {
          parts.push(`${part.fieldname}:${part.filename}:${(await part.toBuffer()).length}`)
        } else {
          parts.push(`${part.fieldname}=${String(part.value)}`)
        }
      }
      request.session.set('other', parts.join(','))
      return { parts: parts.length }
    })
    app.get('/profile', async (request) => ({ values: request.session.get('values') ?? null, other: request.session.get('other') ?? null }))
    await app.listen({ port: 0, host: '127.0.0.1' })
    base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
  })

  after(async () => { await app.close() })

  it('the response carries the session cookie and the data is stored', async () => {
    const sent = await upload(`${base}/avatar`, avatarForm())
    assert.equal(sent.status, 200, sent.body)
    assert.deepEqual(JSON.parse(sent.body), { bytes: 64 * 1024 })
    assert.ok(sent.cookie, 'the upload response set the session cookie')
    assert.equal(sent.cookie.attributes.httponly, true)
    const [id] = sent.cookie.value.split('.')
    assert.ok(await store.peek(sessionKey(id)), 'the record is in the store under the id of the cookie')

    const profile = await fetch(`${base}/profile`, { headers: { cookie: sent.cookie.pair } })
    assert.deepEqual(await profile.json(), { values: { filename: 'beach.png', mimetype: 'image/png', bytes: 64 * 1024 }, other: null })
  })

  it('an upload into an existing session adds to it and keeps the id', async () => {
    const first = await upload(`${base}/avatar`, avatarForm())
    assert.ok(first.cookie)
    const form = new FormData()
    form.append('title', 'holidays')
    form.append('photo', new Blob(['a'.repeat(1000)]), 'one.jpg')
    form.append('photo', new Blob(['b'.repeat(2000)]), 'two.jpg')
    const second = await upload(`${base}/album`, form, first.cookie.pair)
    assert.equal(second.status, 200, second.body)
    assert.deepEqual(JSON.parse(second.body), { parts: 3 })
    // A changed existing session is saved; its cookie, when re-sent, names the same session.
    if (second.cookie !== undefined) assert.equal(second.cookie.value, first.cookie.value)
    const profile = await fetch(`${base}/profile`, { headers: { cookie: first.cookie.pair } })
    assert.deepEqual(await profile.json(), {
      values: { filename: 'beach.png', mimetype: 'image/png', bytes: 64 * 1024 },
      other: 'title=holidays,photo:one.jpg:1000,photo:two.jpg:2000'
    })
  })
})
