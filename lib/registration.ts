import type { FastifyInstance } from 'fastify'
import { FST_QUART_SESSION_ALREADY_REGISTERED, FST_QUART_SESSION_NO_COOKIE_PLUGIN } from './errors.js'

/**
 * The checks fastify-plugin's `dependencies` and Fastify's decorators would make, with messages
 * that say what to do: Fastify's own ("dependency … is not registered", "The decorator
 * 'sessionStore' has already been added!") name neither the fix nor the plugin at fault. They run
 * in the plugin body, when every plugin registered before this one has loaded, so the un-awaited
 * `app.register(cookie); app.register(quartSession)` passes.
 */
export function checkRegistration (fastify: FastifyInstance): void {
  if (fastify.hasRequestDecorator('session')) throw new FST_QUART_SESSION_ALREADY_REGISTERED(sessionProvider(fastify))
  if (!fastify.hasPlugin('@fastify/cookie')) throw new FST_QUART_SESSION_NO_COOKIE_PLUGIN()
}

function sessionProvider (fastify: FastifyInstance): string {
  for (const name of ['@fastify/session', '@fastify/secure-session']) {
    if (fastify.hasPlugin(name)) return `${name} (it and fastify-quart-session cannot share an app)`
  }
  // Our own name is in the plugin list already (Fastify adds it before this body runs): the
  // decorator is what tells an earlier registration of this plugin apart.
  if (fastify.hasDecorator('sessionStore')) return 'an earlier registration of fastify-quart-session'
  return 'another plugin'
}
