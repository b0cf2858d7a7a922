// The Substrate's signing and checking, in the browser (and Node), with no page around it.
//
// A person's key is made, kept and used here: the node receives signed envelopes and never the
// key. Everything this module signs is built byte for byte as the Rust code builds it
// (substrate-core's envelope.rs, statement.rs and event.rs), so an envelope from here and one from
// `substrate` with the same key and fields are the same bytes; a request a member signs is
// signed as substrate-api's signatures.rs signs it (RFC 9421). Receipts are checked here as
// `substrate verify` checks them (substrate-core's receipt.rs, substrate-tlog's note.rs,
// checkpoint.rs, proof.rs and merkle.rs), against a log key the person supplies. A node serves
// this very script, so a check made with it shows what the node's own code says; one that does
// not rest on the node is made with `substrate verify` or another verifier, against the log key
// the commons published elsewhere.
//
// Only WebCrypto is used: Ed25519 (Chromium 137 and later, Node 20 and later) and SHA-256.

/// The payload type of every event: an in-toto Statement.
export const PAYLOAD_TYPE = "application/vnd.in-toto+json";
export const STATEMENT_TYPE = "https://in-toto.io/Statement/v1";
export const PREDICATE_BASE = "https://substrate.commons/predicate/";
/// The largest envelope the log accepts (an entry must fit a tlog-tiles entry bundle).
export const MAX_ENVELOPE_BYTES = 60 * 1024;
/// How far a ballot's weights may sum from 1 and still count as a distribution.
export const BALLOT_TOLERANCE = 1e-9;
/// What consent allows, widest first; consent only ever moves down this list.
export const CONSENT_TIERS = ["public", "commons", "training-only", "local"];
/// Every event kind, as named in predicate types.
export const KINDS = [
  "genesis", "deposit", "withdrawal", "consent-change", "attestation", "revocation",
  "node-registration", "proposal", "vote", "decision", "dispute", "dispute-ruling",
  "job-receipt", "adapter", "node-offer", "job-request", "job-schedule", "job-result",
];
/// Kinds whose envelopes may carry several signatures; every other kind has exactly one.
const COSIGNABLE = new Set(["dispute-ruling", "job-receipt", "revocation"]);
/// Kinds whose subject is the deposit's CID.
const CID_KINDS = new Set(["deposit", "withdrawal", "consent-change", "dispute"]);

const subtle = globalThis.crypto.subtle;
const ED25519 = { name: "Ed25519" };
/// Multicodec varint for `ed25519-pub`.
const ED25519_PUB = [0xed, 0x01];
/// The DER of a PKCS #8 Ed25519 private key, up to its 32-byte seed (RFC 8410).
const PKCS8_PREFIX = hexToBytes("302e020100300506032b657004220420");
/// CIDv1, codec raw, multihash sha2-256 of length 32.
const CID_PREFIX = [0x01, 0x55, 0x12, 0x20];
/// Signature type byte for Ed25519 in signed-note key ids and key strings.
const NOTE_ED25519 = 0x01;
const TLOG_PROOF_HEADER = "c2sp.org/tlog-proof@v1";

// ---------------------------------------------------------------------------------------------
// Bytes and their spellings.

const encoder = new TextEncoder();

export function utf8(text) {
  return encoder.encode(text);
}

export function utf8Decode(bytes, { strict = false } = {}) {
  return new TextDecoder("utf-8", { fatal: strict }).decode(bytes);
}

export function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

export function bytesEqual(a, b) {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

export function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function hexToBytes(text) {
  return Uint8Array.from(text.match(/../g) ?? [], (pair) => parseInt(pair, 16));
}

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding, as Rust's `base64::engine::general_purpose::STANDARD` writes it.
export function base64(bytes) {
  let out = "";
  for (let i = 0; i < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | ((bytes[i + 1] ?? 0) << 8) | (bytes[i + 2] ?? 0);
    out += B64[(n >> 18) & 63] + B64[(n >> 12) & 63];
    out += i + 1 < bytes.length ? B64[(n >> 6) & 63] : "=";
    out += i + 2 < bytes.length ? B64[n & 63] : "=";
  }
  return out;
}

/// Decodes standard base64 as strictly as the Rust side does: padding required, no stray
/// characters, and no set bits after the last byte (so each byte string has one spelling).
/// Returns null when `text` is not such base64.
export function fromBase64(text) {
  if (typeof text !== "string" || text.length % 4 !== 0) return null;
  const pad = text.endsWith("==") ? 2 : text.endsWith("=") ? 1 : 0;
  const body = text.slice(0, text.length - pad);
  const values = [];
  for (const char of body) {
    const value = B64.indexOf(char);
    if (value < 0) return null;
    values.push(value);
  }
  const out = new Uint8Array((values.length * 6) >> 3);
  let bits = 0;
  let acc = 0;
  let at = 0;
  for (const value of values) {
    acc = (acc << 6) | value;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[at++] = (acc >> bits) & 0xff;
    }
  }
  if (bits > 0 && (acc & ((1 << bits) - 1)) !== 0) return null;
  return out;
}

const B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

function base58(bytes) {
  const digits = [];
  for (const byte of bytes) {
    let carry = byte;
    for (let i = 0; i < digits.length; i++) {
      carry += digits[i] << 8;
      digits[i] = carry % 58;
      carry = Math.floor(carry / 58);
    }
    while (carry > 0) {
      digits.push(carry % 58);
      carry = Math.floor(carry / 58);
    }
  }
  let out = "";
  for (const byte of bytes) {
    if (byte !== 0) break;
    out += "1";
  }
  return out + digits.reverse().map((d) => B58[d]).join("");
}

function fromBase58(text) {
  const bytes = [];
  for (const char of text) {
    let carry = B58.indexOf(char);
    if (carry < 0) return null;
    for (let i = 0; i < bytes.length; i++) {
      carry += bytes[i] * 58;
      bytes[i] = carry & 0xff;
      carry >>= 8;
    }
    while (carry > 0) {
      bytes.push(carry & 0xff);
      carry >>= 8;
    }
  }
  for (const char of text) {
    if (char !== "1") break;
    bytes.push(0);
  }
  return Uint8Array.from(bytes.reverse());
}

const B32 = "abcdefghijklmnopqrstuvwxyz234567";

function base32(bytes) {
  let out = "";
  let acc = 0;
  let bits = 0;
  for (const byte of bytes) {
    acc = (acc << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += B32[(acc >> bits) & 31];
    }
    acc &= (1 << bits) - 1;
  }
  if (bits > 0) out += B32[(acc << (5 - bits)) & 31];
  return out;
}

