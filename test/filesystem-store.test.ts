import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { mkdtemp, readdir, readFile, rm, stat, writeFile, utimes, chmod } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import * as runner from 'node:test'
import { storeContract } from './contract.js'
import { FilesystemStore } from '../lib/stores/filesystem.js'

const temps: string[] = []
async function tempDir (): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'quart-fs-'))
  temps.push(dir)
  return dir
}
after(async () => { for (const dir of temps) await rm(dir, { recursive: true, force: true }) })

const fileOf = (key: string): string => `${createHash('sha256').update(key).digest('hex')}.session`

storeContract({
  name: 'filesystem',
  runner,
  capabilities: ['compareAndSet'],
  async create () {
    const store = new FilesystemStore({ directory: join(await tempDir(), 'sessions') })
    await store.ready()
    return store
  }
})

// The same contract with every file call through libuv's thread pool (for network filesystems).
storeContract({
  name: 'filesystem (synchronous: false)',
  runner,
  capabilities: ['compareAndSet'],
  async create () {
    const store = new FilesystemStore({ directory: join(await tempDir(), 'sessions'), synchronous: false })
    await store.ready()
    return store
  }
})

describe('FilesystemStore files', () => {
  it('refuses a synchronous option that is not a boolean', () => {
    assert.throws(() => new FilesystemStore({ directory: 'unused', synchronous: 'yes' as unknown as boolean }), { code: 'FST_QUART_SESSION_INVALID_OPTION', message: /synchronous/ })
  })


  it('creates a missing directory with mode 0700 and files with mode 0600', async () => {
    const directory = join(await tempDir(), 'a', 'sessions')
    const store = new FilesystemStore({ directory })
    await store.ready()
    await store.set('k', 'v', 60)
    assert.equal((await stat(directory)).mode & 0o777, 0o700)
    assert.equal((await stat(join(directory, fileOf('k')))).mode & 0o777, 0o600)
    await store.close()
  })

  it('gives files the fileMode asked for, whatever the umask', async () => {
    const directory = await tempDir()
    const store = new FilesystemStore({ directory, fileMode: 0o644 })
    const umask = process.umask(0o077)
    try {
      await store.set('k', 'v', 60)
    } finally {
      process.umask(umask)
    }
    assert.equal((await stat(join(directory, fileOf('k')))).mode & 0o777, 0o644)
    await store.close()
  })

  it('resolves the default directory ./sessions against the working directory', () => {
    assert.equal(new FilesystemStore().directory, join(process.cwd(), 'sessions'))
  })

  it('writes the documented format: "<expires ms> <bytes>" then the value', async () => {
    const directory = await tempDir()
    const store = new FilesystemStore({ directory })
    const before = Date.now()
    await store.set('session:abc', 'snow ☃', 60)
    const text = await readFile(join(directory, fileOf('session:abc')), 'utf8')
    const [header, value] = [text.slice(0, text.indexOf('\n')), text.slice(text.indexOf('\n') + 1)]
    const [expires, bytes] = header.split(' ').map(Number)
    assert.ok(expires >= before + 60_000 && expires <= Date.now() + 60_000)
    assert.equal(bytes, Buffer.byteLength('snow ☃'))
    assert.equal(value, 'snow ☃')
    await store.set('forever', 'x', 0)
    assert.equal(await readFile(join(directory, fileOf('forever')), 'utf8'), '0 1\nx')
    await store.close()
  })

  it('reads a torn or foreign file as no entry, and compareAndSet(undefined) replaces it', async () => {
    const directory = await tempDir()
    const store = new FilesystemStore({ directory })
    await writeFile(join(directory, fileOf('torn')), `${Date.now() + 60_000} 100\nonly part of it`)
    assert.equal(await store.get('torn'), undefined)
    await writeFile(join(directory, fileOf('foreign')), 'not a record at all')
    assert.equal(await store.get('foreign'), undefined)
    assert.equal(await store.compareAndSet('torn', undefined, 'whole', 60), true)
    assert.equal(await store.get('torn'), 'whole')
    await store.close()
  })

  it('leaves no temp or lock files behind after writes', async () => {
    const directory = await tempDir()
    const store = new FilesystemStore({ directory })
    await Promise.all(Array.from({ length: 20 }, async (_, i) => { await store.set(`k${i % 3}`, `v${i}`, 60) }))
    await store.compareAndSet('k0', await store.get('k0'), 'new', 60)
    await store.delete('k1')
    assert.deepEqual((await readdir(directory)).sort(), [fileOf('k0'), fileOf('k2')].sort())
    await store.close()
  })
})

