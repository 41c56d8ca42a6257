import { describe, it, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm, readdir } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import session from 'express-session'
import { userSessionSuite, deviceApp, login } from './helpers/user-sessions.js'
import { build } from './helpers/app.js'
import { startMemcached, type MemcachedServer } from './helpers/memcached-server.js'
import { connectStore } from '../lib/connect.js'
import { FilesystemStore } from '../lib/stores/filesystem.js'

const directories: string[] = []
after(async () => { for (const dir of directories) await rm(dir, { recursive: true, force: true }) })
async function tempDir (): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'quart-users-'))
  directories.push(dir)
  return dir
}

userSessionSuite('filesystem', async () => ({ options: { type: 'filesystem', directory: await tempDir() }, close: async () => {} }))

userSessionSuite('connectStore (express-session MemoryStore: no compare-and-set, last write wins)', async () => ({
  options: { store: connectStore(new session.MemoryStore()) }, close: async () => {}
}), { atomic: false })

describe('per-user sessions: filesystem layout', () => {
  it('the index lives in its own folder, outside the session files and their maxEntries', async () => {
    const directory = await tempDir()
    const app = await deviceApp({ type: 'filesystem', directory, maxEntries: 2 })
    try {
      await login(app, 'ada-fs')
      assert.ok((await readdir(directory)).includes('users'))
      assert.ok((await readdir(join(directory, 'users'))).some((name) => name.endsWith('.session')))
      // Another process on the same folder sees the same list.
      const other = await deviceApp({ type: 'filesystem', directory })
      try {
        assert.equal((await other.sessionStore.listSessions('ada-fs')).length, 1)
      } finally { await other.close() }
    } finally { await app.close() }
    // The index store is the plugin's: closed with the app (no timer left behind).
    assert.ok(new FilesystemStore({ directory }) !== undefined)
  })
})

describe('per-user sessions: memcached', () => {
  let server: MemcachedServer | undefined
  after(async () => { await server?.stop() })

  it('refuses userId at ready() with a code and the reason', async () => {
    server = await startMemcached()
    await assert.rejects(build({ type: 'memcached', servers: `127.0.0.1:${server.port}`, userId: 'account' }), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'FST_QUART_SESSION_INDEX_UNSUPPORTED')
      assert.match(err.message, /evict/)
      return true
    })
    // Without userId the same backend boots.
    const app = await build({ type: 'memcached', servers: `127.0.0.1:${server.port}` })
    await app.close()
  })
})
