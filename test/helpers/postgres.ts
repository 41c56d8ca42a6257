// A real PostgreSQL server for the tests: a fresh cluster (initdb) in a temp dir, started on a free
// loopback port with durability off (a test database needs speed, not crash safety), stopped by
// PID and removed afterwards, and also when the test process ends before its `after` hook ran.
//
// initdb and postgres refuse to run as root: as root, both run as the `postgres` system user
// (Debian's package creates it); as any other user, as that user.
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, readdirSync, rmSync } from 'node:fs'
import { chown, mkdtemp, mkdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import pg from 'pg'
import { freePort } from './ports.js'
import { waitFor } from './processes.js'

const run = promisify(execFile)

export interface PostgresServer {
  port: number
  /** `postgres://postgres@127.0.0.1:<port>/postgres` (trust authentication on loopback). */
  url: string
  /** Stops the server (fast shutdown, then SIGKILL) and removes its data directory. Safe to call twice. */
  stop (): Promise<void>
}

interface Running { child: ChildProcess, dir: string }

const live = new Set<Running>()
// SIGQUIT is PostgreSQL's immediate shutdown: the postmaster takes its backends down with it
// (SIGKILL would leave them to notice on their own). Only synchronous work is possible here.
const stopAll = (): void => {
  for (const { child, dir } of live) {
    child.kill('SIGQUIT')
    rmSync(dir, { recursive: true, force: true })
  }
}
process.once('exit', stopAll)
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    stopAll()
    process.kill(process.pid, signal)
  })
}

/** The newest Debian PostgreSQL install: /usr/lib/postgresql/<version>/bin. */
export function postgresBin (): string {
  const root = '/usr/lib/postgresql'
  const versions = existsSync(root)
    ? readdirSync(root).filter((v) => existsSync(join(root, v, 'bin', 'postgres'))).sort((a, b) => Number(b) - Number(a))
    : []
  if (versions.length === 0) {
    throw new Error(`no PostgreSQL under ${root}/<version>/bin: install Debian's "postgresql" package`)
  }
  return join(root, versions[0], 'bin')
}

/** uid/gid to run PostgreSQL as: the `postgres` user when we are root, else ourselves. */
async function runAs (): Promise<{ uid: number, gid: number } | undefined> {
  if (process.getuid?.() !== 0) return undefined
  try {
    const uid = Number((await run('id', ['-u', 'postgres'])).stdout.trim())
    const gid = Number((await run('id', ['-g', 'postgres'])).stdout.trim())
    return { uid, gid }
  } catch {
    throw new Error('running as root, and there is no "postgres" user to run PostgreSQL as (install Debian\'s "postgresql" package)')
  }
}

export async function startPostgres (): Promise<PostgresServer> {
  const bin = postgresBin()
  const user = await runAs()
  const dir = await mkdtemp(join(tmpdir(), 'quart-session-pg-'))
  const data = join(dir, 'data')
  const sockets = join(dir, 'sockets')
  try {
    await mkdir(sockets)
    if (user !== undefined) {
      await chown(dir, user.uid, user.gid)
      await chown(sockets, user.uid, user.gid)
    }
    await run(join(bin, 'initdb'), [
      '-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--no-locale', '--no-sync', '--no-instructions'
    ], { ...user, cwd: dir, timeout: 60_000 })
    // Another process may take the port between freePort() and the bind: try another one.
    for (let attempt = 0; ; attempt++) {
      const port = await freePort()
      const running = await launchPostgres(join(bin, 'postgres'), data, sockets, port, dir, user, attempt < 4)
      if (running !== undefined) return served(running, port)
    }
  } catch (error) {
    await rm(dir, { recursive: true, force: true })
    throw error
  }
}

function served (entry: Running, port: number): PostgresServer {
  return {
    port,
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    async stop () {
      await shutdown(entry.child)
      live.delete(entry)
      await rm(entry.dir, { recursive: true, force: true })
    }
  }
}

async function launchPostgres (
  postgres: string, data: string, sockets: string, port: number, dir: string,
  user: { uid: number, gid: number } | undefined, mayFail: boolean
): Promise<Running | undefined> {
  const child = spawn(postgres, [
    '-D', data,
    '-p', String(port),
    '-h', '127.0.0.1',
    '-k', sockets,
    '-c', 'fsync=off',
    '-c', 'synchronous_commit=off',
    '-c', 'full_page_writes=off',
    '-c', 'shared_buffers=16MB',
    '-c', 'max_connections=30',
    '-c', 'autovacuum=off',
    '-c', 'log_min_messages=warning'
  ], { ...user, cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] })
  const entry: Running = { child, dir }
  live.add(entry)
  let output = ''
  child.stdout?.on('data', (chunk: Buffer) => { output += chunk.toString() })
  child.stderr?.on('data', (chunk: Buffer) => { output += chunk.toString() })
  let exited = false
  child.once('exit', () => { exited = true })
  child.once('error', (error) => {
    exited = true
    output += error.message
  })
  try {
    await waitFor(async () => {
      if (exited) throw new Error(`postgres on port ${port} exited:\n${output}`)
      return await answers(port, data)
    }, () => `postgres on port ${port}:\n${output}`)
  } catch (error) {
    await shutdown(child)
    live.delete(entry)
    if (mayFail) return undefined
    throw error
  }
  return entry
}

/** True once our server answers on `port`; an error if another server does. */
async function answers (port: number, data: string): Promise<boolean> {
  const client = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres', connectionTimeoutMillis: 2000 })
  client.on('error', () => {})
  try {
    await client.connect()
  } catch {
    return false
  }
  try {
    const { rows } = await client.query<{ data_directory: string }>('SHOW data_directory')
    if (rows[0]?.data_directory !== data) throw new Error(`port ${port} is answered by another PostgreSQL (${rows[0]?.data_directory})`)
    return true
  } finally {
    await client.end().catch(() => {})
  }
}

/** Fast shutdown (SIGINT: disconnect clients, checkpoint, exit); SIGKILL if that hangs. */
async function shutdown (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = once(child, 'exit')
  child.kill('SIGINT')
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
  await exited
  clearTimeout(timer)
}
