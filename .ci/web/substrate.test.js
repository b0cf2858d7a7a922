// substrate.js against the real `substrate` binary: the same key files, the same envelope bytes,
// envelopes a real node accepts, requests signed as the node expects (RFC 9421), and a receipt
// checker that fails exactly where `substrate verify` fails.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";

import * as substrate from "../../crates/substrate-web/assets/substrate.js";
import { api, cleanup, commons, field, ok, person, scratch, substrate as run } from "./commons.js";

const text = substrate.utf8("The dough that breathes: my grandmother folded it at dawn, twice, and waited.\n");

/// The deposit fields of a signed statement, as `depositEvent` takes them.
function declared(predicate) {
  return {
    register: predicate.register,
    also: predicate.secondaryRegisters,
    consent: predicate.consent,
    title: predicate.title,
    language: predicate.language,
    license: predicate.license,
    created: predicate.created,
  };
}

function statementOf(envelope) {
  return JSON.parse(substrate.utf8Decode(substrate.fromBase64(envelope.payload)));
}

describe("key files", () => {
  const dir = scratch("keys");
  after(() => cleanup(dir));

  test("a key made by `substrate id new` reads here, and writes back byte for byte", async () => {
    const cli = person(dir, "cli");
    const key = await substrate.readKeyFile(cli.text());
    assert.equal(key.did, cli.did);
    assert.equal(key.kind, "person");
    assert.equal(key.toKeyFile(), cli.text());
  });

  test("a key made here is read by `substrate id show`", async () => {
    const key = await substrate.createKey();
    assert.match(key.did, /^did:key:z6Mk/);
    const file = join(dir, "browser.json");
    writeFileSync(file, key.toKeyFile());
    assert.equal(ok(["id", "show", "--key", file]).trim(), key.did);
  });

  test("a key file whose did is not its key's is refused, here and by the CLI", async () => {
    const [a, b] = [await substrate.createKey(), await substrate.createKey()];
    const forged = JSON.stringify({ kind: "person", did: b.did, secret_key: substrate.base64(a.seed) });
    await assert.rejects(substrate.readKeyFile(forged), /says did .* but its secret key belongs to/);
    const file = join(dir, "forged.json");
    writeFileSync(file, forged);
    const out = run(["id", "show", "--key", file]);
    assert.notEqual(out.status, 0);
    assert.match(out.stderr, /but its secret key belongs to/);
  });

  test("the did:key test vector of the did:key method specification round-trips", () => {
    const did = "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp";
    assert.equal(substrate.didOf(substrate.publicKeyOf(did)), did);
    assert.throws(() => substrate.publicKeyOf("did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme"), /not an Ed25519/);
  });
});

describe("the encodings", () => {
  test("PAE matches the DSSE specification's example", () => {
    assert.equal(substrate.utf8Decode(substrate.pae("http://example.com/HelloWorld", substrate.utf8("hello world"))),
      "DSSEv1 29 http://example.com/HelloWorld 11 hello world");
  });

  test("base64 is standard, padded and strict, as the Rust side reads it", () => {
    for (let n = 0; n < 40; n++) {
      const bytes = Uint8Array.from({ length: n }, (_, i) => (i * 73 + n * 31) & 0xff);
      assert.equal(substrate.base64(bytes), Buffer.from(bytes).toString("base64"));
      assert.deepEqual(substrate.fromBase64(substrate.base64(bytes)), bytes);
    }
    assert.deepEqual(substrate.fromBase64("QQ=="), Uint8Array.of(0x41));
    assert.equal(substrate.fromBase64("QR=="), null, "set bits after the last byte");
    assert.equal(substrate.fromBase64("QQ"), null, "no padding");
    assert.equal(substrate.fromBase64("Q-=="), null, "not the standard alphabet");
  });

  test("server-sent events are read whole, however the stream is cut", async () => {
    const events = [
      'data: {"choices":[{"delta":{"content":"Héron"}}]}',
      ": a comment\ndata: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}],\"citations\":[{\"index\":1}]}",
      "event: ignored\ndata: first line\ndata:second line",
      "data: [DONE]",
    ];
    const bytes = substrate.utf8(events.join("\n\n") + "\n\n" + "data: cut off before its blank line\n");
    const expected = [
      '{"choices":[{"delta":{"content":"Héron"}}]}',
      '{"choices":[{"delta":{},"finish_reason":"stop"}],"citations":[{"index":1}]}',
      "first line\nsecond line",
      "[DONE]",
    ];
    // Every way of cutting it in two (through the two bytes of "é" too), and byte by byte.
    const cuts = [...Array.from({ length: bytes.length + 1 }, (_, at) => [at]), Array.from({ length: bytes.length }, (_, i) => i)];
    for (const points of cuts) {
      const parts = [];
      let from = 0;
      for (const at of [...points, bytes.length]) {
        parts.push(bytes.slice(from, at));
        from = at;
      }
      const stream = new ReadableStream({
        start(controller) {
          for (const part of parts) controller.enqueue(part);
          controller.close();
        },
      });
      const got = [];
      for await (const data of substrate.serverSentEvents(stream)) got.push(data);
      assert.deepEqual(got, expected, `cut at ${points.length === 1 ? points[0] : "every byte"}`);
    }
    // CRLF line ends read the same.
    const crlf = new Blob([substrate.utf8("data: a\r\ndata: b\r\n\r\n")]).stream();
    const got = [];
    for await (const data of substrate.serverSentEvents(crlf)) got.push(data);
    assert.deepEqual(got, ["a\nb"]);
  });

  test("weights are written as serde_json writes an f64", () => {
    assert.equal(substrate.sortedJson({ b: new substrate.F64(1), a: new substrate.F64(0.05), c: new substrate.F64(0) }), '{"a":0.05,"b":1.0,"c":0.0}');
    assert.throws(() => substrate.sortedJson({ a: new substrate.F64(1e-7) }), /round it/);
  });
});

