"""Runtimes: the guest modules a project's models run on.

`onnx`, the tract guest bundled with wasmhost, is always there. Another runtime (a guest
built with other features, another interpreter behind ABI v1) is registered as a module:
its bytes become a blob of the registry, so every process and node sharing the registry
runs the same code, and a session loads it from a local copy checked by its sha256.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from functools import cache
from pathlib import Path

from ..runtime import engine

BUILTIN = "onnx"
BUILTIN_DESCRIPTION = "ONNX on tract, compiled to wasm32-wasip1 (bundled with wasmhost)"


@cache
def _file_sha256(path: Path, size: int, mtime: float) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def builtin() -> tuple[str, str]:
    """The bundled runtime's (version, module sha256)."""
    path = engine.module_path()
    stat = path.stat()
    manifest = engine.manifest()
    version = f"tract {manifest.get('tract_version', '?')}, ABI v{manifest.get('abi_version', 1)}"
    # The build manifest beside the module carries its digest (CI checks the two agree):
    # every command that opens a registry would otherwise hash 18 MB first.
    listed = manifest.get("sha256")
    if manifest.get("size") == stat.st_size and isinstance(listed, str) and len(listed) == 64:
        return version, listed
    return version, _file_sha256(path, stat.st_size, stat.st_mtime)


def module_file(sha256: str, read: Callable[[], bytes]) -> Path:
    """A local copy of a registered runtime's module, written from `read()` if absent.

    Copies live in the compiled-module cache directory, named by their digest, and are
    checked before use: a damaged copy is written again.
    """
    path = engine.cache_dir() / "runtimes" / f"{sha256}.wasm"
    try:
        stat = path.stat()
        if _file_sha256(path, stat.st_size, stat.st_mtime) == sha256:
            return path
    except OSError:
        pass
    data = read()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    return path
