import createError from '@fastify/error'
import type { FastifyErrorConstructor } from '@fastify/error'

// Every error the plugin raises, in one place. Messages say what to change.

/**
 * `createError` with its return type spelled through a named type import. Left to inference, the
 * declaration files would say `createError.FastifyErrorConstructor`, a namespace that only
 * NodeNext/Node16 resolution can see through the default import: under `bundler` and `node10` it
 * is "Cannot find namespace 'createError'" (or `any` with skipLibCheck). Append new errors with it.
 */
function defineError<Code extends string, Args extends unknown[]> (
  code: Code,
  message: string,
  statusCode: number,
  Base?: ErrorConstructor
): ErrorClass<Code, Args> {
  return createError<Code, Args>(code, message, statusCode, Base) as ErrorClass<Code, Args>
}

/** One error constructor: `new X(...args)` or `X(...args)` gives an Error with this `code` and a `statusCode`. */
type ErrorClass<Code extends string, Args extends unknown[]> = FastifyErrorConstructor<{ code: Code, statusCode: number }, Args>

export const FST_QUART_SESSION_INVALID_OPTION = defineError<'FST_QUART_SESSION_INVALID_OPTION', [string, string]>(
  'FST_QUART_SESSION_INVALID_OPTION',
  'Invalid option "%s": %s',
  500,
  TypeError
)

export const FST_QUART_SESSION_UNKNOWN_TYPE = defineError<'FST_QUART_SESSION_UNKNOWN_TYPE', [string]>(
  'FST_QUART_SESSION_UNKNOWN_TYPE',
  'Invalid option "type": unknown session type %s; use "memory", "redis", "memcached" or "filesystem", or pass an adapter as "store"',
  500,
  TypeError
)

export const FST_QUART_SESSION_WEAK_SECRET = defineError<'FST_QUART_SESSION_WEAK_SECRET', [string]>(
  'FST_QUART_SESSION_WEAK_SECRET',
  'Invalid option "secret": %s; use random strings of at least 32 characters (e.g. `openssl rand -base64 48`)',
  500,
  TypeError
)

export const FST_QUART_SESSION_CONNECT = defineError<'FST_QUART_SESSION_CONNECT', [string, string]>(
  'FST_QUART_SESSION_CONNECT',
  'Could not reach the session backend at %s: %s. Start it, or fix the "uri"/"servers"/"client" option',
  500
)

export const FST_QUART_SESSION_BACKEND = defineError<'FST_QUART_SESSION_BACKEND', [string]>(
  'FST_QUART_SESSION_BACKEND',
  'Session backend failed during %s; the details are in the server log',
  503
)

export const FST_QUART_SESSION_TIMEOUT = defineError<'FST_QUART_SESSION_TIMEOUT', [string, number]>(
  'FST_QUART_SESSION_TIMEOUT',
  'Session backend did not answer %s within %d s; check that it is running or raise the "timeout" option',
  503
)

export const FST_QUART_SESSION_DISABLED = defineError<'FST_QUART_SESSION_DISABLED', [string, string]>(
  'FST_QUART_SESSION_DISABLED',
  'request.session.%s is not available: %s',
  500
)

export const FST_QUART_SESSION_INVALID_KEY = defineError<'FST_QUART_SESSION_INVALID_KEY', [string]>(
  'FST_QUART_SESSION_INVALID_KEY',
  'Invalid session key %s: keys must be strings other than "__proto__"',
  500,
  TypeError
)

export const FST_QUART_SESSION_SERIALIZE = defineError<'FST_QUART_SESSION_SERIALIZE', [string]>(
  'FST_QUART_SESSION_SERIALIZE',
  'Session data could not be serialized: %s. Store only values the serializer supports (devalue: no functions, symbols or class instances)',
  500
)

export const FST_QUART_SESSION_VALUE_TOO_LARGE = defineError<'FST_QUART_SESSION_VALUE_TOO_LARGE', [number, number]>(
  'FST_QUART_SESSION_VALUE_TOO_LARGE',
  'Session record of %d bytes exceeds the limit of %d bytes (maxRecordBytes, or the backend\'s item size); store less in the session',
  500
)

export const FST_QUART_SESSION_CORRUPT_RECORD = defineError<'FST_QUART_SESSION_CORRUPT_RECORD', [string]>(
  'FST_QUART_SESSION_CORRUPT_RECORD',
  'Session record could not be read: %s. The request got a fresh session; if you changed "serializer", old records are unreadable by design',
  500
)

export const FST_QUART_SESSION_INVALID_ARGUMENT = defineError<'FST_QUART_SESSION_INVALID_ARGUMENT', [string, string]>(
  'FST_QUART_SESSION_INVALID_ARGUMENT',
  'Invalid argument "%s": %s',
  500,
  TypeError
)

export const FST_QUART_SESSION_CONFLICT = defineError<'FST_QUART_SESSION_CONFLICT', [number]>(
  'FST_QUART_SESSION_CONFLICT',
  'Session could not be saved: after %d attempts, concurrent writes to the same session kept winning; retry the request',
  503
)

