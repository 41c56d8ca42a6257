import { createHash, randomBytes } from 'node:crypto'
import { mkdir, open, readFile, readdir, rename, stat, unlink, link } from 'node:fs/promises'
import { resolve, join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import type { SessionStore } from '../store.js'
import {
  FST_QUART_SESSION_BACKEND,
  FST_QUART_SESSION_CONNECT,
  FST_QUART_SESSION_INVALID_ARGUMENT,
  FST_QUART_SESSION_INVALID_OPTION
} from '../errors.js'

export interface FilesystemStoreOptions {
  /** Folder of the session files, resolved against the working directory. Created 0700 when missing. Default `./sessions`. */
  directory?: string
  /** Mode of the session files. Default `0o600`. */
  fileMode?: number
  /** Most files kept; beyond it the sweeper removes the oldest (by modification time). Default 10 000. */
  maxEntries?: number
  /** Milliseconds between background sweeps when there is nothing left to do. Default 60 000. */
  sweepIntervalMs?: number
  /** Most files one sweep examines, and most it removes. Default 1 000. */
  sweepBatch?: number
  /** A lock file older than this (milliseconds) was left by a crashed writer and is broken. Default 5 000. */
  staleLockMs?: number
}

export interface SweepResult {
  /** Record files found in the directory when the sweep began. */
  files: number
  /** Expired records removed. */
  expired: number
  /** Records removed because there were more than `maxEntries`. */
  evicted: number
  /** Leftovers of crashed writers removed (temp files, stale locks). */
  leftovers: number
}

// File names: the sha256 of the key in hex, so no key (however long, and whatever characters or
// `../` it holds) ever reaches a path, and names never differ only by case (macOS, Windows).
const RECORD = /^[0-9a-f]{64}\.session$/
const LOCK = /^[0-9a-f]{64}\.lock$/
const TEMP = /\.tmp$/
// A temp file older than this was left by a writer that died between write and rename.
const TEMP_LEFTOVER_MS = 60_000
// When a sweep could not finish its work (more expired files or excess than one batch), the next comes soon.
const CATCH_UP_MS = 1_000

interface StoredRecord { value: string, expires: number }
type Release = () => Promise<void>

/**
 * Sessions as files, one per key, in one directory that several processes may share.
 *
 * Record file: the first line is `<expires> <bytes>` (expiry in milliseconds since the epoch, `0` =
 * none; the value's length in UTF-8 bytes, which exposes a torn file), then the value exactly.
 * Readers never lock: every write goes to a temp file in the same directory and is renamed over the
 * record, so a reader sees the old file or the new one, never a mix. Writers (set, delete, touch,
 * compareAndSet) hold a per-key lock file created with O_EXCL, which makes compareAndSet atomic
 * across processes; a lock left by a crashed process is broken after `staleLockMs`.
 */
export class FilesystemStore implements SessionStore {
  readonly directory: string
  readonly fileMode: number
  readonly maxEntries: number
  readonly #sweepIntervalMs: number
  readonly #sweepBatch: number
  readonly #staleLockMs: number
  // Mode bits the umask may strip (group, other) are set again explicitly.
  readonly #chmod: boolean
  // One writer per key inside this process; the lock file settles it between processes.
  readonly #queues = new Map<string, Promise<void>>()
  #timer: NodeJS.Timeout | undefined
  #sweeping: Promise<SweepResult> | undefined
  #cursor = 0
  #closed = false

  constructor (options: FilesystemStoreOptions = {}) {
    this.directory = resolve(options.directory ?? 'sessions')
    this.fileMode = options.fileMode ?? 0o600
    if (!Number.isInteger(this.fileMode) || this.fileMode < 0 || this.fileMode > 0o777 || (this.fileMode & 0o600) !== 0o600) {
      throw new FST_QUART_SESSION_INVALID_OPTION('fileMode', 'must be a file mode such as 0o600 that lets the owner read and write')
    }
    this.maxEntries = positive('maxEntries', options.maxEntries ?? 10_000)
    this.#sweepIntervalMs = positive('sweepIntervalMs', options.sweepIntervalMs ?? 60_000)
    this.#sweepBatch = positive('sweepBatch', options.sweepBatch ?? 1_000)
    this.#staleLockMs = positive('staleLockMs', options.staleLockMs ?? 5_000)
    this.#chmod = (this.fileMode & 0o077) !== 0
  }

  /** Creates the directory (0700) and proves it writable; fails the boot otherwise. */
  async ready (): Promise<void> {
    try {
      await mkdir(this.directory, { recursive: true, mode: 0o700 })
      const probe = join(this.directory, `.probe.${process.pid}.${randomBytes(6).toString('hex')}.tmp`)
      const handle = await open(probe, 'wx', this.fileMode)
      await handle.close()
      await unlink(probe)
    } catch (error) {
      throw withCause(new FST_QUART_SESSION_CONNECT(`filesystem directory ${this.directory}`, reasonOf(error)), error)
    }
    this.#schedule(this.#sweepIntervalMs)
  }

  async get (key: string): Promise<string | undefined> {
    const name = fileNameOf(key)
    const record = await this.#read(name, 'filesystem read')
    if (record === undefined) return undefined
    if (isExpired(record)) {
      await this.#dropExpired(name)
      return undefined
    }
    return record.value
  }

  async set (key: string, value: string, ttlSeconds: number): Promise<void> {
    const name = fileNameOf(key)
    await this.#locked(name, 'filesystem write', async () => { await this.#write(name, value, expiryOf(ttlSeconds)) })
  }

  async delete (key: string): Promise<void> {
    const name = fileNameOf(key)
    await this.#locked(name, 'filesystem delete', async () => { await removeFile(this.#path(name)) })
  }

  async touch (key: string, ttlSeconds: number): Promise<void> {
    const name = fileNameOf(key)
    await this.#locked(name, 'filesystem touch', async () => {
      const record = await this.#read(name, 'filesystem touch')
      if (record === undefined || isExpired(record)) return
      await this.#write(name, record.value, expiryOf(ttlSeconds))
    })
  }

  async compareAndSet (key: string, expected: string | undefined, value: string | undefined, ttlSeconds: number): Promise<boolean> {
    const name = fileNameOf(key)
    return await this.#locked(name, 'filesystem compareAndSet', async () => {
      const record = await this.#read(name, 'filesystem compareAndSet')
      const current = record === undefined || isExpired(record) ? undefined : record.value
      if (current !== expected) return false
      if (value === undefined) await removeFile(this.#path(name))
      else await this.#write(name, value, expiryOf(ttlSeconds))
      return true
    })
  }

  /** Stops the background sweeper (and waits for a sweep in progress). Files stay. */
  async close (): Promise<void> {
    this.#closed = true
    clearTimeout(this.#timer)
    this.#timer = undefined
    await this.#sweeping?.catch(() => {})
  }

  /**
   * One sweep, as the background timer runs it: removes expired records among the next
   * `sweepBatch` files (the position moves on each sweep, so every file is seen in turn), leftovers
   * of crashed writers, and, beyond `maxEntries`, up to `sweepBatch` of the oldest records.
   */
  async sweep (): Promise<SweepResult> {
    this.#sweeping ??= this.#sweepOnce().finally(() => { this.#sweeping = undefined })
    return await this.#sweeping
  }

  // ---- files ----

  #path (name: string): string {
    return join(this.directory, name)
  }

  async #read (name: string, operation: string): Promise<StoredRecord | undefined> {
    let data: Buffer
    try {
      data = await readFile(this.#path(name))
    } catch (error) {
      if (codeOf(error) === 'ENOENT') return undefined
      throw backendError(operation, error)
    }
    return parseRecord(data)
  }

  async #write (name: string, value: string, expires: number): Promise<void> {
    // A store used without ready() (direct use) still gets its sweeper.
    if (this.#timer === undefined) this.#schedule(this.#sweepIntervalMs)
    const body = Buffer.from(value, 'utf8')
    const data = Buffer.concat([Buffer.from(`${expires} ${body.length}\n`), body])
    const temp = this.#path(`${name.slice(0, 64)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`)
    try {
      const handle = await open(temp, 'wx', this.fileMode)
      try {
        await handle.writeFile(data)
        if (this.#chmod) await handle.chmod(this.fileMode)
      } finally {
        await handle.close()
      }
      await rename(temp, this.#path(name))
    } catch (error) {
      await unlink(temp).catch(() => {})
      throw backendError('filesystem write', error)
    }
  }

  /**
   * A read never waits for a lock: the expired file is removed now if the key is free, else the
   * sweeper removes it later (it reads as absent meanwhile).
   */
  async #dropExpired (name: string): Promise<void> {
    if (this.#queues.has(name)) return
    const lock = this.#path(`${name.slice(0, 64)}.lock`)
    try {
      await (await open(lock, 'wx', 0o600)).close()
    } catch {
      return
    }
    try {
      const record = await this.#read(name, 'filesystem delete')
      if (record !== undefined && isExpired(record)) await removeFile(this.#path(name))
    } finally {
      await unlink(lock).catch(() => {})
    }
  }

  async #removeExpired (name: string): Promise<void> {
    // Under the lock, and only if still expired: another process may have just written it.
    await this.#locked(name, 'filesystem delete', async () => {
      const record = await this.#read(name, 'filesystem delete')
      if (record !== undefined && isExpired(record)) await removeFile(this.#path(name))
    })
  }

  // ---- locking ----

  /** Runs `work` holding the key's lock: first in this process (a queue), then across processes (a lock file). */
  async #locked<T> (name: string, operation: string, work: () => Promise<T>): Promise<T> {
    const previous = this.#queues.get(name)
    let done!: () => void
    const mine = new Promise<void>((resolve) => { done = resolve })
    this.#queues.set(name, mine)
    try {
      if (previous !== undefined) await previous
      const release = await this.#acquire(name.slice(0, 64), operation)
      try {
        return await work()
      } finally {
        await release()
      }
    } finally {
      done()
      if (this.#queues.get(name) === mine) this.#queues.delete(name)
    }
  }

  async #acquire (hash: string, operation: string): Promise<Release> {
    const lock = this.#path(`${hash}.lock`)
    const patience = this.#staleLockMs * 2 + 1_000
    const deadline = Date.now() + patience
    let pause = 1
    for (;;) {
      try {
        const handle = await open(lock, 'wx', 0o600)
        await handle.close()
        return async () => { await unlink(lock).catch(() => {}) }
      } catch (error) {
        if (codeOf(error) === 'ENOENT') {
          // The directory is gone (removed, or never created because ready() was not called).
          await this.#recreateDirectory(operation, error)
          continue
        }
        if (codeOf(error) !== 'EEXIST') throw backendError(operation, error)
      }
      if (await this.#breakIfStale(lock)) continue
      if (Date.now() > deadline) {
        throw backendError(operation, new Error(`lock ${lock} stayed held for more than ${patience} ms`))
      }
      await sleep(pause + Math.random() * pause)
      pause = Math.min(pause * 2, 20)
    }
  }

  async #recreateDirectory (operation: string, cause: unknown): Promise<void> {
    try {
      await mkdir(this.directory, { recursive: true, mode: 0o700 })
    } catch (error) {
      throw backendError(operation, error)
    }
    // mkdir succeeded yet the lock could not be created: not a missing directory after all.
    if (!(await isDirectory(this.directory))) throw backendError(operation, cause)
  }

  /**
   * Breaks a lock older than `staleLockMs` (its writer crashed). Renaming is atomic, so of two
   * processes breaking the same lock only one gets it; whoever renamed a lock that turns out to be
   * fresh (re-taken meanwhile) puts it back with link(), which never overwrites.
   */
  async #breakIfStale (lock: string): Promise<boolean> {
    const seen = await stat(lock).catch(() => undefined)
    if (seen === undefined) return true
    if (Date.now() - seen.mtimeMs < this.#staleLockMs) return false
    const aside = `${lock}.${randomBytes(6).toString('hex')}.tmp`
    try {
      await rename(lock, aside)
    } catch {
      return true
    }
    const taken = await stat(aside).catch(() => undefined)
    if (taken !== undefined && (taken.ino !== seen.ino || taken.mtimeMs !== seen.mtimeMs)) {
      await link(aside, lock).catch(() => {})
    }
    await unlink(aside).catch(() => {})
    return true
  }

  // ---- sweeping ----

  #schedule (delay: number): void {
    if (this.#closed) return
    clearTimeout(this.#timer)
    this.#timer = setTimeout(() => {
      this.sweep().then(
        (result) => { this.#schedule(this.#behind(result) ? CATCH_UP_MS : this.#sweepIntervalMs) },
        () => { this.#schedule(this.#sweepIntervalMs) }
      )
    }, delay)
    // Sessions must never keep the process alive.
    this.#timer.unref()
  }

  #behind (result: SweepResult): boolean {
    return result.files - result.evicted > this.maxEntries || result.expired >= this.#sweepBatch
  }

  async #sweepOnce (): Promise<SweepResult> {
    const result: SweepResult = { files: 0, expired: 0, evicted: 0, leftovers: 0 }
    let names: string[]
    try {
      names = await readdir(this.directory)
    } catch {
      return result
    }
    const records = names.filter((n) => RECORD.test(n))
    result.files = records.length
    let budget = this.#sweepBatch

    for (const name of names) {
      if (budget <= 0) break
      if (TEMP.test(name)) {
        budget--
        if (await this.#olderThan(name, TEMP_LEFTOVER_MS) && await removeFile(this.#path(name)).then(() => true, () => false)) result.leftovers++
      } else if (LOCK.test(name)) {
        budget--
        if (await this.#olderThan(name, this.#staleLockMs) && await this.#breakIfStale(this.#path(name))) result.leftovers++
      }
    }

    // Expired records: the next slice of the listing, wrapping around.
    const count = Math.min(records.length, budget)
    const start = records.length === 0 ? 0 : this.#cursor % records.length
    for (let i = 0; i < count; i++) {
      const name = records[(start + i) % records.length]
      if (await this.#sweepExpired(name)) result.expired++
    }
    this.#cursor = start + count

    const excess = Math.min(records.length - result.expired - this.maxEntries, this.#sweepBatch)
    if (excess > 0) result.evicted = await this.#evictOldest(records, excess)
    return result
  }

  async #olderThan (name: string, ms: number): Promise<boolean> {
    const info = await stat(this.#path(name)).catch(() => undefined)
    return info !== undefined && Date.now() - info.mtimeMs > ms
  }

  async #sweepExpired (name: string): Promise<boolean> {
    const expires = await this.#expiryOf(name)
    if (expires === undefined || expires === 0 || expires > Date.now()) return false
    try {
      await this.#removeExpired(name)
      return true
    } catch {
      return false
    }
  }

  /** The expiry in a record's first line, read without the value (records may be large). */
  async #expiryOf (name: string): Promise<number | undefined> {
    try {
      const handle = await open(this.#path(name), 'r')
      try {
        const { buffer, bytesRead } = await handle.read(Buffer.alloc(48), 0, 48, 0)
        const match = /^(\d+) \d+\n/.exec(buffer.toString('latin1', 0, bytesRead))
        return match === null ? undefined : Number(match[1])
      } finally {
        await handle.close()
      }
    } catch {
      return undefined
    }
  }

  /** Removes the `excess` oldest records (modification time), each only if unchanged since it was looked at. */
  async #evictOldest (names: string[], excess: number): Promise<number> {
    const dated: Array<{ name: string, mtimeMs: number }> = []
    // A few stats at a time: the libuv thread pool also serves the requests' reads and writes.
    for (let i = 0; i < names.length; i += 8) {
      const infos = await Promise.all(names.slice(i, i + 8).map(async (name) => await stat(this.#path(name)).catch(() => undefined)))
      infos.forEach((info, j) => { if (info !== undefined) dated.push({ name: names[i + j], mtimeMs: info.mtimeMs }) })
    }
    dated.sort((a, b) => a.mtimeMs - b.mtimeMs)
    let evicted = 0
    for (const { name, mtimeMs } of dated.slice(0, excess)) {
      try {
        await this.#locked(name, 'filesystem sweep', async () => {
          const info = await stat(this.#path(name)).catch(() => undefined)
          if (info?.mtimeMs !== mtimeMs) return
          await removeFile(this.#path(name))
          evicted++
        })
      } catch {}
    }
    return evicted
  }
}

// ---- helpers ----

function fileNameOf (key: string): string {
  if (typeof key !== 'string') throw new FST_QUART_SESSION_INVALID_ARGUMENT('key', 'must be a string')
  return `${createHash('sha256').update(key, 'utf8').digest('hex')}.session`
}

function expiryOf (ttlSeconds: number): number {
  return ttlSeconds > 0 ? Date.now() + Math.round(ttlSeconds * 1000) : 0
}

function isExpired (record: StoredRecord): boolean {
  return record.expires !== 0 && record.expires <= Date.now()
}

/** `<expires> <bytes>\n<value>`; anything else (a foreign or torn file) reads as no entry. */
function parseRecord (data: Buffer): StoredRecord | undefined {
  const newline = data.indexOf(10)
  if (newline === -1 || newline > 40) return undefined
  const match = /^(\d+) (\d+)$/.exec(data.toString('latin1', 0, newline))
  if (match === null) return undefined
  const length = Number(match[2])
  if (data.length - newline - 1 !== length) return undefined
  return { expires: Number(match[1]), value: data.toString('utf8', newline + 1) }
}

async function removeFile (path: string): Promise<void> {
  try {
    await unlink(path)
  } catch (error) {
    if (codeOf(error) !== 'ENOENT') throw backendError('filesystem delete', error)
  }
}

async function isDirectory (path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined))?.isDirectory() === true
}

function positive (name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1) throw new FST_QUART_SESSION_INVALID_OPTION(name, 'must be a whole number above 0')
  return value
}

function codeOf (error: unknown): unknown {
  return (error as { code?: unknown } | undefined)?.code
}

function reasonOf (error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}

function backendError (operation: string, cause: unknown): Error {
  // Already ours (from a nested step): keep the first description.
  if (codeOf(cause) === 'FST_QUART_SESSION_BACKEND') return cause as Error
  return withCause(new FST_QUART_SESSION_BACKEND(operation), cause)
}

function withCause<E extends Error> (error: E, cause: unknown): E {
  error.cause = cause
  return error
}
