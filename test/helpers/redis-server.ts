// Real redis-server processes for the tests: a single server on a free loopback port, and a
// 3-master Redis Cluster. Nothing is persisted; every process is killed when the test process
// ends, even when a test fails before its own `after` hook could stop it.
import { spawn, execFile, type ChildProcess } from 'node:child_process'
import { mkdtemp, mkdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createServer } from 'node:net'
import { promisify } from 'node:util'
import { setTimeout as sleep } from 'node:timers/promises'
import { once } from 'node:events'
import { freePort } from './ports.js'

const run = promisify(execFile)

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

export interface RedisServer {
  port: number
  url: string
  /** Stops the server; its data is gone (nothing is persisted). Safe to call twice. */
  stop (): Promise<void>
  /** Stops the server if it runs, then starts an empty one on the same port (also after stop). */
  restart (): Promise<void>
  /** Suspends the process (SIGSTOP): connections stay open but nothing answers, as on a hung host. */
  freeze (): void
  /** Resumes a frozen server (SIGCONT). */
  thaw (): void
}

export interface RedisClusterServers {
  ports: number[]
  /** `redis://127.0.0.1:<port>` of each master, for `createCluster({ rootNodes })`. */
  urls: string[]
  stop (): Promise<void>
}

/** Runs `redis-cli` against one server and returns its trimmed output. */
export async function redisCli (port: number, ...args: string[]): Promise<string> {
  const { stdout } = await run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args], { timeout: 10_000 })
  return stdout.trim()
}

export async function startRedis (): Promise<RedisServer> {
  const dir = await mkdtemp(join(tmpdir(), 'quart-session-redis-'))
  let port = 0
  let child: ChildProcess | undefined
  // Another process may take the port between freePort() and the server's bind: try again.
  for (let attempt = 0; child === undefined; attempt++) {
    port = await freePort()
    child = await launch(port, dir, [], attempt < 4)
  }
  let current: ChildProcess | undefined = child
  const halt = async (): Promise<void> => {
    if (current !== undefined) await kill(current)
    current = undefined
  }
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    async stop () {
      await halt()
      await rm(dir, { recursive: true, force: true })
    },
    async restart () {
      await halt()
      await mkdir(dir, { recursive: true })
      current = await launch(port, dir, [], false)
    },
    freeze () { current?.kill('SIGSTOP') },
    thaw () { current?.kill('SIGCONT') }
  }
}

export async function startRedisCluster (): Promise<RedisClusterServers> {
  const dir = await mkdtemp(join(tmpdir(), 'quart-session-cluster-'))
  const children: ChildProcess[] = []
  const ports: number[] = []
  const stop = async (): Promise<void> => {
    await Promise.all(children.map(kill))
    await rm(dir, { recursive: true, force: true })
  }
  try {
    while (ports.length < 3) {
      const port = await freeClusterPort()
      const nodeDir = join(dir, String(port))
      await mkdir(nodeDir)
      const child = await launch(port, nodeDir, [
        '--cluster-enabled', 'yes',
        '--cluster-config-file', 'nodes.conf',
        '--cluster-node-timeout', '5000'
      ], true)
      if (child === undefined) continue
      children.push(child)
      ports.push(port)
    }
    await run('redis-cli', [
      '--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`),
      '--cluster-replicas', '0', '--cluster-yes'
    ], { timeout: 30_000 })
    for (const port of ports) {
      await waitFor(async () => (await redisCli(port, 'cluster', 'info')).includes('cluster_state:ok'), `cluster state ok on ${port}`)
    }
  } catch (error) {
    await stop()
    throw error
  }
  return { ports, urls: ports.map((p) => `redis://127.0.0.1:${p}`), stop }
}

/**
 * Starts redis-server on `port` and waits until it answers PING. Resolves undefined when the
 * server exited at once (port taken) and `mayFail` is set; otherwise that is an error.
 */
async function launch (port: number, dir: string, extra: string[], mayFail: boolean): Promise<ChildProcess | undefined> {
  const child = spawn('redis-server', [
    '--port', String(port),
    '--bind', '127.0.0.1',
    '--dir', dir,
    '--save', '',
    '--appendonly', 'no',
    ...extra
  ], { stdio: ['ignore', 'pipe', 'pipe'] })
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
    output += `${error.message} (is redis-server installed?)`
  })
  try {
    await waitFor(async () => {
      if (exited) throw new Error(`redis-server on port ${port} exited:\n${output}`)
      return (await redisCli(port, 'ping').catch(() => '')) === 'PONG'
    }, `redis-server on port ${port}`)
    // The PONG may come from a server someone else started on that port in the meantime.
    if (!(await redisCli(port, 'info', 'server')).includes(`process_id:${child.pid}`)) {
      throw new Error(`port ${port} is answered by another redis-server`)
    }
  } catch (error) {
    await kill(child)
    if (mayFail) return undefined
    throw error
  }
  return child
}

async function kill (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = once(child, 'exit')
  child.kill('SIGKILL')
  await exited
}

async function waitFor (check: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 20_000
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(50)
  }
}

// The cluster bus listens on port + 10000, which must be free too.
async function freeClusterPort (): Promise<number> {
  for (;;) {
    const port = await freePort()
    if (port <= 55535 && await isFree(port + 10000)) return port
  }
}

async function isFree (port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const server = createServer()
    server.unref()
    server.once('error', () => resolve(false))
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)))
  })
}

/** Clears the server's per-command statistics (`CONFIG RESETSTAT`). */
export async function resetCommandStats (port: number): Promise<void> {
  await redisCli(port, 'config', 'resetstat')
}

/**
 * Calls per command since the last reset (`INFO commandstats`), lower-case names such as `get`.
 * The reset itself is left out; the INFO that reads the counts is not in them yet.
 */
export async function commandCounts (port: number): Promise<Record<string, number>> {
  const counts: Record<string, number> = {}
  for (const line of (await redisCli(port, 'info', 'commandstats')).split('\n')) {
    const match = /^cmdstat_([^:]+):calls=(\d+)/.exec(line.trim())
    if (match === null || match[1] === 'config|resetstat') continue
    counts[match[1]] = Number(match[2])
  }
  return counts
}
