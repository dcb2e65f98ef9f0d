"""An isolate: one wasmtime Store and Instance of the guest, with one model loaded.

An isolate is held to its `Limits` (memory cap, epoch deadline, fuel), granted
no WASI capability (no files, environment, arguments or sockets), and has its
stdout and stderr captured into bounded buffers. It is not thread-safe: one
caller at a time (the session's pool sees to that). After a trap its state is
unknown: it is marked dead and must be replaced.
"""

from __future__ import annotations

import ctypes
import enum
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import wasmtime

from ..errors import (
    BY_ABI_CODE,
    GuestProtocolError,
    MemoryLimitExceeded,
    WasmHostError,
)
from . import wire
from .abi import ABI_FUNCTIONS, ABI_VERSION, CELL, OPTIONAL_FUNCTIONS
from .engine import TICK_SECONDS, Engine, EngineConfig
from .fastcall import Export
from .limits import Limits, format_size
from .stdio import OPEN, Capture, Sink
from .traps import Budgets, name_trap


class Default(enum.Enum):
    """The type of `DEFAULT`: "the limits' value", where None means "no limit"."""

    DEFAULT = "default"


DEFAULT = Default.DEFAULT
#: Request buffers up to this size stay allocated in the guest between calls.
_KEEP_BUFFER = 1 << 20
#: Fuel given to `_initialize` and ABI checks when runs are metered (tract's start-up).
_SETUP_FUEL = 1 << 40
#: Deadline floor (seconds) for instantiation and `_initialize`, which run no model code.
_SETUP_SECONDS = 10.0


@dataclass(frozen=True)
class RunStats:
    """What one guest call cost.

    Attributes:
        wall_time: seconds spent in the call, host-side work included.
        fuel_consumed: instructions metered, or None when fuel is off.
        peak_memory: bytes of guest linear memory (it never shrinks, so this is its peak).
    """

    wall_time: float
    fuel_consumed: int | None
    peak_memory: int


@dataclass(frozen=True)
class Loaded:
    """A build of the guest whose instances start initialised with a model loaded (a
    snapshot's, see `snapshot.py`), compiled for the same engine and linked the same way.

    Attributes:
        pre: its instance-pre (linked to the engine's WASI, granting nothing).
        signature: what loading the model answered.
        cell: the result cell's address (`wh_result_cell`), or None.
        memory: bytes of linear memory its instances start with (the memory limit counts them).
        buffer: the request buffer its instances start with (address, capacity), as an
            isolate keeps it after loading; (0, 0) for none.
        abi_minor: the guest's revision of ABI 1 (`wh_abi_minor`), asked when it loaded.
    """

    pre: wasmtime.InstancePre
    signature: wire.LoadResult
    cell: int | None
    memory: int
    buffer: tuple[int, int] = (0, 0)
    abi_minor: int = 0


def engine_for(limits: Limits, module: Path | None = None) -> Engine:
    """The engine isolates under `limits` run on: fuel metering and deadline checks are
    compiled in only when the limits need them.

    Raises what `Engine.get` raises.
    """
    return Engine.get(
        EngineConfig(
            fuel=limits.fuel is not None or limits.load_fuel is not None,
            epoch=limits.timeout is not None,
        ),
        module,
    )