function fromBase32(text) {
  const out = [];
  let acc = 0;
  let bits = 0;
  for (const char of text) {
    const value = B32.indexOf(char);
    if (value < 0) return null;
    acc = (acc << 5) | value;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.push((acc >> bits) & 0xff);
    }
    acc &= (1 << bits) - 1;
  }
  return Uint8Array.from(out);
}

export async function sha256(bytes) {
  return new Uint8Array(await subtle.digest("SHA-256", bytes));
}

// ---------------------------------------------------------------------------------------------
// Keys and did:key.

/// The `did:key` of a 32-byte Ed25519 public key.
export function didOf(publicKey) {
  return "did:key:z" + base58(concat(Uint8Array.from(ED25519_PUB), publicKey));
}

/// The 32-byte Ed25519 public key a did:key names; throws, saying why, when it names none.
export function publicKeyOf(did) {
  if (typeof did !== "string" || !did.startsWith("did:key:z")) {
    throw new Error(`'${did}' is not a did:key (expected 'did:key:z6Mk…')`);
  }
  const bytes = fromBase58(did.slice("did:key:z".length));
  if (bytes === null) throw new Error(`'${did}' is not valid base58btc`);
  if (bytes.length !== 34 || bytes[0] !== ED25519_PUB[0] || bytes[1] !== ED25519_PUB[1]) {
    throw new Error(`'${did}' is not an Ed25519 did:key (only ed25519-pub keys are accepted)`);
  }
  return bytes.slice(2);
}

/// A key made or read here: its kind, its did, its 32-byte seed and the WebCrypto key that signs.
class Key {
  constructor(kind, seed, publicKey, signingKey) {
    this.kind = kind;
    this.seed = seed;
    this.publicKey = publicKey;
    this.did = didOf(publicKey);
    this.signingKey = signingKey;
  }

  /// The key file, exactly as `substrate id new` writes it: pretty JSON with two-space indents
  /// (serde_json's `to_string_pretty` of `KeyFile`) and a final newline.
  toKeyFile() {
    return JSON.stringify({ kind: this.kind, did: this.did, secret_key: base64(this.seed) }, null, 2) + "\n";
  }

  async sign(message) {
    return new Uint8Array(await subtle.sign(ED25519, this.signingKey, message));
  }
}

const KINDS_OF_KEY = ["person", "agent", "node", "log"];

/// The key whose Ed25519 seed is `seed` (32 bytes).
export async function keyFromSeed(seed, kind = "person") {
  if (!(seed instanceof Uint8Array) || seed.length !== 32) {
    throw new Error("an Ed25519 seed is 32 bytes");
  }
  const signingKey = await subtle.importKey("pkcs8", concat(PKCS8_PREFIX, seed), ED25519, true, ["sign"]);
  // WebCrypto derives the public key when it imports the seed; the JWK export hands it over.
  const jwk = await subtle.exportKey("jwk", signingKey);
  const publicKey = fromBase64Url(jwk.x);
  return new Key(kind, seed, publicKey, signingKey);
}

function fromBase64Url(text) {
  const standard = text.replace(/-/g, "+").replace(/_/g, "/");
  return fromBase64(standard + "=".repeat((4 - (standard.length % 4)) % 4));
}

/// Whether this platform's WebCrypto makes, signs and checks Ed25519 (Chromium 137, Firefox 129,
/// Safari 17 and Node 20 do).
export async function supportsEd25519() {
  try {
    const pair = await subtle.generateKey(ED25519, true, ["sign", "verify"]);
    const message = utf8("substrate");
    return await subtle.verify(ED25519, pair.publicKey, await subtle.sign(ED25519, pair.privateKey, message), message);
  } catch {
    return false;
  }
}

/// A new key, made from the platform's random numbers.
export async function createKey(kind = "person") {
  const pair = await subtle.generateKey(ED25519, true, ["sign", "verify"]);
  const pkcs8 = new Uint8Array(await subtle.exportKey("pkcs8", pair.privateKey));
  return keyFromSeed(pkcs8.slice(pkcs8.length - 32), kind);
}

/// Reads a key file as `substrate` reads it (`KeyFile::parse`): JSON {kind, did, secret_key},
/// the seed standard base64 of 32 bytes, and the did the one the seed gives.
export async function readKeyFile(text) {
  let file;
  try {
    file = JSON.parse(text);
  } catch (e) {
    throw new Error(`the key file is not JSON of the form {kind, did, secret_key}: ${e.message}`);
  }
  const fields = ["kind", "did", "secret_key"];
  if (
    file === null || typeof file !== "object" || Array.isArray(file) ||
    !fields.every((f) => typeof file[f] === "string") || !KINDS_OF_KEY.includes(file.kind)
  ) {
    throw new Error("the key file is not JSON of the form {kind, did, secret_key}");
  }
  const seed = fromBase64(file.secret_key);
  if (seed === null || seed.length !== 32) {
    throw new Error("the key file's secret_key is not base64 of 32 bytes");
  }
  const key = await keyFromSeed(seed, file.kind);
  if (key.did !== file.did) {
    throw new Error(`the key file says did ${file.did} but its secret key belongs to ${key.did}`);
  }
  return key;
}

// ---------------------------------------------------------------------------------------------
// Points of edwards25519, as far as telling a usable key from a degenerate one.
//
// WebCrypto checks a signature as RFC 8032 does, and so accepts a key (or a signature's R) that
// is a point of small order: with the identity as its key, a signature of R = identity, S = 0
// "verifies" for any message, and nobody holds its secret. `substrate verify` refuses such keys
// and signatures (ed25519-dalek's `verify_strict`), and so does this page, so that it never says
// "verifies" where the command line refuses. A key whose y is written non-canonically (y ≥ p) is
// refused too: it names the same point as another spelling, and a key has one spelling.

const FIELD = 2n ** 255n - 19n;
/// The order of the prime subgroup; a signature's S is below it.
const GROUP_ORDER = 2n ** 252n + 27742317777372353535851937790883648493n;

function fieldMod(a) {
  const r = a % FIELD;
  return r < 0n ? r + FIELD : r;
}

function fieldPow(base, exponent) {
  let [result, b, e] = [1n, fieldMod(base), exponent];
  while (e > 0n) {
    if (e & 1n) result = (result * b) % FIELD;
    b = (b * b) % FIELD;
    e >>= 1n;
  }
  return result;
}

const fieldInverse = (a) => fieldPow(a, FIELD - 2n);
const CURVE_D = fieldMod(-121665n * fieldInverse(121666n));
const SQRT_MINUS_ONE = fieldPow(2n, (FIELD - 1n) / 4n);

