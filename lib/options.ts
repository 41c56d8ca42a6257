import type { SessionStore } from './store.js'
import type { Serializer } from './serializer.js'
import type { CookieOptions } from './cookie.js'
import { devalueSerializer } from './serializer.js'
import { MAX_LIFETIME } from './cookie.js'
import { isServers } from './stores/servers.js'
import {
  FST_QUART_SESSION_INVALID_OPTION, FST_QUART_SESSION_UNKNOWN_TYPE, FST_QUART_SESSION_WEAK_SECRET
} from './errors.js'

export type SessionType = 'memory' | 'redis' | 'memcached' | 'filesystem'

/** Redis behind Sentinel: the master's name and the sentinels' `host:port`. */
export interface SentinelOptions {
  name: string
  nodes: string[]
}

/** Client-side caching of session reads (Redis, RESP3 tracking). */
export interface ClientSideCacheOptions {
  /** Most keys cached (the oldest stored evicted first). Default 10 000. */
  maxEntries?: number
  /**
   * Most bytes the cached records take, counted as 2 per character (V8's worst case) plus a small
   * overhead per entry; a record above 1/16 of it is not cached. Default 64 MiB. With `uri` only.
   */
  maxBytes?: number
  /** Milliseconds a cached entry lives at most, also without invalidation; 0 = no limit (the key's Redis TTL still applies). Default 0. */
  ttl?: number
}

export interface QuartSessionOptions {
  /** Backend (`SESSION_TYPE`). Default `'memory'`. */
  type?: SessionType
  /** Any adapter implementing `SessionStore`; wins over `type`. Never closed by the plugin. */
  store?: SessionStore
  /** Redis URL for a client the plugin creates and closes (`SESSION_URI`). */
  uri?: string
  /** A client you built (node-redis client or cluster, or a `memcached` instance); never closed by the plugin. */
  client?: object
  /** Redis behind Sentinel (with `type: 'redis'`). */
  sentinel?: SentinelOptions
  /** Redis only: serve unchanged reads from a RESP3 client-side cache that Redis invalidates. Default `false`. */
  clientSideCache?: boolean | ClientSideCacheOptions
  /** Memcached location(s): `'host:port'`, an array, or `{ 'host:port': weight }`. */
  servers?: string | string[] | Record<string, number>
  /** Prefix of every session key in the backend (`SESSION_KEY_PREFIX`). Default `'session:'`. */
  keyPrefix?: string
  /** Signs the cookie (`SESSION_USE_SIGNER` + `SECRET_KEY`); an array rotates: the first signs, all verify. */
  secret?: string | string[]
  /** Cookie name (`SESSION_COOKIE_NAME`). Default `'session'`. */
  cookieName?: string
  /** Cookie attributes (`SESSION_COOKIE_*`). */
  cookie?: CookieOptions
  /**
   * Seconds a session lives after its last use (`rolling`) or last write (`rolling: false`)
   * (`PERMANENT_SESSION_LIFETIME`). Default 31 days.
   */
  maxAge?: number
  /** An unchanged session that is used stays alive, refreshed at most once per `maxAge / 10` (`SESSION_REFRESH_EACH_REQUEST`). Default `true`. */
  rolling?: boolean
  /** Seconds after creation (or `regenerate`) when a session ends whatever its activity. Default off. */
  absoluteMaxAge?: number
  /** Largest session record written or read, in bytes. Default 1 MiB. */
  maxRecordBytes?: number
  /** Filesystem store: folder of the session files (`SESSION_FILE_DIR`). Default `./sessions`. */
  directory?: string
  /** Filesystem store: mode of the session files (`SESSION_FILE_MODE`). Default `0o600`. */
  fileMode?: number
  /** `false`: browser-session cookies (`SESSION_PERMANENT`). Default `true`. */
  permanent?: boolean
  /** Pin each session to the client address (`SESSION_PROTECTION`). Needs `secret`. */
  protection?: boolean
  /** Take the client address from the right-most `X-Forwarded-For` entry (`SESSION_REVERSE_PROXY`). */
  reverseProxy?: boolean
  /** `true`: static file routes get sessions too (`SESSION_STATIC_FILE`). Default `false`. */
  staticFiles?: boolean
  /** Record serializer. Default devalue. */
  serializer?: Serializer
  /** Seconds a backend operation may take before the request fails (redis, memcached). Default 2. */
  timeout?: number
  /** Most sessions the memory or filesystem store keeps (`SESSION_FILE_THRESHOLD`); beyond it the least recently used go. Default 10 000. */
  maxEntries?: number
  /**
   * Turns on the per-user index (docs/sessions.md): the session key that holds the user's id, or
   * `(data) => id | undefined`. Off by default.
   */
  userId?: string | ((data: Record<string, unknown>) => string | number | undefined | null)
  /** Most sessions one user may have: `n` (drop the oldest) or `{ limit, policy }`. Needs `userId`. */
  maxSessionsPerUser?: number | { limit: number, policy?: 'drop-oldest' | 'refuse' }
  /** Store the User-Agent and a coarse client address with each session in its user's list. Needs `userId`. Default `false`. */
  deviceInfo?: boolean | { userAgent?: boolean, address?: boolean }
  /**
   * Encrypts records (and direct-store values) at rest with AES-256-GCM, bound to their store key:
   * a string of at least 32 characters, or an array (the first encrypts, all decrypt). Default off.
   */
  encryptionKey?: string | string[]
  /** Read records stored under plain ids by versions before derived keys, once, and move them. Default `true` in 0.x. */
  legacyKeys?: boolean
  /** Seconds after which a session's id is replaced on its next request (data kept). Default off. */
  renewAfter?: number
  /** Seconds the replaced id keeps answering (parallel requests of one page); shorter than `renewAfter`. Default 30 (or `renewAfter - 1` when that is shorter). */
  renewGrace?: number
}

