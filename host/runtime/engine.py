"""The wasmtime Engine and the compiled guest module, shared per process.

Compiling the 18 MB guest takes seconds, so the compiled module is cached on
disk (platformdirs' user cache dir, or `WASMHOST_CACHE_DIR`), keyed by the
module's sha256, the wasmtime version and the engine configuration. A cache
entry is verified by its own sha256 before it is deserialized: a corrupt or
stale entry is recompiled, never loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import ClassVar

import wasmtime

from ..errors import GuestProtocolError, InvalidArgument
from . import cache
from .abi import ABI_EXPORTS, ABI_FUNCTIONS, ABI_VERSION, OPTIONAL_FUNCTIONS
from .cache import cache_dir

__all__ = ["TICK_SECONDS", "Engine", "EngineConfig", "cache_dir", "manifest", "module_path"]

#: How often the ticker thread advances the epoch; deadlines are counted in ticks.
TICK_SECONDS = 0.01
MODULE_NAME = "tract_onnx.wasm"


def module_path() -> Path:
    """The guest module: `WASMHOST_MODULE`, else the packaged one, else the checkout's."""
    if env := os.environ.get("WASMHOST_MODULE"):
        return Path(env)
    package = Path(__file__).resolve().parent.parent  # wasmhost/, or host/ in a checkout
    packaged = package / MODULE_NAME  # the wheel carries it at the package's root
    if packaged.exists():
        return packaged
    return package.parent / "wasm_modules" / MODULE_NAME


def manifest() -> dict:
    """The module's build manifest (sha256, tract version, toolchain), or {} if absent."""
    path = module_path().with_suffix(".json")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def wasmtime_version() -> str:
    return metadata.version("wasmtime")


_ERRNO_SUCCESS = 0
_ERRNO_FAULT = 21


def _deterministic_random_get(caller: wasmtime.Caller, ptr: int, length: int) -> int:
    """WASI random_get, answered with zeros: the guest's hash maps then iterate in the
    same order every time, so a run costs the same fuel every time (with the system's
    random seeds it varied by a few dozen instructions). Nothing in the guest needs
    secrecy; hash flooding inside an isolate only burns its own CPU budget."""
    memory = caller.get("memory")
    ptr &= 0xFFFFFFFF
    length &= 0xFFFFFFFF
    if not isinstance(memory, wasmtime.Memory) or ptr + length > memory.data_len(caller):
        return _ERRNO_FAULT
    if length:
        memory.write(caller, bytes(length), ptr)
    return _ERRNO_SUCCESS


@dataclass(frozen=True)
class EngineConfig:
    """The engine settings that change compiled code (and so the cache key)."""

    fuel: bool = False
    #: Epoch checks at loop heads and calls, which deadlines need, cost 6-15% of a run:
    #: sessions without a timeout get code without them.
    epoch: bool = True

    @property
    def tag(self) -> str:
        return f"{'epoch' if self.epoch else 'noepoch'}{'-fuel' if self.fuel else ''}"