function littleEndian(bytes) {
  let n = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(bytes[i]);
  return n;
}

/// Decodes a 32-byte point (RFC 8032 5.1.3). Returns {x, y}, or {why} when it is no point.
function decodePoint(bytes) {
  const sign = bytes[31] >> 7;
  const y = littleEndian(bytes) & ((1n << 255n) - 1n);
  if (y >= FIELD) return { why: "is not canonically encoded (its y is not below p)" };
  const u = fieldMod(y * y - 1n);
  const v = fieldMod(CURVE_D * y * y + 1n);
  let x = fieldMod(u * fieldPow(v, 3n) * fieldPow(u * fieldPow(v, 7n), (FIELD - 5n) / 8n));
  const vxx = fieldMod(v * x * x);
  if (vxx === fieldMod(-u)) x = fieldMod(x * SQRT_MINUS_ONE);
  else if (vxx !== u) return { why: "is not a point on the curve" };
  if (x === 0n && sign === 1) return { why: "is not canonically encoded (its x is zero and its sign bit set)" };
  if (Number(x & 1n) !== sign) x = FIELD - x;
  return { x, y };
}

/// Twisted Edwards addition (a = -1), complete for every pair of points of edwards25519.
function addPoints(p, q) {
  const t = fieldMod(CURVE_D * p.x * q.x * p.y * q.y);
  return {
    x: fieldMod((p.x * q.y + p.y * q.x) * fieldInverse(1n + t)),
    y: fieldMod((p.y * q.y + p.x * q.x) * fieldInverse(1n - t)),
  };
}

/// Why the 32 bytes are not a key (or R) that `verify_strict` would use, or null when they are.
export function weakPoint(bytes) {
  if (!(bytes instanceof Uint8Array) || bytes.length !== 32) return "is not 32 bytes";
  const point = decodePoint(bytes);
  if (point.why) return point.why;
  // A point of small order is one whose multiple by the cofactor, 8, is the identity.
  let multiple = point;
  for (let i = 0; i < 3; i++) multiple = addPoints(multiple, multiple);
  if (multiple.x === 0n && multiple.y === 1n) return "is a point of small order, which anyone can sign for";
  return null;
}

/// Why `signature` cannot be a strict Ed25519 signature, or null: its R is no small-order point
/// and its S is below the group order.
function weakSignature(signature) {
  if (signature.length !== 64) return "is not 64 bytes";
  const r = weakPoint(signature.slice(0, 32));
  if (r !== null) return `has an R that ${r}`;
  if (littleEndian(signature.slice(32)) >= GROUP_ORDER) return "has an S that is not below the group order";
  return null;
}

async function verifySignature(publicKey, signature, message) {
  if (weakPoint(publicKey) !== null || weakSignature(signature) !== null) return false;
  try {
    const key = await subtle.importKey("raw", publicKey, ED25519, false, ["verify"]);
    return await subtle.verify(ED25519, key, signature, message);
  } catch {
    // A key that is no curve point verifies nothing.
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// JSON as serde_json writes it.

/// A number the Rust side holds as an f64 (a mixture weight): serde_json writes 1 as `1.0`.
export class F64 {
  constructor(value) {
    this.value = value;
  }
}

/// serde_json's spelling of a finite f64 in the range a weight takes. Both it and JavaScript
/// write the shortest digits that read back as the same double, and both write them in fixed
/// notation from 1e-5 up to 1e16; outside that range their exponent notations differ, so such a
/// number is refused rather than signed in a form the Rust side would not write.
function f64Text(value) {
  if (!Number.isFinite(value)) throw new Error(`${value} is not a finite number`);
  if (value === 0) return Object.is(value, -0) ? "-0.0" : "0.0";
  const magnitude = Math.abs(value);
  if (magnitude < 1e-5 || magnitude >= 1e16) {
    throw new Error(`${value} is too small or too large a weight; round it`);
  }
  const text = String(value);
  return Number.isInteger(value) ? text + ".0" : text;
}

/// Compact JSON with object keys in byte order: what serde_json writes for a `serde_json::Value`
/// (whose maps are sorted) and for a BTreeMap. Strings are escaped as serde_json escapes them,
/// which is what JSON.stringify does for well-formed text.
export function sortedJson(value) {
  if (value instanceof F64) return f64Text(value.value);
  if (value === null) return "null";
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "boolean") return value ? "true" : "false";
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value)) throw new Error(`${value} is not an integer; wrap an f64 in F64`);
    return String(value);
  }
  if (Array.isArray(value)) return "[" + value.map(sortedJson).join(",") + "]";
  const keys = Object.keys(value).filter((k) => value[k] !== undefined).sort(byteOrder);
  return "{" + keys.map((k) => JSON.stringify(k) + ":" + sortedJson(value[k])).join(",") + "}";
}

/// Byte order of UTF-8, which for strings without astral characters is UTF-16 code unit order.
function byteOrder(a, b) {
  const x = utf8(a);
  const y = utf8(b);
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    if (x[i] !== y[i]) return x[i] - y[i];
  }
  return x.length - y.length;
}

// ---------------------------------------------------------------------------------------------
// Content ids, statements, envelopes.

/// The CIDv1 (raw, sha2-256, base32) of `content`, as `ipfs add --cid-version 1 --raw-leaves`.
export async function cidOf(content) {
  return cidFromDigest(await sha256(content));
}

function cidFromDigest(digest) {
  return "b" + base32(concat(Uint8Array.from(CID_PREFIX), digest));
}

/// The sha256 digest a CID carries, or null when `cid` is not a canonical raw sha2-256 CIDv1.
export function digestOfCid(cid) {
  if (typeof cid !== "string" || !cid.startsWith("b")) return null;
  const bytes = fromBase32(cid.slice(1));
  if (bytes === null || bytes.length !== 36 || !CID_PREFIX.every((b, i) => bytes[i] === b)) return null;
  const digest = bytes.slice(4);
  return cidFromDigest(digest) === cid ? digest : null;
}

/// An RFC 3339 UTC time with milliseconds, as the Rust side writes `requested` and `created`.
export function timestamp(date = new Date()) {
  return date.toISOString();
}

/// An event: its kind, its subject and its predicate (the Rust side's `Event`).
function event(kind, subject, predicate) {
  return { kind, subject, predicate };
}

async function subjectOfCid(cid) {
  const digest = digestOfCid(cid);
  if (digest === null) throw new Error(`'${cid}' is not a CIDv1 in base32 (it must start with 'bafkrei')`);
  return [{ name: cid, digest: { sha256: hex(digest) } }];
}

