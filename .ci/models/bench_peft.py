#!/usr/bin/env python3
"""Reference LoRA fine-tuning speed of PyTorch + PEFT on the GGUF's base model.

    bench_peft.py GGUF DATA_FILE [--save ADAPTER_DIR]

transformers loads the GGUF (dequantized to f32). LoRA r=8, alpha=16,
dropout 0 on q_proj and v_proj; AdamW lr 1e-3. DATA_FILE is JSONL with a
"text" per line: every text is tokenized with the GGUF's tokenizer, end-of-
sequence appended, all concatenated and cut into 128-token windows, taken
in order 4 per batch. 2 warm-up steps, then 20 timed steps, 2 threads.
One JSON object on stdout: training tokens/s (4*128*20 / time of the 20
steps), peak RSS (MiB), loss at the first and last step. --save writes the
adapter with save_pretrained (input for peft_check.py).
"""
import json
import os
import resource
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import peft  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from peft import LoraConfig, get_peft_model  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

SEQ, BATCH, WARMUP, STEPS, THREADS = 128, 4, 2, 20, 2


def load(gguf):
    d, name = os.path.split(os.path.abspath(gguf))
    tok = AutoTokenizer.from_pretrained(d, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=name, dtype=torch.float32)
    return tok, model


def main(gguf, data_file, save=None):
    torch.set_num_threads(THREADS)
    torch.manual_seed(0)  # LoRA A is initialized at random
    tok, model = load(gguf)
    cfg = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0,
                     target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    model = get_peft_model(model, cfg)
    model.train()

    ids = []
    with open(data_file, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                ids += tok(json.loads(line)["text"], add_special_tokens=False)["input_ids"]
                ids.append(tok.eos_token_id)
    windows = torch.tensor(ids[: len(ids) // SEQ * SEQ]).view(-1, SEQ)
    need = (WARMUP + STEPS) * BATCH
    assert len(windows) >= need, f"{len(windows)} windows of {SEQ}, need {need}"
    print(f"{len(ids)} tokens, {len(windows)} windows", file=sys.stderr)

    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    losses = []
    for step in range(WARMUP + STEPS):
        if step == WARMUP:
            t0 = time.perf_counter()
        batch = windows[step * BATCH:(step + 1) * BATCH]
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
        print(f"step {step}: loss {losses[-1]:.4f}", file=sys.stderr)
    dt = time.perf_counter() - t0
    if save:
        model.save_pretrained(save)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(json.dumps({
        "engine": f"PyTorch {torch.__version__.split('+')[0]} + PEFT {peft.__version__} "
                  f"(transformers {transformers.__version__})",
        "model": os.path.basename(gguf), "dtype": "f32", "threads": THREADS,
        "lora": {"r": 8, "alpha": 16, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"],
                 "trainable_params": trainable},
        "seq_len": SEQ, "batch": BATCH, "warmup_steps": WARMUP, "steps": STEPS,
        "train_s": round(dt, 2), "tokens_per_s": round(BATCH * SEQ * STEPS / dt, 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "loss_first": round(losses[0], 4), "loss_last": round(losses[-1], 4)}))


if __name__ == "__main__":
    args = sys.argv[1:]
    save = None
    if "--save" in args:
        i = args.index("--save")
        save = args[i + 1]
        del args[i:i + 2]
    if len(args) != 2:
        sys.exit(__doc__)
    main(*args, save=save)
