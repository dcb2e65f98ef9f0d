"""Differential checks for the fuzzer: the same case in onnxruntime and native tract (the
peers), and comparisons that tell a wrong answer from wasmhost apart from peers that
disagree among themselves.

Each peer runs in a worker process of its own (see `peer_worker`): a crash or a hang of
onnxruntime or native tract is that peer having no answer, never the end of a campaign.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import math
import os
import tempfile
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

#: Operators whose outputs are random by design; Dropout is one in training mode.
RANDOM_OPS = frozenset(
    ["RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial",
     "Bernoulli"]
)  # fmt: skip

#: The peers, in the order they are asked.
PEERS = ("onnxruntime", "tract")


@dataclass(frozen=True)
class Tolerance:
    """Floats agree when |a - b| <= atol * scale + rtol * max(|a|, |b|), where scale is the
    largest finite magnitude in the two outputs (at least 1): an absolute tolerance relative
    to the output's own size, so that large sums are judged like small ones. float16 gets at
    least rtol 1e-2 and atol 1e-3. NaN agrees with NaN at the same position, an infinity
    with the same infinity; integers, booleans and strings agree exactly."""

    rtol: float = 1e-3
    atol: float = 1e-4


TOLERANCE = Tolerance()


# --- what a graph holds ---------------------------------------------------------------


@dataclass
class GraphFacts:
    """The operator types of a model (subgraphs and functions included), its random
    ones, and whether one of those has no seed."""

    ops: list[str]
    random: list[str]
    unseeded: bool


def graph_facts(model: bytes, inputs: dict[str, np.ndarray]) -> GraphFacts:
    """What `model` holds; a model the onnx package cannot read holds nothing we know of."""
    import onnx

    try:
        proto = onnx.load_from_string(model)
    except Exception:  # protobuf's DecodeError and friends: tract read what onnx cannot
        return GraphFacts([], [], False)
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)
    # (nodes, names of values known to be false) of the graph, its subgraphs, its functions
    bodies: list[tuple[Any, set[str]]] = [(f.node, set()) for f in proto.functions]
    graphs = [proto.graph]
    while graphs:
        g = graphs.pop()
        bodies.append((g.node, _false_values(g, inputs)))
        for node in g.node:
            for attr in node.attribute:
                if attr.HasField("g"):
                    graphs.append(attr.g)
                graphs.extend(attr.graphs)
    ops: set[str] = set()
    random: set[str] = set()
    unseeded = False
    for nodes, false_values in bodies:
        for node in nodes:
            ops.add(node.op_type)
            if node.op_type in RANDOM_OPS or (
                node.op_type == "Dropout" and _dropout_training(node, opset, false_values)
            ):
                random.add(node.op_type)
                unseeded |= not any(a.name == "seed" for a in node.attribute)
    return GraphFacts(sorted(ops), sorted(random), unseeded)


def _false_values(graph: Any, inputs: dict[str, np.ndarray]) -> set[str]:
    """Names of a graph's values known to be all false (or zero): initializers, Constant
    nodes and the case's feeds."""
    from onnx import numpy_helper

    tensors: dict[str, Any] = {t.name: t for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.output:
            for attr in node.attribute:
                if attr.name == "value":
                    tensors[node.output[0]] = attr.t
    known = {n for n, a in inputs.items() if isinstance(a, np.ndarray) and not a.any()}
    for name, tensor in tensors.items():
        with contextlib.suppress(Exception):  # a mutated tensor numpy cannot read
            if not numpy_helper.to_array(tensor).any():
                known.add(name)
    return known


def _dropout_training(node: Any, opset: int, false_values: set[str]) -> bool:
    """Whether a Dropout node drops at random: before opset 7 unless its `is_test` is set,
    from opset 12 when its `training_mode` input is not known to be false, never between."""
    if opset < 7:
        return not any(a.name == "is_test" and a.i for a in node.attribute)
    if opset < 12:
        return False
    mode = node.input[2] if len(node.input) > 2 else ""
    return bool(mode) and mode not in false_values


# --- comparing outputs ------------------------------------------------------------------


def _leaves(value: Any, path: str = "") -> list[tuple[str, np.ndarray]]:
    """An output as named arrays: a tensor is itself, a sequence its items, and a ZipMap
    (a list of {label: probability}) its labels and its probabilities."""
    if isinstance(value, np.ndarray):
        return [(path, value)]
    if isinstance(value, dict):
        value = [value]
    if isinstance(value, list | tuple):
        if value and all(isinstance(v, dict) for v in value):
            labels = np.array(repr([list(v) for v in value]))
            probabilities = [float(p) for v in value for p in v.values()]
            return [
                (f"{path}.labels", labels),
                (f"{path}.values", np.array(probabilities, np.float64)),
            ]
        return [leaf for i, v in enumerate(value) for leaf in _leaves(v, f"{path}[{i}]")]
    return [(path, np.asarray(value))]


def _show(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float | np.floating) else str(value)


def _difference(a: np.ndarray, b: np.ndarray, tol: Tolerance | None) -> dict | None:
    """How array `a` differs from `b`, or None; `tol` None: bit for bit (NaN equal to NaN)."""
    if a.dtype != b.dtype:
        text = f"dtype {a.dtype} vs {b.dtype}"
        return {"what": "dtype", "worst_abs_diff": math.inf, "text": text}
    if a.shape != b.shape:
        text = f"shape {list(a.shape)} vs {list(b.shape)}"
        return {"what": "shape", "worst_abs_diff": math.inf, "text": text}
    if a.size == 0:
        return None
    if a.dtype.kind == "f":
        x, y = a.astype(np.float64), b.astype(np.float64)
        with np.errstate(all="ignore"):
            if tol is None:
                bits = f"u{a.dtype.itemsize}"
                same = np.ascontiguousarray(a).view(bits) == np.ascontiguousarray(b).view(bits)
            else:
                same = x == y
            same |= np.isnan(x) & np.isnan(y)
            diff = np.where(same, 0.0, np.abs(x - y))
            diff[np.isnan(diff)] = math.inf  # NaN against a number
            bad = ~same
            if tol is not None:
                rtol, atol = tol.rtol, tol.atol
                if a.dtype == np.float16:
                    rtol, atol = max(rtol, 1e-2), max(atol, 1e-3)
                finite = np.isfinite(x) & np.isfinite(y)
                scale = max(1.0, float(np.abs(x[finite]).max(initial=0.0)),
                            float(np.abs(y[finite]).max(initial=0.0)))  # fmt: skip
                allowed = atol * scale + rtol * np.maximum(np.abs(x), np.abs(y))
                bad &= ~(finite & (diff <= allowed))
    else:
        x, y = a, b
        bad = np.asarray(a != b)
        if a.dtype.kind in "biu":
            diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
        else:
            diff = np.where(bad, math.inf, 0.0)
    n = int(bad.sum())
    if not n:
        return None
    worst = float(np.max(diff, where=bad, initial=0.0))
    at = np.unravel_index(int(np.argmax(np.where(bad, diff, -1.0))), a.shape)
    where = f" at {list(map(int, at))}" if a.ndim else ""
    text = (
        f"{n}/{a.size} values differ, max |diff| {worst:.3g}{where} "
        f"({_show(x[at])} vs {_show(y[at])})"
    )
    return {"what": "values", "worst_abs_diff": worst, "text": text}


def difference(a: list, b: list, names: list[str], tol: Tolerance | None) -> dict | None:
    """How outputs `a` differ from outputs `b` (None: they agree), by the output that
    differs most: {"output", "what" (count, structure, dtype, shape or values),
    "worst_abs_diff", "text"}. `tol` None compares bit for bit."""
    if len(a) != len(b):
        text = f"{len(a)} outputs vs {len(b)}"
        return {"output": None, "what": "count", "worst_abs_diff": math.inf, "text": text}
    worst: dict | None = None
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        name = names[i] if i < len(names) else f"#{i}"
        lx, ly = _leaves(x), _leaves(y)
        found: dict | None = None
        if [p for p, _ in lx] != [p for p, _ in ly]:
            text = f"{type(x).__name__} of {len(lx)} arrays vs {type(y).__name__} of {len(ly)}"
            found = {"output": name, "what": "structure", "worst_abs_diff": math.inf, "text": text}
        else:
            for (path, u), (_, v) in zip(lx, ly, strict=True):
                d = _difference(u, v, tol)
                if d and (found is None or d["worst_abs_diff"] > found["worst_abs_diff"]):
                    found = {"output": name + path, **d}
        if found and (worst is None or found["worst_abs_diff"] > worst["worst_abs_diff"]):
            worst = found
    return worst


def compare(
    host: list, peers: dict[str, list], names: list[str], tol: Tolerance = TOLERANCE
) -> tuple[str, dict]:
    """wasmhost's outputs against those of the peers that answered: (verdict, detail).

    `no-peer`: no peer answered. `peers-disagree`: two peers differ, and nothing is said of
    wasmhost (the detail has their difference and the peers wasmhost agrees with).
    `mismatch`: wasmhost differs from every peer that answered, and those agree among
    themselves (one peer alone counts); the detail has the output that differs most, its
    worst absolute difference, the peers (`against`) and the difference from each.
    Else `agree`.
    """
    answered = list(peers)
    if not answered:
        return "no-peer", {}
    for i, p in enumerate(answered):
        for q in answered[i + 1 :]:
            if (d := difference(peers[p], peers[q], names, tol)) is not None:
                agree = [r for r in answered if difference(host, peers[r], names, tol) is None]
                return "peers-disagree", {**d, "between": [p, q], "host_agrees_with": agree}
    diffs = {p: difference(host, peers[p], names, tol) for p in answered}
    found = {p: d for p, d in diffs.items() if d is not None}
    if len(found) < len(answered):
        return "agree", {}
    worst = max(answered, key=lambda p: found[p]["worst_abs_diff"])
    detail = {**found[worst], "against": answered}
    detail["by_peer"] = {p: found[p]["text"] for p in answered}
    return "mismatch", detail


# --- the peers ------------------------------------------------------------------------


def available_peers() -> list[str]:
    """The peers installed here (tract with its Python package)."""
    return [p for p in PEERS if importlib.util.find_spec(p) is not None]


def peer_version(peer: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(peer)
    except metadata.PackageNotFoundError:
        return "?"


def describe_peers(peers: list[str]) -> str:
    """The peers and their versions, in a phrase: "onnxruntime 1.20.0, tract 0.23.9"."""
    return ", ".join(f"{p} {peer_version(p)}" for p in peers) or "no peer installed"


def _run_onnxruntime(model: bytes, inputs: dict[str, np.ndarray], _tmp: Path) -> list:
    from .bench import onnxruntime_session

    return onnxruntime_session(model).run(None, inputs)


_TRACT_TYPES = {
    "bool": "bool",
    **{f"int{b}": f"i{b}" for b in (8, 16, 32, 64)},
    **{f"uint{b}": f"u{b}" for b in (8, 16, 32, 64)},
    **{f"float{b}": f"f{b}" for b in (16, 32, 64)},
}


def tract_plan(path: Path, feeds: dict[str, np.ndarray]) -> tuple[Any, list[str]]:
    """Native tract's runnable plan of the model at `path`, told each feed's shape and type
    as the guest is, and the model's input names in order (for `tract_run`).

    Raises:
        TypeError: a feed of a dtype tract's Python API does not take.
        tract.TractError: tract refused the model.
    """
    import tract

    loaded = tract.onnx().load(str(path))
    names = [loaded.input_name(i) for i in range(loaded.input_count())]
    for i, name in enumerate(names):
        a = feeds[name]
        dtype = _TRACT_TYPES.get(a.dtype.name)
        if dtype is None:
            raise TypeError(f"tract's Python API takes no {a.dtype} input")
        loaded.set_input_fact(i, ",".join([*map(str, a.shape), dtype]))
    return loaded.into_model().into_runnable(), names


def tract_run(plan: Any, names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Runs a `tract_plan` on `feeds`."""
    # np.asarray keeps 0-d arrays 0-d (np.ascontiguousarray would make them 1-d).
    return [t.to_numpy() for t in plan.run([np.asarray(feeds[n], order="C") for n in names])]


def _run_tract(model: bytes, inputs: dict[str, np.ndarray], tmp: Path) -> list:
    """Native tract as the guest uses it: told each input's shape and type."""
    path = tmp / "model.onnx"
    path.write_bytes(model)
    plan, names = tract_plan(path, inputs)
    return tract_run(plan, names, inputs)


_RUNNERS = {"onnxruntime": _run_onnxruntime, "tract": _run_tract}


def _limit_memory(extra: int) -> None:
    """Caps this process's address space at what it maps now plus `extra` bytes (Linux):
    a native engine that asks for too much fails instead of taking the machine's memory."""
    try:
        import resource

        with open("/proc/self/statm") as f:
            mapped = int(f.read().split()[0]) * resource.getpagesize()
        resource.setrlimit(resource.RLIMIT_AS, (mapped + extra, resource.RLIM_INFINITY))
    except (ImportError, OSError, ValueError):
        pass


def peer_worker(conn: Connection, peer: str, memory: int) -> None:
    """A peer's worker process: answers each (model, inputs) with ("answered", outputs) or
    ("refused", message), until it gets None. `memory`: bytes it may map beyond its start."""
    run = _RUNNERS[peer]
    # What a native engine prints (tract's panic messages) would garble the campaign's
    # output; refusals come back through the pipe, crashes as the process's death.
    quiet = os.open(os.devnull, os.O_WRONLY)
    os.dup2(quiet, 1)
    os.dup2(quiet, 2)
    with contextlib.suppress(ImportError):
        importlib.import_module(peer)  # mapped before the cap: the cap is for the work
    _limit_memory(memory)
    try:
        with tempfile.TemporaryDirectory(prefix="wasmhost-peer-") as tmp:
            while True:
                job = conn.recv()
                if job is None:
                    return
                model, inputs = job
                try:
                    conn.send(("answered", run(model, inputs, Path(tmp))))
                except (EOFError, BrokenPipeError):
                    raise
                except Exception as e:  # every refusal (and an unpicklable answer) is one
                    text = str(e).strip().splitlines()
                    conn.send(("refused", f"{type(e).__name__}: {text[0] if text else ''}"[:300]))
    except (EOFError, BrokenPipeError, KeyboardInterrupt):
        return  # the campaign is gone: nothing to answer to


__all__ = [
    "PEERS",
    "RANDOM_OPS",
    "TOLERANCE",
    "GraphFacts",
    "Tolerance",
    "available_peers",
    "compare",
    "describe_peers",
    "difference",
    "graph_facts",
    "peer_version",
    "peer_worker",
]
