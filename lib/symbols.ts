// Private state of sessions and requests lives behind symbols: it never collides with user data,
// never shows through property access to the data, and never ends up serialized.
/** A session's state (lib/state.ts): data, stored text, change tracking, cookie intent. */
export const kState = Symbol('quart-session.state')
/** The backend a session saves through. */
export const kBackend = Symbol('quart-session.backend')
/** The Proxy that gives property access to the data; made on first use. */
export const kProxy = Symbol('quart-session.proxy')
/** The request's session, or null where the route has none. */
export const kSession = Symbol('quart-session.session')
/** Marks the config of a route that serves static files (set when the route is added). */
export const kStaticRoute = Symbol('quart-session.staticRoute')
