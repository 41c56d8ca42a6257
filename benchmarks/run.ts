/**
 * `npm run bench`: starts its own redis-server and memcached on loopback, then, round after round,
 * starts each server variant in a child process, drives its routes with autocannon from this
 * process, and reports requests/s, latency, Set-Cookie, backend commands and server CPU per request.
 * See benchmarks/README.md.
 */
import autocannon, { type Instance, type Result } from 'autocannon'
import { execFileSync, fork, type ChildProcess } from 'node:child_process'
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { cpus, release, type as osType } from 'node:os'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { setTimeout as sleep } from 'node:timers/promises'
import { startFilesystem, startMemcached, startRedis, statsDelta, type Backend } from './backends.js'
import { renderChart } from './chart.js'
import { foreignCores, machineBusyMicros, processMicros } from './machine.js'
import { checkTargets, renderMarkdown, summarize, type Cell, type Meta, type RaceCount } from './report.js'
import {
  ROUTE_SPECS, ROUTES, VARIANT_BACKEND, VARIANT_ROUTES, VARIANTS,
  type BackendName, type ChildMessage, type ParentMessage, type RaceDump, type RouteName, type RouteSpec, type VariantName
} from './protocol.js'

const here = (path: string): string => fileURLToPath(new URL(path, import.meta.url))
const SERVER_ENTRY = here('./server.ts')
const RESULTS_DIR = here('./results/')
const README = here('./README.md')
const README_START = '<!-- bench:latest:start -->'
const README_END = '<!-- bench:latest:end -->'

// Same shape of cookie as a signed session cookie, for variants that hand out none: every
// request that should carry a cookie then sends about the same bytes whatever the variant.
const PLACEHOLDER_COOKIE = 'session=bm9uZS1pc3N1ZWQtYnktdGhpcy12YXJpYW50LXBsYWNlaG9sZGVy.c2lnbmF0dXJlLXBsYWNlaG9sZGVyLWZvci1iYXJl'

interface Options {
  duration: number
  /** Seconds measured per /race and /hot-update cell: their result is a count (lost updates), not a ratio to hold to a few percent. */
  raceDuration: number
  warmup: number
  rounds: number
  connections: number
  samples: number
  variants: VariantName[]
  routes: RouteName[]
  cpuProf: boolean
  updateReadme: boolean
  slice: number
  retries: number
  retryBudget: number
  maxForeign: number
  pin: boolean
  /** Re-render the report from this saved latest.json instead of measuring. */
  from: string | undefined
}

/** A wrong flag or variable: the message says it all, no stack trace needed. */
class UsageError extends Error {}

