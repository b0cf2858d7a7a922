#!/usr/bin/env python3
"""Reference embedding speed of sentence-transformers (PyTorch, CPU).

    bench_sentence_transformers.py MODEL_DIR TEXTS_FILE

Embeds every non-empty line of TEXTS_FILE (normalized, batch size 32,
2 threads) after one warm-up batch; best of 3 runs. One JSON object on
stdout, progress on stderr.
"""
import json
import sys
import time

import torch
import sentence_transformers
from sentence_transformers import SentenceTransformer

BATCH, RUNS, THREADS = 32, 3, 2


def main(model_dir, texts_file):
    torch.set_num_threads(THREADS)
    with open(texts_file, encoding="utf-8") as f:
        texts = [line.rstrip("\n") for line in f if line.strip()]
    model = SentenceTransformer(model_dir, device="cpu")
    encode = lambda xs: model.encode(xs, batch_size=BATCH, normalize_embeddings=True,
                                     convert_to_numpy=True, show_progress_bar=False)
    encode(texts[:BATCH])  # warm-up
    times = []
    for run in range(RUNS):
        t0 = time.perf_counter()
        encode(texts)
        times.append(time.perf_counter() - t0)
        print(f"run {run}: {len(texts)} texts in {times[-1]:.2f}s", file=sys.stderr)
    print(json.dumps({
        "engine": f"sentence-transformers {sentence_transformers.__version__} "
                  f"(PyTorch {torch.__version__.split('+')[0]})",
        "texts": len(texts), "batch_size": BATCH, "threads": THREADS,
        "max_seq_length": model.max_seq_length, "runs": RUNS,
        "best_s": round(min(times), 3), "texts_per_s": round(len(texts) / min(times), 1)}))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