/** The per-user index options, resolved (lib/users.ts). */
export interface UserIndexOptions {
  resolve: (data: Record<string, unknown>) => unknown
  limit: number
  policy: 'drop-oldest' | 'refuse'
  userAgent: boolean
  address: boolean
}

export interface ResolvedOptions {
  type: SessionType
  store: SessionStore | undefined
  uri: string | undefined
  client: object | undefined
  servers: string | string[] | Record<string, number> | undefined
  sentinel: SentinelOptions | undefined
  clientSideCache: ClientSideCacheOptions | undefined
  keyPrefix: string
  secrets: string[] | undefined
  cookieName: string
  cookie: Required<Pick<CookieOptions, 'path' | 'httpOnly' | 'secure' | 'sameSite'>> & CookieOptions
  maxAge: number
  rolling: boolean
  /** 0 = off. */
  absoluteMaxAge: number
  maxRecordBytes: number
  directory: string | undefined
  fileMode: number | undefined
  permanent: boolean
  protection: boolean
  reverseProxy: boolean
  staticFiles: boolean
  serializer: Serializer
  timeout: number
  maxEntries: number
  /** undefined: no per-user index. */
  users: UserIndexOptions | undefined
  /** undefined = off. */
  encryptionKeys: string[] | undefined
  legacyKeys: boolean
  /** 0 = off. */
  renewAfter: number
  renewGrace: number
  /**
   * Problems that are not errors, for the plugin to log once at registration (resolveOptions has
   * no logger): a weak older secret of a rotation, a secret that is present but undefined.
   */
  warnings: string[]
}

export const THIRTY_ONE_DAYS = 31 * 24 * 60 * 60


