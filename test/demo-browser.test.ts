// The `npm start` demo, clicked through in a real browser: Debian's chromium driven by
// playwright-core (never a downloaded browser), against `node examples/demo.js` run as a child
// process the way a user runs it, on several backends.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium, type Browser, type BrowserContext, type Page, type Response } from 'playwright-core'
import { startRedis, type RedisServer } from './helpers/redis-server.js'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const CHROMIUM = '/usr/bin/chromium'
const SCREENSHOT = join(root, 'docs', 'screenshot-signed-in.png')
const SECRET_KEY = 'demo-browser-test-secret-0123456789abcdef'
const missingBrowser = !existsSync(CHROMIUM)
const skip = missingBrowser && process.env.CI === undefined
  ? `${CHROMIUM} is missing (apt-get install chromium); .ci/run installs it and CI never skips this test`
  : false

// Just what the page scripts below use (the tests compile without the DOM library).
interface Window { getComputedStyle: (element: unknown) => { backgroundColor: string } }

interface Demo { url: string, child: ChildProcess, output: () => string, stop: () => Promise<void> }
const demos = new Set<ChildProcess>()
process.once('exit', () => { for (const child of demos) child.kill('SIGKILL') })

/** `node examples/demo.js` with PORT=0: resolves once it printed the URL it listens on. */
async function startDemo (env: Record<string, string>): Promise<Demo> {
  assert.ok(existsSync(join(root, 'dist', 'lib', 'index.js')), 'the demo runs the built package: run `npm run build` first')
  const child = spawn(process.execPath, [join(root, 'examples', 'demo.js')], {
    cwd: root,
    env: { ...process.env, PORT: '0', SECRET_KEY, ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  demos.add(child)
  let output = ''
  const exited = new Promise<void>((resolve) => child.once('exit', () => { demos.delete(child); resolve() }))
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => { reject(new Error(`demo did not print its URL within 20 s:\n${output}`)) }, 20_000)
    child.stderr!.on('data', (chunk: Buffer) => { output += chunk.toString() })
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString()
      const match = /^(http:\/\/127\.0\.0\.1:\d+\/)$/m.exec(output)
      if (match !== null) { clearTimeout(timer); resolve(match[1]) }
    })
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`demo exited with ${String(code)}:\n${output}`)) })
  })
  return {
    url,
    child,
    output: () => output,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
      await exited
    }
  }
}

async function sessionCookie (context: BrowserContext): Promise<Awaited<ReturnType<BrowserContext['cookies']>>[number] | undefined> {
  return (await context.cookies()).find((c) => c.name === 'session')
}

async function visits (page: Page): Promise<number> {
  return Number(await page.locator('#visits').textContent())
}

async function cartItems (page: Page): Promise<string[]> {
  return await page.locator('#cart li').allTextContents()
}

async function signIn (page: Page, url: string, username: string): Promise<void> {
  await page.goto(url)
  await page.locator('form[action="/login"] input[name="username"]').fill(username)
  await Promise.all([page.waitForURL(url), page.locator('form[action="/login"] button[type="submit"]').click()])
}

async function addToCart (page: Page, item: string): Promise<void> {
  await page.locator('form[action="/cart"] input[name="item"]').fill(item)
  await Promise.all([page.waitForURL(page.url()), page.locator('form[action="/cart"] button[type="submit"]').click()])
  await page.locator('#cart').waitFor()
}

