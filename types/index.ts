// The public type surface that reaches into Fastify. Users type their session data by
// declaration merging:
//
//   declare module 'fastify-quart-session' {
//     interface SessionData { user: { id: string }, cart: string[] }
//   }
//
// Without such a declaration any string key is accepted and values are `any`.
// The session class is imported under its own name: inside `declare module 'fastify'`, a bare
// `Session` would resolve to `fastify.Session` when @fastify/session or the app declares one
// (types/app-session/ pins this). @fastify/session's own types cannot share a program with these:
// both declare `FastifyRequest.session`, with different types (TS2717); an app uses one plugin.
import type { Session as QuartSession } from '../lib/session.js'
import type { DirectStore as QuartDirectStore } from '../lib/direct.js'

/** The keys a session may hold and their value types. Empty here; extend it by declaration merging. */
// eslint-disable-next-line @typescript-eslint/no-empty-interface
export interface SessionData {}

/** True while no key has been declared in SessionData. */
type Undeclared = [keyof SessionData] extends [never] ? true : false

/** Keys `get`/`set` accept: SessionData's once declared, any string before. */
export type SessionKey = Undeclared extends true ? string : keyof SessionData & string

/** The value type of a key. */
export type SessionValue<Key> = Undeclared extends true ? any : Key extends keyof SessionData ? SessionData[Key] : never

/** Property access to the data (`request.session.user`), typed like `get`/`set`. */
export type SessionProperties = Undeclared extends true ? Record<never, never> : Partial<SessionData>

/** What `request.session` is: the session, plus property access to its data. */
export type RequestSession = QuartSession & SessionProperties

declare module 'fastify' {
  interface FastifyRequest {
    /** The session of this request (inert, read-only, on routes without sessions). */
    session: RequestSession
    /** The same object as `fastify.sessionStore` (@fastify/session has it on the request too). */
    sessionStore: QuartDirectStore
  }
  interface FastifyInstance {
    /** The session backend used directly: `get(key)`, `set(key, value, expirySeconds?)`, `delete(key)`. */
    sessionStore: QuartDirectStore
  }
  interface FastifyContextConfig {
    /** `false`: this route never loads, saves or sends a session cookie; `true`: it does even if static. */
    session?: boolean
  }
}
