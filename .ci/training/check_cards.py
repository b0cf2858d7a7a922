#!/usr/bin/env python3
"""Check the cards of a published adapter directory with other people's readers.

    check_cards.py DIR      (run with ${SUBSTRATE_CACHE:-~/.cache/substrate}/training-venv/bin/python)

DIR holds README.md, CONTRIBUTIONS.md, contributions.json, croissant.json, manifest.jsonl,
eu-training-summary.md and run.json (the run's record, which every card is written from). Checks:
  model-card      huggingface_hub's ModelCard.load reads README.md offline, and its front matter
                  says what run.json says (base model, peft, licence, languages, tags, snapshot);
  croissant       `mlcroissant validate` accepts croissant.json with no error and no warning;
  croissant-load  mlcroissant loads the `deposits` records (which checks the manifest's sha256)
                  and finds one record per manifest line, the manifest's CIDs;
  manifest        one JSON object per line, one line per contribution of run.json, same counts;
  contributions   contributions.json's sums equal run.json's tokens_trained and windows, its own
                  totals say so, and the shares sum to 1 (within 1e-9);
  cids            every CID of run.json is in the manifest, in contributions.json and in
                  CONTRIBUTIONS.md, and neither names a CID run.json does not;
  eu-summary      the EU AI Act summary has the template's three sections.
Prints "ok NAME: ..." or "FAIL NAME: ..." per check; exits 1 on any FAIL, 2 on bad usage.
"""

import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

# Before huggingface_hub is imported: it reads the variable once, and nothing here may reach the network.
os.environ["HF_HUB_OFFLINE"] = "1"

FILES = [
    "README.md",
    "CONTRIBUTIONS.md",
    "contributions.json",
    "croissant.json",
    "manifest.jsonl",
    "eu-training-summary.md",
    "run.json",
]
BASE_TAGS = ["lora", "peft", "substrate", "governed-mixture"]
# SPDX ids the Hub spells differently; every other Hub id is the SPDX id lowercased.
HUB_RENAMED = {"odc-by-1.0": "odc-by", "odbl-1.0": "odbl", "pddl-1.0": "pddl"}

failures = 0


def report(ok, name, detail):
    global failures
    if not ok:
        failures += 1
    print(f"{'ok' if ok else 'FAIL'} {name}: {detail}")


def causes(error):
    """An exception and what caused it, innermost last: mlcroissant wraps the hash mismatch."""
    chain = []
    while error is not None and len(chain) < 5:
        chain.append(f"{type(error).__name__}: {error}")
        error = error.__cause__ or error.__context__
    return " <- ".join(chain)


def check(name):
    """Runs a check function; an exception in it is that check's failure, not the script's."""

    def wrap(fn):
        def run(*args):
            try:
                ok, detail = fn(*args)
            except Exception as e:  # a reader's error is the finding
                ok, detail = False, causes(e)
            report(ok, name, detail)
            return ok

        return run

    return wrap


def expected_license(run):
    """The Hub licence the card must carry, or None when `other` (with a name) is the answer."""
    licences = {c["license"] for c in run["contributions"]}
    if len(licences) != 1:
        return None
    spdx = licences.pop().lower()
    if spdx.endswith("-only"):
        spdx = spdx[: -len("-only")]
    return HUB_RENAMED.get(spdx, spdx)