// Fastify's own register options travel in the same object; they are not ours to refuse.
const FASTIFY_REGISTER_OPTIONS = new Set(['prefix', 'logLevel', 'logSerializers'])
const OPTION_NAMES = new Set([
  'type', 'store', 'uri', 'client', 'sentinel', 'clientSideCache', 'servers', 'keyPrefix', 'secret', 'cookieName',
  'cookie', 'maxAge', 'rolling', 'absoluteMaxAge', 'maxRecordBytes', 'permanent', 'protection', 'reverseProxy',
  'staticFiles', 'serializer', 'timeout', 'maxEntries', 'directory', 'fileMode',
  'userId', 'maxSessionsPerUser', 'deviceInfo', 'encryptionKey', 'legacyKeys', 'renewAfter', 'renewGrace'
])
// Options of @fastify/session and express-session that code being migrated still passes: the
// refusal says what they became (docs/migration.md maps them all).
const FOREIGN_OPTIONS: Record<string, string> = {
  saveUninitialized: 'the @fastify/session option has no counterpart: an empty session is never stored (saveUninitialized: false, always); remove it',
  resave: 'the express-session option has no counterpart: a session is written only when it changed; remove it',
  cookiePrefix: 'the @fastify/session option is not supported: the cookie value is the id, signed when "secret" is set',
  idGenerator: 'the @fastify/session option is not supported: ids are 192 random bits',
  genid: 'the express-session option is not supported: ids are 192 random bits',
  algorithm: 'the @fastify/session option is not needed: cookies are always signed with HMAC-SHA256',
  name: 'the express-session option is "cookieName" here',
  proxy: 'the express-session option is Fastify\'s own "trustProxy" here',
  unset: 'the express-session option has no counterpart: call `await request.session.destroy()`'
}
const COOKIE_OPTION_NAMES = new Set(['path', 'domain', 'httpOnly', 'secure', 'sameSite', 'partitioned', 'priority'])
const TYPES = new Set<string>(['memory', 'redis', 'memcached', 'filesystem'])
// RFC 6265 token characters for the cookie name; attribute values must not break the header.
const COOKIE_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
const ATTRIBUTE_VALUE = /^[\x21-\x3A\x3C-\x7E]+$/
const MIN_SECRET_LENGTH = 32
export const ONE_MEBIBYTE = 1024 * 1024

const invalid = (name: string, why: string): Error => new FST_QUART_SESSION_INVALID_OPTION(name, why)

function boolean (options: Record<string, unknown>, name: string, fallback: boolean): boolean {
  const value = options[name]
  if (value === undefined) return fallback
  if (typeof value !== 'boolean') throw invalid(name, `must be true or false, got ${describe(value)}`)
  return value
}

function describe (value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value)
  if (value === null || typeof value !== 'object') return String(value)
  return Array.isArray(value) ? 'an array' : 'an object'
}

