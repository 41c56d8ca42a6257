// Issue 9: fuzzing the request path with fast-check, against the real plugin on the memory store,
// with and without a secret: random Cookie headers, random stored records and random reply
// headers. Whatever comes in: no crash, no unhandled rejection, no 5xx other than the documented
// ones, and never another client's data. Bounded: a few seconds on a busy machine.
// A failure prints fast-check's seed and the shrunk counterexample; replay with { seed, path }.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import fc from 'fast-check'
import { stringify } from 'devalue'
import Fastify, { type FastifyInstance, type LightMyRequestResponse } from 'fastify'
import cookie, { Signer } from '@fastify/cookie'
import './helpers/session-data.js'
import quartSession from '../lib/index.js'
import { MemoryStore } from '../lib/stores/memory.js'
import { SECRET, OLD_SECRET, cookieOf } from './helpers/app.js'
import { CrashWatch, rawGet } from './helpers/fuzz-watch.js'
import { sessionKey } from './helpers/keys.js'

// FUZZ_SCALE=20 for a deeper run by hand; the suite runs the default.
const SCALE = Number(process.env.FUZZ_SCALE ?? 1)
const RUNS = { cookies: 250 * SCALE, records: 250 * SCALE, headers: 200 * SCALE, http: 25 * SCALE }

/** Errors a reply may carry: Node's refusal of a header the handler set (Fastify answers 500), and the plugin's own. */
const HEADER_ERRORS = new Set(['ERR_INVALID_CHAR', 'ERR_INVALID_HTTP_TOKEN', 'ERR_HTTP_INVALID_HEADER_VALUE'])
// Framing headers: a random value there breaks the HTTP exchange itself, which is not what is tested.
const FRAMING = new Set(['content-length', 'transfer-encoding', 'connection', 'keep-alive', 'upgrade', 'trailer', 'te', 'content-encoding', 'content-type'])

interface Client {
  name: string
  /** Unique text only this client's session holds. */
  secret: string
  /** `session=<value>` as the Set-Cookie gave it. */
  pair: string
  value: string
  id: string
}

interface Fixture {
  app: FastifyInstance
  store: MemoryStore
  secret: boolean
  clients: Client[]
  /** Reply headers the /headers route sets, by the x-case request header. */
  cases: Map<string, Array<[string, string]>>
  port: number
}

async function fixture (secret: boolean): Promise<Fixture> {
  const store = new MemoryStore()
  const cases = new Map<string, Array<[string, string]>>()
  const app = Fastify()
  await app.register(cookie)
  await app.register(quartSession, secret ? { store, secret: [SECRET, OLD_SECRET] } : { store })
  app.get('/login', async (request) => {
    request.session.set('other', (request.query as { secret: string }).secret)
    return 'ok'
  })
  app.get('/me', async (request) => {
    const mine = request.session.get('other')
    if ((request.query as { write?: string }).write !== undefined) request.session.set('counter', (request.session.get('counter') ?? 0) + 1)
    return typeof mine === 'string' ? mine : 'none'
  })
  // Walks whatever a loaded record holds, then writes: the merge and save paths on foreign data.
  app.get('/poke', async (request) => {
    const keys = Object.keys(request.session.data())
    for (const key of keys) request.session.get(key as 'values')
    request.session.set('counter', Number((request.query as { mark: string }).mark))
    return String(keys.length)
  })
  app.get('/count', async (request) => String(request.session.get('counter')))
  app.get('/headers', async (request, reply) => {
    request.session.set('counter', 1)
    for (const [name, value] of cases.get(request.headers['x-case'] as string) ?? []) reply.header(name, value)
    return request.session.get('other') ?? 'none'
  })
  const address = await app.listen({ port: 0, host: '127.0.0.1' })
  const port = Number(new URL(address).port)

  const clients: Client[] = []
  for (const name of ['alice', 'bob', 'carol']) {
    const secretText = `S3CR3T-${name}-${randomBytes(8).toString('hex')}`
    const set = cookieOf(await app.inject(`/login?secret=${secretText}`))
    assert.ok(set)
    const value = set.value
    clients.push({ name, secret: secretText, pair: set.pair, value, id: secret ? value.slice(0, value.lastIndexOf('.')) : value })
  }
  return { app, store, secret, clients, cases, port }
}

