// Issue 9: records of the wrong shape, written straight into the backend by another program.
// Each one is a fresh session plus a warning: never a 5xx, never a 503 on every later request.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { stringify } from 'devalue'
import Fastify, { type FastifyInstance, type LightMyRequestResponse } from 'fastify'
import cookie from '@fastify/cookie'
import './helpers/session-data.js'
import quartSession, { type QuartSessionOptions } from '../lib/index.js'
import { MemoryStore } from '../lib/stores/memory.js'
import { generateId } from '../lib/id.js'
import { cookieOf } from './helpers/app.js'
import { startRedis, redisCli, type RedisServer } from './helpers/redis-server.js'
import { sessionKey } from './helpers/keys.js'

// What other programs leave under a session key: devalue text that is not a record of ours, or no devalue at all.
const WRONG_RECORDS: Record<string, string> = {
  'data that is a Map': stringify({ data: new Map([['foo', 'planted']]) }),
  'data that is a Date': stringify({ data: new Date(0) }),
  'data that is an array': stringify({ data: ['foo', 'planted'] }),
  'data that is null': stringify({ data: null }),
  'data that is a string': stringify({ data: 'foo=planted' }),
  'a bare number': stringify(42),
  'a record without data': stringify({ foo: 'planted' }),
  'a created time that is not a number': stringify({ data: { foo: 'planted' }, created: 'yesterday' }),
  'cookie settings a browser refuses': stringify({ data: { foo: 'planted' }, cookie: { sameSite: 'none', secure: false } }),
  'undecodable text': 'this is not devalue {[',
  'plain JSON of a record': JSON.stringify({ data: { foo: 'planted' } }),
  'an empty string': ''
}

interface Backend {
  name: string
  options: (extra: QuartSessionOptions) => QuartSessionOptions
  /** Write `text` under `key` as another program would, bypassing the plugin. */
  write: (key: string, text: string) => Promise<void>
  read: (key: string) => Promise<string | undefined>
}

interface Logged { app: FastifyInstance, warnings: () => string[], clear: () => void }

async function appWith (options: QuartSessionOptions): Promise<Logged> {
  const lines: string[] = []
  const app = Fastify({ logger: { level: 'warn', stream: { write: (line: string) => { lines.push(line) } } } })
  await app.register(cookie)
  await app.register(quartSession, options)
  app.get('/read', async (request) => request.session.get('foo') ?? 'none')
  app.get('/set', async (request) => { request.session.set('foo', 'bar'); return 'ok' })
  app.get('/big', async (request) => { request.session.set('foo', 'x'.repeat(10_000)); return 'ok' })
  await app.ready()
  return {
    app,
    warnings: () => lines.map((line) => JSON.parse(line) as { level: number, msg: string }).filter((l) => l.level === 40).map((l) => l.msg),
    clear: () => { lines.length = 0 }
  }
}

function assertOk (response: LightMyRequestResponse, body: string, what: string): void {
  assert.equal(response.statusCode, 200, `${what}: ${response.body}`)
  assert.equal(response.body, body, what)
}

/**
 * The request with the cookie of a wrong record gets a fresh session (and a warning), again on a
 * second request; a write gives a new id, and the record under the old id is left as it was or gone.
 */
async function assertFreshSession (logged: Logged, backend: Backend, text: string, what: string): Promise<void> {
  const id = generateId()
  const key = sessionKey(id)
  await backend.write(key, text)
  const headers = { cookie: `session=${id}` }
  const { app } = logged
  logged.clear()

  assertOk(await app.inject({ url: '/read', headers }), 'none', `${what}: read`)
  assert.ok(logged.warnings().some((msg) => /fresh session/.test(msg)), `${what}: a warning is logged (${logged.warnings().join('; ')})`)
  assertOk(await app.inject({ url: '/read', headers }), 'none', `${what}: a second request with the same cookie`)

  const write = await app.inject({ url: '/set', headers })
  assertOk(write, 'ok', `${what}: write`)
  const set = cookieOf(write)
  assert.ok(set, `${what}: the fresh session is stored`)
  assert.notEqual(set.value, id, `${what}: never the id of a record that is not ours`)
  assertOk(await app.inject({ url: '/read', headers: { cookie: set.pair } }), 'bar', `${what}: the fresh session reads back`)

  const left = await backend.read(key)
  assert.ok(left === undefined || left === text, `${what}: the old record is untouched or gone`)
}

