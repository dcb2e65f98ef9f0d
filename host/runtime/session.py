"""InferenceSession: onnxruntime's API over a pool of sandboxed isolates."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidArgument, InvalidInput, InvalidModel, UnsupportedModel
from . import providers as _providers
from . import rewrite, snapshot
from .abi import STRINGS_MINOR
from .engine import EngineConfig
from .isolate import DEFAULT, Default, Isolate, RunStats, engine_for
from .limits import Limits, format_size
from .maps import MapInput
from .options import RunOptions, SessionOptions
from .pool import IsolatePool, PoolStats
from .providers import PROVIDER
from .wire import DTYPES, STRING, Signature, dtype_name

#: `isolation`'s values: isolates reused from run to run, or a fresh one for every run.
ISOLATION_MODES = ("pooled", "per-run")
#: How the guest's refusal of a model it could not type begins.
_TYPING_FAILED = "tract cannot run this model for inputs"

# onnxruntime's type names, by numpy dtype name (and ONNX's, for types not exchanged).
_ORT_TYPES = {
    "float32": "float",
    "float64": "double",
    "float16": "float16",
    **{n: n for n in DTYPES if n.startswith(("int", "uint"))},
    "bool": "bool",
    STRING: "string",
}
#: numpy's kinds of string arrays: `str` (U) and `object` (O, holding str).
_STRING_KINDS = frozenset("UO")


@dataclass(frozen=True)
class NodeArg:
    """A model input or output, as onnxruntime's NodeArg describes it.

    Attributes:
        name: the ONNX value name.
        type: onnxruntime's type string, e.g. "tensor(float)".
        shape: dims: ints, symbol names (str) or None (unknown); None if the rank is unknown.
        dtype: the numpy dtype exchanged, or None for a type the sandbox cannot exchange.
    """

    name: str
    type: str
    shape: list[int | str | None] | None
    dtype: np.dtype | None = field(default=None, compare=False)

    @classmethod
    def of(cls, sig: Signature, strings: bool = True) -> NodeArg:
        """The NodeArg of a guest's signature; `strings`: the guest exchanges strings."""
        if sig.dtype in DTYPES:
            dtype = np.dtype(sig.dtype)
        else:
            dtype = np.dtype(object) if strings and sig.dtype == STRING else None
        shape = None if sig.shape is None else list(sig.shape)
        return cls(sig.name, f"tensor({_ORT_TYPES.get(sig.dtype, sig.dtype)})", shape, dtype)


@dataclass(frozen=True)
class ModelMetadata:
    """Like onnxruntime's ModelMetadata, plus the opset imports and an operator histogram."""

    producer_name: str
    graph_name: str
    domain: str
    description: str
    graph_description: str
    version: int
    custom_metadata_map: dict[str, str]
    opset: dict[str, int]
    operators: dict[str, int]


