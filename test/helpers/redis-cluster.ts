import { createClient, createCluster, type RedisClientType, type RedisClusterType } from 'redis'
import { startRedisCluster, type ClusterOptions, type RedisClusterServers } from './redis-server.js'

export interface ClusterWithClients {
  servers: RedisClusterServers
  /** A plain client per master, keyed by port, to see which master holds a key. */
  nodes: Map<number, RedisClientType>
  /** A cluster client over the masters, not connected: the test decides who connects it. */
  cluster: RedisClusterType
  /** The port of the master holding `key`: the only one that answers for its slot without a redirect. */
  holder: (key: string) => Promise<number | undefined>
  /** Closes the clients and stops the servers. */
  close: () => Promise<void>
}

export async function startClusterWithClients (options: ClusterOptions = {}): Promise<ClusterWithClients> {
  const servers = await startRedisCluster(options)
  const nodes = new Map<number, RedisClientType>()
  const cluster: RedisClusterType = createCluster({ rootNodes: servers.urls.map((url) => ({ url })) })
  const close = async (): Promise<void> => {
    if (cluster.isOpen) await cluster.close()
    for (const client of nodes.values()) await client.close()
    await servers.stop()
  }
  try {
    for (const port of servers.ports) {
      const client: RedisClientType = createClient({ url: `redis://127.0.0.1:${port}` })
      await client.connect()
      nodes.set(port, client)
    }
  } catch (error) {
    await close()
    throw error
  }
  return {
    servers,
    nodes,
    cluster,
    async holder (key) {
      for (const [port, client] of nodes) {
        try {
          if (await client.exists(key) === 1) return port
        } catch {
          // MOVED: not this master's slot
        }
      }
      return undefined
    },
    close
  }
}
