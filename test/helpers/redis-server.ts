// Real redis-server processes for the tests: a single server on a free loopback port, and a
// 3-master Redis Cluster. Nothing is persisted; every process is killed when the test process
// ends, even when a test fails before its own `after` hook could stop it.
import { execFile, type ChildProcess } from 'node:child_process'
import { mkdtemp, mkdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createServer } from 'node:net'
import { promisify } from 'node:util'
import { before, after } from 'node:test'
import { createClient, type RedisClientType } from 'redis'
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
  /** The masters as created (with `replicas`, their replicas are in `replicaPorts`). */
  ports: number[]
  /** `redis://127.0.0.1:<port>` of each master, for `createCluster({ rootNodes })`. */
  urls: string[]
  /** Port of each master's replica, keyed by the master's port (empty without `replicas`). */
  replicaPorts: Map<number, number>
  /** SIGKILL one node: no shutdown, as when its host dies. */
  kill (port: number): Promise<void>
  stop (): Promise<void>
}

export interface ClusterOptions {
  /** One replica per master when true. Default false. */
  replicas?: boolean
  /** `cluster-node-timeout`: how long a silent node takes to be declared failed. Default 5000. */
  nodeTimeoutMs?: number
}

/** Runs `redis-cli` against one server and returns its trimmed output. */
export async function redisCli (port: number, ...args: string[]): Promise<string> {
  const { stdout } = await run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args], { timeout: 10_000 })
  return stdout.trim()
}

/**
 * `args`: more redis-server arguments, e.g. `['--enable-debug-command', 'local']` for a test that
 * switches active expiry off (`DEBUG SET-ACTIVE-EXPIRE 0`).
 */
export async function startRedis (args: string[] = []): Promise<RedisServer> {
  const dir = await mkdtemp(join(tmpdir(), 'quart-session-redis-'))
  const server = await startOnFreePort(async (port, mayFail) => {
    // stop() removes it; a restart makes it again.
    await mkdir(dir, { recursive: true })
    return await launchRedis(port, dir, args, mayFail)
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

export async function startRedisCluster (options: ClusterOptions = {}): Promise<RedisClusterServers> {
  const dir = await mkdtemp(join(tmpdir(), 'quart-session-cluster-'))
  const nodeCount = options.replicas === true ? 6 : 3
  const children: ChildProcess[] = []
  const ports: number[] = []
  const stop = async (): Promise<void> => {
    await Promise.all(children.map(kill))
    await rm(dir, { recursive: true, force: true })
  }
  const replicaPorts = new Map<number, number>()
  let masters: number[] = ports
  try {
    while (ports.length < nodeCount) {
      const port = await freeClusterPort()
      const nodeDir = join(dir, String(port))
      await mkdir(nodeDir)
      const child = await launchRedis(port, nodeDir, [
        '--cluster-enabled', 'yes',
        '--cluster-config-file', 'nodes.conf',
        '--cluster-node-timeout', String(options.nodeTimeoutMs ?? 5000)
      ], true)
      if (child === undefined) continue
      children.push(child)
      ports.push(port)
    }
    await run('redis-cli', [
      '--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`),
      '--cluster-replicas', options.replicas === true ? '1' : '0', '--cluster-yes'
    ], { timeout: 30_000 })
    for (const port of ports) {
      await waitFor(async () => (await redisCli(port, 'cluster', 'info')).includes('cluster_state:ok'), `cluster state ok on ${port}`)
    }
    if (options.replicas === true) {
      // redis-cli decides who replicates whom; CLUSTER NODES says, once every replica has synced.
      await waitFor(async () => {
        const pairs = replicasOf(await redisCli(ports[0], 'cluster', 'nodes'))
        if (pairs.size < 3) return false
        for (const replica of pairs.values()) {
          if (!(await redisCli(replica, 'info', 'replication')).includes('master_link_status:up')) return false
        }
        for (const [master, replica] of pairs) replicaPorts.set(master, replica)
        return true
      }, 'every replica to sync')
      masters = [...replicaPorts.keys()]
    }
  } catch (error) {
    await stop()
    throw error
  }
  return {
    ports: masters,
    urls: masters.map((p) => `redis://127.0.0.1:${p}`),
    replicaPorts,
    async kill (port) {
      const child = children[ports.indexOf(port)]
      if (child !== undefined) await kill(child)
    },
    stop
  }
}

/** Master port → replica port, from CLUSTER NODES lines (`id host:port@bus flags master-id …`). */
function replicasOf (nodes: string): Map<number, number> {
  const lines = nodes.split('\n').map((line) => line.split(' '))
  const portOf = (address: string): number => Number(address.split('@')[0].split(':').pop())
  const byId = new Map(lines.map((fields) => [fields[0], portOf(fields[1] ?? '')]))
  const pairs = new Map<number, number>()
  for (const fields of lines) {
    if (fields[2]?.includes('slave') !== true) continue
    const master = byId.get(fields[3])
    if (master !== undefined) pairs.set(master, portOf(fields[1]))
  }
  return pairs
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

export interface FailoverReport {
  /** Milliseconds from the kill until every session read back. */
  recoveredMs: number
  /** Requests answered 503 meanwhile. */
  unavailable: number
}

/**
 * Reads every session through `app` again and again after a server was killed, until all read
 * back. Each answer must be a 503 with a backend-down code or the session's data (never a fresh,
 * empty session) and must come within `boundMs` (no hang). Gives up after a minute.
 */
export async function readThroughFailover (
  app: { inject: (options: { url: string, headers: Record<string, string> }) => Promise<{ statusCode: number, body: string, json: <T>() => T }> },
  sessions: Array<{ cookie: string }>,
  expected: { url: string, body: string },
  boundMs: number,
  killedAt: number
): Promise<FailoverReport> {
  let unavailable = 0
  for (;;) {
    if (Date.now() - killedAt > 60_000) throw new Error(`not recovered a minute after the kill (${unavailable} requests answered 503)`)
    let all = true
    for (const { cookie } of sessions) {
      const started = Date.now()
      const response = await app.inject({ url: expected.url, headers: { cookie } })
      const took = Date.now() - started
      if (took >= boundMs) throw new Error(`a request took ${took} ms during the failover`)
      if (response.statusCode === 503) {
        const { code } = response.json<{ code: string }>()
        if (code !== 'FST_QUART_SESSION_BACKEND' && code !== 'FST_QUART_SESSION_TIMEOUT') throw new Error(`503 with ${code}`)
        unavailable++
        all = false
        continue
      }
      if (response.statusCode !== 200 || response.body !== expected.body) {
        throw new Error(`expected 200 ${expected.body} or a 503, got ${response.statusCode} ${response.body}`)
      }
    }
    if (all) return { recoveredMs: Date.now() - killedAt, unavailable }
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

/**
 * A redis-server and a plain node-redis client on it for one describe block: started in its
 * `before`, stopped in its `after`. Read `server` and `client` inside tests and hooks only.
 */
export function useRedis (): { readonly server: RedisServer, readonly client: RedisClientType } {
  const running = {} as { server: RedisServer, client: RedisClientType }
  before(async () => {
    running.server = await startRedis()
    running.client = createClient({ url: running.server.url })
    await running.client.connect()
  })
  after(async () => {
    await running.client?.close()
    await running.server?.stop()
  })
  return running
}