describe("keys that are no keys", () => {
  // The eight encodings of the points of small order (the identity, the point of order 2, two of
  // order 4 and four of order 8).
  const small = [
    "0100000000000000000000000000000000000000000000000000000000000000",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000080",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
  ];
  const bytes = (text) => Uint8Array.from(text.match(/../g), (pair) => parseInt(pair, 16));

  test("the points of small order and y ≥ p are refused; real keys are not", async () => {
    for (const point of small) assert.match(substrate.weakPoint(bytes(point)) ?? "", /small order/, point);
    // p itself and p + 1: spellings of y = 0 and y = 1 at or past the field's modulus.
    for (const point of ["edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"]) {
      assert.match(substrate.weakPoint(bytes(point)) ?? "", /not canonically encoded/, point);
    }
    for (let i = 0; i < 16; i++) {
      const key = await substrate.createKey();
      assert.equal(substrate.weakPoint(key.publicKey), null, key.did);
    }
  });
});

describe("a live node", () => {
  let dir, node, steward, stewardKey, browserKey;

  before(async () => {
    dir = scratch("node");
    steward = person(dir, "steward");
    node = await commons(dir, { stewards: [steward.did], window: "1h" });
    stewardKey = await substrate.readKeyFile(steward.text());
    browserKey = await substrate.createKey();
  });
  after(async () => {
    await node?.stop();
    cleanup(dir);
  });

  test("a deposit signed by the CLI is the envelope substrate.js signs, byte for byte", async () => {
    const file = join(dir, "cli-story.txt");
    writeFileSync(file, "A kitchen-table story in the CLI's hand.\n");
    const receiptFile = join(dir, "cli.receipt.json");
    ok([
      "deposit", file, "--register", "narrative", "--also", "oral", "--consent", "training-only",
      "--title", "Über \"quotes\", back\\slashes, </script>, a line\u2028separator, ünïcödé ☃", "--lang", "pt-BR", "--license", "CC-BY-4.0",
      "--receipt", receiptFile, "--key", steward.file, "--node", node.url,
    ]);
    const receipt = JSON.parse((await import("node:fs")).readFileSync(receiptFile, "utf8"));
    const statement = statementOf(receipt.envelope);
    const event = await substrate.depositEvent(substrate.utf8("A kitchen-table story in the CLI's hand.\n"), declared(statement.predicate));
    const envelope = await substrate.signEvent(stewardKey, event);
    assert.equal(envelope.payload, receipt.envelope.payload, "the statement bytes");
    assert.deepEqual(envelope, receipt.envelope);
    // The log's leaf holds the envelope's canonical bytes after the 8-byte time.
    const leaf = substrate.fromBase64(receipt.entry);
    assert.deepEqual(leaf.slice(8), substrate.envelopeBytes(envelope));
  });

  test("a vote with a distribution, a withdrawal and a consent change are the CLI's bytes", async () => {
    const said = ok(["propose", "--title", "All narrative", "--set-mixture", "narrative=1", "--key", steward.file, "--node", node.url]);
    const id = Number(said.match(/^proposal (\d+)/)[1]);
    const voted = ok(["vote", String(id), "yes", "--mixture", "narrative=0.7,oral=0.25,lyric=0.05", "--key", steward.file, "--node", node.url]);
    const index = voted.match(/logged at index (\d+)/)[1];
    const receipt = (await api(node.url, `/v1/receipts/${index}`)).body;
    const predicate = statementOf(receipt.envelope).predicate;
    const vote = await substrate.voteEvent(id, "yes", { mixture: predicate.mixture, requested: predicate.requested });
    assert.deepEqual(await substrate.signEvent(stewardKey, vote), receipt.envelope);

    // Whole weights: serde_json writes 1 and 0 as 1.0 and 0.0.
    const whole = ok(["vote", String(id), "yes", "--mixture", "narrative=1,oral=0", "--key", steward.file, "--node", node.url]);
    const wholeReceipt = (await api(node.url, `/v1/receipts/${whole.match(/logged at index (\d+)/)[1]}`)).body;
    assert.match(substrate.utf8Decode(substrate.fromBase64(wholeReceipt.envelope.payload)), /"narrative":1\.0,"oral":0\.0/);
    const wholeVote = await substrate.voteEvent(id, "yes", {
      mixture: { narrative: 1, oral: 0 },
      requested: statementOf(wholeReceipt.envelope).predicate.requested,
    });
    assert.deepEqual(await substrate.signEvent(stewardKey, wholeVote), wholeReceipt.envelope);

    const file = join(dir, "to-narrow.txt");
    writeFileSync(file, "A text whose consent narrows, then goes.\n");
    const cid = field(ok(["deposit", file, "--register", "oral", "--consent", "public", "--title", "Narrowed", "--lang", "en", "--license", "CC0-1.0", "--receipt", join(dir, "n.json"), "--key", steward.file, "--node", node.url]), "cid:");
    const narrowed = ok(["consent", cid, "--narrow", "commons", "--key", steward.file, "--node", node.url]);
    const narrowReceipt = (await api(node.url, `/v1/receipts/${field(narrowed, "log index:")}`)).body;
    const change = await substrate.consentChangeEvent(cid, "commons", { requested: statementOf(narrowReceipt.envelope).predicate.requested });
    assert.deepEqual(await substrate.signEvent(stewardKey, change), narrowReceipt.envelope);

    const withdrawn = ok(["withdraw", cid, "--reason", "I would rather keep it\nat home", "--key", steward.file, "--node", node.url]);
    const withdrawReceipt = (await api(node.url, `/v1/receipts/${field(withdrawn, "log index:")}`)).body;
    const { reason, requested } = statementOf(withdrawReceipt.envelope).predicate;
    assert.equal(reason, "I would rather keep it\nat home");
    const withdrawal = await substrate.withdrawalEvent(cid, { reason, requested });
    assert.deepEqual(await substrate.signEvent(stewardKey, withdrawal), withdrawReceipt.envelope);
  });

  test("a deposit signed here is accepted, and both verifiers accept its receipt", async () => {
    const event = await substrate.depositEvent(text, {
      register: "narrative", consent: "public", title: "The dough that breathes", language: "en", license: "CC-BY-4.0",
    });
    const envelope = await substrate.signEvent(browserKey, event);
    const reply = await api(node.url, "/v1/deposits", { method: "POST", body: substrate.depositRequest(envelope, text) });
    assert.equal(reply.status, 201, reply.text);
    const receipt = reply.body;
    assert.equal(receipt.cid, await substrate.cidOf(text));
    assert.deepEqual(receipt.envelope, envelope);

    const verdict = await substrate.verifyReceipt(receipt, node.vkey, text);
    assert.equal(verdict.ok, true, JSON.stringify(verdict));
    assert.equal(verdict.signer, browserKey.did);
    assert.deepEqual(verdict.checks.map((c) => c.part), ["signature", "checkpoint", "inclusion", "content"]);

    const receiptFile = join(dir, "browser.receipt.json");
    const textFile = join(dir, "browser.txt");
    writeFileSync(receiptFile, JSON.stringify(receipt, null, 2));
    writeFileSync(textFile, text);
    const cli = run(["verify", receiptFile, "--commons-key", node.vkey, "--content", textFile]);
    assert.equal(cli.status, 0, cli.stderr);
    assert.match(cli.stdout, new RegExp(`signature: +ok, ${browserKey.did} signed this deposit`));

    // Sent again, it is the same act: the node answers with the same receipt's entry.
    const again = await api(node.url, "/v1/deposits", { method: "POST", body: substrate.depositRequest(envelope, text) });
    assert.equal(again.status, 200, again.text);
    assert.equal(again.body.log_index, receipt.log_index);
  });

  test("the node's refusal comes back as {error, detail}", async () => {
    const event = await substrate.depositEvent(text, {
      register: "narrative", consent: "public", title: "Bad language tag", language: "english!", license: "CC-BY-4.0",
    });
    const reply = await api(node.url, "/v1/deposits", { method: "POST", body: substrate.depositRequest(await substrate.signEvent(browserKey, event), text) });
    assert.equal(reply.status, 400);
    assert.equal(typeof reply.body.error, "string");
    assert.match(reply.body.detail, /language/);
  });

  test("tampered receipts fail in both verifiers, and the page's verifier names the part", async () => {
    const content = substrate.utf8("A text for tampering with: the heron waits at the ford.\n");
    const event = await substrate.depositEvent(content, {
      register: "lyric", consent: "public", title: "Heron", language: "en", license: "CC0-1.0",
    });
    const good = (await api(node.url, "/v1/deposits", { method: "POST", body: substrate.depositRequest(await substrate.signEvent(browserKey, event), content) })).body;
    // More entries, so the proof has hashes to flip.
    for (let i = 0; i < 3; i++) {
      const other = substrate.utf8(`Filler text number ${i}.\n`);
      const filler = await substrate.depositEvent(other, { register: "oral", consent: "public", title: `Filler ${i}`, language: "en", license: "CC0-1.0" });
      await api(node.url, "/v1/deposits", { method: "POST", body: substrate.depositRequest(await substrate.signEvent(browserKey, filler), other) });
    }
    const fresh = (await api(node.url, `/v1/receipts/${good.log_index}`)).body;

    const flip = (b64, at) => {
      const bytes = substrate.fromBase64(b64);
      bytes[at] ^= 0x01;
      return substrate.base64(bytes);
    };
    const withEnvelope = (receipt, change) => {
      const copy = structuredClone(receipt);
      change(copy.envelope);
      const leaf = substrate.fromBase64(copy.entry);
      copy.entry = substrate.base64(substrate.concat(leaf.slice(0, 8), substrate.envelopeBytes(copy.envelope)));
      return copy;
    };
    const proofLines = (receipt, change) => {
      const copy = structuredClone(receipt);
      const lines = copy.proof.split("\n");
      change(lines);
      copy.proof = lines.join("\n");
      return copy;
    };
    const cases = [
      ["the signature", "signature", withEnvelope(fresh, (e) => { e.signatures[0].sig = flip(e.signatures[0].sig, 10); })],
      ["the signed statement", "signature", withEnvelope(fresh, (e) => { e.payload = substrate.base64(substrate.utf8(substrate.utf8Decode(substrate.fromBase64(e.payload)).replace("Heron", "Crane"))); })],
      ["a proof hash", "inclusion", proofLines(fresh, (l) => { l[2] = flip(l[2], 0); })],
      ["the checkpoint's tree size", "checkpoint", proofLines(fresh, (l) => { const at = l.indexOf("") + 2; l[at] = String(Number(l[at]) + 1); })],
      ["the checkpoint's signature", "checkpoint", proofLines(fresh, (l) => { const at = l.findIndex((x) => x.startsWith("\u2014 ")); const [name, sig] = l[at].slice(2).split(" "); l[at] = `\u2014 ${name} ${flip(sig, 20)}`; })],
      ["the receipt's envelope alone", "envelope", (() => { const c = structuredClone(fresh); c.envelope.signatures[0].sig = flip(c.envelope.signatures[0].sig, 3); return c; })()],
      ["the log index", "proof", { ...fresh, log_index: fresh.log_index + 1 }],
    ];
    assert.ok(fresh.proof.split("\n").length > 6, "the proof has hashes");
    for (const [what, part, receipt] of cases) {
      const verdict = await substrate.verifyReceipt(receipt, node.vkey);
      assert.equal(verdict.ok, false, `${what}: ${JSON.stringify(verdict)}`);
      assert.equal(verdict.part, part, `${what}: ${verdict.message}: ${verdict.detail}`);
      const file = join(dir, "tampered.json");
      writeFileSync(file, JSON.stringify(receipt));
      const cli = run(["verify", file, "--commons-key", node.vkey]);
      assert.notEqual(cli.status, 0, `${what}: substrate verify accepted it:\n${cli.stdout}`);
      assert.match(cli.stderr, /does NOT verify/, what);
    }

    // The text: a changed byte fails the content check in both.
    const changed = substrate.utf8("A text for tampering with: the heron waits at the fort.\n");
    const verdict = await substrate.verifyReceipt(fresh, node.vkey, changed);
    assert.equal(verdict.part, "content");
    const [receiptFile, textFile] = [join(dir, "r.json"), join(dir, "t.txt")];
    writeFileSync(receiptFile, JSON.stringify(fresh));
    writeFileSync(textFile, changed);
    assert.notEqual(run(["verify", receiptFile, "--commons-key", node.vkey, "--content", textFile]).status, 0);

    // Another commons' key: the checkpoint is not signed by it.
    const otherDir = scratch("other");
    try {
      const otherKey = field(ok(["init", "--data-dir", join(otherDir, "data"), "--name", "Another"]), "log key:");
      const wrongKey = await substrate.verifyReceipt(fresh, otherKey);
      assert.equal(wrongKey.part, "checkpoint");
      assert.equal(wrongKey.message, "the checkpoint is not signed by this commons' log key");
      assert.notEqual(run(["verify", receiptFile, "--commons-key", otherKey]).status, 0);
    } finally {
      cleanup(otherDir);
    }

    // And the untouched receipt still passes both.
    assert.equal((await substrate.verifyReceipt(fresh, node.vkey, content)).ok, true);
    writeFileSync(textFile, content);
    assert.equal(run(["verify", receiptFile, "--commons-key", node.vkey, "--content", textFile]).status, 0);
  });

  test("a small-order log key or signer key is refused here as `substrate verify` refuses it", async () => {
    // The identity point signs anything with R = identity and S = 0: RFC 8032's check (and so
    // WebCrypto's) accepts that signature for every message.
    const identity = Uint8Array.from({ length: 32 }, (_, i) => (i === 0 ? 1 : 0));
    const trivial = substrate.concat(identity, new Uint8Array(32));
    const noteHash = async (name, publicKey) => (await substrate.sha256(substrate.concat(substrate.utf8(name + "\n"), Uint8Array.of(1), publicKey))).slice(0, 4);
    const vkeyOf = async (name, publicKey) => `${name}+${substrate.hex(await noteHash(name, publicKey))}+${substrate.base64(substrate.concat(Uint8Array.of(1), publicKey))}`;
    const signLine = async (name, publicKey, sig) => `\u2014 ${name} ${substrate.base64(substrate.concat(await noteHash(name, publicKey), sig))}\n`;
    const refusedByCli = (receipt, vkey) => {
      const file = join(dir, "weak.json");
      writeFileSync(file, JSON.stringify(receipt));
      return run(["verify", file, "--commons-key", vkey]);
    };

    // A log key that is the identity, and a checkpoint "signed" by it.
    const content = substrate.utf8("A text whose checkpoint a degenerate key claims.\n");
    const event = await substrate.depositEvent(content, { register: "oral", consent: "public", title: "Claimed", language: "en", license: "CC0-1.0" });
    const real = (await api(node.url, "/v1/deposits", { method: "POST", body: substrate.depositRequest(await substrate.signEvent(browserKey, event), content) })).body;
    const { checkpoint } = substrate.parseTlogProof(real.proof);
    const origin = checkpoint.split("\n")[0];
    const body = checkpoint.slice(0, checkpoint.lastIndexOf("\n\n") + 1);
    const forged = { ...real, proof: real.proof.slice(0, real.proof.length - checkpoint.length) + body + "\n" + (await signLine(origin, identity, trivial)) };
    const weakLog = await vkeyOf(origin, identity);
    const byPage = await substrate.verifyReceipt(forged, weakLog);
    assert.deepEqual([byPage.ok, byPage.part], [false, "log key"], JSON.stringify(byPage));
    assert.match(byPage.detail, /small order/);
    const byCli = refusedByCli(forged, weakLog);
    assert.notEqual(byCli.status, 0, `substrate verify accepted it:\n${byCli.stdout}`);

    // A deposit "signed" by the identity's did:key, in a log of one entry under a sound log key.
    const logKey = await substrate.keyFromSeed(globalThis.crypto.getRandomValues(new Uint8Array(32)), "log");
    const envelope = await substrate.signEvent(logKey, event);
    envelope.signatures = [{ keyid: substrate.didOf(identity), sig: substrate.base64(trivial) }];
    const time = 1_796_000_000_000n;
    const stamp = new Uint8Array(8);
    new DataView(stamp.buffer).setBigUint64(0, time);
    const leaf = substrate.concat(stamp, substrate.envelopeBytes(envelope));
    const note = `weak.example/log\n1\n${substrate.base64(await substrate.leafHash(leaf))}\n`;
    const noteSig = await logKey.sign(substrate.utf8(note));
    const receipt = {
      kind: "deposit", cid: real.cid, handle: null, doi: null, log_index: 0,
      integrated_time: new Date(Number(time)).toISOString(), envelope, entry: substrate.base64(leaf),
      proof: `c2sp.org/tlog-proof@v1\nindex 0\n\n${note}\n${await signLine("weak.example/log", logKey.publicKey, noteSig)}`,
    };
    const soundLog = await vkeyOf("weak.example/log", logKey.publicKey);
    const signed = await substrate.verifyReceipt(receipt, soundLog);
    assert.deepEqual([signed.ok, signed.part], [false, "signature"], JSON.stringify(signed));
    assert.match(signed.detail, /small order/);
    // The same receipt with a real signer's key passes: only the degenerate key fails it.
    const sound = structuredClone(receipt);
    sound.envelope = await substrate.signEvent(browserKey, event);
    sound.entry = substrate.base64(substrate.concat(stamp, substrate.envelopeBytes(sound.envelope)));
    const soundNote = `weak.example/log\n1\n${substrate.base64(await substrate.leafHash(substrate.fromBase64(sound.entry)))}\n`;
    sound.proof = `c2sp.org/tlog-proof@v1\nindex 0\n\n${soundNote}\n${await signLine("weak.example/log", logKey.publicKey, await logKey.sign(substrate.utf8(soundNote)))}`;
    assert.equal((await substrate.verifyReceipt(sound, soundLog)).ok, true);
    assert.equal(refusedByCli(sound, soundLog).status, 0, "substrate verify accepts the sound one");
  });

  test("a vote, a consent change and a withdrawal signed here are accepted", async () => {
    ok(["member", "attest", browserKey.did, "--days", "30", "--key", steward.file, "--node", node.url]);
    const proposals = (await api(node.url, "/v1/proposals")).body.proposals;
    const id = proposals[0].id ?? proposals[0].proposal?.id;
    const vote = await substrate.voteEvent(id, "yes", { mixture: { narrative: 0.6, oral: 0.4 } });
    const voted = await api(node.url, "/v1/events", { method: "POST", body: substrate.eventRequest(await substrate.signEvent(browserKey, vote)) });
    assert.equal(voted.status, 201, voted.text);
    assert.equal((await substrate.verifyReceipt(voted.body, node.vkey)).kind, "vote");

    const content = substrate.utf8("A text the browser's key takes back.\n");
    const deposit = await substrate.depositEvent(content, { register: "oral", consent: "public", title: "Taken back", language: "en", license: "CC0-1.0" });
    const receipt = (await api(node.url, "/v1/deposits", { method: "POST", body: substrate.depositRequest(await substrate.signEvent(browserKey, deposit), content) })).body;
    const narrow = await substrate.consentChangeEvent(receipt.cid, "training-only");
    const narrowed = await api(node.url, "/v1/events", { method: "POST", body: substrate.eventRequest(await substrate.signEvent(browserKey, narrow)) });
    assert.equal(narrowed.status, 201, narrowed.text);
    const widen = await substrate.consentChangeEvent(receipt.cid, "public");
    const widened = await api(node.url, "/v1/events", { method: "POST", body: substrate.eventRequest(await substrate.signEvent(browserKey, widen)) });
    assert.equal(widened.status >= 400, true, "widening consent is refused");
    assert.ok(widened.body.error && widened.body.detail, widened.text);
    const withdrawal = await substrate.withdrawalEvent(receipt.cid, { reason: "changed my mind" });
    const withdrawn = await api(node.url, "/v1/events", { method: "POST", body: substrate.eventRequest(await substrate.signEvent(browserKey, withdrawal)) });
    assert.equal(withdrawn.status, 201, withdrawn.text);
    const shown = await api(node.url, `/v1/deposits/${receipt.cid}`);
    assert.equal(shown.body.deposit.status.state, "withdrawn");
    assert.equal((await substrate.verifyReceipt(withdrawn.body, node.vkey)).kind, "withdrawal");
  });
  test("a dispute and a proposal are the CLI's bytes", async () => {
    const file = join(dir, "disputed.txt");
    writeFileSync(file, "A song filed as a story.\n");
    const cid = field(ok(["deposit", file, "--register", "narrative", "--consent", "public", "--title", "Filed wrongly", "--lang", "en", "--license", "CC0-1.0", "--receipt", join(dir, "d.json"), "--key", steward.file, "--node", node.url]), "cid:");
    const opened = ok(["dispute", "open", cid, "--ground", "wrong-register", "--register", "lyric", "--detail", "It is sung,\nnot told: \"listen\".", "--key", steward.file, "--node", node.url]);
    const disputed = (await api(node.url, `/v1/receipts/${opened.match(/^dispute (\d+) opened/)[1]}`)).body;
    const said = statementOf(disputed.envelope).predicate;
    assert.equal(said.detail, "It is sung,\nnot told: \"listen\".");
    const dispute = await substrate.disputeEvent(cid, "wrong-register", said.detail, { register: "lyric", requested: said.requested });
    assert.deepEqual(await substrate.signEvent(stewardKey, dispute), disputed.envelope);
    await assert.rejects(substrate.disputeEvent(cid, "wrong-register", "but which register?"), /names the register/);
    await assert.rejects(substrate.disputeEvent(cid, "boring", "dull"), /not a ground/);

    const proposed = ok([
      "propose", "--title", "Songs, and less spam", "--summary", "Lyric gets more;\nthe spam goes.",
      "--set-mixture", "narrative=0.7,lyric=0.25,oral=0.05", "--set", "mixture.cap.sacred=0.5", "--set", "mixture.floor.lyric=0",
      "--remove", cid, "--reason", "It is spam after all.", "--key", steward.file, "--node", node.url,
    ]);
    const receipt = (await api(node.url, `/v1/receipts/${proposed.match(/^proposal (\d+)/)[1]}`)).body;
    const actions = [
      { action: "set-mixture", ballot: { narrative: 0.7, lyric: 0.25, oral: 0.05 } },
      { action: "set-parameter", key: "mixture.cap.sacred", value: 0.5 },
      { action: "set-parameter", key: "mixture.floor.lyric", value: 0 },
      { action: "remove-deposit", cid, reason: "It is spam after all." },
    ];
    const classes = { "mixture.cap.sacred": "ordinary", "mixture.floor.lyric": "ordinary", "credits.floor": "resource", "window.ordinary": "constitutional" };
    const klass = substrate.lowestClass(actions, (key) => classes[key]);
    assert.equal(klass, statementOf(receipt.envelope).predicate.class);
    const proposal = await substrate.proposalEvent({
      title: "Songs, and less spam", summary: "Lyric gets more;\nthe spam goes.", class: klass, actions,
      requested: statementOf(receipt.envelope).predicate.requested,
    });
    assert.deepEqual(await substrate.signEvent(stewardKey, proposal), receipt.envelope);

    // The class is the highest any action needs; the node refuses one too low, saying so.
    const floor = [{ action: "set-parameter", key: "credits.floor", value: 25 }];
    assert.equal(substrate.lowestClass([...actions, ...floor], (key) => classes[key]), "resource");
    assert.equal(substrate.lowestClass([{ action: "set-parameter", key: "window.ordinary", value: 1000 }, ...floor], (key) => classes[key]), "constitutional");
    const tooLow = await substrate.proposalEvent({ title: "A larger floor", class: "ordinary", actions: floor });
    const refused = await api(node.url, "/v1/events", { method: "POST", body: substrate.eventRequest(await substrate.signEvent(stewardKey, tooLow)) });
    assert.equal(refused.body?.error, "proposal_class_too_low", refused.text);
    const right = await substrate.proposalEvent({ title: "A larger floor", class: "resource", actions: floor });
    const accepted = await api(node.url, "/v1/events", { method: "POST", body: substrate.eventRequest(await substrate.signEvent(stewardKey, right)) });
    assert.equal(accepted.status, 201, accepted.text);
    assert.equal((await api(node.url, `/v1/proposals/${accepted.body.log_index}`)).body.proposal.class, "resource");
  });

  test("a member reads a commons text with a request signed here; an outsider and a tampered request are refused", async () => {
    const content = substrate.utf8("A lullaby for members: the river is cold, the blanket warm.\n");
    const deposit = await substrate.depositEvent(content, { register: "lyric", consent: "commons", title: "Members' lullaby", language: "en", license: "CC-BY-4.0" });
    const deposited = await api(node.url, "/v1/deposits", { method: "POST", body: substrate.depositRequest(await substrate.signEvent(browserKey, deposit), content) });
    assert.equal(deposited.status, 201, deposited.text);
    const url = `${node.url}/v1/deposits/${deposited.body.cid}/content`;
    const read = async (target, headers) => {
      const response = await fetch(target, { headers });
      const bytes = new Uint8Array(await response.arrayBuffer());
      let body = null;
      try {
        body = JSON.parse(substrate.utf8Decode(bytes));
      } catch {
        body = null;
      }
      return { status: response.status, bytes, body };
    };

    const anonymous = await read(url, {});
    assert.deepEqual([anonymous.status, anonymous.body?.error], [403, "consent"]);
    const member = await read(url, await substrate.signRequest(stewardKey, "GET", url));
    assert.equal(member.status, 200, substrate.utf8Decode(member.bytes));
    assert.deepEqual(member.bytes, content);
    // With a query, @query is covered too.
    const queried = `${url}?as=member`;
    assert.equal((await read(queried, await substrate.signRequest(stewardKey, "GET", queried))).status, 200);

    const outsider = await read(url, await substrate.signRequest(await substrate.createKey(), "GET", url));
    assert.deepEqual([outsider.status, outsider.body?.error], [403, "not_member"]);
    assert.match(outsider.body.detail, /not a verified member/);

    const signed = await substrate.signRequest(stewardKey, "GET", url);
    const sig = substrate.fromBase64(signed.Signature.slice("sig1=:".length, -1));
    sig[5] ^= 0x01;
    const tampered = await read(url, { ...signed, Signature: `sig1=:${substrate.base64(sig)}:` });
    assert.deepEqual([tampered.status, tampered.body?.error], [401, "bad_signature"]);
    assert.match(tampered.body.detail, /does not verify/);
    const receiptUrl = url.replace(/content$/, "receipt");
    const elsewhere = await read(url, await substrate.signRequest(stewardKey, "GET", receiptUrl));
    assert.deepEqual([elsewhere.status, elsewhere.body?.error], [401, "bad_signature"], "signed for another path");
    const stale = await read(url, await substrate.signRequest(stewardKey, "GET", url, { created: Math.floor(Date.now() / 1000) - 600 }));
    assert.deepEqual([stale.status, stale.body?.error], [401, "bad_signature"]);
    assert.match(stale.body.detail, /sign again/);
  });

  test("a chat signed here covers its body's Content-Digest, and its signature is accepted once", async () => {
    // This node serves no model: a request the signature check lets through is refused for want
    // of one (404 model_not_found), after the node has said who is asking.
    const url = `${node.url}/v1/chat/completions`;
    const body = substrate.chatRequest("SmolLM2-135M-Instruct", "Who sang the water song?");
    assert.deepEqual(JSON.parse(body), { model: "SmolLM2-135M-Instruct", messages: [{ role: "user", content: "Who sang the water song?" }], stream: true, retrieval: true });
    const post = async (headers, sent = body) => {
      const response = await fetch(url, { method: "POST", body: sent, headers: { "content-type": "application/json", ...headers } });
      return { status: response.status, body: await response.json() };
    };
    const signed = await substrate.signRequest(stewardKey, "POST", url, { body });
    assert.equal(signed["Content-Digest"], `sha-256=:${substrate.base64(await substrate.sha256(substrate.utf8(body)))}:`);
    assert.match(signed["Signature-Input"], /^sig1=\("@method" "@authority" "@path" "@query" "content-digest"\);created=/);
    const member = await post(signed);
    assert.deepEqual([member.status, member.body.error?.code], [404, "model_not_found"], JSON.stringify(member.body));

    const again = await post(signed);
    assert.equal(again.status, 401, JSON.stringify(again.body));
    assert.match(JSON.stringify(again.body), /replayed_signature/);
    const altered = await post(await substrate.signRequest(stewardKey, "POST", url, { body }), body.replace("water", "fire"));
    assert.equal(altered.status, 401, JSON.stringify(altered.body));
    assert.match(JSON.stringify(altered.body), /Content-Digest/);
    const { "Content-Digest": _, ...undigested } = await substrate.signRequest(stewardKey, "POST", url);
    const bare = await post(undigested);
    assert.equal(bare.status, 401, JSON.stringify(bare.body));
    assert.match(JSON.stringify(bare.body), /content-digest/);
    const outsider = await post(await substrate.signRequest(await substrate.createKey(), "POST", url, { body }));
    assert.equal(outsider.status, 403, JSON.stringify(outsider.body));
  });
});
