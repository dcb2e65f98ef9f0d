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
from .isolate import RunStats
from .limits import Limits
from .options import ExecutionMode, GraphOptimizationLevel, RunOptions, SessionOptions
from .pool import PoolStats
from .providers import get_available_providers, get_device
from .session import InferenceSession, ModelMetadata, NodeArg

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
