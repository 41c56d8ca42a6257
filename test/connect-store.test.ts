// connectStore: express-session/connect stores as backends. The shared contract against
// connect-redis 9 on a real redis-server, connect-pg-simple on a real PostgreSQL and
// express-session's MemoryStore; what the wrapper hands those stores; its error and timeout
// paths; and the plugin end to end on PostgreSQL, Redis, session-file-store (which reports a
// missing session as ENOENT) and @fastify/session's MemoryStore (which has no TTLs).
import * as runner from 'node:test'
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { createRequire } from 'node:module'
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import Fastify, { type FastifyInstance } from 'fastify'
import cookie from '@fastify/cookie'
import session from 'express-session'
import connectPgSimple from 'connect-pg-simple'
import { RedisStore } from 'connect-redis'
import { createClient } from 'redis'
import pg from 'pg'
import './helpers/session-data.js'
import { storeContract } from './contract.js'
import quartSession, { type QuartSessionOptions, type SessionStore } from '../lib/index.js'
import { MemoryStore } from '../lib/stores/memory.js'
import { connectStore, CONNECT_NO_EXPIRY_SECONDS, type ConnectStoreLike } from '../lib/connect.js'
import { sessionOf, SECRET } from './helpers/app.js'
import { freePort } from './helpers/ports.js'
import { startRedis, type RedisServer } from './helpers/redis-server.js'
import { startPostgres, type PostgresServer } from './helpers/postgres.js'
import { sessionKey } from './helpers/keys.js'

const PgStore = connectPgSimple(session)
// Both are CommonJS and loaded as their users load them. @fastify/session through require() also
// keeps its type augmentation of FastifyRequest out of this program.
const require = createRequire(import.meta.url)
type StoreClass = new (options?: object) => ConnectStoreLike
const FileStore = require('session-file-store')(session) as StoreClass
const FastifySessionMemoryStore = (require('@fastify/session') as { MemoryStore: new () => ConnectStoreLike & { store: Map<string, unknown> } }).MemoryStore
const TEN_YEARS = 10 * 365 * 24 * 60 * 60
const key = (name: string): string => `session:${randomUUID()}:${name}`

// Both servers start in parallel: about a second for PostgreSQL (initdb included).
const [redisServer, pgServer]: [RedisServer, PostgresServer] = await Promise.all([startRedis(), startPostgres()])
after(async () => { await Promise.all([redisServer.stop(), pgServer.stop()]) })

/** A pg pool and a connect-pg-simple store on it, the session table created on first use. */
function pgStore (): { pool: pg.Pool, store: InstanceType<typeof PgStore> } {
  const pool = new pg.Pool({ connectionString: pgServer.url, max: 5 })
  // The prune timer is the store's own background work; tests need none of it.
  const store = new PgStore({ pool, createTableIfMissing: true, pruneSessionInterval: false })
  return { pool, store }
}

function newRedisClient () {
  return createClient({ url: redisServer.url })
}
type Redis = ReturnType<typeof newRedisClient>

async function redisClient (): Promise<Redis> {
  const client = newRedisClient()
  client.on('error', () => {})
  await client.connect()
  return client
}

describe('connectStore contract', () => {
  // A fresh store per test, on one client and one pool: they are the test's, never the store's.
  let redis: Redis
  let postgres: ReturnType<typeof pgStore>
  before(async () => {
    redis = await redisClient()
    postgres = pgStore()
  })
  after(async () => {
    await redis.close()
    await postgres.pool.end()
  })

  storeContract({
    name: 'connect-redis 9 on redis-server',
    runner,
    async create () {
      const store = connectStore(new RedisStore({ client: redis }))
      await store.ready!()
      return store
    }
  })

  storeContract({
    name: 'connect-pg-simple on PostgreSQL',
    runner,
    async create () {
      const store = connectStore(new PgStore({ pool: postgres.pool, createTableIfMissing: true, pruneSessionInterval: false }))
      await store.ready!()
      return store
    }
  })

  storeContract({
    name: 'express-session MemoryStore',
    runner,
    create: () => connectStore(new session.MemoryStore())
  })
})