describe('demo app in a real browser', { skip }, () => {
  let browser: Browser
  let redis: RedisServer | undefined
  const temps: string[] = []

  before(async () => {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync']
    })
  })
  after(async () => {
    await browser?.close()
    await redis?.stop()
    for (const dir of temps) await rm(dir, { recursive: true, force: true })
  })

  const backends: Array<{ name: string, env: () => Promise<Record<string, string>>, screenshot?: boolean }> = [
    { name: 'memory', env: async () => ({ SESSION_TYPE: 'memory' }), screenshot: true },
    {
      name: 'filesystem',
      env: async () => {
        const dir = await mkdtemp(join(tmpdir(), 'quart-demo-'))
        temps.push(dir)
        return { SESSION_TYPE: 'filesystem', SESSION_FILE_DIR: join(dir, 'sessions') }
      }
    },
    {
      name: 'redis',
      env: async () => {
        redis ??= await startRedis()
        return { SESSION_TYPE: 'redis', SESSION_URI: redis.url }
      }
    }
  ]

  for (const backend of backends) {
    it(`signs in, counts, fills a cart and signs out (${backend.name})`, { timeout: 60_000 }, async () => {
      const env = await backend.env()
      const demo = await startDemo(env)
      const first = await browser.newContext({ viewport: { width: 900, height: 560 } })
      const second = await browser.newContext()
      try {
        const page = await first.newPage()
        const css: Response[] = []
        page.on('response', (response) => { if (response.url().endsWith('/static/app.css')) css.push(response) })

        // Signed out: a form, and no cookie for merely looking.
        await page.goto(demo.url)
        assert.equal(await page.locator('form[action="/login"][method="post"] input[name="username"]').count(), 1)
        assert.equal(await page.locator('form[action="/login"] button[type="submit"]').count(), 1)
        assert.equal(await sessionCookie(first), undefined, 'no session cookie before signing in')

        // Markup in the name must come out as text; the screenshot gets a plain name.
        const username = backend.screenshot === true ? 'Ada Lovelace' : 'Ada <b>&amp; "Lovelace"</b>'
        await signIn(page, demo.url, username)
        assert.equal(await page.locator('.lead').textContent(), `Signed in as ${username}`)
        assert.equal(await page.locator('.lead b').count(), 0, 'the username is escaped, not markup')
        assert.doesNotMatch(await page.content(), /<b>&amp;/)
        assert.equal(await visits(page), 1)

        await page.reload()
        assert.equal(await page.locator('#username').textContent(), username, 'reload keeps the user')
        assert.equal(await visits(page), 2)
        await page.reload()
        assert.equal(await visits(page), 3)

        await addToCart(page, 'apple')
        await addToCart(page, 'pear & <plum>')
        assert.deepEqual(await cartItems(page), ['apple', 'pear & <plum>'])
        assert.equal(await visits(page), 5, 'each cart post redirects to /, which counts a visit')

        const cookie = await sessionCookie(first)
        assert.ok(cookie !== undefined, 'a session cookie after signing in')
        assert.equal(cookie.httpOnly, true)
        assert.equal(cookie.sameSite, 'Lax')
        assert.equal(cookie.path, '/')
        const visible = await page.evaluate<string>('document.cookie')
        assert.doesNotMatch(visible, /session=/, 'the session cookie is invisible to scripts')

        assert.ok(css.length > 0, 'the page loaded its stylesheet')
        for (const response of css) {
          assert.equal(response.status() === 200 || response.status() === 304, true)
          assert.equal((await response.allHeaders())['set-cookie'], undefined, 'no Set-Cookie on the stylesheet')
        }
        const buttonColor = await page.locator('form[action="/cart"] button').evaluate((el) => (globalThis as unknown as Window).getComputedStyle(el).backgroundColor)
        assert.equal(buttonColor, 'rgb(15, 110, 90)', 'the stylesheet applied')

        if (backend.screenshot === true) await page.screenshot({ path: SCREENSHOT, fullPage: true })

        // Another browser (its own cookie jar) does not see the first user's session.
        const other = await second.newPage()
        await other.goto(demo.url)
        assert.equal(await other.locator('form[action="/login"] input[name="username"]').count(), 1)
        assert.doesNotMatch(await other.content(), /Lovelace|apple/)

        if (backend.name === 'filesystem') {
          // Restart the app on the same directory: the browser is still signed in.
          await demo.stop()
          const again = await startDemo(env)
          try {
            await page.goto(again.url)
            assert.equal(await page.locator('#username').textContent(), username, 'the session survived the restart')
            assert.deepEqual(await cartItems(page), ['apple', 'pear & <plum>'])
            await signOut(page, first, again.url)
            // The per-user index has a folder of its own there (users/); no session file is left.
            assert.deepEqual((await readdir(env.SESSION_FILE_DIR)).filter((name) => name !== 'users'), [], 'the session file is gone after sign-out')
          } finally {
            await again.stop()
          }
        } else {
          await signOut(page, first, demo.url)
        }
      } catch (error) {
        throw new Error(`${(error as Error).message}\n--- demo output ---\n${demo.output()}`, { cause: error })
      } finally {
        await first.close()
        await second.close()
        await demo.stop()
      }
    })
  }

  for (const backend of backends.filter((b) => b.name !== 'filesystem')) {
    it(`lists the user's devices; one signs out another, then everywhere (${backend.name})`, { timeout: 60_000 }, async () => {
      const demo = await startDemo(await backend.env())
      const contexts = await Promise.all([1, 2, 3].map(async (n) => await browser.newContext({ userAgent: `Mozilla/5.0 Chrome/${130 + n}.0 Safari/537.36` })))
      try {
        const [laptop, phone, tablet] = await Promise.all(contexts.map(async (context) => await context.newPage()))
        const user = `Grace ${backend.name}`
        // Two devices: each lists both, itself marked. (A fresh navigation rather than reload():
        // right after a form post's redirect, Chromium may still be swapping the page's frame.)
        await signIn(laptop, demo.url, user)
        await signIn(phone, demo.url, user)
        await laptop.goto(demo.url)
        assert.equal(await laptop.locator('#devices li').count(), 2)
        assert.equal(await laptop.locator('#devices li.current').count(), 1)
        assert.match(await laptop.locator('#devices li.current').textContent() ?? '', /Chrome 131/, 'this device is the laptop')
        assert.match(await laptop.locator('#devices li.current').textContent() ?? '', /This device/)
        assert.equal(await laptop.locator('#devices li.current form').count(), 0, 'no revoke button on this device')
        assert.match(await laptop.locator('#devices li:not(.current)').textContent() ?? '', /Chrome 132/)
        assert.match(await laptop.locator('#devices li:not(.current)').textContent() ?? '', /127\.0\.0\.0\/24/, 'a coarse address')

        // The laptop signs out the phone: the phone is signed out on its next request.
        await Promise.all([laptop.waitForURL(demo.url), laptop.locator('#devices li:not(.current) form[action="/devices/revoke"] button').click()])
        assert.equal(await laptop.locator('#devices li').count(), 1, 'the phone is gone from the list')
        assert.equal(await laptop.locator('#username').textContent(), user, 'the laptop stays signed in')
        await phone.goto(demo.url)
        assert.equal(await phone.locator('form[action="/login"]').count(), 1, 'the phone is signed out')

        // Three devices; "sign out everywhere" from the tablet signs out all of them.
        await signIn(phone, demo.url, user)
        await signIn(tablet, demo.url, user)
        await tablet.goto(demo.url)
        assert.equal(await tablet.locator('#devices li').count(), 3)
        assert.equal(await tablet.locator('#devices li.current').count(), 1)
        await Promise.all([tablet.waitForURL(demo.url), tablet.locator('form[action="/devices/revoke-all"] button').click()])
        for (const page of [tablet, laptop, phone]) {
          await page.goto(demo.url)
          assert.equal(await page.locator('form[action="/login"]').count(), 1, 'signed out everywhere')
        }
        assert.equal(await sessionCookie(contexts[2]), undefined, 'the tablet\'s cookie is cleared')
      } catch (error) {
        throw new Error(`${(error as Error).message}\n--- demo output ---\n${demo.output()}`, { cause: error })
      } finally {
        for (const context of contexts) await context.close()
        await demo.stop()
      }
    })
  }
})

async function signOut (page: Page, context: BrowserContext, url: string): Promise<void> {
  // The browser may still hold the stylesheet from the last page; the port changes across restarts.
  await page.goto(url)
  await Promise.all([page.waitForURL(url), page.locator('form[action="/logout"] button[type="submit"]').click()])
  assert.equal(await page.locator('form[action="/login"] input[name="username"]').count(), 1, 'signed out')
  assert.equal(await sessionCookie(context), undefined, 'the session cookie is gone')
  await page.reload()
  assert.equal(await page.locator('form[action="/login"]').count(), 1, 'still signed out after a reload')
}