describe('FilesystemStore path tricks: no key leaves the directory', () => {
  const tricky = [
    '../escape', '../../../../../../tmp/quart-escape', '/etc/passwd', 'a/b/c', 'a\\b', 'nul\0byte', '..', '.', '',
    '.hidden', 'session:../x', 'x'.repeat(100_000), '☃/../☃', 'CON', 'aux.txt', 'A', 'a'
  ]

  it('stores every tricky key as a file inside the directory, and reads each back apart', async () => {
    const parent = await tempDir()
    const directory = join(parent, 'sessions')
    const store = new FilesystemStore({ directory })
    await store.ready()
    for (const [i, key] of tricky.entries()) await store.set(key, `value ${i}`, 60)
    for (const [i, key] of tricky.entries()) assert.equal(await store.get(key), `value ${i}`, JSON.stringify(key.slice(0, 40)))
    assert.deepEqual(await readdir(parent), ['sessions'], 'nothing written beside the directory')
    const names = await readdir(directory)
    assert.equal(names.length, tricky.length, 'one file per key (A and a apart too)')
    for (const name of names) assert.match(name, /^[0-9a-f]{64}\.session$/)
    await assert.rejects(stat('/tmp/quart-escape'), { code: 'ENOENT' })
    for (const key of tricky) await store.delete(key)
    assert.deepEqual(await readdir(directory), [])
    await store.close()
  })

  it('refuses a key that is not a string', async () => {
    const store = new FilesystemStore({ directory: await tempDir() })
    await assert.rejects(store.get(42 as unknown as string), { code: 'FST_QUART_SESSION_INVALID_ARGUMENT' })
    await store.close()
  })
})

describe('FilesystemStore expiry and sweeping', () => {
  it('removes an expired file when it is read', async () => {
    const directory = await tempDir()
    const store = new FilesystemStore({ directory })
    await store.set('short', 'v', 1)
    await sleep(1100)
    assert.equal(await store.get('short'), undefined)
    assert.deepEqual(await readdir(directory), [])
    await store.close()
  })

  it('a sweep removes expired files nobody reads, and keeps live ones', async () => {
    const directory = await tempDir()
    const store = new FilesystemStore({ directory })
    for (let i = 0; i < 5; i++) await store.set(`old${i}`, 'v', 1)
    await store.set('live', 'v', 60)
    await store.set('forever', 'v', 0)
    await sleep(1100)
    const result = await store.sweep()
    assert.equal(result.expired, 5)
    assert.deepEqual((await readdir(directory)).sort(), [fileOf('live'), fileOf('forever')].sort())
    await store.close()
  })

  it('a sweep examines at most sweepBatch files, and the next sweep goes on where it stopped', async () => {
    const directory = await tempDir()
    const store = new FilesystemStore({ directory, sweepBatch: 4 })
    for (let i = 0; i < 10; i++) await store.set(`old${i}`, 'v', 1)
    await sleep(1100)
    assert.equal((await store.sweep()).expired, 4)
    assert.equal((await readdir(directory)).length, 6)
    assert.equal((await store.sweep()).expired, 4)
    assert.equal((await store.sweep()).expired, 2)
    assert.deepEqual(await readdir(directory), [])
    await store.close()
  })

  it('beyond maxEntries a sweep removes the least recently used files (neither read nor written for longest)', async () => {
    const directory = await tempDir()
    const store = new FilesystemStore({ directory, maxEntries: 5 })
    const now = Date.now() / 1000
    for (let i = 0; i < 8; i++) {
      await store.set(`k${i}`, `v${i}`, 600)
      await utimes(join(directory, fileOf(`k${i}`)), now - 100 + i, now - 100 + i)
    }
    const result = await store.sweep()
    assert.equal(result.evicted, 3)
    for (let i = 0; i < 3; i++) assert.equal(await store.get(`k${i}`), undefined, `k${i} evicted`)
    for (let i = 3; i < 8; i++) assert.equal(await store.get(`k${i}`), `v${i}`)
    await store.close()
  })

  it('the background sweeper runs on its own timer and stops at close()', async () => {
    const directory = await tempDir()
    const store = new FilesystemStore({ directory, sweepIntervalMs: 50 })
    await store.ready()
    await store.set('short', 'v', 1)
    const deadline = Date.now() + 10_000
    while ((await readdir(directory)).length > 0 && Date.now() < deadline) await sleep(100)
    assert.deepEqual(await readdir(directory), [], 'expired file swept without being read')
    await store.close()
    await store.set('short2', 'v', 1)
    await sleep(1300)
    assert.equal((await readdir(directory)).length, 1, 'no sweep after close')
  })

  it('a sweep clears what a crashed writer left: old temp files and stale locks', async () => {
    const directory = await tempDir()
    const store = new FilesystemStore({ directory, staleLockMs: 1000 })
    const old = Date.now() / 1000 - 3600
    const temp = join(directory, `${'a'.repeat(64)}.123.abcdef.tmp`)
    const lock = join(directory, `${'b'.repeat(64)}.lock`)
    const freshTemp = join(directory, `${'c'.repeat(64)}.123.abcdef.tmp`)
    await writeFile(temp, 'x')
    await writeFile(lock, '')
    await writeFile(freshTemp, 'x')
    await utimes(temp, old, old)
    await utimes(lock, old, old)
    const result = await store.sweep()
    assert.equal(result.leftovers, 2)
    assert.deepEqual(await readdir(directory), [`${'c'.repeat(64)}.123.abcdef.tmp`], 'a fresh temp file may belong to a live writer')
    await store.close()
  })
})

