/**
 * Summarizes a V8 CPU profile written by `npm run bench -- --cpu-prof`: the functions that took
 * the most time by themselves (self) and with what they called (total), overall and for the
 * plugin's own code.
 *
 *   npx tsx benchmarks/profile.ts benchmarks/results/profiles/quart-redis-round1.cpuprofile [--top 25] [--match lib/]
 *
 * `--match` is the start of a path relative to the working directory (default `lib/`, the plugin).
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
  startTime: number
  endTime: number
  samples: number[]
  timeDeltas: number[]
}

interface Row { name: string, file: string, self: number, total: number }

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { top: { type: 'string' }, match: { type: 'string' } }
})
if (positionals.length !== 1) {
  process.stderr.write('usage: npx tsx benchmarks/profile.ts <file.cpuprofile> [--top 25] [--match lib/]\n')
  process.exit(2)
}
const top = Number(values.top ?? 25)
const match = values.match ?? 'lib/'
const profile = JSON.parse(readFileSync(positionals[0], 'utf8')) as Profile

const byId = new Map(profile.nodes.map((node) => [node.id, node]))
const selfMicros = new Map<number, number>()
for (let i = 0; i < profile.samples.length; i++) {
  // A sample's time is the delta to the next one; the last sample has none.
  const delta = profile.timeDeltas[i + 1] ?? 0
  selfMicros.set(profile.samples[i], (selfMicros.get(profile.samples[i]) ?? 0) + delta)
}

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

// Total time per node = its self time plus its subtree's; a function's total counts each
// stack once (recursion would otherwise count twice), hence the set of open labels.
const rows = new Map<string, Row>()
const row = (name: string, file: string): Row => {
  let r = rows.get(name)
  if (r === undefined) { r = { name, file, self: 0, total: 0 }; rows.set(name, r) }
  return r
}
function walk (id: number, open: Set<string>): number {
  const node = byId.get(id)
  if (node === undefined) return 0
  const name = label(node)
  const self = selfMicros.get(id) ?? 0
  row(name, fileOf(node)).self += self
  const reentered = open.has(name)
  open.add(name)
  let total = self
  for (const child of node.children ?? []) total += walk(child, open)
  if (!reentered) {
    open.delete(name)
    row(name, fileOf(node)).total += total
  }
  return total
}
const root = profile.nodes[0]
const all = walk(root.id, new Set())
const idle = [...rows.values()].filter((r) => /^\((idle|program|garbage collector)\)/.test(r.name)).reduce((s, r) => s + r.self, 0)

const pct = (micros: number): string => `${(100 * micros / all).toFixed(1).padStart(5)} %`
const ms = (micros: number): string => `${(micros / 1000).toFixed(1).padStart(8)} ms`
function print (title: string, list: Row[], key: 'self' | 'total'): void {
  process.stdout.write(`\n${title}\n`)
  for (const r of list.sort((a, b) => b[key] - a[key]).slice(0, top)) {
    process.stdout.write(`${ms(r[key])} ${pct(r[key])}  ${r.name}\n`)
  }
}

process.stdout.write(`${positionals[0]}: ${(all / 1000).toFixed(0)} ms sampled, ${(idle / 1000).toFixed(0)} ms idle/program/GC\n`)
print('Self time, everything:', [...rows.values()], 'self')
const own = [...rows.values()].filter((r) => r.file.startsWith(match))
print(`Self time, functions in ${match}:`, own, 'self')
print(`Total time (with callees), functions in ${match}:`, own, 'total')