class InferenceSession:
    """Runs one ONNX model in sandboxed isolates, with onnxruntime's API.

    Args:
        path_or_bytes: a path to an .onnx file, or its bytes.
        sess_options: onnxruntime's SessionOptions (wasmhost's, which also carries
            `limits` and `pool_size`); a `Limits` is accepted here too.
        providers: onnxruntime's provider list: `WasmHostExecutionProvider` or
            `CPUExecutionProvider` (the same thing here), as names or (name, options).
        provider_options: one dict per provider; wasmhost's provider takes `memory`,
            `timeout`, `fuel`, `load_fuel` and `pool_size` (values or strings).
        limits: memory, time and fuel limits of each isolate (default `Limits()`).
        pool_size: most isolates run at once, one per concurrent `run` (default: CPU count).
        module: the guest module (a `.wasm` of ABI v1) to run the model in; default the
            bundled tract guest (or `WASMHOST_MODULE`). The registry's runtimes use it.
        isolation: "pooled" (default): isolates are kept and reused from run to run;
            "per-run": every run gets a fresh isolate, spawned in about 0.1 ms (median)
            from a snapshot of the loaded model (docs/snapshots.md). The snapshot is
            compiled on first use (10-15 s) and cached on disk.
        snapshot_build: with per-run isolation, whether to build a snapshot that is not
            cached yet (default); if False, the session runs pooled instead (`isolation`
            then says "pooled"; `prepare_snapshot()` builds one for the next session).
        snapshot_shapes: with per-run isolation, input shapes (name -> dims, every input)
            to plan before the snapshot is taken. A model with symbolic dims otherwise
            builds its plan in every run (each run starts from the snapshot): 8 ms against
            0.2 ms for a small LSTM. Runs at other shapes still work, planned per run.

    The keyword arguments win over provider options, which win over `sess_options`.

    Raises:
        FileNotFoundError, OSError: the model file cannot be read.
        InvalidArgument: a provider other than the CPU's, an option out of range, or an
            unknown isolation mode.
        InvalidModel: not an ONNX model, or larger than `limits.max_model_size`.
        UnsupportedModel: tract cannot run it (the message names the operator), even
            with the operators it lacks inlined from their ONNX function definitions.
        MemoryLimitExceeded, TimeoutExceeded, FuelExhausted, GuestCrash: loading trapped.
        SnapshotUnsupported: per-run isolation of a guest module that cannot be snapshotted.
    """

    def __init__(
        self,
        path_or_bytes: str | os.PathLike[str] | bytes,
        sess_options: SessionOptions | Limits | None = None,
        providers: Sequence[str | tuple[str, dict[str, Any]]] | None = None,
        provider_options: Sequence[dict[str, Any]] | None = None,
        *,
        limits: Limits | None = None,
        pool_size: int | None = None,
        module: str | os.PathLike[str] | None = None,
        isolation: str = "pooled",
        snapshot_build: bool = True,
        snapshot_shapes: Mapping[str, Sequence[int]] | None = None,
    ) -> None:
        if isolation not in ISOLATION_MODES:
            raise InvalidArgument(
                f"isolation must be one of {', '.join(map(repr, ISOLATION_MODES))}, "
                f"got {isolation!r}"
            )
        self.isolation = isolation
        #: Per-run isolation was asked with `snapshot_build=False` and no snapshot is cached:
        #: the session runs pooled (`prepare_snapshot()` builds one for the next session).
        self.snapshot_missing = False
        self._snapshot_shapes = dict(snapshot_shapes) if snapshot_shapes else None
        self._module = Path(module) if module is not None else None
        if isinstance(sess_options, Limits):  # wasmhost's first API: (model, limits)
            sess_options, limits = None, limits or sess_options
        if sess_options is not None and not isinstance(sess_options, SessionOptions):
            raise InvalidArgument(
                f"sess_options must be a wasmhost.SessionOptions, not {type(sess_options).__name__}"
            )
        self._sess_options = sess_options or SessionOptions()
        self._explicit = (limits, pool_size)
        self.limits, self.pool_size, self._provider_options = self._configure(
            providers, provider_options
        )
        self._model = self._read(path_or_bytes)
        #: Operators that tract lacks and that were inlined from their ONNX definitions.
        self.expanded_functions: list[str] = []
        # ZipMap outputs (by name) lifted out of the guest, with their class labels.
        self._zipmaps: dict[str, list[int | str]] = {}
        # Map inputs (by name) whose DictVectorizer or CastMap the session computes.
        self._maps: dict[str, MapInput] = {}
        first = self._stable(self._first_isolate())
        sig = first.signature
        strings = first.abi_minor >= STRINGS_MINOR
        lifted = {m.tensor: m for m in self._maps.values()}
        self._inputs = [
            NodeArg(lifted[s.name].name, lifted[s.name].type, [])
            if s.name in lifted
            else NodeArg.of(s, strings)
            for s in sig.inputs
        ]
        self._input_names = {i.name for i in self._inputs}
        self._outputs = [self._zipmap_arg(s.name) or NodeArg.of(s, strings) for s in sig.outputs]
        self._output_names_all = [o.name for o in self._outputs]
        self._meta = sig.meta
        if self._zipmaps:
            # The guest saw an Identity where each ZipMap was: the histogram is the model's.
            ops = dict(self._meta["ops"])
            lifted = len(self._zipmaps)
            ops["Identity"] = ops.get("Identity", 0) - lifted
            if ops["Identity"] <= 0:
                del ops["Identity"]
            ops[rewrite.ZIPMAP] = ops.get(rewrite.ZIPMAP, 0) + lifted
            self._meta = {**self._meta, "ops": sorted(ops.items())}
        # Per-run isolation: one snapshot per engine configuration the limits ask for.
        self._snapshots: dict[tuple[EngineConfig, int], snapshot.Snapshot] = {}
        self._snapshots_lock = threading.Lock()
        if isolation == "per-run" and not snapshot_build:
            found = snapshot.get(
                self._model,
                self.limits,
                self._module,
                shapes=self._snapshot_shapes,
                create=False,
            )
            if found is None:
                self.isolation, self.snapshot_missing = "pooled", True
            else:
                self._snapshots[self._snapshot_key(self.limits)] = found
        if self.isolation == "per-run":
            try:
                self._snapshot(self.limits)
            finally:
                first.close()  # every run gets an isolate of its own: not this one
            self._pool = IsolatePool(self._spawn, self.limits, self.pool_size, reuse=False)
        else:
            self._pool = IsolatePool(self._isolate, self.limits, self.pool_size, first)
        self._local = threading.local()

    def _configure(
        self,
        providers: Sequence[str | tuple[str, dict[str, Any]]] | None,
        provider_options: Sequence[dict[str, Any]] | None,
    ) -> tuple[Limits, int, dict[str, str]]:
        """The limits, pool size and wasmhost provider options these arguments make."""
        limits, pool_size = self._sess_options.resolve()
        options = _providers.provider_options(providers, provider_options)
        if options:
            limits, pool_size = _providers.apply_provider_options(
                limits or Limits(), pool_size, options
            )
        explicit_limits, explicit_pool = self._explicit
        limits = explicit_limits or limits or Limits()
        pool_size = explicit_pool if explicit_pool is not None else pool_size
        if pool_size is not None and (
            isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 1
        ):
            raise InvalidArgument(f"pool_size must be a positive integer, got {pool_size!r}")
        return limits, pool_size or os.cpu_count() or 1, {k: str(v) for k, v in options.items()}

    def _isolate(self, limits: Limits) -> Isolate:
        return Isolate(self._model, limits, module=self._module)

    def _snapshot_key(self, limits: Limits) -> tuple[EngineConfig, int]:
        return engine_for(limits, self._module).config, limits.plan_cache

    def _snapshot(self, limits: Limits) -> snapshot.Snapshot:
        """The model's snapshot for the engine `limits` run on, made on first use."""
        key = self._snapshot_key(limits)
        with self._snapshots_lock:
            found = self._snapshots.get(key)
            if found is None:
                found = snapshot.get(
                    self._model, limits, self._module, shapes=self._snapshot_shapes
                )
                assert found is not None  # created when not cached
                self._snapshots[key] = found
            return found

    def prepare_snapshot(self) -> snapshot.Snapshot:
        """Builds (or finds cached) the snapshot per-run sessions of this model under these
        limits spawn from, whatever this session's isolation.

        Raises:
            SnapshotUnsupported: the guest module cannot be snapshotted.
            And what loading the model raises.
        """
        return self._snapshot(self.limits)

    def _spawn(self, limits: Limits) -> Isolate:
        return self._snapshot(limits).spawn(limits)

    @property
    def snapshot(self) -> snapshot.Snapshot | None:
        """The snapshot per-run isolates spawn from (None when pooled)."""
        if self.isolation != "per-run":
            return None
        return self._snapshot(self.limits)

    def _first_isolate(self) -> Isolate:
        try:
            return Isolate(self._model, self.limits, module=self._module)
        except (UnsupportedModel, InvalidModel) as refused:
            if isinstance(refused, UnsupportedModel) and _TYPING_FAILED in str(refused):
                # tract could not type the graph: if onnx finds its shapes contradict
                # each other, it is invalid (onnxruntime says so too), not unsupported.
                reason = rewrite.shape_error_isolated(self._model, self.limits.timeout)
                if reason:
                    raise InvalidModel(
                        f"the graph's shapes contradict each other: {reason}"
                    ) from None
            ops = rewrite.operators_named(str(refused))
            done = rewrite.rewrite_isolated(self._model, ops, self.limits.timeout)
            if done is None or len(done.model) > int(self.limits.max_model_size):
                raise
            try:
                first = Isolate(done.model, self.limits, module=self._module)
            except (UnsupportedModel, InvalidModel) as again:
                # The operators the user wrote are the ones to name; ZipMap is not one
                # of the reasons: it is supported (lifted out). When it was the only one
                # named, the reason is what the guest found in the rest of the model.
                if all(op == rewrite.ZIPMAP for op in ops):
                    raise again from None
                raise type(refused)(rewrite.without_supported(str(refused))) from None
            self._maps = {n: MapInput.from_json(n, spec) for n, spec in done.maps.items()}
            self._model, self.expanded_functions, self._zipmaps = (
                done.model,
                done.expanded,
                done.zipmaps,
            )
            return first

    def _stable(self, first: Isolate) -> Isolate:
        """`first`, or an isolate of the model with its ReduceLogSumExp rewritten into the
        max-shifted form when it has one (tract's overflows: a wrong answer, not a
        refusal, so the guest's loading it is no sign it is right)."""
        if rewrite.LOGSUMEXP not in dict(first.signature.meta.get("ops", [])):
            return first
        done = rewrite.rewrite_isolated(self._model, [rewrite.LOGSUMEXP], self.limits.timeout)
        if done is None:
            first.close()
            raise UnsupportedModel(
                "ReduceLogSumExp could not be rewritten into a numerically stable form, and "
                "tract's overflows (exp of large values): refused rather than answered wrong"
            )
        stable = Isolate(done.model, self.limits, module=self._module)
        first.close()
        self._model = done.model
        return stable

    def _zipmap_arg(self, name: str) -> NodeArg | None:
        labels = self._zipmaps.get(name)
        if labels is None:
            return None
        key = "string" if labels and isinstance(labels[0], str) else "int64"
        return NodeArg(name, f"seq(map({key},tensor(float)))", [])

    def _zipmap(self, name: str, probabilities: np.ndarray) -> list[dict[int | str, float]]:
        """What onnxruntime returns for a ZipMap: one {label: probability} per row."""
        labels = self._zipmaps[name]
        rows = probabilities.reshape(1, -1) if probabilities.ndim == 1 else probabilities
        if rows.ndim != 2 or rows.shape[1] != len(labels):
            raise InvalidModel(
                f"output '{name}': ZipMap has {len(labels)} class labels but its input has "
                f"shape {list(probabilities.shape)}"
            )
        # onnxruntime's maps are std::maps: their keys come sorted, whatever the
        # attribute's order; a label given twice keeps its last column.
        order = sorted(range(len(labels)), key=lambda i: labels[i])
        return [{labels[i]: values[i] for i in order} for values in rows.tolist()]

    def _read(self, source: str | os.PathLike[str] | bytes) -> bytes:
        cap = int(self.limits.max_model_size)
        if isinstance(source, bytes | bytearray | memoryview):
            data = bytes(source)
        else:
            size = Path(source).stat().st_size  # before reading: never read an oversized file
            if size > cap:
                raise InvalidModel(
                    f"the model is {format_size(size)}, over the {format_size(cap)} limit "
                    "(Limits.max_model_size)"
                )
            with open(source, "rb") as f:
                data = f.read(cap + 1)  # the file may have grown since
        if len(data) > cap:
            raise InvalidModel(
                f"the model is {format_size(len(data))}, over the {format_size(cap)} limit "
                "(Limits.max_model_size)"
            )
        if not data:
            raise InvalidModel("the model is empty (0 bytes)")
        return data

    # --- onnxruntime's API --------------------------------------------------

    def get_inputs(self) -> list[NodeArg]:
        """The model's inputs (initializers excluded), in order."""
        return list(self._inputs)

    def get_outputs(self) -> list[NodeArg]:
        """The model's outputs, in order."""
        return list(self._outputs)

    def get_modelmeta(self) -> ModelMetadata:
        m = self._meta
        return ModelMetadata(
            producer_name=m["producer_name"],
            graph_name=m["graph_name"],
            domain=m["domain"],
            description=m["doc_string"],
            graph_description=m["graph_description"],
            version=m["model_version"],
            custom_metadata_map=dict(m["metadata_props"]),
            opset=dict(m["opset"]),
            operators=dict(m["ops"]),
        )

    def get_providers(self) -> list[str]:
        """The providers the session runs on: wasmhost's sandbox, on the CPU."""
        return [PROVIDER]

    def get_provider_options(self) -> dict[str, dict[str, str]]:
        """Each provider's options, as strings (onnxruntime's shape)."""
        return {PROVIDER: dict(self._provider_options)}

    def set_providers(
        self,
        providers: Sequence[str | tuple[str, dict[str, Any]]] | None = None,
        provider_options: Sequence[dict[str, Any]] | None = None,
    ) -> None:
        """Re-applies providers and their options: new limits apply to the next runs
        (idle isolates are dropped; running ones finish under the old limits).

        Raises:
            InvalidArgument: a provider other than the CPU's, or an option out of range.
        """
        self.limits, self.pool_size, self._provider_options = self._configure(
            providers, provider_options
        )
        self._pool.reconfigure(self.limits, self.pool_size)

    def get_session_options(self) -> SessionOptions:
        """The session's options, with the limits and pool size in effect."""
        opts = SessionOptions(**{n: getattr(self._sess_options, n) for n in SessionOptions._names})
        opts.limits, opts.pool_size = self.limits, self.pool_size
        return opts

    def get_overridable_initializers(self) -> list[NodeArg]:
        """None: initializers are the model's own, never fed (onnxruntime lists those a
        feed may replace; wasmhost does not let a feed replace one)."""
        return []

    @property
    def pool(self) -> PoolStats:
        """The isolates this session holds and has made, now."""
        return self._pool.stats()

    def run(
        self,
        output_names: Sequence[str] | None,
        input_feed: Mapping[str, Any],
        run_options: RunOptions | None = None,
    ) -> list[Any]:
        """Runs the model on `input_feed` and returns the outputs named (all if None or []).

        Feeds are numpy arrays (or scalars) whose dtype is the input's exactly: like
        onnxruntime, nothing is cast. Safe to call from several threads at once.
        Outputs are numpy arrays, except a classifier's ZipMap output: a list of
        {label: probability} dicts, as onnxruntime returns it.

        `run_options` (a RunOptions) may give this run its own `timeout` and `fuel`.

        Raises:
            InvalidInput: an unknown, missing or mistyped input, a wrong rank or fixed dim,
                an unknown output name, or a value the model cannot run on.
            InvalidArgument: run options the session cannot honour.
            MemoryLimitExceeded, TimeoutExceeded, FuelExhausted, GuestCrash: the run trapped;
                the isolate was discarded and the session goes on.
        """
        timeout, fuel = self._run_budget(run_options)
        names = self._output_names(output_names)
        inputs = self._check_feed(input_feed)
        isolate = self._pool.acquire()
        try:
            result = isolate.run(inputs, names, timeout, fuel)
        finally:
            self._local.stats = isolate.last_stats
            self._pool.release(isolate)
        if self._zipmaps:
            return [
                self._zipmap(n, r) if n in self._zipmaps else r
                for n, r in zip(names, result, strict=True)
            ]
        return result

    @property
    def last_run_stats(self) -> RunStats | None:
        """Wall time, fuel and peak guest memory of this thread's last `run`."""
        return getattr(self._local, "stats", None)

    def close(self) -> None:
        """Drops the idle isolates; runs under way finish on theirs."""
        self._pool.close()

    def __enter__(self) -> InferenceSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- feeds --------------------------------------------------------------

    def _run_budget(
        self, run_options: RunOptions | None
    ) -> tuple[float | Default | None, int | Default | None]:
        """This run's timeout and fuel: the run options', or the limits' (DEFAULT)."""
        if run_options is None:
            return DEFAULT, DEFAULT
        if not isinstance(run_options, RunOptions):
            raise InvalidArgument(
                f"run_options must be a wasmhost.RunOptions, not {type(run_options).__name__}"
            )
        if run_options.terminate:
            raise InvalidArgument("RunOptions.terminate is set: the run was not started")
        timeout: float | Default | None = DEFAULT
        fuel: int | Default | None = DEFAULT
        if run_options.timeout is not None:
            if self.limits.timeout is None:
                raise InvalidArgument(
                    "RunOptions.timeout: this session has no timeout (Limits.timeout=None), "
                    "so its code runs without deadline checks; give the session one"
                )
            timeout = Limits(timeout=run_options.timeout).timeout
        if run_options.fuel is not None:
            if self.limits.fuel is None:
                raise InvalidArgument(
                    "RunOptions.fuel: this session is not metered (Limits.fuel=None); "
                    "give the session a fuel limit"
                )
            fuel = Limits(fuel=run_options.fuel).fuel
        return timeout, fuel

    def _output_names(self, output_names: Sequence[str] | None) -> list[str]:
        known = self._output_names_all
        if not isinstance(output_names, str) and not output_names:
            return known  # None or [], as onnxruntime
        if isinstance(output_names, str):
            raise InvalidInput("output_names must be a list of names or None, not a string")
        names = list(output_names)
        for n in names:
            if n not in known:
                raise InvalidInput(f"the model has no output '{n}' (outputs: {', '.join(known)})")
        return names

    def _check_feed(self, feed: Mapping[str, Any]) -> list[tuple[str, np.ndarray]]:
        if not isinstance(feed, Mapping):
            raise InvalidInput(f"input_feed must be a dict of name -> array, not {type(feed)}")
        if feed.keys() == self._input_names and not self._maps:
            return [(arg.name, _check_array(arg, feed[arg.name])) for arg in self._inputs]
        by_name = {i.name: i for i in self._inputs}
        unknown = [n for n in feed if n not in by_name]
        if unknown:
            raise InvalidInput(
                f"the model has no input '{unknown[0]}' (inputs: {', '.join(by_name)})"
            )
        missing = [n for n in by_name if n not in feed]
        if missing:
            raise InvalidInput(
                f"missing input '{missing[0]}' (the model needs: {', '.join(by_name)})"
            )
        return [self._checked(arg, feed[arg.name]) for arg in self._inputs]

    def _checked(self, arg: NodeArg, value: Any) -> tuple[str, np.ndarray]:
        """The guest's input name and array for one feed (a map becomes its tensor)."""
        lifted = self._maps.get(arg.name)
        if lifted is not None:
            return lifted.tensor, lifted.to_tensor(value, int(self.limits.memory))
        return arg.name, _check_array(arg, value)