/// A subject named by `name`, with the sha256 of the name as its digest.
async function namedSubject(name) {
  return [{ name, digest: { sha256: hex(await sha256(utf8(name))) } }];
}

/// A deposit of `content` (bytes of UTF-8 text) with what the depositor declares about it.
export async function depositEvent(content, meta) {
  if (content.length === 0) throw new Error("the text is empty; deposit a non-empty text");
  utf8Decode(content, { strict: true });
  const secondary = (meta.also ?? []).map((r) => r.trim()).filter((r) => r !== "");
  const predicate = {
    register: meta.register,
    secondaryRegisters: secondary.length > 0 ? secondary : undefined,
    consent: meta.consent,
    title: meta.title,
    language: meta.language,
    license: meta.license,
    mediaType: "text/plain; charset=utf-8",
    size: content.length,
    created: meta.created ?? timestamp(),
  };
  return event("deposit", await subjectOfCid(await cidOf(content)), predicate);
}

/// The depositor takes a text back: the node deletes it and keeps a tombstone.
export async function withdrawalEvent(cid, { reason, requested } = {}) {
  const predicate = { reason: reason || undefined, requested: requested ?? timestamp() };
  return event("withdrawal", await subjectOfCid(cid), predicate);
}

/// The depositor narrows consent on a text.
export async function consentChangeEvent(cid, consent, { requested } = {}) {
  return event("consent-change", await subjectOfCid(cid), { consent, requested: requested ?? timestamp() });
}

/// A member's vote on a proposal: yes, no or abstain, with a distribution over registers on a
/// proposal that sets the mixture and a ranking of candidates on one that elects the board.
export async function voteEvent(proposal, choice, { mixture, ranking, requested } = {}) {
  if (!["yes", "no", "abstain"].includes(choice)) throw new Error(`'${choice}' is not a vote; use yes, no or abstain`);
  let ballot;
  if (mixture !== undefined && mixture !== null) {
    ballot = {};
    for (const [register, weight] of Object.entries(mixture)) ballot[register] = new F64(Number(weight));
    const sum = Object.values(mixture).reduce((s, w) => s + Number(w), 0);
    if (Math.abs(sum - 1) > BALLOT_TOLERANCE) throw new Error(`the ballot's weights sum to ${sum}; they must sum to 1`);
  }
  const predicate = { proposal, choice, mixture: ballot, ranking: ranking ?? undefined, requested: requested ?? timestamp() };
  return event("vote", await namedSubject(`proposal/${proposal}`), predicate);
}

/// Why a deposit may be disputed, as the wire format spells each ground.
export const GROUNDS = ["wrong-register", "doubtful-consent", "spam", "harm"];

/// A member disputes a deposit (`substrate dispute open`): a wrong-register dispute names the
/// register the text should carry.
export async function disputeEvent(cid, ground, detail, { register, requested } = {}) {
  if (!GROUNDS.includes(ground)) throw new Error(`'${ground}' is not a ground; use ${GROUNDS.join(", ")}`);
  if (ground === "wrong-register" && !register) {
    throw new Error("a wrong-register dispute names the register the text should carry");
  }
  const predicate = { ground, detail, register: register || undefined, requested: requested ?? timestamp() };
  return event("dispute", await subjectOfCid(cid), predicate);
}

/// The classes of proposal, lowest first: each needs more agreement and a longer window.
export const PROPOSAL_CLASSES = ["ordinary", "resource", "constitutional"];

/// The lowest class the actions allow, as `substrate propose` chooses it when no class is
/// given: a parameter needs the class `parameterClass(key)` names (the node's own table), a
/// workload the resource class, anything else the ordinary one.
export function lowestClass(actions, parameterClass) {
  let rank = 0;
  for (const action of actions) {
    const needed = action.action === "set-parameter"
      ? parameterClass(action.key)
      : action.action === "approve-workload" ? "resource" : "ordinary";
    if (!PROPOSAL_CLASSES.includes(needed)) throw new Error(`unknown parameter '${action.key}'`);
    rank = Math.max(rank, PROPOSAL_CLASSES.indexOf(needed));
  }
  return PROPOSAL_CLASSES[rank];
}

/// A JSON value as the Rust side holds it in a `serde_json::Value`: a number with a fraction is
/// an f64 there, written with its digits as serde_json writes them.
function wireValue(value) {
  if (typeof value === "number") return Number.isInteger(value) ? value : new F64(value);
  if (Array.isArray(value)) return value.map(wireValue);
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, wireValue(v)]));
  }
  return value;
}

/// One action of a proposal in its wire form, checked as far as it can be without the ledger.
function actionOf(action) {
  switch (action.action) {
    case "set-mixture": {
      const weights = Object.entries(action.ballot ?? {});
      const sum = weights.reduce((s, [, w]) => s + Number(w), 0);
      if (weights.length === 0 || Math.abs(sum - 1) > BALLOT_TOLERANCE) {
        throw new Error(`the ballot's weights sum to ${sum}; they must sum to 1`);
      }
      return { action: "set-mixture", ballot: Object.fromEntries(weights.map(([r, w]) => [r, new F64(Number(w))])) };
    }
    case "set-parameter":
      if (!action.key) throw new Error("name the parameter to set");
      return { action: "set-parameter", key: action.key, value: wireValue(action.value) };
    case "remove-deposit":
      if (digestOfCid(action.cid) === null) throw new Error(`'${action.cid}' is not a CIDv1 in base32 (it must start with 'bafkrei')`);
      return { action: "remove-deposit", cid: action.cid, reason: action.reason ?? "" };
    default:
      throw new Error(`'${action.action}' is not an action this page makes; the command line makes every kind`);
  }
}

/// A proposal put to the chambers (`substrate propose`): a title, an optional summary, its class
/// and its actions ({action: "set-mixture", ballot} | {action: "set-parameter", key, value} |
/// {action: "remove-deposit", cid, reason}). Its subject is named by its title.
export async function proposalEvent({ title, summary, class: klass, actions, requested }) {
  if (!PROPOSAL_CLASSES.includes(klass)) throw new Error(`'${klass}' is not a class; use ${PROPOSAL_CLASSES.join(", ")}`);
  if (!Array.isArray(actions) || actions.length === 0) throw new Error("a proposal carries at least one action");
  const predicate = {
    title,
    summary: summary || undefined,
    class: klass,
    actions: actions.map(actionOf),
    requested: requested ?? timestamp(),
  };
  return event("proposal", await namedSubject(title), predicate);
}

