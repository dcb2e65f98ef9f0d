#!/usr/bin/env python3
"""The prebuilt guest's manifest, wasm_modules/tract_onnx.json.

wasm_manifest.py write --rustc ... --packages ... --rustflags ... --build-std ...
    (called by scripts/build_wasm.sh) records the module's sha256, the hash of the
    sources it was built from, and the toolchain.
wasm_manifest.py check
    fails unless the committed module matches its manifest and the manifest's
    sources_sha256 matches the sources on disk: a change to the guest's sources
    without a rebuilt module cannot land. Cheap: it builds nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CRATE = ROOT / "wasm_modules" / "tract_onnx_guest"
WASM = ROOT / "wasm_modules" / "tract_onnx.wasm"
MANIFEST = ROOT / "wasm_modules" / "tract_onnx.json"
# The build script is a source too: its flags shape the bytes.
EXTRA_SOURCES = [ROOT / "scripts" / "build_wasm.sh"]


def source_files() -> list[Path]:
    files = [CRATE / "Cargo.toml", CRATE / "Cargo.lock", *EXTRA_SOURCES]
    for folder in ("src", "shim"):
        files += sorted(p for p in (CRATE / folder).rglob("*") if p.is_file())
    return files


def sources_sha256() -> str:
    """Hash of each source's repo-relative path and bytes, in a fixed order."""
    h = hashlib.sha256()
    for path in source_files():
        rel = path.relative_to(ROOT).as_posix().encode()
        data = path.read_bytes()
        h.update(b"%d:%s\0%d:" % (len(rel), rel, len(data)))
        h.update(data)
    return h.hexdigest()


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def locked_version(crate: str) -> str:
    lock = (CRATE / "Cargo.lock").read_text()
    m = re.search(rf'name = "{re.escape(crate)}"\nversion = "([^"]+)"', lock)
    if not m:
        raise SystemExit(f"{crate} is not in Cargo.lock")
    return m.group(1)


def write(args: argparse.Namespace) -> None:
    manifest = {
        "module": WASM.name,
        "abi_version": 1,
        "sha256": file_sha256(WASM),
        "size": WASM.stat().st_size,
        "sources_sha256": sources_sha256(),
        "sources": [p.relative_to(ROOT).as_posix() for p in source_files()],
        "tract_version": locked_version("tract-onnx"),
        "rustc": args.rustc,
        "debian_packages": [line for line in args.packages.splitlines() if line],
        "target": "wasm32-wasip1",
        "build_std": args.build_std,
        "rustflags": [line for line in args.rustflags.splitlines() if line],
        "profile": "release (opt-level=3, lto, codegen-units=1, panic=abort, strip=debuginfo)",
    }
    MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n")


def check() -> int:
    manifest = json.loads(MANIFEST.read_text())
    problems = []
    if manifest["sha256"] != file_sha256(WASM):
        problems.append(f"{WASM.name} does not match the sha256 in {MANIFEST.name}")
    if manifest["sources_sha256"] != sources_sha256():
        problems.append(
            "the guest's sources changed since tract_onnx.wasm was built: "
            "rebuild it with scripts/build_wasm.sh (make wasm) and commit both"
        )
    for p in problems:
        print(f"wasm manifest: {p}", file=sys.stderr)
    if not problems:
        module, tract = manifest["sha256"][:16], manifest["tract_version"]
        print(f"wasm manifest: ok (module {module}, tract {tract})")
    return 1 if problems else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("write")
    w.add_argument("--rustc", required=True)
    w.add_argument("--packages", required=True)
    w.add_argument("--rustflags", required=True)
    w.add_argument("--build-std", required=True)
    sub.add_parser("check")
    args = parser.parse_args()
    if args.cmd == "write":
        write(args)
        return 0
    return check()


if __name__ == "__main__":
    sys.exit(main())