describe('connectStore with connect-pg-simple: the rows in PostgreSQL', () => {
  let pool: pg.Pool
  let store: SessionStore
  const row = async (sid: string): Promise<{ sess: { v: string, cookie: { expires: string } }, expire: number } | undefined> => {
    const { rows } = await pool.query('SELECT sess, extract(epoch from expire) AS expire FROM session WHERE sid = $1', [sid])
    return rows[0] === undefined ? undefined : { sess: rows[0].sess, expire: Number(rows[0].expire) }
  }

  before(async () => {
    const made = pgStore()
    pool = made.pool
    store = connectStore(made.store)
    await store.ready!()
  })
  after(async () => { await pool.end() })

  it('stores our text under v, in a row keyed by our key, expiring after the TTL', async () => {
    const k = key('row')
    await store.set(k, 'text', 3600)
    const found = await row(k)
    assert.ok(found !== undefined, 'the row is there')
    assert.equal(found.sess.v, 'text')
    const left = found.expire - Date.now() / 1000
    assert.ok(left > 3590 && left <= 3601, `expires in ${left} s`)
    // connect-pg-simple reads the expiry from cookie.expires, rounded up to the second.
    assert.equal(Math.ceil(Date.parse(found.sess.cookie.expires) / 1000), found.expire)
  })

  it('TTL 0 expires in ten years', async () => {
    const k = key('forever')
    await store.set(k, 'kept', 0)
    const left = (await row(k))!.expire - Date.now() / 1000
    assert.ok(left > TEN_YEARS - 60 && left <= TEN_YEARS + 1, `expires in ${left} s`)
    assert.equal(CONNECT_NO_EXPIRY_SECONDS, TEN_YEARS)
  })

  it('delete removes the row', async () => {
    const k = key('delete')
    await store.set(k, 'value', 60)
    await store.delete(k)
    assert.equal(await row(k), undefined)
  })

  it('a row express-session wrote under the same key reads as absent, not as an error', async () => {
    const k = key('foreign')
    await pool.query("INSERT INTO session (sid, sess, expire) VALUES ($1, $2, now() + interval '1 hour')",
      [k, JSON.stringify({ cookie: { originalMaxAge: null }, passport: { user: 1 } })])
    assert.equal(await store.get(k), undefined)
  })
})

describe('connectStore with connect-redis: the keys in Redis', () => {
  let redis: Redis
  let store: SessionStore

  before(async () => {
    redis = await redisClient()
    store = connectStore(new RedisStore({ client: redis, prefix: 'sess:' }))
  })
  after(async () => { await redis.close() })

  it('stores JSON with our text under v at the store\'s prefix + our key, with the TTL', async () => {
    const k = key('redis')
    await store.set(k, 'text', 3600)
    const stored = JSON.parse((await redis.get(`sess:${k}`))!)
    assert.equal(stored.v, 'text')
    const ttl = await redis.ttl(`sess:${k}`)
    assert.ok(ttl >= 3599 && ttl <= 3600, `TTL ${ttl}`)
  })

  it('TTL 0 is a ten-year expiry', async () => {
    const k = key('redis-forever')
    await store.set(k, 'kept', 0)
    const ttl = await redis.ttl(`sess:${k}`)
    assert.ok(ttl >= TEN_YEARS - 60 && ttl <= TEN_YEARS, `TTL ${ttl}`)
  })
})

/** A store whose every method does what `behave` says: the odd stores users meet. */
function oddStore (behave: (callback: (err?: unknown, value?: unknown) => void) => unknown): ConnectStoreLike {
  return {
    get: (_sid, callback) => behave(callback),
    set: (_sid, _session, callback) => behave(callback!),
    destroy: (_sid, callback) => behave(callback!)
  }
}