/** Fails when a reply carries anything of a client other than `self` (its secret, or its id in a cookie). */
function assertOnlyOwn (f: Fixture, self: Client | undefined, response: { body: string, setCookie: string }): void {
  for (const client of f.clients) {
    if (client === self) continue
    assert.ok(!response.body.includes(client.secret), `${client.name}'s data reached another client: ${response.body}`)
    assert.ok(!response.setCookie.includes(client.id), `${client.name}'s session id was handed to another client`)
  }
}

function setCookieText (response: LightMyRequestResponse): string {
  const raw = response.headers['set-cookie']
  return raw === undefined ? '' : ([] as string[]).concat(raw as string | string[]).join('\n')
}

/** A documented status: 2xx/3xx, Fastify's 500 for a refused header, or the plugin's own error codes. */
function assertDocumented (status: number, body: string, allowHeaderErrors: boolean): void {
  if (status < 500) return
  let code: unknown
  try { code = (JSON.parse(body) as { code?: unknown }).code } catch {}
  const ok = (typeof code === 'string' && code.startsWith('FST_QUART_SESSION_')) || (allowHeaderErrors && status === 500 && HEADER_ERRORS.has(code as string))
  assert.ok(ok, `undocumented ${status}: ${body}`)
}

/** Each client still reads its own data: nothing the fuzzing did reached a real session. */
async function assertClientsIntact (f: Fixture): Promise<void> {
  for (const client of f.clients) {
    const response = await f.app.inject({ url: '/me', headers: { cookie: client.pair } })
    assert.equal(response.statusCode, 200)
    assert.equal(response.body, client.secret, `${client.name}'s session is intact`)
  }
}

// ---- arbitraries ----

const ID = fc.stringMatching(/^[A-Za-z0-9_-]{32}$/)
const oddText = (maxLength: number): fc.Arbitrary<string> => fc.oneof(
  fc.string({ unit: 'grapheme-ascii', maxLength }),
  fc.string({ unit: 'binary-ascii', maxLength }),
  fc.string({ unit: 'binary', maxLength }),
  fc.string({ unit: 'grapheme', maxLength })
)
/** A long value without the cost of generating it character by character. */
const longText = fc.tuple(fc.string({ unit: 'binary-ascii', minLength: 1, maxLength: 4 }), fc.integer({ min: 500, max: 6000 })).map(([s, n]) => s.repeat(n))
const cookieValue = fc.oneof(
  { weight: 4, arbitrary: oddText(40) },
  { weight: 1, arbitrary: oddText(40).map((v) => `"${v}"`) },
  { weight: 1, arbitrary: longText },
  { weight: 1, arbitrary: fc.constantFrom('', '"', '""', '%', '%zz', '%E4%B8%AD', '.', '..', '=', 'undefined', 'null', '__proto__') }
)
const cookieName = fc.oneof(
  { weight: 3, arbitrary: fc.string({ unit: 'grapheme-ascii', maxLength: 12 }) },
  { weight: 1, arbitrary: oddText(8) },
  { weight: 2, arbitrary: fc.constantFrom('session', 'Session', 'SESSION', ' session', 'session ', 'sessionid', '__proto__', 'constructor', 'toString') }
)
const separator = fc.constantFrom('; ', ';', ' ; ', ', ', ';;', '; ;', '\t;', ' ')

