/**
 * One benchmark server, run as a child of run.ts so that its CPU time can be measured apart from
 * the load generator's. Which server it builds comes from BENCH_VARIANT; it answers the parent over
 * the IPC channel (ready, cpu, close) so that nothing about the measurement travels over HTTP.
 */
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify'
import fastifyCookie from '@fastify/cookie'
import fastifyStatic from '@fastify/static'
import { createClient } from 'redis'
import { parse, stringify } from 'devalue'
import { fileURLToPath } from 'node:url'
import type { ChildMessage, ParentMessage, RaceDump, VariantName } from './protocol.js'
import { LOGIN_USER, NEW_USER, SECRET, SESSION_TTL_SECONDS, STATIC_PREFIX } from './protocol.js'

const PUBLIC_DIR = fileURLToPath(new URL('./public/', import.meta.url))

// The /race and /hot counters (`c0`, `c1`, …) and /hot-update's shared `hits` sit beside these.
interface SessionData { user?: string, counter?: number, hits?: number, [slot: string]: unknown }
/** The plugin's record shape (see the README's record format), so the floor parses the same text. */
interface SessionRecord { data: SessionData }

/** The part of a session object the routes use; both plugins' sessions have it. */
interface SessionLike {
  get (key: string): unknown
  set (key: string, value: unknown): void
}

/** This plugin's session adds the atomic read-modify-write that /hot-update uses. */
interface QuartSessionLike extends SessionLike {
  update (key: string, fn: (value: unknown) => unknown): Promise<unknown>
}

/** How a variant fills in the four session routes; `bare` fills them with constants. */
interface Handlers {
  login (request: FastifyRequest): Promise<unknown>
  read (request: FastifyRequest): Promise<unknown>
  write (request: FastifyRequest): Promise<unknown>
  create (request: FastifyRequest): Promise<unknown>
  /** /race and /hot: increments the counter of the request's connection in its session. */
  race (request: FastifyRequest): Promise<unknown>
  /** /hot-update: increments the session's one shared counter `hits`. */
  hotUpdate (request: FastifyRequest): Promise<unknown>
  /** /dump: reads the /race, /hot and /hot-update counters back (see RaceDump). */
  dump (request: FastifyRequest): Promise<RaceDump>
}

/** A variant: registers its plugins on `app`, returns its handlers and what to close afterwards. */
type Setup = (app: FastifyInstance) => Promise<{ handlers: Handlers, anonConfig?: Record<string, unknown>, close?: () => Promise<void> }>

function env (name: string): string {
  const value = process.env[name]
  if (value === undefined || value === '') throw new Error(`${name} is not set; start this file through benchmarks/run.ts`)
  return value
}

const redisUrl = (): string => `redis://127.0.0.1:${env('BENCH_REDIS_PORT')}`

// Reached through the request as an untyped property: this plugin and @fastify/session declare
// `request.session` with different types, and one benchmark server file has to drive both.
function sessionOf (request: FastifyRequest): SessionLike {
  return (request as unknown as { session: SessionLike }).session
}

/**
 * /race and /hot bookkeeping. Each keep-alive connection gets a counter key of its own (`c0`, `c1`, …):
 * requests on one connection come one after another, so two requests that overlap in time
 * always write distinct keys, and any increment missing at the end was lost by a save, not by
 * two requests legitimately writing the same key. `served` counts the 2xx responses the server
 * actually sent, which is what the stored counters must add up to.
 */
const race = {
  slots: new WeakMap<object, string>(),
  names: new Set<string>(),
  // Never reset: a connection that outlives a /login keeps a name no newer connection gets.
  next: 0,
  served: 0,
  reset (): void {
    this.names = new Set()
    this.served = 0
  },
  slotOf (request: FastifyRequest): string {
    const socket = request.raw.socket
    let slot = this.slots.get(socket)
    if (slot === undefined) {
      slot = `c${this.next++}`
      this.slots.set(socket, slot)
    }
    // Counted only once per /login, however often the connection comes back.
    this.names.add(slot)
    return slot
  }
}

