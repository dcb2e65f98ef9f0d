"""Snapshots: a model loaded once, and isolates spawned from it with the model loaded.

Wizer's method, in Python over wasmtime-py: the guest is instrumented (its mutable globals,
such as the stack pointer, and its tables exported), instantiated, initialised and given
the model (and, optionally, run once at given input shapes so that their plans are
built); then its globals and the non-zero runs of its linear memory are read, and a new
module is written: the guest's code byte for byte, those values as the globals' initial
values, those runs as its data segments, its memory's initial size that of the snapshot,
and no `_initialize` export (initialisation ran once, before the snapshot). Instantiating
it is a new Store and copy-on-write mappings of the image: tens of microseconds, where
loading a model takes tens of milliseconds to seconds.

Each snapshot is a module of its own, compiled once (about as long as the guest: 10-15 s
here) and cached on disk next to the guest's compiled code (`cache.py`), keyed by the
guest's sha256, the load request (the model's bytes and load options), the planned
shapes, the wasmtime version and the engine's configuration. Its metadata (what loading
answered, the memory size) sits beside it, bound to the compiled code by its sha256.

What a snapshot does not change: the guest's randomness (`random_get`) is the host's,
answered at the time of each call, never read at snapshot time; every run still gets a
fresh tract state (docs/sandbox.md); the memory limit counts the snapshot's memory, which
an isolate starts with.
"""

from __future__ import annotations

import base64
import ctypes
import dataclasses
import hashlib
import json
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import msgpack
import numpy as np
import wasmtime

from ..errors import GuestProtocolError, InvalidArgument, SnapshotUnsupported
from . import cache, wasmbin, wire
from .engine import Engine, EngineConfig
from .isolate import Isolate, Loaded, engine_for
from .limits import Limits

#: What a snapshot holds and how it is keyed; bump it when either changes.
FORMAT = 3
#: How the guest is instrumented for capturing (the instrumented build is cached per guest).
_INSTRUMENTATION = 1
#: Runs of zero bytes shorter than this stay inside a data segment (a segment's header
#: costs about 10 bytes; merging keeps the count of segments small).
_MERGE_GAP = 64
#: Most data segments a snapshot has (wasmtime accepts 100,000): gaps widen to fit.
_MAX_SEGMENTS = 20_000
_PAGE = 65536
_GLOBAL = "__wasmhost_global_{}"
_TABLE = "__wasmhost_table_{}"
_INITIALIZE = "_initialize"


@dataclass(frozen=True)
class Snapshot:
    """A model loaded in the guest, as a module whose instances start with it loaded.

    Attributes:
        loaded: what `Isolate(..., loaded=...)` spawns from.
        engine: the engine it is compiled for.
        memory: bytes of linear memory an isolate of it starts with.
        image: bytes of its data segments (the non-zero runs of that memory).
        cache_hit: whether it was loaded from the cache (else captured and compiled now).
        seconds: how long getting it took (a miss: capturing, writing, compiling, caching).
    """

    loaded: Loaded
    engine: Engine
    memory: int
    image: int
    cache_hit: bool
    seconds: float

    def spawn(self, limits: Limits) -> Isolate:
        """A fresh isolate under `limits` with the model loaded.

        Raises:
            MemoryLimitExceeded: the snapshot's memory is over `limits.memory`.
            GuestProtocolError: the snapshot is inconsistent with its metadata.
        """
        return Isolate(b"", limits, self.engine, loaded=self.loaded)


_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def get(
    model: bytes,
    limits: Limits,
    module: Path | None = None,
    *,
    shapes: Mapping[str, Sequence[int]] | None = None,
    create: bool = True,
) -> Snapshot | None:
    """The snapshot of `model` for isolates under `limits` (on the engine they need), from
    the cache, else (when `create`) captured, compiled and cached now; None if it is not
    cached and `create` is False.

    `shapes` (input name -> dims) are planned before the snapshot is taken: a model with
    symbolic dims then runs at those shapes without building their plan on every spawn.
    The model is loaded under `limits` (its memory cap and timeout; fuel is not metered).

    Raises:
        InvalidArgument: `shapes` names an unknown input or gives bad dims.
        SnapshotUnsupported: the guest module has what a snapshot cannot capture.
        And what loading the model (or running it at `shapes`) raises.
    """
    _check_shapes(shapes)
    target = engine_for(limits, module)
    key = _key(target, model, limits.plan_cache, shapes)
    with _lock(f"{key}-{target.config.tag}"):
        start = time.perf_counter()
        entry = target.cache_entry(key)
        found = _load(target, entry)
        if found is not None:
            loaded, memory, image = found
            return Snapshot(loaded, target, memory, image, True, time.perf_counter() - start)
        if not create:
            return None
        captured = capture(target.path, model, limits, shapes)
        try:
            compiled = wasmtime.Module(target.wasmtime, captured.wasm)
        except wasmtime.WasmtimeError as e:  # a bug of the writer's, named as such
            raise GuestProtocolError(f"the snapshot written is not a valid module: {e}") from e
        data = bytes(compiled.serialize())
        if cache.write_entry(entry, data):
            meta = {
                "format": FORMAT,
                "cwasm_sha256": hashlib.sha256(data).hexdigest(),
                "load": base64.b64encode(captured.response).decode(),
                "cell": captured.cell,
                "memory": captured.memory,
                "image": captured.image,
                "buffer": list(captured.buffer),
                "abi_minor": captured.abi_minor,
            }
            cache.write_atomic(entry.with_suffix(".json"), json.dumps(meta).encode())
        loaded = Loaded(
            target.linker.instantiate_pre(compiled),
            wire.load_result(msgpack.unpackb(captured.response)),
            captured.cell,
            captured.memory,
            captured.buffer,
            captured.abi_minor,
        )
        return Snapshot(
            loaded, target, captured.memory, captured.image, False, time.perf_counter() - start
        )


