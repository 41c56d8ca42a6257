// What the built-in adapters share: the Redis compare-and-set script (node-redis and ioredis send
// the same one) and the error plumbing.
import { createHash } from 'node:crypto'

/**
 * Compare-and-set in one round trip. KEYS[1] the key; ARGV: has-expected ('1'/'0'), expected,
 * has-value ('1'/'0'), value, TTL in seconds ('0': no expiry). Flags rather than sentinel values,
 * so any string, the empty one included, can be expected or written. GET goes through pcall: a
 * key of another type is not ours to replace, so the answer is 0, never a WRONGTYPE error. A
 * missing key reads as false, which never equals a string. Returns 1 when written.
 */
export const COMPARE_AND_SET_SCRIPT = `local current = redis.pcall('GET', KEYS[1])
if type(current) == 'table' then return 0 end
if ARGV[1] == '1' then
  if current ~= ARGV[2] then return 0 end
elseif current then
  return 0
end
if ARGV[3] == '0' then
  redis.call('DEL', KEYS[1])
elseif ARGV[5] == '0' then
  redis.call('SET', KEYS[1], ARGV[4])
else
  redis.call('SET', KEYS[1], ARGV[4], 'EX', ARGV[5])
end
return 1`

export const COMPARE_AND_SET_SHA = createHash('sha1').update(COMPARE_AND_SET_SCRIPT).digest('hex')

/** The script's ARGV for a compareAndSet call. */
export function compareAndSetArguments (expected: string | undefined, value: string | undefined, ttlSeconds: number): string[] {
  return [
    expected === undefined ? '0' : '1', expected ?? '',
    value === undefined ? '0' : '1', value ?? '',
    ttlSeconds > 0 ? String(ttlSeconds) : '0'
  ]
}

// The error constructors are typed by their message arguments only, so the cause is set after.
export function withCause<E extends Error> (error: E, cause: unknown): E {
  error.cause = cause
  return error
}

export function messageOf (error: unknown): string {
  if (error instanceof Error) {
    // Node reports a refused connection to several addresses as an AggregateError with no message.
    if (error.message !== '') return error.message
    if (error instanceof AggregateError && error.errors.length > 0) return messageOf(error.errors[0])
    return error.name
  }
  return String(error)
}