/**
 * A route-level onSend hook runs after the app-level ones, where both plugins save: a 2xx here is
 * an increment whose save succeeded. Counted here rather than on the client, which misses the
 * replies to requests cut off when the load stops, though their saves happened.
 */
function countServed (_request: FastifyRequest, reply: { statusCode: number }, payload: unknown, done: (err: null, payload: unknown) => void): void {
  if (reply.statusCode >= 200 && reply.statusCode < 300) race.served++
  done(null, payload)
}

const sessionHandlers: Handlers = {
  async login (request) {
    race.reset()
    const session = sessionOf(request)
    session.set('user', LOGIN_USER)
    session.set('counter', 0)
    return { user: LOGIN_USER }
  },
  async read (request) {
    return { user: sessionOf(request).get('user') }
  },
  async write (request) {
    const session = sessionOf(request)
    const counter = (session.get('counter') as number | undefined ?? 0) + 1
    session.set('counter', counter)
    return { counter }
  },
  async create (request) {
    sessionOf(request).set('user', NEW_USER)
    return { user: NEW_USER }
  },
  async race (request) {
    const session = sessionOf(request)
    const slot = race.slotOf(request)
    const count = (session.get(slot) as number | undefined ?? 0) + 1
    session.set(slot, count)
    return { count }
  },
  // A read-modify-write, as an app without an atomic update writes it: @fastify/session loses
  // increments here (this plugin's variants use session.update instead, see quart()).
  async hotUpdate (request) {
    const session = sessionOf(request)
    const hits = (session.get('hits') as number | undefined ?? 0) + 1
    session.set('hits', hits)
    return { hits }
  },
  async dump (request) {
    const session = sessionOf(request)
    return countersOf((key) => session.get(key))
  }
}

/** The /dump answer from a session's values. */
function countersOf (get: (key: string) => unknown): RaceDump {
  let sum = 0
  let keys = 0
  for (const name of race.names) {
    const value = get(name)
    if (typeof value === 'number') { sum += value; keys++ }
  }
  const hits = get('hits')
  return { sum, keys, hits: typeof hits === 'number' ? hits : 0, served: race.served }
}

/** For the variants without sessions, which never run /race or /hot (bare drives /hot only in /read-mixed's warm-up). */
const noRace: Pick<Handlers, 'race' | 'hotUpdate' | 'dump'> = {
  async race () { return { count: 0 } },
  async hotUpdate () { return { hits: 0 } },
  async dump () { return { sum: 0, keys: 0, hits: 0, served: 0 } }
}

// The least work any Redis-backed session can do with node-redis: the same round trips and the
// same serializer, without cookies, ids, signatures or hooks. Every request shares one key, just
// as every benchmark request shares one session cookie in the other variants.
function floor (clientOptions: { commandOptions?: { timeout: number } }): Setup {
  return async () => {
    const client = createClient({ url: redisUrl(), ...clientOptions })
    client.on('error', (err: Error) => { process.stderr.write(`floor-redis client: ${err.message}\n`) })
    await client.connect()
    const key = 'floor:session'
    const expiration = { type: 'EX', value: SESSION_TTL_SECONDS } as const
    let next = 0
    // GET + parse + change + stringify + SET: what /write does, and what /hot and /hot-update do
    // on the one key all connections share (losing the updates another request made in between).
    const readModifyWrite = async (change: (data: SessionData) => unknown): Promise<unknown> => {
      const text = await client.get(key)
      const record: SessionRecord = text === null ? { data: {} } : parse(text)
      const result = change(record.data)
      await client.set(key, stringify(record), { expiration })
      return result
    }
    return {
      handlers: {
        async login () {
          race.reset()
          await client.set(key, stringify({ data: { user: LOGIN_USER, counter: 0 } } satisfies SessionRecord), { expiration })
          return { user: LOGIN_USER }
        },
        async read () {
          const text = await client.get(key)
          const record: SessionRecord = text === null ? { data: {} } : parse(text)
          return { user: record.data.user }
        },
        async write () {
          return await readModifyWrite((data) => {
            const counter = (data.counter ?? 0) + 1
            data.counter = counter
            return { counter }
          })
        },
        async create () {
          // A counter, not a random id: the floor has no id to generate, only a key to fill.
          await client.set(`floor:new:${next++}`, stringify({ data: { user: NEW_USER } } satisfies SessionRecord), { expiration })
          return { user: NEW_USER }
        },
        async race (request) {
          const slot = race.slotOf(request)
          return await readModifyWrite((data) => {
            const count = (data[slot] as number | undefined ?? 0) + 1
            data[slot] = count
            return { count }
          })
        },
        async hotUpdate () {
          return await readModifyWrite((data) => {
            const hits = (data.hits ?? 0) + 1
            data.hits = hits
            return { hits }
          })
        },
        async dump () {
          const text = await client.get(key)
          const record: SessionRecord = text === null ? { data: {} } : parse(text)
          return countersOf((name) => record.data[name])
        }
      },
      close: async () => { await client.close() }
    }
  }
}

