// The plugin on a real Redis or Memcached server, for the tests that run against both.
import assert from 'node:assert/strict'
import type { FastifyInstance } from 'fastify'
import type { QuartSessionOptions } from '../../lib/index.js'
import { build, cookieOf, sessionOf, sessionRoutes } from './app.js'
import { assertServiceUnavailable, eventually } from './assertions.js'

export async function backendApp (options: QuartSessionOptions): Promise<FastifyInstance> {
  return await build(options, (app) => {
    sessionRoutes(app)
    app.get('/cache', async function () {
      await this.sessionStore.set('random_key', 'val', 3600)
      return await this.sessionStore.get('random_key')
    })
    app.get('/app.css', { config: { session: false } }, async () => 'body {}')
  })
}

/**
 * Stops the server under a running `backendApp` (built with a short timeout): sessioned requests
 * fail with a 503 error reply, opted-out routes still answer, and once the server is restarted
 * the app works again without being touched.
 */
export async function assertOutageAndRecovery (
  app: FastifyInstance,
  server: { stop: () => Promise<void>, restart: () => Promise<void> }
): Promise<void> {
  const { cookie } = sessionOf(await app.inject('/set'))
  await server.stop()

  assertServiceUnavailable(await app.inject({ url: '/read', headers: { cookie } }))
  const write = await app.inject('/set')
  assertServiceUnavailable(write)
  assert.equal(cookieOf(write), undefined, 'no cookie for a session that was not stored')

  const asset = await app.inject('/app.css')
  assert.equal(asset.statusCode, 200)
  assert.equal(asset.body, 'body {}')

  await server.restart()
  // The restarted server is empty (nothing is persisted): the old cookie starts a new session.
  let fresh = ''
  await eventually(async () => {
    const response = await app.inject('/set')
    assert.equal(response.statusCode, 200)
    fresh = sessionOf(response).cookie
  })
  const read = await app.inject({ url: '/read', headers: { cookie: fresh } })
  assert.equal(read.statusCode, 200)
  assert.equal(read.body, 'bar')
}