def _check_shapes(shapes: Mapping[str, Sequence[int]] | None) -> None:
    for name, dims in (shapes or {}).items():
        if not isinstance(dims, Sequence) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in dims
        ):
            raise InvalidArgument(f"shapes[{name!r}]: expected non-negative ints, got {dims!r}")


def _lock(name: str) -> threading.Lock:
    """One capture per snapshot at a time in this process (two sessions of one model)."""
    with _locks_guard:
        return _locks.setdefault(name, threading.Lock())


def _key(
    engine: Engine, model: bytes, plan_cache: int, shapes: Mapping[str, Sequence[int]] | None
) -> str:
    request = wire.encode_load(model, plan_cache)
    h = hashlib.sha256()
    h.update(json.dumps({"format": FORMAT, "guest": engine.sha256}).encode())
    for segment in request:
        h.update(segment if isinstance(segment, bytes) else bytes(segment))
    if shapes:
        h.update(json.dumps(sorted((k, list(v)) for k, v in shapes.items())).encode())
    return f"snapshot-{h.hexdigest()[:40]}"


def _load(engine: Engine, entry: Path) -> tuple[Loaded, int, int] | None:
    """The cached snapshot at `entry`, or None: absent, damaged or inconsistent (and then
    captured again)."""
    try:
        meta = json.loads(entry.with_suffix(".json").read_bytes())
        response = msgpack.unpackb(base64.b64decode(meta["load"]))
        if not isinstance(response, dict):
            return None
        signature = wire.load_result(response)
        cell, memory, image = meta["cell"], meta["memory"], meta["image"]
        ptr, capacity = meta["buffer"]
        minor = meta["abi_minor"]
        if meta["format"] != FORMAT or not (
            (cell is None or isinstance(cell, int))
            and all(isinstance(v, int) for v in (memory, image, ptr, capacity, minor))
        ):
            return None
        data = cache.read_entry(entry)
        if data is None or hashlib.sha256(data).hexdigest() != meta["cwasm_sha256"]:
            return None
        module = wasmtime.Module.deserialize(engine.wasmtime, data)
        pre = engine.linker.instantiate_pre(module)
    except (
        OSError,
        ValueError,  # JSON, base64 and most of msgpack's errors
        msgpack.UnpackException,
        KeyError,
        TypeError,
        GuestProtocolError,
        wasmtime.WasmtimeError,
    ):
        return None
    return Loaded(pre, signature, cell, memory, (ptr, capacity), minor), memory, image


# --- capturing ----------------------------------------------------------------------


@dataclass(frozen=True)
class Captured:
    """A snapshot taken, before compilation.

    Attributes:
        wasm: the pre-initialised module.
        response: what loading the model answered (msgpack).
        cell: the result cell's address, or None.
        memory: bytes of linear memory at the snapshot.
        image: bytes of its data segments.
        buffer: the request buffer kept (address, capacity), or (0, 0).
        abi_minor: the guest's revision of ABI 1.
    """

    wasm: bytes
    response: bytes
    cell: int | None
    memory: int
    image: int
    buffer: tuple[int, int]
    abi_minor: int


