// The README quick start is run exactly as printed; `npm start` runs the demo app (test/demo-browser.test.ts).
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { readFile, writeFile, rm } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { join } from 'node:path'
import { freePort } from './helpers/ports.js'

const root = fileURLToPath(new URL('..', import.meta.url))

async function quickStart (): Promise<string> {
  const readme = await readFile(join(root, 'README.md'), 'utf8')
  const section = readme.slice(readme.indexOf('## Quick start'))
  const match = /```js\n([\s\S]*?)```/.exec(section)
  assert.ok(match, 'the quick start has a js block')
  return match[1]
}

describe('README quick start', () => {
  it('npm start runs the demo app', async () => {
    const pkg = JSON.parse(await readFile(join(root, 'package.json'), 'utf8'))
    assert.equal(pkg.scripts.start, 'node examples/demo.js')
  })

  it('runs as printed: prints the URL, sets and reads the session, serves the opted-out route without a cookie', async () => {
    // Inside the package folder so `import 'fastify-quart-session'` resolves to this package.
    const file = join(root, `.quickstart-${process.pid}.mjs`)
    await writeFile(file, await quickStart())
    const port = await freePort()
    const child = spawn(process.execPath, [file], { cwd: root, env: { ...process.env, PORT: String(port) }, stdio: ['ignore', 'pipe', 'pipe'] })
    try {
      const output = await new Promise<string>((resolve, reject) => {
        let text = ''
        const timer = setTimeout(() => reject(new Error(`no URL printed: ${text}`)), 20000)
        child.stdout.on('data', (chunk) => {
          text += chunk
          if (text.includes('http://')) { clearTimeout(timer); resolve(text) }
        })
        child.stderr.on('data', (chunk) => { text += chunk })
        child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`exited ${code}: ${text}`)) })
      })
      assert.match(output, new RegExp(`http://127\\.0\\.0\\.1:${port}/`))
      const base = `http://127.0.0.1:${port}`
      const first = await fetch(`${base}/`)
      assert.equal(await first.text(), "session key 'foo' set")
      const setCookie = first.headers.get('set-cookie')
      assert.ok(setCookie)
      const cookie = setCookie.split(';')[0]
      const foo = await fetch(`${base}/foo`, { headers: { cookie } })
      assert.equal(await foo.text(), 'bar')
      assert.equal(foo.headers.get('set-cookie'), null)
      const fresh = await fetch(`${base}/foo`)
      assert.equal(await fresh.text(), "session key 'foo' not found")
      const cache = await fetch(`${base}/cache`)
      assert.equal(await cache.text(), 'val')
      const css = await fetch(`${base}/app.css`, { headers: { cookie } })
      assert.equal(css.headers.get('set-cookie'), null)
      const visits1 = await (await fetch(`${base}/visits`, { headers: { cookie } })).json()
      const visits2 = await (await fetch(`${base}/visits`, { headers: { cookie } })).json()
      assert.deepEqual([visits1, visits2], [{ visits: 1 }, { visits: 2 }])
      const logout = await fetch(`${base}/logout`, { headers: { cookie } })
      assert.match(logout.headers.get('set-cookie') ?? '', /Max-Age=0/)
    } finally {
      child.kill()
      await rm(file, { force: true })
    }
  })
})
