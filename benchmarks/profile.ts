/**
 * Summarizes a V8 CPU profile written by `npm run bench -- --cpu-prof`: the functions that took
 * the most time by themselves (self) and with what they called (total), overall and for the
 * plugin's own code; with `--against`, where the time went differently from another profile.
 *
 *   npx tsx benchmarks/profile.ts results/profiles/quart-redis-round1.cpuprofile [--top 25] [--match lib/]
 *   npx tsx benchmarks/profile.ts results/profiles/quart-redis-round1.cpuprofile \
 *     --against results/profiles/floor-redis-round1.cpuprofile --cpu 95.6,79.9
 *
 * `--match` is the start of a path relative to the working directory (default `lib/`, the plugin).
 * `--cpu this,other` are the two servers' CPU µs/req from the benchmark's output: with them the
 * comparison is in µs per request, without them in percent of busy (non-idle) time.
 */
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'

interface ProfileNode {
  id: number
  callFrame: { functionName: string, url: string, lineNumber: number, columnNumber: number }
  children?: number[]
}

interface Profile {
  nodes: ProfileNode[]
  samples: number[]
  timeDeltas: number[]
}

interface Row { name: string, file: string, self: number, total: number }

interface Summary {
  rows: Map<string, Row>
  /** All sampled time, µs. */
  all: number
  /** Sampled time spent doing something (not idle, not "(program)"), µs. */
  busy: number
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { top: { type: 'string' }, match: { type: 'string' }, against: { type: 'string' }, cpu: { type: 'string' }, skip: { type: 'string' } }
})
if (positionals.length !== 1) {
  process.stderr.write('usage: npx tsx benchmarks/profile.ts <file.cpuprofile> [--top 25] [--match lib/] [--against <other.cpuprofile> [--cpu this,other]] [--skip s]\n')
  process.exit(2)
}
const top = Number(values.top ?? 25)
const match = values.match ?? 'lib/'
// Start-up (module loading, tsx compiling) is most of a short profile's busy time and none of a
// request's: --skip leaves out the samples of the first seconds, so only the steady state counts.
const skipMicros = Number(values.skip ?? 0) * 1e6

function fileOf (node: ProfileNode): string {
  const { url } = node.callFrame
  return url === '' ? '' : url.replace(/^file:\/\//, '').replace(process.cwd() + '/', '')
}

function label (node: ProfileNode): string {
  const { functionName, lineNumber } = node.callFrame
  const file = fileOf(node)
  // Code that tsx compiled reports line 1 for everything: leave the line out there.
  return `${functionName === '' ? '(anonymous)' : functionName} ${file}${file === '' || lineNumber === 0 ? '' : `:${lineNumber + 1}`}`
}

const isIdle = (name: string): boolean => /^\((idle|program)\) /.test(name)

function summarize (path: string): Summary {
  const profile = JSON.parse(readFileSync(path, 'utf8')) as Profile
  const byId = new Map(profile.nodes.map((node) => [node.id, node]))
  const selfMicros = new Map<number, number>()
  let elapsed = 0
  for (let i = 0; i < profile.samples.length; i++) {
    // A sample's time is the delta to the next one; the last sample has none.
    const delta = profile.timeDeltas[i + 1] ?? 0
    elapsed += profile.timeDeltas[i] ?? 0
    if (elapsed < skipMicros) continue
    selfMicros.set(profile.samples[i], (selfMicros.get(profile.samples[i]) ?? 0) + delta)
  }
  const rows = new Map<string, Row>()
  const row = (node: ProfileNode, name: string): Row => {
    let r = rows.get(name)
    if (r === undefined) { r = { name, file: fileOf(node), self: 0, total: 0 }; rows.set(name, r) }
    return r
  }
  // A node's total is its self time plus its subtree's; a function's total counts each stack
  // once (recursion would otherwise count twice), hence the set of open labels.
  function walk (id: number, open: Set<string>): number {
    const node = byId.get(id)
    if (node === undefined) return 0
    const name = label(node)
    const self = selfMicros.get(id) ?? 0
    row(node, name).self += self
    const reentered = open.has(name)
    open.add(name)
    let total = self
    for (const child of node.children ?? []) total += walk(child, open)
    if (!reentered) {
      open.delete(name)
      row(node, name).total += total
    }
    return total
  }
  const all = walk(profile.nodes[0].id, new Set())
  const busy = all - [...rows.values()].filter((r) => isIdle(r.name)).reduce((s, r) => s + r.self, 0)
  return { rows, all, busy }
}

const ms = (micros: number): string => `${(micros / 1000).toFixed(1).padStart(8)} ms`
function print (title: string, summary: Summary, list: Row[], key: 'self' | 'total'): void {
  process.stdout.write(`\n${title}\n`)
  for (const r of list.sort((a, b) => b[key] - a[key]).slice(0, top)) {
    process.stdout.write(`${ms(r[key])} ${(100 * r[key] / summary.busy).toFixed(1).padStart(5)} % of busy  ${r.name}\n`)
  }
}

const main = summarize(positionals[0])
process.stdout.write(`${positionals[0]}: ${(main.all / 1000).toFixed(0)} ms sampled, ${(main.busy / 1000).toFixed(0)} ms busy\n`)
const everything = [...main.rows.values()].filter((r) => !isIdle(r.name))
print('Self time, everything:', main, everything, 'self')
const own = everything.filter((r) => r.file.startsWith(match))
print(`Self time, functions in ${match}:`, main, own, 'self')
print(`Total time (with callees), functions in ${match}:`, main, own, 'total')

if (values.against !== undefined) {
  const other = summarize(values.against)
  const cpu = values.cpu?.split(',').map(Number)
  const perRequest = cpu !== undefined && cpu.length === 2 && cpu.every(Number.isFinite)
  // Each profile's self times as a share of its busy time; times CPU µs/req, µs per request.
  const scale = (summary: Summary, micros: number, cpuPerRequest: number | undefined): number =>
    perRequest ? micros / summary.busy * (cpuPerRequest as number) : 100 * micros / summary.busy
  const names = new Set([...main.rows.keys(), ...other.rows.keys()].filter((name) => !isIdle(name)))
  const diffs = [...names].map((name) => {
    const mine = scale(main, main.rows.get(name)?.self ?? 0, cpu?.[0])
    const theirs = scale(other, other.rows.get(name)?.self ?? 0, cpu?.[1])
    return { name, mine, theirs, delta: mine - theirs }
  }).sort((a, b) => Math.abs(b.delta) - Math.abs(a.delta))
  const unit = perRequest ? 'µs/req' : '% busy'
  process.stdout.write(`\nSelf time against ${values.against} (${unit}: this, other, difference):\n`)
  for (const d of diffs.slice(0, top)) {
    process.stdout.write(`${d.mine.toFixed(2).padStart(8)} ${d.theirs.toFixed(2).padStart(8)} ${(d.delta >= 0 ? '+' : '') + d.delta.toFixed(2).padStart(7)}  ${d.name}\n`)
  }
}