/// The statement's bytes: serde_json's compact form of `Statement`, its fields in declaration
/// order and its predicate's keys sorted (it passes through a `serde_json::Value`).
export function statementBytes(event) {
  const subject = event.subject.map((s) => "{" + `"name":${JSON.stringify(s.name)},"digest":${sortedJson(s.digest)}` + "}");
  return utf8(
    "{" +
      `"_type":${JSON.stringify(STATEMENT_TYPE)},` +
      `"subject":[${subject.join(",")}],` +
      `"predicateType":${JSON.stringify(PREDICATE_BASE + event.kind + "/v1")},` +
      `"predicate":${sortedJson(event.predicate)}` +
      "}",
  );
}

/// DSSE pre-authentication encoding: `DSSEv1 SP len(type) SP type SP len(body) SP body`.
export function pae(payloadType, payload) {
  const type = utf8(payloadType);
  return concat(utf8(`DSSEv1 ${type.length} `), type, utf8(` ${payload.length} `), payload);
}

/// Signs `event` with `key`: a DSSE envelope as JSON-ready object, fields in the Rust order.
export async function signEvent(key, event) {
  const payload = statementBytes(event);
  const sig = await key.sign(pae(PAYLOAD_TYPE, payload));
  return { payloadType: PAYLOAD_TYPE, payload: base64(payload), signatures: [{ keyid: key.did, sig: base64(sig) }] };
}

/// The envelope's canonical bytes: compact JSON in its fixed field order (`Envelope::to_bytes`).
export function envelopeBytes(envelope) {
  const signatures = envelope.signatures.map(
    (s) => `{"keyid":${JSON.stringify(s.keyid)},"sig":${JSON.stringify(s.sig)}}`,
  );
  return utf8(
    `{"payloadType":${JSON.stringify(envelope.payloadType)},"payload":${JSON.stringify(envelope.payload)},` +
      `"signatures":[${signatures.join(",")}]}`,
  );
}

/// The request body that `POST /v1/deposits` takes.
export function depositRequest(envelope, content) {
  return JSON.stringify({ envelope, content: base64(content) });
}

/// The request body that `POST /v1/events` takes.
export function eventRequest(envelope) {
  return JSON.stringify({ envelope });
}

// ---------------------------------------------------------------------------------------------
// Signed requests: HTTP Message Signatures (RFC 9421), as the node's own client signs them.

/// The headers that sign a request as `key`: `Signature-Input` and `Signature` over `@method`,
/// `@authority`, `@path` and `@query`, and, when there is a `body` (a string or bytes), over its
/// `Content-Digest` (RFC 9530, sha-256), which is returned with them; with `created`, `keyid`
/// (the did:key), `alg` and a `nonce`, exactly as substrate-api's `signatures::sign` makes them.
/// `url` is absolute (its host is the `@authority` the node reads from Host); `created` is unix
/// seconds. The node accepts the signature of a request that writes or spends (a chat) once, so
/// each such request is signed anew; the nonce makes two in one second differ.
export async function signRequest(key, method, url, { created, nonce, body } = {}) {
  const target = new URL(url);
  const when = created ?? Math.floor(Date.now() / 1000);
  const once = nonce ?? hex(globalThis.crypto.getRandomValues(new Uint8Array(12)));
  const bytes = typeof body === "string" ? utf8(body) : body ?? new Uint8Array(0);
  const digest = bytes.length > 0 ? `sha-256=:${base64(await sha256(bytes))}:` : null;
  const base = signatureBase(method, target, when, key.did, once, digest);
  const signature = await key.sign(utf8(base.text));
  const headers = { "Signature-Input": `sig1=${base.params}`, Signature: `sig1=:${base64(signature)}:` };
  return digest === null ? headers : { "Content-Digest": digest, ...headers };
}

/// The RFC 9421 signature base of a request (with its body's digest, when it has one), and its
/// signature parameters.
function signatureBase(method, target, created, did, nonce, digest) {
  if (!Number.isSafeInteger(created)) throw new Error("created is whole unix seconds");
  if (/["\\]/.test(nonce) || /["\\]/.test(did)) throw new Error("the keyid and nonce are plain strings");
  const query = target.search === "" ? "?" : target.search;
  const covered = `"@method" "@authority" "@path" "@query"${digest === null ? "" : ' "content-digest"'}`;
  const params = `(${covered});created=${created};keyid="${did}";alg="ed25519";nonce="${nonce}"`;
  const text =
    `"@method": ${method.toUpperCase()}\n"@authority": ${target.host.toLowerCase()}\n"@path": ${target.pathname || "/"}\n` +
    `"@query": ${query}\n${digest === null ? "" : `"content-digest": ${digest}\n`}"@signature-params": ${params}`;
  return { text, params };
}

// ---------------------------------------------------------------------------------------------
// Server-sent events, as a streamed chat completion sends them.

/// The data of each event of a server-sent event stream (a fetch response's body), as it arrives:
/// an event's `data` lines joined by newlines, as the HTML standard's EventSource joins them.
/// Comments and other fields are skipped; an event the stream ends in the middle of is dropped.
export async function* serverSentEvents(stream) {
  const reader = stream.getReader();
  // One decoder for the whole stream: a character split between two reads is decoded whole.
  const decoder = new TextDecoder("utf-8");
  let buffer = "";
  let data = [];
  try {
    for (;;) {
      const { value, done } = await reader.read();
      buffer += done ? decoder.decode() : decoder.decode(value, { stream: true });
      for (let end = buffer.indexOf("\n"); end >= 0; end = buffer.indexOf("\n")) {
        const line = buffer.slice(0, end).replace(/\r$/, "");
        buffer = buffer.slice(end + 1);
        if (line === "") {
          if (data.length > 0) yield data.join("\n");
          data = [];
          continue;
        }
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        if (field === "data") data.push(colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, ""));
      }
      if (done) return;
    }
  } finally {
    reader.releaseLock();
  }
}

/// The request body of a chat completion that streams its answer: one question, answered from
/// the commons' texts (with their citations in the last chunk) when `retrieval` is true.
export function chatRequest(model, question, { retrieval = true } = {}) {
  const body = { model, messages: [{ role: "user", content: question }], stream: true };
  if (retrieval) body.retrieval = true;
  return JSON.stringify(body);
}

// ---------------------------------------------------------------------------------------------
// Receipts.

