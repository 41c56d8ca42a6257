// Checks the package as npm would ship it, from a consumer's side. Run after `npm run build`.
//
// 1. `npm pack` (no scripts): the tarball holds package.json, README.md, LICENSE and the built
//    dist/lib and dist/types, nothing else (no source maps, no outputs of deleted sources), and
//    every "types"/"default" path of package.json "exports" is in it.
// 2. The tarball is unpacked into a scratch node_modules (the dependencies are linked from this
//    repository's node_modules) and consumer files are compiled against it with skipLibCheck off
//    under each module resolution a TypeScript user may have: NodeNext, Node16, bundler and
//    node10. The errors must be typed (not `any`) under every one of them.
// 3. The README quick start, pasted into a `server.ts` with no SessionData declaration, compiles.
// 4. The README's SessionData snippet, saved as a `.d.ts` of its own (the file users get wrong:
//    without an import it silently replaces the package's types), types a consumer's session. It
//    is the text of types/declaration-file/fixtures/session-data.d.ts, whose type tests go further.
// 5. The README works from the package: its links into the repository are absolute (docs/ is not
//    shipped) and name files that exist; installing the tarball runs no build (no install-time or
//    `prepare` script: dist/ is in it).
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import ts from 'typescript'

const root = fileURLToPath(new URL('..', import.meta.url))
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
const problems = []

/** `npm pack` into `dir`; returns the paths the tarball holds. */
function packTarball (dir) {
  const out = execFileSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
  const [info] = JSON.parse(out)
  execFileSync('tar', ['-xzf', join(dir, info.filename), '-C', dir])
  return info.files.map((f) => f.path)
}

