"""Fuzzing untrusted models: structure-aware mutations of an ONNX model and its inputs,
each case run in a limited isolate inside a worker process, outcomes classified and
distinct findings saved as reproducers.

A worker process stands between the fuzzer and the isolates so that even a crash of
the host itself (which must never happen) is caught and reported as a finding.

Differential fuzzing (`differential=True`) also runs every case wasmhost answers a second
time in the same session, and in onnxruntime and native tract (each in a worker process of
its own, see `differential`): an answer that changed is `nondeterministic`, an answer the
peers agree against is a `mismatch`.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import math
import multiprocessing as mp
import random
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import (
    InvalidArgument,
    InvalidModel,
    TimeoutExceeded,
    WasmHostError,
)
from ..runtime.limits import Limits
from ..runtime.wire import DTYPES as EXCHANGED
from .differential import available_peers, compare, difference, graph_facts, peer_worker

#: Outcome classes that are findings: the interpreter or the host misbehaved.
FINDINGS = (
    "host-crash", "protocol-error", "trap:panic", "trap:crash", "trap:oom", "mismatch",
    "nondeterministic",
)  # fmt: skip
#: Findings that are wasmhost's own fault: a crash of the host, a wrong or changing answer.
FAILURES = ("host-crash", "mismatch", "nondeterministic")
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
    timeout, fuel, protocol-error, host-crash, or (differential) mismatch or
    nondeterministic.

    Differential runs add `check`, what the comparison of an ok case said (agree,
    peers-disagree, no-peer, random; compare-error for outputs it could not compare), and
    `detail`: how each peer did (`peers`), the model's operator types (`ops`) and, for a
    mismatch, nondeterministic or peers-disagree case, the output that differed (`output`,
    `what`, `worst_abs_diff`, `text`)."""

    kind: str
    message: str = ""
    panic: str | None = None
    check: str | None = None
    detail: dict[str, Any] | None = None

    @property
    def finding_key(self) -> str | None:
        """Same key, same finding: the class and the panic site (or the message); for a
        wrong or changing answer, what differed, in which output, among which operators."""
        if self.kind not in FINDINGS:
            return None
        if self.kind in ("mismatch", "nondeterministic") and self.detail:
            d = self.detail
            what = f"{d.get('what')} {d.get('output')}"
            if d.get("nonfinite_inputs"):
                what += " (non-finite inputs)"
            return f"{self.kind} {what} in {','.join(d.get('ops', []))}"
        if self.panic and (m := _PANIC_LOCATION.search(self.panic)):
            return f"{self.kind} {m[1]}"
        text = self.panic or self.message
        return f"{self.kind} {re.sub(r'[0-9]+', 'N', text)[:200]}"


def classify(error: BaseException | None) -> Outcome:
    """The outcome class of what a case raised (None: it ran): each error class carries
    its own (`WasmHostError.fuzz_class`)."""
    if error is None:
        return Outcome("ok")
    message = str(error)
    if isinstance(error, WasmHostError):
        return Outcome(error.outcome, message, getattr(error, "panic", None))
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
        return np.asarray(gen.random(shape) > 0.5)  # an array even of rank 0
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


@dataclass
class HostRun:
    """What the worker saw of a case: its outcome and, for a differential run that went
    well, the outputs, their names, the model's operators, its random ones (whether one is
    unseeded), and how a second run in the same session differed (None: it did not)."""

    outcome: Outcome
    outputs: list | None = None
    names: list[str] = field(default_factory=list)
    ops: list[str] = field(default_factory=list)
    random: list[str] = field(default_factory=list)
    unseeded: bool = False
    rerun: dict | None = None


def run_case(model: bytes, inputs: dict[str, np.ndarray], limits: Limits) -> Outcome:
    """Runs one case in this process (the worker's job) and classifies how it ended."""
    return host_run(model, inputs, limits).outcome


