"""Fuzzing untrusted models: structure-aware mutations of an ONNX model and its inputs,
each case run in a limited isolate inside a worker process, outcomes classified and
distinct findings saved as reproducers.

A worker process stands between the fuzzer and the isolates so that even a crash of
the host itself (which must never happen) is caught and reported as a finding.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import multiprocessing as mp
import random
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

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
from .limits import Limits
from .wire import DTYPES as EXCHANGED

#: Outcome classes that are findings: the interpreter or the host misbehaved.
FINDINGS = ("host-crash", "protocol-error", "trap:panic", "trap:crash")
_DTYPES = ["float32", "float64", "float16", "int64", "int32", "int8", "uint8", "bool"]
_OPS = [
    "Relu", "Add", "MatMul", "Conv", "Reshape", "Gather", "Concat", "Transpose", "Slice",
    "Softmax", "MaxPool", "Expand", "Tile", "Pad", "Resize", "TopK", "Split", "Squeeze",
    "Unsqueeze", "ReduceMean", "Cast", "Where", "ConstantOfShape", "Range", "Einsum",
    "GatherND", "ScatterND", "NonZero", "CumSum", "OneHot",
]  # fmt: skip
_INTERESTING_INTS = [0, 1, -1, 2, 3, 7, 255, 256, 65535, 2**31 - 1, -(2**31), 2**40, -(2**62)]
_PANIC_LOCATION = re.compile(r"\(at (\S+?)(?::\d+)?\)$")


@dataclass
class Outcome:
    """How one case ended: `kind` is ok, error:<code>, trap:panic, trap:crash, trap:oom,
    timeout, fuel, protocol-error or host-crash."""

    kind: str
    message: str = ""
    panic: str | None = None

    @property
    def finding_key(self) -> str | None:
        """Same key, same finding: the class and the panic site (or the message)."""
        if self.kind not in FINDINGS:
            return None
        if self.panic and (m := _PANIC_LOCATION.search(self.panic)):
            return f"{self.kind} {m[1]}"
        text = self.panic or self.message
        return f"{self.kind} {re.sub(r'[0-9]+', 'N', text)[:200]}"


def classify(error: BaseException | None) -> Outcome:
    """The outcome class of what a case raised (None: it ran)."""
    if error is None:
        return Outcome("ok")
    message = str(error)
    codes: list[tuple[type[BaseException], str]] = [
        (InvalidModel, "error:invalid_model"),
        (UnsupportedModel, "error:unsupported_model"),
        (InvalidInput, "error:invalid_input"),
        (MemoryLimitExceeded, "trap:oom"),
        (TimeoutExceeded, "timeout"),
        (FuelExhausted, "fuel"),
        (GuestProtocolError, "protocol-error"),
        (InvalidArgument, "error:invalid_argument"),
    ]
    for cls, kind in codes:
        if isinstance(error, cls):
            return Outcome(kind, message)
    if isinstance(error, GuestCrash):
        return Outcome("trap:panic" if error.panic else "trap:crash", message, error.panic)
    if isinstance(error, WasmHostError):
        return Outcome("error:other", message)
    # Anything else escaping the host is a host bug: report it as a crash of the host.
    return Outcome("host-crash", f"{type(error).__name__}: {message}")


# --- cases -------------------------------------------------------------------------------


@dataclass
class Case:
    index: int
    mutation: str
    model: bytes
    inputs: dict[str, np.ndarray] = field(repr=False)


def _np_dtype(elem_type: int) -> np.dtype | None:
    from onnx import helper

    try:
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(elem_type))
    except (KeyError, TypeError, ValueError):
        return None
    return dtype if dtype.name in EXCHANGED else None


def _random_array(rng: random.Random, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    gen = np.random.default_rng(rng.getrandbits(32))
    if dtype == np.bool_:
        return gen.random(shape) > 0.5
    if dtype.kind in "iu":
        return gen.integers(0, 4, size=shape).astype(dtype)
    values = gen.standard_normal(shape).astype(dtype)
    if values.size and rng.random() < 0.1:
        values.reshape(-1)[rng.randrange(values.size)] = rng.choice([np.nan, np.inf, -np.inf])
    return values


def make_inputs(model: Any, rng: random.Random) -> dict[str, np.ndarray]:
    """Inputs fitting the model's declared graph inputs: symbolic and unknown dims get small
    sizes, unknown ranks rank 1."""
    initializers = {t.name for t in model.graph.initializer}
    feeds = {}
    for vi in model.graph.input:
        if vi.name in initializers or not vi.type.HasField("tensor_type"):
            continue
        dtype = _np_dtype(vi.type.tensor_type.elem_type) or np.dtype(np.float32)
        if vi.type.tensor_type.HasField("shape"):
            shape = tuple(
                d.dim_value if d.HasField("dim_value") and 0 <= d.dim_value <= 4096 else
                rng.randint(1, 4)
                for d in vi.type.tensor_type.shape.dim
            )  # fmt: skip
        else:
            shape = (rng.randint(1, 4),)
        if int(np.prod(shape, dtype=np.int64)) > 1 << 24:
            shape = tuple(min(d, 16) for d in shape)
        feeds[vi.name] = _random_array(rng, dtype, shape)
    return feeds


class Mutator:
    """Structure-aware mutations of an ONNX model (and of its inputs), one per case.

    Case `i` of seed `s` depends on nothing but `s` and `i`: a campaign is deterministic
    whatever the number of workers.
    """

    def __init__(self, model_bytes: bytes, seed: int) -> None:
        import onnx

        self.seed = seed
        self.bytes = model_bytes
        try:
            self.model = onnx.load_from_string(model_bytes)
        except Exception as e:  # protobuf's DecodeError and friends
            raise InvalidModel(f"the seed is not an ONNX model: {e}") from None
        self.strategies: list[tuple[str, Callable[[Any, random.Random], None]]] = [
            ("attribute", self._attribute),
            ("dims", self._dims),
            ("dtype", self._dtype),
            ("initializer-data", self._initializer_data),
            ("initializer-dims", self._initializer_dims),
            ("op-type", self._op_type),
            ("wiring", self._wiring),
            ("opset", self._opset),
            ("graph-inputs", self._graph_inputs),
        ]

    def case(self, index: int) -> Case:
        rng = random.Random(self.seed * 1_000_003 + index)
        roll = rng.random()
        if roll < 0.08:
            data = bytearray(self.bytes)
            for _ in range(rng.randint(1, 8)):
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
            return Case(index, "bit-flip", bytes(data), make_inputs(self.model, rng))
        if roll < 0.12:
            cut = rng.randrange(len(self.bytes))
            return Case(index, "truncate", self.bytes[:cut], make_inputs(self.model, rng))
        model = copy.deepcopy(self.model)
        names = []
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            name, mutate = rng.choice(self.strategies)
            mutate(model, rng)
            names.append(name)
        inputs = make_inputs(model, rng)
        if rng.random() < 0.15 and inputs:
            names.append("inputs")
            self._mutate_inputs(inputs, rng)
        return Case(index, "+".join(names), model.SerializeToString(), inputs)

    # Each mutation edits `model` in place and does nothing where it finds nothing to edit.

    def _nodes(self, model: Any) -> list:
        return list(model.graph.node)

    def _attribute(self, model: Any, rng: random.Random) -> None:
        from onnx import AttributeProto

        nodes = [n for n in self._nodes(model) if n.attribute]
        if not nodes:
            return
        attr = rng.choice(rng.choice(nodes).attribute)
        if attr.type == AttributeProto.INT:
            attr.i = rng.choice(_INTERESTING_INTS)
        elif attr.type == AttributeProto.INTS and attr.ints:
            attr.ints[rng.randrange(len(attr.ints))] = rng.choice(_INTERESTING_INTS)
            if rng.random() < 0.3:
                attr.ints.append(rng.choice(_INTERESTING_INTS))
        elif attr.type == AttributeProto.FLOAT:
            attr.f = rng.choice([0.0, -1.0, 1e30, float("nan"), float("inf")])
        elif attr.type == AttributeProto.STRING:
            attr.s = rng.choice([b"", b"NOTSET", b"SAME_UPPER", b"linear", b"\xff"])

    def _dims(self, model: Any, rng: random.Random) -> None:
        values = list(model.graph.input) + list(model.graph.value_info)
        shaped = [v for v in values if v.type.tensor_type.shape.dim]
        if not shaped:
            return
        dims = rng.choice(shaped).type.tensor_type.shape.dim
        dim = dims[rng.randrange(len(dims))]
        if rng.random() < 0.3:
            dim.dim_param = rng.choice(["N", "batch", "s"])
        else:
            dim.dim_value = rng.choice([0, 1, 2, 3, 5, 64, 1000])

    def _dtype(self, model: Any, rng: random.Random) -> None:
        from onnx import TensorProto

        types = [TensorProto.FLOAT, TensorProto.INT64, TensorProto.UINT8, TensorProto.BOOL,
                 TensorProto.FLOAT16, TensorProto.DOUBLE, TensorProto.STRING, 0, 99]  # fmt: skip
        targets = list(model.graph.input) + list(model.graph.output)
        if targets and rng.random() < 0.6:
            rng.choice(targets).type.tensor_type.elem_type = rng.choice(types)
        elif model.graph.initializer:
            rng.choice(model.graph.initializer).data_type = rng.choice(types)

    def _initializer_data(self, model: Any, rng: random.Random) -> None:
        inits = [t for t in model.graph.initializer if t.raw_data]
        if not inits:
            return
        t = rng.choice(inits)
        raw = bytearray(t.raw_data)
        if rng.random() < 0.5:
            for _ in range(rng.randint(1, 16)):
                raw[rng.randrange(len(raw))] = rng.randrange(256)
        else:
            del raw[rng.randrange(len(raw)) :]
        t.raw_data = bytes(raw)

    def _initializer_dims(self, model: Any, rng: random.Random) -> None:
        if not model.graph.initializer:
            return
        t = rng.choice(model.graph.initializer)
        if t.dims and rng.random() < 0.7:
            t.dims[rng.randrange(len(t.dims))] = rng.choice([0, 1, 2, 3, 1 << 20, -1])
        else:
            t.dims.append(rng.choice([1, 2, 3]))

    def _op_type(self, model: Any, rng: random.Random) -> None:
        nodes = self._nodes(model)
        if nodes:
            rng.choice(nodes).op_type = rng.choice(_OPS)

    def _wiring(self, model: Any, rng: random.Random) -> None:
        nodes = self._nodes(model)
        if not nodes:
            return
        values = [i.name for i in model.graph.input] + [t.name for t in model.graph.initializer]
        values += [o for n in nodes for o in n.output]
        node = rng.choice(nodes)
        roll = rng.random()
        if node.input and roll < 0.5:
            node.input[rng.randrange(len(node.input))] = rng.choice(values)
        elif node.input and roll < 0.75:
            del node.input[rng.randrange(len(node.input))]
        else:
            node.input.append(rng.choice(values))

    def _opset(self, model: Any, rng: random.Random) -> None:
        for opset in model.opset_import:
            if opset.domain in ("", "ai.onnx"):
                opset.version = rng.choice([1, 6, 7, 9, 11, 13, 17, 21, 25, 1000])

    def _graph_inputs(self, model: Any, rng: random.Random) -> None:
        inputs = model.graph.input
        if not inputs:
            return
        if rng.random() < 0.5 and len(inputs) > 0:
            del inputs[rng.randrange(len(inputs))]
        else:
            inputs.append(copy.deepcopy(inputs[rng.randrange(len(inputs))]))

    @staticmethod
    def _mutate_inputs(inputs: dict[str, np.ndarray], rng: random.Random) -> None:
        name = rng.choice(sorted(inputs))
        x = inputs[name]
        roll = rng.random()
        if roll < 0.4:
            shape = list(x.shape) or [1]
            shape[rng.randrange(len(shape))] = rng.choice([0, 1, 2, 7, 33])
            inputs[name] = _random_array(rng, x.dtype, tuple(shape))
        elif roll < 0.6:
            inputs[name] = x.reshape(-1) if x.ndim != 1 else x.reshape(1, -1)
        elif roll < 0.8:
            inputs[name] = _random_array(rng, np.dtype(rng.choice(_DTYPES)), x.shape)
        elif x.size and x.dtype.kind in "iu":
            x.reshape(-1)[rng.randrange(x.size)] = rng.choice(
                [np.iinfo(x.dtype).max, np.iinfo(x.dtype).min]
            )


# --- running cases -----------------------------------------------------------------------


def run_case(model: bytes, inputs: dict[str, np.ndarray], limits: Limits) -> Outcome:
    """Runs one case in this process (the worker's job) and classifies how it ended."""
    from .session import InferenceSession

    try:
        session = InferenceSession(model, limits=limits, pool_size=1)
        try:
            session.run(None, inputs)
        finally:
            session.close()
    except Exception as e:
        return classify(e)
    return classify(None)


def _worker(conn: Connection, limits: Limits) -> None:
    try:
        while True:
            job = conn.recv()
            if job is None:
                return
            model, inputs = job
            conn.send(asdict(run_case(model, inputs, limits)))
    except (EOFError, BrokenPipeError, KeyboardInterrupt):
        return  # the campaign is gone (stopped or killed): nothing to report to


class _Worker:
    """A process running cases one at a time; if it dies, the case it held is a finding."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._start()

    def _start(self) -> None:
        ctx = mp.get_context("spawn")  # a fresh interpreter: no wasmtime state forked
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_worker, args=(child, self.limits), daemon=True)
        self.process.start()
        child.close()

    def run(self, case: Case, deadline: float) -> Outcome:
        try:
            self.conn.send((case.model, case.inputs))
            if self.conn.poll(deadline):
                return Outcome(**self.conn.recv())
            message = f"the worker did not answer within {deadline:.0f} s"
            self.process.kill()
        except (EOFError, OSError, BrokenPipeError):
            message = "the worker process died"
        self.process.join(5)
        code = self.process.exitcode
        self.conn.close()
        self._start()
        return Outcome("host-crash", f"{message} (exit code {code})")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.send(None)
        self.process.join(5)
        if self.process.is_alive():
            self.process.kill()


def _deadline(limits: Limits) -> float:
    # Loading and running are two guest calls, each bounded by the timeout; beyond that,
    # generous room for the host's own work. Only a hung host exceeds it.
    return 2 * (limits.timeout or 60.0) + 60.0


@dataclass
class Finding:
    key: str
    outcome: Outcome
    case: Case
    count: int = 1
    path: Path | None = None


@dataclass
class Campaign:
    """What a fuzzing campaign saw: counts per outcome class and its distinct findings."""

    counts: Counter = field(default_factory=Counter)
    findings: dict[str, Finding] = field(default_factory=dict)

    def record(self, case: Case, outcome: Outcome) -> None:
        self.counts[outcome.kind] += 1
        key = outcome.finding_key
        if key is None:
            return
        if key in self.findings:
            self.findings[key].count += 1
        else:
            self.findings[key] = Finding(key, outcome, case)


def fuzz(
    seed_model: bytes,
    iterations: int,
    seed: int,
    limits: Limits,
    jobs: int = 1,
    on_case: Callable[[Case, Outcome], None] | None = None,
) -> Campaign:
    """Runs `iterations` mutated cases of `seed_model` in `jobs` worker processes.

    Raises:
        InvalidModel: the seed model cannot be parsed.
    """
    from concurrent.futures import ThreadPoolExecutor

    mutator = Mutator(seed_model, seed)
    campaign = Campaign()
    workers = [_Worker(limits) for _ in range(max(1, jobs))]
    free = list(workers)
    deadline = _deadline(limits)

    def run(case: Case) -> tuple[Case, Outcome]:
        worker = free.pop()
        try:
            return case, worker.run(case, deadline)
        finally:
            free.append(worker)

    try:
        with ThreadPoolExecutor(max_workers=len(workers)) as pool:
            cases: Iterator[Case] = (mutator.case(i) for i in range(iterations))
            # pool.map keeps the order of cases: the campaign's record is deterministic.
            for case, outcome in pool.map(run, cases):
                campaign.record(case, outcome)
                if on_case:
                    on_case(case, outcome)
    finally:
        for w in workers:
            w.close()
    return campaign


# --- reproducers --------------------------------------------------------------------------


def save_reproducer(corpus: Path, finding: Finding) -> Path:
    """Writes model.onnx, inputs.npz and outcome.json under corpus/<class>-<hash>/."""
    digest = hashlib.sha256(finding.key.encode()).hexdigest()[:12]
    directory = corpus / f"{finding.outcome.kind.replace(':', '-')}-{digest}"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "model.onnx").write_bytes(finding.case.model)
    with open(directory / "inputs.npz", "wb") as f:
        np.savez(f, **finding.case.inputs)
    doc = {
        "key": finding.key,
        "outcome": asdict(finding.outcome),
        "case": finding.case.index,
        "mutation": finding.case.mutation,
        "count": finding.count,
    }
    (directory / "outcome.json").write_text(json.dumps(doc, indent=2) + "\n")
    finding.path = directory
    return directory


def load_reproducer(path: Path) -> tuple[bytes, dict[str, np.ndarray], dict]:
    """The model, inputs and recorded outcome of a reproducer (its directory or a file in it).

    Raises:
        OSError: a file of the reproducer cannot be read.
        InvalidArgument: the reproducer is malformed.
    """
    directory = path if path.is_dir() else path.parent
    model = (directory / "model.onnx").read_bytes()
    try:
        with np.load(directory / "inputs.npz", allow_pickle=False) as archive:
            inputs = {k: archive[k] for k in archive.files}
        recorded = json.loads((directory / "outcome.json").read_text())
    except (ValueError, KeyError) as e:
        raise InvalidArgument(f"{directory} is not a wasmhost fuzz reproducer: {e}") from None
    return model, inputs, recorded


def replay(path: Path, limits: Limits) -> tuple[Outcome, dict]:
    """Re-runs a reproducer in a worker process: (what happened now, what was recorded)."""
    model, inputs, recorded = load_reproducer(path)
    worker = _Worker(limits)
    try:
        outcome = worker.run(Case(-1, "replay", model, inputs), _deadline(limits))
    finally:
        worker.close()
    return outcome, recorded


__all__ = [
    "FINDINGS",
    "Campaign",
    "Case",
    "Finding",
    "Mutator",
    "Outcome",
    "classify",
    "fuzz",
    "load_reproducer",
    "replay",
    "run_case",
    "save_reproducer",
]
