import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { connect, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'

import { freePort } from '../test/helpers/ports.js'
import type { BackendName } from './protocol.js'

export { freePort }

/**
 * One admin connection that sends a command and waits for its whole reply. Hand-rolled rather
 * than a client library so that the measuring side adds no client of its own to the picture and
 * works the same for Redis and memcached.
 */
class AdminConnection {
  readonly #socket: Socket
  #buffer = ''
  #pending: { done: (text: string) => number, resolve: (text: string) => void, reject: (err: Error) => void } | undefined

  private constructor (socket: Socket) {
    this.#socket = socket
    socket.setEncoding('utf8')
    socket.on('data', (chunk: string) => {
      this.#buffer += chunk
      this.#drain()
    })
    socket.on('error', (err) => this.#fail(err))
    socket.on('close', () => this.#fail(new Error('admin connection closed')))
  }

  static async open (port: number): Promise<AdminConnection> {
    const socket = connect({ host: '127.0.0.1', port })
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve)
      socket.once('error', reject)
    })
    return new AdminConnection(socket)
  }

  /** `done` returns the length of a complete reply at the start of the buffer, or -1. */
  async send (command: string, done: (text: string) => number, timeoutMs = 5000): Promise<string> {
    if (this.#pending !== undefined) throw new Error('admin connection is busy')
    const reply = new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending = undefined
        reject(new Error(`no reply to ${JSON.stringify(command.trim())} within ${timeoutMs} ms`))
      }, timeoutMs)
      this.#pending = {
        done,
        resolve: (text) => { clearTimeout(timer); resolve(text) },
        reject: (err) => { clearTimeout(timer); reject(err) }
      }
    })
    this.#socket.write(command)
    this.#drain()
    return await reply
  }

  close (): void {
    this.#pending = undefined
    this.#socket.destroy()
  }

  #drain (): void {
    const pending = this.#pending
    if (pending === undefined) return
    const end = pending.done(this.#buffer)
    if (end < 0) return
    const text = this.#buffer.slice(0, end)
    this.#buffer = this.#buffer.slice(end)
    this.#pending = undefined
    pending.resolve(text)
  }

  #fail (err: Error): void {
    const pending = this.#pending
    this.#pending = undefined
    pending?.reject(err)
  }
}

/** Length of one complete RESP2 reply of the kinds the admin side uses (simple, error, integer, bulk). */
function respReplyLength (text: string): number {
  const eol = text.indexOf('\r\n')
  if (eol < 0) return -1
  if (text[0] !== '$') return eol + 2
  const size = Number(text.slice(1, eol))
  if (size < 0) return eol + 2
  // Byte length, not string length: INFO is ASCII, so the two agree.
  const end = eol + 2 + size + 2
  return text.length >= end ? end : -1
}

function untilLine (terminator: string): (text: string) => number {
  return (text) => {
    const at = text.indexOf(terminator)
    return at < 0 ? -1 : at + terminator.length
  }
}

/** A backend the benchmark owns: started on loopback, stopped by `stop()` (idempotent). */
export interface Backend {
  readonly name: BackendName
  /** Loopback port of a server; 0 for the filesystem. */
  readonly port: number
  /** The server process, whose CPU is the benchmark's own; undefined for the filesystem. */
  readonly pid: number | undefined
  /** The folder of the filesystem store; undefined for servers. */
  readonly directory?: string
  /** Counters by command since the server started; only the deltas mean anything. */
  commandStats (): Promise<Record<string, number>>
  /** Empty the keyspace, so each variant starts from the same state. */
  flush (): Promise<void>
  stop (): Promise<void>
}

/** Stop a child process: a polite signal first, then SIGKILL after a bounded wait. */
async function stopProcess (child: ChildProcess, waitMs = 3000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  child.kill('SIGTERM')
  const timer = sleep(waitMs).then(() => 'timeout' as const)
  if (await Promise.race([exited.then(() => 'exited' as const), timer]) === 'timeout') {
    child.kill('SIGKILL')
    await exited
  }
}

/** Retries `attempt` every 100 ms, at most `tries` times: a server takes a moment to listen. */
async function retry<T> (attempt: () => Promise<T>, tries: number, what: string): Promise<T> {
  let last: unknown
  for (let i = 0; i < tries; i++) {
    try {
      return await attempt()
    } catch (err) {
      last = err
      await sleep(100)
    }
  }
  throw new Error(`${what} did not come up: ${String(last)}`)
}

function spawnServer (command: string, args: string[], name: string): ChildProcess {
  const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr?.setEncoding('utf8')
  child.stderr?.on('data', (chunk: string) => { stderr = (stderr + chunk).slice(-2000) })
  child.on('error', (err) => {
    process.stderr.write(`${name}: ${err.message} (is ${command} installed and on PATH?)\n`)
  })
  child.on('exit', (code, signal) => {
    if (code !== 0 && code !== null && signal === null) process.stderr.write(`${name} exited with ${code}: ${stderr}\n`)
  })
  return child
}

