// Placeholder until the filesystem adapter lands (issue 12).
import type { SessionStore } from '../store.js'
export interface FilesystemStoreOptions { directory?: string, fileMode?: number, maxEntries?: number }
export class FilesystemStore implements SessionStore {
  constructor (_options: FilesystemStoreOptions = {}) { throw new Error('filesystem store: not implemented yet') }
  async get (): Promise<string | undefined> { return undefined }
  async set (): Promise<void> {}
  async delete (): Promise<void> {}
}
