"""Checks the node's RFC 9421 signatures against an implementation written by others (PyPI
http-message-signatures): a request it signs with a verified member's Ed25519 key finds the
commons text an anonymous request does not, a chat request it signs (with its Content-Digest) is
answered from that text and cites it, a request it signs and someone alters is refused 401; and
the signature `substrate search --member` makes is one its verifier accepts.

    check_signatures.py NODE_URL MEMBER_KEY_FILE COMMONS_CID SUBSTRATE_BIN
"""

import base64
import http.server
import json
import subprocess
import sys
import threading

import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from http_message_signatures import (
    HTTPMessageSigner,
    HTTPMessageVerifier,
    HTTPSignatureKeyResolver,
    algorithms,
)

url, key_file, commons_cid, substrate = sys.argv[1:5]
key = json.load(open(key_file))
private = Ed25519PrivateKey.from_private_bytes(base64.b64decode(key["secret_key"]))
did = key["did"]


class Keys(HTTPSignatureKeyResolver):
    def resolve_private_key(self, key_id):
        assert key_id == did, key_id
        return private

    def resolve_public_key(self, key_id):
        assert key_id == did, key_id
        return private.public_key()


signer = HTTPMessageSigner(signature_algorithm=algorithms.ED25519, key_resolver=Keys())


def signed(request, body=None):
    prepared = request.prepare()
    covered = ("@method", "@authority", "@target-uri")
    signer.sign(prepared, key_id=did, covered_component_ids=covered, body=body)
    return prepared


session = requests.Session()
query = f"{url}/v1/search?q=heron"

anonymous = session.get(query).json()
assert commons_cid not in [h["cid"] for h in anonymous["hits"]], anonymous
member = session.send(signed(requests.Request("GET", query))).json()
assert commons_cid in [h["cid"] for h in member["hits"]], member
assert member["member"] == did, member

# Altered after signing: another query under the same signature.
altered = signed(requests.Request("GET", query))
altered.url = f"{url}/v1/search?q=song"
refused = session.send(altered)
assert refused.status_code == 401 and refused.json()["error"] == "bad_signature", refused.text

body = json.dumps(
    {
        "model": "SmolLM2-135M-Instruct",
        "messages": [{"role": "user", "content": "What do the members sing about the heron?"}],
        "max_tokens": 8,
        "temperature": 0,
        "retrieval": {"k": 3, "mode": "bm25"},
    }
).encode()
chat = requests.Request("POST", f"{url}/v1/chat/completions", data=body, headers={"Content-Type": "application/json"})
once = signed(chat, body=body)
answer = session.send(once)
assert answer.status_code == 200, answer.text
cited = [c["cid"] for c in answer.json()["citations"]]
assert commons_cid in cited, answer.text
# A write's signature is accepted once: the very same signed request again is a replay.
replayed = session.send(once)
assert replayed.status_code == 401 and replayed.json()["error"]["code"] == "replayed_signature", replayed.text
forged = signed(chat, body=body)
forged.body = body.replace(b"heron", b"crane")
forged.headers["Content-Length"] = str(len(forged.body))
refused = session.send(forged)
assert refused.status_code == 401 and refused.json()["error"]["code"] == "bad_signature", refused.text

# The other way: what the node's own client signs, this library verifies.
seen = {}


class Capture(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        seen["path"] = self.path
        seen["headers"] = dict(self.headers.items())
        payload = json.dumps({"query": "heron", "mode": "bm25", "indexed": 0, "member": did, "hits": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


server = http.server.HTTPServer(("127.0.0.1", 0), Capture)
threading.Thread(target=server.serve_forever, daemon=True).start()
capture_url = f"http://127.0.0.1:{server.server_port}"
subprocess.run(
    [substrate, "search", "heron", "--member", "--key", key_file, "--node", capture_url],
    check=True,
    capture_output=True,
)
server.shutdown()
received = requests.Request("GET", capture_url + seen["path"], headers=seen["headers"]).prepare()
# requests normalises the headers it was given; the Host the CLI sent is kept.
received.headers["Host"] = seen["headers"]["Host"]
results = HTTPMessageVerifier(signature_algorithm=algorithms.ED25519, key_resolver=Keys()).verify(received)
assert results and results[0].parameters["keyid"] == did, results

print(
    "http-message-signatures 3.0.0: its signatures find the commons text and ground a cited answer, "
    "an altered request and a replayed write are refused, and it verifies `substrate search --member`"
)