class _Capturing(Isolate):
    """An isolate of the instrumented guest, which keeps its load response and zeroes the
    request buffers it frees (the model's bytes would otherwise end up in the image)."""

    def scrub_buffer(self) -> None:
        """Zeroes the request buffer kept after loading (an isolate keeps one up to 1 MiB):
        snapshots keep it, as a pooled isolate does, but not the model's bytes in it."""
        ptr, capacity = self._buffer
        if ptr:
            start, _ = self._range(ptr, capacity, len(self._guest_memory()))
            ctypes.memset(self._mem_base + start, 0, capacity)

    response: bytes = b""

    def _call(self, fn, request, what, timeout, fuel):  # type: ignore[no-untyped-def]
        response = super()._call(fn, request, what, timeout, fuel)
        if fn == "wh_load":
            self.response = msgpack.packb(response)
        return response

    def _free_buffer(self, what: str) -> None:
        self.scrub_buffer()
        super()._free_buffer(what)


def capture(
    module: Path,
    model: bytes,
    limits: Limits,
    shapes: Mapping[str, Sequence[int]] | None = None,
) -> Captured:
    """Loads `model` in an instrumented isolate of the guest `module` and writes the
    pre-initialised module (see the module's docstring). Runs on the process's default
    engine (deadline checks, no fuel); the module written is the same for every engine.

    Raises like `get`.
    """
    engine = Engine.get(EngineConfig(), module)
    wasm = engine.path.read_bytes()
    if hashlib.sha256(wasm).hexdigest() != engine.sha256:
        raise GuestProtocolError(f"the guest module {engine.path} changed since it was loaded")
    parsed = wasmbin.parse(wasm)
    _check_supported(parsed)
    instrumented, _ = engine.compile_cached(
        f"{engine.sha256[:32]}-instrumented{_INSTRUMENTATION}", lambda: instrument(parsed)
    )
    capture_limits = dataclasses.replace(limits, fuel=None, load_fuel=None)
    isolate = _Capturing(
        model, capture_limits, engine, pre=engine.linker.instantiate_pre(instrumented)
    )
    try:
        if shapes:
            _plan(isolate, shapes)
        isolate.scrub_buffer()
        store = isolate.store
        first_global = parsed.imported.get(wasmbin.GLOBAL_KIND, 0)
        values: dict[int, int] = {}
        for i, g in enumerate(parsed.globals):
            if g.mutable:
                value = isolate.exports[_GLOBAL.format(first_global + i)].value(store)
                if not isinstance(value, int):
                    raise GuestProtocolError("a mutable global read back as a non-integer")
                values[i] = value
        for i in range(parsed.tables):
            table = isolate.exports[_TABLE.format(i)]
            if table.size(store) != _table_minimum(parsed, i):
                raise SnapshotUnsupported(
                    "the guest's initialisation grew a table: a snapshot cannot capture it"
                )
        memory = isolate._guest_memory()
        image = np.frombuffer(memory, dtype=np.uint8)
        wasm_out, image_bytes = emit(parsed, image, values)
        return Captured(
            wasm_out,
            isolate.response,
            isolate._cell,
            len(image),
            image_bytes,
            isolate._buffer,
            isolate.abi_minor,
        )
    finally:
        isolate.close()


def _plan(isolate: Isolate, shapes: Mapping[str, Sequence[int]]) -> None:
    """Runs the model once on zeros at `shapes`, which builds (and caches) their plan."""
    sigs = {s.name: s for s in isolate.signature.inputs}
    if set(shapes) != set(sigs):
        raise InvalidArgument(
            f"shapes must give every input's dims, and only those: the inputs are "
            f"{', '.join(sigs)}, got {', '.join(shapes)}"
        )
    inputs = []
    for name, sig in sigs.items():
        dims = list(shapes[name])
        if sig.dtype not in wire.DTYPES:
            raise InvalidArgument(f"input {name!r} has type {sig.dtype}, which cannot be fed")
        inputs.append((name, np.zeros(dims, dtype=sig.dtype)))
    isolate.run(inputs, [s.name for s in isolate.signature.outputs])


def _table_minimum(parsed: wasmbin.Module, index: int) -> int:
    r = wasmbin.Reader(parsed.section(wasmbin.TABLE).payload)  # type: ignore[union-attr]
    r.u32()
    for i in range(index + 1):
        if r.byte() == 0x40:
            r.take(2)
            limits = r.limits()
            r.const_expr()
        else:
            limits = r.limits()
        if i == index:
            return limits.min
    raise AssertionError("unreachable")


def _check_supported(parsed: wasmbin.Module) -> None:
    """Refuses what a snapshot cannot capture faithfully."""
    why = None
    if parsed.imported.get(wasmbin.MEMORY_KIND) or len(parsed.memories) != 1:
        why = "it does not define exactly one memory of its own"
    elif parsed.memories[0].shared or parsed.memories[0].is64:
        why = "its memory is shared or 64-bit"
    elif "passive" in parsed.data_modes:
        why = "it has passive data segments"
    elif parsed.imported.get(wasmbin.GLOBAL_KIND) or parsed.imported.get(wasmbin.TABLE_KIND):
        why = "it imports globals or tables"
    elif any(g.mutable and g.valtype not in (wasmbin.I32, wasmbin.I64) for g in parsed.globals):
        why = "it has a mutable global that is not an integer"
    elif parsed.section(wasmbin.START) is not None:
        why = "it has a start function"
    if why:
        raise SnapshotUnsupported(f"the guest module cannot be snapshotted: {why}")