/// A signed-note verifier key, `<name>+<hash>+<base64(0x01 || public key)>`, as `substrate init`
/// prints the log key. Throws, saying why, when `text` is not one.
export async function parseLogKey(text) {
  const parts = text.trim().split("+");
  if (parts.length < 3) throw new Error("the log key is not <name>+<hash>+<key>");
  const [name, hash] = parts;
  const material = fromBase64(parts.slice(2).join("+"));
  if (name === "" || /\s/.test(name)) throw new Error(`the log key's name ${JSON.stringify(name)} is not a key name`);
  if (!/^[0-9a-fA-F]{8}$/.test(hash)) throw new Error(`the log key's hash ${JSON.stringify(hash)} is not 8 hex digits`);
  if (material === null) throw new Error("the log key is not valid base64");
  if (material[0] !== NOTE_ED25519 || material.length !== 33) {
    throw new Error("the log key is not an Ed25519 signed-note key");
  }
  const publicKey = material.slice(1);
  const weak = weakPoint(publicKey);
  if (weak !== null) throw new Error(`the log key ${weak}`);
  const id = await noteKeyHash(name, publicKey);
  if (hex(id) !== hash.toLowerCase()) {
    throw new Error(`the log key's hash ${hash} does not match its key, which hashes to ${hex(id)}`);
  }
  return { name, hash: id, publicKey };
}

/// C2SP key id: SHA-256(name || "\n" || 0x01 || public key)[..4].
async function noteKeyHash(name, publicKey) {
  return (await sha256(concat(utf8(name + "\n"), Uint8Array.of(NOTE_ED25519), publicKey))).slice(0, 4);
}

/// RFC 6962 leaf hash: SHA-256(0x00 || data).
export async function leafHash(data) {
  return sha256(concat(Uint8Array.of(0), data));
}

/// RFC 6962 interior node hash: SHA-256(0x01 || left || right).
export async function nodeHash(left, right) {
  return sha256(concat(Uint8Array.of(1), left, right));
}

/// The length of the inclusion proof of leaf `index` in a tree of `size` leaves.
function inclusionProofLength(index, size) {
  let [m, n, length] = [index, size, 0n];
  while (n > 1n) {
    let k = 1n;
    while (k * 2n < n) k *= 2n;
    if (m < k) n = k;
    else {
      m -= k;
      n -= k;
    }
    length += 1n;
  }
  return Number(length);
}

