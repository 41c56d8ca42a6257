// The contract suite moved to lib/contract.ts (exported as fastify-quart-session/contract).
export * from '../lib/contract.js'
