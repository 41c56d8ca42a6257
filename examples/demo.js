import Fastify from 'fastify'
import cookie from '@fastify/cookie'
import quartSession from 'fastify-quart-session'

const app = Fastify()
await app.register(cookie)
// type: 'memory' is the default: no server needed. For Redis: { type: 'redis', uri: 'redis://localhost:6379' }
await app.register(quartSession, { secret: process.env.SESSION_SECRET ?? 'change-me-to-32-or-more-random-characters' })

app.get('/', async (request) => {
  request.session.set('foo', 'bar')
  return "session key 'foo' set"
})
app.get('/foo', async (request) => request.session.get('foo') ?? "session key 'foo' not found")
app.get('/visits', async (request) => {
  const visits = (request.session.get('visits') ?? 0) + 1
  request.session.set('visits', visits)
  return { visits }
})
app.get('/logout', async (request) => {
  await request.session.destroy()
  return 'session destroyed'
})
app.get('/cache', async function () {
  await this.sessionStore.set('random_key', 'val', 3600) // direct back-end use, expiry in seconds
  return this.sessionStore.get('random_key')
})
app.get('/app.css', { config: { session: false } }, async (request, reply) => {
  reply.type('text/css') // this route never loads, saves or sends a session cookie
  return 'body { font-family: sans-serif }'
})

const port = Number(process.env.PORT ?? 3000)
await app.listen({ port, host: '127.0.0.1' })
console.log(`Session demo running: open http://127.0.0.1:${app.server.address().port}/ then /foo, /visits, /logout`)
