// What the crash-safety and fuzz tests share: a watch on the process's last-resort error events,
// and an HTTP/1.1 client that sends bytes as given (fetch and http.request refuse odd headers).
import assert from 'node:assert/strict'
import { connect } from 'node:net'

/** Records every 'unhandledRejection' and 'uncaughtException' while installed: there must be none. */
export class CrashWatch {
  readonly seen: Array<{ event: string, error: unknown }> = []
  readonly #onRejection = (error: unknown): void => { this.seen.push({ event: 'unhandledRejection', error }) }
  readonly #onException = (error: unknown): void => { this.seen.push({ event: 'uncaughtException', error }) }

  install (): void {
    process.on('unhandledRejection', this.#onRejection)
    process.on('uncaughtException', this.#onException)
  }

  uninstall (): void {
    process.off('unhandledRejection', this.#onRejection)
    process.off('uncaughtException', this.#onException)
  }

  /** Lets a rejection that escaped reach its event (reported after the current microtasks), then asserts there was none. */
  async assertNone (): Promise<void> {
    await new Promise((resolve) => setImmediate(resolve))
    await new Promise((resolve) => setImmediate(resolve))
    assert.deepEqual(this.seen.map(({ event, error }) => `${event}: ${String(error)}`), [])
  }
}

export interface RawResponse {
  status: number
  /** The header block as received, lines joined with \r\n. */
  head: string
  body: string
}

/**
 * Sends `GET path` with `headers` written byte for byte (UTF-8, nothing validated or escaped) on
 * a connection of its own, and reads the response until the server closes it.
 */
export async function rawGet (port: number, path: string, headers: Array<[string, string]>): Promise<RawResponse> {
  const lines = [`GET ${path} HTTP/1.1`, 'Host: 127.0.0.1', ...headers.map(([name, value]) => `${name}: ${value}`), 'Connection: close', '', '']
  const socket = connect(port, '127.0.0.1')
  const chunks: Buffer[] = []
  const text = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => { socket.destroy(); reject(new Error(`no complete response from port ${port} within 10 s`)) }, 10_000)
    socket.on('data', (chunk: Buffer) => chunks.push(chunk))
    socket.on('error', (error) => { clearTimeout(timer); reject(error) })
    socket.on('close', () => { clearTimeout(timer); resolve(Buffer.concat(chunks).toString('utf8')) })
    socket.end(Buffer.from(lines.join('\r\n'), 'utf8'))
  })
  const split = text.indexOf('\r\n\r\n')
  const head = split === -1 ? text : text.slice(0, split)
  const match = /^HTTP\/1\.1 (\d{3})/.exec(head)
  assert.ok(match, `not an HTTP response: ${JSON.stringify(text.slice(0, 200))}`)
  const body = split === -1 ? '' : text.slice(split + 4)
  return { status: Number(match[1]), head, body: /^transfer-encoding: *chunked/im.test(head) ? dechunk(body) : body }
}

/** The payload of a chunked body (sizes are in bytes: decoded on the bytes, not on the text). */
function dechunk (body: string): string {
  const bytes = Buffer.from(body, 'utf8')
  const parts: Buffer[] = []
  let at = 0
  while (at < bytes.length) {
    const eol = bytes.indexOf('\r\n', at)
    if (eol === -1) break
    const size = parseInt(bytes.subarray(at, eol).toString('latin1'), 16)
    if (!(size > 0)) break
    parts.push(bytes.subarray(eol + 2, eol + 2 + size))
    at = eol + 2 + size + 2
  }
  return Buffer.concat(parts).toString('utf8')
}