describe('connectStore error paths', () => {
  it('a store that never calls back fails with FST_QUART_SESSION_TIMEOUT instead of hanging', async () => {
    const store = connectStore(oddStore(() => undefined), { timeout: 0.2 })
    await assert.rejects(store.get('session:x'), (error: Error & { code: string }) => {
      assert.equal(error.code, 'FST_QUART_SESSION_TIMEOUT')
      assert.match(error.message, /connect store get within 0\.2 s/)
      return true
    })
    await assert.rejects(store.set('session:x', 'v', 60), { code: 'FST_QUART_SESSION_TIMEOUT' })
    await assert.rejects(store.delete('session:x'), { code: 'FST_QUART_SESSION_TIMEOUT' })
  })

  it('a store that calls back synchronously works', async () => {
    const map = new Map<string, object>()
    const store = connectStore({
      get (sid, callback) { callback(null, map.get(sid) ?? null) },
      set (sid, value, callback) { map.set(sid, value); callback?.() },
      destroy (sid, callback) { map.delete(sid); callback?.() }
    })
    await store.set('session:sync', 'value', 60)
    assert.equal(await store.get('session:sync'), 'value')
    await store.delete('session:sync')
    assert.equal(await store.get('session:sync'), undefined)
    assert.equal(store.compareAndSet, undefined, 'no compare-and-set: the last write wins')
  })

  it('an error from the callback, a throw and a rejected promise fail with FST_QUART_SESSION_BACKEND, the cause kept', async () => {
    const failure = new Error('connection reset (test)')
    for (const behave of [
      (callback: (err?: unknown) => void) => callback(failure),
      () => { throw failure },
      async () => { throw failure }
    ]) {
      const store = connectStore(oddStore(behave))
      await assert.rejects(store.get('session:x'), (error: Error & { code: string }) => {
        assert.equal(error.code, 'FST_QUART_SESSION_BACKEND')
        assert.match(error.message, /connect store get/)
        assert.doesNotMatch(error.message, /connection reset/, 'clients never see backend details')
        assert.equal(error.cause, failure)
        return true
      })
    }
  })

  it('a second callback is ignored', async () => {
    const store = connectStore(oddStore((callback) => {
      callback(null, { v: 'first' })
      callback(new Error('late (test)'))
    }))
    assert.equal(await store.get('session:x'), 'first')
  })

  it('ENOENT from get is a miss and from destroy is done (session-file-store\'s "no such session")', async () => {
    const enoent = (): Error => Object.assign(new Error('ENOENT: no such file or directory, open \'sessions/x.json\''), { code: 'ENOENT' })
    const store = connectStore(oddStore((callback) => { callback(enoent()) }))
    assert.equal(await store.get('session:missing'), undefined)
    await store.delete('session:missing')
    await store.ready!()
  })

  it('ENOENT from set, and any other code from get, is still a failure', async () => {
    const failing = (code: string) => (callback: (err?: unknown) => void): void => { callback(Object.assign(new Error(`${code} (test)`), { code })) }
    await assert.rejects(connectStore(oddStore(failing('ENOENT'))).set('session:x', 'v', 60), { code: 'FST_QUART_SESSION_BACKEND' })
    for (const code of ['EACCES', 'EMFILE', 'ENOTDIR']) {
      const store = connectStore(oddStore(failing(code)))
      await assert.rejects(store.get('session:x'), { code: 'FST_QUART_SESSION_BACKEND' })
      await assert.rejects(store.delete('session:x'), { code: 'FST_QUART_SESSION_BACKEND' })
      await assert.rejects(store.ready!(), { code: 'FST_QUART_SESSION_CONNECT', message: new RegExp(code) })
    }
  })

  it('refuses what is not an express-session store', () => {
    assert.throws(() => connectStore({ get () {}, set () {} } as unknown as ConnectStoreLike),
      { code: 'FST_QUART_SESSION_INVALID_ARGUMENT', message: /destroy\(\) is missing/ })
    // The timeout is checked as every adapter's duration option is.
    assert.throws(() => connectStore(oddStore(() => {}), { timeout: 0 }), { code: 'FST_QUART_SESSION_INVALID_OPTION', message: /"timeout"/ })
    assert.throws(() => connectStore(oddStore(() => {}), { timeout: '2' as unknown as number }), { code: 'FST_QUART_SESSION_INVALID_OPTION' })
  })

  it('PostgreSQL that is not there: ready() fails with FST_QUART_SESSION_CONNECT, get with FST_QUART_SESSION_BACKEND', async () => {
    const pool = new pg.Pool({ host: '127.0.0.1', port: await freePort(), user: 'postgres', connectionTimeoutMillis: 1000 })
    try {
      const store = connectStore(new PgStore({ pool, pruneSessionInterval: false }))
      await assert.rejects(store.ready!(), (error: Error & { code: string }) => {
        assert.equal(error.code, 'FST_QUART_SESSION_CONNECT')
        assert.match(error.message, /ECONNREFUSED/)
        return true
      })
      await assert.rejects(store.get('session:x'), { code: 'FST_QUART_SESSION_BACKEND' })
    } finally {
      await pool.end()
    }
  })
})

