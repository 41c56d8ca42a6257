// lib/stores/shared.ts bounds every backend command of the built-in adapters: a command that
// never answers fails with FST_QUART_SESSION_TIMEOUT, one that answers in time is never failed,
// whatever other commands around it do, and the process may exit once nothing waits.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { bounded, type Bound } from '../lib/stores/shared.js'

const never = async (): Promise<string> => await new Promise<string>(() => {})
const after = async <T>(ms: number, value: T): Promise<T> => await new Promise<T>((resolve) => setTimeout(() => { resolve(value) }, ms))
const bound = (operation: string, ms: number): Bound => ({ operation, seconds: ms / 1000, ms })

/** How a bounded call ended: its value, or its error's code and message. */
async function outcome (call: Promise<unknown>): Promise<{ value?: unknown, code?: string, message?: string }> {
  try {
    return { value: await call }
  } catch (err) {
    const { code, message } = err as { code?: string, message?: string }
    return { code, message }
  }
}

describe('bounded backend calls', () => {
  it('a command that never answers fails with FST_QUART_SESSION_TIMEOUT naming it', async () => {
    const result = await outcome(bounded(bound('Redis GET', 100), never))
    assert.equal(result.code, 'FST_QUART_SESSION_TIMEOUT')
    assert.match(result.message ?? '', /Redis GET/)
  })

  it('commands that answer in time succeed while the ones around them time out, each after its own start', async () => {
    const settled: string[] = []
    const track = (name: string, call: Promise<unknown>): Promise<{ value?: unknown, code?: string }> =>
      outcome(call).then((result) => { settled.push(name); return result })
    const first = track('first', bounded(bound('A', 150), never))
    const quick = track('quick', bounded(bound('B', 150), async () => await after(20, 'b')))
    await after(60, null)
    const second = track('second', bounded(bound('C', 150), never))
    const late = track('late', bounded(bound('D', 150), async () => await after(100, 'd')))
    const results = await Promise.all([first, quick, second, late])
    assert.deepEqual(results.map((r) => r.value ?? r.code), ['FST_QUART_SESSION_TIMEOUT', 'b', 'FST_QUART_SESSION_TIMEOUT', 'd'])
    // The second never-answering call started later, so it fails later; `late` answered before its own bound.
    assert.ok(settled.indexOf('first') < settled.indexOf('second'), settled.join(','))
    assert.ok(settled.indexOf('late') < settled.indexOf('second'), settled.join(','))
  })

  it('a short timeout fails its command without failing a long one that answers', async () => {
    const long = bounded(bound('long', 5000), async () => await after(300, 'kept'))
    const short = bounded(bound('short', 50), never)
    assert.equal((await outcome(short)).code, 'FST_QUART_SESSION_TIMEOUT')
    assert.deepEqual(await outcome(long), { value: 'kept' })
  })

  it('a failure that recovers stays within the one bound; a failure that does not is FST_QUART_SESSION_BACKEND', async () => {
    let tries = 0
    const recovered = await bounded(bound('EVALSHA', 1000), async () => { tries++; throw new Error('NOSCRIPT') }, undefined,
      () => { tries++; return Promise.resolve('from EVAL') })
    assert.equal(recovered, 'from EVAL')
    assert.equal(tries, 2)
    const stuck = await outcome(bounded(bound('EVALSHA', 100), async () => { throw new Error('NOSCRIPT') }, undefined, () => never()))
    assert.equal(stuck.code, 'FST_QUART_SESSION_TIMEOUT')
    const failed = await outcome(bounded(bound('SET', 1000), async () => { throw new Error('READONLY') }))
    assert.equal(failed.code, 'FST_QUART_SESSION_BACKEND')
  })

  it('after its commands answered, the process exits without waiting for their timeout', async () => {
    // A 60 s bound: if anything still held the process for it, the child would be killed at 20 s.
    const { code, signal, stdout } = await child(`
      const { bounded } = await import(${JSON.stringify(sharedUrl)})
      const value = await bounded({ operation: 'GET', seconds: 60, ms: 60000 }, async () => 'answer')
      console.log(value)
    `)
    assert.equal(signal, null, 'killed: the process stayed alive after its only command answered')
    assert.equal(code, 0)
    assert.equal(stdout.trim(), 'answer')
  })

  it('a command still waiting keeps the process alive until it times out', async () => {
    // Nothing else holds this process: without its deadline it would exit before the command failed.
    const { code, stdout } = await child(`
      const { bounded } = await import(${JSON.stringify(sharedUrl)})
      bounded({ operation: 'GET', seconds: 0.3, ms: 300 }, () => new Promise(() => {}))
        .catch((err) => { console.log(err.code) })
    `)
    assert.equal(code, 0)
    assert.equal(stdout.trim(), 'FST_QUART_SESSION_TIMEOUT')
  })
})

const sharedUrl = new URL('../lib/stores/shared.ts', import.meta.url).href

async function child (source: string): Promise<{ code: number | null, signal: NodeJS.Signals | null, stdout: string }> {
  return await new Promise((resolve) => {
    const proc = execFile(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', source],
      { cwd: fileURLToPath(new URL('..', import.meta.url)), timeout: 20_000 }, (error, stdout) => {
        resolve({ code: proc.exitCode ?? (error as { code?: number } | null)?.code ?? null, signal: proc.signalCode, stdout })
      })
  })
}