class Engine:
    """A wasmtime Engine, the guest compiled for it, and its epoch ticker.

    Use `Engine.get(config)`: engines are shared by every isolate of a process.
    """

    _instances: ClassVar[dict[tuple[Path, EngineConfig], Engine]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, config: EngineConfig, path: Path) -> None:
        cfg = wasmtime.Config()
        cfg.epoch_interruption = config.epoch
        cfg.consume_fuel = config.fuel
        self.config = config
        self.path = path
        self.wasmtime = wasmtime.Engine(cfg)
        try:
            wasm = path.read_bytes()
        except OSError as e:
            raise InvalidArgument(f"cannot read the guest module {path}: {e.strerror}") from e
        self.sha256 = hashlib.sha256(wasm).hexdigest()
        self.module, self.cache_hit = self._compile(wasm)
        self._check_exports()
        #: The guest's imports (WASI, granting nothing): snapshots of it link to the same.
        self.linker = linker = wasmtime.Linker(self.wasmtime)
        linker.define_wasi()
        linker.allow_shadowing = True
        i32 = wasmtime.ValType.i32()
        linker.define_func(
            "wasi_snapshot_preview1",
            "random_get",
            wasmtime.FuncType([i32, i32], [i32]),
            _deterministic_random_get,
            access_caller=True,
        )
        self.pre = linker.instantiate_pre(self.module)
        self._ticker: threading.Thread | None = None

    @classmethod
    def get(cls, config: EngineConfig = EngineConfig(), module: Path | None = None) -> Engine:
        """The process's engine for `config` and the guest `module` (default: `module_path()`),
        created (and the module compiled) on first use.

        Raises:
            InvalidArgument: the module file cannot be read.
            GuestProtocolError: the module is not valid WebAssembly or lacks ABI v1.
        """
        path = Path(module).resolve() if module is not None else module_path()
        with cls._lock:
            engine = cls._instances.get((path, config))
            if engine is None:
                engine = cls(config, path)
                cls._instances[(path, config)] = engine
            if config.epoch:
                engine._start_ticker()
            return engine

    def _compile(self, wasm: bytes) -> tuple[wasmtime.Module, bool]:
        try:
            return self.compile_cached(self.sha256[:32], lambda: wasm)
        except wasmtime.WasmtimeError as e:
            raise GuestProtocolError(f"the guest module {self.path} is not valid: {e}") from e

    def cache_entry(self, key: str) -> Path:
        """The cache entry of the module `key` names, compiled for this engine."""
        return cache_dir() / f"{key}-wasmtime{wasmtime_version()}-{self.config.tag}.cwasm"

    def compile_cached(self, key: str, wasm: Callable[[], bytes]) -> tuple[wasmtime.Module, bool]:
        """The module cached as `key` for this engine, else `wasm()` compiled and cached;
        and whether it was a cache hit. `key` names what the code is made from; the
        wasmtime version and the engine's configuration are added here.

        Raises:
            wasmtime.WasmtimeError: `wasm()` is not a valid module.
        """
        entry = self.cache_entry(key)
        data = cache.read_entry(entry)
        if data is not None:
            try:
                return wasmtime.Module.deserialize(self.wasmtime, data), True
            except wasmtime.WasmtimeError:
                pass  # refused (another wasmtime build): compiled afresh below
        module = wasmtime.Module(self.wasmtime, wasm())
        cache.write_entry(entry, bytes(module.serialize()))
        return module, False

    def _check_exports(self) -> None:
        exports = {e.name: e.type for e in self.module.exports}
        missing = [n for n in ABI_EXPORTS if n not in exports]
        if missing:
            raise GuestProtocolError(
                f"the guest module lacks ABI v{ABI_VERSION} exports: {', '.join(missing)}"
            )
        if not isinstance(exports["memory"], wasmtime.MemoryType):
            raise GuestProtocolError("the guest's export `memory` is not a memory")
        # Checked once here, so that isolates may call them through the unchecked path.
        i32 = wasmtime.ValType.i32()
        for name, (params, results) in (ABI_FUNCTIONS | OPTIONAL_FUNCTIONS).items():
            if name not in exports:
                continue  # only optional ones: the required were checked above
            ty = exports[name]
            if not (
                isinstance(ty, wasmtime.FuncType)
                and ty.params == [i32] * params
                and ty.results == [i32] * results
            ):
                got = (
                    f"({', '.join(map(str, ty.params))}) -> ({', '.join(map(str, ty.results))})"
                    if isinstance(ty, wasmtime.FuncType)
                    else type(ty).__name__
                )
                want = f"({', '.join(['i32'] * params)}) -> ({', '.join(['i32'] * results)})"
                raise GuestProtocolError(
                    f"the guest's export `{name}` is {got}; ABI v{ABI_VERSION} wants {want}"
                )

    def _start_ticker(self) -> None:
        if self._ticker is not None and self._ticker.is_alive():
            return
        engine = self.wasmtime

        def tick() -> None:
            while True:
                time.sleep(TICK_SECONDS)
                engine.increment_epoch()

        self._ticker = threading.Thread(target=tick, name="wasmhost-epoch", daemon=True)
        self._ticker.start()
