// The save policy on its own, without a Fastify app or HTTP: sessions are SessionStates, the
// adapter a counting memory store.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { Backend } from '../lib/backend.js'
import { resolveOptions } from '../lib/options.js'
import { SessionCookie } from '../lib/cookie.js'
import { SessionState } from '../lib/state.js'
import { Session } from '../lib/session.js'
import { nowSeconds } from '../lib/lifetime.js'
import './helpers/session-data.js'
import { CountingStore } from './helpers/app.js'

function backendOn (store: CountingStore): Backend {
  const options = resolveOptions({ store })
  return new Backend(store, options, new SessionCookie(options.cookieName, options.cookie, options.maxAge), undefined)
}

/** A state for the session stored under `id`, as the load hook builds it. */
async function load (backend: Backend, id: string): Promise<SessionState> {
  const text = await backend.read(id)
  assert.ok(text !== undefined, 'stored')
  const decoded = backend.open(id, text)
  return new SessionState({ id, record: decoded.record, encoded: decoded, permanent: true, now: nowSeconds() })
}

async function create (backend: Backend, data: Record<string, unknown>): Promise<string> {
  const state = new SessionState({ permanent: true, now: nowSeconds() })
  Object.assign(state.data, data)
  state.changes.dirty = true
  await backend.persist(state)
  return state.id
}

describe('Backend', () => {
  it('saves of one session that arrive while one is written go out together: 20 saves, at most 2 compare-and-sets, nothing lost', async () => {
    const store = new CountingStore()
    const backend = backendOn(store)
    const id = await create(backend, { n: 0 })
    const states = await Promise.all(Array.from({ length: 20 }, async () => await load(backend, id)))
    store.reset()
    states.forEach((state, i) => {
      new Session(backend, state).set(`k${i}` as 'values', i)
      state.done = true
    })
    await Promise.all(states.map(async (state) => { await backend.persist(state) }))
    assert.ok(store.count('cas') <= 2, `compare-and-sets: ${store.count('cas')}`)
    assert.equal(store.count('get'), 0, 'no re-read: the queue knew the latest record')
    const after = await load(backend, id)
    for (let i = 0; i < 20; i++) assert.equal(after.data[`k${i}`], i)
  })

  it('a record another writer changed meanwhile is re-read and merged, not overwritten', async () => {
    const store = new CountingStore()
    const backend = backendOn(store)
    const other = backendOn(store)
    const id = await create(backend, { cart: { items: ['a'] } })
    const mine = await load(backend, id)
    const theirs = await load(other, id)
    ;(new Session(other, theirs).get('cart') as { items: string[] }).items.push('theirs')
    await other.persist(theirs)
    ;(new Session(backend, mine).get('cart') as { items: string[] }).items.push('mine')
    store.reset()
    await backend.persist(mine)
    assert.deepEqual(store.calls.map((c) => c.op), ['cas', 'get', 'cas'])
    assert.deepEqual(((await load(backend, id)).data.cart as { items: string[] }).items, ['a', 'theirs', 'mine'])
  })

  it('a session destroyed meanwhile stays gone: the save is dropped and the state says so', async () => {
    const store = new CountingStore()
    const backend = backendOn(store)
    const id = await create(backend, { user: 'u' })
    const held = await load(backend, id)
    await backend.destroy(await load(backend, id))
    new Session(backend, held).set('other', 'more')
    await backend.persist(held)
    assert.equal(await backend.read(id), undefined)
    assert.equal(held.isNew, true)
    assert.equal(held.sendCookie, false)
    assert.equal(held.clearCookie, false, 'the cookie is left to the request that ended the session')
  })

  it('updates run on the latest value, in queue order, and resolve with what was stored', async () => {
    const store = new CountingStore()
    const backend = backendOn(store)
    const id = await create(backend, { visits: 0 })
    const states = await Promise.all(Array.from({ length: 10 }, async () => await load(backend, id)))
    const results = await Promise.all(states.map(async (state) => {
      const value = new Promise<unknown>((resolve, reject) => {
        (state.changes.updates ??= []).push({ key: 'visits', fn: (v) => (v as number) + 1, applied: resolve, failed: reject })
      })
      await backend.persist(state)
      return await value
    }))
    assert.deepEqual([...results].sort((a, b) => (a as number) - (b as number)), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    assert.equal((await load(backend, id)).data.visits, 10)
  })
})
