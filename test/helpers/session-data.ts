// The session keys the tests use, declared the way an application declares its own.
import type {} from '../../lib/index.js'

declare module '../../lib/index.js' {
  interface SessionData {
    foo: string
    counter: number
    user: { id: string, name: string }
    cart: { items: Array<string | number>, owner?: string }
    visits: number
    values: unknown
    other: string
  }
}