function readOptions (): Options {
  const { values } = parseArgs({
    options: {
      duration: { type: 'string' },
      'race-duration': { type: 'string' },
      warmup: { type: 'string' },
      rounds: { type: 'string' },
      connections: { type: 'string' },
      samples: { type: 'string' },
      slice: { type: 'string' },
      retries: { type: 'string' },
      'retry-budget': { type: 'string' },
      'max-foreign': { type: 'string' },
      pin: { type: 'boolean' },
      variants: { type: 'string' },
      routes: { type: 'string' },
      'cpu-prof': { type: 'boolean' },
      'update-readme': { type: 'boolean' },
      from: { type: 'string' },
      help: { type: 'boolean', short: 'h' }
    }
  })
  if (values.help === true) {
    process.stdout.write(`npm run bench -- [--duration s] [--race-duration s] [--slice s] [--warmup s] [--rounds n] [--connections n] [--samples n]
                        [--retries n] [--retry-budget s] [--max-foreign cores] [--pin]
                        [--variants a,b] [--routes /a,/b] [--cpu-prof] [--update-readme]
                        [--from results/latest.json]   (render the report again, measure nothing)
Each flag also reads from the environment: BENCH_DURATION, BENCH_RACE_DURATION, BENCH_SLICE, BENCH_WARMUP, BENCH_ROUNDS, BENCH_CONNECTIONS,
BENCH_SAMPLES, BENCH_RETRIES, BENCH_RETRY_BUDGET, BENCH_MAX_FOREIGN, BENCH_PIN=1, BENCH_VARIANTS,
BENCH_ROUTES, BENCH_CPU_PROF=1, BENCH_UPDATE_README=1. See benchmarks/README.md.
Variants: ${VARIANTS.join(', ')}. Routes: ${ROUTES.join(', ')}.
`)
    process.exit(0)
  }
  const pick = (flag: string | undefined, name: string): string | undefined => flag ?? (process.env[name] !== '' ? process.env[name] : undefined)
  const number = (flag: string | undefined, name: string, fallback: number, min: number, max: number): number => {
    const text = pick(flag, name)
    if (text === undefined) return fallback
    const value = Number(text)
    if (!Number.isFinite(value) || value < min || value > max) throw new UsageError(`${name} / --${name.slice(6).toLowerCase().replace(/_/g, '-')} must be a number from ${min} to ${max}, got ${text}`)
    return value
  }
  const list = <T extends string>(flag: string | undefined, name: string, all: readonly T[]): T[] => {
    const text = pick(flag, name)
    if (text === undefined) return [...all]
    const chosen = text.split(',').map((s) => s.trim()).filter((s) => s !== '')
    for (const item of chosen) if (!all.includes(item as T)) throw new UsageError(`${name}: unknown ${JSON.stringify(item)}; choose from ${all.join(', ')}`)
    // Keep the canonical order so that rounds alternate the same way whatever the flag's order.
    return all.filter((item) => chosen.includes(item))
  }
  const flag = (value: boolean | undefined, name: string): boolean => value ?? (process.env[name] === '1' || process.env[name] === 'true')
  return {
    duration: number(values.duration, 'BENCH_DURATION', 4, 0.5, 120),
    raceDuration: number(values['race-duration'], 'BENCH_RACE_DURATION', 2, 0.5, 120),
    warmup: number(values.warmup, 'BENCH_WARMUP', 1, 0, 60),
    rounds: Math.round(number(values.rounds, 'BENCH_ROUNDS', 3, 1, 20)),
    connections: Math.round(number(values.connections, 'BENCH_CONNECTIONS', 10, 1, 1000)),
    samples: Math.round(number(values.samples, 'BENCH_SAMPLES', 20, 1, 1000)),
    slice: number(values.slice, 'BENCH_SLICE', 1, 0.5, 120),
    retries: Math.round(number(values.retries, 'BENCH_RETRIES', 2, 0, 10)),
    retryBudget: number(values['retry-budget'], 'BENCH_RETRY_BUDGET', 180, 0, 3600),
    maxForeign: number(values['max-foreign'], 'BENCH_MAX_FOREIGN', 0.15, 0, 64),
    variants: list(values.variants, 'BENCH_VARIANTS', VARIANTS),
    routes: list(values.routes, 'BENCH_ROUTES', ROUTES),
    cpuProf: flag(values['cpu-prof'], 'BENCH_CPU_PROF'),
    updateReadme: flag(values['update-readme'], 'BENCH_UPDATE_README'),
    pin: flag(values.pin, 'BENCH_PIN'),
    from: values.from
  }
}

const log = (line: string): void => { process.stderr.write(`${line}\n`) }

// With --pin, the server under test gets the last core to itself and everything else (this
// process, autocannon, redis-server, memcached) shares the others.
const SERVER_CPU = String(cpus().length - 1)
const OTHER_CPUS = cpus().length > 1 ? `0-${cpus().length - 2}` : '0'

let pinWarned = false
function pin (pid: number | undefined, cpuList: string): void {
  if (pid === undefined) return
  try {
    // -a: every thread, V8's helpers and libuv's pool included.
    execFileSync('taskset', ['-a', '-p', '-c', cpuList, String(pid)], { stdio: 'ignore' })
  } catch (err) {
    if (!pinWarned) log(`--pin: taskset failed (${err instanceof Error ? err.message : String(err)}); running unpinned`)
    pinWarned = true
  }
}

/** Everything that must not outlive the run: backends, the current child, the current load. */
const running = {
  backends: [] as Backend[],
  children: new Set<ChildProcess>(),
  loads: new Set<Instance>()
}

async function cleanUp (): Promise<void> {
  for (const instance of running.loads) instance.stop()
  for (const child of running.children) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  }
  running.children.clear()
  await Promise.allSettled(running.backends.map(async (backend) => { await backend.stop() }))
  running.backends = []
}

let interrupted = false
function onSignal (signal: NodeJS.Signals): void {
  if (interrupted) return
  interrupted = true
  log(`\n${signal}: stopping servers`)
  // Bounded: whatever hangs in clean-up, the process still ends.
  setTimeout(() => process.exit(130), 5000).unref()
  void cleanUp().finally(() => process.exit(130))
}
process.on('SIGINT', onSignal)
process.on('SIGTERM', onSignal)
// Last resort if the process dies another way: no server process stays behind.
process.on('exit', () => {
  for (const child of running.children) child.kill('SIGKILL')
})

/** A started variant server and the parent's side of its IPC channel. */
interface ServerChild {
  port: number
  pid: number | undefined
  cpu (): Promise<number>
  close (): Promise<void>
}

