import { describe, it, after } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { build, sessionOf, sessionRoutes, cookieOf, SECRET } from './helpers/app.js'
import { assertServiceUnavailable } from './helpers/assertions.js'
import { sessionKey } from './helpers/keys.js'

const temps: string[] = []
async function tempDir (): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'quart-fs-plugin-'))
  temps.push(dir)
  return dir
}
after(async () => { for (const dir of temps) await rm(dir, { recursive: true, force: true }) })

const fileOf = (key: string): string => `${createHash('sha256').update(key).digest('hex')}.session`

async function fsApp (directory: string): Promise<Awaited<ReturnType<typeof build>>> {
  return await build({ type: 'filesystem', directory }, (app) => {
    sessionRoutes(app)
    app.get('/app.css', { config: { session: false } }, async () => 'body {}')
  })
}

describe('type: filesystem through the plugin', () => {
  it('keeps a session across a restart: close the app, start a new one on the same directory', async () => {
    const directory = join(await tempDir(), 'sessions')
    const first = await fsApp(directory)
    const { cookie, id } = sessionOf(await first.inject('/set'))
    assert.equal((await first.inject({ url: '/counter', headers: { cookie } })).body, '1')
    await first.close()

    const second = await fsApp(directory)
    const read = await second.inject({ url: '/read', headers: { cookie } })
    assert.equal(read.statusCode, 200)
    assert.equal(read.body, 'bar')
    assert.equal((await second.inject({ url: '/counter', headers: { cookie } })).body, '2')
    assert.deepEqual(await readdir(directory), [fileOf(sessionKey(id))], 'one file, named from the prefixed key')
    await second.close()
  })

  it('creates the directory 0700 and the session file 0600', async () => {
    const directory = join(await tempDir(), 'made-by-the-plugin')
    const app = await fsApp(directory)
    assert.equal((await stat(directory)).mode & 0o777, 0o700)
    const { id } = sessionOf(await app.inject('/set'))
    assert.equal((await stat(join(directory, fileOf(sessionKey(id))))).mode & 0o777, 0o600)
    await app.close()
  })

  it('passes fileMode to the store', async () => {
    const directory = await tempDir()
    const app = await build({ type: 'filesystem', directory, fileMode: 0o640 }, sessionRoutes)
    const { id } = sessionOf(await app.inject('/set'))
    assert.equal((await stat(join(directory, fileOf(sessionKey(id))))).mode & 0o777, 0o640)
    await app.close()
  })

  it('destroy() removes the session file', async () => {
    const directory = await tempDir()
    const app = await fsApp(directory)
    const { cookie } = sessionOf(await app.inject('/set'))
    assert.equal((await readdir(directory)).length, 1)
    const out = await app.inject({ url: '/logout', headers: { cookie } })
    assert.equal(out.statusCode, 200)
    assert.deepEqual(await readdir(directory), [])
    await app.close()
  })

  it('direct back-end use works and never collides with session files', async () => {
    const directory = await tempDir()
    const app = await build({ type: 'filesystem', directory, secret: SECRET }, sessionRoutes)
    await app.sessionStore.set('random_key', 'val', 3600)
    assert.equal(await app.sessionStore.get('random_key'), 'val')
    await app.sessionStore.delete('random_key')
    assert.equal(await app.sessionStore.get('random_key'), undefined)
    await app.close()
  })

  it('ready() fails with FST_QUART_SESSION_CONNECT when the directory cannot be made (path under a regular file)', async () => {
    const parent = await tempDir()
    await writeFile(join(parent, 'file'), 'x')
    await assert.rejects(fsApp(join(parent, 'file', 'sessions')), { code: 'FST_QUART_SESSION_CONNECT' })
  })

  it('a directory that disappears under a running app (replaced by a file) gives 503 FST_QUART_SESSION_BACKEND, the process lives on, opted-out routes answer, and it recovers', async () => {
    const directory = join(await tempDir(), 'sessions')
    const app = await fsApp(directory)
    const { cookie } = sessionOf(await app.inject('/set'))
    await rm(directory, { recursive: true })
    await writeFile(directory, 'a file where the directory was')

    const read = await app.inject({ url: '/read', headers: { cookie } })
    assertServiceUnavailable(read)
    assert.equal(read.json().code, 'FST_QUART_SESSION_BACKEND')
    assert.doesNotMatch(read.body, /ENOTDIR|sessions/)
    const write = await app.inject('/set')
    assertServiceUnavailable(write)
    assert.equal(cookieOf(write), undefined, 'no cookie for a session that was not stored')
    assert.equal((await app.inject('/app.css')).body, 'body {}')

    await rm(directory)
    const again = await app.inject('/set')
    assert.equal(again.statusCode, 200)
    const fresh = sessionOf(again).cookie
    assert.equal((await app.inject({ url: '/read', headers: { cookie: fresh } })).body, 'bar')
    await app.close()
  })
})