export const FST_QUART_SESSION_MISSING_PACKAGE = defineError<'FST_QUART_SESSION_MISSING_PACKAGE', [string, string, string]>(
  'FST_QUART_SESSION_MISSING_PACKAGE',
  'type "%s" needs the "%s" package, which is not installed: run `%s`',
  500
)

export const FST_QUART_SESSION_LAYOUT = defineError<'FST_QUART_SESSION_LAYOUT', [string]>(
  'FST_QUART_SESSION_LAYOUT',
  'fastify-quart-session cannot give these routes a session: %s',
  500
)

export const FST_QUART_SESSION_CALLBACK = defineError<'FST_QUART_SESSION_CALLBACK', [string]>(
  'FST_QUART_SESSION_CALLBACK',
  'Invalid argument: session.%s takes an optional Node callback (err) => void as its last argument',
  500,
  TypeError
)

export const FST_QUART_SESSION_NO_COOKIE_PLUGIN = defineError<'FST_QUART_SESSION_NO_COOKIE_PLUGIN', []>(
  'FST_QUART_SESSION_NO_COOKIE_PLUGIN',
  "The dependency '@fastify/cookie' of plugin 'fastify-quart-session' is not registered: register @fastify/cookie before fastify-quart-session, in the same scope or a parent one (`app.register(cookie)` then `app.register(quartSession, options)`)",
  500
)

export const FST_QUART_SESSION_ALREADY_REGISTERED = defineError<'FST_QUART_SESSION_ALREADY_REGISTERED', [string]>(
  'FST_QUART_SESSION_ALREADY_REGISTERED',
  'request.session is already provided by %s in this scope or a parent one: register one session plugin, once, at the root of the app (after @fastify/cookie); routes in child scopes get its session',
  500
)

export const FST_QUART_SESSION_GONE = defineError<'FST_QUART_SESSION_GONE', [string]>(
  'FST_QUART_SESSION_GONE',
  'session.%s could not apply: the session ended (destroyed, regenerated, revoked or expired) while this request held it',
  409
)

export const FST_QUART_SESSION_TOO_MANY_SESSIONS = defineError<'FST_QUART_SESSION_TOO_MANY_SESSIONS', [number]>(
  'FST_QUART_SESSION_TOO_MANY_SESSIONS',
  'This account already has %d active sessions (maxSessionsPerUser, policy "refuse"): sign out on another device first',
  409
)

export const FST_QUART_SESSION_NO_USER_INDEX = defineError<'FST_QUART_SESSION_NO_USER_INDEX', [string]>(
  'FST_QUART_SESSION_NO_USER_INDEX',
  'sessionStore.%s needs the per-user index: set the "userId" option (the session key that holds the user id, or (data) => id)',
  500
)

export const FST_QUART_SESSION_INVALID_USER_ID = defineError<'FST_QUART_SESSION_INVALID_USER_ID', [string]>(
  'FST_QUART_SESSION_INVALID_USER_ID',
  'The user id of a session is %s; the "userId" option must give a non-empty string or a finite number (or undefined: no user). For an object such as a stored user, give userId as (data) => data.user?.id',
  500,
  TypeError
)

export const FST_QUART_SESSION_INDEX_UNSUPPORTED = defineError<'FST_QUART_SESSION_INDEX_UNSUPPORTED', [string, string]>(
  'FST_QUART_SESSION_INDEX_UNSUPPORTED',
  'The "userId" option (per-user session index) is not available with %s: %s',
  500
)

// Errors whose message is safe for a client to read, as they come.
const PUBLIC_CODES = new Set([
  'FST_QUART_SESSION_TIMEOUT', 'FST_QUART_SESSION_VALUE_TOO_LARGE', 'FST_QUART_SESSION_CONFLICT',
  'FST_QUART_SESSION_CORRUPT_RECORD', 'FST_QUART_SESSION_SERIALIZE', 'FST_QUART_SESSION_GONE',
  'FST_QUART_SESSION_TOO_MANY_SESSIONS', 'FST_QUART_SESSION_INVALID_USER_ID'
])

/**
 * The error a request fails with when the backend does: a code and a short message, the
 * backend's own words kept in `cause` for the log, never in the reply. An adapter's own
 * FST_QUART_SESSION_BACKEND is not wrapped again, so the one log line Fastify writes for the
 * failed request says what failed once ("… during read (Redis GET) …: The client is offline").
 */
export function backendError (operation: string, err: unknown): Error {
  const code = (err as { code?: unknown })?.code
  if (typeof code === 'string' && PUBLIC_CODES.has(code)) return err as Error
  if (code === 'FST_QUART_SESSION_BACKEND') {
    const inner = err as Error & { operation?: string }
    return Object.assign(new FST_QUART_SESSION_BACKEND(operation), { cause: inner.cause, operation: inner.operation ?? operation })
  }
  return Object.assign(new FST_QUART_SESSION_BACKEND(operation), { cause: err, operation })
}
