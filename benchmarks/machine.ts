/**
 * How busy the machine was with work that is not the benchmark's: on a small shared machine
 * another process (a test run, a build) moves requests/s by far more than the few percent the
 * targets are about, so each cell records it and a disturbed cell is measured again.
 */
import { readFileSync } from 'node:fs'

// USER_HZ: the unit of /proc/stat and /proc/<pid>/stat. 100 on every Linux build that matters.
const TICK_MICROS = 10_000

/** CPU time the whole machine spent busy (steal included: the hypervisor took it from us), µs. */
export function machineBusyMicros (): number | undefined {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]
    const [, user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).map(Number)
    return (user + nice + system + irq + softirq + steal) * TICK_MICROS
  } catch {
    return undefined
  }
}

/** CPU time (user + system) of another process, µs; 0 when it cannot be read. */
export function processMicros (pid: number | undefined): number {
  if (pid === undefined) return 0
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // The command name (field 2) may hold spaces: count fields from the closing parenthesis.
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) * TICK_MICROS
  } catch {
    return 0
  }
}

/** CPU cores' worth of foreign work between two readings (`undefined` off Linux). */
export function foreignCores (busyBefore: number | undefined, busyAfter: number | undefined, ownMicros: number, seconds: number): number | undefined {
  if (busyBefore === undefined || busyAfter === undefined) return undefined
  return Math.max(0, (busyAfter - busyBefore - ownMicros) / (seconds * 1e6))
}