@check("model-card")
def check_model_card(d, run):
    from huggingface_hub import ModelCard

    # A Path, not a str: with a str that is not a file, load() would try the Hub.
    card = ModelCard.load(Path(d / "README.md"))
    data = card.data
    problems = []
    if data.base_model != run["base_model"]["name"]:
        problems.append(f"base_model {data.base_model!r} != {run['base_model']['name']!r}")
    if data.library_name != "peft":
        problems.append(f"library_name {data.library_name!r}")
    want = expected_license(run)
    if data.license == "other":
        if not getattr(data, "license_name", None):
            problems.append("license other without license_name")
    elif want is None or data.license != want:
        problems.append(f"license {data.license!r}, run.json's licences give {want or 'other'!r}")
    languages = sorted({c["language"].split("-")[0].lower() for c in run["contributions"] if c["language"]})
    if (data.language or []) != languages:
        problems.append(f"language {data.language!r} != {languages!r}")
    trained = {}
    for c in run["contributions"]:
        trained[c["register"]] = trained.get(c["register"], 0) + c["tokens_trained"]
    tags = BASE_TAGS + [f"register-{r}" for r in sorted(trained) if trained[r] > 0]
    if sorted(data.tags or []) != sorted(tags):
        problems.append(f"tags {data.tags!r} != {tags!r}")
    datasets = data.datasets or []
    if len(datasets) != 1 or run["snapshot_root"] not in datasets[0]:
        problems.append(f"datasets {datasets!r} do not name the snapshot root")
    for needle in [run["base_model"]["sha256"], "CONTRIBUTIONS.md", "## Withdrawal"]:
        if needle not in card.text:
            problems.append(f"the body does not mention {needle!r}")
    if problems:
        return False, "; ".join(problems)
    return True, f"loads offline; base_model, peft, license {data.license}, {len(languages)} languages, {len(tags)} tags"


@check("croissant")
def check_croissant_validates(d):
    cli = Path(sys.executable).parent / "mlcroissant"
    done = subprocess.run(
        [str(cli), "validate", "--jsonld", str(d / "croissant.json")], capture_output=True, text=True, timeout=300
    )
    # absl logs a warning as a line starting "W<date>" and an error as "E<date>".
    flagged = [
        line
        for line in (done.stdout + done.stderr).splitlines()
        if (line[:1] in "WE" and line[1:5].isdigit()) or "warning(s)" in line or "error(s)" in line
    ]
    if done.returncode != 0 or flagged:
        return False, f"mlcroissant validate exited {done.returncode}: " + " | ".join(flagged[:5])
    return True, "mlcroissant validate: no errors, no warnings"


@check("croissant-load")
def check_croissant_loads(d, manifest):
    import mlcroissant as mlc

    croissant = json.loads((d / "croissant.json").read_text(encoding="utf-8"))
    dataset = mlc.Dataset(jsonld=str(d / "croissant.json"))
    issues = dataset.metadata.ctx.issues
    if issues.errors or issues.warnings:
        return False, issues.report()
    # Loading reads the manifest from disk and refuses it when its sha256 differs.
    records = list(dataset.records(record_set="deposits"))
    cids = [r["deposits/cid"].decode() if isinstance(r["deposits/cid"], bytes) else r["deposits/cid"] for r in records]
    if len(records) != len(manifest):
        return False, f"{len(records)} records, {len(manifest)} manifest lines"
    if sorted(cids) != sorted(line["cid"] for line in manifest):
        return False, "the records' CIDs are not the manifest's"
    sha = croissant["distribution"][0]["sha256"]
    return True, f"{len(records)} records = {len(manifest)} manifest lines; manifest sha256 {sha[:16]}... checked"


@check("manifest")
def check_manifest(manifest, run):
    by_cid = {c["cid"]: c for c in run["contributions"]}
    if len(manifest) != len(run["contributions"]):
        return False, f"{len(manifest)} lines, {len(run['contributions'])} contributions in run.json"
    wrong = []
    for line in manifest:
        c = by_cid.get(line.get("cid"))
        if c is None:
            wrong.append(f"{line.get('cid')} is not in run.json")
            continue
        for key in ["tokens", "tokens_trained", "windows", "held_out", "register", "depositor", "consent", "bytes"]:
            if line.get(key) != c.get(key):
                wrong.append(f"{line['cid']}: {key} {line.get(key)!r} != {c.get(key)!r}")
    if wrong:
        return False, "; ".join(wrong[:5])
    return True, f"{len(manifest)} lines, one per contribution, matching run.json"


