"""Latency of one model in wasmhost, next to onnxruntime (one thread) when it is installed.

`wasmhost bench MODEL` is the quick, per-model check; `scripts/bench.py` is the full
benchmark against native tract and onnxruntime-web (docs/benchmarks.md).
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidInput
from ..runtime.limits import Limits, format_size
from ..runtime.session import InferenceSession, NodeArg

#: Inputs by name, or a function making them from a session's inputs.
Feeds = dict[str, np.ndarray] | Callable[[list[NodeArg]], dict[str, np.ndarray]]


@dataclass
class Timing:
    """Seconds per run, after warm-up."""

    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def p95(self) -> float:
        return float(np.percentile(self.samples, 95))

    @property
    def best(self) -> float:
        return min(self.samples)


@dataclass
class BenchResult:
    """What `bench` measured; `peer` is onnxruntime's timing, or None without it."""

    session_seconds: float
    first_run_seconds: float
    wasmhost: Timing
    peer: Timing | None
    peer_name: str | None
    peak_memory: int | None


#: Most bytes of made-up inputs: their shapes come from the untrusted model.
MAX_SAMPLE_BYTES = 256 * 1024**2


def sample_inputs(
    inputs: list[NodeArg], seed: int = 0, max_bytes: int = MAX_SAMPLE_BYTES
) -> dict[str, np.ndarray]:
    """Inputs shaped as declared (symbolic or unknown dims as 1): floats from a normal
    distribution, integers zero (they are often indices), booleans random.

    Raises:
        InvalidInput: the declared shapes add up to more than `max_bytes` (checked before
            anything is allocated: a 63-byte model can declare terabytes).
    """
    rng = np.random.default_rng(seed)
    planned = []
    total = 0
    for arg in inputs:
        shape = tuple(d if isinstance(d, int) else 1 for d in (arg.shape or []))
        dtype = arg.dtype if arg.dtype is not None else np.dtype(np.float32)
        total += math.prod(shape) * dtype.itemsize  # Python ints: no overflow
        if total > max_bytes:
            raise InvalidInput(
                f"made-up input '{arg.name}' of shape {list(shape)} ({dtype.name}) takes the "
                f"made-up inputs over {format_size(max_bytes)}; give the inputs yourself"
            )
        planned.append((arg.name, shape, dtype))
    feeds = {}
    for name, shape, dtype in planned:
        if dtype.kind == "f":
            feeds[name] = rng.standard_normal(shape).astype(dtype)
        elif dtype.kind == "b":
            feeds[name] = rng.random(shape) > 0.5
        else:
            feeds[name] = np.zeros(shape, dtype)
    return feeds


def onnxruntime_session(model: bytes | str | Path) -> Any:
    """onnxruntime on one thread, CPU provider, logging only fatal errors: the peer that
    wasmhost's benchmarks and conformance runs measure against.

    Raises:
        ImportError: onnxruntime is not installed.
        Exception: whatever onnxruntime raises for a model it cannot load.
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    opts.log_severity_level = 4  # its refusals are results for the caller, not log noise
    source = str(model) if isinstance(model, Path) else model
    return ort.InferenceSession(source, opts, providers=["CPUExecutionProvider"])


def _onnxruntime(model: str | Path | bytes) -> Callable[[dict[str, np.ndarray]], object] | None:
    try:
        sess = onnxruntime_session(model if isinstance(model, bytes) else Path(model))
    except Exception:  # not installed, or it cannot run the model: no peer to show
        return None
    return lambda feeds: sess.run(None, feeds)


def bench(
    model: str | Path | bytes,
    feeds: Feeds | None = None,
    rounds: int = 20,
    warmup: int = 3,
    limits: Limits | None = None,
    compare: bool = True,
    module: Path | None = None,
) -> BenchResult:
    """Times session creation, the first run (which plans for the shapes) and `rounds`
    runs after `warmup`; onnxruntime's runs interleave with wasmhost's when `compare`.
    `feeds` is the inputs, or a function making them from the session's inputs (the
    default: `sample_inputs`).

    Raises what `InferenceSession` and its `run` raise.
    """
    start = time.perf_counter()
    session = InferenceSession(model, limits=limits, pool_size=1, module=module)
    session_seconds = time.perf_counter() - start
    if feeds is None or callable(feeds):
        feeds = (feeds or sample_inputs)(session.get_inputs())
    start = time.perf_counter()
    session.run(None, feeds)
    first_run = time.perf_counter() - start
    peer = _onnxruntime(model) if compare else None
    mine, theirs = Timing(), Timing() if peer else None
    for i in range(warmup + rounds):
        start = time.perf_counter()
        session.run(None, feeds)
        took = time.perf_counter() - start
        if i >= warmup:
            mine.samples.append(took)
        if peer and theirs is not None:
            start = time.perf_counter()
            peer(feeds)
            if i >= warmup:
                theirs.samples.append(time.perf_counter() - start)
    stats = session.last_run_stats
    session.close()
    return BenchResult(
        session_seconds,
        first_run,
        mine,
        theirs,
        "onnxruntime (1 thread)" if theirs else None,
        stats.peak_memory if stats else None,
    )