/** Where the child servers find the backends: ports, and the filesystem store's folder. */
interface BackendPlaces { redis?: number, memcached?: number, directory?: string }

async function startChild (variant: VariantName, places: BackendPlaces, profileName: string | undefined): Promise<ServerChild> {
  const execArgv = ['--import', 'tsx', ...(process.env.BENCH_NODE_FLAGS ?? '').split(' ').filter(Boolean)]
  // tsx's loader runs on a thread of its own that --cpu-prof profiles too: each child writes
  // into a folder of its own, and close() keeps the main thread's profile under a plain name.
  const profileDir = profileName === undefined ? undefined : here(`./results/profiles/${profileName}.tmp/`)
  if (profileDir !== undefined) {
    rmSync(profileDir, { recursive: true, force: true })
    mkdirSync(profileDir, { recursive: true })
    execArgv.push('--cpu-prof', `--cpu-prof-dir=${profileDir}`)
  }
  const child = fork(SERVER_ENTRY, [], {
    execArgv,
    env: {
      ...process.env,
      NODE_ENV: 'production',
      BENCH_VARIANT: variant,
      BENCH_REDIS_PORT: String(places.redis ?? ''),
      BENCH_MEMCACHED_PORT: String(places.memcached ?? ''),
      BENCH_FS_DIR: places.directory ?? ''
    },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc']
  })
  running.children.add(child)
  const waiting = new Map<number, (micros: number) => void>()
  let nextId = 0
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${variant} server did not start within 30 s`)), 30_000)
    child.on('message', (message: ChildMessage) => {
      if (message.type === 'ready') { clearTimeout(timer); resolve(message.port) }
      if (message.type === 'cpu') {
        waiting.get(message.id)?.(message.user + message.system)
        waiting.delete(message.id)
      }
    })
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`${variant} server exited with ${String(code)} before it was ready`)) })
  })
  const send = (message: ParentMessage): void => { child.send(message) }
  return {
    port,
    pid: child.pid,
    async cpu () {
      const id = nextId++
      return await new Promise<number>((resolve, reject) => {
        const timer = setTimeout(() => { waiting.delete(id); reject(new Error(`${variant} server did not report its CPU`)) }, 5000)
        waiting.set(id, (micros) => { clearTimeout(timer); resolve(micros) })
        send({ type: 'cpu', id })
      })
    },
    async close () {
      if (child.exitCode === null && child.signalCode === null) {
        send({ type: 'close' })
        const timeout = sleep(10_000).then(() => 'timeout' as const)
        if (await Promise.race([exited, timeout]) === 'timeout') {
          log(`${variant} server did not close within 10 s; killing it`)
          child.kill('SIGKILL')
          await exited
        }
      }
      running.children.delete(child)
      if (profileDir !== undefined) keepMainThreadProfile(profileDir, `${profileName as string}.cpuprofile`)
    }
  }
}

/** Node names profiles CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile; thread 0 is the main one. */
function keepMainThreadProfile (dir: string, name: string): void {
  const main = readdirSync(dir).find((file) => /^CPU\.\d+\.\d+\.\d+\.0\.\d+\.cpuprofile$/.test(file))
  if (main === undefined) {
    log(`no main-thread profile in ${dir}`)
    return
  }
  renameSync(join(dir, main), join(dir, '..', name))
  rmSync(dir, { recursive: true, force: true })
  log(`profile: ${join(dir, '..', name)}`)
}

/** The session cookie a variant hands out at /login, or the placeholder for variants without one. */
async function login (base: string, variant: VariantName): Promise<string> {
  const response = await fetch(`${base}/login`)
  const body = await response.text()
  if (!response.ok) throw new Error(`${variant} /login answered ${response.status}: ${body.slice(0, 500)}`)
  const cookies = response.headers.getSetCookie()
  if (cookies.length === 0) {
    if (variant === 'bare' || variant.startsWith('floor-')) return PLACEHOLDER_COOKIE
    throw new Error(`${variant} /login set no cookie`)
  }
  return cookies.map((c) => c.split(';', 1)[0]).join('; ')
}

/** A route's URL on one server, with the sessions it spreads its connections over (one /login each). */
async function drive (base: string, variant: VariantName, spec: RouteSpec, options: Options): Promise<Drive> {
  const headerSets: Array<Record<string, string>> = []
  const sessions = spec.sessions === 'each' ? options.connections : spec.sessions
  for (let i = 0; i < sessions; i++) {
    const cookie = await login(base, variant)
    headerSets.push(spec.cookie ? { cookie } : {})
  }
  return { url: `${base}${spec.path}`, headerSets }
}

/** Set-Cookie headers per response, over a few requests sent one by one (autocannon cannot count them). */
async function sampleSetCookie (url: string, headers: Record<string, string>, count: number): Promise<{ perResponse: number, failed: number }> {
  let cookies = 0
  let failed = 0
  for (let i = 0; i < count; i++) {
    const response = await fetch(url, { headers })
    await response.arrayBuffer()
    cookies += response.headers.getSetCookie().length
    if (!response.ok) failed++
  }
  return { perResponse: cookies / count, failed }
}

/** Sorted response times in milliseconds. */
type Latencies = Float64Array

/** What one load (one or more autocannon instances side by side) measured. */
interface LoadResult {
  requests: number
  seconds: number
  non2xx: number
  errors: number
  latencies: Latencies
}

/**
 * Load on `url` from `connections` connections, spread over the header sets (one per session):
 * one autocannon instance per set, all at once, so that every session is driven at the same time.
 */
async function load (url: string, headerSets: Array<Record<string, string>>, seconds: number, connections: number): Promise<LoadResult> {
  const shares = headerSets.map((_, i) => Math.floor(connections / headerSets.length) + (i < connections % headerSets.length ? 1 : 0))
  const runs = await Promise.all(headerSets.flatMap((headers, i) => shares[i] === 0 ? [] : [loadOne(url, headers, seconds, shares[i])]))
  return {
    requests: runs.reduce((n, r) => n + r.result.requests.total, 0),
    seconds: Math.max(...runs.map((r) => r.result.duration)),
    non2xx: runs.reduce((n, r) => n + r.result.non2xx, 0),
    errors: runs.reduce((n, r) => n + r.result.errors + r.result.timeouts, 0),
    latencies: runs.length === 1 ? runs[0].latencies : concatSorted(runs.map((r) => r.latencies))
  }
}

async function loadOne (url: string, headers: Record<string, string>, seconds: number, connections: number): Promise<{ result: Result, latencies: Latencies }> {
  const instance = autocannon({ url, headers, duration: seconds, connections, timeout: 10 })
  running.loads.add(instance)
  // autocannon's own histogram keeps whole milliseconds, and every request here takes less than
  // one: the times it reports per response are fractional, so keep those instead.
  let times = new Float64Array(1 << 16)
  let count = 0
  instance.on('response', (_client: unknown, _status: number, _bytes: number, ms: number) => {
    if (count === times.length) {
      const bigger = new Float64Array(times.length * 2)
      bigger.set(times)
      times = bigger
    }
    times[count++] = ms
  })
  try {
    const result = await instance
    return { result, latencies: times.subarray(0, count).sort() }
  } finally {
    running.loads.delete(instance)
  }
}

function percentile (sorted: Latencies, p: number): number {
  if (sorted.length === 0) return Number.NaN
  return sorted[Math.min(sorted.length - 1, Math.ceil(p / 100 * sorted.length) - 1)]
}

/** Names both backends' counters the same way, so a row reads the same whatever the backend. */
function commandName (backend: Backend, counter: string): string {
  if (backend.name === 'redis') return counter
  if (counter === 'delete_hits' || counter === 'delete_misses') return 'delete'
  // memcached counts a cas in cmd_set too: backends.ts takes it out of `set` (see MEMCACHED_COMMANDS).
  if (counter === 'cas_hits' || counter === 'cas_misses' || counter === 'cas_badval') return 'cas'
  return counter.replace(/^cmd_/, '')
}

/**
 * Round trips, not executions: Redis counts the commands a Lua script runs among its own
 * (`cmdstat_get`, `cmdstat_set`). The plugin's compare-and-set script runs one GET, then one SET
 * or DEL when the record still is the one expected, so each EVALSHA/EVAL stands for itself and
 * takes one GET and at most one SET or DEL out of the counts. Exact on the benchmark's routes,
 * where the plugin writes only through that script (the other variants run no script at all).
 */
function withoutScriptCalls (delta: Record<string, number>): Record<string, number> {
  const scripts = (delta.evalsha ?? 0) + (delta.eval ?? 0)
  if (scripts === 0) return delta
  const out = { ...delta }
  out.get = (out.get ?? 0) - scripts
  let writes = scripts
  for (const name of ['set', 'del']) {
    const taken = Math.min(out[name] ?? 0, writes)
    out[name] = (out[name] ?? 0) - taken
    writes -= taken
  }
  for (const [name, n] of Object.entries(out)) if (n === 0) delete out[name]
  return out
}

async function snapshot (backend: Backend | undefined): Promise<Record<string, number>> {
  return backend === undefined ? {} : await backend.commandStats()
}

/** The benchmark's own CPU (this process, the server, the backends), µs since some fixed origin. */
async function ownMicros (server: ServerChild, backends: Backend[]): Promise<{ server: number, own: number }> {
  const serverMicros = await server.cpu()
  const self = process.cpuUsage()
  const others = backends.reduce((sum, b) => sum + processMicros(b.pid), 0)
  return { server: serverMicros, own: serverMicros + self.user + self.system + others }
}

/** Waits, a bounded while, until foreign work falls under the limit; true when it did. */
async function waitForQuiet (server: ServerChild, backends: Backend[], options: Options): Promise<boolean> {
  for (let i = 0; i < 10 && !interrupted; i++) {
    const busy = machineBusyMicros()
    const own = await ownMicros(server, backends)
    const start = performance.now()
    await sleep(1000)
    const foreign = foreignCores(busy, machineBusyMicros(), (await ownMicros(server, backends)).own - own.own, (performance.now() - start) / 1000)
    if (foreign === undefined || foreign <= options.maxForeign) return true
  }
  return false
}

/** Seconds spent re-measuring disturbed slices so far, against --retry-budget. */
let retrySpent = 0

/**
 * /race and /hot-update are measured for their lost updates (a count); /hot has a req/s target
 * against the floor too, so it gets the full duration.
 */
function cellDuration (route: RouteName, options: Options): number {
  return route === '/race' || route === '/hot-update' ? options.raceDuration : options.duration
}

/** A load to drive: a URL and one header set per session. */
interface Drive {
  url: string
  headerSets: Array<Record<string, string>>
}

/** A variant's server as one route drives it. */
interface Target {
  variant: VariantName
  server: ServerChild
  /** The backend whose command counters belong to this variant. */
  backend: Backend | undefined
  url: string
  /** One set per session the route spreads its connections over (see RouteSpec.sessions). */
  headerSets: Array<Record<string, string>>
  /** Driven after the route's own warm-up, before it is measured (RouteSpec.mixedWarmup). */
  mixed: Drive[]
}

/** One measured slice of a cell. */
interface Slice {
  requests: number
  seconds: number
  wall: number
  non2xx: number
  errors: number
  commands: Record<string, number>
  cpuMicros: number
  foreign: number | null
  latencies: Latencies
}

async function measureSlice (target: Target, backends: Backend[], seconds: number, options: Options): Promise<Slice> {
  const { server, backend } = target
  const statsBefore = await snapshot(backend)
  const busyBefore = machineBusyMicros()
  const before = await ownMicros(server, backends)
  const start = performance.now()
  const result = await load(target.url, target.headerSets, seconds, options.connections)
  // Lets requests cut off by the end of the window finish inside the CPU and command counts.
  await sleep(100)
  const after = await ownMicros(server, backends)
  const wall = (performance.now() - start) / 1000
  const busyAfter = machineBusyMicros()
  const statsAfter = await snapshot(backend)
  const commands: Record<string, number> = {}
  if (backend !== undefined) {
    for (const [name, n] of Object.entries(withoutScriptCalls(statsDelta(statsBefore, statsAfter)))) {
      const key = commandName(backend, name)
      commands[key] = (commands[key] ?? 0) + n
    }
  }
  return {
    requests: result.requests,
    seconds: result.seconds,
    wall,
    non2xx: result.non2xx,
    errors: result.errors,
    commands,
    cpuMicros: after.server - before.server,
    foreign: foreignCores(busyBefore, busyAfter, after.own - before.own, wall) ?? null,
    latencies: result.latencies
  }
}

/**
 * A slice, measured again while other processes disturb it; the least disturbed one is kept.
 * Bounded twice over (retries per slice, seconds per run): a machine that never quietens still
 * gets every cell, marked with its foreign load.
 */
async function measureQuietSlice (target: Target, route: RouteName, backends: Backend[], seconds: number, options: Options): Promise<{ slice: Slice, retries: number }> {
  let best = await measureSlice(target, backends, seconds, options)
  let retries = 0
  let last = best
  while (!interrupted && last.foreign !== null && last.foreign > options.maxForeign) {
    const what = `  ${route} ${target.variant}: other processes used ${last.foreign.toFixed(2)} cores`
    if (retries >= options.retries || retrySpent >= options.retryBudget) {
      log(`${what}; kept (no retries left)`)
      break
    }
    log(`${what}; measuring again`)
    retries++
    const start = performance.now()
    await waitForQuiet(target.server, backends, options)
    last = await measureSlice(target, backends, seconds, options)
    retrySpent += (performance.now() - start) / 1000
    if ((last.foreign ?? 0) < (best.foreign ?? 0)) best = last
  }
  return { slice: best, retries }
}

function concatSorted (arrays: Latencies[]): Latencies {
  const all = new Float64Array(arrays.reduce((n, a) => n + a.length, 0))
  let at = 0
  for (const a of arrays) { all.set(a, at); at += a.length }
  return all.sort()
}

/**
 * One route of one round, every variant: a warm-up each, then the measured time cut into slices
 * that go round the variants, one way then back (A B C, C B A, …). Each variant's cell is spread
 * over the same stretch of time as the others', so the machine's drift falls on all of them alike.
 */
async function measureRoute (round: number, route: RouteName, targets: Target[], backends: Backend[], options: Options): Promise<Cell[]> {
  for (const target of targets) {
    if (options.warmup > 0 && !interrupted) await load(target.url, target.headerSets, options.warmup, options.connections)
    // At least a second each even with --warmup 0: the point is a store that has just served them.
    for (const drive of target.mixed) {
      if (!interrupted) await load(drive.url, drive.headerSets, Math.max(options.warmup, 1), options.connections)
    }
  }
  // Lets requests cut off by the end of the warm-up finish before the counters are read.
  await sleep(100)
  const duration = cellDuration(route, options)
  const count = Math.max(1, Math.round(duration / options.slice))
  const seconds = duration / count
  const slices = new Map<VariantName, Slice[]>(targets.map((t) => [t.variant, []]))
  const retries = new Map<VariantName, number>(targets.map((t) => [t.variant, 0]))
  for (let k = 0; k < count && !interrupted; k++) {
    const order = k % 2 === 0 ? targets : [...targets].reverse()
    for (const target of order) {
      if (interrupted) break
      const measured = await measureQuietSlice(target, route, backends, seconds, options)
      slices.get(target.variant)?.push(measured.slice)
      retries.set(target.variant, (retries.get(target.variant) ?? 0) + measured.retries)
    }
  }
  if (interrupted) throw new Error('interrupted')
  const cells: Cell[] = []
  for (const target of targets) {
    const list = slices.get(target.variant) ?? []
    const sum = (pick: (s: Slice) => number): number => list.reduce((n, s) => n + pick(s), 0)
    const commands: Record<string, number> = {}
    for (const slice of list) {
      for (const [name, n] of Object.entries(slice.commands)) commands[name] = (commands[name] ?? 0) + n
    }
    const latencies = concatSorted(list.map((s) => s.latencies))
    const wall = sum((s) => s.wall)
    const sample = await sampleSetCookie(target.url, target.headerSets[0], options.samples)
    cells.push({
      round,
      variant: target.variant,
      route,
      requests: sum((s) => s.requests),
      seconds: sum((s) => s.seconds),
      p50: percentile(latencies, 50),
      p99: percentile(latencies, 99),
      non2xx: sum((s) => s.non2xx) + sample.failed,
      errors: sum((s) => s.errors),
      setCookie: sample.perResponse,
      commands,
      cpuMicros: sum((s) => s.cpuMicros),
      cpuShare: sum((s) => s.cpuMicros) / (wall * 1e6),
      foreign: list.some((s) => s.foreign === null) ? null : sum((s) => (s.foreign ?? 0) * s.wall) / wall,
      retries: retries.get(target.variant) ?? 0,
      ...(ROUTE_SPECS[route].counts !== undefined ? { race: await countLost(target, ROUTE_SPECS[route].counts) } : {})
    })
  }
  return cells
}

/**
 * After a /race or /hot cell (warm-up, slices and samples, every request of it): the counters
 * stored in each session, read back through /dump, against the 2xx responses the server sent.
 * Every 2xx response stood for one increment of a key no other request was writing at the same
 * time, so any difference is an update a save lost. After /hot-update, the one shared counter
 * stands for them all: every 2xx was one increment of it.
 */
async function countLost (target: Target, counts: 'slots' | 'hits'): Promise<RaceCount> {
  // Requests cut off when the load stopped are still being answered: let them finish.
  await sleep(200)
  const base = target.url.slice(0, target.url.lastIndexOf('/'))
  let stored = 0
  let keys = 0
  let served = 0
  for (const headers of target.headerSets) {
    const response = await fetch(`${base}/dump`, { headers })
    if (!response.ok) throw new Error(`${target.variant} /dump answered ${response.status}: ${(await response.text()).slice(0, 500)}`)
    const dump = await response.json() as RaceDump
    stored += counts === 'hits' ? dump.hits : dump.sum
    keys += counts === 'hits' ? 1 : dump.keys
    served = dump.served
  }
  return { served, stored, lost: served - stored, keys, sessions: target.headerSets.length }
}

/**
 * Which plugin code ran: the last commit that touched lib/, and whether lib/ had uncommitted
 * changes. Servers load lib/ afresh every round, so a change during the run is worth knowing.
 */
function pluginVersion (): string {
  try {
    const git = (...args: string[]): string => execFileSync('git', args, { cwd: here('..'), encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
    const commit = git('log', '-1', '--format=%h', '--', 'lib')
    return git('status', '--porcelain', '--', 'lib') === '' ? commit : `${commit} + uncommitted changes`
  } catch {
    return 'unknown (not a git checkout)'
  }
}

function machine (): Pick<Meta, 'node' | 'cpu' | 'cores' | 'os'> {
  let cpu = cpus()[0]?.model ?? 'unknown CPU'
  try {
    const match = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))
    if (match !== null) cpu = match[1].trim()
  } catch {}
  return { node: process.version, cpu, cores: cpus().length, os: `${osType()} ${release()}` }
}

function updateReadme (markdown: string): void {
  let text: string
  try {
    text = readFileSync(README, 'utf8')
  } catch {
    log(`no ${README} to update`)
    return
  }
  const start = text.indexOf(README_START)
  const end = text.indexOf(README_END)
  if (start < 0 || end < start) {
    log(`${README} has no ${README_START} … ${README_END} block; not updated`)
    return
  }
  writeFileSync(README, `${text.slice(0, start + README_START.length)}\n${markdown}${text.slice(end)}`)
  log(`updated ${README}`)
}

async function main (): Promise<void> {
  const options = readOptions()
  if (options.from !== undefined) {
    republish(options.from, options)
    return
  }
  const meta: Meta = {
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    ...machine(),
    rounds: options.rounds,
    duration: options.duration,
    warmup: options.warmup,
    connections: options.connections,
    samples: options.samples,
    maxForeign: options.maxForeign,
    pin: options.pin,
    plugin: pluginVersion(),
    variants: [],
    routes: options.routes,
    skipped: {}
  }

  const backends: Partial<Record<BackendName, Backend>> = {}
  const needs = new Set(options.variants.map((v) => VARIANT_BACKEND[v]))
  if (needs.has('redis')) {
    backends.redis = await startRedis()
    running.backends.push(backends.redis)
    log(`redis-server on 127.0.0.1:${backends.redis.port}`)
  }
  if (needs.has('filesystem')) {
    backends.filesystem = startFilesystem()
    running.backends.push(backends.filesystem)
    log(`filesystem store in ${backends.filesystem.directory as string}`)
  }
  if (needs.has('memcached')) {
    try {
      backends.memcached = await startMemcached()
      running.backends.push(backends.memcached)
      log(`memcached on 127.0.0.1:${backends.memcached.port}`)
    } catch (err) {
      meta.skipped['quart-memcached'] = `memcached could not start (${err instanceof Error ? err.message : String(err)})`
    }
  }
  if (options.pin) {
    if (cpus().length < 2) throw new Error('--pin needs at least 2 CPUs')
    pin(process.pid, OTHER_CPUS)
    for (const backend of Object.values(backends)) pin(backend.pid, OTHER_CPUS)
  }
  const places: BackendPlaces = { redis: backends.redis?.port, memcached: backends.memcached?.port, directory: backends.filesystem?.directory }

  let variants = options.variants.filter((v) => meta.skipped[v] === undefined)
  const perCell = (route: RouteName): number => {
    const duration = cellDuration(route, options)
    return options.warmup + (ROUTE_SPECS[route].mixedWarmup?.length ?? 0) * Math.max(options.warmup, 1) + 0.1 + duration + Math.max(1, Math.round(duration / options.slice)) * 0.3 + options.samples * 0.003
  }
  const perRound = variants.reduce((n, v) => n + options.routes.filter((r) => (VARIANT_ROUTES[v] ?? ROUTES).includes(r)).reduce((t, r) => t + perCell(r), 0), 0)
  const estimate = options.rounds * (perRound + variants.length * 1.5)
  log(`${options.rounds} round(s) × ${variants.length} variant(s) × ${options.routes.length} route(s): about ${Math.ceil(estimate / 60)} min`)

  const cells: Cell[] = []
  for (let round = 1; round <= options.rounds && !interrupted; round++) {
    // Fresh server processes each round, so one process's luck (layout, JIT) is one sample, not all.
    const servers = new Map<VariantName, ServerChild>()
    try {
      for (const variant of variants) {
        if (interrupted) break
        try {
          const server = await startChild(variant, places, options.cpuProf ? `${variant}-round${round}` : undefined)
          servers.set(variant, server)
          if (options.pin) pin(server.pid, SERVER_CPU)
        } catch (err) {
          // A variant that cannot start (e.g. the plugin not written yet) must not cost the others.
          meta.skipped[variant] = err instanceof Error ? err.message : String(err)
          log(`${variant}: skipped: ${meta.skipped[variant]}`)
        }
      }
      variants = variants.filter((v) => servers.has(v))
      for (const route of options.routes) {
        if (interrupted) break
        // An empty keyspace for every route: no cell pays for the keys of earlier /new cells.
        await Promise.all(Object.values(backends).map(async (b) => { await b.flush() }))
        const spec = ROUTE_SPECS[route]
        const targets: Target[] = []
        for (const variant of variants) {
          if (!(VARIANT_ROUTES[variant] ?? ROUTES).includes(route)) continue
          const server = servers.get(variant) as ServerChild
          const backendName = VARIANT_BACKEND[variant]
          const base = `http://127.0.0.1:${server.port}`
          // The mixed warm-up's sessions first: the route's own /login comes last, so the /hot
          // and /race bookkeeping it resets is the route's.
          const mixed: Drive[] = []
          for (const other of spec.mixedWarmup ?? []) mixed.push(await drive(base, variant, ROUTE_SPECS[other], options))
          const own = await drive(base, variant, spec, options)
          targets.push({
            variant,
            server,
            backend: backendName === undefined ? undefined : backends[backendName],
            ...own,
            mixed
          })
        }
        for (const cell of await measureRoute(round, route, targets, Object.values(backends), options)) {
          cells.push(cell)
          const commands = Object.entries(cell.commands).map(([name, n]) => `${name} ${(n / Math.max(cell.requests, 1)).toFixed(2)}`).join(' ')
          const race = cell.race === undefined ? '' : `  lost ${cell.race.lost} of ${cell.race.served}`
          log(`[round ${round}/${options.rounds}] ${route.padEnd(8)} ${cell.variant.padEnd(21)} ${Math.round(cell.requests / cell.seconds).toString().padStart(6)} req/s  ` +
            `${(cell.cpuMicros / Math.max(cell.requests, 1)).toFixed(1).padStart(6)} µs CPU/req  set-cookie ${cell.setCookie.toFixed(2)}  ${commands}${race}` +
            (cell.non2xx + cell.errors > 0 ? `  non-2xx ${cell.non2xx} errors ${cell.errors}` : ''))
        }
      }
    } finally {
      await Promise.allSettled([...servers.values()].map(async (server) => { await server.close() }))
    }
  }
  meta.variants = options.variants.filter((v) => cells.some((c) => c.variant === v))
  const pluginAtEnd = pluginVersion()
  if (pluginAtEnd !== meta.plugin) {
    meta.plugin += ` at the start, ${pluginAtEnd} at the end`
    log(`lib/ changed during the run: ${meta.plugin}`)
  }

  mkdirSync(RESULTS_DIR, { recursive: true })
  writeFileSync(`${RESULTS_DIR}latest.json`, JSON.stringify({ meta, options, cells }, null, 2) + '\n')
  publish(cells, meta, options)
}