const setups: Record<VariantName, Setup> = {
  async bare () {
    return {
      handlers: {
        async login () { return { user: LOGIN_USER } },
        async read () { return { user: LOGIN_USER } },
        async write () { return { counter: 1 } },
        async create () { return { user: NEW_USER } },
        ...noRace
      }
    }
  },

  'floor-redis': floor({}),
  // node-redis 6 gives every command a 5 s timeout by default, through an AbortSignal.timeout()
  // per command, about a third of a /read request's server CPU on Node 20. This floor turns it
  // off, to show what a client configured without it can reach (a plugin can bound the wait
  // with one plain timer instead). Issue 18's targets are against this floor; issue 6's against
  // floor-redis.
  'floor-redis-notimeout': floor({ commandOptions: { timeout: 0 } }),

  'quart-memory': quart('memory'),
  'quart-memory-encrypted': quart('memory', { encryptionKey: 'a-benchmark-encryption-key-long-enough-0123456789' }),
  // Sessions belong to the user /login stores: the per-user index is on.
  'quart-redis-users': quart('redis', { userId: 'user' }),
  'quart-redis': quart('redis'),
  'quart-redis-csc': quart('redis-csc'),
  'quart-memcached': quart('memcached'),
  'quart-filesystem': quart('filesystem'),

  // As @fastify/session's README recommends for production: a real store, no saving of empty
  // sessions, no rolling cookie. Loaded untyped: its type declarations augment `request.session`
  // and `fastify.sessionStore` differently from this plugin's, and the two cannot share a program.
  async 'fastify-session' (app) {
    const fastifySession = await importUntyped('@fastify/session')
    const { RedisStore } = await importUntyped('connect-redis')
    const client = createClient({ url: redisUrl() })
    client.on('error', (err: Error) => { process.stderr.write(`fastify-session client: ${err.message}\n`) })
    await client.connect()
    await app.register(fastifyCookie)
    await app.register(fastifySession.default, {
      secret: SECRET,
      store: new RedisStore({ client, prefix: 'fsess:' }),
      saveUninitialized: false,
      rolling: false,
      cookie: { secure: 'auto', maxAge: SESSION_TTL_SECONDS * 1000 }
    })
    return { handlers: sessionHandlers, close: async () => { await client.close() } }
  }
}

