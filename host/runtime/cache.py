"""The on-disk cache of compiled modules (the guest's, and snapshots').

Compiling the 18 MB guest takes seconds, so compiled code is kept in platformdirs' user
cache dir (or `WASMHOST_CACHE_DIR`). An entry `KEY.cwasm` is trusted only when its sidecar
`KEY.sha256` holds its sha256: the sidecar is written last, each file atomically (a
temporary file, then `os.replace`), so an entry that a crash cut short or that was damaged
since is found out and recompiled, never deserialized. A cache that cannot be written only
makes the next process slower.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path

import platformdirs


def cache_dir() -> Path:
    """Where compiled modules are cached: `WASMHOST_CACHE_DIR` or the user cache dir."""
    if env := os.environ.get("WASMHOST_CACHE_DIR"):
        return Path(env)
    return Path(platformdirs.user_cache_dir("wasmhost"))


def digest_path(entry: Path) -> Path:
    return entry.with_suffix(".sha256")


def read_entry(entry: Path) -> bytes | None:
    """The entry's bytes if its sidecar vouches for them, else None (absent, unreadable,
    cut short or damaged)."""
    try:
        data = entry.read_bytes()
        if hashlib.sha256(data).hexdigest() == digest_path(entry).read_text().strip():
            return data
    except OSError:
        pass
    return None


def write_entry(entry: Path, data: bytes) -> bool:
    """Stores `data` as the entry, its sidecar last; False if the cache cannot be written."""
    return write_atomic(entry, data) and write_atomic(
        digest_path(entry), hashlib.sha256(data).hexdigest().encode()
    )


def write_atomic(path: Path, content: bytes) -> bool:
    """Writes `path` whole or not at all; False if it cannot be written."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as f:
            f.write(content)
        os.replace(tmp, path)
        return True
    except OSError:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        return False
