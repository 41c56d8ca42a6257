import createError from '@fastify/error'

// Every error the plugin raises, in one place. Messages say what to change.

export const FST_QUART_SESSION_INVALID_OPTION = createError<'FST_QUART_SESSION_INVALID_OPTION', [string, string]>(
  'FST_QUART_SESSION_INVALID_OPTION',
  'Invalid option "%s": %s',
  500,
  TypeError
)

export const FST_QUART_SESSION_UNKNOWN_TYPE = createError<'FST_QUART_SESSION_UNKNOWN_TYPE', [string]>(
  'FST_QUART_SESSION_UNKNOWN_TYPE',
  'Invalid option "type": unknown session type %s; use "memory", "redis", "memcached" or "filesystem", or pass an adapter as "store"',
  500,
  TypeError
)

export const FST_QUART_SESSION_WEAK_SECRET = createError<'FST_QUART_SESSION_WEAK_SECRET', [string]>(
  'FST_QUART_SESSION_WEAK_SECRET',
  'Invalid option "secret": %s; use random strings of at least 32 characters (e.g. `openssl rand -base64 48`)',
  500,
  TypeError
)

export const FST_QUART_SESSION_CONNECT = createError<'FST_QUART_SESSION_CONNECT', [string, string]>(
  'FST_QUART_SESSION_CONNECT',
  'Could not reach the session backend at %s: %s. Start it, or fix the "uri"/"servers"/"client" option',
  500
)

export const FST_QUART_SESSION_BACKEND = createError<'FST_QUART_SESSION_BACKEND', [string]>(
  'FST_QUART_SESSION_BACKEND',
  'Session backend failed during %s; the details are in the server log',
  503
)

export const FST_QUART_SESSION_TIMEOUT = createError<'FST_QUART_SESSION_TIMEOUT', [string, number]>(
  'FST_QUART_SESSION_TIMEOUT',
  'Session backend did not answer %s within %d s; check that it is running or raise the "timeout" option',
  503
)

export const FST_QUART_SESSION_DISABLED = createError<'FST_QUART_SESSION_DISABLED', [string, string]>(
  'FST_QUART_SESSION_DISABLED',
  'request.session.%s is not available: %s',
  500
)

export const FST_QUART_SESSION_INVALID_KEY = createError<'FST_QUART_SESSION_INVALID_KEY', [string]>(
  'FST_QUART_SESSION_INVALID_KEY',
  'Invalid session key %s: keys must be strings other than "__proto__"',
  500,
  TypeError
)

export const FST_QUART_SESSION_SERIALIZE = createError<'FST_QUART_SESSION_SERIALIZE', [string]>(
  'FST_QUART_SESSION_SERIALIZE',
  'Session data could not be serialized: %s. Store only values the serializer supports (devalue: no functions, symbols or class instances)',
  500
)

export const FST_QUART_SESSION_VALUE_TOO_LARGE = createError<'FST_QUART_SESSION_VALUE_TOO_LARGE', [number, number]>(
  'FST_QUART_SESSION_VALUE_TOO_LARGE',
  'Session record of %d bytes exceeds the limit of %d bytes (maxRecordBytes, or the backend\'s item size); store less in the session',
  500
)

export const FST_QUART_SESSION_CORRUPT_RECORD = createError<'FST_QUART_SESSION_CORRUPT_RECORD', [string]>(
  'FST_QUART_SESSION_CORRUPT_RECORD',
  'Session record could not be read: %s. The request got a fresh session; if you changed "serializer", old records are unreadable by design',
  500
)

export const FST_QUART_SESSION_INVALID_ARGUMENT = createError<'FST_QUART_SESSION_INVALID_ARGUMENT', [string, string]>(
  'FST_QUART_SESSION_INVALID_ARGUMENT',
  'Invalid argument "%s": %s',
  500,
  TypeError
)

export const FST_QUART_SESSION_CONFLICT = createError<'FST_QUART_SESSION_CONFLICT', [number]>(
  'FST_QUART_SESSION_CONFLICT',
  'Session could not be saved: %d concurrent writes to the same session won every attempt; retry the request',
  503
)

export const FST_QUART_SESSION_MISSING_PACKAGE = createError<'FST_QUART_SESSION_MISSING_PACKAGE', [string, string, string]>(
  'FST_QUART_SESSION_MISSING_PACKAGE',
  'type "%s" needs the "%s" package, which is not installed: run `%s`',
  500
)

export const FST_QUART_SESSION_LAYOUT = createError<'FST_QUART_SESSION_LAYOUT', [string]>(
  'FST_QUART_SESSION_LAYOUT',
  'fastify-quart-session cannot give these routes a session: %s',
  500
)

export const FST_QUART_SESSION_CALLBACK = createError<'FST_QUART_SESSION_CALLBACK', [string]>(
  'FST_QUART_SESSION_CALLBACK',
  'Invalid argument: session.%s takes an optional Node callback (err) => void as its last argument',
  500,
  TypeError
)