/** Read and check every option once, at registration. Throws the first problem found. */
export function resolveOptions (input: QuartSessionOptions | undefined): ResolvedOptions {
  if (input !== undefined && (typeof input !== 'object' || input === null)) {
    throw invalid('options', 'must be an object')
  }
  // A copy: the caller's object is never changed.
  const options: Record<string, unknown> = { ...input }
  for (const name of Object.keys(options)) {
    if (!OPTION_NAMES.has(name) && !FASTIFY_REGISTER_OPTIONS.has(name)) {
      const counterpart = Object.hasOwn(FOREIGN_OPTIONS, name) ? ` ${FOREIGN_OPTIONS[name]};` : ''
      throw invalid(name, `unknown option;${counterpart} known options are ${[...OPTION_NAMES].join(', ')}`)
    }
  }

  const type = options.type ?? 'memory'
  if (typeof type !== 'string' || !TYPES.has(type)) throw new FST_QUART_SESSION_UNKNOWN_TYPE(describe(type))

  const store = options.store
  if (store !== undefined) {
    if (typeof store !== 'object' || store === null) throw invalid('store', 'must be an object implementing SessionStore')
    for (const method of ['get', 'set', 'delete'] as const) {
      if (typeof (store as Record<string, unknown>)[method] !== 'function') {
        throw invalid('store', `must implement SessionStore: ${method}() is missing`)
      }
    }
  }

  const uri = options.uri
  if (uri !== undefined) {
    if (typeof uri !== 'string') throw invalid('uri', 'must be a redis:// or rediss:// URL string')
    let protocol: string
    try {
      protocol = new URL(uri).protocol
    } catch {
      throw invalid('uri', 'is not a URL; expected e.g. redis://:password@localhost:6379')
    }
    if (protocol !== 'redis:' && protocol !== 'rediss:') throw invalid('uri', `must use redis:// or rediss://, got ${protocol}`)
  }

  const client = options.client
  if (client !== undefined && (typeof client !== 'object' || client === null)) {
    throw invalid('client', 'must be a node-redis client or cluster, or a memcached instance')
  }

  const sentinel = options.sentinel
  if (sentinel !== undefined) {
    const { name, nodes } = (typeof sentinel === 'object' && sentinel !== null ? sentinel : {}) as Record<string, unknown>
    if (typeof name !== 'string' || name.length === 0 || !Array.isArray(nodes) || nodes.length === 0 ||
        !nodes.every((node) => typeof node === 'string' && /^[^:\s]+:\d+$/.test(node))) {
      throw invalid('sentinel', "must be { name: 'mymaster', nodes: ['host:port', ...] }")
    }
    if (type !== 'redis') throw invalid('sentinel', `applies to type "redis" only (type is "${String(type)}")`)
    if (options.uri !== undefined) throw invalid('sentinel', 'give either "uri" or "sentinel", not both')
  }

  let clientSideCache: ClientSideCacheOptions | undefined
  if (options.clientSideCache !== undefined && options.clientSideCache !== false) {
    const csc = options.clientSideCache === true ? {} : options.clientSideCache
    if (typeof csc !== 'object' || csc === null || Array.isArray(csc)) {
      throw invalid('clientSideCache', 'must be true, false or { maxEntries?, maxBytes?, ttl? }')
    }
    for (const name of Object.keys(csc)) {
      if (name !== 'maxEntries' && name !== 'maxBytes' && name !== 'ttl') throw invalid(`clientSideCache.${name}`, 'unknown setting; known are maxEntries, maxBytes, ttl')
    }
    const { maxEntries, maxBytes, ttl } = csc as ClientSideCacheOptions
    if (maxEntries !== undefined && (!Number.isSafeInteger(maxEntries) || maxEntries < 1)) {
      throw invalid('clientSideCache.maxEntries', `must be a whole number above 0, got ${describe(maxEntries)}`)
    }
    if (maxBytes !== undefined && (!Number.isSafeInteger(maxBytes) || maxBytes < 1)) {
      throw invalid('clientSideCache.maxBytes', `must be a whole number of bytes above 0, got ${describe(maxBytes)}`)
    }
    if (maxBytes !== undefined && options.sentinel !== undefined) {
      throw invalid('clientSideCache.maxBytes', 'applies to "uri" only: with "sentinel", node-redis keeps the cache, bounded by maxEntries')
    }
    if (ttl !== undefined && (!Number.isSafeInteger(ttl) || ttl < 0)) {
      throw invalid('clientSideCache.ttl', `must be whole milliseconds, 0 or more, got ${describe(ttl)}`)
    }
    if (type !== 'redis') throw invalid('clientSideCache', `applies to type "redis" only (type is "${String(type)}")`)
    clientSideCache = { ...(csc as ClientSideCacheOptions) }
  }

  const servers = options.servers
  if (servers !== undefined && !isServers(servers)) {
    throw invalid('servers', "must be 'host:port', an array of them, or an object of { 'host:port': weight }")
  }

  const keyPrefix = options.keyPrefix ?? 'session:'
  if (typeof keyPrefix !== 'string') throw invalid('keyPrefix', 'must be a string')

  const warnings: string[] = []
  const secrets = resolveSecrets(options, warnings)

  const cookieName = options.cookieName ?? 'session'
  if (typeof cookieName !== 'string' || !COOKIE_NAME.test(cookieName)) {
    throw invalid('cookieName', 'must be a non-empty cookie name (letters, digits and !#$%&\'*+-.^_`|~)')
  }
  // request.cookies is a plain object: such a name would read an inherited member, not a cookie.
  if (cookieName in Object.prototype) {
    throw invalid('cookieName', `"${cookieName}" is the name of an Object.prototype member; choose another name`)
  }

  const cookie = resolveCookie(options.cookie)

  const maxAge = options.maxAge ?? THIRTY_ONE_DAYS
  if (typeof maxAge !== 'number' || !Number.isSafeInteger(maxAge) || maxAge <= 0 || maxAge > MAX_LIFETIME) {
    throw invalid('maxAge', `must be a whole number of seconds from 1 to ${MAX_LIFETIME} (400 days, the longest cookie lifetime browsers keep), got ${describe(maxAge)}`)
  }

  const rolling = boolean(options, 'rolling', true)
  const absoluteMaxAge = options.absoluteMaxAge ?? 0
  if (typeof absoluteMaxAge !== 'number' || !Number.isSafeInteger(absoluteMaxAge) || absoluteMaxAge < 0 || absoluteMaxAge > MAX_LIFETIME) {
    throw invalid('absoluteMaxAge', `must be a whole number of seconds up to ${MAX_LIFETIME} (0 = off), got ${describe(absoluteMaxAge)}`)
  }
  const maxRecordBytes = options.maxRecordBytes ?? ONE_MEBIBYTE
  if (typeof maxRecordBytes !== 'number' || !Number.isSafeInteger(maxRecordBytes) || maxRecordBytes < 64) {
    throw invalid('maxRecordBytes', `must be a whole number of bytes, at least 64, got ${describe(maxRecordBytes)}`)
  }
  const directory = options.directory
  if (directory !== undefined && (typeof directory !== 'string' || directory.length === 0)) {
    throw invalid('directory', 'must be a folder path')
  }
  const fileMode = options.fileMode
  if (fileMode !== undefined && (typeof fileMode !== 'number' || !Number.isInteger(fileMode) || fileMode < 0 || fileMode > 0o777 || (fileMode & 0o600) !== 0o600)) {
    throw invalid('fileMode', 'must be a file mode such as 0o600 that lets the owner read and write')
  }
  if ((directory !== undefined || fileMode !== undefined) && type !== 'filesystem') {
    throw invalid(directory !== undefined ? 'directory' : 'fileMode', `applies to type "filesystem" only (type is "${String(type)}")`)
  }

  const permanent = boolean(options, 'permanent', true)
  const protection = boolean(options, 'protection', false)
  const reverseProxy = boolean(options, 'reverseProxy', false)
  const staticFiles = boolean(options, 'staticFiles', false)
  if (protection && secrets === undefined) {
    throw invalid('protection', 'needs "secret": the client address is stored as a hash keyed with it, never raw')
  }

  const serializer = options.serializer ?? devalueSerializer
  if (typeof serializer !== 'object' || serializer === null ||
      typeof (serializer as Serializer).stringify !== 'function' || typeof (serializer as Serializer).parse !== 'function') {
    throw invalid('serializer', 'must be an object with stringify(value): string and parse(text): unknown functions')
  }

  const timeout = options.timeout ?? 2
  if (typeof timeout !== 'number' || !Number.isFinite(timeout) || timeout <= 0) {
    throw invalid('timeout', `must be a number of seconds above 0, got ${describe(timeout)}`)
  }

  const maxEntries = options.maxEntries ?? 10_000
  if (typeof maxEntries !== 'number' || !Number.isSafeInteger(maxEntries) || maxEntries < 1) {
    throw invalid('maxEntries', `must be a whole number above 0, got ${describe(maxEntries)}`)
  }

  const users = resolveUserIndex(options)

  return {
    users,
    type: type as SessionType,
    store: store as SessionStore | undefined,
    uri,
    client: client as object | undefined,
    servers: servers as ResolvedOptions['servers'],
    sentinel: sentinel === undefined ? undefined : { name: (sentinel as SentinelOptions).name, nodes: [...(sentinel as SentinelOptions).nodes] },
    clientSideCache,
    keyPrefix,
    secrets,
    cookieName,
    cookie,
    maxAge,
    rolling,
    absoluteMaxAge,
    maxRecordBytes,
    directory,
    fileMode,
    permanent,
    protection,
    reverseProxy,
    staticFiles,
    serializer: serializer as Serializer,
    timeout,
    maxEntries,
    ...resolveSecurity(options),
    warnings
  }
}

