import assert from 'node:assert/strict'
import Fastify, { type FastifyInstance, type FastifyServerOptions, type LightMyRequestResponse } from 'fastify'
import cookie from '@fastify/cookie'
import './session-data.js'
import quartSession, { type QuartSessionOptions, type SessionStore } from '../../lib/index.js'
import { MemoryStore } from '../../lib/stores/memory.js'

export const SECRET = 'a-test-secret-that-is-long-enough-0123456789'
export const OLD_SECRET = 'an-older-secret-that-is-long-enough-9876543210'

export type Op = 'get' | 'set' | 'delete' | 'cas'
export interface Call { op: Op, key: string, ttl?: number }

/**
 * A real MemoryStore behind a call log, so tests can count backend operations per request; any
 * operation can be made to fail like a backend that is down.
 */
export class CountingStore implements SessionStore {
  readonly inner = new MemoryStore()
  calls: Call[] = []
  failing = new Set<Op>()

  count (op?: Op): number {
    return op === undefined ? this.calls.length : this.calls.filter((c) => c.op === op).length
  }

  reset (): void { this.calls = [] }

  /** Read without counting, as a test peeking at the backend. */
  async peek (key: string): Promise<string | undefined> { return await this.inner.get(key) }

  #fail (op: Op): void {
    if (this.failing.has(op)) throw new Error(`backend ${op} refused (test)`)
  }

  async get (key: string): Promise<string | undefined> {
    this.calls.push({ op: 'get', key })
    this.#fail('get')
    return await this.inner.get(key)
  }

  async set (key: string, value: string, ttl: number): Promise<void> {
    this.calls.push({ op: 'set', key, ttl })
    this.#fail('set')
    await this.inner.set(key, value, ttl)
  }

  async delete (key: string): Promise<void> {
    this.calls.push({ op: 'delete', key })
    this.#fail('delete')
    await this.inner.delete(key)
  }

  async compareAndSet (key: string, expected: string | undefined, value: string | undefined, ttl: number): Promise<boolean> {
    this.calls.push({ op: 'cas', key, ttl })
    this.#fail('cas')
    return await this.inner.compareAndSet(key, expected, value, ttl)
  }
}

export async function build (
  options: QuartSessionOptions = {},
  routes?: (app: FastifyInstance) => void,
  serverOptions: FastifyServerOptions = {}
): Promise<FastifyInstance> {
  const app = Fastify(serverOptions)
  await app.register(cookie)
  await app.register(quartSession, options)
  routes?.(app)
  await app.ready()
  return app
}

/** The routes most tests drive: /set, /read, /nothing, /counter, /touch and /logout. */
export function sessionRoutes (app: FastifyInstance): void {
  app.get('/set', async (request) => { request.session.set('foo', 'bar'); return 'ok' })
  app.get('/read', async (request) => request.session.get('foo') ?? 'none')
  app.get('/nothing', async () => 'nothing')
  app.get('/counter', async (request) => {
    const n = (request.session.get('counter') ?? 0) + 1
    request.session.set('counter', n)
    return n
  })
  app.get('/touch', async (request) => { request.session.touch(); return 'touched' })
  app.get('/logout', async (request) => { await request.session.destroy(); return 'bye' })
}

export interface ParsedCookie {
  /** `name=value`, ready for a Cookie request header. */
  pair: string
  value: string
  attributes: Record<string, string | true>
  header: string
}

/** The Set-Cookie header for `name` in a response, parsed; undefined when there is none. */
export function cookieOf (response: { headers: Record<string, unknown> }, name = 'session'): ParsedCookie | undefined {
  const raw = response.headers['set-cookie']
  const headers = raw === undefined ? [] : Array.isArray(raw) ? raw as string[] : [raw as string]
  for (const header of headers) {
    const [pair, ...rest] = header.split('; ')
    const eq = pair.indexOf('=')
    if (pair.slice(0, eq) !== name) continue
    const attributes: Record<string, string | true> = {}
    for (const part of rest) {
      const i = part.indexOf('=')
      if (i === -1) attributes[part.toLowerCase()] = true
      else attributes[part.slice(0, i).toLowerCase()] = part.slice(i + 1)
    }
    return { pair, value: pair.slice(eq + 1), attributes, header }
  }
  return undefined
}

/** The session cookie a response set, as a Cookie header, and the id in it. */
export function sessionOf (response: LightMyRequestResponse): { cookie: string, id: string } {
  const cookie = cookieOf(response)
  assert.ok(cookie, 'expected a session cookie')
  return { cookie: cookie.pair, id: cookie.value }
}

/** How many Set-Cookie headers a response carries. */
export function setCookieCount (response: { headers: Record<string, unknown> }): number {
  const raw = response.headers['set-cookie']
  return raw === undefined ? 0 : Array.isArray(raw) ? raw.length : 1
}

/** An app built like `build`, whose warn-level log messages are kept (what a user reads at startup and in the log). */
export async function buildLogged (
  options: QuartSessionOptions,
  routes?: (app: FastifyInstance) => void
): Promise<{ app: FastifyInstance, warnings: () => string[] }> {
  const lines: string[] = []
  const app = await build(options, routes, { logger: { level: 'warn', stream: { write: (line: string) => { lines.push(line) } } } })
  const warnings = (): string[] => lines.map((line) => JSON.parse(line) as { level: number, msg: string })
    .filter((entry) => entry.level === 40).map((entry) => entry.msg)
  return { app, warnings }
}
