"""onnxruntime's SessionOptions and RunOptions, where they mean something in a sandbox.

A script written for onnxruntime sets these; wasmhost accepts every attribute
onnxruntime documents for them, applies the ones that mean something here (the pool
size, a run's own timeout) and keeps the rest, which tune onnxruntime's own threads,
arenas and logs. An attribute onnxruntime does not have is an AttributeError, so a
typo is not silently ignored.
"""

from __future__ import annotations

import enum
from typing import Any, ClassVar

from ..errors import InvalidArgument
from .limits import Limits


class GraphOptimizationLevel(enum.IntEnum):
    """onnxruntime's levels; tract always optimises a model fully."""

    ORT_DISABLE_ALL = 0
    ORT_ENABLE_BASIC = 1
    ORT_ENABLE_EXTENDED = 2
    ORT_ENABLE_LAYOUT = 3
    ORT_ENABLE_ALL = 99


class ExecutionMode(enum.IntEnum):
    """onnxruntime's modes; an isolate runs a model's nodes one after the other."""

    ORT_SEQUENTIAL = 0
    ORT_PARALLEL = 1


# onnxruntime's SessionOptions attributes, and their defaults there.
_ORT_SESSION = {
    "enable_cpu_mem_arena": True,
    "enable_mem_pattern": True,
    "enable_mem_reuse": True,
    "enable_profiling": False,
    "execution_mode": None,
    "execution_order": None,
    "graph_optimization_level": None,
    "inter_op_num_threads": 0,
    "intra_op_num_threads": 0,
    "log_severity_level": 2,
    "log_verbosity_level": 0,
    "logid": "",
    "optimized_model_filepath": "",
    "profile_file_prefix": "onnxruntime_profile_",
    "use_deterministic_compute": False,
}

# onnxruntime's RunOptions attributes, and their defaults there.
_ORT_RUN = {
    "log_severity_level": 2,
    "log_verbosity_level": 0,
    "logid": "",
    "only_execute_path_to_fetches": False,
    "terminate": False,
    "training_mode": False,
}


class _Options:
    _names: ClassVar[dict[str, Any]] = {}

    def __init__(self, **values: Any) -> None:
        for name, default in self._names.items():
            object.__setattr__(self, name, default)
        for name, value in values.items():
            setattr(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in self._names:
            raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")
        object.__setattr__(self, name, value)

    def __repr__(self) -> str:
        changed = {n: getattr(self, n) for n, d in self._names.items() if getattr(self, n) != d}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in changed.items())})"


class SessionOptions(_Options):
    """onnxruntime's SessionOptions, plus wasmhost's `limits` and `pool_size`.

    Applied here: `limits` (memory, time and fuel of each isolate), `pool_size` (most
    isolates at once; default the CPU count), and `inter_op_num_threads`, which sets
    `pool_size` when `pool_size` is not given (one isolate runs one call at a time, on
    one thread: that is the parallelism a session has). The others are accepted and
    kept; `optimized_model_filepath` and `enable_profiling` are refused when set, as
    wasmhost writes no files.
    """

    _names: ClassVar[dict[str, Any]] = {**_ORT_SESSION, "limits": None, "pool_size": None}

    def __init__(self, **values: Any) -> None:
        object.__setattr__(self, "_config", {})
        super().__init__(**values)

    def add_session_config_entry(self, key: str, value: str) -> None:
        """Kept, as onnxruntime keeps it; no entry changes what wasmhost does."""
        self._config[str(key)] = str(value)

    def get_session_config_entry(self, key: str) -> str:
        return self._config[key]

    def resolve(self) -> tuple[Limits | None, int | None]:
        """The limits and pool size these options set (None: the session's default).

        Raises:
            InvalidArgument: an option that wasmhost cannot honour, or a bad value.
        """
        if self.limits is not None and not isinstance(self.limits, Limits):
            raise InvalidArgument(f"SessionOptions.limits must be a Limits, not {self.limits!r}")
        if self.optimized_model_filepath:
            raise InvalidArgument(
                "SessionOptions.optimized_model_filepath: wasmhost writes no files"
            )
        if self.enable_profiling:
            raise InvalidArgument("SessionOptions.enable_profiling: wasmhost has no profiler")
        pool = self.pool_size
        threads = self.inter_op_num_threads
        if pool is None and isinstance(threads, int) and not isinstance(threads, bool):
            pool = threads if threads > 0 else None
        return self.limits, pool


class RunOptions(_Options):
    """onnxruntime's RunOptions, plus a run's own `timeout` and `fuel`.

    `timeout` (seconds) and `fuel` (instructions) replace the session's limits for one
    run; a session created without a timeout (or without fuel) cannot be given one per
    run, since its code was compiled without the checks. `terminate = True` refuses the
    run before it starts. The others are accepted and kept.
    """

    _names: ClassVar[dict[str, Any]] = {**_ORT_RUN, "timeout": None, "fuel": None}
