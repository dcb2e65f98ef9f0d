"""Shared by the registry's tests: small models with distinct bytes, and the stores."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from conftest import f32, make_model
from onnx import helper, numpy_helper


def add_model(k: float, n: int = 4) -> bytes:
    """y = x + k, for x float32 [batch, n]: a distinct model (and blob) per k."""
    c = numpy_helper.from_array(np.full((n,), k, np.float32), "k")
    return make_model(
        [helper.make_node("Add", ["x", "k"], ["y"])],
        [f32("x", ["batch", n])],
        [f32("y", ["batch", n])],
        [c],
    )


def blob_files(root: Path) -> dict[str, bytes]:
    """Every visible blob of a local store, by digest (temporary files excluded)."""
    base = root / "sha256"
    return {p.name: p.read_bytes() for p in base.rglob("*") if p.is_file()} if base.exists() else {}


def assert_blobs_whole(root: Path) -> None:
    """No blob is visible under a digest its bytes do not have (no half-written blob)."""
    for name, data in blob_files(root).items():
        assert hashlib.sha256(data).hexdigest() == name, f"blob {name[:12]} is not whole"
