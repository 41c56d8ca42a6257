// What the store changes in the `memcached` package's clients, in one place: the package spawns
// the system `ping` with no error listener, and decodes an item by its flags inside a socket
// 'data' listener (an item with flags 2 that is not JSON throws there: an uncaught exception).
import { connect } from 'node:net'

interface IssueLog {
  tokens: string[]
  config: object
  messages: string[]
  failed: boolean
  isScheduledToReconnect: boolean
  reconnect: number
  totalReconnectsAttempted: number
  totalReconnectsSuccess: number
  details: unknown
  attemptReconnect: () => void
  emit (event: string, details: unknown): boolean
}

/** A connection as the package keeps it: the reply lines not parsed yet. */
interface ReplyStream {
  bufferArray: string[]
}

const withoutPingDone = new WeakSet<object>()
const textDone = new WeakSet<object>()

/**
 * The package checks a server it gave up on by spawning the system `ping` (lib/connection.js,
 * IssueLog#attemptReconnect) with no 'error' listener: where `ping` is not installed, that is an
 * uncaught exception that ends the process. Each issue log this client creates (it keeps them in
 * `client.issues`) gets a check that spawns nothing: a TCP connect to the memcached port, which
 * also says more than an ICMP echo. Clients the store creates never reach that path (see
 * `failures`); this covers clients the user passes in.
 */
export function withoutPing (client: object, timeoutMs: number): void {
  const holder = client as { issues?: unknown }
  const issues = holder.issues
  if (typeof issues !== 'object' || issues === null || withoutPingDone.has(client)) return
  const attemptReconnect = reconnectByConnecting(timeoutMs)
  const patch = (log: unknown): void => {
    if (isIssueLog(log)) log.attemptReconnect = attemptReconnect
  }
  Object.values(issues).forEach(patch)
  holder.issues = new Proxy(issues, {
    // The log must be patched before its first use: `log()` binds attemptReconnect right away.
    set (target, key, value, receiver) {
      patch(value)
      return Reflect.set(target, key, value, receiver)
    }
  })
  withoutPingDone.add(client)
}

/**
 * Items are read as the text memcached holds, whatever their flags. The package decodes flags 2
 * as JSON, 4 as a Buffer and 8 as a number; the store only ever writes flags 0, so anything else
 * under its keys is a foreign item, which the core must see as the text it is (not a record: a
 * fresh session) rather than as a value of another type (an error on every request). The flags
 * of each `VALUE` line are set to 0 before the package's parser reads it.
 *
 * `all: false` is for a client the user passes in, who may store JSON with it elsewhere: it keeps
 * the package's decoding and only takes the flags off an item with flags 2 that is not JSON
 * (which would throw inside the socket listener and end the process).
 */
export function withTextValues (client: object, all: boolean): void {
  const holder = client as { rawDataReceived?: unknown }
  const parse = holder.rawDataReceived
  if (typeof parse !== 'function' || textDone.has(client)) return
  holder.rawDataReceived = function rawDataReceived (this: unknown, stream: ReplyStream, ...rest: unknown[]): unknown {
    if (Array.isArray(stream?.bufferArray)) plainFlags(stream.bufferArray, all)
    return Reflect.apply(parse, this, [stream, ...rest])
  }
  textDone.add(client)
}

// `VALUE <key> <flags> <bytes> [<cas>]`; the line after it is the item's data.
const VALUE_LINE = /^VALUE (\S+) (\d+) (\d+)((?: \d+)?)$/

function plainFlags (lines: string[], all: boolean): void {
  // Lines alternate as the parser reads them: a reply line, and after a VALUE line its data, which
  // is skipped so that a value that looks like a VALUE line is never taken for one.
  for (let i = 0; i < lines.length; i++) {
    const match = VALUE_LINE.exec(lines[i])
    if (match === null) continue
    const [, key, flags, bytes, cas] = match
    // Without `all`, wait for the data line (the parser waits for END, so it sees the line again).
    if (flags !== '0' && (all || (flags === '2' && i + 1 < lines.length && !isJson(bytes === '0' ? '' : lines[i + 1])))) {
      lines[i] = `VALUE ${key} 0 ${bytes}${cas}`
    }
    i++
  }
}

function isJson (data: string): boolean {
  try {
    // As the package unescapes it before JSON.parse.
    JSON.parse(data.replace(/\\(\r|\n)/g, '$1'))
    return true
  } catch {
    return false
  }
}

function isIssueLog (value: unknown): value is IssueLog {
  if (typeof value !== 'object' || value === null) return false
  const log = value as Partial<IssueLog>
  return typeof log.attemptReconnect === 'function' && Array.isArray(log.tokens) && Array.isArray(log.messages)
}

function reconnectByConnecting (timeoutMs: number): () => void {
  return function attemptReconnect (this: IssueLog): void {
    this.totalReconnectsAttempted++
    this.emit('reconnecting', this.details)
    // tokens: [port, host], or [socket path]
    const [port, host] = this.tokens
    const socket = host === undefined ? connect(port) : connect(Number(port), host)
    socket.setTimeout(timeoutMs)
    const finish = (error?: Error): void => {
      socket.removeAllListeners()
      socket.on('error', () => {})
      socket.destroy()
      if (error !== undefined) {
        this.messages.push(error.message)
        // Unref'd: the client of a closed app may still be checking a server that is down.
        setTimeout(() => this.attemptReconnect(), this.reconnect).unref()
        return
      }
      // What lib/connection.js does after a successful ping.
      this.emit('reconnected', this.details)
      this.totalReconnectsSuccess++
      this.messages.length = 0
      this.failed = false
      this.isScheduledToReconnect = false
      Object.assign(this, JSON.parse(JSON.stringify(this.config)))
    }
    socket.once('connect', () => finish())
    socket.once('error', finish)
    socket.once('timeout', () => finish(new Error(`no connection within ${timeoutMs} ms`)))
  }
}
