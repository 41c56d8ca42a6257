import { randomBytes } from 'node:crypto'
import {
  close, closeSync, constants, fchmod, fchmodSync, fstat, fstatSync, futimes, futimesSync, link, linkSync, open, openSync,
  read, readSync, rename, renameSync, stat, statSync, unlink, unlinkSync, write, writeSync, type Stats
} from 'node:fs'
import { mkdir, opendir } from 'node:fs/promises'
import { resolve, join } from 'node:path'
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises'
import { promisify } from 'node:util'
import type { SessionStore } from '../store.js'
import { sha256 } from '../digest.js'
import {
  FST_QUART_SESSION_BACKEND,
  FST_QUART_SESSION_CONNECT,
  FST_QUART_SESSION_INVALID_ARGUMENT,
  FST_QUART_SESSION_INVALID_OPTION
} from '../errors.js'
import { messageOf, withCause } from './shared.js'

export interface FilesystemStoreOptions {
  /** Folder of the session files, resolved against the working directory. Created 0700 when missing. Default `./sessions`. */
  directory?: string
  /** Mode of the session files. Default `0o600`. */
  fileMode?: number
  /** Most files kept; beyond it the least recently used go, within about a second. Default 10 000. */
  maxEntries?: number
  /** Milliseconds between background sweeps when there is nothing left to do. Default 60 000. */
  sweepIntervalMs?: number
  /** Most files one sweep examines for expiry, and most it removes. Default 1 000. */
  sweepBatch?: number
  /** A lock file older (or further in the future) than this (milliseconds) was left by a crashed writer and is broken. Default 5 000. */
  staleLockMs?: number
  /**
   * Whether a request's file calls are made directly (true, the default: a few microseconds each
   * on a local disk) or through libuv's thread pool (false: for a network filesystem, where one
   * slow call must not stall the event loop). The background sweep always uses the pool.
   */
  synchronous?: boolean
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

/** The file calls of the store, in two forms (see `synchronous`). */
interface FileCalls {
  open: (path: string, flags: string | number, mode: number) => Promise<number>
  /** Closes without waiting (a failure to close is nothing a caller could act on). */
  close: (fd: number) => void
  closeAwait: (fd: number) => Promise<void>
  stat: (path: string) => Promise<Stats>
  fstat: (fd: number) => Promise<Stats>
  read: (fd: number, buffer: Buffer, offset: number, length: number, position: number) => Promise<number>
  write: (fd: number, buffer: Buffer, offset: number, length: number, position: number) => Promise<number>
  rename: (from: string, to: string) => Promise<void>
  unlink: (path: string) => Promise<void>
  futimes: (fd: number, atime: number, mtime: number) => Promise<void>
  fchmod: (fd: number, mode: number) => Promise<void>
  link: (from: string, to: string) => Promise<void>
}

// The callback API, not fs/promises: a FileHandle costs an object, a finalizer and extra hops per
// call, which was most of a write's CPU.
const readAsync = promisify(read)
const writeAsync = promisify(write)
const ASYNC_IO: FileCalls = {
  open: promisify(open),
  close: (fd) => { close(fd, () => {}) },
  closeAwait: promisify(close),
  stat: promisify(stat),
  fstat: promisify(fstat),
  read: async (fd, buffer, offset, length, position) => (await readAsync(fd, buffer, offset, length, position)).bytesRead,
  write: async (fd, buffer, offset, length, position) => (await writeAsync(fd, buffer, offset, length, position)).bytesWritten,
  rename: promisify(rename),
  unlink: promisify(unlink),
  futimes: promisify(futimes),
  fchmod: promisify(fchmod),
  link: promisify(link)
}

/** A synchronous call's result (or its error) as a settled promise, so both forms share the code. */
function now<T> (call: () => T): Promise<T> {
  try {
    return Promise.resolve(call())
  } catch (error) {
    return Promise.reject(error)
  }
}

// Each call of the thread pool costs the event loop two hops and a wake-up of another thread: on
// small files that is several times the system call itself (a write's open, stat, write, fstat,
// rename and close: about 430 µs of CPU through the pool, 140 µs called directly, measured on
// the benchmark machine). On a local disk these calls take microseconds, so a request's calls are
// made directly; the background sweep, which may touch thousands of files, stays on the pool. So
// does close, which nobody waits for: closing the last descriptor of a replaced record frees its
// inode, which can take the filesystem a millisecond (ext4 with discard).
const SYNC_IO: FileCalls = {
  open: async (path, flags, mode) => await now(() => openSync(path, flags, mode)),
  close: ASYNC_IO.close,
  closeAwait: async (fd) => { await now(() => { closeSync(fd) }) },
  stat: async (path) => await now(() => statSync(path)),
  fstat: async (fd) => await now(() => fstatSync(fd)),
  read: async (fd, buffer, offset, length, position) => await now(() => readSync(fd, buffer, offset, length, position)),
  write: async (fd, buffer, offset, length, position) => await now(() => writeSync(fd, buffer, offset, length, position)),
  rename: async (from, to) => { await now(() => { renameSync(from, to) }) },
  unlink: async (path) => { await now(() => { unlinkSync(path) }) },
  futimes: async (fd, atime, mtime) => { await now(() => { futimesSync(fd, atime, mtime) }) },
  fchmod: async (fd, mode) => { await now(() => { fchmodSync(fd, mode) }) },
  link: async (from, to) => { await now(() => { linkSync(from, to) }) }
}

// Reads of the store itself (a sweep's header reads, a compare-and-set) must not count as uses:
// under relatime the kernel moves the atime of a file never read since its last write.
const READ_QUIETLY = constants.O_RDONLY | (constants.O_NOATIME ?? 0)

// File names: the sha256 of the key in hex, so no key (however long, and whatever characters or
// `../` it holds) ever reaches a path, and names never differ only by case (macOS, Windows).
const RECORD = /^[0-9a-f]{64}\.session$/
const LOCK = /^[0-9a-f]{64}\.lock$/
const TEMP = /\.tmp$/
// A temp file older than this was left by a writer that died between write and rename.
const TEMP_LEFTOVER_MS = 60_000
// When a sweep could not finish its work (more expired files or excess than one batch), the next comes soon.
const CATCH_UP_MS = 1_000
// After a record is created near the bound, the directory is counted (and trimmed) this soon.
const TRIM_DELAY_MS = 1_000
// A read records its use (the file's atime) when a record was created after the last recorded use
// (the ranking would change), else at most this often per record.
const USE_EVERY_MS = 1_000
// Records kept open and decoded in memory, so a read of an unchanged file is one stat.
const CACHE_ENTRIES = 128
const CACHE_BYTES = 8 * 1024 * 1024
const CACHE_RECORD_BYTES = 256 * 1024
// Directory entries read per step of a listing: the event loop runs between steps.
const LISTING_STEP = 64
// Concurrent stats of an eviction pass: the libuv thread pool also serves the requests.
const STAT_STEP = 8

interface StoredRecord { value: string, expires: number }

/**
 * An open record file and what it held. The descriptor keeps the inode alive, so while the path
 * still names this inode (one stat) the file is unchanged: records are never written in place, and
 * a live inode's number is never given to another file.
 */
interface Pinned {
  fd: number
  ino: number
  size: number
  record: StoredRecord | undefined
  // Use-recording in flight on `fd`; the descriptor is closed only after it, never under it.
  busy: Promise<void>
  // Set when it leaves the cache: no new use-recording may start on a descriptor being closed.
  closed: boolean
}

/** A held lock: the lock file, open. A write fills it and renames it over the record. */
interface Lock {
  path: string
  fd: number
  since: number
  consumed: boolean
}

/**
 * Sessions as files, one per key, in one directory that several processes may share.
 *
 * Record file: the first line is `<expires> <bytes>` (expiry in milliseconds since the epoch, `0` =
 * none; the value's length in UTF-8 bytes, which exposes a torn file), then the value exactly.
 * Readers never lock: a record is replaced by renaming a complete file over it, so a reader sees
 * the old file or the new one, never a mix. Writers (set, delete, compareAndSet) hold a per-key
 * lock file created with O_EXCL, which makes compareAndSet atomic across processes; the new
 * record is written into that lock file, and renaming it over the record both publishes it and
 * releases the lock. A lock left by a crashed process is broken after `staleLockMs`.
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
  readonly #io: FileCalls
  // One writer per key inside this process; the lock file settles it between processes.
  readonly #queues = new Map<string, Promise<void>>()
  // In least recently used order (Map order), bounded by CACHE_ENTRIES and CACHE_BYTES.
  readonly #cache = new Map<string, Pinned>()
  #cachedBytes = 0
  // Records counted at the last listing, and created by this process since: how near the bound it is.
  #listed = 0
  #created = 0
  // When this process last created a record (ms since the epoch).
  #lastCreated = 0
  #timer: NodeJS.Timeout | undefined
  #trimTimer: NodeJS.Timeout | undefined
  #sweeping: Promise<SweepResult> | undefined
  #cursor = 0
  #closed = false
  // Milliseconds the last bound check took: the next waits at least ten times as long.
  #trimCost = 0

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
    const synchronous = options.synchronous ?? true
    if (typeof synchronous !== 'boolean') throw new FST_QUART_SESSION_INVALID_OPTION('synchronous', 'must be true or false')
    this.#io = synchronous ? SYNC_IO : ASYNC_IO
  }

  /** Creates the directory (0700) and proves it writable; fails the boot otherwise. */
  async ready (): Promise<void> {
    try {
      await mkdir(this.directory, { recursive: true, mode: 0o700 })
      const probe = join(this.directory, `.probe.${process.pid}.${randomBytes(6).toString('hex')}.tmp`)
      await this.#io.closeAwait(await this.#io.open(probe, 'wx', this.fileMode))
      await this.#io.unlink(probe)
    } catch (error) {
      throw withCause(new FST_QUART_SESSION_CONNECT(`filesystem directory ${this.directory}`, messageOf(error)), error)
    }
    this.#schedule(this.#sweepIntervalMs)
  }

