/**
 * `npm run bench:memory` (node --expose-gc --import tsx benchmarks/memory-scale.ts): what a
 * session costs in memory, beyond its own text.
 *
 * - Memory store: 1,000,000 sessions in one MemoryStore (maxEntries raised to 1e6, the default
 *   10,000 would evict), heapUsed after a forced GC, minus before, per session; then minus the
 *   record text and the key text, which any store has to keep somewhere.
 * - Redis: a typical record (a user object and a counter) written through the plugin on a
 *   redis-server this script starts: `MEMORY USAGE` of its key, and used_memory per session over
 *   10,000 such sessions (dictionary and expiry entries included).
 *
 * Options: --sessions n (memory store, default 1,000,000), --redis-sessions n (default 10,000).
 */
import Fastify, { type FastifyInstance } from 'fastify'
import fastifyCookie from '@fastify/cookie'
import { createClient } from 'redis'
import { randomBytes } from 'node:crypto'
import { parseArgs } from 'node:util'
import quartSession, { MemoryStore } from '../lib/index.js'
import { startRedis } from './backends.js'

const SECRET = 'memory-scale-secret-0123456789-abcdefghij'
const MAX_AGE = 3600
const KEY_PREFIX = 'session:'

const { values } = parseArgs({ options: { sessions: { type: 'string' }, 'redis-sessions': { type: 'string' } } })
const SESSIONS = Number(values.sessions ?? 1_000_000)
const REDIS_SESSIONS = Number(values['redis-sessions'] ?? 10_000)

const gc = (globalThis as { gc?: () => void }).gc
if (gc === undefined) {
  process.stderr.write('run with node --expose-gc (npm run bench:memory does)\n')
  process.exit(1)
}

/** A typical signed-in session: a small user object and a counter, as an app would set them. */
function signIn (app: FastifyInstance): void {
  app.get('/login', async (request) => {
    const n = Number((request.query as { n?: string }).n ?? 0)
    // Fixed width, so that every record has the same length and the template below can vary it.
    const tag = String(n).padStart(7, '0')
    // Untyped: the app's SessionData (declaration merging) is not this script's business.
    const session = request.session as unknown as { set: (key: string, value: unknown) => void }
    session.set('user', { id: 1_000_000 + n, name: `Ada Lovelace ${tag}`, email: `ada.${tag}@example.com`, roles: ['user'] })
    session.set('counter', 1)
    return { ok: true }
  })
}

async function buildApp (options: Record<string, unknown>): Promise<FastifyInstance> {
  const app = Fastify({ logger: false })
  await app.register(fastifyCookie, { hook: false })
  await app.register(quartSession, { secret: SECRET, maxAge: MAX_AGE, ...options })
  signIn(app)
  await app.ready()
  return app
}

function settle (): number {
  // Twice: the first pass can leave finalizable or weakly held objects for the second.
  gc?.()
  gc?.()
  return process.memoryUsage().heapUsed
}

interface Row { what: string, value: string }

