// Redis behind Sentinel on real processes: one master, one replica and three sentinels, tuned so a
// failover takes a few seconds (down after 1 s, failover timeout 2 s). Nothing is persisted; every
// process is killed when the test process ends.
import type { ChildProcess } from 'node:child_process'
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort } from './ports.js'
import { launch, kill, waitFor } from './processes.js'
import { launchRedis, redisCli } from './redis-server.js'

export const SENTINEL_MASTER_NAME = 'quartmaster'

export interface SentinelSetup {
  name: string
  /** `'127.0.0.1:<port>'` of each sentinel, for the plugin's `sentinel.nodes`. */
  nodes: string[]
  /** The first master's port, and the replica's, which Sentinel promotes when the master dies. */
  masterPort: number
  replicaPort: number
  /** SIGKILL the first master: no shutdown, no last words to the replica. */
  killMaster (): Promise<void>
  /** The master's port as the sentinels report it now. */
  currentMasterPort (): Promise<number>
  /** Waits until the replica has acknowledged every write the master took so far (`WAIT 1`). */
  replicated (): Promise<void>
  stop (): Promise<void>
}

export async function startSentinelSetup (): Promise<SentinelSetup> {
  const dir = await mkdtemp(join(tmpdir(), 'quart-session-sentinel-'))
  const children: ChildProcess[] = []
  const stop = async (): Promise<void> => {
    await Promise.all(children.map(kill))
    await rm(dir, { recursive: true, force: true })
  }
  try {
    const [masterPort, master] = await startData(dir, [])
    children.push(master)
    const [replicaPort, replica] = await startData(dir, ['--replicaof', '127.0.0.1', String(masterPort)])
    children.push(replica)
    await waitFor(async () => (await redisCli(replicaPort, 'info', 'replication')).includes('master_link_status:up'), 'the replica to sync')

    const sentinelPorts: number[] = []
    while (sentinelPorts.length < 3) {
      const port = await freePort()
      const child = await startSentinel(dir, port, masterPort)
      if (child === undefined) continue
      children.push(child)
      sentinelPorts.push(port)
    }
    // A failover needs a majority of sentinels that know each other (hello messages every 2 s)
    // and know the replica to promote.
    for (const port of sentinelPorts) {
      await waitFor(async () => {
        const info = fields(await redisCli(port, 'sentinel', 'master', SENTINEL_MASTER_NAME))
        return info['num-other-sentinels'] === '2' && info['num-slaves'] === '1'
      }, `sentinel ${port} to know the others and the replica`)
    }

    return {
      name: SENTINEL_MASTER_NAME,
      nodes: sentinelPorts.map((port) => `127.0.0.1:${port}`),
      masterPort,
      replicaPort,
      async killMaster () { await kill(master) },
      async currentMasterPort () {
        const [, port] = (await redisCli(sentinelPorts[0], 'sentinel', 'get-master-addr-by-name', SENTINEL_MASTER_NAME)).split('\n')
        return Number(port)
      },
      async replicated () {
        const acked = await redisCli(masterPort, 'wait', '1', '5000')
        if (acked !== '1') throw new Error(`WAIT 1 answered ${acked}: the replica did not acknowledge`)
      },
      stop
    }
  } catch (error) {
    await stop()
    throw error
  }
}

/** A data server (master or replica) on a free port, in its own folder. */
async function startData (dir: string, extra: string[]): Promise<[number, ChildProcess]> {
  for (let attempt = 0; ; attempt++) {
    const port = await freePort()
    const nodeDir = join(dir, String(port))
    await mkdir(nodeDir, { recursive: true })
    const child = await launchRedis(port, nodeDir, extra, attempt < 4)
    if (child !== undefined) return [port, child]
  }
}

/** Sentinel rewrites its config file as it learns the topology: each gets its own, writable. */
async function startSentinel (dir: string, port: number, masterPort: number): Promise<ChildProcess | undefined> {
  const config = join(dir, `sentinel-${port}.conf`)
  await writeFile(config, [
    `port ${port}`,
    'bind 127.0.0.1',
    `dir ${dir}`,
    `sentinel monitor ${SENTINEL_MASTER_NAME} 127.0.0.1 ${masterPort} 2`,
    `sentinel down-after-milliseconds ${SENTINEL_MASTER_NAME} 1000`,
    `sentinel failover-timeout ${SENTINEL_MASTER_NAME} 2000`,
    `sentinel parallel-syncs ${SENTINEL_MASTER_NAME} 1`,
    ''
  ].join('\n'))
  return await launch(port, {
    name: 'redis-server --sentinel',
    command: 'redis-server',
    args: [config, '--sentinel'],
    installHint: 'is redis-server (with Sentinel) installed?',
    async answers (port, child) {
      if ((await redisCli(port, 'ping').catch(() => '')) !== 'PONG') return false
      if (!(await redisCli(port, 'info', 'server')).includes(`process_id:${child.pid}`)) {
        throw new Error(`port ${port} is answered by another redis-server`)
      }
      return true
    }
  }, true)
}

/** redis-cli prints a RESP map as alternating lines of name and value. */
function fields (text: string): Record<string, string> {
  const lines = text.split('\n')
  const result: Record<string, string> = {}
  for (let i = 0; i + 1 < lines.length; i += 2) result[lines[i]] = lines[i + 1]
  return result
}
