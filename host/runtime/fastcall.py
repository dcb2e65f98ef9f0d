"""Calls into the guest's ABI functions through wasmtime's unchecked entry point.

The one place that uses wasmtime-py's private names: should a wasmtime-py release
lack them, `Export` falls back to the public `Func.__call__` (tested both ways).
"""

from __future__ import annotations

import ctypes

import wasmtime

try:  # wasmtime-py internals, for the fast call path (see _Export)
    from wasmtime import _ffi
    from wasmtime._func import maybe_raise_last_exn as _raise_host_exception

    _UNCHECKED = hasattr(_ffi, "wasmtime_func_call_unchecked")
except ImportError:
    _UNCHECKED = False


class Export:
    """A call into one of ABI v1's functions, for one store.

    wasmtime-py's `Func.__call__` re-reads and converts the function's type on every
    call, which was most of a tiny model's run time. The engine checked these exports'
    types once (i32s only), so calls go through wasmtime's unchecked entry point with a
    reused argument array (or `Func.__call__`, should a wasmtime-py release lack that
    path). Raises what `Func.__call__` raises: `wasmtime.Trap` or `wasmtime.WasmtimeError`.
    """

    def __init__(
        self,
        store: wasmtime.Store,
        func: wasmtime.Func,
        params: int,
        results: int,
        fast: bool | None = None,
    ) -> None:
        self._store = store
        self._checked = func
        self._params = params
        self._results = results
        self._fast = _UNCHECKED if fast is None else fast and _UNCHECKED
        if self._fast:
            self._func = ctypes.byref(func._func)
            self._raw = (_ffi.wasmtime_val_raw_t * max(params, results, 1))()

    def __call__(self, *args: int) -> int | None:
        if len(args) != self._params:
            raise TypeError(f"{self._params} arguments expected, {len(args)} given")
        if not self._fast:
            return self._checked(self._store, *args)
        raw = self._raw
        for i, arg in enumerate(args):
            raw[i].i32 = arg
        # wasmtime-py's enter_wasm, inlined: its generator-based context manager cost
        # more than the rest of a call. An exception a host function (WASI) raised
        # during the call is re-raised first, as enter_wasm does.
        trap = ctypes.POINTER(_ffi.wasm_trap_t)()
        try:
            error = _ffi.wasmtime_func_call_unchecked(
                self._store._context(), self._func, raw, len(raw), ctypes.byref(trap)
            )
            if error:
                raise wasmtime.WasmtimeError._from_ptr(error)
            if trap:
                trapped = wasmtime.Trap._from_ptr(trap)
                _raise_host_exception()
                raise trapped
        except wasmtime.WasmtimeError:
            _raise_host_exception()
            raise
        return raw[0].i32 if self._results else None
