/**
 * The run as a picture: grouped bars of requests/s per route, one bar per variant, written as a
 * plain SVG next to results/latest.md. Hand-written (no chart library): a few rectangles and
 * labels are all it takes, and the file stays readable in a diff.
 */
import type { Meta, Summary } from './report.js'
import type { RouteName, VariantName } from './protocol.js'

/**
 * The variants shown, in this order, with their colours. floor-redis-notimeout is the reference
 * of issue 18's targets (/read, /write, /new, /hot), so it has a bar where it runs.
 */
const SERIES: ReadonlyArray<{ variant: VariantName, colour: string }> = [
  { variant: 'bare', colour: '#9e9e9e' },
  { variant: 'floor-redis', colour: '#616161' },
  { variant: 'floor-redis-notimeout', colour: '#303030' },
  { variant: 'fastify-session', colour: '#e57373' },
  { variant: 'quart-memory', colour: '#64b5f6' },
  { variant: 'quart-redis', colour: '#1565c0' },
  { variant: 'quart-redis-csc', colour: '#00897b' },
  { variant: 'quart-memcached', colour: '#7e57c2' },
  { variant: 'quart-filesystem', colour: '#f9a825' }
]

// Nine routes of up to nine bars each.
const WIDTH = 1400
const HEIGHT = 480
const MARGIN = { top: 56, right: 20, bottom: 92, left: 70 }
const BAR_GAP = 2
const GROUP_GAP = 28

const escape = (text: string): string => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')

/** A round step (1, 2 or 5 × 10^n) that cuts 0…max into about `count` intervals. */
function tickStep (max: number, count: number): number {
  const raw = max / count
  const power = 10 ** Math.floor(Math.log10(raw))
  const scaled = raw / power
  return (scaled <= 1 ? 1 : scaled <= 2 ? 2 : scaled <= 5 ? 5 : 10) * power
}

function compact (value: number): string {
  return value >= 10_000 ? `${Math.round(value / 1000)}k` : value >= 1000 ? `${(value / 1000).toFixed(1)}k` : String(Math.round(value))
}

export function renderChart (summaries: Summary[], meta: Meta): string {
  const rps = new Map<string, number>()
  for (const s of summaries) if (Number.isFinite(s.rps)) rps.set(`${s.variant} ${s.route}`, s.rps)
  const series = SERIES.filter(({ variant }) => meta.routes.some((route) => rps.has(`${variant} ${route}`)))
  const groups: Array<{ route: RouteName, bars: Array<{ variant: VariantName, colour: string, value: number }> }> = []
  for (const route of meta.routes) {
    const bars = series.flatMap(({ variant, colour }) => {
      const value = rps.get(`${variant} ${route}`)
      return value === undefined ? [] : [{ variant, colour, value }]
    })
    if (bars.length > 0) groups.push({ route, bars })
  }

  const out: string[] = []
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="system-ui, -apple-system, 'Segoe UI', sans-serif" font-size="12">`)
  out.push(`<rect width="${WIDTH}" height="${HEIGHT}" fill="#ffffff"/>`)
  out.push(`<text x="${MARGIN.left}" y="22" font-size="15" font-weight="600">Requests per second by route (median over ${meta.rounds} round${meta.rounds === 1 ? '' : 's'}, higher is better)</text>`)
  out.push(`<text x="${MARGIN.left}" y="40" fill="#555">${escape(`${meta.date} · Node ${meta.node} · ${meta.cpu} × ${meta.cores} cores · ${meta.connections} connections · plugin ${meta.plugin}`)}</text>`)

  const plotWidth = WIDTH - MARGIN.left - MARGIN.right
  const plotHeight = HEIGHT - MARGIN.top - MARGIN.bottom
  const baseline = MARGIN.top + plotHeight
  const max = Math.max(1, ...groups.flatMap((g) => g.bars.map((b) => b.value)))
  const step = tickStep(max, 5)
  const top = Math.ceil(max / step) * step
  const y = (value: number): number => baseline - value / top * plotHeight

  for (let tick = 0; tick <= top + step / 2; tick += step) {
    out.push(`<line x1="${MARGIN.left}" x2="${WIDTH - MARGIN.right}" y1="${y(tick).toFixed(1)}" y2="${y(tick).toFixed(1)}" stroke="${tick === 0 ? '#333' : '#e0e0e0'}"/>`)
    out.push(`<text x="${MARGIN.left - 6}" y="${(y(tick) + 4).toFixed(1)}" text-anchor="end" fill="#555">${compact(tick)}</text>`)
  }
  out.push(`<text transform="translate(16 ${(MARGIN.top + plotHeight / 2).toFixed(1)}) rotate(-90)" text-anchor="middle" fill="#555">req/s</text>`)

  // Every bar the same width, whatever the group's size: groups without some variants are narrower.
  const barCount = groups.reduce((n, g) => n + g.bars.length, 0)
  const barWidth = barCount === 0 ? 0 : (plotWidth - GROUP_GAP * groups.length - BAR_GAP * barCount) / barCount
  let x = MARGIN.left + GROUP_GAP / 2
  for (const group of groups) {
    const start = x
    for (const bar of group.bars) {
      const height = baseline - y(bar.value)
      out.push(`<rect x="${x.toFixed(1)}" y="${y(bar.value).toFixed(1)}" width="${barWidth.toFixed(1)}" height="${height.toFixed(1)}" fill="${bar.colour}"><title>${escape(`${bar.variant} ${group.route}: ${Math.round(bar.value)} req/s`)}</title></rect>`)
      const labelX = x + barWidth / 2 + 3
      out.push(`<text transform="translate(${labelX.toFixed(1)} ${(y(bar.value) - 4).toFixed(1)}) rotate(-90)" font-size="10" fill="#333">${compact(bar.value)}</text>`)
      x += barWidth + BAR_GAP
    }
    out.push(`<text x="${((start + x - BAR_GAP) / 2).toFixed(1)}" y="${baseline + 18}" text-anchor="middle" font-weight="600">${escape(group.route)}</text>`)
    x += GROUP_GAP
  }

  // The legend, in rows under the axis.
  const perRow = 5
  series.forEach(({ variant, colour }, i) => {
    const lx = MARGIN.left + (i % perRow) * 200
    const ly = baseline + 42 + Math.floor(i / perRow) * 20
    out.push(`<rect x="${lx}" y="${ly - 10}" width="12" height="12" fill="${colour}"/>`)
    out.push(`<text x="${lx + 18}" y="${ly}">${escape(variant)}</text>`)
  })
  out.push('</svg>')
  return out.join('\n') + '\n'
}
