#!/usr/bin/env python3
"""Test helper: write a sample artifact directory in the formats that
`substrate demo --artifacts DIR` is specified to produce, so the conformance
checks can be exercised without our binary.

    make_sample.py DIR [--variant NAME] [--leaves N] [--index I]
                       [--proof-size S] [--old-size M] [--seed TEXT]

Everything that the checks verify is computed here independently of the
checkers' libraries: Ed25519 through `cryptography`, and our own code for the
RFC 6962 Merkle tree, signed notes, base58btc did:key and base32 CIDv1. That
way a passing run means two independent implementations agree.

--variant selects either a valid shape (good, extra, witness) or a defect.
Each defective variant is otherwise fully consistent (everything downstream
of the defect is recomputed and re-signed), so exactly one kind of check
should catch it; VARIANTS maps each to a substring of the FAIL line expected.
Needs the `cryptography` package (the conformance venv has it).
"""

import argparse
import base64
import datetime
import hashlib
import json
import os
import sys

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

# variant -> None if the run must pass, else a substring expected in a FAIL line.
VARIANTS = {
    "good": None,
    "extra": None,  # tlog-proof with an "extra" line
    "witness": None,  # checkpoints carry an extra signature by an unknown key
    "ascii-json": None,  # JSON files escape non-ASCII (\u2014 in notes)
    "tamper-deposit": "sha256",  # deposit.txt changed after issuing
    "tamper-entry": "CheckRecord",  # leaf bytes changed in receipt only
    "tamper-proof-hash": "CheckRecord",
    "tamper-checkpoint": "note.Open",  # root changed without re-signing
    "wrong-log-key": "note.Open",  # commons.vkey is some other key
    "no-state": "substrate-state",
    "bad-state": "substrate-state",
    "origin-mismatch": "origin",
    "tamper-consistency": "CheckTree",
    "fork": "CheckTree",  # new checkpoint signs a tree that rewrote history
    "log-index-mismatch": "log_index",
    "dsse-sig": "DSSE",  # signature bit flipped (and logged that way)
    "did-key-other": "DSSE",  # keyid names a different key
    "did-key-codec": "ed25519-pub",  # did:key multicodec is x25519-pub
    "payload-after-signing": "DSSE",
    "statement-type": "Statement",
    "two-subjects": "subject",
    "subject-digest": "sha256",
    "cid-mismatch": "CID",
    "doi-set": "doi",
    "doi-missing": "doi",
    "time-mismatch": "integrated_time",
    "entry-envelope-mismatch": "envelope",
    "openapi-invalid": "openapi",
    "openapi-missing": "openapi",
}

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://substrate.commons/predicate/deposit/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
LOG_NAME = "log.substrate.commons.example"


