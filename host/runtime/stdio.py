"""The guest's stdout and stderr: bounded captures, and the sinks wasmtime writes them
through, all closed before the interpreter finalizes."""

from __future__ import annotations

import atexit
import threading
import weakref
from typing import Protocol


class Closable(Protocol):
    def close(self) -> None: ...


class Capture:
    """Keeps the last `limit` bytes a guest stream wrote, whatever it floods."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.buf = bytearray()
        self.total = 0

    def write(self, data: bytes) -> None:
        self.total += len(data)
        self.buf += data[-self.limit :]
        if len(self.buf) > self.limit:
            del self.buf[: len(self.buf) - self.limit]

    def text(self) -> str:
        return self.buf.decode("utf-8", "replace")

    def clear(self) -> None:
        self.buf.clear()


# wasmtime calls the guest's stdout/stderr sinks, and releases them, from its own
# worker threads. A call into Python from such a thread once the interpreter is
# finalizing kills the thread mid-Rust-frame, which aborts the process (seen: exit
# code 134 at exit). So at exit, close every store while Python still runs and wait
# until wasmtime has released every sink.
#: Stores to close at exit (isolates register themselves).
OPEN: weakref.WeakSet[Closable] = weakref.WeakSet()
_SINKS = threading.Condition()
_sinks_held = 0


class Sink:
    """The callable wasmtime holds for one guest stream; counts itself until released."""

    def __init__(self, capture: Capture) -> None:
        global _sinks_held
        self.capture = capture
        with _SINKS:
            _sinks_held += 1

    def __call__(self, data: bytes) -> None:
        self.capture.write(data)

    def __del__(self) -> None:
        global _sinks_held
        with _SINKS:
            _sinks_held -= 1
            _SINKS.notify_all()


@atexit.register
def _close_all() -> None:
    for store in list(OPEN):
        store.close()
    with _SINKS:
        _SINKS.wait_for(lambda: _sinks_held == 0, timeout=5.0)
