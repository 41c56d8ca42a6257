// Private state of sessions and requests lives behind symbols: it never collides with user data,
// never shows through property access to the data, and never ends up serialized.
export const kBackend = Symbol('quart-session.backend')
export const kId = Symbol('quart-session.id')
export const kData = Symbol('quart-session.data')
/** The record text as the backend holds it; undefined = nothing stored under this id. */
export const kText = Symbol('quart-session.text')
export const kNew = Symbol('quart-session.new')
export const kPermanent = Symbol('quart-session.permanent')
export const kPin = Symbol('quart-session.pin')
/** Something other than a key changed (permanent, cookie options, regenerate). */
export const kDirty = Symbol('quart-session.dirty')
/** Keys this request set or deleted (null: none). */
export const kChanged = Symbol('quart-session.changed')
/** `clear()` ran: the keys that were there before are gone. */
export const kCleared = Symbol('quart-session.cleared')
/** Keys whose object value was handed out and may have been mutated (null: none). */
export const kExposed = Symbol('quart-session.exposed')
/** Refresh the record's lifetime at the end of the request. */
export const kTouch = Symbol('quart-session.touch')
/** The cookie must be (re)sent at the end of the request. */
export const kCookie = Symbol('quart-session.cookie')
/** The client holds a cookie for a session that no longer exists: expire it. */
export const kClearCookie = Symbol('quart-session.clearCookie')
/** The save hook has run for this request (an error reply runs onSend a second time). */
export const kDone = Symbol('quart-session.done')
/** The request's session, or null where the route has none. */
export const kSession = Symbol('quart-session.session')
/** The signed cookie value the client sent for this id, reused when the cookie is re-sent. */
export const kSigned = Symbol('quart-session.signed')
/** Seconds since the epoch when the session was created or regenerated. */
export const kCreated = Symbol('quart-session.created')
/** Seconds since the epoch of the last write or refresh of the record. */
export const kTouched = Symbol('quart-session.touched')
/** Cookie settings given by `session.options()` (seconds for maxAge), or undefined. */
export const kCookieOptions = Symbol('quart-session.cookieOptions')
/** The Proxy that gives property access to the data; made on first use. */
export const kProxy = Symbol('quart-session.proxy')
/** Why sessions are off, on an inert session. */
export const kDisabled = Symbol('quart-session.disabled')
/** The client sent a cookie naming this session (or one that it replaced). */
export const kHadCookie = Symbol('quart-session.hadCookie')
/** Marks the config of a route that serves static files (set when the route is added). */
export const kStaticRoute = Symbol('quart-session.staticRoute')
