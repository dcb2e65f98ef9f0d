"""The exceptions wasmhost raises, each with the exit code the CLI gives it.

Every error a model, an input or a guest can cause is a `WasmHostError`; the
CLI prints its message on one line and exits with its `exit_code`.
"""

from __future__ import annotations


class WasmHostError(Exception):
    """Root of every wasmhost error."""

    exit_code = 1


class InvalidArgument(WasmHostError, ValueError):
    """A host-side argument is invalid: a limit, a path, an option."""

    exit_code = 2


class InvalidModel(WasmHostError):
    """The bytes are not a valid ONNX model, or the model exceeds `max_model_size`."""

    exit_code = 3


class UnsupportedModel(WasmHostError):
    """A valid ONNX model that the sandbox's interpreter (tract) cannot run."""

    exit_code = 4


class InvalidInput(WasmHostError, ValueError):
    """An input feed does not fit the model: name, dtype, rank, shape or values."""

    exit_code = 5


class MemoryLimitExceeded(WasmHostError):
    """The isolate needed more memory than its limit; it was discarded."""

    exit_code = 6


class TimeoutExceeded(WasmHostError, TimeoutError):
    """A guest call ran past its wall-clock deadline; the isolate was discarded."""

    exit_code = 7


class FuelExhausted(WasmHostError):
    """A guest call used up its instruction budget; the isolate was discarded."""

    exit_code = 8


class GuestCrash(WasmHostError):
    """The guest trapped (a panic in the interpreter, say); the isolate was discarded.

    `panic` holds the guest's panic message when it printed one.
    """

    exit_code = 9

    def __init__(self, message: str, panic: str | None = None) -> None:
        super().__init__(message)
        self.panic = panic


class GuestProtocolError(WasmHostError):
    """The guest broke ABI v1: a bad pointer, a malformed or inconsistent response."""

    exit_code = 10


#: Exit code of the CLI for a file that cannot be read or written.
EXIT_FILE_ERROR = 11
#: Exit code of the CLI for an error of no class above (a bug: please report it).
EXIT_INTERNAL = 70

ALL_ERRORS: tuple[type[WasmHostError], ...] = (
    WasmHostError,
    InvalidArgument,
    InvalidModel,
    UnsupportedModel,
    InvalidInput,
    MemoryLimitExceeded,
    TimeoutExceeded,
    FuelExhausted,
    GuestCrash,
    GuestProtocolError,
)