type Forgery = (f: Fixture, other: Client) => fc.Arbitrary<string>
/** Values that look like another client's cookie without being it: they must never open its session. */
const forgeries: Forgery[] = [
  // Its id with a signature that does not verify (a random one, or one made with a secret we do not hold).
  (f, other) => fc.base64String({ minLength: 4, maxLength: 44 }).map((sig) => `${other.id}.${sig.replace(/=+$/, '')}`),
  (f, other) => fc.constant(new Signer(['a-secret-this-server-never-had-0123456789'], 'sha256').sign(other.id)),
  // Its signed value with one character changed.
  (f, other) => fc.tuple(fc.nat(), fc.constantFrom('A', 'b', '0', '-', '_', '+', '/')).map(([at, c]) => {
    const i = at % other.value.length
    const changed = other.value.slice(0, i) + (other.value[i] === c ? (c === 'A' ? 'B' : 'A') : c) + other.value.slice(i + 1)
    return changed
  }),
  // Its id, cut or grown: a different id, or not an id at all.
  (f, other) => fc.constantFrom(other.id.slice(1), other.id + 'A', other.id.toLowerCase() === other.id ? other.id.toUpperCase() : other.id.toLowerCase()),
  // A well-formed id nobody was given, signed with the current or the old secret, or bare.
  () => fc.tuple(ID, fc.constantFrom('current', 'old', 'bare')).map(([id, how]) => how === 'bare' ? id : new Signer([how === 'current' ? SECRET : OLD_SECRET], 'sha256').sign(id))
]

const verifier = new Signer([SECRET, OLD_SECRET], 'sha256')
/**
 * Whether a cookie value is a real credential of `other` after all: its exact id without a secret,
 * or a value whose signature verifies (a changed last base64 character may only touch padding bits).
 * Holding it is holding the cookie, so it is no forgery.
 */
function opens (f: Fixture, value: string, other: Client): boolean {
  if (!f.secret) return value === other.id
  const result = verifier.unsign(value)
  return result.valid && result.value === other.id
}

/**
 * A Cookie header as a fuzzed client sends it, acting as `self` (whose valid cookie may appear,
 * once or more) or as nobody, mixed with junk cookies, junk and forged session cookies.
 */
function cookieHeader (f: Fixture): fc.Arbitrary<{ self: Client | undefined, header: string }> {
  const others = (self: Client | undefined): Client[] => f.clients.filter((c) => c !== self)
  return fc.option(fc.constantFrom(...f.clients), { freq: 3 }).chain((maybeSelf) => {
    const self = maybeSelf ?? undefined
    const forged = fc.constantFrom(...others(self)).chain((other) => fc.oneof(...forgeries.map((forge) => forge(f, other))))
      .filter((value) => !others(self).some((other) => opens(f, value, other)))
    const piece = fc.oneof(
      { weight: 4, arbitrary: fc.tuple(cookieName, cookieValue).map(([n, v]) => `${n}=${v}`) },
      { weight: 2, arbitrary: cookieValue.map((v) => `session=${v}`) },
      { weight: 3, arbitrary: forged.map((v) => `session=${v}`) },
      { weight: 1, arbitrary: oddText(20) },
      { weight: self === undefined ? 0 : 2, arbitrary: fc.constant(self === undefined ? '' : self.pair) },
      { weight: self === undefined ? 0 : 1, arbitrary: fc.constant(self === undefined ? '' : `session="${self.value}"`) }
    )
    return fc.tuple(fc.array(piece, { maxLength: 40 }), separator).map(([pieces, sep]) => ({ self, header: pieces.join(sep) }))
  })
}

