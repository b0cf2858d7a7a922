"""The PyPI `openai` client, unchanged, against a node serving the default models: models,
embeddings (the client asks for base64 by default, and floats when told), chat completions
streamed and not, a plain completion, and the errors it raises for an unknown model, a full
context and a request that names nobody. It sends a member's API token as its key, as any tool
pointed at the commons does. Run by `.ci/serving/run URL TOKEN`."""

import sys

import openai
from openai import OpenAI

url, token = sys.argv[1:3]
client = OpenAI(base_url=f"{url}/v1", api_key=token, max_retries=0)

ids = [m.id for m in client.models.list().data]
assert ids == ["all-MiniLM-L6-v2", "SmolLM2-135M-Instruct"], ids

texts = ["we sing at dawn", "the bread rose overnight"]
default = client.embeddings.create(model="all-MiniLM-L6-v2", input=texts)
floats = client.embeddings.create(model="all-MiniLM-L6-v2", input=texts, encoding_format="float")
assert len(default.data) == 2 and all(len(d.embedding) == 384 for d in default.data), default
for a, b in zip(default.data, floats.data):
    assert max(abs(x - y) for x, y in zip(a.embedding, b.embedding)) < 1e-6
assert default.usage.prompt_tokens > 0, default.usage

messages = [{"role": "user", "content": "Name one thing people sing about at dawn."}]
answer = client.chat.completions.create(
    model="SmolLM2-135M-Instruct", messages=messages, max_tokens=24, temperature=0
)
content = answer.choices[0].message.content
assert content and answer.choices[0].finish_reason in ("stop", "length"), answer
assert answer.usage.completion_tokens <= 24, answer.usage

stream = client.chat.completions.create(
    model="SmolLM2-135M-Instruct",
    messages=messages,
    max_tokens=24,
    temperature=0,
    stream=True,
    stream_options={"include_usage": True},
)
pieces, usage = [], None
for chunk in stream:
    if chunk.usage:
        usage = chunk.usage
    for choice in chunk.choices:
        if choice.delta.content:
            pieces.append(choice.delta.content)
assert "".join(pieces) == content, ("".join(pieces), content)
assert usage is not None and usage.completion_tokens == answer.usage.completion_tokens, usage

completion = client.completions.create(
    model="SmolLM2-135M-Instruct", prompt="The kitchen table", max_tokens=8, temperature=0
)
assert completion.choices[0].text is not None, completion

try:
    client.chat.completions.create(model="gpt-4o", messages=messages)
    raise SystemExit("an unknown model was answered")
except openai.NotFoundError as e:
    assert e.code == "model_not_found", e.body

try:
    client.chat.completions.create(
        model="SmolLM2-135M-Instruct",
        messages=[{"role": "user", "content": "word " * 20000}],
    )
    raise SystemExit("a prompt past the context was answered")
except openai.BadRequestError as e:
    assert e.code == "context_length_exceeded", e.body

nobody = OpenAI(base_url=f"{url}/v1", api_key="not-needed", max_retries=0)
for ask in (
    lambda: nobody.chat.completions.create(model="SmolLM2-135M-Instruct", messages=messages, max_tokens=4),
    lambda: nobody.embeddings.create(model="all-MiniLM-L6-v2", input=texts),
):
    try:
        ask()
        raise SystemExit("a request that names nobody was answered")
    except openai.AuthenticationError as e:
        assert e.code == "member_required" and "API token" in e.message, e.body

print(f"openai {openai.__version__}: models, embeddings (base64 and float), chat (streamed and not), completions and errors all check")
