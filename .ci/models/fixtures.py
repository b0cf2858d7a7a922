#!/usr/bin/env python3
"""Reference fixtures for crates/substrate-models, from independent engines.

    fixtures.py llama GGUF OUT.json        (venv with llama-cpp-python + jinja2)
    fixtures.py st    MODEL_DIR OUT.json   (venv with sentence-transformers)

`llama`: tokenizer cases and greedy generations from llama.cpp on the GGUF.
`st`: normalized sentence embeddings from sentence-transformers.
Both run on 2 threads. Called by make-fixtures; see README.md.
"""
import hashlib
import json
import sys


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write(out, doc):
    with open(out, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {out}", file=sys.stderr)


# ---- llama.cpp: tokenizer and greedy generation ------------------------------

TOKENIZER_TEXTS = [
    "Hello world",
    " leading space",
    "two  spaces, three   spaces,    four",
    "tab\tseparated\t\tcolumns",
    "line one\nline two\n\nline four\n",
    "\n\n\n",
    "12345 and 3.14159",
    "1234567890 0001 2026-12-01",
    "café, naïve, résumé, Ελληνικά",
    "漢字とかなの混在テキスト",
    "emoji 🙂🚀 and a family 👨‍👩‍👧",
    "fn main() {\n    println!(\"{}\", x + 1);\n}",
    "don't it's we'll they're I'M",
    "<|im_start|>user\nHi there<|im_end|>\n",
    "<|endoftext|>text after end",
    "   ",
]

CASES = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "user", "content": "Write a short poem about the sea."}],
    [{"role": "user", "content": "What is 17 + 25? Answer with the number only."}],
    [{"role": "system", "content": "You are a terse assistant. Answer in one sentence."},
     {"role": "user", "content": "Why do leaves change colour in autumn?"}],
    [{"role": "user", "content": "My name is Ada."},
     {"role": "assistant", "content": "Nice to meet you, Ada! How can I help?"},
     {"role": "user", "content": "What is my name?"}],
    [{"role": "user", "content": "Bonjour ! Peux-tu me dire comment tu vas ?"}],
]

MAX_TOKENS = 32


def render_chat(template, messages, bos, eos):
    """The GGUF's own chat template, rendered the way HF and llama-cpp-python do."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    return env.from_string(template).render(
        messages=messages, add_generation_prompt=True, bos_token=bos, eos_token=eos)


def llama_fixture(gguf, out):
    import numpy as np
    import llama_cpp
    from llama_cpp import Llama

    llm = Llama(model_path=gguf, n_ctx=2048, n_threads=2, n_threads_batch=2,
                verbose=False, seed=0)
    meta = llm.metadata  # GGUF key/value strings
    template = meta["tokenizer.chat_template"]
    add_bos = meta.get("tokenizer.ggml.add_bos_token", "false") == "true"
    eos = int(meta["tokenizer.ggml.eos_token_id"])
    assert eos == llm.token_eos()
    piece = lambda t: llm.detokenize([t], special=True).decode("utf-8", "replace")
    n_vocab = llm.n_vocab()

    def last_logits():
        # Logits of the last evaluated position, straight from llama.cpp
        # (no sampler, so no repetition penalty or temperature).
        ptr = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
        return np.ctypeslib.as_array(ptr, shape=(n_vocab,)).copy()

    tok_cases = [{"text": t, "tokens": llm.tokenize(t.encode(), add_bos=False, special=True)}
                 for t in TOKENIZER_TEXTS]

    cases = []
    for messages in CASES:
        prompt = render_chat(template, messages, piece(llm.token_bos()), piece(eos))
        ids = llm.tokenize(prompt.encode(), add_bos=add_bos, special=True)
        llm.reset()
        llm.eval(ids)
        logits = last_logits()
        top = np.argsort(-logits, kind="stable")[:10]
        top_logits = [[int(i), round(float(logits[i]), 4)] for i in top]
        gen, margins = [], []
        while len(gen) < MAX_TOKENS:
            t = int(np.argmax(logits))  # greedy
            gen.append(t)
            # top-1 minus top-2 logit: where a small margin lets engines diverge
            margins.append(round(float(np.diff(np.sort(logits)[-2:])[0]), 4))
            if t == eos:
                break
            llm.eval([t])
            logits = last_logits()
        body = gen[:-1] if gen[-1] == eos else gen
        text = llm.detokenize(body).decode("utf-8", "replace")
        print(f"{messages[-1]['content'][:40]!r} -> {text!r}", file=sys.stderr)
        cases.append({"messages": messages, "prompt": prompt, "prompt_tokens": ids,
                      "tokens": gen, "text": text, "top_logits": top_logits,
                      "margins": margins})

    write(out, {
        "engine": f"llama-cpp-python {llama_cpp.__version__}",
        "model": gguf.rsplit("/", 1)[-1],
        "model_sha256": sha256(gguf),
        "add_bos": add_bos,
        "bos_token_id": llm.token_bos(),
        "eos_token_id": eos,
        "chat_template": template,
        "max_tokens": MAX_TOKENS,
        "tokenizer_cases": tok_cases,
        "cases": cases,
    })


# ---- sentence-transformers: embeddings ---------------------------------------

def long_text():
    # Over 300 words, so truncation at max_seq_length tokens matters.
    words = ("the river keeps its own counsel and the town grows up along "
             "its banks while the seasons turn and the bells ring at noon").split()
    return " ".join(words[i % len(words)] for i in range(320)) + "."


ST_TEXTS = [
    "a",
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "How do I reset my password?",
    "Lord, have mercy. Christ, have mercy. Lord, have mercy.",
    "Teacher: Who can tell me what a prime number is? Student: One that only divides by one and itself!",
    "Pi is approximately 3.14159, and 2 + 2 = 4; the year was 1969.",
    "café naïve résumé — déjà vu",
    "東京は日本の首都です。",
    "Эмбеддинги предложений полезны для поиска.",
    "I love pizza 🍕 and sunny days ☀️",
    "fn add(a: i32, b: i32) -> i32 { a + b }",
    "   spaces   around   words   ",
    "A cat sat on the mat.",
    "A kitten was sitting on the rug.",
    long_text(),
]


def st_fixture(model_dir, out):
    import torch
    import sentence_transformers
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(2)
    model = SentenceTransformer(model_dir, device="cpu")
    max_len = model.max_seq_length
    print(f"sentence-transformers max_seq_length = {max_len}", file=sys.stderr)
    emb = model.encode(ST_TEXTS, batch_size=32, normalize_embeddings=True,
                       convert_to_numpy=True)
    # Token counts before truncation ([CLS] and [SEP] included), for debugging.
    counts = [len(model.tokenizer(t)["input_ids"]) for t in ST_TEXTS]
    write(out, {
        "engine": f"sentence-transformers {sentence_transformers.__version__} "
                  f"(PyTorch {torch.__version__.split('+')[0]})",
        "model_sha256": sha256(f"{model_dir}/model.safetensors"),
        "max_seq_length": max_len,
        "texts": ST_TEXTS,
        "token_counts": counts,
        "embeddings": [[round(float(x), 7) for x in row] for row in emb],
    })


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] not in ("llama", "st"):
        sys.exit(__doc__)
    {"llama": llama_fixture, "st": st_fixture}[sys.argv[1]](sys.argv[2], sys.argv[3])
