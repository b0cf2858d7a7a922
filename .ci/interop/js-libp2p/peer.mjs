// A js-libp2p peer for the interop test: takes a substrate node key as its libp2p identity, dials
// one substrate node, runs identify and ping, subscribes to a gossipsub topic and waits for
// messages on it. Prints one JSON line on stdout: what it observed ({"ok": true, ...}) or why it
// gave up ({"ok": false, "stage", "error"}, exit status 1). Progress goes to stderr, one line per
// step, so a caller can act when the peer is subscribed or has a message.
//
// Options (each also read from the environment variable named after it):
//   --addr ADDR        the node's multiaddr, ending in /p2p/<peer id>        SUBSTRATE_PEER_ADDR
//   --topic TOPIC      the gossipsub topic to subscribe to                   SUBSTRATE_PEER_TOPIC
//   --key FILE         a substrate key file ({kind, did, secret_key})        SUBSTRATE_PEER_KEY
//   --messages N       how many messages to wait for (default 1)             SUBSTRATE_PEER_MESSAGES
//   --connect-ms MS    how long to keep retrying a session (default 20000)   SUBSTRATE_PEER_CONNECT_MS
//   --timeout-ms MS    how long to wait for the messages once in session     SUBSTRATE_PEER_TIMEOUT_MS
//                      (default 20000)

import { readFile } from 'node:fs/promises'
import { parseArgs } from 'node:util'

import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys'
import { gossipsub } from '@libp2p/gossipsub'
import { identify } from '@libp2p/identify'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'

/** An error that says which step failed. */
class StageError extends Error {
  constructor (stage, message) {
    super(message)
    this.stage = stage
  }
}

const progress = (text) => process.stderr.write(`peer: ${text}\n`)
const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
function describe (error) {
  // Some failures reject with the stream's or socket's event rather than an Error.
  if (error instanceof Event) return `${error.constructor.name} '${error.type}'` + (error.error ? `: ${describe(error.error)}` : '')
  const name = error?.name && error.name !== 'Error' ? `${error.name}: ` : ''
  return name + (error?.message ?? String(error))
}

function options () {
  const { values } = parseArgs({
    options: {
      addr: { type: 'string' },
      topic: { type: 'string' },
      key: { type: 'string' },
      messages: { type: 'string' },
      'connect-ms': { type: 'string' },
      'timeout-ms': { type: 'string' }
    }
  })
  const pick = (name, variable, fallback) => {
    const value = values[name] ?? process.env[variable] ?? fallback
    if (value === undefined) throw new StageError('options', `--${name} (or ${variable}) is required`)
    return value
  }
  const count = (name, variable, fallback) => {
    const text = pick(name, variable, fallback)
    const value = Number(text)
    if (!Number.isInteger(value) || value < 1) throw new StageError('options', `--${name} must be a positive integer, not ${text}`)
    return value
  }
  return {
    addr: multiaddr(pick('addr', 'SUBSTRATE_PEER_ADDR')),
    topic: pick('topic', 'SUBSTRATE_PEER_TOPIC'),
    key: pick('key', 'SUBSTRATE_PEER_KEY'),
    messages: count('messages', 'SUBSTRATE_PEER_MESSAGES', '1'),
    connectMs: count('connect-ms', 'SUBSTRATE_PEER_CONNECT_MS', '20000'),
    timeoutMs: count('timeout-ms', 'SUBSTRATE_PEER_TIMEOUT_MS', '20000')
  }
}

/** The Ed25519 key whose 32-byte seed a substrate key file holds, base64, as `secret_key`. */
async function identity (file) {
  let seed
  try {
    const parsed = JSON.parse(await readFile(file, 'utf8'))
    seed = Buffer.from(parsed.secret_key ?? '', 'base64')
  } catch (error) {
    throw new StageError('key', `cannot read the key file ${file}: ${describe(error)}`)
  }
  if (seed.length !== 32) throw new StageError('key', `${file}: secret_key is not base64 of a 32-byte Ed25519 seed`)
  return generateKeyPairFromSeed('Ed25519', new Uint8Array(seed))
}

/**
 * Dials `addr` and runs identify on the connection, again and again until both succeed or
 * `connectMs` has passed: a node refreshes its allow-list from its ledger every few seconds, so a
 * newly registered peer is refused at first.
 */
