"""The PyPI `openai` and `ollama` clients, unchanged, sending a member's API token as their key:
a chat with retrieval is answered from a text only members may find, and cites it; the same
request with a revoked token is refused 401 `token_revoked`, and with another client's placeholder
key it is anonymous, and the node (which answers members only) refuses it 401 `member_required`. Run by `.ci/serving/run URL TOKEN CID REVOKED`."""

import sys

import ollama
import openai
from openai import OpenAI

url, token, cid, revoked = sys.argv[1:5]
ask = [{"role": "user", "content": "What does the grey heron wait for?"}]
retrieval = {"retrieval": {"k": 3, "mode": "bm25"}}


def chat(key):
    client = OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)
    return client.chat.completions.create(
        model="SmolLM2-135M-Instruct", messages=ask, max_tokens=16, temperature=0, extra_body=retrieval
    )


answer = chat(token)
cited = [c["cid"] for c in (answer.model_extra or {}).get("citations", [])]
assert cid in cited, ("the member's token did not find the members' text", answer)

try:
    chat("not-needed")
    raise SystemExit("an anonymous request was answered by a node that answers members only")
except openai.AuthenticationError as e:
    assert e.status_code == 401 and e.code == "member_required", e.body
    assert cid not in str(e.body), e.body

try:
    chat(revoked)
    raise SystemExit("a revoked token was answered")
except openai.AuthenticationError as e:
    assert e.status_code == 401 and e.code == "token_revoked", e.body

# The Ollama client sends its key the same way (headers on the client).
client = ollama.Client(host=url, headers={"Authorization": f"Bearer {token}"})
reply = client.chat(
    model="SmolLM2-135M-Instruct", messages=ask, options={"num_predict": 16, "temperature": 0}
)
assert reply.message.content is not None, reply
print("api tokens: the openai and ollama clients authenticate with a member's token; revoked is refused")
