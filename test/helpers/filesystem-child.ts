// One of the processes of the 2-process filesystem test: runs `writers` concurrent
// read-compare-and-set loops on one key, each appending its own marks, once the parent says go.
// Usage: node --import tsx filesystem-child.ts <directory> <key> <first writer> <writers> <marks per writer>
import { createInterface } from 'node:readline'
import { FilesystemStore } from '../../lib/stores/filesystem.js'

const [directory, key, first, writers, marks] = process.argv.slice(2)
const store = new FilesystemStore({ directory })
await store.ready()

async function appendMark (mark: string): Promise<number> {
  for (let attempt = 1; attempt <= 10_000; attempt++) {
    const current = await store.get(key)
    if (await store.compareAndSet(key, current, (current ?? '') + mark, 300)) return attempt
  }
  throw new Error(`mark ${mark} never written`)
}

async function writer (id: number): Promise<number> {
  let conflicts = 0
  for (let m = 0; m < Number(marks); m++) conflicts += await appendMark(`<${id}.${m}>`) - 1
  return conflicts
}

const lines = createInterface({ input: process.stdin })
process.stdout.write('ready\n')
for await (const line of lines) {
  if (line !== 'go') continue
  const ids = Array.from({ length: Number(writers) }, (_, i) => Number(first) + i)
  const conflicts = (await Promise.all(ids.map(writer))).reduce((a, b) => a + b, 0)
  process.stdout.write(`done ${conflicts}\n`)
  break
}
lines.close()
await store.close()
