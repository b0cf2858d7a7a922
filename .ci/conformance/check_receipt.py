#!/usr/bin/env python3
"""Check a Substrate receipt with other people's libraries.

    check_receipt.py DIR      (run with the conformance venv's python)

Reads DIR/receipt.json and DIR/deposit.txt and checks:
  (a) DSSE: securesystemslib's Envelope verifies the signature with an
      SSlibKey whose public key is derived from the did:key in the
      signature's keyid, decoded with the `multiformats` package;
  (b) in-toto: the payload parses into the in_toto_attestation v1 Statement
      protobuf and passes the package's validator, with one subject whose
      sha256 is that of deposit.txt;
  (c) multiformats: CIDv1 / raw / sha2-256 / base32 of deposit.txt is the
      receipt's cid;
  (d) the receipt's doi is null;
  (e) the receipt's own fields agree with the logged entry (8-byte big-endian
      integrated time in ms || envelope JSON).
Negative controls check that the libraries really reject tampered input.
Prints "ok   <what>" / "FAIL <what>: <why>" per check; exits 1 on any FAIL.
"""

import base64
import binascii
import copy
import datetime
import hashlib
import json
import os
import re
import sys

failures = 0


def ok(what):
    print(f"ok   {what}", flush=True)


def fail(what, why):
    global failures
    failures += 1
    why = str(why).strip().splitlines()[0] if str(why).strip() else type(why).__name__
    print(f"FAIL {what}: {why}", flush=True)


def info(what):
    print(f"info {what}", flush=True)


class Check:
    """with Check("what"): ...  -> ok on normal exit, FAIL on exception."""

    def __init__(self, what):
        self.what = what
        self.passed = False

    def __enter__(self):
        return self

    def __exit__(self, et, e, tb):
        if et is None:
            ok(self.what)
            self.passed = True
        elif issubclass(et, Exception):
            fail(self.what, f"{et.__name__}: {e}" if not isinstance(e, AssertionError) else e)
        else:
            return False
        return True


def must_reject(what, fn, *exc_types):
    """Negative control: fn() must raise one of exc_types."""
    try:
        fn()
    except exc_types as e:
        ok(f"negative control: {what} (rejected: {type(e).__name__})")
        return
    except Exception as e:  # rejected, but not the way the library documents
        fail(f"negative control: {what}", f"unexpected {type(e).__name__}: {e}")
        return
    fail(f"negative control: {what}", "tampered input was ACCEPTED")


def strict_b64(s, what):
    if not isinstance(s, str):
        raise AssertionError(f"{what} is not a string")
    try:
        b = base64.b64decode(s, validate=True)
    except binascii.Error as e:
        raise AssertionError(f"{what} is not standard base64: {e}")
    if base64.b64encode(b).decode() != s:
        raise AssertionError(f"{what} is not canonical padded standard base64")
    return b


# ---- (a) DSSE with a did:key ------------------------------------------------


def key_from_did(did):
    """did:key:z... -> raw Ed25519 public key, via the multiformats package."""
    from multiformats import multibase, multicodec

    prefix = "did:key:"
    assert did.startswith(prefix), f"keyid {did!r} is not a did:key"
    msid = did[len(prefix):]
    base = multibase.from_str(msid)
    assert base.name == "base58btc", f"did:key multibase is {base.name}, want base58btc ('z')"
    raw = multibase.decode(msid)
    codec, pub = multicodec.unwrap(raw)
    assert codec.name == "ed25519-pub", f"did:key multicodec is {codec.name!r}, want 'ed25519-pub'"
    assert len(pub) == 32, f"ed25519-pub key is {len(pub)} bytes, want 32"
    return pub


