"""Runs are independent: whatever ran before on a session, and whatever runs beside it,
a run answers exactly what a fresh session answers on its first run.

A property test over real architectures: recurrent ones whose tract ops keep state
(LSTM, GRU, Scan), a CNN with a dynamic batch dim and two of the onnx package's models.
Hypothesis draws a schedule of steps; each step is 1 to 3 calls made at once from as
many threads on one session (with as many isolates). A call runs one of a few
pre-generated input sets (of different shapes along the dynamic dims), for all outputs
or some of them, or feeds an input the session must refuse: a wrong dtype (refused by
the host), dims that disagree with each other (refused by the guest), or one too big
for the memory limit (traps the isolate, which is discarded). Every good run's outputs
must be bit for bit those of a fresh session's first run on the same input set, and
those references are checked against onnxruntime, within a tolerance.

Each model is tested twice: one call at a time, where which isolate serves a call is
decided (the session reuses the one last released), so a failure replays and shrinks to
a minimal schedule; and up to 3 calls at once, where that is up to the threads, so a
failure may not replay and Hypothesis may report it as flaky (the assertion it wraps
still says what differed).
"""

from __future__ import annotations

import concurrent.futures
import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import onnx
import pytest
from conftest import LIGHT, assert_outputs_equal, f32, make_model, reference
from hypothesis import Phase, event, given, settings
from hypothesis import strategies as st
from onnx import helper, numpy_helper

import wasmhost

#: Most calls made at once, in the concurrent variant.
THREADS = 3
#: Small models run under this cap, so that a modest input can exceed it.
SMALL = wasmhost.Limits(memory="64MiB")


class BadFeed(NamedTuple):
    """A feed the session must refuse (arrays of ones of these shapes), and how."""

    shapes: dict[str, tuple[int, ...]]
    raises: type[Exception] | tuple[type[Exception], ...]
    dtype: type = np.float32

    def make(self) -> dict[str, np.ndarray]:
        return {name: np.ones(shape, self.dtype) for name, shape in self.shapes.items()}


@dataclass(frozen=True)
class Case:
    name: str
    model: bytes | Path
    limits: wasmhost.Limits
    #: Input sets, by index; they differ in values and, where dims are dynamic, shapes.
    sets: list[dict[str, np.ndarray]]
    outputs: list[str]
    #: Feeds the session must refuse, by description.
    bad: dict[str, BadFeed]

    def output_choices(self) -> list[tuple[str, ...] | None]:
        """None (all outputs), each output alone, and all of them in reverse order."""
        subsets = [(name,) for name in self.outputs]
        if len(self.outputs) > 1:
            subsets.append(tuple(reversed(self.outputs)))
        return [None, *subsets]

    def describe(self, index: int) -> str:
        feeds = self.sets[index]
        return f"input set {index} ({', '.join(f'{k} {list(v.shape)}' for k, v in feeds.items())})"


def wrong_dtype(feeds: dict[str, np.ndarray]) -> BadFeed:
    """Refused by the host, before the guest sees it."""
    shapes = {name: array.shape for name, array in feeds.items()}
    return BadFeed(shapes, wasmhost.InvalidInput, np.float64)


def mismatched(**shapes: tuple[int, ...]) -> BadFeed:
    """Dims that disagree with each other: refused by the guest (either class will do)."""
    return BadFeed(shapes, (wasmhost.InvalidInput, wasmhost.UnsupportedModel))


def too_big(**shapes: tuple[int, ...]) -> BadFeed:
    """Fits the 64 MiB isolate as a request, but the run does not: the isolate traps."""
    return BadFeed(shapes, wasmhost.MemoryLimitExceeded)


def weights(rng: np.random.Generator, **shapes: tuple[int, ...]) -> list[onnx.TensorProto]:
    return [
        numpy_helper.from_array((rng.standard_normal(s) * 0.5).astype(np.float32), name)
        for name, s in shapes.items()
    ]


