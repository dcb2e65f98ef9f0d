#!/usr/bin/env python3
"""The model catalog's files: host/registry/catalog/ and its manifest, catalog.json.

build_catalog.py build [--only NAME ...]
    builds every catalog entry (or only those named): its model (.onnx), its reference case
    (.reference.npz: the inputs and onnxruntime's outputs, by name) and its entry in
    catalog.json (sha256, size, how to feed it). Each entry has its own builder, a module of
    scripts/catalog_builders/ whose docstring says what it needs to run: the dev extra for
    most, a separate venv with torch for the ImageNet classifier. The entries it did not
    build keep what catalog.json has for them. Byte-reproducible: a rebuild with the same
    package versions leaves every file as it was, and each entry keeps the id it already
    has in catalog.json.
build_catalog.py check
    fails, one line per problem, unless every file catalog.json lists has the sha256
    and size it records. Standard library only: it builds nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CATALOG = ROOT / "host" / "registry" / "catalog"
MANIFEST = CATALOG / "catalog.json"


def describe(path: Path) -> dict[str, Any]:
    return {"sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "size": path.stat().st_size}


def read_models() -> list[dict[str, Any]]:
    try:
        return json.loads(MANIFEST.read_text())["models"]
    except FileNotFoundError:
        return []


def build(only: list[str] | None) -> int:
    from catalog_builders import builders

    found = builders()
    unknown = sorted(set(only or ()) - found.keys())
    if unknown:
        print(f"catalog: no builder for {', '.join(unknown)} (have: {', '.join(found)})")
        return 2
    ids = {m["name"]: m["id"] for m in read_models()}
    CATALOG.mkdir(parents=True, exist_ok=True)
    built: dict[str, dict[str, Any]] = {}
    for name in only or found:
        module = found[name]
        try:
            entry = module.build(CATALOG)
        except ModuleNotFoundError as e:
            where = Path(module.__file__).relative_to(ROOT)
            print(f"catalog: {name} needs {e.name}: {where} says how to build it", file=sys.stderr)
            return 1
        assert entry["name"] == name, (entry["name"], name)
        built[name] = entry
    # Read catalog.json again right before writing it: the entries built elsewhere
    # meanwhile stay as they are now, in their order; new entries go last.
    current = read_models()
    ids.update({m["name"]: m["id"] for m in current})

    def with_id(entry: dict[str, Any]) -> dict[str, Any]:
        rest = {k: v for k, v in entry.items() if k not in ("name", "id")}
        return {"name": entry["name"], "id": ids.get(entry["name"]) or str(uuid.uuid4()), **rest}

    models = [with_id(built.pop(m["name"])) if m["name"] in built else m for m in current]
    models += [with_id(entry) for entry in built.values()]
    manifest = {"format": 1, "project": {"name": "catalog", "runtime": "onnx"}, "models": models}
    partial = MANIFEST.with_suffix(".json.partial")
    partial.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    os.replace(partial, MANIFEST)
    for m in models:
        if m["name"] in (only or found):
            print(f"catalog: {m['name']} {m['id']} {m['sha256'][:16]} ({m['size']} bytes)")
    return 0


def check() -> int:
    try:
        models = json.loads(MANIFEST.read_text())["models"]
    except (OSError, ValueError, KeyError) as e:
        print(f"catalog: cannot read {MANIFEST.relative_to(ROOT)}: {e}", file=sys.stderr)
        return 1
    problems = []
    for m in models:
        # The model, its reference case and any other file an entry lists (a tokenizer's
        # vocabulary...): each a dict with file, sha256 and size.
        others = [v for k, v in m.items() if k != "reference" and isinstance(v, dict)]
        others = [v for v in others if {"file", "sha256", "size"} <= v.keys()]
        for listed in (m, m["reference"], *others):
            path = CATALOG / listed["file"]
            if not path.is_file():
                problems.append(f"{m['name']}: {listed['file']} is missing")
            elif describe(path) != {"sha256": listed["sha256"], "size": listed["size"]}:
                problems.append(
                    f"{m['name']}: {listed['file']} does not match the sha256/size in "
                    "catalog.json (rebuild with scripts/build_catalog.py build)"
                )
    for p in problems:
        print(f"catalog: {p}", file=sys.stderr)
    if not problems:
        names = ", ".join(m["name"] for m in models)
        print(f"catalog: ok ({names}: every file matches catalog.json)")
    return 1 if problems else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    builder = sub.add_parser("build", help="rebuild the models, reference cases and catalog.json")
    builder.add_argument(
        "--only", action="append", metavar="NAME", help="build this entry only (repeatable)"
    )
    sub.add_parser("check", help="verify the files against catalog.json (stdlib only)")
    args = parser.parse_args()
    return build(args.only) if args.cmd == "build" else check()


if __name__ == "__main__":
    sys.exit(main())