def host_run(
    model: bytes, inputs: dict[str, np.ndarray], limits: Limits, differential: bool = False
) -> HostRun:
    """Runs one case in this process; differential: keeps the outputs and, unless a random
    operator without a seed makes answers differ by design, runs it again in the same
    session (same isolate, same inputs) to compare the answers bit for bit."""
    from ..runtime.session import InferenceSession

    try:
        session = InferenceSession(model, limits=limits, pool_size=1)
        try:
            outputs = session.run(None, inputs)
            if not differential:
                return HostRun(Outcome("ok"))
            facts = graph_facts(model, inputs)
            names = [o.name for o in session.get_outputs()]
            run = HostRun(Outcome("ok"), outputs, names, facts.ops, facts.random, facts.unseeded)
            if not facts.unseeded:
                run.rerun = _rerun(session, inputs, outputs, names)
            return run
        finally:
            session.close()
    except Exception as e:
        return HostRun(classify(e))


def _rerun(
    session: Any, inputs: dict[str, np.ndarray], first: list, names: list[str]
) -> dict | None:
    """How a second run of the session differs from its first (None: bit for bit the same)."""
    try:
        again = session.run(None, inputs)
    except TimeoutExceeded:
        return None  # the wall clock, not the answer
    except Exception as e:
        outcome = classify(e)
        text = f"the second run ended in {outcome.kind}: {outcome.panic or outcome.message}"
        return {"output": None, "what": "error", "worst_abs_diff": math.inf, "text": text[:400]}
    return difference(again, first, names, tol=None)


def _worker(conn: Connection, limits: Limits) -> None:
    try:
        while True:
            job = conn.recv()
            if job is None:
                return
            model, inputs, differential = job
            conn.send(host_run(model, inputs, limits, differential))
    except (EOFError, BrokenPipeError, KeyboardInterrupt):
        return  # the campaign is gone (stopped or killed): nothing to report to


class _Process:
    """A worker process answering jobs one at a time; when it dies or hangs it is replaced,
    and the job it held gets no answer (the caller gets why)."""

    def __init__(self, target: Callable[..., None], *args: Any) -> None:
        self.target, self.args = target, args
        self._start()

    def _start(self) -> None:
        ctx = mp.get_context("spawn")  # a fresh interpreter: no wasmtime state forked
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=self.target, args=(child, *self.args), daemon=True)
        self.process.start()
        child.close()

    def send(self, job: Any) -> str | None:
        """Hands the process a job; on failure, why (and the process is replaced)."""
        try:
            self.conn.send(job)
        except (OSError, BrokenPipeError):
            return self._restart("the worker process died")
        return None

    def receive(self, seconds: float) -> tuple[Any, str | None]:
        """(its answer, None), or (None, why not) when it died or took over `seconds`."""
        try:
            if self.conn.poll(max(0.0, seconds)):
                return self.conn.recv(), None
            message = f"the worker did not answer within {seconds:.0f} s"
            self.process.kill()
        except (EOFError, OSError, BrokenPipeError):
            message = "the worker process died"
        return None, self._restart(message)

    def _restart(self, message: str) -> str:
        self.process.join(5)
        code = self.process.exitcode
        self.conn.close()
        self._start()
        return f"{message} (exit code {code})"

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.send(None)
        self.process.join(5)
        if self.process.is_alive():
            self.process.kill()