def normal(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.standard_normal(shape, dtype=np.float32)


def lstm_case() -> Case:
    # With an initial state given, as PyTorch exports it.
    rng = np.random.default_rng(1)
    size, hidden = 3, 4
    model = make_model(
        [
            helper.make_node(
                "LSTM",
                ["x", "W", "R", "B", "", "h0", "c0"],
                ["y", "y_h", "y_c"],
                hidden_size=hidden,
            )
        ],
        [f32("x", ["seq", "batch", size]), *(f32(n, [1, "batch", hidden]) for n in ("h0", "c0"))],
        [
            f32("y", ["seq", 1, "batch", hidden]),
            *(f32(n, [1, "batch", hidden]) for n in ("y_h", "y_c")),
        ],
        weights(rng, W=(1, 4 * hidden, size), R=(1, 4 * hidden, hidden), B=(1, 8 * hidden)),
    )

    sets = [
        {
            "x": normal(rng, seq, batch, size),
            "h0": normal(rng, 1, batch, hidden),
            "c0": normal(rng, 1, batch, hidden),
        }
        for seq, batch in [(5, 2), (3, 1), (7, 3)]
    ]
    bad = {
        "wrong dtype": wrong_dtype(sets[0]),
        "x batch 2, h0/c0 batch 3": mismatched(
            x=(4, 2, size), h0=(1, 3, hidden), c0=(1, 3, hidden)
        ),
        "too big": too_big(x=(700, 3000, size), h0=(1, 3000, hidden), c0=(1, 3000, hidden)),
    }
    return Case("lstm", model, SMALL, sets, ["y", "y_h", "y_c"], bad)


def gru_case() -> Case:
    rng = np.random.default_rng(2)
    size, hidden = 3, 4
    model = make_model(
        [
            helper.make_node(
                "GRU", ["x", "W", "R", "B"], ["y", "y_h"], hidden_size=hidden, linear_before_reset=1
            )
        ],
        [f32("x", ["seq", "batch", size])],
        [f32("y", ["seq", 1, "batch", hidden]), f32("y_h", [1, "batch", hidden])],
        weights(rng, W=(1, 3 * hidden, size), R=(1, 3 * hidden, hidden), B=(1, 6 * hidden)),
    )
    sets = [{"x": normal(rng, *shape)} for shape in [(5, 2, size), (3, 1, size), (8, 3, size)]]
    bad = {
        "wrong dtype": wrong_dtype(sets[0]),
        "too big": too_big(x=(1000, 3000, size)),
    }
    return Case("gru", model, SMALL, sets, ["y", "y_h"], bad)


def scan_case() -> Case:
    """A cumulative sum: the state is the running sum, the scan output every partial sum."""
    rng = np.random.default_rng(3)
    # The body's dims are left unnamed: tract does not unify named ones with the outer
    # graph's concrete dims.
    body = helper.make_graph(
        [
            helper.make_node("Add", ["sum_in", "x_t"], ["sum_out"]),
            helper.make_node("Identity", ["sum_out"], ["y_t"]),
        ],
        "cumsum",
        [f32("sum_in", [None]), f32("x_t", [None])],
        [f32("sum_out", [None]), f32("y_t", [None])],
    )
    model = make_model(
        [helper.make_node("Scan", ["init", "x"], ["total", "sums"], body=body, num_scan_inputs=1)],
        [f32("init", ["d"]), f32("x", ["seq", "d"])],
        [f32("total", ["d"]), f32("sums", ["seq", "d"])],
        opset=16,
    )

    sets = [
        {"init": normal(rng, d), "x": normal(rng, seq, d)} for seq, d in [(4, 3), (6, 3), (5, 2)]
    ]
    bad = {
        "wrong dtype": wrong_dtype(sets[0]),
        "init [3], x [4, 2]": mismatched(init=(3,), x=(4, 2)),
        "too big": too_big(init=(1000,), x=(8000, 1000)),
    }
    return Case("scan", model, SMALL, sets, ["total", "sums"], bad)


def cnn_case() -> Case:
    rng = np.random.default_rng(4)
    model = make_model(
        [
            helper.make_node("Conv", ["x", "k", "kb"], ["c"], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["c"], ["r"]),
            helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
            helper.make_node("Flatten", ["p"], ["f"]),
            helper.make_node("Gemm", ["f", "w", "wb"], ["g"]),
            helper.make_node("Softmax", ["g"], ["y"], axis=-1),
        ],
        [f32("x", ["batch", 2, 6, 6])],
        [f32("y", ["batch", 5])],
        weights(rng, k=(8, 2, 3, 3), kb=(8,), w=(8 * 3 * 3, 5), wb=(5,)),
    )
    sets = [{"x": normal(rng, batch, 2, 6, 6)} for batch in (1, 4, 2)]
    bad = {
        "wrong dtype": wrong_dtype(sets[0]),
        "too big": too_big(x=(100_000, 2, 6, 6)),
    }
    return Case("cnn", model, SMALL, sets, ["y"], bad)


def light_case(stem: str) -> Callable[[], Case]:
    """One of the onnx package's models: fixed input shape, so the sets differ in values."""

    def make() -> Case:
        path = LIGHT / f"light_{stem}.onnx"
        graph = onnx.load(path).graph
        initializers = {t.name for t in graph.initializer}
        (arg,) = [i for i in graph.input if i.name not in initializers]
        shape = [d.dim_value for d in arg.type.tensor_type.shape.dim]
        rng = np.random.default_rng(5)
        sets = [{arg.name: normal(rng, *shape)} for _ in range(3)]
        outputs = [o.name for o in graph.output]
        return Case(
            stem, path, wasmhost.Limits(), sets, outputs, {"wrong dtype": wrong_dtype(sets[0])}
        )

    return make


CASES: dict[str, Callable[[], Case]] = {
    "lstm": lstm_case,
    "gru": gru_case,
    "scan": scan_case,
    "cnn": cnn_case,
    "squeezenet": light_case("squeezenet"),
    "shufflenet": light_case("shufflenet"),
}


@functools.cache
def case(name: str) -> Case:
    return CASES[name]()


#: (model, input set) -> outputs by name of a fresh session's first run.
REFERENCES: dict[tuple[str, int], dict[str, np.ndarray]] = {}


def fresh_reference(c: Case, index: int) -> dict[str, np.ndarray]:
    """A fresh session's first run on input set `index`, checked against onnxruntime."""
    key = (c.name, index)
    if key not in REFERENCES:
        feeds = c.sets[index]
        with wasmhost.InferenceSession(c.model, limits=c.limits, pool_size=1) as fresh:
            got = fresh.run(None, feeds)
        try:
            assert_outputs_equal(got, reference(c.model, feeds))
        except AssertionError as e:
            raise AssertionError(
                f"{c.name}, {c.describe(index)}: a fresh session's first run disagrees with "
                f"onnxruntime: {e}"
            ) from None
        REFERENCES[key] = dict(zip(c.outputs, got, strict=True))
    return REFERENCES[key]


class Run(NamedTuple):
    input_set: int
    outputs: tuple[str, ...] | None  # None: all


class Bad(NamedTuple):
    feed: str  # a key of Case.bad


@st.composite
def calls(draw: st.DrawFn, c: Case) -> Run | Bad:
    if draw(st.integers(0, 4)) == 4:  # one call in five, about
        return Bad(draw(st.sampled_from(sorted(c.bad))))
    return Run(draw(st.integers(0, len(c.sets) - 1)), draw(st.sampled_from(c.output_choices())))


def schedules(c: Case, threads: int) -> st.SearchStrategy[list[list[Run | Bad]]]:
    """Steps of 1 to `threads` calls made at once."""
    return st.lists(st.lists(calls(c), min_size=1, max_size=threads), min_size=1, max_size=6)


def identical(got: np.ndarray, expected: np.ndarray) -> str | None:
    """None if the arrays are equal bit for bit (NaN payloads and zero signs included),
    else how they differ."""
    if got.dtype != expected.dtype or got.shape != expected.shape:
        return f"got {got.dtype} {list(got.shape)}, not {expected.dtype} {list(expected.shape)}"
    bits = np.dtype(f"u{expected.dtype.itemsize}")
    same = np.ascontiguousarray(got).view(bits) == np.ascontiguousarray(expected).view(bits)
    if same.all():
        return None
    diff = np.abs(got.astype(np.float64) - expected.astype(np.float64))
    return (
        f"{np.count_nonzero(~same)} of {same.size} elements differ "
        f"(max abs difference {np.nanmax(diff, initial=0):.6g})"
    )


def call(sess: wasmhost.InferenceSession, c: Case, what: Run | Bad, start: threading.Barrier):
    feeds = c.bad[what.feed].make() if isinstance(what, Bad) else c.sets[what.input_set]
    names = list(what.outputs) if isinstance(what, Run) and what.outputs else None
    start.wait()  # the calls of a step start together
    return sess.run(names, feeds)


def check(c: Case, what: Run | Bad, future: concurrent.futures.Future, where: str) -> None:
    error = future.exception()
    if isinstance(what, Bad):
        expected = c.bad[what.feed].raises
        assert isinstance(error, expected), (
            f"{where}: bad feed '{what.feed}' {c.bad[what.feed].shapes} should raise {expected}, "
            f"got {error!r}"
        )
        return
    where = f"{where}: {c.describe(what.input_set)}, outputs {what.outputs or 'all'}"
    if error is not None:
        raise AssertionError(f"{where}: raised {error!r}") from error
    names = list(what.outputs or c.outputs)
    got = future.result()
    assert len(got) == len(names), f"{where}: {len(got)} outputs for {names}"
    reference = fresh_reference(c, what.input_set)
    for name, array in zip(names, got, strict=True):
        problem = identical(array, reference[name])
        assert problem is None, (
            f"{where}: output '{name}' is not a fresh session's first run, bit for bit: {problem}"
        )


#: The real architectures cost a second or more per schedule: fewer of them, and the
#: small models built here (where the recurrent state lived) the full count.
REAL = ("squeezenet", "shufflenet")


@pytest.mark.parametrize("threads", [1, THREADS], ids=["sequential", "concurrent"])
@pytest.mark.parametrize("name", [n for n in CASES if n not in REAL])
@settings(max_examples=20, deadline=None, derandomize=True, phases=[Phase.generate, Phase.shrink])
@given(data=st.data())
def test_runs_equal_a_fresh_sessions_first_run(name, threads, data):
    check_schedule(name, threads, data)


@pytest.mark.parametrize("threads", [1, THREADS], ids=["sequential", "concurrent"])
@pytest.mark.parametrize("name", REAL)
@settings(max_examples=8, deadline=None, derandomize=True, phases=[Phase.generate, Phase.shrink])
@given(data=st.data())
def test_real_architectures_equal_a_fresh_sessions_first_run(name, threads, data):
    check_schedule(name, threads, data)


def check_schedule(name: str, threads: int, data: st.DataObject) -> None:
    c = case(name)
    for index in range(len(c.sets)):
        fresh_reference(c, index)  # made, and checked against onnxruntime, once
    schedule = data.draw(schedules(c, threads), label="schedule")
    with (
        wasmhost.InferenceSession(c.model, limits=c.limits, pool_size=threads) as sess,
        concurrent.futures.ThreadPoolExecutor(threads) as pool,
    ):
        run_no = 0  # calls numbered in schedule order; those of a step run in any order
        for step_no, step in enumerate(schedule):
            event(f"{len(step)} call(s) at once")
            start = threading.Barrier(len(step))
            futures = [pool.submit(call, sess, c, what, start) for what in step]
            concurrent.futures.wait(futures)
            for pos, (what, future) in enumerate(zip(step, futures, strict=True)):
                if isinstance(what, Bad):
                    event(f"bad feed: {what.feed}")
                others = [w for i, w in enumerate(step) if i != pos]
                where = (
                    f"{c.name}, run #{run_no} (step {step_no}; steps before: "
                    f"{schedule[:step_no] or 'none'}; made at the same time: {others or 'nothing'})"
                )
                check(c, what, future, where)
                run_no += 1
