#!/usr/bin/env python3
"""Validate the node's OpenAPI document with openapi-spec-validator.

    check_openapi.py PATH/openapi.json     (run with the conformance venv's python)

The file must exist, be JSON, declare OpenAPI 3.1.x and validate against the
3.1 schema (OpenAPIV31SpecValidator). A negative control checks that the
validator rejects the same document without its required "info" object.
Prints "ok   <what>" / "FAIL <what>: <why>"; exits 1 on any FAIL.
"""

import copy
import json
import pathlib
import sys

failures = 0


def ok(what):
    print(f"ok   {what}", flush=True)


def fail(what, why):
    global failures
    failures += 1
    lines = str(why).strip().splitlines()
    print(f"FAIL {what}: {lines[0] if lines else type(why).__name__}", flush=True)


def main():
    if len(sys.argv) != 2:
        print("usage: check_openapi.py PATH/openapi.json", file=sys.stderr)
        sys.exit(2)
    path = pathlib.Path(sys.argv[1]).resolve()

    try:
        spec = json.loads(path.read_bytes().decode("utf-8"))
        if not isinstance(spec, dict):
            raise ValueError("top level is not an object")
        ok(f"openapi: {path.name} is a JSON object")
    except Exception as e:
        fail(f"openapi: {path.name} exists and is JSON", f"{type(e).__name__}: {e}")
        finish()

    version = spec.get("openapi")
    if isinstance(version, str) and version.startswith("3.1."):
        ok(f"openapi: declares version {version}")
    else:
        fail("openapi: declares version 3.1.x", f"openapi field is {version!r}")

    from openapi_spec_validator import OpenAPIV31SpecValidator, validate

    try:
        validate(spec, base_uri=path.as_uri(), cls=OpenAPIV31SpecValidator)
        n_ops = sum(
            1
            for item in (spec.get("paths") or {}).values()
            if isinstance(item, dict)
            for m in item
            if m in {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
        )
        ok(f"openapi: openapi-spec-validator OpenAPIV31SpecValidator accepts it ({len(spec.get('paths') or {})} paths, {n_ops} operations)")
    except Exception as e:
        fail("openapi: openapi-spec-validator OpenAPIV31SpecValidator", f"{type(e).__name__}: {e}")

    bad = copy.deepcopy(spec)
    bad.pop("info", None)
    try:
        validate(bad, base_uri=path.as_uri(), cls=OpenAPIV31SpecValidator)
        fail("openapi: negative control, document without info", "tampered document was ACCEPTED")
    except Exception as e:
        ok(f"openapi: negative control, document without info rejected ({type(e).__name__})")
    finish()


def finish():
    if failures:
        print(f"check_openapi: {failures} check(s) FAILED")
        sys.exit(1)
    print("check_openapi: all checks passed")
    sys.exit(0)


if __name__ == "__main__":
    main()
