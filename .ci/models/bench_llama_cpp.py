#!/usr/bin/env python3
"""Reference generation speed of llama.cpp (llama-cpp-python) on a GGUF.

    bench_llama_cpp.py GGUF

Two prompts, ~40 and ~512 tokens after the GGUF's chat template: a fixed
paragraph repeated, cut to the word count that lands nearest each target.
The user-message texts are written to bench-prompts.json beside this script,
so the Rust benchmark feeds the very same texts. Per prompt: evaluate it
(prompt tok/s), then 128 greedy tokens one at a time without stopping at
end-of-sequence (decode tok/s). 2 threads, best of 3. One JSON object on
stdout, progress on stderr.
"""
import json
import os
import sys
import time

import llama_cpp
import numpy as np
from jinja2.sandbox import ImmutableSandboxedEnvironment
from llama_cpp import Llama

PARAGRAPH = ("The town sits where two rivers meet, and every spring the water rises "
             "over the lower fields. People there keep boats beside their doors, "
             "mend the nets in winter, and plant late so the floods do not take "
             "the seed. The old bridge has been rebuilt three times, and each "
             "time the masons left a carved stone with the year on it.")
TARGETS = {"short": 40, "long": 512}
NEW_TOKENS, RUNS, THREADS = 128, 3, 2


def main(gguf):
    llm = Llama(model_path=gguf, n_ctx=2048, n_threads=THREADS, n_threads_batch=THREADS,
                verbose=False, seed=0)
    meta = llm.metadata
    add_bos = meta.get("tokenizer.ggml.add_bos_token", "false") == "true"
    chat = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True).from_string(
        meta["tokenizer.chat_template"])
    n_vocab = llm.n_vocab()

    def prompt_ids(user):
        text = chat.render(messages=[{"role": "user", "content": user}],
                           add_generation_prompt=True)
        return llm.tokenize(text.encode(), add_bos=add_bos, special=True)

    def user_text(target):
        # Smallest repetition-cut of PARAGRAPH whose prompt reaches the target.
        words = PARAGRAPH.split() * 20
        n = 1
        while len(prompt_ids(" ".join(words[:n]))) < target:
            n += 1
        return " ".join(words[:n])

    def argmax_last():
        ptr = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
        return int(np.argmax(np.ctypeslib.as_array(ptr, shape=(n_vocab,))))

    texts = {k: user_text(t) for k, t in TARGETS.items()}
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "bench-prompts.json"), "w") as f:
        json.dump(texts, f, indent=1)
        f.write("\n")

    result = {"engine": f"llama-cpp-python {llama_cpp.__version__}",
              "model": os.path.basename(gguf), "threads": THREADS,
              "new_tokens": NEW_TOKENS, "runs": RUNS}
    for name, user in texts.items():
        ids = prompt_ids(user)
        best_p = best_d = float("inf")
        for run in range(RUNS):
            llm.reset()
            t0 = time.perf_counter()
            llm.eval(ids)
            tok = argmax_last()
            t1 = time.perf_counter()
            for _ in range(NEW_TOKENS - 1):  # the first new token came with the prompt
                llm.eval([tok])
                tok = argmax_last()
            t2 = time.perf_counter()
            best_p, best_d = min(best_p, t1 - t0), min(best_d, t2 - t1)
            print(f"{name} run {run}: prompt {len(ids)} tok {t1 - t0:.3f}s, "
                  f"decode {NEW_TOKENS - 1} tok {t2 - t1:.3f}s", file=sys.stderr)
        result[name] = {"prompt_tokens": len(ids),
                        "prompt_tok_s": round(len(ids) / best_p, 1),
                        "decode_tok_s": round((NEW_TOKENS - 1) / best_d, 1)}
        print(f"{name}: {result[name]}", file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