function checkTarball (files) {
  const shipped = new Set(files)
  for (const required of ['package.json', 'README.md', 'LICENSE', 'dist/lib/index.js', 'dist/lib/index.d.ts', 'dist/types/index.d.ts']) {
    if (!shipped.has(required)) problems.push(`tarball: ${required} is missing`)
  }
  for (const file of files) {
    if (['package.json', 'README.md', 'LICENSE'].includes(file)) continue
    const built = /^dist\/((?:lib|types)\/.+?)(\.d\.ts|\.js)$/.exec(file)
    if (built === null) {
      problems.push(`tarball: ${file} should not be shipped (only dist/lib and dist/types outputs, README.md, LICENSE)`)
    } else if (!existsSync(join(root, `${built[1]}.ts`))) {
      // tsc never deletes: an output whose source is gone would ship stale code.
      problems.push(`tarball: ${file} has no source ${built[1]}.ts (stale build output; delete dist/ and rebuild)`)
    }
  }
  for (const [subpath, target] of Object.entries(pkg.exports)) {
    const targets = typeof target === 'string' ? { default: target } : target
    for (const [condition, path] of Object.entries(targets)) {
      if (!shipped.has(path.replace(/^\.\//, ''))) problems.push(`exports["${subpath}"].${condition}: ${path} is not in the tarball`)
    }
  }
  for (const field of ['main', 'types']) {
    if (pkg[field] !== undefined && !shipped.has(pkg[field].replace(/^\.\//, ''))) problems.push(`"${field}": ${pkg[field]} is not in the tarball`)
  }
}

/**
 * `<scratch>/node_modules/fastify-quart-session` is the unpacked tarball; every other dependency
 * is a link to this repository's node_modules (TypeScript follows links to their real path, so
 * their own dependencies resolve there too).
 */
function unpackAsDependency (dir) {
  const modules = join(dir, 'node_modules')
  mkdirSync(modules)
  execFileSync('mv', [join(dir, 'package'), join(modules, pkg.name)])
  for (const entry of readdirSync(join(root, 'node_modules'))) {
    if (entry === pkg.name || entry.startsWith('.')) continue
    symlinkSync(join(root, 'node_modules', entry), join(modules, entry))
  }
  const consumer = join(dir, 'app')
  mkdirSync(consumer)
  writeFileSync(join(consumer, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }))
  return consumer
}

function writeConsumerFiles (dir) {
  writeFileSync(join(dir, 'main.ts'), MAIN_ENTRY)
  writeFileSync(join(dir, 'subpaths.ts'), SUBPATHS)
  writeFileSync(join(dir, 'require.cts'), REQUIRE)
  writeFileSync(join(dir, 'server.ts'), readmeQuickStart())
}

/** The first js block of the README's quick start, as test/readme.test.ts reads it. */
function readmeQuickStart () {
  const readme = readFileSync(join(root, 'README.md'), 'utf8')
  const start = readme.indexOf('## Quick start')
  const match = start === -1 ? null : /```js\n([\s\S]*?)```/.exec(readme.slice(start))
  if (match === null) {
    problems.push('README.md: no ```js block under "## Quick start" to compile as server.ts')
    return 'export {}\n'
  }
  return match[1]
}

/** The README's SessionData declaration: the ts block under "## TypeScript" that declares it. */
function readmeSessionData () {
  const readme = readFileSync(join(root, 'README.md'), 'utf8')
  const start = readme.indexOf('## TypeScript')
  const match = start === -1 ? null : /```ts\n([\s\S]*?interface SessionData[\s\S]*?)```/.exec(readme.slice(start))
  if (match === null) {
    problems.push('README.md: no ```ts block declaring SessionData under "## TypeScript"')
    return 'export {}\n'
  }
  const fixture = readFileSync(join(root, 'types/declaration-file/fixtures/session-data.d.ts'), 'utf8')
  if (match[1] !== fixture) problems.push('README.md: the SessionData snippet differs from types/declaration-file/fixtures/session-data.d.ts (keep them the same text)')
  return match[1]
}

// Uses the keys the README snippet declares (user, visits): typed, and wrong types refused.
const TYPED = `import Fastify from 'fastify'
import quartSession from 'fastify-quart-session'

const app = Fastify()
app.register(quartSession, { secret: 'a'.repeat(32) })
app.get('/', async (request) => {
  const name: string | undefined = request.session.get('user')?.name
  request.session.set('visits', (request.session.get('visits') ?? 0) + 1)
  // @ts-expect-error visits is a number
  request.session.set('visits', 'one')
  // @ts-expect-error undeclared key
  request.session.set('undeclared', 1)
  return name ?? 'nobody'
})
export { app }
`

function writeTypedConsumer (dir) {
  mkdirSync(dir)
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'typed-app', private: true, type: 'module' }))
  writeFileSync(join(dir, 'session-data.d.ts'), readmeSessionData())
  writeFileSync(join(dir, 'typed.ts'), TYPED)
}

const REPOSITORY = pkg.homepage.replace(/#.*$/, '')

/** Links of the packed README: absolute into the repository (docs/ is not shipped), to files that exist. */
function checkReadmeLinks (packageDir) {
  const readme = readFileSync(join(packageDir, 'README.md'), 'utf8')
  for (const [, target] of readme.matchAll(/\]\(([^)\s]+)\)/g)) {
    if (target.startsWith('#')) continue
    if (!/^[a-z]+:/.test(target)) {
      if (!existsSync(join(packageDir, target.replace(/#.*$/, '')))) problems.push(`README.md: the relative link ${target} is broken in the package; link ${REPOSITORY}/blob/main/${target}`)
      continue
    }
    const inRepository = new RegExp(`^${REPOSITORY.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/(?:blob|raw)/main/([^#?]+)`).exec(target)
    if (inRepository !== null && !existsSync(join(root, inRepository[1]))) problems.push(`README.md: ${target} names ${inRepository[1]}, which is not in the repository`)
  }
}

function checkInstallScripts (packageDir) {
  const scripts = JSON.parse(readFileSync(join(packageDir, 'package.json'), 'utf8')).scripts ?? {}
  for (const name of ['preinstall', 'install', 'postinstall', 'prepare']) {
    if (scripts[name] !== undefined) problems.push(`package.json: a "${name}" script runs when the tarball or a git URL is installed; the tarball carries dist/ (build in "prepack")`)
  }
}

function resolutions () {
  const { ModuleKind, ModuleResolutionKind } = ts
  // node10 knows no "exports": subpath entries are out of its reach (main entry only), and a
  // CommonJS module has no top-level await for the quick start.
  return [
    ['NodeNext', { module: ModuleKind.NodeNext, moduleResolution: ModuleResolutionKind.NodeNext }, ['main.ts', 'subpaths.ts', 'require.cts', 'server.ts']],
    ['Node16', { module: ModuleKind.Node16, moduleResolution: ModuleResolutionKind.Node16 }, ['main.ts', 'subpaths.ts', 'server.ts']],
    ['bundler', { module: ModuleKind.ESNext, moduleResolution: ModuleResolutionKind.Bundler }, ['main.ts', 'subpaths.ts', 'server.ts']],
    ['node10', { module: ModuleKind.CommonJS, moduleResolution: ModuleResolutionKind.Node10 }, ['main.ts']]
  ]
}

function compile (dir, resolution, roots) {
  const options = {
    ...resolution,
    target: ts.ScriptTarget.ES2022,
    lib: ['lib.es2022.d.ts'],
    types: ['node'],
    strict: true,
    noEmit: true,
    esModuleInterop: true,
    skipLibCheck: false
  }
  const program = ts.createProgram(roots.map((f) => join(dir, f)), options)
  // skipLibCheck off for the files a consumer gets from us; the other packages' declarations are
  // theirs (checking all of @types/node and fastify four times would triple the run time).
  const ours = (file) => file.fileName.startsWith(dir + '/') || file.fileName.includes(`/node_modules/${pkg.name}/`)
  const diagnostics = [...program.getOptionsDiagnostics(), ...program.getGlobalDiagnostics()]
  for (const file of program.getSourceFiles().filter(ours)) {
    diagnostics.push(...program.getSyntacticDiagnostics(file), ...program.getSemanticDiagnostics(file))
  }
  return diagnostics.map((d) => {
    const text = ts.flattenDiagnosticMessageText(d.messageText, '\n    ')
    if (d.file === undefined) return text
    const { line, character } = d.file.getLineAndCharacterOfPosition(d.start ?? 0)
    const where = relative(dir, d.file.fileName).replace(/^(\.\.\/)+node_modules\//, 'node_modules/')
    return `${where}:${line + 1}:${character + 1} ${text}`
  })
}

// Consumers. `IsAny` fails the assignment when a type has silently become `any` (what
// skipLibCheck turns unresolvable types into).
const IS_ANY = 'type IsAny<T> = 0 extends 1 & T ? true : false\n'

const MAIN_ENTRY = `${IS_ANY}
import Fastify from 'fastify'
import quartSession, { errors, MemoryStore, type SessionStore, type QuartSessionOptions } from 'fastify-quart-session'

const backendNotAny: IsAny<typeof errors.FST_QUART_SESSION_BACKEND> = false
const optionNotAny: IsAny<typeof errors.FST_QUART_SESSION_INVALID_OPTION> = false
const code: 'FST_QUART_SESSION_BACKEND' = new errors.FST_QUART_SESSION_BACKEND('Redis GET').code
const status: number = errors.FST_QUART_SESSION_TIMEOUT('Redis GET', 2).statusCode
const isError: Error = new errors.FST_QUART_SESSION_CONFLICT(5)
// @ts-expect-error one message argument: backend details go in \`cause\`
new errors.FST_QUART_SESSION_BACKEND('Redis GET', 'details')

const options: QuartSessionOptions = { type: 'memory', maxAge: 3600, rolling: true }
const store: SessionStore = new MemoryStore()
const app = Fastify()
app.register(quartSession, options)
app.register(quartSession, { store })
app.get('/', async (request) => {
  request.session.set('foo', 'bar')
  const sessionNotAny: IsAny<typeof request.session> = false
  const id: string = request.session.id
  await request.session.regenerate(['foo'])
  return String(request.session.get('foo'))
})
export { backendNotAny, optionNotAny, code, status, isError, app }
`

const SUBPATHS = `${IS_ANY}
import { RedisStore } from 'fastify-quart-session/redis'
import { IoredisStore } from 'fastify-quart-session/ioredis'
import { MemcachedStore } from 'fastify-quart-session/memcached'
import { FilesystemStore } from 'fastify-quart-session/filesystem'
import { storeContract } from 'fastify-quart-session/contract'
import type { SessionStore } from 'fastify-quart-session'

const stores: SessionStore[] = [new RedisStore({ uri: 'redis://localhost:6379' }), new MemcachedStore(), new FilesystemStore({ directory: './sessions' })]
const ioredisNotAny: IsAny<typeof IoredisStore> = false
const contractNotAny: IsAny<typeof storeContract> = false
storeContract({ name: 'memory', runner: { describe: (_name: string, body: () => void) => { body() }, it: () => {} }, create: async () => stores[0] })
export { ioredisNotAny, contractNotAny }
`

// A CommonJS file of an ESM app (NodeNext: require() of an ES module, Node 20.19+).
const REQUIRE = `${IS_ANY}
import plugin = require('fastify-quart-session')
const notAny: IsAny<typeof plugin.errors.FST_QUART_SESSION_BACKEND> = false
const code: 'FST_QUART_SESSION_LAYOUT' = new plugin.errors.FST_QUART_SESSION_LAYOUT('why').code
export = { notAny, code, plugin: plugin.default }
`

function main () {
  if (!existsSync(join(root, 'dist/lib/index.d.ts'))) {
    console.error('types/check-resolutions.mjs: dist/ is missing; run `npm run build` first')
    process.exit(1)
  }
  const scratch = mkdtempSync(join(tmpdir(), 'quart-resolutions-'))
  try {
    const files = packTarball(scratch)
    checkTarball(files)
    checkReadmeLinks(join(scratch, 'package'))
    checkInstallScripts(join(scratch, 'package'))
    const consumer = unpackAsDependency(scratch)
    writeConsumerFiles(consumer)
    for (const [name, options, roots] of resolutions()) {
      const diagnostics = compile(consumer, options, roots)
      const label = `${name}: ${roots.join(', ')}`
      if (diagnostics.length === 0) console.log(`ok   ${label}`)
      else {
        console.log(`FAIL ${label}`)
        problems.push(...diagnostics.map((d) => `[${name}] ${d}`))
      }
    }
    // Its own program: a SessionData declaration merges program-wide, and the quick start has none.
    const typed = join(scratch, 'typed-app')
    writeTypedConsumer(typed)
    for (const [name, options] of resolutions().filter(([name]) => name !== 'node10')) {
      const diagnostics = compile(typed, options, ['session-data.d.ts', 'typed.ts'])
      const label = `${name}: README SessionData snippet as session-data.d.ts, typed.ts`
      if (diagnostics.length === 0) console.log(`ok   ${label}`)
      else {
        console.log(`FAIL ${label}`)
        problems.push(...diagnostics.map((d) => `[${name}, SessionData snippet] ${d}`))
      }
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true })
  }
  if (problems.length > 0) {
    console.error(`\n${problems.length} problem(s):\n${problems.map((p) => `  - ${p}`).join('\n')}`)
    process.exit(1)
  }
  console.log('ok   tarball: package.json, README.md, LICENSE, dist/lib, dist/types; every exports path present; no install-time build; README links work from the package')
}

main()