/** Records no other program should have written, and some it might: devalue, JSON, or neither. */
const anyValue = fc.anything({ maxDepth: 3, withBigInt: true, withDate: true, withMap: true, withSet: true, withTypedArray: true, withNullPrototype: true, withObjectString: false, withBoxedValues: false, withSparseArray: true, key: fc.oneof(fc.string(), fc.constantFrom('__proto__', 'constructor', 'toString', 'other', 'counter')) })
function devalueOf (value: unknown): string {
  try { return stringify(value) } catch {}
  try { return String(value) } catch { return '[object]' }
}
const cookieSettings = fc.record({
  maxAge: fc.oneof(fc.integer(), fc.double(), fc.string()),
  path: fc.oneof(fc.constant('/'), fc.string()),
  sameSite: fc.oneof(fc.constantFrom('lax', 'strict', 'none', true, false), fc.string()),
  secure: fc.oneof(fc.boolean(), fc.constant('auto'), fc.string()),
  partitioned: fc.oneof(fc.boolean(), fc.string()),
  domain: fc.string()
}, { requiredKeys: [] })
const recordLike = fc.record({
  data: fc.oneof({ weight: 4, arbitrary: fc.dictionary(fc.oneof(fc.string(), fc.constantFrom('__proto__', 'other', 'counter')), anyValue, { maxKeys: 6 }) }, { weight: 1, arbitrary: anyValue }),
  permanent: fc.oneof(fc.constant(false), fc.constant(true), anyValue),
  pin: fc.oneof(fc.string(), anyValue),
  created: fc.oneof(fc.integer(), fc.double(), fc.constant(Math.floor(Date.now() / 1000))),
  touched: fc.oneof(fc.integer(), fc.double(), fc.constant(Math.floor(Date.now() / 1000))),
  cookie: fc.oneof(cookieSettings, anyValue)
}, { requiredKeys: ['data'] })
const storedText = fc.oneof(
  { weight: 4, arbitrary: recordLike.map(devalueOf) },
  { weight: 2, arbitrary: anyValue.map(devalueOf) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)) },
  { weight: 1, arbitrary: recordLike.map((r) => { try { return JSON.stringify(r) } catch { return '{}' } }) },
  { weight: 1, arbitrary: oddText(60) },
  // A record of ours with a few characters changed: text that is almost devalue.
  { weight: 2, arbitrary: fc.tuple(recordLike.map(devalueOf), fc.array(fc.tuple(fc.nat(), oddText(2)), { minLength: 1, maxLength: 3 })).map(([text, edits]) => {
    let out = text
    for (const [at, insert] of edits) { const i = at % (out.length + 1); out = out.slice(0, i) + insert + out.slice(i + 1) }
    return out
  }) }
)

const headerName = fc.oneof(
  { weight: 3, arbitrary: fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 16 }) },
  { weight: 2, arbitrary: oddText(10).filter((s) => s.length > 0) },
  { weight: 2, arbitrary: fc.constantFrom('location', 'content-disposition', 'set-cookie', 'cache-control', 'vary', 'x-session', 'link', '__proto__', 'constructor') }
).filter((name) => !FRAMING.has(name.toLowerCase().trim()))
const headerValue = fc.oneof(oddText(40), fc.constantFrom('/中', '/a\r\nSet-Cookie: admin=1', 'attachment; filename="請求書.pdf"', '\u0000', ' ', ''))
const replyHeaders = fc.array(fc.tuple(headerName, headerValue), { maxLength: 6 })

// ---- properties ----

