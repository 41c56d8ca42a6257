import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { userSessionSuite, deviceApp, login } from './helpers/user-sessions.js'
import { CountingStore, build } from './helpers/app.js'
import { MemoryStore } from '../lib/stores/memory.js'
import { coarse } from '../lib/users.js'

// The plugin's own memory store: the index gets a store of its own, outside maxEntries.
userSessionSuite('type memory', async () => ({ options: { type: 'memory' }, close: async () => {} }))
// A store given as `store`: the index lives in it, beside the sessions.
userSessionSuite('a MemoryStore given as store', async () => ({ options: { store: new MemoryStore() }, close: async () => {} }))

describe('per-user sessions: cost', () => {
  it('a logged-in read is one round trip with no index call; a session without a user costs nothing extra', async () => {
    const store = new CountingStore()
    const app = await deviceApp({ store })
    try {
      const a = await login(app, 'ada-cost')
      store.reset()
      await app.inject({ url: '/me', headers: { cookie: a.cookie } })
      assert.deepEqual(store.calls.map((c) => c.op), ['get'], 'one GET, no index call')
      store.reset()
      // A change that keeps the user: the record's compare-and-set only.
      await app.inject({ method: 'POST', url: '/note', headers: { cookie: a.cookie } })
      assert.deepEqual(store.calls.map((c) => c.op), ['get', 'cas'], 'the load and the write, no index call')
      store.reset()
      const anonymous = await app.inject({ method: 'POST', url: '/note' })
      assert.deepEqual(store.calls.map((c) => c.op), ['cas'], 'a session without a user: its create only')
      assert.equal(anonymous.statusCode, 200)
    } finally { await app.close() }
  })

  it('login and logout with the index: counted round trips', async () => {
    const store = new CountingStore()
    const app = await deviceApp({ store })
    try {
      store.reset()
      const a = await login(app, 'ada-count')
      const loginOps = store.calls.map((c) => c.op)
      store.reset()
      await app.inject({ method: 'POST', url: '/logout', headers: { cookie: a.cookie } })
      const logoutOps = store.calls.map((c) => c.op)
      // create; user item get + cas; slot get + cas
      assert.deepEqual(loginOps, ['cas', 'get', 'get', 'cas', 'get', 'cas'])
      // record get (load), delete, user item get + cas
      assert.deepEqual(logoutOps, ['get', 'delete', 'get', 'cas'])
    } finally { await app.close() }
  })
})

describe('per-user sessions: options', () => {
  it('refuses bad userId, maxSessionsPerUser and deviceInfo at ready() with the code', async () => {
    for (const options of [
      { userId: 42 }, { userId: '' }, { maxSessionsPerUser: 3 }, { userId: 'account', maxSessionsPerUser: 0 },
      { userId: 'account', maxSessionsPerUser: { limit: 2, policy: 'newest' } }, { userId: 'account', deviceInfo: 'yes' },
      { userId: 'account', deviceInfo: { agent: true } }
    ]) {
      await assert.rejects(build(options as never), { code: 'FST_QUART_SESSION_INVALID_OPTION' }, JSON.stringify(options))
    }
  })

  it('the direct store says what to set when there is no index', async () => {
    const app = await build({})
    try {
      await assert.rejects(app.sessionStore.listSessions('ada'), { code: 'FST_QUART_SESSION_NO_USER_INDEX' })
      await assert.rejects(app.sessionStore.revokeUserSessions('ada'), { code: 'FST_QUART_SESSION_NO_USER_INDEX' })
    } finally { await app.close() }
  })

  it('a user id that is an object fails the save with a code that says to give a function', async () => {
    const app = await build({ userId: 'user' }, (server) => {
      server.post('/bad', async (request) => { request.session.set('user', { id: 'u1', name: 'Ada' }); return 'ok' })
    })
    try {
      const response = await app.inject({ method: 'POST', url: '/bad' })
      assert.equal(response.statusCode, 500)
      assert.equal(response.json().code, 'FST_QUART_SESSION_INVALID_USER_ID')
    } finally { await app.close() }
  })

  it('userId as a function of the data (a stored user object, as @fastify/passport keeps it)', async () => {
    const app = await build({ userId: (data) => (data.user as { id?: string } | undefined)?.id }, (server) => {
      server.post('/login', async (request) => {
        await request.session.regenerate()
        request.session.set('user', { id: 'u1', name: 'Ada' })
        return { handle: request.session.handle }
      })
    })
    try {
      const response = await app.inject({ method: 'POST', url: '/login' })
      const list = await app.sessionStore.listSessions('u1')
      assert.deepEqual(list.map((s) => s.handle), [response.json().handle])
    } finally { await app.close() }
  })

  it('deviceInfo stores the User-Agent and a coarse address, only when asked', async () => {
    const app = await deviceApp({ deviceInfo: true })
    const plain = await deviceApp({})
    try {
      await login(app, 'ada-device', { 'user-agent': 'Firefox/140' })
      const [listed] = await app.sessionStore.listSessions('ada-device')
      assert.equal(listed.userAgent, 'Firefox/140')
      assert.equal(listed.address, '127.0.0.0/24')
      await login(plain, 'ada-device', { 'user-agent': 'Firefox/140' })
      const [bare] = await plain.sessionStore.listSessions('ada-device')
      assert.equal(bare.userAgent, undefined)
      assert.equal(bare.address, undefined)
    } finally { await app.close(); await plain.close() }
    assert.equal(coarse('203.0.113.77'), '203.0.113.0/24')
    assert.equal(coarse('::ffff:198.51.100.9'), '198.51.100.0/24')
    assert.equal(coarse('2001:db8:abcd:12::1'), '2001:db8:abcd::/48')
  })

  it('the direct store refuses keys in the index namespace', async () => {
    const app = await deviceApp({})
    try {
      await assert.rejects(app.sessionStore.set('session:users:x', 'forged'), { code: 'FST_QUART_SESSION_INVALID_ARGUMENT' })
      await assert.rejects(app.sessionStore.set('session:due:1:0', 'forged'), { code: 'FST_QUART_SESSION_INVALID_ARGUMENT' })
    } finally { await app.close() }
  })
})