/** Encryption at rest, legacy keys and id renewal (docs/security.md): their own block, checked together. */
function resolveSecurity (options: Record<string, unknown>): Pick<ResolvedOptions, 'encryptionKeys' | 'legacyKeys' | 'renewAfter' | 'renewGrace'> {
  let encryptionKeys: string[] | undefined
  const key = options.encryptionKey
  if (key !== undefined) {
    const isArray = Array.isArray(key)
    const keys: unknown[] = isArray ? [...key] : [key]
    if (keys.length === 0) throw invalid('encryptionKey', 'the array is empty; give at least one key (the first encrypts, all decrypt)')
    keys.forEach((k, index) => {
      const name = isArray ? `encryptionKey[${index}]` : 'encryptionKey'
      if (typeof k !== 'string') throw invalid(name, `must be a string or an array of strings, got ${describe(k)}`)
      // Every entry once encrypted records, so every one must have been strong.
      if (k.length < MIN_SECRET_LENGTH) throw invalid(name, `must have ${MIN_SECRET_LENGTH} characters or more, got ${k.length} (e.g. \`openssl rand -base64 48\`)`)
    })
    encryptionKeys = keys as string[]
  }
  const legacyKeys = boolean(options, 'legacyKeys', true)
  const renewAfter = options.renewAfter ?? 0
  if (typeof renewAfter !== 'number' || !Number.isSafeInteger(renewAfter) || renewAfter < 0 || renewAfter > MAX_LIFETIME) {
    throw invalid('renewAfter', `must be a whole number of seconds up to ${MAX_LIFETIME} (0 = off), got ${describe(renewAfter)}`)
  }
  const grace = options.renewGrace
  if (grace !== undefined) {
    if (typeof grace !== 'number' || !Number.isSafeInteger(grace) || grace < 1 || grace > 3600) {
      throw invalid('renewGrace', `must be a whole number of seconds from 1 to 3600, got ${describe(grace)}`)
    }
    if (renewAfter === 0) throw invalid('renewGrace', 'applies with "renewAfter" only; set renewAfter (seconds) to renew ids')
  }
  const renewGrace = grace ?? Math.min(30, Math.max(1, renewAfter - 1))
  // A marker then never outlives the next renewal: one hop, never a chain of old ids.
  if (renewAfter > 0 && renewGrace >= renewAfter) throw invalid('renewGrace', `must be shorter than renewAfter (${renewAfter} s), got ${renewGrace}`)
  if (renewAfter === 1) throw invalid('renewAfter', 'must be at least 2 seconds (the old id answers for renewGrace, which must be shorter)')
  return { encryptionKeys, legacyKeys, renewAfter, renewGrace }
}