  async get (key: string): Promise<string | undefined> {
    const name = fileNameOf(key)
    let record: StoredRecord | undefined
    try {
      record = await this.#load(name, true)
    } catch (error) {
      throw failed('filesystem read', error)
    }
    if (record === undefined) return undefined
    if (isExpired(record)) {
      await this.#dropExpired(name).catch(() => {})
      return undefined
    }
    return record.value
  }

  async set (key: string, value: string, ttlSeconds: number): Promise<void> {
    const name = fileNameOf(key)
    try {
      await this.#locked(name, async (lock) => { await this.#publish(name, lock, value, expiryOf(ttlSeconds)) })
    } catch (error) {
      throw failed('filesystem write', error)
    }
  }

  async delete (key: string): Promise<void> {
    const name = fileNameOf(key)
    try {
      await this.#locked(name, async () => { await this.#remove(name) })
    } catch (error) {
      throw failed('filesystem delete', error)
    }
  }

  async compareAndSet (key: string, expected: string | undefined, value: string | undefined, ttlSeconds: number): Promise<boolean> {
    const name = fileNameOf(key)
    try {
      return await this.#locked(name, async (lock) => {
        const record = await this.#load(name, false)
        const current = record === undefined || isExpired(record) ? undefined : record.value
        if (current !== expected) return false
        if (value === undefined) {
          await this.#remove(name)
        } else {
          await this.#publish(name, lock, value, expiryOf(ttlSeconds))
          if (record === undefined) this.#noteCreated()
        }
        return true
      })
    } catch (error) {
      throw failed('filesystem compareAndSet', error)
    }
  }

  /** Stops the background sweeper (and waits for a sweep in progress), closes the cached files. Files stay. */
  async close (): Promise<void> {
    this.#closed = true
    clearTimeout(this.#timer)
    clearTimeout(this.#trimTimer)
    this.#timer = undefined
    this.#trimTimer = undefined
    await this.#sweeping?.catch(() => {})
    for (const name of [...this.#cache.keys()]) this.#forget(name)
  }

  /**
   * One sweep, as the background timer runs it: removes expired records among the next
   * `sweepBatch` files (the position moves on each sweep, so every file is seen in turn), leftovers
   * of crashed writers, and, beyond `maxEntries`, up to `sweepBatch` of the least recently used records.
   */
  async sweep (): Promise<SweepResult> {
    return await this.#exclusive(async () => await this.#sweepOnce(true))
  }

  // ---- records ----

  #path (name: string): string {
    return join(this.directory, name)
  }

  /**
   * The record under `name`: from the cache when the path still names the cached inode (one
   * stat), else read from the file. `use` records the read as a use of the session (its atime).
   */
  async #load (name: string, use: boolean): Promise<StoredRecord | undefined> {
    const path = this.#path(name)
    const cached = this.#cache.get(name)
    if (cached !== undefined) {
      const info = await this.#io.stat(path).catch(absentOr)
      if (info === undefined) {
        this.#forget(name)
        return undefined
      }
      // Still cached after the stat: the descriptor was open throughout, so the inode number is this file's.
      if (this.#cache.get(name) === cached && info.ino === cached.ino && info.size === cached.size) {
        this.#cache.delete(name)
        this.#cache.set(name, cached)
        if (use) this.#recordUse(cached, info)
        return cached.record
      }
    }
    const fd = await this.#open(path, READ_QUIETLY, 0).catch(absentOr)
    if (fd === undefined) {
      this.#forget(name)
      return undefined
    }
    let pinned: Pinned
    try {
      const info = await this.#io.fstat(fd)
      const data = await readAll(this.#io, fd, info.size)
      pinned = { fd, ino: info.ino, size: data.length, record: parseRecord(data), busy: Promise.resolve(), closed: false }
      if (use) this.#recordUse(pinned, info)
    } catch (error) {
      this.#io.close(fd)
      throw error
    }
    this.#remember(name, pinned)
    return pinned.record
  }

  /** A use moves the file's atime (mtime stays the last write); shared by every process. */
  #recordUse (pinned: Pinned, info: Stats): void {
    // Date.now() drops the fraction of a millisecond that file times keep: a read right after a
    // write could be stamped before it and rank as the older use. Two milliseconds on top rank the
    // read after every write that came before it: one is not enough, because the time reaches the
    // file as a double of seconds that libuv cuts to whole microseconds, rounding down (T + 1 ms
    // lands at T + 0.999 ms, the stamp a write late in millisecond T gets; its test then evicted
    // the session just read in one run of five).
    const now = Date.now() + 2
    const last = usedAt(info)
    if (pinned.closed || (last >= this.#lastCreated && now - last < USE_EVERY_MS)) return
    pinned.busy = pinned.busy.then(async () => { await this.#io.futimes(pinned.fd, now / 1000, info.mtimeMs / 1000) }).catch(() => {})
  }

  #remember (name: string, pinned: Pinned): void {
    const previous = this.#cache.get(name)
    if (previous !== undefined) this.#forget(name)
    if (pinned.size > CACHE_RECORD_BYTES || this.#closed) {
      release(this.#io, pinned)
      return
    }
    this.#cache.set(name, pinned)
    this.#cachedBytes += pinned.size
    while (this.#cache.size > CACHE_ENTRIES || this.#cachedBytes > CACHE_BYTES) {
      this.#forget(this.#cache.keys().next().value as string)
    }
  }

  #forget (name: string): void {
    const pinned = this.#cache.get(name)
    if (pinned === undefined) return
    this.#cache.delete(name)
    this.#cachedBytes -= pinned.size
    release(this.#io, pinned)
  }

  /**
   * open(); when the process is out of descriptors, once more after closing the cached ones; a file
   * of another owner (O_NOATIME is the owner's) is read without it.
   */
  async #open (path: string, flags: string | number, mode: number): Promise<number> {
    try {
      return await this.#io.open(path, flags, mode)
    } catch (error) {
      const code = codeOf(error)
      if (code === 'EPERM' && flags === READ_QUIETLY) return await this.#io.open(path, constants.O_RDONLY, mode)
      if ((code !== 'EMFILE' && code !== 'ENFILE') || this.#cache.size === 0) throw error
      for (const name of [...this.#cache.keys()]) this.#forget(name)
      return await this.#io.open(path, flags, mode)
    }
  }

  /** Fills the held lock file with the record and renames it over the record: publish and release in one step. */
  async #publish (name: string, lock: Lock, value: string, expires: number): Promise<void> {
    // A store used without ready() (direct use) still gets its sweeper.
    if (this.#timer === undefined) this.#schedule(this.#sweepIntervalMs)
    const body = Buffer.from(value, 'utf8')
    const data = Buffer.concat([Buffer.from(`${expires} ${body.length}\n`), body])
    const [, info] = await Promise.all([writeAll(this.#io, lock.fd, data), this.#io.fstat(lock.fd)])
    if (this.#chmod) await this.#io.fchmod(lock.fd, this.fileMode)
    if (!await this.#stillHeld(lock)) throw new Error(`lock ${lock.path} was broken while held (this process stalled longer than staleLockMs)`)
    await this.#io.rename(lock.path, this.#path(name))
    lock.consumed = true
    this.#remember(name, { fd: lock.fd, ino: info.ino, size: data.length, record: { value, expires }, busy: Promise.resolve(), closed: false })
  }

  async #remove (name: string): Promise<void> {
    this.#forget(name)
    await removeFile(this.#io, this.#path(name))
  }

  /**
   * A read never waits for a lock: the expired file is removed now if the key is free, else the
   * sweeper removes it later (it reads as absent meanwhile).
   */
  async #dropExpired (name: string): Promise<void> {
    if (this.#queues.has(name)) return
    const path = this.#path(`${name.slice(0, 64)}.lock`)
    let fd: number
    try {
      fd = await this.#io.open(path, 'wx', this.fileMode)
    } catch {
      return
    }
    try {
      const record = await this.#load(name, false)
      if (record !== undefined && isExpired(record)) await this.#remove(name)
    } finally {
      this.#io.close(fd)
      await this.#io.unlink(path).catch(() => {})
    }
  }

  // ---- locking ----

  /** Runs `work` holding the key's lock: first in this process (a queue), then across processes (a lock file). */
  async #locked<T> (name: string, work: (lock: Lock) => Promise<T>): Promise<T> {
    const previous = this.#queues.get(name)
    let done!: () => void
    const mine = new Promise<void>((resolve) => { done = resolve })
    this.#queues.set(name, mine)
    try {
      if (previous !== undefined) await previous
      // Direct calls finish a write within the turn of the event loop that asked for it, before
      // the other requests read in that turn have saved: waiting for the next turn lets their saves
      // of a busy session join the core's queue and go out as one file write (lib/writer.ts).
      else if (this.#io === SYNC_IO) await nextTurn()
      const lock = await this.#acquire(name.slice(0, 64))
      try {
        return await work(lock)
      } finally {
        if (!lock.consumed) {
          const held = await this.#stillHeld(lock)
          this.#io.close(lock.fd)
          if (held) await this.#io.unlink(lock.path).catch(() => {})
        }
      }
    } finally {
      done()
      if (this.#queues.get(name) === mine) this.#queues.delete(name)
    }
  }

  async #acquire (hash: string): Promise<Lock> {
    const path = this.#path(`${hash}.lock`)
    const patience = this.#staleLockMs * 2 + 1_000
    const deadline = performance.now() + patience
    let pause = 1
    // The lock as first seen, and since when (monotonic): one that never changes for staleLockMs
    // is stale whatever its mtime says, so no clock step can make a key unwritable.
    let seen: { ino: number, mtimeMs: number, at: number } | undefined
    for (;;) {
      try {
        // The file mode of a record: this file becomes the record.
        const fd = await this.#open(path, 'wx', this.fileMode)
        return { path, fd, since: performance.now(), consumed: false }
      } catch (error) {
        if (codeOf(error) === 'ENOENT') {
          // The directory is gone (removed, or never created because ready() was not called).
          await this.#recreateDirectory(error)
          continue
        }
        if (codeOf(error) !== 'EEXIST') throw error
      }
      const info = await this.#io.stat(path).catch(() => undefined)
      if (info === undefined) continue
      const now = performance.now()
      if (seen?.ino !== info.ino || seen.mtimeMs !== info.mtimeMs) seen = { ino: info.ino, mtimeMs: info.mtimeMs, at: now }
      if ((this.#isStale(info) || now - seen.at > this.#staleLockMs) && await this.#breakLock(path, info)) continue
      if (now > deadline) throw new Error(`lock ${path} stayed held for more than ${patience} ms`)
      await sleep(pause + Math.random() * pause)
      pause = Math.min(pause * 2, 20)
    }
  }

  /** Older than staleLockMs, or dated further ahead than that (the clock was stepped back since). */
  #isStale (info: Stats): boolean {
    return Math.abs(Date.now() - info.mtimeMs) > this.#staleLockMs
  }

  /**
   * Whether the lock file is still this holder's. Only a holder stalled for about staleLockMs can
   * have lost it, so a quick holder asks nothing of the filesystem.
   */
  async #stillHeld (lock: Lock): Promise<boolean> {
    if (performance.now() - lock.since < this.#staleLockMs / 2) return true
    const [mine, named] = await Promise.all([this.#io.fstat(lock.fd), this.#io.stat(lock.path).catch(() => undefined)])
    return named?.ino === mine.ino
  }

  async #recreateDirectory (cause: unknown): Promise<void> {
    await mkdir(this.directory, { recursive: true, mode: 0o700 })
    // mkdir succeeded yet the lock could not be created: not a missing directory after all.
    if (!(await isDirectory(this.directory))) throw cause
  }

  /**
   * Breaks the stale lock `seen`. Renaming is atomic, so of two processes breaking the same lock
   * only one gets it; whoever renamed a lock that turns out to be another (re-taken meanwhile)
   * puts it back with link(), which never overwrites.
   */
  async #breakLock (path: string, seen: Stats): Promise<boolean> {
    const aside = `${path}.${randomBytes(6).toString('hex')}.tmp`
    try {
      await this.#io.rename(path, aside)
    } catch {
      return true
    }
    const taken = await this.#io.stat(aside).catch(() => undefined)
    if (taken !== undefined && (taken.ino !== seen.ino || taken.mtimeMs !== seen.mtimeMs)) {
      await this.#io.link(aside, path).catch(() => {})
    }
    await this.#io.unlink(aside).catch(() => {})
    return true
  }

  // ---- sweeping ----

  /** One sweep or trim at a time per store. */
  async #exclusive (run: () => Promise<SweepResult>): Promise<SweepResult> {
    this.#sweeping ??= run().finally(() => { this.#sweeping = undefined })
    return await this.#sweeping
  }

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

  /**
   * A new record near the bound: count the directory (every process's records) soon and trim it
   * to maxEntries, rather than at the next full sweep.
   */
  #noteCreated (): void {
    this.#created++
    this.#lastCreated = Date.now()
    if (this.#trimTimer !== undefined || this.#closed || (this.#listed + this.#created) * 2 < this.maxEntries) return
    this.#trimTimer = setTimeout(() => {
      const started = performance.now()
      this.#exclusive(async () => await this.#sweepOnce(false)).finally(() => { this.#trimCost = performance.now() - started }).then(
        (result) => {
          this.#trimTimer = undefined
          if (result.files - result.evicted > this.maxEntries) this.#noteCreated()
        },
        () => { this.#trimTimer = undefined }
      )
    }, Math.max(TRIM_DELAY_MS, this.#trimCost * 10))
    this.#trimTimer.unref()
  }

  #behind (result: SweepResult): boolean {
    return result.files - result.evicted > this.maxEntries || result.expired >= this.#sweepBatch
  }

  /** A full sweep (expiry, leftovers, bound), or with `full` false only the bound. */
  async #sweepOnce (full: boolean): Promise<SweepResult> {
    const result: SweepResult = { files: 0, expired: 0, evicted: 0, leftovers: 0 }
    const listing = await this.#list(full)
    if (listing === undefined) return result
    const { records, others } = listing
    result.files = records.length
    this.#listed = records.length
    this.#created = 0
    if (full) {
      let budget = this.#sweepBatch
      for (const name of others) {
        if (budget <= 0) break
        budget--
        if (await this.#removeLeftover(name)) result.leftovers++
      }
      // Expired records: the next slice of the listing, wrapping around.
      const count = Math.min(records.length, budget)
      const start = records.length === 0 ? 0 : this.#cursor % records.length
      for (let i = 0; i < count; i++) {
        if (await this.#sweepExpired(records[(start + i) % records.length])) result.expired++
      }
      this.#cursor = start + count
    }
    const excess = Math.min(records.length - result.expired - this.maxEntries, this.#sweepBatch)
    if (excess > 0) result.evicted = await this.#evictLeastUsed(records, excess)
    return result
  }

  /** Record names, and (for a full sweep) temp and lock files, read a few entries at a time. */
  async #list (full: boolean): Promise<{ records: string[], others: string[] } | undefined> {
    const records: string[] = []
    const others: string[] = []
    try {
      const dir = await opendir(this.directory, { bufferSize: LISTING_STEP })
      for await (const entry of dir) {
        const name = entry.name
        if (RECORD.test(name)) records.push(name)
        else if (full && (TEMP.test(name) || LOCK.test(name))) others.push(name)
      }
    } catch {
      return undefined
    }
    return { records, others }
  }

  async #removeLeftover (name: string): Promise<boolean> {
    const path = this.#path(name)
    const info = await ASYNC_IO.stat(path).catch(() => undefined)
    if (info === undefined) return false
    if (LOCK.test(name)) return this.#isStale(info) && await this.#breakLock(path, info)
    return Date.now() - info.mtimeMs > TEMP_LEFTOVER_MS && await removeFile(ASYNC_IO, path).then(() => true, () => false)
  }

  async #sweepExpired (name: string): Promise<boolean> {
    const expires = await this.#expiryOf(name)
    if (expires === undefined || expires === 0 || expires > Date.now()) return false
    try {
      // Under the lock, and only if still expired: another process may have just written it.
      await this.#locked(name, async () => {
        const record = await this.#load(name, false)
        if (record !== undefined && isExpired(record)) await this.#remove(name)
      })
      return true
    } catch {
      return false
    }
  }

  /** The expiry in a record's first line, read without the value (records may be large). */
  async #expiryOf (name: string): Promise<number | undefined> {
    let fd: number
    try {
      fd = await this.#open(this.#path(name), READ_QUIETLY, 0)
    } catch {
      return undefined
    }
    try {
      const buffer = Buffer.alloc(48)
      const bytesRead = await ASYNC_IO.read(fd, buffer, 0, 48, 0)
      const match = /^(\d+) \d+\n/.exec(buffer.toString('latin1', 0, bytesRead))
      return match === null ? undefined : Number(match[1])
    } catch {
      return undefined
    } finally {
      ASYNC_IO.close(fd)
    }
  }

  /**
   * Removes the `excess` least recently used records (last use: atime, which reads move, or
   * mtime), each only if neither rewritten nor used since it was looked at. A bounded heap keeps
   * the candidates, so no step sorts the whole directory.
   */
  async #evictLeastUsed (names: string[], excess: number): Promise<number> {
    const heap = new NewestOnTop(excess)
    for (let i = 0; i < names.length; i += STAT_STEP) {
      const infos = await Promise.all(names.slice(i, i + STAT_STEP).map(async (name) => await ASYNC_IO.stat(this.#path(name)).catch(() => undefined)))
      infos.forEach((info, j) => { if (info !== undefined) heap.offer({ name: names[i + j], ino: info.ino, used: usedAt(info) }) })
    }
    let evicted = 0
    for (const candidate of heap.oldestFirst()) {
      if (await this.#evict(candidate)) evicted++
    }
    return evicted
  }

  /**
   * Moves the record aside (atomic, and no lock file to create) and removes it if it is still the
   * file that was ranked, neither rewritten nor read since; otherwise puts it back with link(),
   * which never overwrites a record written meanwhile.
   */
  async #evict ({ name, ino, used }: Candidate): Promise<boolean> {
    const path = this.#path(name)
    const aside = `${path}.${randomBytes(6).toString('hex')}.evict.tmp`
    try {
      await ASYNC_IO.rename(path, aside)
    } catch {
      return false
    }
    const info = await ASYNC_IO.stat(aside).catch(() => undefined)
    if (info !== undefined && (info.ino !== ino || usedAt(info) !== used)) {
      await ASYNC_IO.link(aside, path).catch(() => {})
      await ASYNC_IO.unlink(aside).catch(() => {})
      return false
    }
    this.#forget(name)
    await ASYNC_IO.unlink(aside).catch(() => {})
    return true
  }
}

// ---- helpers ----

interface Candidate { name: string, ino: number, used: number }

/** The `limit` least recently used candidates seen, in a max-heap on the last use (the newest on top, out first). */
class NewestOnTop {
  readonly #items: Candidate[] = []
  readonly #limit: number
  constructor (limit: number) { this.#limit = limit }

  offer (item: Candidate): void {
    const items = this.#items
    if (items.length < this.#limit) {
      items.push(item)
      let i = items.length - 1
      while (i > 0) {
        const parent = (i - 1) >> 1
        if (items[parent].used >= items[i].used) break
        ;[items[parent], items[i]] = [items[i], items[parent]]
        i = parent
      }
    } else if (item.used < items[0].used) {
      items[0] = item
      let i = 0
      for (;;) {
        const left = 2 * i + 1
        const right = left + 1
        let top = i
        if (left < items.length && items[left].used > items[top].used) top = left
        if (right < items.length && items[right].used > items[top].used) top = right
        if (top === i) break
        ;[items[top], items[i]] = [items[i], items[top]]
        i = top
      }
    }
  }

  oldestFirst (): Candidate[] {
    return [...this.#items].sort((a, b) => a.used - b.used)
  }
}

function usedAt (info: Stats): number {
  return Math.max(info.atimeMs, info.mtimeMs)
}

function fileNameOf (key: string): string {
  if (typeof key !== 'string') throw new FST_QUART_SESSION_INVALID_ARGUMENT('key', 'must be a string')
  return `${sha256(key, 'hex')}.session`
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

async function readAll (io: FileCalls, fd: number, size: number): Promise<Buffer> {
  const buffer = Buffer.allocUnsafe(size)
  let filled = 0
  while (filled < size) {
    const bytesRead = await io.read(fd, buffer, filled, size - filled, filled)
    if (bytesRead === 0) break
    filled += bytesRead
  }
  return filled === size ? buffer : buffer.subarray(0, filled)
}

async function writeAll (io: FileCalls, fd: number, data: Buffer): Promise<void> {
  let written = 0
  while (written < data.length) {
    written += await io.write(fd, data, written, data.length - written, written)
  }
}

function release (io: FileCalls, pinned: Pinned): void {
  pinned.closed = true
  void pinned.busy.then(() => { io.close(pinned.fd) })
}

async function removeFile (io: FileCalls, path: string): Promise<void> {
  try {
    await io.unlink(path)
  } catch (error) {
    if (codeOf(error) !== 'ENOENT') throw error
  }
}

async function isDirectory (path: string): Promise<boolean> {
  return (await ASYNC_IO.stat(path).catch(() => undefined))?.isDirectory() === true
}

/** For `.catch`: a missing file is `undefined`, anything else stays an error. */
function absentOr (error: unknown): undefined {
  if (codeOf(error) === 'ENOENT') return undefined
  throw error
}

function positive (name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1) throw new FST_QUART_SESSION_INVALID_OPTION(name, 'must be a whole number above 0')
  return value
}

function codeOf (error: unknown): unknown {
  return (error as { code?: unknown } | undefined)?.code
}

/** The error a caller sees: ours as is (a bad key), any fs error as FST_QUART_SESSION_BACKEND with it as the cause. */
function failed (operation: string, error: unknown): Error {
  if (String(codeOf(error)).startsWith('FST_QUART_SESSION_')) return error as Error
  return withCause(new FST_QUART_SESSION_BACKEND(operation), error)
}
