#!/usr/bin/env python3
"""Validate the node's DataCite export with the DataCite Metadata Schema 4.5 validator and XML
serialiser of PyPI `datacite` (written by the DataCite/Invenio community, not by us)."""
import copy
import json
import sys

import datacite.schema45 as schema45

# Attributes of the DataCite REST API's JSON:API envelope that are not metadata-schema fields.
REST_ONLY = ("state", "url", "event", "doi", "prefix")


def main(path):
    failures = 0

    def check(ok, what, why=""):
        nonlocal failures
        if ok:
            print(f"ok   datacite: {what}")
        else:
            failures += 1
            print(f"FAIL datacite: {what}: {why}")

    try:
        with open(path, encoding="utf-8") as f:
            document = json.load(f)
    except (OSError, ValueError) as e:
        print(f"FAIL datacite: {path} is not readable JSON: {e}")
        return 1
    attributes = document.get("data", {}).get("attributes")
    check(isinstance(attributes, dict), "document is a JSON:API {data: {type, attributes}} object", "no data.attributes")
    if not isinstance(attributes, dict):
        return 1
    check(document["data"].get("type") == "dois", "data.type is 'dois'", repr(document["data"].get("type")))
    check("doi" not in attributes, "no DOI is invented (no 'doi' attribute)", repr(attributes.get("doi")))
    check(attributes.get("state") == "draft", "state is draft", repr(attributes.get("state")))
    metadata = {k: v for k, v in attributes.items() if k not in REST_ONLY}
    errors = [e.message for e in schema45.validator.iter_errors(metadata)]
    check(not errors, "metadata validates against the DataCite 4.5 JSON schema", "; ".join(errors[:5]))
    try:
        xml = schema45.tostring(metadata)
        check("<resource" in xml and "http://datacite.org/schema/kernel-4" in xml, "serialises to DataCite kernel-4 XML", xml[:200])
    except Exception as e:  # the serialiser raises various errors on bad input
        check(False, "serialises to DataCite kernel-4 XML", repr(e))
    broken = copy.deepcopy(metadata)
    broken.pop("titles", None)
    check(not schema45.validate(broken), "negative control: the same record without titles is rejected", "accepted")
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: check_datacite.py DATACITE_JSON", file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
