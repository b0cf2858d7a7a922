#!/usr/bin/env python3
"""Checks a published adapter directory's provenance with tools written by others.

    check_provenance.py ADAPTER_DIR

- securesystemslib verifies the DSSE envelope (provenance.intoto.json) with the Ed25519 key
  that the signer's did:key names (decoded with the multiformats package), and refuses it once
  the payload is changed;
- in-toto-attestation parses the payload as an in-toto Statement v1 and validates it, and every
  resolvedDependency as a ResourceDescriptor;
- the predicate is SLSA Provenance v1, built by the node named in run.json, for the decision,
  the snapshot root and the base model run.json names;
- every subject's sha256 matches the file beside it, every file of the directory but the
  attestation and the model-signing signature is a subject, and every deposit of run.json is a
  resolved dependency with its register, depositor and tokens trained.

Prints one `ok NAME: ...` or `FAIL NAME: ...` line per check; exits 1 on any failure.
"""

import base64
import copy
import hashlib
import json
import os
import sys

failures = 0


def ok(name, what):
    print(f"ok {name}: {what}")


def fail(name, what):
    global failures
    failures += 1
    print(f"FAIL {name}: {what}")


def key_from_did(did):
    from multiformats import multibase, multicodec

    assert did.startswith("did:key:"), f"{did!r} is not a did:key"
    codec, pub = multicodec.unwrap(multibase.decode(did[len("did:key:"):]))
    assert codec.name == "ed25519-pub", f"multicodec {codec.name!r}, want ed25519-pub"
    return pub


def main(directory):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
    from google.protobuf import json_format
    from in_toto_attestation.v1 import resource_descriptor_pb2, statement, statement_pb2
    from securesystemslib.dsse import Envelope
    from securesystemslib.signer import SSlibKey

    with open(os.path.join(directory, "run.json")) as f:
        run = json.load(f)
    with open(os.path.join(directory, "provenance.intoto.json")) as f:
        envelope_json = json.load(f)

    # (a) The DSSE signature, with the node's did:key.
    node = run["node"]
    signer = envelope_json["signatures"][0]["keyid"]
    if signer != node:
        fail("dsse-signer", f"signed by {signer}, run.json names the node {node}")
    raw = key_from_did(signer)
    pem = Ed25519PublicKey.from_public_bytes(raw).public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
    key = SSlibKey(keyid=signer, keytype="ed25519", scheme="ed25519", keyval={"public": pem})
    envelope = Envelope.from_dict(copy.deepcopy(envelope_json))
    try:
        envelope.verify([key], 1)
        ok("dsse", f"securesystemslib verifies the envelope with {signer}'s key")
    except Exception as e:  # noqa: BLE001 - any failure is the finding
        fail("dsse", f"securesystemslib refuses it: {e}")
    tampered = Envelope.from_dict(copy.deepcopy(envelope_json))
    tampered.payload = tampered.payload.replace(b'"tokensTrained":', b'"tokensTrained": ', 1)
    try:
        tampered.verify([key], 1)
        fail("dsse-tampered", "a changed payload still verifies")
    except Exception:  # noqa: BLE001
        ok("dsse-tampered", "a changed payload is refused")

    # (b) The statement and its descriptors, with in-toto-attestation.
    payload = json.loads(base64.b64decode(envelope_json["payload"]))
    try:
        st = statement.Statement.copy_from_pb(json_format.ParseDict(payload, statement_pb2.Statement()))
        st.validate()
        ok("in-toto", f"Statement v1 with {len(payload['subject'])} subjects validates")
    except Exception as e:  # noqa: BLE001
        fail("in-toto", f"in-toto-attestation refuses the statement: {e}")
    predicate = payload.get("predicate", {})
    if payload.get("predicateType") != "https://slsa.dev/provenance/v1":
        fail("slsa", f"predicateType is {payload.get('predicateType')}")
    definition = predicate.get("buildDefinition", {})
    dependencies = definition.get("resolvedDependencies", [])
    bad = 0
    from in_toto_attestation.v1.resource_descriptor import ResourceDescriptor

    for dep in dependencies:
        try:
            ResourceDescriptor.copy_from_pb(json_format.ParseDict(dep, resource_descriptor_pb2.ResourceDescriptor())).validate()
        except Exception as e:  # noqa: BLE001
            bad += 1
            fail("descriptor", f"{dep.get('name')}: {e}")
    if not bad:
        ok("descriptors", f"{len(dependencies)} resolvedDependencies validate as ResourceDescriptors")
    external = definition.get("externalParameters", {})
    if predicate.get("runDetails", {}).get("builder", {}).get("id") != node:
        fail("slsa-builder", "the builder id is not the node of run.json")
    elif external.get("logSize") != run["log_size"]:
        fail("slsa-parameters", f"logSize {external.get('logSize')} != run.json's {run['log_size']}")
    elif (external.get("decision") or {}).get("logIndex") != (run.get("decision") or {}).get("index"):
        fail("slsa-parameters", "the decision differs from run.json's")
    else:
        ok("slsa", f"SLSA provenance v1 by {node}, decision {external.get('decision')}, log size {run['log_size']}")
    roles = {}
    for dep in dependencies:
        roles.setdefault(dep.get("annotations", {}).get("role"), []).append(dep)
    snapshot = roles.get("snapshot", [{}])[0]
    base = roles.get("base-model", [{}])[0]
    if snapshot.get("digest", {}).get("rfc6962-sha256") != run["snapshot_root"]:
        fail("snapshot", "the snapshot dependency does not carry run.json's root")
    elif base.get("digest", {}).get("sha256") != run["base_model"]["sha256"]:
        fail("base-model", "the base model dependency does not carry run.json's sha256")
    else:
        ok("dependencies", f"base model {base.get('name')}, snapshot root {run['snapshot_root'][:16]}…")

    # (c) Subjects against the files, and deposits against run.json.
    subjects = {s["name"]: s["digest"]["sha256"] for s in payload.get("subject", [])}
    files = sorted(n for n in os.listdir(directory) if os.path.isfile(os.path.join(directory, n)))
    expected = [n for n in files if n not in ("provenance.intoto.json", "model.sig")]
    if sorted(subjects) != expected:
        fail("subjects", f"subjects {sorted(subjects)} != the directory's files {expected}")
    else:
        wrong = [
            n for n in expected if hashlib.sha256(open(os.path.join(directory, n), "rb").read()).hexdigest() != subjects[n]
        ]
        if wrong:
            fail("subjects", f"sha256 differs for {wrong}")
        else:
            ok("subjects", f"all {len(expected)} files match their subject's sha256")
    deposits = {d["name"]: d for d in roles.get("deposit", [])}
    missing = []
    for c in run["contributions"]:
        dep = deposits.get(c["cid"])
        ann = (dep or {}).get("annotations", {})
        if (
            dep is None
            or ann.get("register") != c["register"]
            or ann.get("depositor") != c["depositor"]
            or ann.get("tokensTrained") != c["tokens_trained"]
            or dep.get("uri") != c["handle"]
        ):
            missing.append(c["cid"])
    if missing or len(deposits) != len(run["contributions"]):
        fail("deposits", f"{len(missing)} deposits missing or misattributed: {missing[:3]}")
    else:
        ok("deposits", f"every one of the {len(deposits)} deposits is a dependency with its register, depositor and tokens")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    try:
        main(sys.argv[1])
    except Exception as e:  # noqa: BLE001
        fail("provenance", f"{type(e).__name__}: {e}")
    sys.exit(1 if failures else 0)
