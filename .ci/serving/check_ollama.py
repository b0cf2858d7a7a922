"""The PyPI `ollama` client, unchanged, against a node serving the default models: version, tags,
show, embed, chat and generate, streamed and not, and the errors it raises for an unknown model
and a request that names nobody. It sends a member's API token in its headers. Run by
`.ci/serving/run URL TOKEN`."""

import importlib.metadata
import sys

import ollama

url, token = sys.argv[1:3]
client = ollama.Client(host=url, headers={"Authorization": f"Bearer {token}"})

names = [m.model for m in client.list().models]
assert names == ["all-MiniLM-L6-v2:latest", "SmolLM2-135M-Instruct:latest"], names
shown = client.show("SmolLM2-135M-Instruct")
assert "completion" in (shown.capabilities or []), shown

embedded = client.embed(model="all-MiniLM-L6-v2", input=["we sing at dawn", "the bread rose overnight"])
assert len(embedded.embeddings) == 2 and all(len(e) == 384 for e in embedded.embeddings), embedded

messages = [{"role": "user", "content": "Name one thing people sing about at dawn."}]
options = {"temperature": 0, "num_predict": 24}
answer = client.chat(model="SmolLM2-135M-Instruct", messages=messages, options=options)
content = answer.message.content
assert content and answer.done and answer.done_reason in ("stop", "length"), answer
assert answer.eval_count <= 24, answer

pieces = []
last = None
for part in client.chat(model="SmolLM2-135M-Instruct", messages=messages, options=options, stream=True):
    pieces.append(part.message.content)
    last = part
assert "".join(pieces) == content, ("".join(pieces), content)
assert last.done and last.eval_count == answer.eval_count, last

generated = client.generate(model="SmolLM2-135M-Instruct", prompt="Name one thing people sing about at dawn.", options=options)
assert generated.response == content, (generated.response, content)
streamed = "".join(p.response for p in client.generate(model="SmolLM2-135M-Instruct", prompt="The kitchen table", options=options, stream=True))
assert streamed, streamed

try:
    client.chat(model="llama3", messages=messages)
    raise SystemExit("an unknown model was answered")
except ollama.ResponseError as e:
    assert e.status_code == 404 and "not found" in e.error, (e.status_code, e.error)

try:
    ollama.Client(host=url).chat(model="SmolLM2-135M-Instruct", messages=messages, options=options)
    raise SystemExit("a request that names nobody was answered")
except ollama.ResponseError as e:
    assert e.status_code == 401 and "API token" in e.error, (e.status_code, e.error)

print(f"ollama {importlib.metadata.version('ollama')}: tags, show, embed, chat and generate (streamed and not) and errors all check")