@check("contributions")
def check_contributions(contributions, run):
    people = contributions["contributors"]
    tokens = sum(p["tokens_trained"] for p in people)
    windows = sum(p["windows"] for p in people)
    shares = math.fsum(p["share"] for p in people)
    problems = []
    if tokens != run["tokens_trained"]:
        problems.append(f"contributors' tokens_trained sum to {tokens}, run.json says {run['tokens_trained']}")
    if windows != run["windows"]:
        problems.append(f"contributors' windows sum to {windows}, run.json says {run['windows']}")
    if abs(shares - 1.0) > 1e-9:
        problems.append(f"shares sum to {shares!r}")
    for p in people:
        deposits = sum(dep["tokens_trained"] for dep in p["deposits"])
        if deposits != p["tokens_trained"]:
            problems.append(f"{p['depositor']}: deposits sum to {deposits}, contributor says {p['tokens_trained']}")
    totals, stated_run = contributions.get("totals", {}), contributions.get("run", {})
    if (totals.get("tokens_trained"), totals.get("windows")) != (tokens, windows):
        problems.append(f"stated totals {totals} are not the sums {tokens}/{windows}")
    if (stated_run.get("tokens_trained"), stated_run.get("windows")) != (run["tokens_trained"], run["windows"]):
        problems.append(f"stated run {stated_run} is not run.json's")
    if problems:
        return False, "; ".join(problems[:5])
    return True, (
        f"{len(people)} contributors: {tokens} tokens, {windows} windows = run.json's; shares sum to 1 "
        f"(off by {abs(shares - 1.0):.1e})"
    )


@check("cids")
def check_cids(d, run, manifest, contributions):
    cids = {c["cid"] for c in run["contributions"]}
    in_manifest = {line["cid"] for line in manifest}
    in_json = {dep["cid"] for p in contributions["contributors"] for dep in p["deposits"]}
    card = (d / "CONTRIBUTIONS.md").read_text(encoding="utf-8")
    problems = []
    for name, found in [("manifest.jsonl", in_manifest), ("contributions.json", in_json)]:
        if cids - found:
            problems.append(f"{name} lacks {sorted(cids - found)[:3]}")
        if found - cids:
            problems.append(f"{name} names CIDs run.json does not: {sorted(found - cids)[:3]}")
    missing_in_card = sorted(c for c in cids if c not in card)
    if missing_in_card:
        problems.append(f"CONTRIBUTIONS.md lacks {missing_in_card[:3]}")
    if problems:
        return False, "; ".join(problems)
    return True, f"all {len(cids)} CIDs of run.json are in manifest.jsonl, contributions.json and CONTRIBUTIONS.md"


@check("eu-summary")
def check_eu_summary(d):
    text = (d / "eu-training-summary.md").read_text(encoding="utf-8")
    headings = ["## 1. General information", "## 2. List of data sources", "## 3. Data processing aspects"]
    missing = [h for h in headings if h not in text]
    if not text.startswith("# Public Summary of Training Content for ") or missing:
        return False, f"missing {missing or 'the title'}"
    return True, "title and the template's three sections"


def main(d):
    missing = [name for name in FILES if not (d / name).is_file()]
    report(not missing, "files", f"missing {missing}" if missing else f"all {len(FILES)} cards present")
    if missing:
        return 1
    try:
        run = json.loads((d / "run.json").read_text(encoding="utf-8"))
        contributions = json.loads((d / "contributions.json").read_text(encoding="utf-8"))
        manifest = [json.loads(line) for line in (d / "manifest.jsonl").read_text(encoding="utf-8").splitlines()]
    except (OSError, ValueError) as e:
        report(False, "json", f"a JSON file does not parse: {e}")
        return 1
    check_model_card(d, run)
    check_croissant_validates(d)
    check_croissant_loads(d, manifest)
    check_manifest(manifest, run)
    check_contributions(contributions, run)
    check_cids(d, run, manifest, contributions)
    check_eu_summary(d)
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) != 2 or not Path(sys.argv[1]).is_dir():
        print("usage: check_cards.py DIR", file=sys.stderr)
        sys.exit(2)
    # mlcroissant keeps downloads in a cache; nothing is downloaded here, and no cache is left behind.
    with tempfile.TemporaryDirectory() as cache:
        os.environ.setdefault("CROISSANT_CACHE", cache)
        sys.exit(main(Path(sys.argv[1]).resolve()))
