"""NLTK's `KneserNeyInterpolated` as an independent check of our smoothing arithmetic, at orders 2,
3 and 4, on a small corpus written here. NLTK's variant is not modified Kneser-Ney (one discount,
0.1; order-1 `<s>` and `</s>` on each side; continuation unigrams with no uniform floor), so our
binary trains it with `--smoothing nltk:0.1`; the counts, the continuation counts and the
interpolation through backoff weights in an ARPA file are what this holds to NLTK.
Run by `.ci/amputation/run`.

    check_nltk.py PATH/TO/substrate WORK_DIR
"""

import json
import math
import os
import subprocess
import sys

from nltk.lm import KneserNeyInterpolated
from nltk.lm.preprocessing import pad_both_ends, padded_everygram_pipeline

TRAIN = """\
the cook puts the bread in the oven
the cook puts the soup on the stove
the cook washes the pots in the sink
the bread is warm and the soup is hot
we eat the bread with the soup
we eat the soup in the kitchen
the kitchen is warm in the morning
the kitchen is cold at night
the cat sleeps in the warm kitchen
the cat sleeps on the chair by the stove
the dog sleeps by the door
the dog waits at the door in the morning
my mother bakes the bread in the morning
my mother buys the fish at the market
my father buys the apples at the market
my father grows the apples in the garden
the garden is green in the spring
the garden is quiet in the evening
the roses grow by the garden wall
the beans grow by the garden gate
we water the roses in the evening
we water the beans in the morning
the birds sing in the garden in the morning
the birds sit on the garden wall
the children play in the garden after school
the children eat apples after school
the market is busy in the morning
the market is quiet at night
the farmer sells apples and beans at the market
the farmer sells eggs and milk at the market
the baker sells bread and cakes at the market
we buy eggs and milk for the kitchen
we buy bread and cakes for the children
the fish is fresh in the morning
the milk is cold and the bread is warm
the apples are red and the beans are green
the eggs are in the basket by the door
my mother puts the eggs in the basket
my father puts the apples in the basket
the basket is on the table in the kitchen
the table is by the window in the kitchen
the window looks out on the garden
we sit at the table in the evening
we sit in the garden after school
the cook cuts the apples for the cakes
the cook cuts the beans for the soup
the soup is ready and the bread is ready
the children wash the apples in the sink
the dog eats by the door and the cat eats by the stove
the farmer grows beans and roses in the garden
"""

# Only words of the training text, partly in orders it never saw, so scores back off.
TEST = """\
the cook puts the bread in the oven
the cat sleeps in the garden in the evening
my father bakes the cakes in the kitchen
the dog sleeps on the garden wall at night
the children buy apples and eggs at the market after school
the baker puts the fish in the basket by the window
we water the apples and the roses in the spring
the farmer eats the soup at the table
the birds sit by the door in the morning
my mother sells roses at the market in the spring
"""

TOLERANCE = 1e-6


def main():
    binary, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    train = [line.split() for line in TRAIN.splitlines()]
    test = [line.split() for line in TEST.splitlines()]
    vocabulary = {word for sentence in train for word in sentence}
    assert all(word in vocabulary for sentence in test for word in sentence), "a test word is not in the corpus"
    failed = False
    for order in (2, 3, 4):
        failed |= not check_order(binary, work, train, test, order)
    sys.exit(1 if failed else 0)


def check_order(binary, work, train, test, order):
    padded_train = [list(pad_both_ends(sentence, n=order)) for sentence in train]
    padded_test = [list(pad_both_ends(sentence, n=order)) for sentence in test]
    train_path = os.path.join(work, f"nltk-{order}.train")
    arpa = os.path.join(work, f"nltk-{order}.arpa")
    write_lines(train_path, padded_train)

    # Ours, from the padded sentences exactly as NLTK sees them.
    run([binary, "lm", "train", train_path, "--order", str(order), "--out", arpa,
         "--smoothing", "nltk:0.1", "--no-markers", "--raw-tokens"])
    stdin = "".join(" ".join(sentence) + "\n" for sentence in padded_test)
    out = run([binary, "lm", "score", arpa, "--no-markers", "--raw-tokens"], stdin).splitlines()
    if len(out) != len(padded_test):
        print(f"nltk order {order}: {len(out)} scored lines for {len(padded_test)} test sentences")
        return False

    # NLTK's, from the same sentences through its own pipeline.
    ngrams, words = padded_everygram_pipeline(order, train)
    lm = KneserNeyInterpolated(order, discount=0.1)
    lm.fit(ngrams, words)

    compared, backoffs, largest, mismatches = 0, 0, 0.0, []
    for number, (sentence, line) in enumerate(zip(padded_test, out), 1):
        ours = json.loads(line)
        if ours["tokens"] != sentence:
            mismatches.append(f"line {number}: tokens {ours['tokens']} != {sentence}")
            continue
        # Only positions with a full context: NLTK has no sentence-start state of its own.
        for i in range(order - 1, len(sentence)):
            word, context = sentence[i], sentence[i - order + 1:i]
            theirs = math.log10(lm.score(word, context))
            difference = abs(ours["log10"][i] - theirs)
            largest = max(largest, difference)
            compared += 1
            if lm.counts[context][word] == 0:
                backoffs += 1
            if not difference <= TOLERANCE:
                mismatches.append(f"line {number}, {' '.join(context)} | {word}: ours {ours['log10'][i]!r}, nltk {theirs!r}")

    print(f"nltk order {order}: {compared} probabilities compared, {backoffs} of them backing off "
          f"(unseen {order}-gram), largest difference {largest:.2e}")
    if mismatches:
        print(f"nltk order {order}: {len(mismatches)} mismatches beyond {TOLERANCE}; the first:")
        for mismatch in mismatches[:8]:
            print("  " + mismatch)
        return False
    if backoffs == 0:
        print(f"nltk order {order}: no test position backs off; the check would not cover backoff")
        return False
    return True


def write_lines(path, sentences):
    with open(path, "w", encoding="utf-8") as file:
        for sentence in sentences:
            file.write(" ".join(sentence) + "\n")


def run(command, stdin=None):
    done = subprocess.run(command, input=stdin, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} exited {done.returncode}:\n{done.stderr}")
    return done.stdout


if __name__ == "__main__":
    main()