class _Worker(_Process):
    """wasmhost's worker: if it dies, the case it held is a host-crash finding."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        super().__init__(_worker, limits)

    def run(self, case: Case, deadline: float, differential: bool = False) -> HostRun:
        why = self.send((case.model, case.inputs, differential))
        if why is None:
            answer, why = self.receive(deadline)
            if why is None:
                return answer
        return HostRun(Outcome("host-crash", why))


def _deadline(limits: Limits) -> float:
    # Loading and running are two guest calls, each bounded by the timeout; beyond that,
    # generous room for the host's own work. Only a hung host exceeds it.
    return 2 * (limits.timeout or 60.0) + 60.0


def _peer_deadline(limits: Limits) -> float:
    # A native engine, given a case wasmhost ran within its limits, gets as long.
    return 2 * (limits.timeout or 60.0) + 10.0


def _peer_memory(limits: Limits) -> int:
    # Native engines lay memory out otherwise than the guest: 4x its cap, at least 2 GiB.
    return max(4 * int(limits.memory), 2 << 30)


def _peers(differential: bool, peers: Sequence[str] | None) -> Sequence[str]:
    """The peers a run asks: none unless differential, by default those installed."""
    if not differential:
        return ()
    return available_peers() if peers is None else peers


class _Lane:
    """The worker processes of one job: wasmhost's, and for a differential run one per peer."""

    def __init__(self, limits: Limits, peers: Sequence[str] = ()) -> None:
        self.limits = limits
        self.host = _Worker(limits)
        self.peers = {p: _Process(peer_worker, p, _peer_memory(limits)) for p in peers}

    def run(self, case: Case, differential: bool = False) -> Outcome:
        run = self.host.run(case, _deadline(self.limits), differential)
        if not differential or run.outcome.kind != "ok":
            return run.outcome
        nonfinite = any(
            isinstance(a, np.ndarray) and a.dtype.kind == "f" and not np.isfinite(a).all()
            for a in case.inputs.values()
        )
        if run.random:  # random by design: nothing to compare with
            return judge(run, "random", {}, {}, nonfinite)
        answers, statuses = self._ask(case)
        try:
            verdict, found = compare(run.outputs or [], answers, run.names)
        except Exception as e:  # outputs of a kind the comparison does not know: a fuzzer bug
            verdict, found = "compare-error", {"text": f"{type(e).__name__}: {e}"[:300]}
        return judge(run, verdict, found, statuses, nonfinite)

    def _ask(self, case: Case) -> tuple[dict[str, list], dict[str, str]]:
        """Each peer's outputs (those that answered), and how each did: answered, refused,
        crashed (its process died or hung)."""
        end = time.monotonic() + _peer_deadline(self.limits)
        sent = {p: w.send((case.model, case.inputs)) for p, w in self.peers.items()}
        answers, statuses = {}, {}
        for peer, worker in self.peers.items():
            reply, why = None, sent[peer]
            if why is None:
                reply, why = worker.receive(end - time.monotonic())
            if why is not None:
                statuses[peer] = "crashed"
            elif reply[0] == "answered":
                answers[peer] = reply[1]
                statuses[peer] = "answered"
            else:
                statuses[peer] = "refused"
        return answers, statuses

    def close(self) -> None:
        for w in [self.host, *self.peers.values()]:
            w.close()


def judge(
    run: HostRun, verdict: str, found: dict, statuses: dict[str, str], nonfinite: bool = False
) -> Outcome:
    """The outcome of a case wasmhost answered, from the peers' verdict and its rerun:
    `mismatch` (a wrong first answer) before `nondeterministic` (a second answer that
    differs), else ok with the verdict as its check. `nonfinite`: an input holds NaN or
    infinity (where engines may differ legitimately, an argmax of NaNs say): noted in the
    detail and in the finding's key."""
    detail: dict[str, Any] = {"peers": statuses, "ops": run.ops}
    if run.random:
        detail["random"] = run.random
    if nonfinite:
        detail["nonfinite_inputs"] = True
    if verdict == "mismatch":
        against = " and ".join(found["against"])
        message = f"output {found['output']!r} differs from {against}: {found['text']}"
        return Outcome("mismatch", message, detail={**detail, **found, "rerun": run.rerun})
    if run.rerun is not None:
        message = f"a second run in the same session differs: output {run.rerun['output']!r}: "
        rerun = {**run.rerun, "peers_verdict": verdict}
        return Outcome("nondeterministic", message + run.rerun["text"], detail={**detail, **rerun})
    if verdict in ("peers-disagree", "compare-error"):
        detail.update(found)
    return Outcome("ok", check=verdict, detail=detail)


@dataclass
class Finding:
    key: str
    outcome: Outcome
    case: Case
    count: int = 1
    path: Path | None = None
    differential: bool = False