describe('plugin with connectStore', () => {
  async function appWith (store: SessionStore): Promise<FastifyInstance> {
    const app = Fastify()
    await app.register(cookie)
    await app.register(quartSession, { store })
    app.get('/set', async (request) => {
      request.session.set('foo', 'bar')
      return 'set'
    })
    app.get('/read', async (request) => request.session.get('foo') ?? 'none')
    await app.ready()
    return app
  }

  it('keeps a session in PostgreSQL through connect-pg-simple', async () => {
    const { pool, store } = pgStore()
    const app = await appWith(connectStore(store))
    try {
      const first = await app.inject('/set')
      assert.equal(first.statusCode, 200)
      const { cookie, id } = sessionOf(first)
      const second = await app.inject({ url: '/read', headers: { cookie } })
      assert.equal(second.body, 'bar')
      const { rows } = await pool.query('SELECT sess FROM session WHERE sid = $1', [sessionKey(id)])
      assert.equal(rows.length, 1, 'the row is in PostgreSQL')
      assert.equal(typeof rows[0].sess.v, 'string')
      assert.match(rows[0].sess.v, /bar/)
    } finally {
      await app.close()
      await pool.end()
    }
  })

  it('does not start when PostgreSQL cannot be reached', async () => {
    const pool = new pg.Pool({ host: '127.0.0.1', port: await freePort(), user: 'postgres', connectionTimeoutMillis: 1000 })
    const app = Fastify()
    try {
      await app.register(cookie)
      const store = connectStore(new PgStore({ pool, pruneSessionInterval: false }))
      await assert.rejects(async () => {
        await app.register(quartSession, { store })
        await app.ready()
      }, { code: 'FST_QUART_SESSION_CONNECT' })
    } finally {
      await app.close().catch(() => {})
      await pool.end()
    }
  })

  it('keeps a session in Redis through connect-redis', async () => {
    const redis = await redisClient()
    const app = await appWith(connectStore(new RedisStore({ client: redis })))
    try {
      const { cookie, id } = sessionOf(await app.inject('/set'))
      assert.equal((await app.inject({ url: '/read', headers: { cookie } })).body, 'bar')
      const stored = await redis.get('sess:' + sessionKey(id))
      assert.ok(stored !== null, 'the key is in Redis')
      assert.match(JSON.parse(stored).v, /bar/)
    } finally {
      await app.close()
      await redis.close()
    }
  })
})

/** The store key of a signed cookie's session: the id is what comes before the signature. */
const keyOfSigned = (value: string): string => sessionKey(value.slice(0, value.indexOf('.')))

/** The routes of a login flow, as an app on @fastify/session writes them. */
async function loginApp (options: QuartSessionOptions): Promise<FastifyInstance> {
  const app = Fastify()
  await app.register(cookie)
  await app.register(quartSession, { secret: SECRET, ...options })
  app.post('/login', async (request) => {
    request.session.set('user', { id: '42', name: 'Ada' })
    return 'welcome'
  })
  app.get('/whoami', async (request) => request.session.get('user')?.name ?? 'nobody')
  app.post('/logout', async (request) => {
    await request.session.destroy()
    return 'bye'
  })
  app.get('/set', async (request) => {
    request.session.set('foo', 'bar')
    return 'set'
  })
  app.get('/read', async (request) => request.session.get('foo') ?? 'none')
  await app.ready()
  return app
}