for (const withSecret of [false, true]) {
  describe(`fuzzing the request path, memory store, ${withSecret ? 'with' : 'without'} a secret`, { timeout: 120_000 }, () => {
    const watch = new CrashWatch()
    let f: Fixture

    before(async () => {
      watch.install()
      f = await fixture(withSecret)
    })
    after(async () => {
      watch.uninstall()
      await f?.app.close()
    })

    it('random Cookie headers: never another client\'s session, no 5xx, no crash', async () => {
      await fc.assert(fc.asyncProperty(cookieHeader(f), fc.boolean(), async ({ self, header }, write) => {
        const response = await f.app.inject({ url: write ? '/me?write=1' : '/me', headers: { cookie: header } })
        assert.equal(response.statusCode, 200, response.body)
        assert.ok(response.body === 'none' || response.body === self?.secret, `an unexpected session: ${response.body}`)
        assertOnlyOwn(f, self, { body: response.body, setCookie: setCookieText(response) })
      }), { numRuns: RUNS.cookies })
      await assertClientsIntact(f)
      await watch.assertNone()
    })

    it('random stored records under a valid session key: a session or a fresh one, never a 5xx loop', async () => {
      let mark = 0
      await fc.assert(fc.asyncProperty(ID, storedText, async (id, text) => {
        await f.store.set(sessionKey(id), text, 0)
        const value = withSecret ? new Signer([SECRET], 'sha256').sign(id) : id
        let cookieHeader = `session=${value}`
        for (const attempt of ['first', 'second']) {
          const response = await f.app.inject({ url: `/poke?mark=${++mark}`, headers: { cookie: cookieHeader } })
          assert.equal(response.statusCode, 200, `${attempt} request on ${JSON.stringify(text)}: ${response.body}`)
          assertOnlyOwn(f, undefined, { body: response.body, setCookie: setCookieText(response) })
          cookieHeader = cookieOf(response)?.pair ?? cookieHeader
        }
        // Bad input loses nothing: what the last request wrote is what the session holds.
        const read = await f.app.inject({ url: '/count', headers: { cookie: cookieHeader } })
        assert.equal(read.body, String(mark), `the write on ${JSON.stringify(text)} was kept`)
      }), { numRuns: RUNS.records })
      await assertClientsIntact(f)
      await watch.assertNone()
    })

    it('random reply headers set by the handler: 200 or Fastify\'s 500 for a refused header, no crash, next request fine', async () => {
      let n = 0
      await fc.assert(fc.asyncProperty(fc.constantFrom(...f.clients), replyHeaders, async (self, headers) => {
        const key = String(n++)
        f.cases.set(key, headers)
        const response = await f.app.inject({ url: '/headers', headers: { cookie: self.pair, 'x-case': key } })
        f.cases.delete(key)
        assertDocumented(response.statusCode, response.body, true)
        assertOnlyOwn(f, self, { body: response.body, setCookie: setCookieText(response) })
        const next = await f.app.inject({ url: '/me', headers: { cookie: self.pair } })
        assert.equal(next.statusCode, 200)
        assert.equal(next.body, self.secret)
      }), { numRuns: RUNS.headers })
      await watch.assertNone()
    })

    it('over real HTTP: random Cookie headers and reply headers, byte for byte', async () => {
      await fc.assert(fc.asyncProperty(cookieHeader(f), async ({ self, header }) => {
        const response = await rawGet(f.port, '/me?write=1', [['Cookie', header]])
        // Node's own parser answers 400 to bytes HTTP does not allow in a header, 431 past its 16 KiB of headers.
        if (response.status === 400 || response.status === 431) return
        assert.equal(response.status, 200, response.body)
        assert.ok(response.body === 'none' || response.body === self?.secret, `an unexpected session: ${response.body}`)
        assertOnlyOwn(f, self, { body: response.body, setCookie: response.head })
      }), { numRuns: RUNS.http })

      let n = 0
      await fc.assert(fc.asyncProperty(fc.constantFrom(...f.clients), replyHeaders, async (self, headers) => {
        const key = `http-${n++}`
        f.cases.set(key, headers)
        const response = await rawGet(f.port, '/headers', [['Cookie', self.pair], ['x-case', key]])
        f.cases.delete(key)
        assertDocumented(response.status, response.body, true)
        assertOnlyOwn(f, self, { body: response.body, setCookie: response.head })
      }), { numRuns: RUNS.http })
      const after = await rawGet(f.port, '/me', [['Cookie', f.clients[0].pair]])
      assert.equal(after.status, 200)
      assert.equal(after.body, f.clients[0].secret)
      await watch.assertNone()
    })
  })
}