// Signed cookies, as @fastify/session always signs: the comparison then carries the same HMAC work.
function quart (kind: 'memory' | 'redis' | 'redis-csc' | 'memcached' | 'filesystem', extra: { encryptionKey?: string, userId?: string } = {}): Setup {
  return async (app) => {
    // Imported when used, so that the other variants run before the plugin exists or when it is broken.
    const { default: quartSession } = await import(process.env.BENCH_DIST === '1' ? '../dist/lib/index.js' : '../lib/index.js')
    // As the plugin's README recommends when the app reads no other cookie: the plugin reads its
    // own from the header, and @fastify/cookie stops parsing every cookie of every request (a
    // global hook that /anon and /static would otherwise pay for, though the plugin adds none there).
    await app.register(fastifyCookie, { hook: false })
    // Functions: only the chosen backend's place is read from the environment.
    const backends = {
      memory: () => ({ type: 'memory' as const }),
      redis: () => ({ type: 'redis' as const, uri: redisUrl() }),
      // node-redis's RESP3 client-side cache: an unchanged session read from it costs no command.
      'redis-csc': () => ({ type: 'redis' as const, uri: redisUrl(), clientSideCache: true }),
      memcached: () => ({ type: 'memcached' as const, servers: `127.0.0.1:${env('BENCH_MEMCACHED_PORT')}` }),
      // The folder run.ts made for this run (and removes); the store's defaults otherwise.
      filesystem: () => ({ type: 'filesystem' as const, directory: env('BENCH_FS_DIR') })
    } as const
    await app.register(quartSession, { ...backends[kind](), ...extra, secret: SECRET, maxAge: SESSION_TTL_SECONDS })
    const handlers: Handlers = {
      ...sessionHandlers,
      // The atomic form: applied onto the latest stored value, so no increment is lost.
      async hotUpdate (request) {
        const session = sessionOf(request) as QuartSessionLike
        return { hits: await session.update('hits', (v) => (v as number | undefined ?? 0) + 1) }
      }
    }
    return { handlers, anonConfig: { session: false } }
  }
}

async function importUntyped (specifier: string): Promise<any> { // eslint-disable-line @typescript-eslint/no-explicit-any
  return await import(specifier)
}

async function main (): Promise<void> {
  const variant = env('BENCH_VARIANT') as VariantName
  const setup = setups[variant]
  if (setup === undefined) throw new Error(`unknown variant ${variant}`)
  const app = Fastify({ logger: false })
  const { handlers, anonConfig, close } = await setup(app)

  await app.register(fastifyStatic, { root: PUBLIC_DIR, prefix: STATIC_PREFIX })
  app.get('/login', handlers.login)
  app.get('/anon', { config: anonConfig ?? {} }, async () => ({ ok: true }))
  app.get('/read', handlers.read)
  app.get('/write', handlers.write)
  app.get('/new', handlers.create)
  app.get('/race', { onSend: countServed }, handlers.race)
  // One session for every connection (the harness logs in once): the same handler as /race.
  app.get('/hot', { onSend: countServed }, handlers.race)
  app.get('/hot-update', { onSend: countServed }, handlers.hotUpdate)
  app.get('/dump', handlers.dump)
  if (close !== undefined) app.addHook('onClose', close)

  await app.listen({ host: '127.0.0.1', port: 0 })
  const address = app.server.address()
  if (address === null || typeof address !== 'object') throw new Error('no address')

  const send = (message: ChildMessage): void => { process.send?.(message) }
  let closing = false
  const shutdown = async (code: number): Promise<void> => {
    if (closing) return
    closing = true
    // Bounded: a backend client that hangs on close must not keep the child alive.
    const timer = setTimeout(() => process.exit(code), 5000)
    try { await app.close() } finally { clearTimeout(timer) }
    // process.exit, not a signal, so that --cpu-prof gets to write its profile.
    process.exit(code)
  }
  process.on('message', (message: ParentMessage) => {
    if (message.type === 'cpu') {
      const usage = process.cpuUsage()
      send({ type: 'cpu', id: message.id, user: usage.user, system: usage.system })
    } else if (message.type === 'close') {
      void shutdown(0)
    }
  })
  // An orphan would hold its port and backend connections: leave with the parent.
  process.on('disconnect', () => { void shutdown(0) })
  send({ type: 'ready', port: address.port })
}

main().catch((err: unknown) => {
  process.stderr.write(`benchmark server ${process.env.BENCH_VARIANT ?? '?'} failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`)
  process.exit(1)
})