/// Checks an RFC 6962 inclusion proof (RFC 9162 2.1.3.2), as substrate-tlog's `verify_inclusion`.
/// Indices are BigInts, since a tree may outgrow a double's integers. Returns null when the proof
/// holds, or what is wrong.
export async function checkInclusion(leaf, index, size, proof, root) {
  if (index >= size) return `index ${index} is out of range for a tree of size ${size}`;
  const expected = inclusionProofLength(index, size);
  if (proof.length !== expected) return `the proof has ${proof.length} hashes; a tree of size ${size} needs ${expected}`;
  let [fn, sn] = [index, size - 1n];
  let r = leaf;
  for (const p of proof) {
    if (sn === 0n) return `the proof has ${proof.length} hashes; a tree of size ${size} needs ${expected}`;
    if ((fn & 1n) === 1n || fn === sn) {
      r = await nodeHash(p, r);
      while ((fn & 1n) === 0n && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      r = await nodeHash(r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n || !bytesEqual(r, root)) return "the computed root differs from the checkpoint's";
  return null;
}

/// A decimal u64 without sign or leading zeros, as a BigInt; null otherwise.
function canonicalU64(text) {
  if (!/^(0|[1-9][0-9]*)$/.test(text)) return null;
  const value = BigInt(text);
  return value < 2n ** 64n ? value : null;
}

/// Parses a C2SP tlog-proof@v1 text: the index, the proof hashes and the signed checkpoint note.
export function parseTlogProof(text) {
  const lines = text.split("\n");
  if (lines[0] !== TLOG_PROOF_HEADER) throw new Error(`the first line is ${JSON.stringify(lines[0])}, expected ${JSON.stringify(TLOG_PROOF_HEADER)}`);
  let at = 1;
  if (lines[at]?.startsWith("extra ")) {
    if (fromBase64(lines[at].slice(6)) === null) throw new Error("the extra data is not valid base64");
    at++;
  }
  const indexLine = lines[at];
  if (indexLine === undefined || !indexLine.startsWith("index ")) throw new Error("there is no index line");
  const index = canonicalU64(indexLine.slice(6));
  if (index === null) throw new Error(`invalid index ${JSON.stringify(indexLine.slice(6))}`);
  at++;
  const hashes = [];
  for (;; at++) {
    if (at >= lines.length - 1) throw new Error("the proof ends before the blank line before the checkpoint");
    if (lines[at] === "") break;
    const hash = fromBase64(lines[at]);
    if (hash === null) throw new Error(`proof hash ${hashes.length + 1} is not valid base64`);
    if (hash.length !== 32) throw new Error(`proof hash ${hashes.length + 1} is ${hash.length} bytes, expected 32`);
    hashes.push(hash);
  }
  const checkpoint = lines.slice(at + 1).join("\n");
  if (checkpoint === "") throw new Error("the checkpoint is missing");
  return { index, hashes, checkpoint };
}

/// Opens a signed checkpoint note with the log key (`Checkpoint::open`). Returns
/// {checkpoint} or {error, signature} where `signature` says the failure is the signature's.
export async function openCheckpoint(note, logKey) {
  const fail = (error, signature = false) => ({ error, signature });
  if ([...note].some((c) => c < " " && c !== "\n")) return fail("the note contains a control character");
  if (!note.endsWith("\n")) return fail("the note does not end with a newline");
  const split = note.lastIndexOf("\n\n");
  if (split < 0) return fail("the note has no blank line before its signatures");
  const text = note.slice(0, split + 1);
  const signatures = note.slice(split + 2);
  if (signatures === "") return fail("the note has no signature lines");
  let verified = false;
  const signers = [];
  for (const line of signatures.slice(0, -1).split("\n")) {
    if (!line.startsWith("\u2014 ")) return fail(`the signature line ${JSON.stringify(line)} does not start with an em dash and a space`);
    const rest = line.slice(2);
    const space = rest.lastIndexOf(" ");
    if (space < 0) return fail(`the signature line ${JSON.stringify(line)} has no space between name and signature`);
    const [name, blob] = [rest.slice(0, space), fromBase64(rest.slice(space + 1))];
    if (name === "" || name.includes("+") || /\s/.test(name)) return fail(`the signature line ${JSON.stringify(line)} has an invalid key name`);
    if (blob === null || blob.length < 5) return fail(`the signature line ${JSON.stringify(line)} has no usable signature`);
    const hash = blob.slice(0, 4);
    if (name !== logKey.name || !bytesEqual(hash, logKey.hash)) {
      signers.push(`${name}+${hex(hash)}`);
      continue;
    }
    if (verified) return fail(`the note has more than one signature by ${name}`, true);
    const weak = weakSignature(blob.slice(4));
    if (weak !== null) return fail(`the signature by ${name} ${weak}`, true);
    if (!(await verifySignature(logKey.publicKey, blob.slice(4), utf8(text)))) {
      return fail(`the signature by ${name} does not verify`, true);
    }
    verified = true;
  }
  if (!verified) return fail(`no signature by ${logKey.name}; signed by: ${signers.join(", ") || "nobody"}`, true);
  const body = text.slice(0, -1).split("\n");
  if (body.length < 3) return fail(`the checkpoint has ${body.length} lines, expected at least 3`);
  const [origin, sizeLine, rootLine, ...extensions] = body;
  if (origin === "") return fail("the checkpoint's origin line is empty");
  const size = canonicalU64(sizeLine);
  if (size === null) return fail(`invalid tree size ${JSON.stringify(sizeLine)}`);
  const root = fromBase64(rootLine);
  if (root === null || root.length !== 32) return fail("the checkpoint's root hash is not base64 of 32 bytes");
  if (extensions.some((e) => e === "")) return fail("a checkpoint extension line is empty");
  if (origin !== logKey.name) {
    return fail(`the checkpoint's origin ${JSON.stringify(origin)} is not the log key's name ${JSON.stringify(logKey.name)}`, true);
  }
  return { checkpoint: { origin, size, root, extensions } };
}

/// A failed check: the part of the receipt that fails, and what is wrong with it.
class Failure extends Error {
  constructor(part, message, detail) {
    super(detail ? `${message}: ${detail}` : message);
    this.part = part;
    this.headline = message;
    this.detail = detail ?? "";
  }
}

const SIGNER_OF = { deposit: "the depositor", withdrawal: "the depositor", "consent-change": "the depositor", vote: "the voter" };

/// Opens a signed event the way `SignedEvent::open` does, and returns {kind, cid, signers}.
async function openEnvelope(envelope) {
  const sigPart = (detail, kind) =>
    new Failure("signature", `${SIGNER_OF[kind] ?? "the signer"}'s signature does not hold`, detail);
  if (envelopeBytes(envelope).length > MAX_ENVELOPE_BYTES) {
    throw sigPart(`the envelope is larger than the ${MAX_ENVELOPE_BYTES} bytes the log accepts`);
  }
  if (envelope.payloadType !== PAYLOAD_TYPE) throw sigPart(`payloadType is '${envelope.payloadType}', expected '${PAYLOAD_TYPE}'`);
  const payload = fromBase64(envelope.payload);
  let statement = null;
  try {
    statement = JSON.parse(utf8Decode(payload, { strict: true }));
  } catch {
    statement = null;
  }
  const predicateType = statement?.predicateType ?? "";
  const kind = predicateType.startsWith(PREDICATE_BASE) && predicateType.endsWith("/v1")
    ? predicateType.slice(PREDICATE_BASE.length, -3)
    : "";
  if (envelope.signatures.length === 0) throw sigPart("the envelope carries no signature", kind);
  const signers = [];
  for (const signature of envelope.signatures) {
    if (signers.includes(signature.keyid)) throw sigPart(`${signature.keyid} signs the envelope twice`, kind);
    signers.push(signature.keyid);
  }
  const message = pae(envelope.payloadType, payload);
  for (const signature of envelope.signatures) {
    let publicKey;
    try {
      publicKey = publicKeyOf(signature.keyid);
    } catch (e) {
      throw sigPart(`the signature's keyid is not a usable did:key: ${e.message}`, kind);
    }
    const weakKey = weakPoint(publicKey);
    if (weakKey !== null) throw sigPart(`the key of ${signature.keyid} ${weakKey}`, kind);
    const sig = fromBase64(signature.sig);
    if (sig.length !== 64) throw sigPart("the signature is not 64 bytes of Ed25519", kind);
    const weakSig = weakSignature(sig);
    if (weakSig !== null) throw sigPart(`the signature by ${signature.keyid} ${weakSig}`, kind);
    if (!(await verifySignature(publicKey, sig, message))) {
      throw sigPart(`the signature does not verify against ${signature.keyid} (signed by another key, or the payload was altered)`, kind);
    }
  }
  const statementPart = (detail) => new Failure("signature", "the signed statement is not a Substrate event", detail);
  if (statement === null || typeof statement !== "object") throw statementPart("the payload is not JSON of an in-toto Statement v1");
  if (statement._type !== STATEMENT_TYPE) throw statementPart(`_type is '${statement._type}', expected '${STATEMENT_TYPE}'`);
  if (!KINDS.includes(kind)) throw statementPart(`unknown predicate type '${predicateType}'`);
  if (signers.length > 1 && !COSIGNABLE.has(kind)) throw sigPart(`a ${kind} carries exactly one signature, not ${signers.length}`, kind);
  let cid = null;
  if (CID_KINDS.has(kind)) {
    const subjects = statement.subject;
    if (!Array.isArray(subjects) || subjects.length !== 1 || typeof subjects[0]?.digest?.sha256 !== "string") {
      throw statementPart("the statement must have exactly one subject with a sha256 digest named by its CID");
    }
    const digest = digestOfCid(subjects[0].name);
    if (digest === null) throw statementPart(`'${subjects[0].name}' is not a raw sha2-256 CIDv1`);
    if (hex(digest) !== subjects[0].digest.sha256.toLowerCase()) {
      throw statementPart(`the subject's sha256 ${subjects[0].digest.sha256} does not match its CID ${subjects[0].name}`);
    }
    cid = subjects[0].name;
  }
  return { kind, cid, signers, predicate: statement.predicate };
}

/// An envelope as it came in a receipt, its fields checked and in the Rust field order (the Rust
/// `Envelope` refuses unknown fields and non-canonical base64 alike).
function envelopeOf(value, where) {
  const malformed = (detail) => new Failure("envelope", `the ${where} is not a DSSE envelope`, detail);
  if (value === null || typeof value !== "object" || Array.isArray(value)) throw malformed("it is not a JSON object");
  const extra = Object.keys(value).filter((k) => !["payloadType", "payload", "signatures"].includes(k));
  if (extra.length > 0) throw malformed(`unknown field '${extra[0]}'`);
  if (typeof value.payloadType !== "string") throw malformed("payloadType is missing");
  if (typeof value.payload !== "string" || fromBase64(value.payload) === null) throw malformed("payload is not standard base64");
  if (!Array.isArray(value.signatures)) throw malformed("signatures is missing");
  const signatures = value.signatures.map((s) => {
    if (s === null || typeof s !== "object" || Object.keys(s).some((k) => k !== "keyid" && k !== "sig")) throw malformed("a signature is not {keyid, sig}");
    if (typeof s.keyid !== "string" || typeof s.sig !== "string" || fromBase64(s.sig) === null) throw malformed("a signature is not {keyid, sig} with sig in standard base64");
    return { keyid: s.keyid, sig: s.sig };
  });
  return { payloadType: value.payloadType, payload: value.payload, signatures };
}

/// Checks a receipt as `substrate verify` does (`Receipt::verify`), offline, against the commons'
/// log key (its signed-note verifier key string) and, when given, the text's bytes.
///
/// Returns {ok: true, kind, cid, signer, index, treeSize, origin, checks} when it verifies, and
/// {ok: false, part, message, detail, checks} when it does not: `part` names what fails
/// (receipt, envelope, signature, fields, proof, checkpoint, inclusion or content), `message`
/// says it in a sentence. `checks` lists each part checked, in order, with its outcome.
export async function verifyReceipt(receipt, logKeyText, content) {
  const checks = [];
  const passed = (part, message) => checks.push({ part, ok: true, message });
  try {
    if (typeof receipt === "string") {
      try {
        receipt = JSON.parse(receipt);
      } catch (e) {
        throw new Failure("receipt", "this is not a receipt (JSON from a deposit)", e.message);
      }
    }
    if (receipt === null || typeof receipt !== "object") throw new Failure("receipt", "this is not a receipt (JSON from a deposit)");
    for (const [field, type] of [["kind", "string"], ["log_index", "number"], ["integrated_time", "string"], ["entry", "string"], ["proof", "string"]]) {
      if (typeof receipt[field] !== type) throw new Failure("receipt", "this is not a receipt (JSON from a deposit)", `its ${field} is missing`);
    }
    let logKey;
    try {
      logKey = await parseLogKey(logKeyText);
    } catch (e) {
      throw new Failure("log key", "the commons' log key is not a signed-note verifier key (name+hash+base64)", e.message);
    }
    const logIndex = BigInt(receipt.log_index);

    const leaf = fromBase64(receipt.entry);
    if (leaf === null) throw new Failure("entry", "the receipt's entry is not base64 of a log entry");
    if (leaf.length < 9) throw new Failure("entry", "the receipt's entry is not base64 of a log entry", `a log entry is at least 9 bytes, not ${leaf.length}`);
    const integratedTime = new DataView(leaf.buffer, leaf.byteOffset, 8).getBigUint64(0);
    let inner;
    try {
      inner = envelopeOf(JSON.parse(utf8Decode(leaf.slice(8), { strict: true })), "log entry's envelope");
    } catch (e) {
      throw e instanceof Failure ? e : new Failure("entry", "the receipt's entry is not base64 of a log entry", e.message);
    }
    const outer = envelopeOf(receipt.envelope, "receipt's envelope");
    if (!bytesEqual(envelopeBytes(inner), envelopeBytes(outer))) {
      throw new Failure("envelope", "the receipt's envelope differs from the envelope inside its log entry");
    }
    const opened = await openEnvelope(inner);
    passed("signature", `${opened.signers[0]} signed this ${opened.kind}`);

    if (opened.cid !== (receipt.cid ?? null) || opened.kind !== receipt.kind) {
      throw new Failure("fields", "the receipt's fields differ from the signed statement",
        `the receipt says ${receipt.kind} ${receipt.cid ?? "(no cid)"} but the signed statement is ${opened.kind} ${opened.cid ?? "(no cid)"}`);
    }
    const entryTime = new Date(Number(integratedTime)).toISOString();
    if (entryTime !== receipt.integrated_time) {
      throw new Failure("fields", "the receipt's fields differ from the signed statement", `integrated_time ${receipt.integrated_time} differs from the entry's ${entryTime}`);
    }

    let proof;
    try {
      proof = parseTlogProof(receipt.proof);
    } catch (e) {
      throw new Failure("proof", "the tlog proof is malformed", e.message);
    }
    if (proof.index !== logIndex) {
      throw new Failure("proof", "the tlog proof is malformed", `the proof is for index ${proof.index} but the receipt says ${logIndex}`);
    }
    const opening = await openCheckpoint(proof.checkpoint, logKey);
    if (opening.error) {
      throw opening.signature
        ? new Failure("checkpoint", "the checkpoint is not signed by this commons' log key", opening.error)
        : new Failure("checkpoint", "the checkpoint is malformed", opening.error);
    }
    const { checkpoint } = opening;
    passed("checkpoint", `signed by ${logKey.name}`);

    const wrong = await checkInclusion(await leafHash(leaf), proof.index, checkpoint.size, proof.hashes, checkpoint.root);
    if (wrong !== null) throw new Failure("inclusion", "the inclusion proof does not lead to the checkpoint's root", wrong);
    passed("inclusion", `entry ${proof.index} is in the tree of size ${checkpoint.size}`);

    if (content !== undefined && content !== null && opened.kind === "deposit") {
      await checkContent(content, opened);
      passed("content", `the text is ${opened.cid}`);
    }
    return {
      ok: true, kind: opened.kind, cid: opened.cid, signer: opened.signers[0], index: Number(proof.index),
      treeSize: Number(checkpoint.size), origin: checkpoint.origin, predicate: opened.predicate, checks,
    };
  } catch (e) {
    if (!(e instanceof Failure)) throw e;
    checks.push({ part: e.part, ok: false, message: e.message });
    return { ok: false, part: e.part, message: e.headline, detail: e.detail, checks };
  }
}

/// Checks that `content` is the text the deposit's statement signed (`Deposit::check_content`).
async function checkContent(content, opened) {
  const fail = (detail) => new Failure("content", "the text is not the one deposited", detail);
  if (content.length === 0) throw fail("the content is empty");
  const actual = await cidOf(content);
  if (actual !== opened.cid) {
    throw fail(`the content's sha256 is ${hex(await sha256(content))}, but the signed statement's subject says ${hex(digestOfCid(opened.cid))}`);
  }
  if (opened.predicate?.size !== content.length) {
    throw fail(`the content is ${content.length} bytes, but the signed statement says ${opened.predicate?.size}`);
  }
  try {
    utf8Decode(content, { strict: true });
  } catch {
    throw fail("the content is not UTF-8 text");
  }
}