def _check_array(arg: NodeArg, value: Any) -> np.ndarray:
    """The feed as a C-contiguous native-endian array of the input's dtype, or InvalidInput."""
    if type(value) is np.ndarray:
        array = value
    elif isinstance(value, np.ndarray | np.generic | bool | int | float | list | tuple):
        array = np.asarray(value)
    else:
        raise InvalidInput(
            f"input '{arg.name}': expected a numpy array, got {type(value).__name__}"
        )
    if arg.dtype is None:
        raise InvalidInput(
            f"input '{arg.name}' has type {arg.type}, which the sandbox cannot exchange"
        )
    if arg.dtype.kind == "O":
        array = _strings(arg, array)
    elif dtype_name(array.dtype) != dtype_name(arg.dtype):
        got = "string" if array.dtype.kind in _STRING_KINDS else array.dtype.name
        raise InvalidInput(
            f"input '{arg.name}' must be {arg.type}, got tensor({_ORT_TYPES.get(got, got)})"
        )
    if arg.shape is not None:
        if array.ndim != len(arg.shape):
            raise InvalidInput(
                f"input '{arg.name}' must have rank {len(arg.shape)} (shape {_dims(arg.shape)}), "
                f"got shape {list(array.shape)}"
            )
        for axis, (want, got) in enumerate(zip(arg.shape, array.shape, strict=True)):
            if isinstance(want, int) and want != got:
                raise InvalidInput(
                    f"input '{arg.name}' must have dim {want} on axis {axis} "
                    f"(shape {_dims(arg.shape)}), got shape {list(array.shape)}"
                )
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    if array.flags.c_contiguous:
        return array
    # np.asarray keeps 0-d arrays 0-d (np.ascontiguousarray would make them 1-d).
    return np.asarray(array, order="C")


def _strings(arg: NodeArg, array: np.ndarray) -> np.ndarray:
    """A string feed as an `object` array of `str`: numpy `str` arrays are converted;
    `object` arrays must hold `str` only (onnxruntime's two ways of passing strings)."""
    if array.dtype.kind == "U":
        return array.astype(object)
    if array.dtype.kind != "O":
        got = _ORT_TYPES.get(array.dtype.name, array.dtype.name)
        raise InvalidInput(f"input '{arg.name}' must be {arg.type}, got tensor({got})")
    for value in array.flat:
        if not isinstance(value, str):
            raise InvalidInput(
                f"input '{arg.name}' must be {arg.type}: it holds a {type(value).__name__} "
                f"({value!r:.40})"
            )
    return array


def _dims(shape: list[int | str | None]) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"