/**
 * Only the secret that signs (the first, or a lone string) must be strong: a cookie is worth what
 * its signature is. Older secrets only verify, and a rotation away from a short one must be able
 * to keep its visitors signed in until their cookies expire, so they are allowed, with a warning.
 * Texts follow @fastify/session's ("the secret must have length 32 or greater", "at least one
 * secret is required") so a migrating user recognises them.
 */
function resolveSecrets (options: Record<string, unknown>, warnings: string[]): string[] | undefined {
  const secret = options.secret
  if (secret === undefined) {
    // `secret: process.env.SESSION_SECRET` with the variable unset: the option was meant to be set.
    if ('secret' in options && process.env.NODE_ENV === 'production') {
      warnings.push('fastify-quart-session: the "secret" option is present but undefined (an unset environment variable?), so session cookies are NOT signed. Set it, or leave the option out to run without signing on purpose')
    }
    return undefined
  }
  const isArray = Array.isArray(secret)
  const secrets: unknown[] = isArray ? [...secret] : [secret]
  if (secrets.length === 0) throw new FST_QUART_SESSION_WEAK_SECRET('at least one secret is required (the array is empty)')
  secrets.forEach((s, index) => {
    if (typeof s !== 'string') {
      const name = isArray ? `secret[${index}]` : 'secret'
      const signer = typeof s === 'object' && s !== null && typeof (s as { sign?: unknown }).sign === 'function'
      throw invalid(name, signer
        ? 'must be a String or an Array of Strings; a signer object with .sign and .unsign (which @fastify/session accepts) is not supported'
        : `must be a String or an Array of Strings, got ${describe(s)}`)
    }
    if (s.length === 0) throw new FST_QUART_SESSION_WEAK_SECRET(`${isArray ? `secret[${index}]` : 'the secret'} is an empty string`)
  })
  const strings = secrets as string[]
  if (strings[0].length < MIN_SECRET_LENGTH) {
    throw new FST_QUART_SESSION_WEAK_SECRET(isArray
      ? `the secret that signs (secret[0]) must have length ${MIN_SECRET_LENGTH} or greater, got ${strings[0].length} characters (only the older secrets after it, which just verify, may be shorter while you rotate them out)`
      : `the secret must have length ${MIN_SECRET_LENGTH} or greater, got ${strings[0].length} characters`)
  }
  for (let index = 1; index < strings.length; index++) {
    if (strings[index].length < MIN_SECRET_LENGTH) {
      warnings.push(`fastify-quart-session: secret[${index}] is ${strings[index].length} characters long (shorter than ${MIN_SECRET_LENGTH}); it only verifies cookies signed before the rotation, and cookies it verifies are re-issued signed with secret[0]. Remove it once those cookies have expired`)
    }
  }
  return strings
}

