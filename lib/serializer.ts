import { parse, stringify } from 'devalue'

/** Turns a session record into text for the backend and back. */
export interface Serializer {
  stringify (value: unknown): string
  parse (text: string): unknown
}

/**
 * devalue: Date, Map, Set, BigInt, RegExp, URL, typed arrays, undefined, repeated and cyclic
 * references survive the round trip, which JSON loses silently.
 */
export const devalueSerializer: Serializer = { stringify, parse }
