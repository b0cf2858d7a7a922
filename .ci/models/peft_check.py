#!/usr/bin/env python3
"""Check a LoRA adapter against PyTorch + PEFT, for `substrate generate --adapter`.

    peft_check.py GGUF ADAPTER_DIR PROMPT_TOKENS_JSON

Loads the GGUF's base model with transformers (f32), then ADAPTER_DIR with
PeftModel.from_pretrained; fails unless the adapter file's tensors and the
model's LoRA weights match key for key and value for value. PROMPT_TOKENS_JSON
is a JSON list of prompt token ids, or {"prompt_tokens": [...]}, inline or
in a file. Prints one JSON object: the top 10 [id, logit] at the last prompt
position without and with the adapter, and 16 greedy ids with the adapter
(not stopped at end-of-sequence). 2 threads.
"""
import json
import os
import sys
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import torch  # noqa: E402
from peft import PeftModel, get_peft_model_state_dict  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402

NEW_TOKENS, TOP = 16, 10


def prompt_ids(arg):
    doc = json.load(open(arg)) if os.path.exists(arg) else json.loads(arg)
    return doc["prompt_tokens"] if isinstance(doc, dict) else doc


def top(logits):
    v, i = torch.topk(logits, TOP)
    return [[int(a), round(float(b), 4)] for a, b in zip(i, v)]


@torch.no_grad()
def main(gguf, adapter_dir, prompt_arg):
    torch.set_num_threads(2)
    ids = torch.tensor([prompt_ids(prompt_arg)])
    d, name = os.path.split(os.path.abspath(gguf))
    base = AutoModelForCausalLM.from_pretrained(d, gguf_file=name, dtype=torch.float32).eval()
    base_top = top(base(ids).logits[0, -1])

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = PeftModel.from_pretrained(base, adapter_dir).eval()
    bad = [str(w.message) for w in caught if "adapter keys" in str(w.message)]
    if bad:
        sys.exit(f"peft_check: {bad[0]}")
    # PEFT warns about missing keys only; compare both ways, values too.
    saved = load_file(os.path.join(adapter_dir, "adapter_model.safetensors"))
    loaded = get_peft_model_state_dict(model)
    missing, unexpected = sorted(loaded.keys() - saved.keys()), sorted(saved.keys() - loaded.keys())
    if missing or unexpected:
        sys.exit(f"peft_check: missing keys {missing[:5]}, unexpected keys {unexpected[:5]}")
    differ = [k for k in saved if not torch.equal(saved[k].to(loaded[k].dtype), loaded[k])]
    if differ:
        sys.exit(f"peft_check: loaded values differ from the file: {differ[:5]}")

    out = model(ids, use_cache=True)
    adapter_top = top(out.logits[0, -1])
    past, tokens = out.past_key_values, []
    nxt = int(out.logits[0, -1].argmax())
    for _ in range(NEW_TOKENS):  # greedy, with the KV cache
        tokens.append(nxt)
        out = model(torch.tensor([[nxt]]), past_key_values=past, use_cache=True)
        past, nxt = out.past_key_values, int(out.logits[0, -1].argmax())
    print(json.dumps({"loaded": True, "keys": len(saved), "logits_base_top": base_top,
                      "logits_adapter_top": adapter_top, "greedy_tokens": tokens}))


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