export async function startRedis (): Promise<Backend> {
  const port = await freePort()
  // Redis writes nothing with --save '' and --appendonly no, but still wants a working directory.
  const dir = mkdtempSync(join(tmpdir(), 'quart-bench-redis-'))
  const child = spawnServer('redis-server', [
    '--port', String(port), '--bind', '127.0.0.1', '--protected-mode', 'yes',
    '--save', '', '--appendonly', 'no', '--dir', dir, '--loglevel', 'warning', '--daemonize', 'no'
  ], 'redis-server')
  let admin: AdminConnection | undefined
  let stopped = false
  const stop = async (): Promise<void> => {
    if (stopped) return
    stopped = true
    admin?.close()
    await stopProcess(child)
    rmSync(dir, { recursive: true, force: true })
  }
  try {
    admin = await retry(async () => {
      if (child.exitCode !== null) throw new Error('redis-server exited')
      const connection = await AdminConnection.open(port)
      const pong = await connection.send('PING\r\n', respReplyLength)
      if (!pong.startsWith('+PONG')) { connection.close(); throw new Error(pong) }
      return connection
    }, 50, 'redis-server')
  } catch (err) {
    await stop()
    throw err
  }
  const connection = admin
  return {
    name: 'redis',
    port,
    pid: child.pid,
    async commandStats () {
      const text = await connection.send('INFO commandstats\r\n', respReplyLength)
      const stats: Record<string, number> = {}
      for (const match of text.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) stats[match[1]] = Number(match[2])
      // The admin side's own INFO calls are not the server variant's doing.
      delete stats.info
      return stats
    },
    async flush () {
      const reply = await connection.send('FLUSHALL\r\n', respReplyLength)
      if (!reply.startsWith('+OK')) throw new Error(`FLUSHALL: ${reply}`)
    },
    stop
  }
}

/**
 * The memcached counters that are commands a client sent; the rest of `stats` is state.
 * `cmd_get` counts `get` and `gets`; `cmd_set` counts `set`, `add`, `replace` and `cas`.
 */
const MEMCACHED_COMMANDS = ['cmd_get', 'cmd_set', 'cmd_touch', 'delete_hits', 'delete_misses', 'incr_misses', 'incr_hits', 'decr_misses', 'decr_hits', 'cas_misses', 'cas_hits', 'cas_badval']

export async function startMemcached (): Promise<Backend> {
  const port = await freePort()
  // -U 0: no UDP listener; -u root only matters when the benchmark runs as root (memcached refuses otherwise).
  const args = ['-l', '127.0.0.1', '-p', String(port), '-U', '0', '-m', '256', '-t', '2']
  if (process.getuid?.() === 0) args.push('-u', 'root')
  const child = spawnServer('memcached', args, 'memcached')
  let admin: AdminConnection | undefined
  let stopped = false
  const stop = async (): Promise<void> => {
    if (stopped) return
    stopped = true
    admin?.close()
    await stopProcess(child)
  }
  try {
    admin = await retry(async () => {
      if (child.exitCode !== null) throw new Error('memcached exited')
      const connection = await AdminConnection.open(port)
      const version = await connection.send('version\r\n', untilLine('\r\n'))
      if (!version.startsWith('VERSION')) { connection.close(); throw new Error(version) }
      return connection
    }, 50, 'memcached')
  } catch (err) {
    await stop()
    throw err
  }
  const connection = admin
  return {
    name: 'memcached',
    port,
    pid: child.pid,
    async commandStats () {
      const text = await connection.send('stats\r\n', untilLine('END\r\n'))
      const all: Record<string, number> = {}
      for (const match of text.matchAll(/^STAT (\S+) (\S+)\r$/gm)) all[match[1]] = Number(match[2])
      const stats: Record<string, number> = {}
      for (const name of MEMCACHED_COMMANDS) stats[name] = all[name] ?? 0
      // memcached counts every storage command in cmd_set, cas included: a cas is counted once, as cas.
      stats.cmd_set -= stats.cas_hits + stats.cas_misses + stats.cas_badval
      return stats
    },
    async flush () {
      const reply = await connection.send('flush_all\r\n', untilLine('\r\n'))
      if (!reply.startsWith('OK')) throw new Error(`flush_all: ${reply}`)
    },
    stop
  }
}

/** Per-command differences between two `commandStats()` snapshots, zeros left out. */
export function statsDelta (before: Record<string, number>, after: Record<string, number>): Record<string, number> {
  const delta: Record<string, number> = {}
  for (const [name, value] of Object.entries(after)) {
    const d = value - (before[name] ?? 0)
    if (d !== 0) delta[name] = d
  }
  return delta
}

/**
 * A temporary folder for the filesystem store, emptied between routes and removed at the end.
 * It has no command counters: the report leaves its command column empty, as for memory.
 */
export function startFilesystem (): Backend {
  const directory = mkdtempSync(join(tmpdir(), 'quart-bench-fs-'))
  let stopped = false
  return {
    name: 'filesystem',
    port: 0,
    pid: undefined,
    directory,
    async commandStats () { return {} },
    async flush () {
      // Only the files: the store's folder (and its mode) stays; the store finds records by name.
      for (const name of readdirSync(directory)) rmSync(join(directory, name), { recursive: true, force: true })
    },
    async stop () {
      if (stopped) return
      stopped = true
      rmSync(directory, { recursive: true, force: true })
    }
  }
}