async function memoryStore (): Promise<Row[]> {
  const store = new MemoryStore({ maxEntries: SESSIONS })
  const app = await buildApp({ store })
  // One record as the plugin writes it, the template for the rest.
  const reply = await app.inject({ url: '/login?n=0' })
  if (reply.statusCode !== 200) throw new Error(`/login answered ${reply.statusCode}`)
  const template = await recordOf(store, reply.headers['set-cookie'])
  await app.close()

  const marker = '0000000'
  const at = template.indexOf(marker)
  if (at < 0) throw new Error('the record does not hold the user tag')
  const head = template.slice(0, at)
  const tail = template.slice(at + marker.length)
  const fresh = new MemoryStore({ maxEntries: SESSIONS })
  const before = settle()
  let pool = randomBytes(24 * 4096)
  let offset = 0
  let textBytes = 0
  let keyBytes = 0
  for (let i = 0; i < SESSIONS; i++) {
    if (offset === pool.length) { pool = randomBytes(pool.length); offset = 0 }
    // Same shape as the plugin's: prefix + 32 base64url characters from 24 random bytes.
    const key = KEY_PREFIX + pool.toString('base64url', offset, offset + 24)
    offset += 24
    const tag = String(i).padStart(7, '0')
    // Concatenation leaves V8 cons strings; a round trip through bytes gives the flat string a
    // serializer's output becomes once read, so the text is counted once, at its length.
    const text = Buffer.from(head + tag + tail.replaceAll(marker, tag), 'latin1').toString('latin1')
    const flatKey = Buffer.from(key, 'latin1').toString('latin1')
    textBytes += text.length
    keyBytes += flatKey.length
    await fresh.set(flatKey, text, MAX_AGE)
  }
  pool = Buffer.alloc(0)
  const after = settle()
  if (fresh.size !== SESSIONS) throw new Error(`the store holds ${fresh.size} sessions, not ${SESSIONS}`)
  const perSession = (after - before) / SESSIONS
  const text = textBytes / SESSIONS
  const key = keyBytes / SESSIONS
  await fresh.close()
  return [
    { what: 'memory store: sessions', value: SESSIONS.toLocaleString('en-US') },
    { what: 'memory store: heap per session', value: `${perSession.toFixed(0)} B` },
    { what: 'memory store: record text', value: `${text.toFixed(0)} B` },
    { what: 'memory store: key text (session:<id>)', value: `${key.toFixed(0)} B` },
    { what: 'memory store: overhead beyond the record text', value: `${(perSession - text).toFixed(0)} B (target ≤ 1024 B: ${perSession - text <= 1024 ? 'met' : 'MISSED'})` },
    { what: 'memory store: overhead beyond record and key text', value: `${(perSession - text - key).toFixed(0)} B` }
  ]
}

/** The record the plugin wrote for the session the reply's cookie names (signed: `<id>.<signature>`). */
async function recordOf (store: MemoryStore, setCookie: string | string[] | undefined): Promise<string> {
  const header = Array.isArray(setCookie) ? setCookie[0] : setCookie
  const id = /^[^=]+=([A-Za-z0-9_-]{32})\./.exec(header ?? '')?.[1]
  if (id === undefined) throw new Error(`no session cookie in ${String(header)}`)
  const text = await store.get(KEY_PREFIX + id)
  if (text === undefined) throw new Error('the plugin wrote no record')
  return text
}

async function redis (): Promise<Row[]> {
  const server = await startRedis()
  const client = createClient({ url: `redis://127.0.0.1:${server.port}` })
  try {
    await client.connect()
    const app = await buildApp({ type: 'redis', uri: `redis://127.0.0.1:${server.port}` })
    await client.flushAll()
    const info = async (): Promise<number> => Number(/used_memory:(\d+)/.exec(await client.info('memory'))?.[1])
    const before = await info()
    for (let i = 0; i < REDIS_SESSIONS; i++) {
      const reply = await app.inject({ url: `/login?n=${i}` })
      if (reply.statusCode !== 200) throw new Error(`/login answered ${reply.statusCode}`)
    }
    const after = await info()
    await app.close()
    const [key] = (await client.scan('0', { MATCH: `${KEY_PREFIX}*`, COUNT: 100 })).keys
    if (key === undefined) throw new Error('no session key in Redis')
    const usage = Number(await client.sendCommand(['MEMORY', 'USAGE', key, 'SAMPLES', '0']))
    const length = await client.strLen(key)
    const keys = await client.dbSize()
    return [
      { what: 'redis: record text (STRLEN)', value: `${length} B` },
      { what: 'redis: MEMORY USAGE of one session key', value: `${usage} B` },
      { what: `redis: used_memory per session (${keys.toLocaleString('en-US')} sessions)`, value: `${((after - before) / REDIS_SESSIONS).toFixed(0)} B` }
    ]
  } finally {
    if (client.isOpen) await client.close()
    await server.stop()
  }
}

function print (rows: Row[]): void {
  const width = Math.max(...rows.map((r) => r.what.length))
  process.stdout.write(`| ${'measure'.padEnd(width)} | value |\n| ${'-'.repeat(width)} | --- |\n`)
  for (const row of rows) process.stdout.write(`| ${row.what.padEnd(width)} | ${row.value} |\n`)
}

process.stderr.write(`Node ${process.version}; ${SESSIONS.toLocaleString('en-US')} memory-store sessions, ${REDIS_SESSIONS.toLocaleString('en-US')} Redis sessions\n`)
print([...await memoryStore(), ...await redis()])
