import { channel } from 'node:diagnostics_channel'

// Lifecycle events on node:diagnostics_channel: free without subscribers (a channel's
// `hasSubscribers` is one property read), and what OpenTelemetry and APM agents already listen to.
// Payloads carry the session's user (when the app names one) and a hash of its id, never the id.

export const CREATED = 'fastify-quart-session:created'
export const REGENERATED = 'fastify-quart-session:regenerated'
export const DESTROYED = 'fastify-quart-session:destroyed'
export const REVOKED = 'fastify-quart-session:revoked'
export const EXPIRED = 'fastify-quart-session:expired'
export const RENEWED = 'fastify-quart-session:renewed'

export interface LifecycleEvent {
  /** Hash of the session id (lib/keys.ts idHash): stable per session, useless as a cookie. */
  idHash: string
  /** The session's user, where the `userId` option names one. */
  user?: string
  /** Epoch milliseconds. */
  at: number
  /** For regenerated and renewed: the hash of the id it had before. */
  previousIdHash?: string
  /** For revoked: whether one session or all of a user's. */
  reason?: string
}

export const channels = {
  created: channel(CREATED),
  regenerated: channel(REGENERATED),
  destroyed: channel(DESTROYED),
  revoked: channel(REVOKED),
  expired: channel(EXPIRED),
  renewed: channel(RENEWED)
}

export type LifecycleName = keyof typeof channels

/** Publish when someone listens; the payload is only built then. */
export function publish (name: LifecycleName, build: () => LifecycleEvent): void {
  const target = channels[name]
  if (target.hasSubscribers) target.publish(build())
}
