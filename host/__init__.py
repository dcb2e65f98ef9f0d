"""wasmhost: run untrusted ONNX models in sandboxed WebAssembly isolates.

import wasmhost
sess = wasmhost.InferenceSession("model.onnx", limits=wasmhost.Limits(memory="512MiB"))
outputs = sess.run(None, {"x": array})
"""

from importlib import metadata as _metadata

from .errors import (
    FuelExhausted,
    GuestCrash,
    GuestProtocolError,
    InvalidArgument,
    InvalidInput,
    InvalidModel,
    MemoryLimitExceeded,
    TimeoutExceeded,
    UnsupportedModel,
    WasmHostError,
)
from .runtime.isolate import RunStats
from .runtime.limits import Limits
from .runtime.options import ExecutionMode, GraphOptimizationLevel, RunOptions, SessionOptions
from .runtime.pool import PoolStats
from .runtime.providers import get_available_providers, get_device
from .runtime.session import InferenceSession, ModelMetadata, NodeArg

try:
    __version__ = _metadata.version("wasmhost")
except _metadata.PackageNotFoundError:  # a checkout that was never installed
    __version__ = "0+unknown"

__all__ = [
    "ExecutionMode",
    "FuelExhausted",
    "GraphOptimizationLevel",
    "GuestCrash",
    "GuestProtocolError",
    "InferenceSession",
    "InvalidArgument",
    "InvalidInput",
    "InvalidModel",
    "Limits",
    "MemoryLimitExceeded",
    "ModelMetadata",
    "NodeArg",
    "PoolStats",
    "RunOptions",
    "RunStats",
    "SessionOptions",
    "TimeoutExceeded",
    "UnsupportedModel",
    "WasmHostError",
    "__version__",
    "get_available_providers",
    "get_device",
]


def __getattr__(name: str) -> object:
    # `from wasmhost import backend`: the onnx Backend lives in tools/, and is imported
    # only when asked for (it imports onnx's backend machinery).
    if name == "backend":
        import importlib

        return importlib.import_module(".tools.backend", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
