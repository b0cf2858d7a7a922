#!/usr/bin/env python3
"""Check a Substrate governance round with other people's libraries and an independent tally.

    check_governance.py DIR      (run with the conformance venv's python)

Reads DIR/commons.vkey and DIR/governance/{proposal,vote-*,decision}.receipt.json (what
`substrate demo --artifacts DIR` writes) and checks:
  (a) DSSE: every envelope verifies with securesystemslib against the key its did:key names
      (see check_receipt.py), and the decision's signer is the commons' log key as
      commons.vkey (a Go signed-note verifier key) states it;
  (b) in-toto: every payload passes the in_toto_attestation v1 Statement validator, with the
      proposal, vote and decision predicate types;
  (c) the decision's mixture is what the exact-rational Independent Markets reference
      (crates/substrate-core/fixtures/imm/imm_reference.py, written from the paper, sharing no
      code with the Rust tally) computes from the signed ballots: every voter's distribution,
      and the proposer's action ballot unless the proposer voted one. Every voter in the demo
      round is a verified member, so every ballot counts.
Prints "ok   <what>" / "FAIL <what>: <why>" per check; exits 1 on any FAIL.
"""

import base64
import glob
import json
import os
import sys
from fractions import Fraction

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "crates", "substrate-core", "fixtures", "imm"))

import check_receipt as cr  # noqa: E402  (the DSSE and did:key checks)
from check_receipt import Check, info  # noqa: E402

BASE = "https://substrate.commons/predicate/"


def load(path):
    with open(path, "rb") as f:
        return json.loads(f.read().decode("utf-8"))


def statement(payload, kind):
    from google.protobuf import json_format
    import in_toto_attestation.v1.statement_pb2 as statement_pb2
    from in_toto_attestation.v1.statement import Statement

    pb = statement_pb2.Statement()
    with Check(f"in-toto: the {kind} statement parses and validates") as c:
        json_format.Parse(payload.decode("utf-8"), pb)
        Statement.copy_from_pb(pb).validate()
        assert pb.predicate_type == f"{BASE}{kind}/v1", f"predicateType is {pb.predicate_type!r}"
    return json.loads(payload) if c.passed else None


def log_public_key(vkey):
    """Go note verifier key name+hash+base64(0x01 || 32-byte Ed25519 key) -> raw key."""
    _name, _hash, material = vkey.strip().split("+", 2)
    raw = base64.b64decode(material)
    assert raw[0] == 1 and len(raw) == 33, "not an Ed25519 verifier key"
    return raw[1:]


def main():
    if len(sys.argv) != 2:
        print("usage: check_governance.py DIR", file=sys.stderr)
        sys.exit(2)
    d = sys.argv[1]
    receipts = {}
    for path in sorted(glob.glob(os.path.join(d, "governance", "*.receipt.json"))):
        receipts[os.path.basename(path).removesuffix(".receipt.json")] = load(path)
    with Check("the round has a proposal, votes and a decision"):
        assert "proposal" in receipts and "decision" in receipts, sorted(receipts)
        assert any(name.startswith("vote-") for name in receipts), sorted(receipts)

    statements = {}
    for name, receipt in receipts.items():
        payload = cr.check_dsse(receipt)
        if payload is not None:
            kind = "vote" if name.startswith("vote-") else name
            statements[name] = (receipt["envelope"]["signatures"][0]["keyid"], statement(payload, kind))

    with Check("the decision is signed by the commons' log key (commons.vkey)"):
        with open(os.path.join(d, "commons.vkey")) as f:
            log_key = log_public_key(f.read())
        signer = statements["decision"][0]
        assert cr.key_from_did(signer) == log_key, f"decision signed by {signer}, not the log key"

    from imm_reference import imm_exact

    # The commons decides in fixed point with 40 fractional bits (state encoding 3): each weight
    # is within a few units of 2^-40 (about 1e-12) of the exact aggregate, and 1e-10 bounds that.
    with Check("independent IMM reference: the decision's mixture is the exact aggregate of the signed ballots, to 1e-10"):
        proposer, proposal = statements["proposal"]
        decision = statements["decision"][1]["predicate"]
        assert decision["outcome"]["outcome"] == "passed", f"outcome {decision['outcome']}"
        assert decision["proposal"] == receipts["proposal"]["log_index"], "decision names another proposal"
        (effect,) = [e for e in decision["effects"] if e["effect"] == "mixture"]
        registers = sorted(effect["weights"])
        ballots = {}
        for action in proposal["predicate"]["actions"]:
            if action["action"] == "set-mixture":
                ballots[proposer] = action["ballot"]
        for name, (voter, vote) in statements.items():
            if name.startswith("vote-") and vote["predicate"].get("mixture") is not None:
                assert vote["predicate"]["proposal"] == decision["proposal"], "a vote on another proposal"
                ballots[voter] = vote["predicate"]["mixture"]
        assert len(ballots) == effect["ballots"], f"{len(ballots)} ballots, the decision counted {effect['ballots']}"
        rows = [[str(b.get(r, 0)) for r in registers] for b in ballots.values()]
        exact = imm_exact(rows)
        weights = exact["weights"]
        for register, want in zip(registers, weights):
            got = Fraction(repr(effect["weights"][register]))
            assert abs(got - Fraction(want)) < Fraction(1, 10**10), f"{register}: decision {got}, reference {want}"
        info("reference weights " + ", ".join(f"{r}={float(Fraction(w)):.6f}" for r, w in zip(registers, weights)))

    if cr.failures:
        print(f"check_governance: {cr.failures} check(s) FAILED")
        sys.exit(1)
    print("check_governance: all checks passed")


if __name__ == "__main__":
    main()