@dataclass
class Campaign:
    """What a fuzzing campaign saw: counts per outcome class, its distinct findings and,
    for a differential campaign, `checks`: how many ok cases each verdict had (agree,
    peers-disagree, no-peer, random) and how each peer did ("onnxruntime answered")."""

    counts: Counter = field(default_factory=Counter)
    findings: dict[str, Finding] = field(default_factory=dict)
    checks: Counter = field(default_factory=Counter)
    differential: bool = False

    def record(self, case: Case, outcome: Outcome) -> None:
        self.counts[outcome.kind] += 1
        if outcome.check:
            self.checks[outcome.check] += 1
        for peer, status in (outcome.detail or {}).get("peers", {}).items():
            self.checks[f"{peer} {status}"] += 1
        key = outcome.finding_key
        if key is None:
            return
        if key in self.findings:
            self.findings[key].count += 1
        else:
            self.findings[key] = Finding(key, outcome, case, differential=self.differential)


def fuzz(
    seed_model: bytes,
    iterations: int,
    seed: int,
    limits: Limits,
    jobs: int = 1,
    on_case: Callable[[Case, Outcome], None] | None = None,
    differential: bool = False,
    peers: Sequence[str] | None = None,
) -> Campaign:
    """Runs `iterations` mutated cases of `seed_model` in `jobs` worker processes;
    `differential`: checks each answer against a rerun and the `peers` (default: those
    installed, see `differential.available_peers`).

    Raises:
        InvalidModel: the seed model cannot be parsed.
    """
    from concurrent.futures import ThreadPoolExecutor

    mutator = Mutator(seed_model, seed)
    campaign = Campaign(differential=differential)
    lanes = [_Lane(limits, _peers(differential, peers)) for _ in range(max(1, jobs))]
    free = list(lanes)

    def run(case: Case) -> tuple[Case, Outcome]:
        lane = free.pop()
        try:
            return case, lane.run(case, differential)
        finally:
            free.append(lane)

    try:
        with ThreadPoolExecutor(max_workers=len(lanes)) as pool:
            cases: Iterator[Case] = (mutator.case(i) for i in range(iterations))
            # pool.map keeps the order of cases: the campaign's record is deterministic.
            for case, outcome in pool.map(run, cases):
                campaign.record(case, outcome)
                if on_case:
                    on_case(case, outcome)
    finally:
        for lane in lanes:
            lane.close()
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
        "differential": finding.differential,
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
    if not path.exists():  # name the path given, not a file inside it
        raise FileNotFoundError(2, "No such file or directory", str(path))
    directory = path if path.is_dir() else path.parent
    model = (directory / "model.onnx").read_bytes()
    try:
        with np.load(directory / "inputs.npz", allow_pickle=False) as archive:
            inputs = {k: archive[k] for k in archive.files}
        recorded = json.loads((directory / "outcome.json").read_text())
    except (ValueError, KeyError) as e:
        raise InvalidArgument(f"{directory} is not a wasmhost fuzz reproducer: {e}") from None
    return model, inputs, recorded


def replay(
    path: Path,
    limits: Limits,
    differential: bool | None = None,
    peers: Sequence[str] | None = None,
) -> tuple[Outcome, dict]:
    """Re-runs a reproducer in a worker process: (what happened now, what was recorded).
    `differential` (default: whether its campaign was) checks the answer against a rerun
    and the peers (default: those installed)."""
    model, inputs, recorded = load_reproducer(path)
    if differential is None:
        differential = bool(recorded.get("differential"))
    lane = _Lane(limits, _peers(differential, peers))
    try:
        outcome = lane.run(Case(-1, "replay", model, inputs), differential)
    finally:
        lane.close()
    return outcome, recorded


__all__ = [
    "FAILURES",
    "FINDINGS",
    "Campaign",
    "Case",
    "Finding",
    "HostRun",
    "Mutator",
    "Outcome",
    "classify",
    "fuzz",
    "host_run",
    "judge",
    "load_reproducer",
    "replay",
    "run_case",
    "save_reproducer",
]
