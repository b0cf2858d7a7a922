#!/usr/bin/env python3
"""Write bench-texts.txt: 1,000 composed lines of 10-200 words in mixed
registers (stories, dialogue, technical notes, liturgy), seeded, so the file
is the same on every run. Input of bench_sentence_transformers.py and of the
Rust embedding benchmark."""
import os
import random
from textgen import REGISTERS, passage

r = random.Random(20261201)
lines = [passage(r, r.choice(sorted(REGISTERS)), 10, 200) for _ in range(1000)]
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench-texts.txt")
with open(out, "w", encoding="utf-8") as f:
    f.write("\n".join(lines) + "\n")
print(f"wrote {out}: {len(lines)} lines, {sum(len(l.split()) for l in lines)} words")