describe('plugin with session-file-store (a missing session is an ENOENT error)', () => {
  let directory: string
  before(async () => { directory = await mkdtemp(join(tmpdir(), 'quart-session-file-store-')) })
  after(async () => { await rm(directory, { recursive: true, force: true }) })

  // The store's defaults (five retries of a missing file, then ENOENT), bar its log and reap timer.
  const fileStore = (): ConnectStoreLike => new FileStore({ path: directory, logFn: () => {}, reapInterval: -1 })
  const files = async (): Promise<string[]> => (await readdir(directory)).filter((name) => name.endsWith('.json'))

  it('starts: ready() passes although the boot probe finds no file', async () => {
    const app = await loginApp({ store: connectStore(fileStore()) })
    await app.close()
  })

  it('logs in, reads back, logs out; the old cookie then gets a fresh session', async () => {
    const app = await loginApp({ store: connectStore(fileStore()) })
    try {
      const login = await app.inject({ method: 'POST', url: '/login' })
      assert.equal(login.statusCode, 200)
      const { cookie, id } = sessionOf(login)
      assert.ok((await files()).includes(`${keyOfSigned(id)}.json`), 'the session is a file named by its store key')

      const whoami = await app.inject({ url: '/whoami', headers: { cookie } })
      assert.equal(whoami.statusCode, 200)
      assert.equal(whoami.body, 'Ada')

      const logout = await app.inject({ method: 'POST', url: '/logout', headers: { cookie } })
      assert.equal(logout.statusCode, 200)
      assert.ok(!(await files()).includes(`${keyOfSigned(id)}.json`), 'logout removed the file')

      const after = await app.inject({ url: '/whoami', headers: { cookie } })
      assert.equal(after.statusCode, 200, 'a cookie whose file is gone is no 503')
      assert.equal(after.body, 'nobody')
    } finally {
      await app.close()
    }
  })

  it('a signed cookie the store never saw gets a fresh session that works', async () => {
    // Same secret, another store: its cookie is genuine but unknown to the file store.
    const elsewhere = await loginApp({ store: new MemoryStore() })
    const app = await loginApp({ store: connectStore(fileStore()) })
    try {
      const { cookie: unknown } = sessionOf(await elsewhere.inject({ method: 'POST', url: '/login' }))
      const first = await app.inject({ url: '/whoami', headers: { cookie: unknown } })
      assert.equal(first.statusCode, 200)
      assert.equal(first.body, 'nobody')

      const login = await app.inject({ method: 'POST', url: '/login', headers: { cookie: unknown } })
      assert.equal(login.statusCode, 200)
      const { cookie } = sessionOf(login)
      assert.equal((await app.inject({ url: '/whoami', headers: { cookie } })).body, 'Ada')
    } finally {
      await app.close()
      await elsewhere.close()
    }
  })
})

describe('plugin with @fastify/session\'s MemoryStore (a store without TTLs)', () => {
  it('refuses a session 2 s after its 1 s lifetime, although the store still hands it back', async () => {
    const inner = new FastifySessionMemoryStore()
    const store = connectStore(inner)
    const app = await loginApp({ store, maxAge: 1 })
    try {
      const { cookie, id } = sessionOf(await app.inject('/set'))
      assert.equal((await app.inject({ url: '/read', headers: { cookie } })).body, 'bar')
      await sleep(2000)
      // The store never expires anything: the record is still there to be read.
      assert.ok(inner.store.has(keyOfSigned(id)), 'the store still holds the record')
      assert.notEqual(await store.get(keyOfSigned(id)), undefined, 'and hands it back')
      const late = await app.inject({ url: '/read', headers: { cookie } })
      assert.equal(late.statusCode, 200)
      assert.equal(late.body, 'none', 'the plugin refuses the expired record itself')
    } finally {
      await app.close()
    }
  })
})
