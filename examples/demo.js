// A small web app to click through: sign in, watch a visit counter, fill a cart, sign out.
// `npm start` runs it (after `npm install`, which builds dist/). The backend comes from the
// environment, named like Quart-Session's settings:
//
//   SESSION_TYPE      memory (default) | redis | memcached | filesystem
//   SESSION_URI       Redis URL (redis), e.g. redis://127.0.0.1:6379
//   SESSION_MEMCACHED memcached servers (memcached), host:port[,host:port…]
//   SESSION_FILE_DIR  folder of the session files (filesystem), default ./sessions
//   SECRET_KEY        signs the cookie (32+ characters); a random one per process when unset
//   PORT              port on 127.0.0.1 (0 = any free port), default 3000
import { randomBytes } from 'node:crypto'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { dirname, join } from 'node:path'
import Fastify from 'fastify'
import cookie from '@fastify/cookie'
import formbody from '@fastify/formbody'
import fastifyStatic from '@fastify/static'
import quartSession from 'fastify-quart-session'

const here = dirname(fileURLToPath(import.meta.url))
const MAX_ITEMS = 50
const MAX_TEXT = 100

/** The plugin options the environment asks for. */
export function sessionOptionsFrom (env) {
  const type = env.SESSION_TYPE || 'memory'
  const options = { type, secret: env.SECRET_KEY }
  if (type === 'redis' && env.SESSION_URI) options.uri = env.SESSION_URI
  if (type === 'memcached' && env.SESSION_MEMCACHED) options.servers = env.SESSION_MEMCACHED.split(',').map((s) => s.trim()).filter(Boolean)
  if (type === 'filesystem' && env.SESSION_FILE_DIR) options.directory = env.SESSION_FILE_DIR
  // The user's devices: sessions indexed by the signed-in name, with the browser and a coarse
  // address stored for the list. Memcached cannot keep a per-user index safely (docs/sessions.md).
  if (type !== 'memcached') Object.assign(options, { userId: 'username', deviceInfo: true })
  return options
}

/** The demo app, registered but not listening. */
export async function buildDemo (env = process.env) {
  const app = Fastify({ logger: { level: env.LOG_LEVEL || 'warn' } })
  const options = sessionOptionsFrom(env)
  if (!options.secret) {
    // Sessions signed with a per-process secret end when the process does: fine for a demo only.
    options.secret = randomBytes(48).toString('base64url')
    console.warn('SECRET_KEY is not set: using a random secret for this process (cookies from earlier runs will not verify)')
  }
  await app.register(cookie)
  await app.register(formbody)
  await app.register(quartSession, options)
  // Static files never load, save or send a session (staticFiles: false is the default).
  await app.register(fastifyStatic, { root: join(here, 'public'), prefix: '/static/' })

  app.get('/', async (request, reply) => {
    const session = request.session
    const username = session.get('username')
    reply.type('text/html; charset=utf-8').header('cache-control', 'no-store')
    if (username === undefined) return page(signedOut(options.type))
    const visits = (session.get('visits') ?? 0) + 1
    session.set('visits', visits)
    const devices = options.userId === undefined ? undefined : await request.sessionStore.listSessions(username, { current: session.handle })
    return page(signedIn(username, visits, session.get('cart') ?? [], options.type, devices))
  })

  // Sign out one of the user's other devices: its session ends at once, on its next request it is signed out.
  app.post('/devices/revoke', async (request, reply) => {
    const username = request.session.get('username')
    const handle = text(request.body?.handle)
    if (username !== undefined && handle !== '' && options.userId !== undefined) await request.sessionStore.revokeSession(username, handle)
    return reply.redirect('/', 303)
  })

  // "Sign out everywhere": every other session of the user, then this one (its cookie cleared too).
  app.post('/devices/revoke-all', async (request, reply) => {
    const username = request.session.get('username')
    if (username !== undefined && options.userId !== undefined) {
      await request.sessionStore.revokeUserSessions(username, { except: request.session.handle })
    }
    await request.session.destroy()
    return reply.redirect('/', 303)
  })

  app.post('/login', async (request, reply) => {
    const username = text(request.body?.username)
    if (username === '') return reply.redirect('/', 303)
    // A new id at login: a session id someone planted before sign-in is worth nothing after it.
    await request.session.regenerate()
    request.session.set('username', username)
    return reply.redirect('/', 303)
  })

  app.post('/cart', async (request, reply) => {
    const item = text(request.body?.item)
    if (request.session.get('username') !== undefined && item !== '') {
      const cart = request.session.get('cart') ?? []
      if (cart.length < MAX_ITEMS) request.session.set('cart', [...cart, item])
    }
    return reply.redirect('/', 303)
  })

  app.post('/logout', async (request, reply) => {
    await request.session.destroy()
    return reply.redirect('/', 303)
  })

  return app
}

