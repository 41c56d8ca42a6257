// Private state of sessions and requests lives behind symbols: it never collides with user
// data and never ends up serialized.
export const kBackend = Symbol('quart-session.backend')
export const kId = Symbol('quart-session.id')
export const kData = Symbol('quart-session.data')
/** The record text as the backend holds it; undefined = nothing stored under this id. */
export const kText = Symbol('quart-session.text')
export const kNew = Symbol('quart-session.new')
export const kPermanent = Symbol('quart-session.permanent')
export const kPin = Symbol('quart-session.pin')
export const kDirty = Symbol('quart-session.dirty')
/** `get` handed out an object the caller may have mutated. */
export const kExposed = Symbol('quart-session.exposed')
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
