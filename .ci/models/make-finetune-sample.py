#!/usr/bin/env python3
"""Write finetune-sample.jsonl: 300 composed texts, {"text", "source"} per
line, 75 from each source (narrative, conversational, sacred, technical),
30-150 words, seeded. Training data of bench_peft.py and of the Rust LoRA
benchmark."""
import json
import os
import random
from textgen import REGISTERS, passage

r = random.Random(1201)
rows = [{"text": passage(r, src, 30, 150), "source": src}
        for _ in range(75) for src in sorted(REGISTERS)]
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "finetune-sample.jsonl")
with open(out, "w", encoding="utf-8") as f:
    for row in rows:
        f.write(json.dumps(row, ensure_ascii=False) + "\n")
print(f"wrote {out}: {len(rows)} texts")
