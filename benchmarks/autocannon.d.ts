// autocannon ships no types and @types/autocannon is not a dependency: just the part run.ts uses.
declare module 'autocannon' {
  import type { EventEmitter } from 'node:events'

  interface Options {
    url: string
    connections?: number
    duration?: number
    pipelining?: number
    timeout?: number
    headers?: Record<string, string>
    title?: string
  }

  interface Histogram {
    average: number
    mean: number
    stddev: number
    min: number
    max: number
    total: number
    p50: number
    p90: number
    p99: number
  }

  interface Result {
    title?: string
    url: string
    /** Seconds, to the hundredth. */
    duration: number
    errors: number
    timeouts: number
    non2xx: number
    resets: number
    '2xx': number
    /** Milliseconds. */
    latency: Histogram
    /** Per-second samples; `total` is every completed request. */
    requests: Histogram & { sent: number }
    throughput: Histogram
  }

  interface Instance extends EventEmitter, PromiseLike<Result> {
    stop (): void
  }

  function autocannon (options: Options): Instance
  export default autocannon
  export type { Options, Result, Instance }
}