def check_dsse(receipt):
    from securesystemslib.dsse import Envelope
    from securesystemslib.exceptions import VerificationError
    from securesystemslib.signer import SSlibKey

    env_dict = receipt.get("envelope")
    with Check("DSSE envelope has payloadType, payload and exactly one signature") as c:
        assert isinstance(env_dict, dict), "receipt.envelope is not an object"
        extra = set(env_dict) - {"payloadType", "payload", "signatures"}
        assert not extra, f"unexpected envelope fields {sorted(extra)}"
        assert env_dict.get("payloadType") == "application/vnd.in-toto+json", \
            f"payloadType is {env_dict.get('payloadType')!r}"
        sigs = env_dict.get("signatures")
        assert isinstance(sigs, list) and len(sigs) == 1, "want exactly one signature"
        assert set(sigs[0]) == {"keyid", "sig"}, f"signature fields are {sorted(sigs[0])}"
        strict_b64(env_dict["payload"], "envelope.payload")
        sig = strict_b64(sigs[0]["sig"], "signature.sig")
        assert len(sig) == 64, f"Ed25519 signature is {len(sig)} bytes, want 64"
    if not c.passed:
        return None

    keyid = env_dict["signatures"][0]["keyid"]
    with Check("DSSE keyid is a did:key decoding (multibase base58btc, multicodec) to an ed25519-pub key") as c:
        pub = key_from_did(keyid)
    if not c.passed:
        return None
    info(f"signer {keyid}")

    key = SSlibKey(keyid=keyid, keytype="ed25519", scheme="ed25519", keyval={"public": pub.hex()})
    envelope = None
    with Check("DSSE: securesystemslib Envelope.from_dict") as c:
        # from_dict rewrites the signature dicts in place; keep the receipt intact
        envelope = Envelope.from_dict(copy.deepcopy(env_dict))
    if not c.passed:
        return None
    with Check("DSSE: securesystemslib Envelope.verify([did:key key], threshold 1)"):
        accepted = envelope.verify([key], 1)
        assert keyid in accepted, "signer key not among accepted keys"

    def tampered(payload=None, payload_type=None):
        return Envelope(
            payload if payload is not None else envelope.payload,
            payload_type if payload_type is not None else envelope.payload_type,
            copy.deepcopy(envelope.signatures),
        )

    p = bytearray(envelope.payload)
    p[len(p) // 2] ^= 0x01
    must_reject("DSSE payload with one bit flipped",
                lambda: tampered(payload=bytes(p)).verify([key], 1), VerificationError)
    must_reject("DSSE payload with a byte appended",
                lambda: tampered(payload=envelope.payload + b" ").verify([key], 1), VerificationError)
    must_reject("DSSE with a different payloadType",
                lambda: tampered(payload_type="application/json").verify([key], 1), VerificationError)
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
    stranger = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    wrong_key = SSlibKey(keyid=keyid, keytype="ed25519", scheme="ed25519", keyval={"public": stranger.hex()})
    must_reject("DSSE verified against another Ed25519 key under the same keyid",
                lambda: envelope.verify([wrong_key], 1), VerificationError)
    return envelope.payload


# ---- (b) in-toto Statement v1 --------------------------------------------------


def check_statement(payload, deposit, receipt):
    from google.protobuf import json_format
    import in_toto_attestation.v1.statement_pb2 as statement_pb2
    from in_toto_attestation.v1.statement import STATEMENT_TYPE_URI, Statement

    pb = statement_pb2.Statement()
    with Check("in-toto: payload is UTF-8 JSON and parses into the v1 Statement protobuf (json_format, no unknown fields)") as c:
        text = payload.decode("utf-8")
        json.loads(text)
        json_format.Parse(text, pb)
    if not c.passed:
        return
    with Check("in-toto: in_toto_attestation v1 Statement.validate()") as c:
        Statement.copy_from_pb(pb).validate()
    with Check(f"in-toto: _type is {STATEMENT_TYPE_URI}"):
        assert pb.type == STATEMENT_TYPE_URI, f"_type is {pb.type!r}"
        assert json.loads(payload)["_type"] == "https://in-toto.io/Statement/v1"
    with Check("in-toto: predicateType is https://substrate.commons/predicate/deposit/v1"):
        assert pb.predicate_type == "https://substrate.commons/predicate/deposit/v1", \
            f"predicateType is {pb.predicate_type!r}"
    want = hashlib.sha256(deposit).hexdigest()
    with Check("in-toto: exactly one subject, digest.sha256 == sha256(deposit.txt)"):
        assert len(pb.subject) == 1, f"{len(pb.subject)} subjects"
        got = pb.subject[0].digest.get("sha256")
        assert got == want, f"subject digest.sha256 {got!r} != sha256(deposit.txt) {want}"
    with Check("in-toto: subject name is the receipt's cid"):
        assert pb.subject and pb.subject[0].name == receipt.get("cid"), \
            f"subject name {pb.subject[0].name if pb.subject else None!r} != cid {receipt.get('cid')!r}"

    bad = statement_pb2.Statement()
    bad.CopyFrom(pb)
    bad.type = "https://in-toto.io/Statement/v0.1"
    must_reject("in-toto validator on a Statement with a wrong _type",
                lambda: Statement.copy_from_pb(bad).validate(), ValueError)
    bad2 = statement_pb2.Statement()
    bad2.CopyFrom(pb)
    del bad2.subject[:]
    must_reject("in-toto validator on a Statement with no subject",
                lambda: Statement.copy_from_pb(bad2).validate(), ValueError)


# ---- (c) CID ---------------------------------------------------------------------


def check_cid(deposit, receipt):
    from multiformats import CID, multihash

    with Check("multiformats: CIDv1(raw, sha2-256, base32) of deposit.txt equals receipt.cid"):
        cid = CID("base32", 1, "raw", multihash.digest(deposit, "sha2-256"))
        got = receipt.get("cid")
        assert isinstance(got, str), "receipt.cid is not a string"
        assert str(cid) == got, f"receipt.cid {got!r} != computed {str(cid)!r}"
        assert got.startswith("bafkrei"), f"receipt.cid {got!r} does not start with bafkrei"
        parsed = CID.decode(got)
        assert (parsed.version, parsed.codec.name, parsed.hashfun.name) == (1, "raw", "sha2-256")
    other = CID("base32", 1, "raw", multihash.digest(deposit + b"\n", "sha2-256"))
    with Check("negative control: CID of deposit.txt plus one byte differs from receipt.cid"):
        assert str(other) != receipt.get("cid"), "tampered content gives the same CID"


# ---- (d) DOI, (e) receipt vs logged entry ------------------------------------------

RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")


def rfc3339_to_ms(s):
    m = RFC3339.match(s)
    assert m, f"{s!r} is not an RFC 3339 timestamp"
    frac = m.group(1) or ""
    base = s[: 19] + (s[m.end(1):] if frac else s[19:])
    t = datetime.datetime.fromisoformat(base.replace("Z", "+00:00"))
    ms = int(t.timestamp()) * 1000
    if frac:
        ms += int((frac[1:] + "000")[:3])
    return ms


def check_fields(receipt):
    with Check("receipt.doi is present and null"):
        assert "doi" in receipt, "receipt has no doi field"
        assert receipt["doi"] is None, f"doi is {receipt['doi']!r}"
    with Check("receipt.handle is a tag: URI"):
        assert isinstance(receipt.get("handle"), str) and receipt["handle"].startswith("tag:"), \
            f"handle is {receipt.get('handle')!r}"
    with Check("receipt.log_index is a non-negative integer"):
        li = receipt.get("log_index")
        assert isinstance(li, int) and not isinstance(li, bool) and li >= 0, f"log_index is {li!r}"

    with Check("receipt.entry decodes (standard base64) to 8-byte time || envelope JSON") as c:
        entry = strict_b64(receipt.get("entry"), "receipt.entry")
        assert len(entry) > 8, f"entry is only {len(entry)} bytes"
        logged_env = json.loads(entry[8:].decode("utf-8"))
    if not c.passed:
        return
    with Check("receipt.integrated_time equals the entry's big-endian millisecond prefix"):
        ms = int.from_bytes(entry[:8], "big")
        it = receipt.get("integrated_time")
        assert isinstance(it, str), "integrated_time is not a string"
        got = rfc3339_to_ms(it)
        assert got == ms, f"integrated_time {it} is {got} ms, entry says {ms} ms"
    with Check("receipt.envelope is the envelope JSON that was logged in the entry"):
        assert logged_env == receipt.get("envelope"), "logged envelope differs from receipt.envelope"


def main():
    if len(sys.argv) != 2:
        print("usage: check_receipt.py DIR", file=sys.stderr)
        sys.exit(2)
    d = sys.argv[1]
    receipt = deposit = None
    with Check("receipt.json is a JSON object") as c:
        with open(os.path.join(d, "receipt.json"), "rb") as f:
            receipt = json.loads(f.read().decode("utf-8"))
        assert isinstance(receipt, dict), "not an object"
    with Check("deposit.txt readable") as c2:
        with open(os.path.join(d, "deposit.txt"), "rb") as f:
            deposit = f.read()
    if c.passed:
        payload = check_dsse(receipt)
        if c2.passed:
            if payload is not None:
                check_statement(payload, deposit, receipt)
            check_cid(deposit, receipt)
        check_fields(receipt)
    if failures:
        print(f"check_receipt: {failures} check(s) FAILED")
        sys.exit(1)
    print("check_receipt: all checks passed")


if __name__ == "__main__":
    main()
