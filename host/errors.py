"""The exceptions wasmhost raises. Each class carries its codes, from which every table
keyed on errors derives:

- `exit_code`: the CLI's exit status for it (the CLI prints the message on one line);
- `abi_code`: the guest ABI's error code that becomes it (`invalid_model`, ...), if any;
- `fuzz_class`: the outcome class the fuzzer records for it;
- `http_status`: the service's status for it (its body `{"error": message, "type": name}`).

Every error a model, an input or a guest can cause is a `WasmHostError`.
"""

from __future__ import annotations

from typing import ClassVar


class WasmHostError(Exception):
    """Root of every wasmhost error."""

    exit_code: ClassVar[int] = 1
    abi_code: ClassVar[str | None] = None
    fuzz_class: ClassVar[str] = "error:other"
    http_status: ClassVar[int] = 500

    @property
    def outcome(self) -> str:
        """The fuzzer's outcome class of this error."""
        return self.fuzz_class


class InvalidArgument(WasmHostError, ValueError):
    """A host-side argument is invalid: a limit, a path, an option."""

    exit_code: ClassVar[int] = 2
    http_status: ClassVar[int] = 400
    fuzz_class: ClassVar[str] = "error:invalid_argument"


class InvalidModel(WasmHostError):
    """The bytes are not a valid ONNX model, or the model exceeds `max_model_size`."""

    exit_code: ClassVar[int] = 3
    http_status: ClassVar[int] = 422
    abi_code: ClassVar[str | None] = "invalid_model"
    fuzz_class: ClassVar[str] = "error:invalid_model"


class UnsupportedModel(WasmHostError):
    """A valid ONNX model that the sandbox's interpreter (tract) cannot run."""

    exit_code: ClassVar[int] = 4
    http_status: ClassVar[int] = 422
    abi_code: ClassVar[str | None] = "unsupported_model"
    fuzz_class: ClassVar[str] = "error:unsupported_model"


class InvalidInput(WasmHostError, ValueError):
    """An input feed does not fit the model: name, dtype, rank, shape or values."""

    exit_code: ClassVar[int] = 5
    http_status: ClassVar[int] = 400
    abi_code: ClassVar[str | None] = "invalid_input"
    fuzz_class: ClassVar[str] = "error:invalid_input"


class MemoryLimitExceeded(WasmHostError):
    """The isolate needed more memory than its limit; it was discarded."""

    exit_code: ClassVar[int] = 6
    http_status: ClassVar[int] = 422
    fuzz_class: ClassVar[str] = "trap:oom"


class TimeoutExceeded(WasmHostError, TimeoutError):
    """A guest call ran past its wall-clock deadline; the isolate was discarded."""

    exit_code: ClassVar[int] = 7
    http_status: ClassVar[int] = 504
    fuzz_class: ClassVar[str] = "timeout"


class FuelExhausted(WasmHostError):
    """A guest call used up its instruction budget; the isolate was discarded."""

    exit_code: ClassVar[int] = 8
    http_status: ClassVar[int] = 422
    fuzz_class: ClassVar[str] = "fuel"


class GuestCrash(WasmHostError):
    """The guest trapped (a panic in the interpreter, say); the isolate was discarded.

    `panic` holds the guest's panic message when it printed one.
    """

    exit_code: ClassVar[int] = 9
    http_status: ClassVar[int] = 500
    fuzz_class: ClassVar[str] = "trap:crash"

    def __init__(self, message: str, panic: str | None = None) -> None:
        super().__init__(message)
        self.panic = panic

    @property
    def outcome(self) -> str:
        """`trap:panic` when the guest printed a panic, else `trap:crash`."""
        return "trap:panic" if self.panic else "trap:crash"


class GuestProtocolError(WasmHostError):
    """The guest broke ABI v1: a bad pointer, a malformed or inconsistent response."""

    exit_code: ClassVar[int] = 10
    http_status: ClassVar[int] = 502
    fuzz_class: ClassVar[str] = "protocol-error"


class SnapshotUnsupported(GuestProtocolError):
    """The guest module cannot be snapshotted: it has what a snapshot cannot capture (a
    passive data segment, several memories, a mutable global that is not an integer, a
    table its initialisation changed). Pooled isolation runs it as before."""


class NotFound(WasmHostError, LookupError):
    """No project, model, version, alias, runtime or catalog entry has that name or id."""

    exit_code: ClassVar[int] = 12
    http_status: ClassVar[int] = 404


class AlreadyExists(WasmHostError):
    """A project, runtime or alias of that name exists already."""

    exit_code: ClassVar[int] = 13
    http_status: ClassVar[int] = 409


class InvalidName(WasmHostError, ValueError):
    """A name or reference does not match its pattern (the message shows it)."""

    exit_code: ClassVar[int] = 14
    http_status: ClassVar[int] = 400


class RegistryCorrupt(WasmHostError):
    """The registry's stored data is damaged (a blob whose sha256 differs from its record),
    or was written by a newer wasmhost than this one."""

    exit_code: ClassVar[int] = 15
    http_status: ClassVar[int] = 500


class Unauthorized(WasmHostError):
    """The service wants a valid token (`Authorization: Bearer T`), and got none or another."""

    exit_code: ClassVar[int] = 16
    http_status: ClassVar[int] = 401


class Forbidden(Unauthorized):
    """The token is valid, but its role or project does not allow this."""

    exit_code: ClassVar[int] = 17
    http_status: ClassVar[int] = 403


class Overloaded(WasmHostError):
    """The model's queue is full (or the server is stopping): retry after a while."""

    exit_code: ClassVar[int] = 18
    http_status: ClassVar[int] = 429


class Unavailable(WasmHostError):
    """No replica could run the request: the one running it died, or none answered in
    time (a cluster deployment, `wasmhost serve --ray`). Retry: another replica takes it."""

    exit_code: ClassVar[int] = 19
    http_status: ClassVar[int] = 503


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
    SnapshotUnsupported,
    NotFound,
    AlreadyExists,
    InvalidName,
    RegistryCorrupt,
    Unauthorized,
    Forbidden,
    Overloaded,
    Unavailable,
)

#: Guest ABI error code -> the error it becomes.
BY_ABI_CODE: dict[str, type[WasmHostError]] = {
    cls.abi_code: cls for cls in ALL_ERRORS if cls.abi_code is not None
}