describe('FilesystemStore locks', () => {
  it('breaks a lock left by a crashed writer once it is older than staleLockMs', async () => {
    const directory = await tempDir()
    const store = new FilesystemStore({ directory, staleLockMs: 1000 })
    const lock = join(directory, fileOf('k').replace('.session', '.lock'))
    await writeFile(lock, '')
    const old = Date.now() / 1000 - 60
    await utimes(lock, old, old)
    assert.equal(await store.compareAndSet('k', undefined, 'after crash', 60), true)
    assert.equal(await store.get('k'), 'after crash')
    await store.close()
  })

  it('a read of an expired key never waits for its lock: it is a miss, and the sweeper removes the file later', async () => {
    const directory = await tempDir()
    const store = new FilesystemStore({ directory })
    await store.set('k', 'v', 1)
    await sleep(1100)
    const lock = join(directory, fileOf('k').replace('.session', '.lock'))
    await writeFile(lock, '') // fresh: another process is writing this key
    assert.equal(await store.get('k'), undefined)
    assert.ok((await readdir(directory)).includes(fileOf('k')), 'left for later while locked')
    await rm(lock)
    assert.equal((await store.sweep()).expired, 1)
    assert.deepEqual(await readdir(directory), [])
    await store.close()
  })

  it('waits for a live lock held by another process instead of writing under it', async () => {
    const directory = await tempDir()
    const store = new FilesystemStore({ directory })
    const lock = join(directory, fileOf('k').replace('.session', '.lock'))
    await writeFile(lock, '') // fresh: another process is writing this key
    let written = false
    const pending = store.set('k', 'v', 60).then(() => { written = true })
    await sleep(300)
    assert.equal(written, false, 'set went ahead while the key was locked')
    await rm(lock)
    await pending
    assert.equal(await store.get('k'), 'v')
    await store.close()
  })
})

describe('FilesystemStore failures', () => {
  it('ready() fails with FST_QUART_SESSION_CONNECT when the directory cannot be created (a path under a regular file)', async () => {
    const parent = await tempDir()
    await writeFile(join(parent, 'file'), 'not a directory')
    const store = new FilesystemStore({ directory: join(parent, 'file', 'sessions') })
    await assert.rejects(store.ready(), (error: Error & { code?: string, cause?: { code?: string } }) => {
      assert.equal(error.code, 'FST_QUART_SESSION_CONNECT')
      assert.match(error.message, /filesystem directory .*file\/sessions/)
      assert.equal(error.cause?.code, 'ENOTDIR')
      return true
    })
  })

  it('ready() fails with FST_QUART_SESSION_CONNECT when the directory path is a regular file', async () => {
    const parent = await tempDir()
    await writeFile(join(parent, 'file'), 'not a directory')
    const store = new FilesystemStore({ directory: join(parent, 'file') })
    await assert.rejects(store.ready(), { code: 'FST_QUART_SESSION_CONNECT' })
  })

  it('operations fail with FST_QUART_SESSION_BACKEND (details in cause) when the directory is replaced by a file after start, and recover when it is back', async () => {
    const directory = join(await tempDir(), 'sessions')
    const store = new FilesystemStore({ directory })
    await store.ready()
    await store.set('k', 'v', 60)
    await rm(directory, { recursive: true })
    await writeFile(directory, 'a file where the directory was')
    for (const operation of [
      async () => await store.get('k'),
      async () => { await store.set('k', 'v2', 60) },
      async () => { await store.delete('k') },
      async () => await store.compareAndSet('k', 'v', 'v2', 60)
    ]) {
      await assert.rejects(operation(), (error: Error & { code?: string, cause?: { code?: string } }) => {
        assert.equal(error.code, 'FST_QUART_SESSION_BACKEND')
        assert.doesNotMatch(error.message, /ENOTDIR|sessions/, 'no filesystem details in the message')
        assert.ok(error.cause?.code !== undefined, 'the fs error is the cause')
        return true
      })
    }
    assert.deepEqual(await store.sweep(), { files: 0, expired: 0, evicted: 0, leftovers: 0 }, 'a sweep survives it')
    await rm(directory)
    await store.set('k', 'back', 60)
    assert.equal(await store.get('k'), 'back')
    await store.close()
  })

  it('a read-only directory (chmod 0500) fails writes with FST_QUART_SESSION_BACKEND', async (t) => {
    if (process.getuid?.() === 0) return t.skip('running as root: chmod does not stop root from writing (the replaced-directory tests cover the error path)')
    const directory = await tempDir()
    const store = new FilesystemStore({ directory })
    await store.set('k', 'v', 60)
    await chmod(directory, 0o500)
    try {
      await assert.rejects(store.set('k', 'v2', 60), { code: 'FST_QUART_SESSION_BACKEND' })
      assert.equal(await store.get('k'), 'v', 'reads still work')
      await assert.rejects(new FilesystemStore({ directory }).ready(), { code: 'FST_QUART_SESSION_CONNECT' })
    } finally {
      await chmod(directory, 0o700)
    }
    await store.close()
  })

  it('refuses invalid options', () => {
    assert.throws(() => new FilesystemStore({ fileMode: 0o400 }), { code: 'FST_QUART_SESSION_INVALID_OPTION' })
    assert.throws(() => new FilesystemStore({ fileMode: 0o1777 }), { code: 'FST_QUART_SESSION_INVALID_OPTION' })
    assert.throws(() => new FilesystemStore({ maxEntries: 0 }), { code: 'FST_QUART_SESSION_INVALID_OPTION' })
    assert.throws(() => new FilesystemStore({ sweepBatch: 1.5 }), { code: 'FST_QUART_SESSION_INVALID_OPTION' })
  })
})

