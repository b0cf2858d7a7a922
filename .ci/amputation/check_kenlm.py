"""PyPI `kenlm` (KenLM's query side) reads an ARPA file our `substrate lm train` wrote and must
score every line as `substrate lm score` does: per token the log10 probability, the length of the
n-gram matched and whether it is unknown, and per line the total and the perplexity. This holds both
our ARPA writer (KenLM is strict about the format) and our backoff walk at query time to the
reference implementation CCNet's filter was built on. Run by `.ci/amputation/run`.

    check_kenlm.py PATH/TO/substrate MODEL.arpa TEXTS.txt
"""

import json
import math
import subprocess
import sys

import kenlm

PROBABILITY_TOLERANCE = 1e-4  # absolute, per token: the ARPA file holds about 7 digits
# Per line: ours adds the float32 token scores in float64, and must equal the float64 sum of
# kenlm's own token scores; kenlm's `score` adds them in float32, whose rounding grows with the
# line (a paragraph of 2,000 tokens drifts by a hundredth), so it gets 1e-3 or 1e-5 of the total.
SUM_TOLERANCE = 1e-6
TOTAL_TOLERANCE = 1e-3
TOTAL_RELATIVE = 1e-5
PERPLEXITY_TOLERANCE = 1e-4  # relative, per line
MIN_TOKENS = 1000


def main():
    binary, arpa, texts = sys.argv[1:4]
    with open(texts, "rb") as file:
        lines = file.read().decode("utf-8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the last line
    with open(texts, "rb") as file:
        done = subprocess.run([binary, "lm", "score", arpa], stdin=file, capture_output=True)
    if done.returncode != 0:
        sys.exit(f"substrate lm score exited {done.returncode}:\n{done.stderr.decode(errors='replace')}")
    ours = [json.loads(line) for line in done.stdout.decode("utf-8").splitlines()]
    if len(ours) != len(lines):
        sys.exit(f"kenlm: substrate lm score printed {len(ours)} lines for {len(lines)} input lines")

    config = kenlm.Config()
    config.show_progress = False  # its complaints about the file still go to stderr
    model = kenlm.Model(arpa, config)
    header_order = arpa_order(arpa)
    if model.order != header_order:
        sys.exit(f"kenlm: reads order {model.order}, the ARPA header says {header_order}")

    mismatches, scored_lines, tokens, oov = [], 0, 0, 0
    largest = {"log10": 0.0, "sum": 0.0, "total": 0.0, "perplexity": 0.0}

    def differ(number, token, what, mine, theirs, difference, tolerance):
        largest[what] = max(largest[what], difference)
        if not difference <= tolerance:  # also catches NaN
            mismatches.append(f"line {number}, {token!r}, {what}: ours {mine!r}, kenlm {theirs!r}")

    for number, result in enumerate(ours, 1):
        if not result["tokens"]:
            continue
        if result["tokens"][-1] != "</s>":
            mismatches.append(f"line {number}: tokens do not end with </s>: {result['tokens']}")
            continue
        sentence = " ".join(result["tokens"][:-1])
        theirs = list(model.full_scores(sentence, bos=True, eos=True))
        scored_lines += 1
        if len(theirs) != len(result["tokens"]):
            mismatches.append(f"line {number}: {len(result['tokens'])} tokens, kenlm scores {len(theirs)}")
            continue
        for token, mine, length, (probability, their_length, unknown) in zip(
            result["tokens"], result["log10"], result["ngram"], theirs
        ):
            tokens += 1
            oov += unknown
            differ(number, token, "log10", mine, probability, abs(mine - probability), PROBABILITY_TOLERANCE)
            if length != their_length:
                mismatches.append(f"line {number}, {token!r}, n-gram length: ours {length}, kenlm {their_length}")
        unknowns = sum(unknown for _, _, unknown in theirs)
        if result["oov"] != unknowns:
            mismatches.append(f"line {number}: ours {result['oov']} unknown tokens, kenlm {unknowns}")
        summed = math.fsum(score for score, _, _ in theirs)
        differ(number, "(line)", "sum", result["total"], summed, abs(result["total"] - summed), SUM_TOLERANCE)
        total = model.score(sentence, bos=True, eos=True)
        allowed = max(TOTAL_TOLERANCE, TOTAL_RELATIVE * abs(total))
        differ(number, "(line)", "total", result["total"], total, abs(result["total"] - total), allowed)
        perplexity = model.perplexity(sentence)
        relative = abs(result["perplexity"] - perplexity) / perplexity
        differ(number, "(line)", "perplexity", result["perplexity"], perplexity, relative, PERPLEXITY_TOLERANCE)

    print(f"kenlm: order {model.order}, {scored_lines} lines and {tokens} tokens compared ({oov} unknown); "
          f"largest differences: log10 {largest['log10']:.2e}, sum {largest['sum']:.2e}, total {largest['total']:.2e}, "
          f"perplexity {largest['perplexity']:.2e} relative")
    if mismatches:
        print(f"kenlm: {len(mismatches)} mismatches; the first:")
        for mismatch in mismatches[:8]:
            print("  " + mismatch)
        sys.exit(1)
    if tokens < MIN_TOKENS:
        sys.exit(f"kenlm: only {tokens} tokens compared, fewer than {MIN_TOKENS}")
    if oov == 0:
        sys.exit("kenlm: no unknown token in the texts; the unknown-word path went unchecked")


def arpa_order(path):
    """The highest n of the `ngram n=count` lines in the ARPA header."""
    order = 0
    with open(path, encoding="utf-8") as file:
        for line in file:
            line = line.strip()
            if line.startswith("ngram ") and "=" in line:
                order = max(order, int(line[len("ngram "):].split("=")[0]))
            elif line.startswith("\\") and line.endswith("-grams:"):
                break
    return order


if __name__ == "__main__":
    main()
