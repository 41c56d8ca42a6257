// connectStore: express-session/connect stores as backends. The shared contract against
// connect-redis 9 on a real redis-server, connect-pg-simple on a real PostgreSQL and
// express-session's MemoryStore; what the wrapper hands those stores; its error and timeout
// paths; and the plugin end to end on PostgreSQL and Redis.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import Fastify, { type FastifyInstance } from 'fastify'
import cookie from '@fastify/cookie'
import session from 'express-session'
import connectPgSimple from 'connect-pg-simple'
import { RedisStore } from 'connect-redis'
import { createClient } from 'redis'
import pg from 'pg'
import './helpers/session-data.js'
import { storeContract } from './contract.js'
import quartSession, { type SessionStore } from '../lib/index.js'
import { connectStore, CONNECT_NO_EXPIRY_SECONDS, type ConnectStoreLike } from '../lib/connect.js'
import { sessionOf } from './helpers/app.js'
import { freePort } from './helpers/ports.js'
import { startRedis, type RedisServer } from './helpers/redis-server.js'
import { startPostgres, type PostgresServer } from './helpers/postgres.js'
import { sessionKey } from './helpers/keys.js'

const PgStore = connectPgSimple(session)
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
  let redis: Redis
  let pool: pg.Pool

  storeContract('connect-redis 9 on redis-server', {
    async create () {
      redis = await redisClient()
      const store = connectStore(new RedisStore({ client: redis }))
      await store.ready!()
      return store
    },
    async destroy () { await redis.close() }
  })

  storeContract('connect-pg-simple on PostgreSQL', {
    async create () {
      const made = pgStore()
      pool = made.pool
      const store = connectStore(made.store)
      await store.ready!()
      return store
    },
    async destroy () { await pool.end() }
  })

  storeContract('express-session MemoryStore', {
    async create () { return connectStore(new session.MemoryStore()) }
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

  it('touch moves the expiry with the store\'s touch, leaving the value alone', async () => {
    const k = key('touch')
    await store.set(k, 'value', 60)
    await store.touch!(k, 7200)
    const found = (await row(k))!
    assert.equal(found.sess.v, 'value')
    const left = found.expire - Date.now() / 1000
    assert.ok(left > 7190 && left <= 7201, `expires in ${left} s`)
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

  it('touch is connect-redis\'s EXPIRE', async () => {
    const k = key('redis-touch')
    await store.set(k, 'text', 60)
    await store.touch!(k, 7200)
    const ttl = await redis.ttl(`sess:${k}`)
    assert.ok(ttl >= 7199 && ttl <= 7200, `TTL ${ttl}`)
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
    assert.equal(store.touch, undefined, 'no touch where the store has none: the core re-sets')
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

  it('refuses what is not an express-session store', () => {
    assert.throws(() => connectStore({ get () {}, set () {} } as unknown as ConnectStoreLike),
      { code: 'FST_QUART_SESSION_INVALID_ARGUMENT', message: /destroy\(\) is missing/ })
    assert.throws(() => connectStore(oddStore(() => {}), { timeout: 0 }), { code: 'FST_QUART_SESSION_INVALID_ARGUMENT' })
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
