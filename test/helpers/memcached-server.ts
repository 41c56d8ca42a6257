// Real memcached processes for the tests, each on a free loopback port (no UDP). Every process
// is killed when the test process ends, even when a test fails before its own `after` hook ran.
import type { ChildProcess } from 'node:child_process'
import { accessSync, constants } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { delimiter, join } from 'node:path'
import { connect } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import type Memcached from 'memcached'
import { launch, startOnFreePort } from './processes.js'

// Resolved once: a test may run with a PATH that lacks `ping` (and so everything else).
const MEMCACHED = findExecutable('memcached')

export interface MemcachedServer {
  port: number
  /** `127.0.0.1:<port>`, for the `servers` option. */
  location: string
  /** Stops the server; its items are gone. Safe to call twice. */
  stop (): Promise<void>
  /** Stops the server if it runs, then starts an empty one on the same port (also after stop). */
  restart (): Promise<void>
  /**
   * Suspends the process (SIGSTOP): connections stay open but nothing answers, as on a hung host.
   * Resolves once the process is stopped (signal delivery to its threads is not instant).
   */
  freeze (): Promise<void>
  /** Resumes a frozen server (SIGCONT). */
  thaw (): void
  /** The server's `stats` (cmd_get, cmd_set, cmd_touch, delete_hits, curr_items…), read over a socket of its own. */
  stats (): Promise<Record<string, string>>
}

export async function startMemcached (): Promise<MemcachedServer> {
  const server = await startOnFreePort(launchMemcached)
  const { port } = server
  return {
    port,
    location: `127.0.0.1:${port}`,
    stop: server.stop,
    restart: server.restart,
    async freeze () {
      const child = server.child
      if (child === undefined) return
      child.kill('SIGSTOP')
      await waitStopped(child)
    },
    thaw () { server.child?.kill('SIGCONT') },
    async stats () { return await stats(port) }
  }
}

/**
 * Sends one text-protocol command on a fresh connection and returns the reply up to `END`
 * (or the first line for other replies). Not the package under test: a plain socket.
 */
export async function rawCommand (port: number, command: string): Promise<string> {
  const socket = connect(port, '127.0.0.1')
  socket.setEncoding('utf8')
  try {
    return await new Promise<string>((resolve, reject) => {
      let reply = ''
      const timer = setTimeout(() => reject(new Error(`no reply to "${command}" from port ${port}`)), 5000)
      socket.on('error', (error) => { clearTimeout(timer); reject(error) })
      socket.on('data', (chunk: string) => {
        reply += chunk
        if (/(^|\r\n)(END|EN|STORED|HD[^\r]*|ERROR|CLIENT_ERROR [^\r]*|SERVER_ERROR [^\r]*|VERSION [^\r]*)\r\n$/.test(reply)) {
          clearTimeout(timer)
          resolve(reply)
        }
      })
      socket.write(`${command}\r\n`)
    })
  } finally {
    socket.destroy()
  }
}

/**
 * Stores `value` under `key` with the given item flags, as another client would (the `memcached`
 * package decodes flags 2 as JSON, 4 as binary, 8 as a number). Rejects unless the server says STORED.
 */
export async function rawSet (port: number, key: string, flags: number, value: string, ttl = 600): Promise<void> {
  const reply = await rawCommand(port, `set ${key} ${flags} ${ttl} ${Buffer.byteLength(value)}\r\n${value}`)
  if (reply !== 'STORED\r\n') throw new Error(`unexpected reply to set: ${JSON.stringify(reply)}`)
}

/**
 * Seconds `key` has left on the server (meta get `mg <key> t`): -1 for no expiry, undefined when
 * the key is missing or expired.
 */
export async function remainingTtl (port: number, key: string): Promise<number | undefined> {
  const reply = await rawCommand(port, `mg ${key} t`)
  const match = /^HD t(-?\d+)\r\n$/.exec(reply)
  if (match !== null) return Number(match[1])
  if (reply === 'EN\r\n') return undefined
  throw new Error(`unexpected reply to mg: ${JSON.stringify(reply)}`)
}

/** Reads `key` with a memcached client of its own, as another program would. */
export async function readWith (client: Memcached, key: string): Promise<unknown> {
  return await new Promise((resolve, reject) => {
    client.get(key, (error, data) => { if (error !== undefined && error !== null) reject(error); else resolve(data) })
  })
}

const COUNTERS = ['cmd_get', 'cmd_set', 'cmd_touch', 'delete_hits', 'delete_misses']
/** The counters above plus the outcomes of `cas` (a `cas` also counts as a `cmd_set`). */
export const CAS_COUNTERS = [...COUNTERS, 'cas_hits', 'cas_badval', 'cas_misses']

/** How much each command counter of `server` grew while `action` ran. */
export async function counting (server: MemcachedServer, action: () => Promise<unknown>, counters = COUNTERS): Promise<Record<string, number>> {
  const before = await server.stats()
  await action()
  const after = await server.stats()
  const grown: Record<string, number> = {}
  for (const name of counters) {
    const n = Number(after[name]) - Number(before[name])
    if (n !== 0) grown[name] = n
  }
  return grown
}

async function stats (port: number): Promise<Record<string, string>> {
  const result: Record<string, string> = {}
  for (const line of (await rawCommand(port, 'stats')).split('\r\n')) {
    const match = /^STAT (\S+) (.*)$/.exec(line)
    if (match !== null) result[match[1]] = match[2]
  }
  return result
}

async function launchMemcached (port: number, mayFail: boolean): Promise<ChildProcess | undefined> {
  // memcached refuses to run as root unless told which user to run as.
  const asRoot = process.getuid?.() === 0 ? ['-u', 'root'] : []
  return await launch(port, {
    name: 'memcached',
    command: MEMCACHED,
    args: ['-l', '127.0.0.1', '-p', String(port), '-U', '0', ...asRoot],
    installHint: 'is memcached installed? Debian: apt-get install memcached',
    async answers (port, child) {
      const reply = await stats(port).catch(() => undefined)
      if (reply === undefined) return false
      // The answer may come from a server someone else started on that port in the meantime.
      if (reply.pid !== String(child.pid)) throw new Error(`port ${port} is answered by another memcached (pid ${reply.pid})`)
      return true
    }
  }, mayFail)
}

async function waitStopped (child: ChildProcess): Promise<void> {
  const deadline = Date.now() + 5000
  for (;;) {
    // Field 3 of /proc/<pid>/stat is the state; T = stopped. (The comm field has no spaces here.)
    const state = (await readFile(`/proc/${child.pid}/stat`, 'utf8').catch(() => '')).split(' ')[2]
    if (state === undefined || state === 'T') return
    if (Date.now() > deadline) throw new Error(`memcached ${child.pid} did not stop (state ${state})`)
    await sleep(10)
  }
}

function findExecutable (name: string): string {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue
    const path = join(dir, name)
    try {
      accessSync(path, constants.X_OK)
      return path
    } catch {}
  }
  // Not found: spawn reports ENOENT with the hint above.
  return name
}
