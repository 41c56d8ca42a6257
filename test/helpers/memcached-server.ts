// Real memcached processes for the tests, each on a free loopback port (no UDP). Every process
// is killed when the test process ends, even when a test fails before its own `after` hook ran.
import { spawn, type ChildProcess } from 'node:child_process'
import { accessSync, constants } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { delimiter, join } from 'node:path'
import { connect } from 'node:net'
import { once } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import { freePort } from './ports.js'

// Resolved once: a test may run with a PATH that lacks `ping` (and so everything else).
const MEMCACHED = findExecutable('memcached')

const live = new Set<ChildProcess>()
const killAll = (): void => {
  for (const child of live) child.kill('SIGKILL')
}
process.once('exit', killAll)
// Killed by a signal, the process skips 'exit' handlers; the servers would outlive it.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    killAll()
    process.kill(process.pid, signal)
  })
}

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
  let port = 0
  let child: ChildProcess | undefined
  // Another process may take the port between freePort() and the server's bind: try again.
  for (let attempt = 0; child === undefined; attempt++) {
    port = await freePort()
    child = await launch(port, attempt < 4)
  }
  let current: ChildProcess | undefined = child
  const halt = async (): Promise<void> => {
    if (current !== undefined) await kill(current)
    current = undefined
  }
  return {
    port,
    location: `127.0.0.1:${port}`,
    stop: halt,
    async restart () {
      await halt()
      current = await launch(port, false)
    },
    async freeze () {
      const child = current
      if (child === undefined) return
      child.kill('SIGSTOP')
      await waitStopped(child)
    },
    thaw () { current?.kill('SIGCONT') },
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
        if (/(^|\r\n)(END|EN|HD[^\r]*|ERROR|CLIENT_ERROR [^\r]*|SERVER_ERROR [^\r]*|VERSION [^\r]*)\r\n$/.test(reply)) {
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

async function stats (port: number): Promise<Record<string, string>> {
  const result: Record<string, string> = {}
  for (const line of (await rawCommand(port, 'stats')).split('\r\n')) {
    const match = /^STAT (\S+) (.*)$/.exec(line)
    if (match !== null) result[match[1]] = match[2]
  }
  return result
}

/**
 * Starts memcached on `port` and waits until it answers. Resolves undefined when the server
 * exited at once (port taken) and `mayFail` is set; otherwise that is an error.
 */
async function launch (port: number, mayFail: boolean): Promise<ChildProcess | undefined> {
  // memcached refuses to run as root unless told which user to run as.
  const asRoot = process.getuid?.() === 0 ? ['-u', 'root'] : []
  const child = spawn(MEMCACHED, ['-l', '127.0.0.1', '-p', String(port), '-U', '0', ...asRoot], {
    stdio: ['ignore', 'pipe', 'pipe']
  })
  live.add(child)
  let output = ''
  child.stdout?.on('data', (chunk: Buffer) => { output += chunk.toString() })
  child.stderr?.on('data', (chunk: Buffer) => { output += chunk.toString() })
  let exited = false
  child.once('exit', () => {
    exited = true
    live.delete(child)
  })
  child.once('error', (error) => {
    exited = true
    output += `${error.message} (is memcached installed? Debian: apt-get install memcached)`
  })
  try {
    const deadline = Date.now() + 20_000
    for (;;) {
      if (exited) throw new Error(`memcached on port ${port} exited:\n${output}`)
      const reply = await stats(port).catch(() => undefined)
      if (reply !== undefined) {
        // The answer may come from a server someone else started on that port in the meantime.
        if (reply.pid !== String(child.pid)) throw new Error(`port ${port} is answered by another memcached (pid ${reply.pid})`)
        break
      }
      if (Date.now() > deadline) throw new Error(`timed out waiting for memcached on port ${port}:\n${output}`)
      await sleep(50)
    }
  } catch (error) {
    await kill(child)
    if (mayFail) return undefined
    throw error
  }
  return child
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

async function kill (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = once(child, 'exit')
  child.kill('SIGKILL')
  await exited
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