class Isolate:
    """The guest instantiated under `limits`, with `model` loaded.

    `module` is the guest module's path (default: the bundled one); `engine`, if given,
    is used as is. `pre`, if given, is instantiated instead of the engine's guest (another
    build of it, for the same engine). With `loaded`, the isolate is spawned from a
    snapshot: `loaded.pre` is instantiated, and neither initialised nor given `model`.

    Raises:
        InvalidModel, UnsupportedModel: the guest refused the model.
        MemoryLimitExceeded, TimeoutExceeded, FuelExhausted, GuestCrash: loading trapped.
        GuestProtocolError: the guest broke ABI v1.
    """

    def __init__(
        self,
        model: bytes,
        limits: Limits,
        engine: Engine | None = None,
        module: Path | None = None,
        *,
        pre: wasmtime.InstancePre | None = None,
        loaded: Loaded | None = None,
    ) -> None:
        self.limits = limits
        self.engine = engine or engine_for(limits, module)
        self.dead = False
        self.last_stats: RunStats | None = None
        self._buffer = (0, 0)  # (guest pointer, capacity) of the kept request buffer
        # Guest memory as a memoryview, and its host address; see `_guest_memory`.
        self._mem = memoryview(b"")
        self._mem_base = 0
        self.stdout = Capture(int(limits.max_stdio))
        self.stderr = Capture(int(limits.max_stdio))
        self.store = wasmtime.Store(self.engine.wasmtime)
        self.store.set_limits(memory_size=int(limits.memory))
        wasi = wasmtime.WasiConfig()  # nothing granted: no preopens, env or args
        wasi.stdout_custom = Sink(self.stdout)
        wasi.stderr_custom = Sink(self.stderr)
        self.store.set_wasi(wasi)
        OPEN.add(self)
        try:
            if loaded is None:
                self._start(model, pre or self.engine.pre)
            else:
                self._spawn(loaded)
        except BaseException:
            self.close()  # free the guest's memory now, not at garbage collection
            raise

    def _instantiate(self, pre: wasmtime.InstancePre, optional: tuple[str, ...] = ()) -> None:
        try:
            instance = pre.instantiate(self.store)
        except (wasmtime.Trap, wasmtime.WasmtimeError) as e:
            raise self._trap(e, "instantiating the guest") from None
        self.exports = exports = instance.exports(self.store)
        self.memory = exports["memory"]
        _expect_type(self.memory, wasmtime.Memory, "memory")
        self._fn: dict[str, Export] = {}
        for name, (params, results) in (ABI_FUNCTIONS | OPTIONAL_FUNCTIONS).items():
            if (name in OPTIONAL_FUNCTIONS or name in optional) and exports.get(name) is None:
                continue
            _expect_type(exports[name], wasmtime.Func, name)
            self._fn[name] = Export(self.store, exports[name], params, results)

    def _spawn(self, loaded: Loaded) -> None:
        # A snapshot runs no code at instantiation (no start function), and exports no
        # `_initialize`: its initialisation ran once, before the snapshot was taken.
        if loaded.memory > int(self.limits.memory):
            self.dead = True
            raise MemoryLimitExceeded(
                f"the model's snapshot starts with {format_size(loaded.memory)} of memory, "
                f"over the {format_size(int(self.limits.memory))} memory limit"
            )
        self._arm(_SETUP_FUEL, self.limits.timeout, floor=_SETUP_SECONDS)
        self._instantiate(loaded.pre, optional=("_initialize",))
        size = self.memory.data_len(self.store)
        self._cell = None
        if loaded.cell is not None:
            # Memory never shrinks: in bounds now, always.
            self._range(loaded.cell, CELL.size, size)
            self._cell = loaded.cell
        if loaded.buffer[0]:
            self._range(*loaded.buffer, size)
            self._buffer = loaded.buffer
        self.signature = loaded.signature
        self.abi_minor = loaded.abi_minor

    def _start(self, model: bytes, pre: wasmtime.InstancePre) -> None:
        # Instantiating and initialising run the guest's own code, not the model's: a
        # floor on their deadline keeps a short timeout from failing them on a busy host.
        self._arm(_SETUP_FUEL, self.limits.timeout, floor=_SETUP_SECONDS)
        self._instantiate(pre)
        self._guard(self._fn["_initialize"], "initializing the guest")
        version = self._guard(self._fn["wh_abi_version"], "asking its ABI")
        if version != ABI_VERSION:
            self.dead = True
            raise GuestProtocolError(f"the guest speaks ABI {version!r}, the host {ABI_VERSION}")
        #: The guest's revision of ABI 1 (0 if it does not say): what it can exchange.
        self.abi_minor = 0
        if "wh_abi_minor" in self._fn:
            minor = self._guard(self._fn["wh_abi_minor"], "asking its ABI revision")
            if not isinstance(minor, int) or minor < 0:
                self.dead = True
                raise GuestProtocolError(f"the guest gives ABI revision {minor!r}")
            self.abi_minor = minor
        self._cell: int | None = None
        if "wh_result_cell" in self._fn:
            cell = self._guard(self._fn["wh_result_cell"], "asking for its result cell")
            # Memory never shrinks: in bounds now, always.
            self._range(cell, CELL.size, len(self._guest_memory()))
            self._cell = cell & 0xFFFFFFFF
        request = wire.encode_load(model, self.limits.plan_cache)
        # Loading has a budget of its own: typing and optimising a model takes far more
        # instructions than running a small one.
        response = self._call("wh_load", request, "loading", self.limits.timeout, self._load_fuel)
        self.signature = wire.load_result(response)

    @property
    def _load_fuel(self) -> int:
        return _SETUP_FUEL if self.limits.load_fuel is None else self.limits.load_fuel

    def close(self) -> None:
        """Frees the store (and the guest's memory) now rather than at garbage collection."""
        self.dead = True
        self._mem = memoryview(b"")  # the memory goes with the store
        self.store.close()
        OPEN.discard(self)

    # --- calls ------------------------------------------------------------

    def run(
        self,
        inputs: list[tuple[str, np.ndarray]],
        outputs: list[str],
        timeout: float | Default | None = DEFAULT,
        fuel: int | Default | None = DEFAULT,
    ) -> list[np.ndarray]:
        """Runs the model; `inputs` are C-contiguous native-endian arrays (the session checks).

        `timeout` and `fuel` override the limits' for this run.

        Raises:
            InvalidInput, UnsupportedModel: the guest refused the inputs.
            MemoryLimitExceeded, TimeoutExceeded, FuelExhausted, GuestCrash: the run trapped.
            GuestProtocolError: the guest broke ABI v1.
        """
        timeout = self.limits.timeout if timeout is DEFAULT else timeout
        fuel = self.limits.fuel if fuel is DEFAULT else fuel
        request = wire.encode_run(inputs, outputs)
        response = self._call("wh_run", request, "running the model", timeout, fuel)
        views = wire.run_result(response, outputs, self._payload)
        return [view.to_array() for view in views]

    def _call(
        self,
        fn: str,
        request: list[wire.Segment],
        what: str,
        timeout: float | None,
        fuel: int | None,
    ) -> dict:
        if self.dead:
            raise GuestProtocolError("this isolate trapped before and cannot be used")
        start = time.perf_counter()
        self.stdout.clear()
        self.stderr.clear()
        fuel = self._arm(fuel, timeout)
        size = wire.segments_size(request)
        ptr = self._request_buffer(size, what)
        self._write(ptr, size, request)
        status = self._guard(lambda: self._fn[fn](ptr, size), what)
        if self._buffer[1] > _KEEP_BUFFER:
            self._free_buffer(what)
        if self._cell is None:
            rptr = self._guard(self._fn["wh_result_ptr"], what)
            rlen = self._guard(self._fn["wh_result_len"], what)
            memory = self._guest_memory()
        else:
            memory = self._guest_memory()
            rptr, rlen = CELL.unpack_from(memory, self._cell)
        start_at, end_at = self._range(rptr, rlen, len(memory))
        response = wire.decode(memory[start_at:end_at])
        consumed = None if fuel is None else fuel - self.store.get_fuel()
        self.last_stats = RunStats(time.perf_counter() - start, consumed, len(memory))
        if status != 0:
            err = wire.error_of(response)
            known = BY_ABI_CODE.get(err.code)
            if known is None:
                raise GuestProtocolError(f"guest error {err.code}: {err.message}")
            raise known(err.message)
        return response

    def _request_buffer(self, size: int, what: str) -> int:
        """A guest buffer for a request; small ones are kept, saving two calls per run."""
        ptr, capacity = self._buffer
        if ptr and size <= capacity:
            return ptr
        self._free_buffer(what)
        capacity = max(size, 4096)
        ptr = self._guard(lambda: self._fn["wh_alloc"](capacity), what)
        if ptr == 0:
            raise MemoryLimitExceeded(
                f"{what}: the guest cannot allocate {format_size(size)} for the request "
                f"under its {format_size(int(self.limits.memory))} memory limit"
            )
        self._buffer = (ptr, capacity)
        return ptr

    def _free_buffer(self, what: str) -> None:
        ptr, capacity = self._buffer
        if ptr:
            self._buffer = (0, 0)
            self._guard(lambda: self._fn["wh_free"](ptr, capacity), what)

    def _arm(self, fuel: int | None, timeout: float | None, floor: float = 0.0) -> int | None:
        """Sets the deadline and fuel for the next call; returns the fuel given."""
        if timeout is not None:
            timeout = max(timeout, floor)
        # What the trap messages name: the budgets this call was given.
        self._armed = (timeout, fuel)
        # A tick may come just after arming: one more tick keeps the deadline a floor.
        ticks = (1 << 62) if timeout is None else math.ceil(timeout / TICK_SECONDS) + 1
        if self.engine.config.epoch:
            self.store.set_epoch_deadline(ticks)
        if self.engine.config.fuel:
            fuel = fuel if fuel is not None else _SETUP_FUEL
            self.store.set_fuel(fuel)
            return fuel
        return None

    def _guard(self, call: Any, what: str) -> Any:
        try:
            result = call()
        except (wasmtime.Trap, wasmtime.WasmtimeError) as e:
            raise self._trap(e, what) from None
        if not isinstance(result, int) and result is not None:
            self.dead = True
            raise GuestProtocolError(f"{what}: the guest returned {type(result).__name__}")
        return result

    def _trap(self, e: Exception, what: str) -> WasmHostError:
        """Names a trap (see `traps.name_trap`); the isolate is dead after one."""
        self.dead = True
        timeout, fuel = getattr(self, "_armed", (self.limits.timeout, self.limits.fuel))
        return name_trap(
            getattr(e, "trap_code", None),
            str(e),
            self.stderr.text(),
            what,
            Budgets(int(self.limits.memory), timeout, fuel, self.limits.fuel),
        )

    # --- memory -----------------------------------------------------------

    def _guest_memory(self) -> memoryview:
        """Guest memory as a memoryview, valid until the next guest call.

        Rebuilt only when the memory's size changed: wasmtime moves a linear memory only
        to grow it, and memory never shrinks, so the same size means the same place.
        """
        size = self.memory.data_len(self.store)
        if size != len(self._mem):
            self._mem_base = ctypes.addressof(self.memory.data_ptr(self.store).contents)
            view = memoryview((ctypes.c_ubyte * size).from_address(self._mem_base))
            self._mem = view.cast("B")
        return self._mem

    def _range(self, ptr: int, length: int, size: int) -> tuple[int, int]:
        """Guest range [ptr, ptr+length) as slice bounds of a memory of `size` bytes."""
        if not (isinstance(ptr, int) and isinstance(length, int)):
            raise GuestProtocolError("the guest returned a non-integer pointer or length")
        # ABI integers are i32: read them as unsigned addresses.
        ptr &= 0xFFFFFFFF
        length &= 0xFFFFFFFF
        if ptr + length > size:
            self.dead = True
            raise GuestProtocolError(
                f"the guest pointed at bytes {ptr}..{ptr + length}, past its memory ({size})"
            )
        return ptr, ptr + length

    def _write(self, ptr: int, size: int, segments: list[wire.Segment]) -> None:
        memory = self._guest_memory()
        at, end = self._range(ptr, size, len(memory))
        for seg in segments:
            if isinstance(seg, np.ndarray):
                # Payloads big enough to travel apart (wire.INLINE_PAYLOAD): memmove them.
                n = seg.nbytes
                if n:
                    ctypes.memmove(self._mem_base + at, seg.ctypes.data, n)
            else:
                n = len(seg)
                memory[at : at + n] = seg
            at += n
        assert at == end, "segments_size disagrees with the segments"

    def _payload(self, data: wire.GuestBytes) -> memoryview:
        """An output the last call left in guest memory: a view, valid until the next call."""
        start, end = self._range(data.address, data.length, len(self._mem))
        return self._mem[start:end]


def _expect_type(obj: Any, kind: type, name: str) -> None:
    if not isinstance(obj, kind):
        raise GuestProtocolError(f"the guest's export '{name}' is not a {kind.__name__}")