def instrument(parsed: wasmbin.Module) -> bytes:
    """The module with its mutable globals and its tables exported, for reading them."""
    first_global = parsed.imported.get(wasmbin.GLOBAL_KIND, 0)
    extra = [
        wasmbin.Export(_GLOBAL.format(first_global + i), wasmbin.GLOBAL_KIND, first_global + i)
        for i, g in enumerate(parsed.globals)
        if g.mutable
    ] + [wasmbin.Export(_TABLE.format(i), wasmbin.TABLE_KIND, i) for i in range(parsed.tables)]
    exports = wasmbin.vector([wasmbin.encode_export(e) for e in [*parsed.exports, *extra]])
    sections = wasmbin.replace(
        parsed.sections, wasmbin.Section(wasmbin.EXPORT, exports), wasmbin.EXPORT
    )
    return wasmbin.build(sections)


def emit(parsed: wasmbin.Module, image: np.ndarray, values: dict[int, int]) -> tuple[bytes, int]:
    """The pre-initialised module: `parsed` with `image` (its memory, whole pages) as its
    data and initial size, `values` (defined global index -> value) as its mutable
    globals' initial values, and no `_initialize` export. Returns it and its data's size.
    """
    if len(image) % _PAGE:
        raise GuestProtocolError("the guest's memory is not a whole number of pages")
    sections = parsed.sections
    limits = parsed.memories[0]
    memory = wasmbin.Limits(len(image) // _PAGE, limits.max, limits.flags)
    sections = wasmbin.replace(
        sections,
        wasmbin.Section(wasmbin.MEMORY, wasmbin.vector([wasmbin.encode_limits(memory)])),
        wasmbin.MEMORY,
    )
    globals_ = [
        wasmbin.Global(g.valtype, True, wasmbin.const_init(g.valtype, values[i]))
        if g.mutable
        else g
        for i, g in enumerate(parsed.globals)
    ]
    if globals_:
        payload = wasmbin.vector([wasmbin.encode_global(g) for g in globals_])
        sections = wasmbin.replace(
            sections, wasmbin.Section(wasmbin.GLOBAL, payload), wasmbin.GLOBAL
        )
    exports = [e for e in parsed.exports if e.name != _INITIALIZE]
    payload = wasmbin.vector([wasmbin.encode_export(e) for e in exports])
    sections = wasmbin.replace(sections, wasmbin.Section(wasmbin.EXPORT, payload), wasmbin.EXPORT)
    starts, ends = nonzero_runs(image)
    segments = [
        wasmbin.active_segment(int(s), image[s:e].tobytes())
        for s, e in zip(starts, ends, strict=True)
    ]
    if parsed.section(wasmbin.DATACOUNT) is not None:
        # Code may name segments by index (memory.init, data.drop): keep at least as many.
        # Every active segment is dropped at instantiation either way.
        segments += [wasmbin.active_segment(0, b"")] * (len(parsed.data_modes) - len(segments))
        sections = wasmbin.replace(
            sections,
            wasmbin.Section(wasmbin.DATACOUNT, wasmbin.u32(len(segments))),
            wasmbin.DATACOUNT,
        )
    sections = wasmbin.replace(
        sections, wasmbin.Section(wasmbin.DATA, wasmbin.vector(segments)), wasmbin.DATA
    )
    return wasmbin.build(sections), int((ends - starts).sum())


def nonzero_runs(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end offsets of the runs of `image` (bytes, a multiple of 8 long) to keep
    as data segments: its non-zero 8-byte words, runs less than `_MERGE_GAP` apart merged,
    and more merged while there are more than `_MAX_SEGMENTS`."""
    words = image.view(np.uint64) != 0
    edges = np.flatnonzero(np.diff(words.astype(np.int8), prepend=0, append=0))
    starts, ends = edges[0::2], edges[1::2]
    gap = _MERGE_GAP // 8
    while True:
        apart = (starts[1:] - ends[:-1]) > gap
        merged_starts = np.concatenate((starts[:1], starts[1:][apart]))
        merged_ends = np.concatenate((ends[:-1][apart], ends[-1:]))
        if len(merged_starts) <= _MAX_SEGMENTS:
            return merged_starts * 8, merged_ends * 8
        gap *= 4