function resolveCookie (input: unknown): ResolvedOptions['cookie'] {
  if (input !== undefined && (typeof input !== 'object' || input === null || Array.isArray(input))) {
    throw invalid('cookie', 'must be an object of cookie attributes')
  }
  const options: Record<string, unknown> = { ...(input as object | undefined) }
  for (const name of Object.keys(options)) {
    if (!COOKIE_OPTION_NAMES.has(name)) {
      const hint = name === 'maxAge' || name === 'expires' ? '; the lifetime is the top-level "maxAge" option (seconds)' : ''
      throw invalid(`cookie.${name}`, `unknown cookie attribute; known are ${[...COOKIE_OPTION_NAMES].join(', ')}${hint}`)
    }
  }
  const path = options.path ?? '/'
  if (typeof path !== 'string' || !path.startsWith('/') || !ATTRIBUTE_VALUE.test(path)) {
    throw invalid('cookie.path', 'must be a path starting with "/" without ";" or spaces')
  }
  const domain = options.domain
  if (domain !== undefined && (typeof domain !== 'string' || !ATTRIBUTE_VALUE.test(domain))) {
    throw invalid('cookie.domain', 'must be a domain name without ";" or spaces')
  }
  const httpOnly = options.httpOnly ?? true
  if (typeof httpOnly !== 'boolean') throw invalid('cookie.httpOnly', 'must be true or false')
  const secure = options.secure ?? 'auto'
  if (secure !== true && secure !== false && secure !== 'auto') throw invalid('cookie.secure', "must be true, false or 'auto'")
  const sameSite = options.sameSite ?? 'lax'
  if (sameSite !== 'lax' && sameSite !== 'strict' && sameSite !== 'none' && sameSite !== true && sameSite !== false) {
    throw invalid('cookie.sameSite', "must be 'lax', 'strict', 'none', true (strict) or false (no attribute)")
  }
  const partitioned = options.partitioned
  if (partitioned !== undefined && typeof partitioned !== 'boolean') throw invalid('cookie.partitioned', 'must be true or false')
  const priority = options.priority
  if (priority !== undefined && priority !== 'low' && priority !== 'medium' && priority !== 'high') {
    throw invalid('cookie.priority', "must be 'low', 'medium' or 'high'")
  }
  // Browsers drop SameSite=None and Partitioned cookies that are not Secure: refuse what cannot work.
  if (secure === false && (sameSite === 'none' || partitioned === true)) {
    throw invalid(sameSite === 'none' ? 'cookie.sameSite' : 'cookie.partitioned',
      `${sameSite === 'none' ? "'none'" : 'true'} needs cookie.secure true or 'auto': browsers reject such cookies without Secure`)
  }
  return {
    path,
    domain: domain as string | undefined,
    httpOnly,
    secure,
    sameSite,
    partitioned: partitioned as boolean | undefined,
    priority: priority as CookieOptions['priority']
  }
}

