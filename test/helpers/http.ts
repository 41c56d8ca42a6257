// One HTTP request over a real socket with an explicit Cookie header (no jar: the test decides
// which cookie is sent); redirects are not followed.
import { cookieOf, type ParsedCookie } from './app.js'

export interface Reply { status: number, body: string, location: string | null, cookie: ParsedCookie | undefined }

export async function send (base: string, path: string, init: { method?: string, cookie?: string, form?: Record<string, string> } = {}): Promise<Reply> {
  const headers: Record<string, string> = {}
  if (init.cookie !== undefined) headers.cookie = init.cookie
  if (init.form !== undefined) headers['content-type'] = 'application/x-www-form-urlencoded'
  const response = await fetch(base + path, {
    method: init.method ?? 'GET',
    redirect: 'manual',
    headers,
    body: init.form === undefined ? undefined : new URLSearchParams(init.form).toString()
  })
  return {
    status: response.status,
    body: await response.text(),
    location: response.headers.get('location'),
    cookie: cookieOf({ headers: { 'set-cookie': response.headers.getSetCookie() } })
  }
}