def b64(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


def sha256(b: bytes) -> bytes:
    return hashlib.sha256(b).digest()


def key_from_seed(seed: str, label: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(sha256(f"{seed}/{label}".encode()))


def raw_pub(k: Ed25519PrivateKey) -> bytes:
    return k.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


# ---- RFC 6962 Merkle tree (section 2.1) ------------------------------------


def leaf_hash(data: bytes) -> bytes:
    return sha256(b"\x00" + data)


def node_hash(left: bytes, right: bytes) -> bytes:
    return sha256(b"\x01" + left + right)


def split_point(n: int) -> int:
    """Largest power of two strictly smaller than n (n >= 2)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(hashes):
    if len(hashes) == 1:
        return hashes[0]
    k = split_point(len(hashes))
    return node_hash(mth(hashes[:k]), mth(hashes[k:]))


def audit_path(m, hashes):
    """PATH(m, D[n]): leaf sibling first, root's child last."""
    if len(hashes) == 1:
        return []
    k = split_point(len(hashes))
    if m < k:
        return audit_path(m, hashes[:k]) + [mth(hashes[k:])]
    return audit_path(m - k, hashes[k:]) + [mth(hashes[:k])]


def _subproof(m, hashes, complete):
    n = len(hashes)
    if m == n:
        return [] if complete else [mth(hashes)]
    k = split_point(n)
    if m <= k:
        return _subproof(m, hashes[:k], complete) + [mth(hashes[k:])]
    return _subproof(m - k, hashes[k:], False) + [mth(hashes[:k])]


def consistency_proof(m, hashes):
    """PROOF(m, D[n]) for 0 < m < n."""
    return _subproof(m, hashes, True)


# ---- signed notes (c2sp.org/signed-note, Ed25519) ---------------------------


def note_key_hash(name: str, pub: bytes) -> bytes:
    return sha256(name.encode() + b"\n" + b"\x01" + pub)[:4]


def vkey_line(name: str, k: Ed25519PrivateKey) -> str:
    pub = raw_pub(k)
    key = b"\x01" + pub  # algorithm byte 0x01 = Ed25519
    return f"{name}+{note_key_hash(name, pub).hex()}+{b64(key)}"


def sign_note(text: str, signers) -> str:
    """signers: list of (name, key). text must end in a newline."""
    assert text.endswith("\n")
    body = text.encode()
    out = text + "\n"
    for name, k in signers:
        sig = note_key_hash(name, raw_pub(k)) + k.sign(body)
        out += f"\u2014 {name} {b64(sig)}\n"
    return out


# ---- multiformats, by hand ----------------------------------------------------

B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def base58btc(b: bytes) -> str:
    n = int.from_bytes(b, "big")
    s = ""
    while n:
        n, r = divmod(n, 58)
        s = B58[r] + s
    return "1" * (len(b) - len(b.lstrip(b"\0"))) + s


def did_key(pub: bytes, codec=b"\xed\x01") -> str:
    # multicodec ed25519-pub is 0xed, varint-encoded as ed 01
    return "did:key:z" + base58btc(codec + pub)


def cid_v1_raw(data: bytes) -> str:
    # version 1, codec raw (0x55), multihash sha2-256 (0x12), length 32
    cid = b"\x01\x55\x12\x20" + sha256(data)
    return "b" + base64.b32encode(cid).decode().lower().rstrip("=")


# ---- the artifacts ----------------------------------------------------------------


def openapi_doc():
    receipt_ref = {"$ref": "#/components/schemas/Receipt"}
    return {
        "openapi": "3.1.0",
        "info": {"title": "The Substrate node (sample)", "version": "0.0.0"},
        "paths": {
            "/v1/deposits": {
                "post": {
                    "operationId": "deposit",
                    "requestBody": {
                        "required": True,
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    "responses": {
                        "201": {
                            "description": "Receipt for the deposit",
                            "content": {"application/json": {"schema": receipt_ref}},
                        }
                    },
                }
            },
            "/v1/receipts/{cid}": {
                "get": {
                    "operationId": "getReceipt",
                    "parameters": [
                        {"name": "cid", "in": "path", "required": True, "schema": {"type": "string"}}
                    ],
                    "responses": {
                        "200": {
                            "description": "The receipt",
                            "content": {"application/json": {"schema": receipt_ref}},
                        },
                        "404": {"description": "Unknown CID"},
                    },
                }
            },
            "/v1/checkpoint": {
                "get": {
                    "operationId": "getCheckpoint",
                    "responses": {
                        "200": {
                            "description": "Latest signed checkpoint",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
        },
        "components": {
            "schemas": {
                "Receipt": {
                    "type": "object",
                    "required": ["cid", "handle", "doi", "log_index", "integrated_time", "envelope", "entry", "proof"],
                    "properties": {
                        "cid": {"type": "string"},
                        "handle": {"type": "string"},
                        "doi": {"type": ["string", "null"]},
                        "log_index": {"type": "integer", "minimum": 0},
                        "integrated_time": {"type": "string", "format": "date-time"},
                        "envelope": {"type": "object"},
                        "entry": {"type": "string", "contentEncoding": "base64"},
                        "proof": {"type": "string"},
                    },
                }
            }
        },
    }


def rfc3339_ms(ms: int) -> str:
    t = datetime.datetime.fromtimestamp(ms // 1000, tz=datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S") + f".{ms % 1000:03d}Z"


def generate(out, variant="good", leaves=7, index=1, proof_size=None, old_size=3, seed="substrate-sample"):
    if variant not in VARIANTS:
        raise SystemExit(f"unknown variant {variant!r}; known: {', '.join(VARIANTS)}")
    proof_size = leaves if proof_size is None else proof_size
    if not (0 <= index < proof_size <= leaves and 1 <= old_size < leaves):
        raise SystemExit("need 0 <= index < proof-size <= leaves and 1 <= old-size < leaves")
    V = variant
    os.makedirs(out, exist_ok=True)

    log_key = key_from_seed(seed, "log")
    signer_key = key_from_seed(seed, "depositor")
    other_key = key_from_seed(seed, "someone-else")
    witness_key = key_from_seed(seed, "witness")

    deposit = "A commons deposit \u2014 sample text, UTF-8 \u2713\nSecond line.\n".encode()
    cid = cid_v1_raw(deposit if V != "cid-mismatch" else deposit + b"!")
    ms = 1795341600123  # 2026-11-22T10:00:00.123Z
    integrated_time = rfc3339_ms(ms if V != "time-mismatch" else ms + 1)

    digest = hashlib.sha256(deposit if V != "subject-digest" else deposit[:-1]).hexdigest()
    subjects = [{"name": cid, "digest": {"sha256": digest}}]
    if V == "two-subjects":
        subjects.append({"name": "copy", "digest": {"sha256": digest}})
    handle = f"tag:substrate.commons.example,2026:deposit/{index}"
    statement = {
        "_type": STATEMENT_TYPE if V != "statement-type" else "https://in-toto.io/Statement/v0.1",
        "subject": subjects,
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "handle": handle,
            "mediaType": "text/plain; charset=utf-8",
            "size": len(deposit),
            "depositedAt": integrated_time,
        },
    }
    payload = json.dumps(statement, separators=(",", ":"), ensure_ascii=False).encode()
    pae = b"DSSEv1 %d %s %d %s" % (len(PAYLOAD_TYPE), PAYLOAD_TYPE.encode(), len(payload), payload)
    sig = signer_key.sign(pae)
    if V == "dsse-sig":
        sig = sig[:10] + bytes([sig[10] ^ 4]) + sig[11:]
    if V == "payload-after-signing":
        payload = payload.replace(b'"size":', b'"size":1')
    keyid = did_key(raw_pub(signer_key if V != "did-key-other" else other_key),
                    codec=b"\xec\x01" if V == "did-key-codec" else b"\xed\x01")
    envelope = {
        "payloadType": PAYLOAD_TYPE,
        "payload": b64(payload),
        "signatures": [{"keyid": keyid, "sig": b64(sig)}],
    }
    envelope_bytes = json.dumps(envelope, separators=(",", ":")).encode()
    entry = ms.to_bytes(8, "big") + envelope_bytes

    # The log: other depositors' entries around ours.
    log_entries = [sha256(f"{seed}/entry/{i}".encode()) * 3 for i in range(leaves)]
    if V == "entry-envelope-mismatch":
        other = dict(envelope, payloadType="application/octet-stream")
        log_entries[index] = ms.to_bytes(8, "big") + json.dumps(other, separators=(",", ":")).encode()
    else:
        log_entries[index] = entry
    hashes = [leaf_hash(e) for e in log_entries]

    origin = LOG_NAME if V != "origin-mismatch" else LOG_NAME + "/other"

    def checkpoint(size, tree_hashes=None):
        root = mth((tree_hashes or hashes)[:size])
        text = f"{origin}\n{size}\n{b64(root)}\n"
        if V == "bad-state":
            text += f"substrate-state {b64(sha256(b'state %d' % size)[:31])}\n"
        elif V != "no-state":
            text += f"substrate-state {b64(sha256(b'state %d' % size))}\n"
        text += "substrate-note sample\n"  # an unrelated extension line must be tolerated
        signers = [(LOG_NAME, log_key)]
        if V == "witness":
            signers.append(("witness.example", witness_key))
        return sign_note(text, signers)

    cp = checkpoint(proof_size)
    if V == "tamper-checkpoint":
        lines = cp.split("\n")
        root = bytearray(base64.b64decode(lines[2]))
        root[5] ^= 1
        lines[2] = b64(bytes(root))
        cp = "\n".join(lines)
    path = audit_path(index, hashes[:proof_size])
    if V == "tamper-proof-hash":
        if not path:
            raise SystemExit("tamper-proof-hash needs a proof-size > 1")
        path[-1] = bytes([path[-1][0] ^ 1]) + path[-1][1:]
    proof = "c2sp.org/tlog-proof@v1\n"
    if V == "extra":
        proof += f"extra {b64(b'opaque extra data')}\n"
    proof += f"index {index}\n" + "".join(b64(h) + "\n" for h in path) + "\n" + cp

    receipt_entry = log_entries[index]
    if V == "tamper-entry":
        receipt_entry = entry[:-3] + bytes([entry[-3] ^ 0x20]) + entry[-2:]
    receipt = {
        "cid": cid,
        "handle": handle,
        "doi": None if V != "doi-set" else "10.5555/substrate.sample",
        "log_index": index if V != "log-index-mismatch" else index + 1,
        "integrated_time": integrated_time,
        "envelope": json.loads(envelope_bytes),
        "entry": b64(receipt_entry),
        "proof": proof,
    }
    if V == "doi-missing":
        del receipt["doi"]

    new_hashes = hashes
    if V == "fork":
        # a second tree that shares nothing with the first, same key
        new_hashes = [leaf_hash(b"rewritten history %d" % i) for i in range(leaves)]
    cons = consistency_proof(old_size, hashes[:leaves])
    if V == "tamper-consistency":
        if not cons:
            raise SystemExit("tamper-consistency needs a non-empty proof")
        cons[0] = cons[0][:31] + bytes([cons[0][31] ^ 0x10])
    consistency = {
        "old_checkpoint": checkpoint(old_size),
        "new_checkpoint": checkpoint(leaves, new_hashes),
        "proof": [b64(h) for h in cons],
    }

    vkey = vkey_line(LOG_NAME, log_key if V != "wrong-log-key" else other_key)

    def write(name, data):
        with open(os.path.join(out, name), "wb") as f:
            f.write(data if isinstance(data, bytes) else data.encode())

    write("deposit.txt", deposit if V != "tamper-deposit" else deposit + b"tampered\n")
    write("commons.vkey", vkey + "\n")
    raw_utf8 = V != "ascii-json"
    write("receipt.json", json.dumps(receipt, indent=2, ensure_ascii=not raw_utf8) + "\n")
    write("consistency.json", json.dumps(consistency, indent=2, ensure_ascii=not raw_utf8) + "\n")
    doc = openapi_doc()
    if V == "openapi-invalid":
        del doc["info"]
    if V == "openapi-missing":
        try:
            os.remove(os.path.join(out, "openapi.json"))
        except FileNotFoundError:
            pass
    else:
        write("openapi.json", json.dumps(doc, indent=2) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir")
    ap.add_argument("--variant", default="good", help="one of: " + ", ".join(VARIANTS))
    ap.add_argument("--leaves", type=int, default=7, help="final log size (new checkpoint)")
    ap.add_argument("--index", type=int, default=1, help="index of our entry")
    ap.add_argument("--proof-size", type=int, default=None, help="tree size of the receipt's checkpoint (default: leaves)")
    ap.add_argument("--old-size", type=int, default=3, help="tree size of the old checkpoint")
    ap.add_argument("--seed", default="substrate-sample")
    ap.add_argument("--list-variants", action="store_true", help="print 'variant expectation' lines and exit")
    if "--list-variants" in sys.argv[1:]:
        for k, v in VARIANTS.items():
            print(k, "pass" if v is None else v)
        return
    a = ap.parse_args()
    generate(a.dir, a.variant, a.leaves, a.index, a.proof_size, a.old_size, a.seed)


if __name__ == "__main__":
    main()
