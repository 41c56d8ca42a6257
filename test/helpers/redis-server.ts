// Real redis-server processes for the tests: a single server on a free loopback port, and a
// 3-master Redis Cluster. Nothing is persisted; every process is killed when the test process
// ends, even when a test fails before its own `after` hook could stop it.
import { execFile, type ChildProcess } from 'node:child_process'
import { mkdtemp, mkdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createServer } from 'node:net'
import { promisify } from 'node:util'
import { freePort } from './ports.js'
import { launch, startOnFreePort, kill, waitFor } from './processes.js'

const run = promisify(execFile)

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
  const server = await startOnFreePort(async (port, mayFail) => {
    // stop() removes it; a restart makes it again.
    await mkdir(dir, { recursive: true })
    return await launchRedis(port, dir, [], mayFail)
  })
  return {
    port: server.port,
    url: `redis://127.0.0.1:${server.port}`,
    async stop () {
      await server.stop()
      await rm(dir, { recursive: true, force: true })
    },
    restart: server.restart,
    freeze () { server.child?.kill('SIGSTOP') },
    thaw () { server.child?.kill('SIGCONT') }
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
      const child = await launchRedis(port, nodeDir, [
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

export async function launchRedis (port: number, dir: string, extra: string[], mayFail: boolean): Promise<ChildProcess | undefined> {
  return await launch(port, {
    name: 'redis-server',
    command: 'redis-server',
    args: [
      '--port', String(port),
      '--bind', '127.0.0.1',
      '--dir', dir,
      '--save', '',
      '--appendonly', 'no',
      ...extra
    ],
    installHint: 'is redis-server installed?',
    async answers (port, child) {
      if ((await redisCli(port, 'ping').catch(() => '')) !== 'PONG') return false
      // The PONG may come from a server someone else started on that port in the meantime.
      if (!(await redisCli(port, 'info', 'server')).includes(`process_id:${child.pid}`)) {
        throw new Error(`port ${port} is answered by another redis-server`)
      }
      return true
    }
  }, mayFail)
}

// The cluster bus listens on port + 10000, which must be free too.
export async function freeClusterPort (): Promise<number> {
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
