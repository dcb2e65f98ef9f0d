"""wasmhost: run untrusted ONNX models in sandboxed WebAssembly isolates.

import wasmhost
sess = wasmhost.InferenceSession("model.onnx", limits=wasmhost.Limits(memory="512MiB"))
outputs = sess.run(None, {"x": array})
"""

from importlib import metadata as _metadata

from .errors import (
    AlreadyExists,
    FuelExhausted,
    GuestCrash,
    GuestProtocolError,
    InvalidArgument,
    InvalidInput,
    InvalidModel,
    InvalidName,
    MemoryLimitExceeded,
    NotFound,
    RegistryCorrupt,
    SnapshotUnsupported,
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
    "AlreadyExists",
    "Client",
    "ExecutionMode",
    "FuelExhausted",
    "GraphOptimizationLevel",
    "GuestCrash",
    "GuestProtocolError",
    "InferenceSession",
    "InvalidArgument",
    "InvalidInput",
    "InvalidModel",
    "InvalidName",
    "Limits",
    "MemoryLimitExceeded",
    "ModelMetadata",
    "NodeArg",
    "NotFound",
    "PoolStats",
    "Registry",
    "RegistryCorrupt",
    "RunOptions",
    "RunStats",
    "SessionOptions",
    "SnapshotUnsupported",
    "TimeoutExceeded",
    "UnsupportedModel",
    "WasmHostError",
    "__version__",
    "get_available_providers",
    "get_device",
]


def __getattr__(name: str) -> object:
    # `from wasmhost import backend`: the onnx Backend lives in tools/, and is imported
    # only when asked for (it imports onnx's backend machinery); so is the Registry.
    import importlib

    if name == "backend":
        return importlib.import_module(".tools.backend", __name__)
    if name == "Registry":  # imported when asked for: it brings SQLAlchemy
        return importlib.import_module(".registry.registry", __name__).Registry
    if name == "Client":  # a remote registry: it brings httpx
        return importlib.import_module(".client", __name__).Client
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