/** Renders the report: stdout, results/latest.md, and the README when asked. */
function publish (cells: Cell[], meta: Meta, options: Options): void {
  const summaries = summarize(cells, meta)
  const checks = checkTargets(summaries)
  const markdown = renderMarkdown(summaries, checks, meta)
  process.stdout.write(`\n${markdown}`)
  mkdirSync(RESULTS_DIR, { recursive: true })
  writeFileSync(`${RESULTS_DIR}latest.md`, `# Latest benchmark run\n\n![Requests per second by route](latest.svg)\n\n${markdown}`)
  writeFileSync(`${RESULTS_DIR}latest.svg`, renderChart(summaries, meta))
  log(`wrote ${RESULTS_DIR}latest.md, latest.svg (raw measurements: latest.json)`)
  if (options.updateReadme) updateReadme(markdown)
  const missed = checks.filter((c) => c.official && !c.met)
  if (missed.length > 0) log(`targets missed: ${missed.map((c) => `${c.variant} ${c.route} ${c.what} (${c.measured})`).join('; ')}`)
}

/** Renders the report again from saved measurements (--from), without measuring anything. */
function republish (path: string, options: Options): void {
  const saved = JSON.parse(readFileSync(path, 'utf8')) as { meta: Meta, cells: Cell[] }
  publish(saved.cells, saved.meta, options)
}

try {
  await main()
} catch (err) {
  // After Ctrl-C, the error is only the interruption surfacing: onSignal already said so.
  if (err instanceof UsageError) log(err.message)
  else if (!interrupted) log(`benchmark failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}`)
  process.exitCode = 1
} finally {
  await cleanUp()
}
