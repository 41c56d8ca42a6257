import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import type { LightMyRequestResponse } from 'fastify'

/**
 * Retries `check` until it passes, for up to 20 s: a client reconnects in the background at its
 * own pace, and a failed memcached server is tried again only after the retry delay.
 */
export async function eventually (check: () => Promise<void>, intervalMs = 100): Promise<void> {
  const deadline = Date.now() + 20_000
  for (;;) {
    try {
      return await check()
    } catch (error) {
      if (Date.now() > deadline) throw error
      await sleep(intervalMs)
    }
  }
}

const BACKEND_DOWN = ['FST_QUART_SESSION_BACKEND', 'FST_QUART_SESSION_TIMEOUT']

/**
 * A validator for `assert.rejects`: the operation failed fast, as a backend that is down, with a
 * 503. A timeout has nothing underneath; a failure carries the client's error as `cause`, which
 * must be an Error unless `cause` is 'any' (the memcached package may report a list of errors).
 */
export function failedFast (cause: 'error' | 'any' = 'error'): (error: unknown) => boolean {
  return (error) => {
    const code = (error as { code?: unknown }).code
    assert.ok(BACKEND_DOWN.includes(code as string), `unexpected error ${String(error)}`)
    if (code === 'FST_QUART_SESSION_BACKEND') {
      const attached = (error as Error).cause
      assert.ok(cause === 'any' ? attached !== undefined : attached instanceof Error, 'the client error is attached as cause')
    }
    assert.equal((error as { statusCode?: unknown }).statusCode, 503)
    return true
  }
}

/** The plugin's error reply for a backend that is down. */
export function assertServiceUnavailable (response: LightMyRequestResponse): void {
  assert.equal(response.statusCode, 503)
  const { code } = response.json<{ code: string }>()
  assert.ok(BACKEND_DOWN.includes(code), code)
}