/** `userId`, `maxSessionsPerUser`, `deviceInfo`: the per-user index, off unless `userId` is set. */
function resolveUserIndex (options: Record<string, unknown>): UserIndexOptions | undefined {
  const { userId, maxSessionsPerUser, deviceInfo } = options
  if (userId === undefined) {
    for (const name of ['maxSessionsPerUser', 'deviceInfo']) {
      if (options[name] !== undefined) throw invalid(name, 'needs the "userId" option (the session key that holds the user id, or (data) => id)')
    }
    return undefined
  }
  let resolve: UserIndexOptions['resolve']
  if (typeof userId === 'string' && userId.length > 0 && userId !== '__proto__') {
    resolve = (data) => Object.hasOwn(data, userId) ? data[userId] : undefined
  } else if (typeof userId === 'function') {
    resolve = userId as UserIndexOptions['resolve']
  } else {
    throw invalid('userId', `must be the name of the session key that holds the user id, or a function (data) => id | undefined, got ${describe(userId)}`)
  }
  let limit = 0
  let policy: UserIndexOptions['policy'] = 'drop-oldest'
  if (maxSessionsPerUser !== undefined) {
    const given = typeof maxSessionsPerUser === 'object' && maxSessionsPerUser !== null ? maxSessionsPerUser as Record<string, unknown> : { limit: maxSessionsPerUser }
    for (const name of Object.keys(given)) {
      if (name !== 'limit' && name !== 'policy') throw invalid(`maxSessionsPerUser.${name}`, 'unknown setting; known are limit, policy')
    }
    if (typeof given.limit !== 'number' || !Number.isSafeInteger(given.limit) || given.limit < 1) {
      throw invalid('maxSessionsPerUser', `must be a whole number above 0 or { limit, policy: 'drop-oldest' | 'refuse' }, got ${describe(maxSessionsPerUser)}`)
    }
    limit = given.limit
    if (given.policy !== undefined) {
      if (given.policy !== 'drop-oldest' && given.policy !== 'refuse') throw invalid('maxSessionsPerUser.policy', `must be 'drop-oldest' or 'refuse', got ${describe(given.policy)}`)
      policy = given.policy
    }
  }
  let userAgent = false
  let address = false
  if (deviceInfo === true) {
    userAgent = address = true
  } else if (typeof deviceInfo === 'object' && deviceInfo !== null && !Array.isArray(deviceInfo)) {
    for (const [name, value] of Object.entries(deviceInfo)) {
      if (name !== 'userAgent' && name !== 'address') throw invalid(`deviceInfo.${name}`, 'unknown setting; known are userAgent, address')
      if (typeof value !== 'boolean') throw invalid(`deviceInfo.${name}`, 'must be true or false')
    }
    userAgent = (deviceInfo as { userAgent?: boolean }).userAgent === true
    address = (deviceInfo as { address?: boolean }).address === true
  } else if (deviceInfo !== undefined && deviceInfo !== false) {
    throw invalid('deviceInfo', `must be true, false or { userAgent?, address? }, got ${describe(deviceInfo)}`)
  }
  return { resolve, limit, policy, userAgent, address }
}