describe('FilesystemStore shared by two processes', () => {
  const child = join(dirname(fileURLToPath(import.meta.url)), 'helpers', 'filesystem-child.ts')
  const children: ChildProcess[] = []
  after(() => { for (const c of children) c.kill('SIGKILL') })

  function start (directory: string, key: string, first: number, writers: number, marks: number): { process: ChildProcess, exited: Promise<unknown>, next: () => Promise<string> } {
    const proc = spawn(process.execPath, ['--import', 'tsx', child, directory, key, String(first), String(writers), String(marks)], {
      stdio: ['pipe', 'pipe', 'inherit']
    })
    children.push(proc)
    const exited = once(proc, 'exit')
    const lines: string[] = []
    let buffer = ''
    const waiters: Array<(line: string) => void> = []
    proc.stdout!.on('data', (chunk: Buffer) => {
      buffer += chunk.toString()
      let i
      while ((i = buffer.indexOf('\n')) !== -1) {
        const line = buffer.slice(0, i)
        buffer = buffer.slice(i + 1)
        const waiter = waiters.shift()
        if (waiter !== undefined) waiter(line)
        else lines.push(line)
      }
    })
    const next = async (): Promise<string> => {
      const queued = lines.shift()
      if (queued !== undefined) return queued
      return await new Promise((resolve, reject) => {
        waiters.push(resolve)
        proc.once('exit', (code) => { reject(new Error(`child exited with ${String(code)}`)) })
      })
    }
    return { process: proc, exited, next }
  }

  it('50 writers split over 2 processes lose no mark and leave no torn file', async () => {
    const directory = join(await tempDir(), 'shared')
    const store = new FilesystemStore({ directory })
    await store.ready()
    const key = 'session:shared-by-two-processes'
    await store.set(key, '', 300)
    const marks = 4
    const a = start(directory, key, 0, 25, marks)
    const b = start(directory, key, 25, 25, marks)
    assert.equal(await a.next(), 'ready')
    assert.equal(await b.next(), 'ready')
    a.process.stdin!.write('go\n')
    b.process.stdin!.write('go\n')
    const [doneA, doneB] = await Promise.all([a.next(), b.next()])
    assert.match(doneA, /^done \d+$/)
    assert.match(doneB, /^done \d+$/)
    await Promise.all([a.exited, b.exited])

    const final = await store.get(key) ?? ''
    const expected: string[] = []
    for (let id = 0; id < 50; id++) for (let m = 0; m < marks; m++) expected.push(`<${id}.${m}>`)
    for (const mark of expected) assert.ok(final.includes(mark), `mark ${mark} lost`)
    assert.equal(final.length, expected.join('').length, 'no mark written twice')
    // Each writer's marks are in its own order: no write was applied on top of a stale read.
    for (let id = 0; id < 50; id++) {
      const positions = Array.from({ length: marks }, (_, m) => final.indexOf(`<${id}.${m}>`))
      assert.deepEqual([...positions].sort((x, y) => x - y), positions)
    }
    assert.deepEqual(await readdir(directory), [fileOf(key)], 'no lock or temp file left')
    await store.close()
  })
})

