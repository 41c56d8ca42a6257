// redis, ioredis and memcached are optional peer dependencies: an app that uses the memory store
// installs none of them, and one that asks for a backend whose package is missing is told the
// command to run. The built package is copied into a folder whose node_modules lacks them.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { cp, mkdtemp, mkdir, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

const root = fileURLToPath(new URL('..', import.meta.url))
const run = promisify(execFile)

// What the package needs at run time, plus what the app script uses.
const PRESENT = ['fastify', '@fastify/cookie', 'fastify-plugin', 'devalue', '@fastify/error']

describe('optional peer dependencies', () => {
  let app: string

  before(async () => {
    app = await mkdtemp(join(tmpdir(), 'quart-peers-'))
    const pkg = join(app, 'node_modules', 'fastify-quart-session')
    await mkdir(pkg, { recursive: true })
    await cp(join(root, 'dist'), join(pkg, 'dist'), { recursive: true })
    await cp(join(root, 'package.json'), join(pkg, 'package.json'))
    for (const name of PRESENT) {
      const target = join(app, 'node_modules', name)
      await mkdir(join(target, '..'), { recursive: true })
      await symlink(join(root, 'node_modules', name), target, 'dir')
    }
    await writeFile(join(app, 'app.mjs'), `
import Fastify from 'fastify'
import cookie from '@fastify/cookie'
import quartSession from 'fastify-quart-session'

const options = JSON.parse(process.argv[2])
const app = Fastify()
await app.register(cookie)
app.register(quartSession, options)
app.get('/', async (request) => { request.session.set('foo', 'bar'); return 'ok' })
try {
  await app.ready()
  const response = await app.inject('/')
  console.log(JSON.stringify({ status: response.statusCode, cookie: response.headers['set-cookie'] !== undefined }))
} catch (err) {
  console.log(JSON.stringify({ code: err.code, message: err.message }))
}
await app.close()
`)
  })
  after(async () => { await rm(app, { recursive: true, force: true }) })

  async function start (options: object): Promise<Record<string, unknown>> {
    const { stdout } = await run(process.execPath, [join(app, 'app.mjs'), JSON.stringify(options)], { cwd: app, timeout: 60_000 })
    return JSON.parse(stdout.trim().split('\n').pop() as string)
  }

  it('a memory-only app runs without redis, ioredis or memcached installed', async () => {
    assert.deepEqual(await start({}), { status: 200, cookie: true })
  })

  it('the filesystem store needs no package either', async () => {
    const directory = join(app, 'sessions')
    assert.deepEqual(await start({ type: 'filesystem', directory }), { status: 200, cookie: true })
  })

  for (const [type, pkg] of [['redis', 'redis'], ['memcached', 'memcached']] as const) {
    it(`type: '${type}' without the ${pkg} package fails ready() with the npm install command`, async () => {
      const result = await start({ type })
      assert.equal(result.code, 'FST_QUART_SESSION_MISSING_PACKAGE')
      assert.match(result.message as string, new RegExp(`npm install ${pkg}`))
    })
  }
})
