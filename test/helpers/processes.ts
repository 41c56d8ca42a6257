// Server processes for the tests (redis-server, memcached): started on a free loopback port and
// killed when the test process ends, even when a test fails before its own `after` hook ran.
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import { freePort } from './ports.js'

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

export interface ServerCommand {
  name: string
  command: string
  args: string[]
  installHint: string
  /**
   * True once the server on `port` answers. Throws when the answer comes from another process:
   * someone else may have started a server on that port in the meantime.
   */
  answers: (port: number, child: ChildProcess) => Promise<boolean>
}

/**
 * Starts a server on `port` and waits until it answers. Resolves undefined when the server
 * exited at once (port taken) and `mayFail` is set; otherwise that is an error.
 */
export async function launch (port: number, server: ServerCommand, mayFail: boolean): Promise<ChildProcess | undefined> {
  const child = spawn(server.command, server.args, { stdio: ['ignore', 'pipe', 'pipe'] })
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
    output += `${error.message} (${server.installHint})`
  })
  try {
    await waitFor(async () => {
      if (exited) throw new Error(`${server.name} on port ${port} exited:\n${output}`)
      return await server.answers(port, child)
    }, () => `${server.name} on port ${port}:\n${output}`)
  } catch (error) {
    await kill(child)
    if (mayFail) return undefined
    throw error
  }
  return child
}

export interface RunningServer {
  port: number
  /** The process while it runs; undefined after stop. */
  readonly child: ChildProcess | undefined
  /** Kills the process. Safe to call twice. */
  stop (): Promise<void>
  /** Stops the process if it runs, then starts a new one on the same port (also after stop). */
  restart (): Promise<void>
}

export async function startOnFreePort (
  start: (port: number, mayFail: boolean) => Promise<ChildProcess | undefined>
): Promise<RunningServer> {
  let port = 0
  let current: ChildProcess | undefined
  // Another process may take the port between freePort() and the server's bind: try again.
  for (let attempt = 0; current === undefined; attempt++) {
    port = await freePort()
    current = await start(port, attempt < 4)
  }
  const stop = async (): Promise<void> => {
    if (current !== undefined) await kill(current)
    current = undefined
  }
  return {
    port,
    get child () { return current },
    stop,
    async restart () {
      await stop()
      current = await start(port, false)
    }
  }
}

export async function kill (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = once(child, 'exit')
  child.kill('SIGKILL')
  await exited
}

export async function waitFor (check: () => Promise<boolean>, what: string | (() => string)): Promise<void> {
  const deadline = Date.now() + 20_000
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${typeof what === 'string' ? what : what()}`)
    await sleep(50)
  }
}