async function session (node, addr, connectMs) {
  const deadline = Date.now() + connectMs
  let attempts = 0
  let last
  while (Date.now() < deadline) {
    attempts += 1
    try {
      const signal = AbortSignal.timeout(Math.max(1000, Math.min(5000, deadline - Date.now())))
      const connection = await node.dial(addr, { signal })
      const identified = await node.services.identify.identify(connection, { signal })
      progress(`identified ${connection.remotePeer} after ${attempts} attempt(s)`)
      return { connection, identified, attempts }
    } catch (error) {
      last = describe(error)
      progress(`attempt ${attempts} failed: ${last}`)
      await node.hangUp(addr).catch(() => {})
      await pause(250)
    }
  }
  throw new StageError('session', `no session with ${addr} within ${connectMs} ms (${attempts} attempts); last error: ${last}`)
}

/**
 * Collects the messages on `topic` from now on; `wait` resolves with the first `count` of them,
 * or rejects once `timeoutMs` has passed without that many.
 */
function collect (pubsub, topic) {
  const received = []
  let wake = () => {}
  pubsub.addEventListener('message', (event) => {
    const message = event.detail
    if (message.topic !== topic) return
    received.push({
      from: message.type === 'signed' ? message.from.toString() : null,
      signed: message.type === 'signed',
      text: new TextDecoder().decode(message.data)
    })
    progress(`message ${received.length} on ${topic}`)
    wake()
  })
  const wait = async (count, timeoutMs) => {
    const deadline = Date.now() + timeoutMs
    while (received.length < count) {
      const left = deadline - Date.now()
      if (left <= 0) throw new StageError('gossipsub', `${received.length} of ${count} message(s) on ${topic} within ${timeoutMs} ms`)
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, left)
        wake = () => { clearTimeout(timer); resolve() }
      })
    }
    return received.slice(0, count)
  }
  return { wait }
}

async function main () {
  const opts = options()
  const privateKey = await identity(opts.key)
  const expected = opts.addr.getComponents().findLast((c) => c.name === 'p2p')?.value
  if (expected === undefined) throw new StageError('options', `${opts.addr} does not end in /p2p/<peer id>`)

  const node = await createLibp2p({
    privateKey,
    addresses: { listen: [] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: {
      identify: identify(),
      ping: ping(),
      pubsub: gossipsub({ globalSignaturePolicy: 'StrictSign', emitSelf: false })
    }
  })
  try {
    progress(`local peer ${peerIdFromPrivateKey(privateKey)} (js-libp2p, Node ${process.versions.node})`)
    // Listen before subscribing, so a message sent the moment the node learns of the
    // subscription is not missed.
    const messages = collect(node.services.pubsub, opts.topic)
    node.services.pubsub.subscribe(opts.topic)

    const { connection, identified, attempts } = await session(node, opts.addr, opts.connectMs)
    let rtt
    try {
      rtt = await node.services.ping.ping(connection.remotePeer, { signal: AbortSignal.timeout(5000) })
    } catch (error) {
      throw new StageError('ping', describe(error))
    }
    progress(`ping ${rtt} ms; subscribed to ${opts.topic}, waiting for ${opts.messages} message(s)`)
    const received = await messages.wait(opts.messages, opts.timeoutMs)
    return {
      ok: true,
      implementation: 'js-libp2p',
      node_version: process.versions.node,
      local_peer: peerIdFromPrivateKey(privateKey).toString(),
      remote_peer: connection.remotePeer.toString(),
      expected_peer: expected,
      attempts,
      identify: {
        agent_version: identified.agentVersion ?? null,
        protocol_version: identified.protocolVersion ?? null,
        protocols: identified.protocols
      },
      ping_rtt_ms: rtt,
      topic: opts.topic,
      message: received[0].text,
      from: received[0].from,
      messages: received
    }
  } finally {
    // Stopping can wait on the remote; the answer is already known.
    await Promise.race([node.stop(), pause(2000)]).catch(() => {})
  }
}

try {
  const report = await main()
  process.stdout.write(JSON.stringify(report) + '\n')
  process.exit(0)
} catch (error) {
  const stage = error instanceof StageError ? error.stage : 'unexpected'
  process.stdout.write(JSON.stringify({ ok: false, stage, error: describe(error) }) + '\n')
  progress(`FAILED (${stage}): ${describe(error)}`)
  process.exit(1)
}