function suite (backend: () => Backend, extra: () => Array<[string, (key: string) => Promise<void>]> = () => []): void {
  it('records of the wrong shape: a fresh session and a warning, never a 5xx', async () => {
    const b = backend()
    const logged = await appWith(b.options({}))
    try {
      for (const [what, text] of Object.entries(WRONG_RECORDS)) await assertFreshSession(logged, b, text, what)
      for (const [what, plant] of extra()) {
        const id = generateId()
        await plant(sessionKey(id))
        const headers = { cookie: `session=${id}` }
        logged.clear()
        for (const attempt of ['first', 'second']) {
          assertOk(await logged.app.inject({ url: '/read', headers }), 'none', `${what}: ${attempt} request`)
        }
        assert.ok(logged.warnings().some((msg) => /fresh session|not a session record/.test(msg)), `${what}: a warning is logged`)
        const write = await logged.app.inject({ url: '/set', headers })
        assertOk(write, 'ok', `${what}: write`)
        assert.notEqual(cookieOf(write)?.value, id)
      }
    } finally {
      await logged.app.close()
    }
  })

  it('a stored record larger than maxRecordBytes is treated as not ours', async () => {
    const b = backend()
    const logged = await appWith(b.options({ maxRecordBytes: 4096 }))
    try {
      const record = stringify({ data: { foo: 'x'.repeat(10_000) }, created: 1, touched: 1 })
      assert.ok(record.length > 10_000)
      await assertFreshSession(logged, b, record, 'a 10 kB record')
    } finally {
      await logged.app.close()
    }
  })

  it('writing a record larger than maxRecordBytes fails with FST_QUART_SESSION_VALUE_TOO_LARGE and sends no cookie', async () => {
    const b = backend()
    const { app } = await appWith(b.options({ maxRecordBytes: 4096 }))
    try {
      const fresh = await app.inject('/big')
      assert.equal(fresh.statusCode, 500)
      assert.equal(fresh.json().code, 'FST_QUART_SESSION_VALUE_TOO_LARGE')
      assert.equal(fresh.headers['set-cookie'], undefined)

      const stored = cookieOf(await app.inject('/set'))
      assert.ok(stored)
      const before = await b.read(sessionKey(stored.value))
      const grown = await app.inject({ url: '/big', headers: { cookie: stored.pair } })
      assert.equal(grown.statusCode, 500)
      assert.equal(grown.json().code, 'FST_QUART_SESSION_VALUE_TOO_LARGE')
      assert.equal(grown.headers['set-cookie'], undefined)
      assert.equal(await b.read(sessionKey(stored.value)), before, 'the stored record is unchanged')
      assertOk(await app.inject({ url: '/read', headers: { cookie: stored.pair } }), 'bar', 'the session still works')
    } finally {
      await app.close()
    }
  })
}

describe('wrong records in the memory store', () => {
  suite(() => {
    const store = new MemoryStore()
    return {
      name: 'memory',
      options: (extra) => ({ store, ...extra }),
      write: async (key, text) => { await store.set(key, text, 0) },
      read: async (key) => await store.get(key)
    }
  })
})

describe('wrong records in Redis', { timeout: 60_000 }, () => {
  let server: RedisServer
  before(async () => { server = await startRedis() })
  after(async () => { await server?.stop() })

  const redis = (): Backend => ({
    name: 'redis',
    options: (extra) => ({ type: 'redis', uri: server.url, ...extra }),
    write: async (key, text) => { await redisCli(server.port, 'set', key, text) },
    read: async (key) => {
      if (await redisCli(server.port, 'exists', key) === '0') return undefined
      // redis-cli trims its output; the values written here have no surrounding blanks.
      return await redisCli(server.port, 'type', key) === 'string' ? await redisCli(server.port, 'get', key) : `(${key} is not a string)`
    }
  })

  suite(redis, () => [
    ['a Redis HASH under the session key', async (key) => { await redisCli(server.port, 'hset', key, 'a', 'b') }],
    ['a Redis LIST under the session key', async (key) => { await redisCli(server.port, 'rpush', key, 'a', 'b') }],
    ['a Redis SET under the session key', async (key) => { await redisCli(server.port, 'sadd', key, 'a') }]
  ])
})
