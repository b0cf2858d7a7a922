"""KenLM's own scoring speed on an ARPA file and tokenised lines (a line a sentence), for the
comparison in BENCHMARKS.md: `substrate bench ngram --arpa A --tokens-out T`, then

    bench_kenlm.py A T

prints the time to load the model and to score every line with `Model.score` (bos and eos on),
and the sum of the scores, which must equal the one `bench ngram` printed to about 1e-3 per line.
"""

import sys
import time

import kenlm


def main():
    arpa, tokens = sys.argv[1:3]
    with open(tokens, encoding="utf-8") as file:
        lines = file.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    config = kenlm.Config()
    config.show_progress = False
    started = time.perf_counter()
    model = kenlm.Model(arpa, config)
    loaded = time.perf_counter() - started
    words = sum(len(line.split()) + 1 for line in lines)
    started = time.perf_counter()
    total = sum(model.score(line, bos=True, eos=True) for line in lines)
    scored = time.perf_counter() - started
    print(f"kenlm {kenlm.__version__ if hasattr(kenlm, '__version__') else ''} loaded {arpa} in {loaded:.2f} s")
    print(f"kenlm scored {len(lines)} lines ({words} tokens) in {scored:.2f} s "
          f"({words / scored / 1e6:.2f} M tokens/s), sum of log10 {total:.3f}")


if __name__ == "__main__":
    main()
