"""One builder per catalog entry, each a module of this package.

A builder module exposes `NAME`, the entry's name, and `build(directory: Path) -> dict`,
which writes the entry's files (its model and its reference case) into `directory` and
returns its manifest entry without an "id" (scripts/build_catalog.py keeps the one that
catalog.json already has, or makes one). A module's top level imports the standard library
only: its heavy imports (scikit-learn, torch...) are inside `build`, so that listing the
builders, or building one entry, never imports another entry's dependencies.
"""

from __future__ import annotations

import hashlib
import importlib
import pkgutil
from pathlib import Path
from types import ModuleType
from typing import Any

PRODUCER = ("wasmhost-catalog", "1")


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def describe(path: Path) -> dict[str, Any]:
    """What the manifest records of a file: its sha256 and size."""
    return {"sha256": file_sha256(path), "size": path.stat().st_size}


def builders() -> dict[str, ModuleType]:
    """Every builder module of this package, by the name of the entry it builds."""
    found: dict[str, ModuleType] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        if module.NAME in found:
            raise RuntimeError(f"two catalog builders build {module.NAME!r}")
        found[module.NAME] = module
    return found
