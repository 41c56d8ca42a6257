// Placeholder until the ioredis adapter lands (issue 10).
import type { SessionStore } from '../store.js'
export interface IoredisStoreOptions { client: object, timeout?: number }
export class IoredisStore implements SessionStore {
  constructor (_options: IoredisStoreOptions) { throw new Error('ioredis store: not implemented yet') }
  async get (): Promise<string | undefined> { return undefined }
  async set (): Promise<void> {}
  async delete (): Promise<void> {}
}