/** Builds the demo and listens on 127.0.0.1; resolves the app and its URL. */
export async function startDemo (env = process.env) {
  const app = await buildDemo(env)
  const port = env.PORT === undefined || env.PORT === '' ? 3000 : Number(env.PORT)
  await app.listen({ port, host: '127.0.0.1' })
  return { app, url: `http://127.0.0.1:${app.server.address().port}/` }
}

function text (value) {
  return typeof value === 'string' ? value.trim().slice(0, MAX_TEXT) : ''
}

function escapeHtml (value) {
  return String(value).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c])
}

function page (body) {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>fastify-quart-session demo</title>
<link rel="stylesheet" href="/static/app.css">
</head>
<body>
<main>
<h1>fastify-quart-session</h1>
${body}
</main>
</body>
</html>
`
}

function signedOut (type) {
  return `<p class="lead">You are signed out. Sign in with any name: the session lives in the <strong>${escapeHtml(type)}</strong> backend, the cookie holds only its id.</p>
<form method="post" action="/login" class="row">
  <label for="username">Name</label>
  <input id="username" name="username" autocomplete="username" required maxlength="${MAX_TEXT}">
  <button type="submit">Sign in</button>
</form>`
}

function devicesSection (devices) {
  if (devices === undefined) return '<p class="hint">The device list needs a per-user index, which this backend does not keep.</p>'
  const rows = devices.map((device) => {
    const browser = escapeHtml(device.userAgent === undefined ? 'Unknown browser' : shortAgent(device.userAgent))
    const where = device.address === undefined ? '' : ` · ${escapeHtml(device.address)}`
    const when = `signed in ${escapeHtml(new Date(device.created).toISOString().slice(0, 19).replace('T', ' '))} UTC, last seen ${escapeHtml(new Date(device.lastSeen).toISOString().slice(11, 19))}`
    const action = device.current
      ? '<strong class="this-device">This device</strong>'
      : `<form method="post" action="/devices/revoke"><input type="hidden" name="handle" value="${escapeHtml(device.handle)}"><button type="submit" class="secondary">Sign out this device</button></form>`
    return `<li class="device${device.current ? ' current' : ''}" data-handle="${escapeHtml(device.handle)}"><span>${browser}${where}</span> <span class="hint">${when}</span> ${action}</li>`
  })
  return `<section>
<h2>Your devices</h2>
<ul id="devices">${rows.join('')}</ul>
<form method="post" action="/devices/revoke-all">
  <button type="submit" class="secondary">Sign out everywhere</button>
</form>
</section>`
}

/** "Chrome 140" or "Firefox 141" from a User-Agent header; the header itself otherwise. */
function shortAgent (agent) {
  const match = /(Firefox|Edg|Chrome|Safari)\/(\d+)/.exec(agent)
  if (match === null) return agent.slice(0, 60)
  return `${match[1] === 'Edg' ? 'Edge' : match[1]} ${match[2]}`
}

function signedIn (username, visits, cart, type, devices) {
  const items = cart.length === 0
    ? '<p class="empty">Your cart is empty.</p>'
    : `<ul id="cart">${cart.map((item) => `<li>${escapeHtml(item)}</li>`).join('')}</ul>`
  return `<p class="lead">Signed in as <strong id="username">${escapeHtml(username)}</strong></p>
<p>Visits this session: <strong id="visits">${visits}</strong> <span class="hint">(reload the page)</span></p>
<section>
<h2>Cart</h2>
${items}
<form method="post" action="/cart" class="row">
  <label for="item">Item</label>
  <input id="item" name="item" required maxlength="${MAX_TEXT}">
  <button type="submit">Add to cart</button>
</form>
</section>
${devicesSection(devices)}
<form method="post" action="/logout">
  <button type="submit" class="secondary">Sign out</button>
</form>
<p class="hint">Backend: ${escapeHtml(type)}</p>`
}

// `node examples/demo.js` (npm start) runs it; importing the module does not.
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { app, url } = await startDemo()
  console.log(url)
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.once(signal, () => { app.close().then(() => process.exit(0), () => process.exit(1)) })
  }
}
