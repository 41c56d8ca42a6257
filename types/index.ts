// The public type surface that reaches into Fastify. Users type their session data by
// declaration merging:
//
//   declare module 'fastify-quart-session' {
//     interface SessionData { user: { id: string }, cart: string[] }
//   }
import type { Session } from '../lib/session.js'
import type { DirectStore } from '../lib/direct.js'

/** The keys a session may hold and their value types. Empty here; extend it by declaration merging. */
// eslint-disable-next-line @typescript-eslint/no-empty-interface
export interface SessionData {}

declare module 'fastify' {
  interface FastifyRequest {
    /** The session of this request (inert, read-only, on routes without sessions). */
    session: Session
  }
  interface FastifyInstance {
    /** The session backend used directly: `get(key)`, `set(key, value, expirySeconds?)`, `delete(key)`. */
    sessionStore: DirectStore
  }
  interface FastifyContextConfig {
    /** `false`: this route never loads, saves or sends a session cookie; `true`: it does even if static. */
    session?: boolean
  }
}
