"""`wasmhost fuzz`: mutations, classification, determinism, reproducers, host-crash capture,
and differential fuzzing (comparisons with onnxruntime and native tract, reruns)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import ClassVar

import msgpack
import numpy as np
import onnx
import pytest
from conftest import (
    OPSET,
    SQUEEZENET,
    assert_outputs_equal,
    f32,
    make_model,
    reference,
    wasmhost_cli,
)
from guests import LOAD_AT, RUN_AT, RUN_OK, guest, wat_bytes
from onnx import TensorProto, helper, numpy_helper

import wasmhost
from wasmhost.tools import differential as diff
from wasmhost.tools import fuzz as fz

LIMITS = wasmhost.Limits(memory="128MiB", timeout=10)


def small_model() -> bytes:
    return make_model(
        [
            helper.make_node("Transpose", ["x"], ["t"], perm=[1, 0]),
            helper.make_node("MatMul", ["x", "t"], ["m"]),
            helper.make_node("Softmax", ["m"], ["y"], axis=1),
        ],
        [f32("x", ["n", 4])],
        [f32("y", ["n", "n"])],
    )


def test_mutations_are_deterministic_and_varied():
    a, b = fz.Mutator(small_model(), seed=7), fz.Mutator(small_model(), seed=7)
    cases = [a.case(i) for i in range(60)]
    for case in cases:
        again = b.case(case.index)
        assert (again.mutation, again.model) == (case.mutation, case.model)
        assert again.inputs.keys() == case.inputs.keys()
        for k in case.inputs:
            np.testing.assert_array_equal(again.inputs[k], case.inputs[k])
    kinds = {part for c in cases for part in c.mutation.split("+")}
    assert {"bit-flip", "truncate", "attribute", "op-type", "wiring", "opset"} <= kinds
    assert len({c.model for c in cases}) > 40
    other = fz.Mutator(small_model(), seed=8)
    assert [other.case(i).model for i in range(10)] != [c.model for c in cases[:10]]


def test_classification():
    assert fz.classify(None).kind == "ok"
    assert fz.classify(wasmhost.InvalidModel("x")).kind == "error:invalid_model"
    assert fz.classify(wasmhost.MemoryLimitExceeded("x")).kind == "trap:oom"
    assert fz.classify(wasmhost.TimeoutExceeded("x")).kind == "timeout"
    assert fz.classify(wasmhost.FuelExhausted("x")).kind == "fuel"
    panic = fz.classify(wasmhost.GuestCrash("m", panic="boom (at tract-core/src/a.rs:3:9)"))
    # Keyed by the panic's site, file and line.
    assert panic.kind == "trap:panic" and panic.finding_key == "trap:panic tract-core/src/a.rs:3"
    assert fz.classify(wasmhost.GuestCrash("m")).kind == "trap:crash"
    assert fz.classify(KeyError("bug")).kind == "host-crash"
    assert fz.classify(wasmhost.InvalidInput("x")).finding_key is None


def test_campaign_is_deterministic():
    counts = [fz.fuzz(small_model(), 40, seed=3, limits=LIMITS, jobs=j).counts for j in (1, 2)]
    assert counts[0] == counts[1]
    assert sum(counts[0].values()) == 40
    assert counts[0]["ok"] > 0


class _Boom:
    """Unpickling this kills the process that does it: a stand-in for a host crash."""

    def __reduce__(self):
        return (os._exit, (3,))


def test_a_dying_worker_is_a_host_crash_finding_and_is_replaced():
    worker = fz._Worker(LIMITS)
    try:
        x = np.ones((2, 4), np.float32)
        crash = worker.run(fz.Case(0, "boom", small_model(), {"x": _Boom()}), deadline=60)
        assert crash.outcome.kind == "host-crash" and "exit code 3" in crash.outcome.message
        fine = worker.run(fz.Case(1, "none", small_model(), {"x": x}), deadline=60)
        assert fine.outcome.kind == "ok"
    finally:
        worker.close()


def test_reproducer_round_trip(tmp_path):
    model = make_model(
        [helper.make_node("Gather", ["t", "i"], ["y"])],
        [f32("t", [4]), helper.make_tensor_value_info("i", 7, [1])],
        [f32("y", [1])],
    )
    inputs = {"t": np.zeros(4, np.float32), "i": np.array([9], np.int64)}
    outcome = fz.run_case(model, inputs, LIMITS)
    assert outcome.kind == "trap:panic"  # tract 0.23.9 panics on an out-of-range index
    finding = fz.Finding(outcome.finding_key, outcome, fz.Case(5, "hand", model, inputs))
    path = fz.save_reproducer(tmp_path, finding)
    recorded = json.loads((path / "outcome.json").read_text())
    assert recorded["outcome"]["kind"] == "trap:panic" and recorded["case"] == 5
    again, _ = fz.replay(path / "outcome.json", LIMITS)
    assert (again.kind, again.panic) == (outcome.kind, outcome.panic)


def test_cli_fuzz_squeezenet_30_iterations(tmp_path):
    corpus = tmp_path / "corpus"
    proc = wasmhost_cli("fuzz", SQUEEZENET, "--iterations", 30, "--corpus", corpus, "-j", 2)
    assert proc.returncode == 0, proc.stderr
    assert "30 cases, seed 0" in proc.stdout
    assert "error:invalid_model" in proc.stdout  # mutations that break the model are caught
    for reproducer in corpus.glob("*/outcome.json") if corpus.exists() else []:
        replayed = wasmhost_cli("fuzz", "--replay", reproducer)
        assert replayed.returncode == 0, replayed.stdout + replayed.stderr


def test_cli_fuzz_bad_arguments(tmp_path):
    assert wasmhost_cli("fuzz").returncode == 2
    garbage = tmp_path / "g.onnx"
    garbage.write_bytes(b"\x00\xff" * 50)
    proc = wasmhost_cli("fuzz", garbage, "-n", 3)
    assert proc.returncode == wasmhost.InvalidModel.exit_code, proc.stderr
    missing = tmp_path / "nothing" / "outcome.json"
    proc = wasmhost_cli("fuzz", "--replay", missing)
    assert proc.returncode == 11 and str(missing) in proc.stderr  # the path given, named


def test_memory_findings_are_saved_and_replay(tmp_path):
    """A model that exhausts its isolate's memory is a finding with a reproducer."""
    graph_model = make_model(
        [helper.make_node("Expand", ["x", "shape"], ["y"])],
        [f32("x", [1]), helper.make_tensor_value_info("shape", TensorProto.INT64, [1])],
        [f32("y", None)],
        check=False,
    )
    case = fz.Case(
        0, "seed", graph_model, {"x": np.ones(1, np.float32), "shape": np.array([1 << 28])}
    )
    limits = wasmhost.Limits(memory="64MiB")
    outcome = fz.run_case(case.model, case.inputs, limits)
    assert outcome.kind == "trap:oom" and outcome.finding_key
    campaign = fz.Campaign()
    for _ in range(2):
        campaign.record(case, outcome)
    (finding,) = campaign.findings.values()
    saved = fz.save_reproducer(tmp_path, finding)
    replayed, recorded = fz.replay(saved, limits)
    assert replayed.kind == recorded["outcome"]["kind"] == "trap:oom"


@pytest.mark.parametrize("seed", [0])
def test_cli_fuzz_is_reproducible(tmp_path, seed):
    model = tmp_path / "m.onnx"
    model.write_bytes(small_model())
    runs = []
    for i in range(2):
        (tmp_path / f"run{i}").mkdir()
        runs.append(wasmhost_cli("fuzz", model, "-n", 25, "--seed", seed, cwd=tmp_path / f"run{i}"))
    tables = [r.stdout[r.stdout.index("25 cases") :] for r in runs]
    assert runs[0].returncode == 0 and tables[0] == tables[1]


def test_a_worker_whose_campaign_is_gone_exits_quietly():
    import multiprocessing

    ours, theirs = multiprocessing.Pipe()
    theirs.close()
    fz._worker(ours, wasmhost.Limits())  # EOFError on recv: returns, no traceback


# --- differential fuzzing -----------------------------------------------------------------

PEERS = diff.available_peers()
NAMES = ["y", "z"]


def verdict(host, **peers):
    return diff.compare(host, peers, NAMES)


def test_compare_agreement_and_the_odd_one_out():
    y = np.array([1.0, -2.0, 3.0], np.float32)
    z = np.array([4, 5], np.int64)
    close = y + np.float32(1e-5)  # well inside rtol 1e-3
    assert verdict([y, z], onnxruntime=[close, z], tract=[y, z]) == ("agree", {})
    wrong = y.copy()
    wrong[1] = 7.0
    kind, detail = verdict([wrong, z], onnxruntime=[y, z], tract=[close, z])
    assert kind == "mismatch"
    assert detail["output"] == "y" and detail["what"] == "values"
    assert detail["worst_abs_diff"] == pytest.approx(9.0, rel=1e-4)
    assert detail["against"] == ["onnxruntime", "tract"] and set(detail["by_peer"]) == {
        "onnxruntime",
        "tract",
    }
    # One peer alone: disagreeing with it is a mismatch; no peer: nothing to say.
    assert verdict([wrong, z], tract=[y, z])[0] == "mismatch"
    assert verdict([wrong, z]) == ("no-peer", {})
    # Integers exactly: off by one is a mismatch, and the worst difference says by how much.
    kind, detail = verdict([y, z + np.array([0, 3])], onnxruntime=[y, z])
    assert (kind, detail["output"], detail["worst_abs_diff"]) == ("mismatch", "z", 3.0)


def test_compare_peers_that_disagree_say_nothing_of_wasmhost():
    y = np.array([1.0, 2.0], np.float32)
    other = np.array([1.0, 5.0], np.float32)
    kind, detail = verdict([y], onnxruntime=[other], tract=[y])
    assert kind == "peers-disagree"
    assert detail["between"] == ["onnxruntime", "tract"] and detail["host_agrees_with"] == ["tract"]
    kind, detail = verdict([y + 10], onnxruntime=[other], tract=[y])
    assert kind == "peers-disagree" and detail["host_agrees_with"] == []


def test_compare_nan_inf_and_scale():
    nan, inf = np.float32("nan"), np.float32("inf")
    y = np.array([nan, inf, -inf, 1.0], np.float32)
    assert verdict([y], onnxruntime=[y.copy()])[0] == "agree"  # NaN == NaN, same place
    moved = np.array([1.0, inf, -inf, nan], np.float32)
    kind, detail = verdict([y], onnxruntime=[moved])
    assert kind == "mismatch" and detail["worst_abs_diff"] == np.inf
    flipped = np.array([nan, -inf, -inf, 1.0], np.float32)
    assert verdict([y], onnxruntime=[flipped])[0] == "mismatch"
    # The absolute tolerance scales with the output's largest value: 3 in 1e6 is noise,
    # 3 in 10 is not.
    big = np.array([1e6, 1e-3], np.float32)
    assert verdict([big + np.array([0, 3], np.float32)], onnxruntime=[big])[0] == "agree"
    small = np.array([10.0, 1e-3], np.float32)
    assert verdict([small + np.array([0, 3], np.float32)], onnxruntime=[small])[0] == "mismatch"


def test_compare_dtype_shape_count_and_zipmap():
    y = np.zeros((2, 3), np.float32)
    for other, what in [
        (y.astype(np.float64), "dtype"),
        (y.reshape(3, 2), "shape"),
        (np.zeros((2, 3), np.int64), "dtype"),
    ]:
        kind, detail = verdict([y], onnxruntime=[other])
        assert (kind, detail["what"], detail["worst_abs_diff"]) == ("mismatch", what, np.inf)
    kind, detail = verdict([y, y], onnxruntime=[y])
    assert (kind, detail["what"]) == ("mismatch", "count")
    # A ZipMap: a list of {label: probability}, compared by labels and probabilities.
    rows = [{0: 0.25, 1: 0.75}, {0: 1.0, 1: 0.0}]
    same = [{0: np.float32(0.25), 1: 0.75}, {0: 1.0, 1: 0.0}]
    assert verdict([rows], onnxruntime=[same])[0] == "agree"
    kind, detail = verdict([rows], onnxruntime=[[{0: 0.5, 1: 0.5}, {0: 1.0, 1: 0.0}]])
    assert (kind, detail["output"], detail["worst_abs_diff"]) == ("mismatch", "y.values", 0.25)
    kind, detail = verdict([rows], onnxruntime=[[{1: 0.25, 0: 0.75}, {0: 1.0, 1: 0.0}]])
    assert (kind, detail["output"]) == ("mismatch", "y.labels")
    kind, detail = verdict([rows], onnxruntime=[np.array([[0.25, 0.75], [1.0, 0.0]])])
    assert (kind, detail["what"]) == ("mismatch", "structure")


def test_rerun_comparison_is_bit_for_bit_and_nan_aware():
    a = np.array([0.0, np.nan, 1.0], np.float32)
    b = a.copy()
    b.view(np.uint32)[1] |= 1  # another NaN payload: still NaN
    assert diff.difference([a], [b], ["y"], tol=None) is None
    c = a.copy()
    c[0] = -0.0
    assert diff.difference([c], [a], ["y"], tol=None)["what"] == "values"
    d = a.copy()
    d[2] = np.nextafter(np.float32(1), np.float32(2))
    assert diff.difference([d], [a], ["y"], tol=None)["output"] == "y"
    assert diff.difference([d], [a], ["y"], tol=diff.TOLERANCE) is None


def _random_model(node: onnx.NodeProto, opset: int = OPSET, extra_inputs=(), inits=()) -> bytes:
    return make_model(
        [node, helper.make_node("Add", ["x", "r"], ["y"])],
        [f32("x", [3]), *extra_inputs],
        [f32("y", [3])],
        list(inits),
        opset=opset,
    )


def test_random_operators_are_found_and_whether_they_are_seeded():
    unseeded = helper.make_node("RandomNormal", [], ["r"], shape=[3])
    facts = diff.graph_facts(_random_model(unseeded), {})
    assert (facts.random, facts.unseeded) == (["RandomNormal"], True)
    seeded = helper.make_node("RandomUniformLike", ["x"], ["r"], seed=1.0)
    facts = diff.graph_facts(_random_model(seeded), {})
    assert (facts.random, facts.unseeded) == (["RandomUniformLike"], False)
    assert "Add" in facts.ops
    # Dropout: random in training mode only.
    mode = helper.make_tensor_value_info("mode", TensorProto.BOOL, [])
    train = helper.make_node("Dropout", ["x", "", "mode"], ["r"])
    model = _random_model(train, extra_inputs=[mode])
    assert diff.graph_facts(model, {"mode": np.array(True)}).random == ["Dropout"]
    assert diff.graph_facts(model, {"mode": np.array(False)}).random == []
    off = numpy_helper.from_array(np.array(False), "off")
    model = _random_model(helper.make_node("Dropout", ["x", "", "off"], ["r"]), inits=[off])
    assert diff.graph_facts(model, {}).random == []
    inference = helper.make_node("Dropout", ["x"], ["r"])
    assert diff.graph_facts(_random_model(inference, opset=9), {}).random == []
    old = _random_model(inference, opset=6)  # before opset 7, training unless is_test
    assert diff.graph_facts(old, {}).random == ["Dropout"]
    # In a subgraph too.
    branch = helper.make_graph(
        [helper.make_node("Bernoulli", ["x"], ["b"])], "b", [], [f32("b", [3])]
    )
    model = make_model(
        [helper.make_node("If", ["c"], ["y"], then_branch=branch, else_branch=branch)],
        [f32("x", [3]), helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
        [f32("y", [3])],
    )
    assert diff.graph_facts(model, {}).random == ["Bernoulli"]
    assert diff.graph_facts(b"not a model", {}).random == []


class _FakeSession:
    """Stands in for InferenceSession in host_run: answers `answers` in turn."""

    answers: ClassVar[list] = []
    runs = 0

    def __init__(self, *args, **kwargs):
        pass

    def run(self, names, feeds):
        answer = type(self).answers[type(self).runs]
        type(self).runs += 1
        if isinstance(answer, Exception):
            raise answer
        return [answer]

    def get_outputs(self):
        return [wasmhost.NodeArg("y", "tensor(float)", [2])]

    def close(self):
        pass


@pytest.fixture
def fake_session(monkeypatch):
    import wasmhost.runtime.session

    monkeypatch.setattr(wasmhost.runtime.session, "InferenceSession", _FakeSession)

    def answering(*answers):
        _FakeSession.answers, _FakeSession.runs = list(answers), 0

    return answering


def test_the_nondeterminism_detector_on_a_fake_session(fake_session):
    model = small_model()
    x = {"x": np.ones((2, 4), np.float32)}
    a, b = np.array([1.0, np.nan], np.float32), np.array([1.0, 2.0], np.float32)
    fake_session(a, b)
    run = fz.host_run(model, x, LIMITS, differential=True)
    outcome = fz.judge(run, "agree", {}, {})
    assert outcome.kind == "nondeterministic" and outcome.detail["output"] == "y"
    assert outcome.detail["peers_verdict"] == "agree"
    assert outcome.finding_key.startswith("nondeterministic values y in MatMul,Softmax")
    fake_session(a, a.copy())  # the same answer, NaN included
    outcome = fz.judge(fz.host_run(model, x, LIMITS, differential=True), "agree", {}, {})
    assert (outcome.kind, outcome.check) == ("ok", "agree")
    fake_session(a, wasmhost.GuestCrash("boom"))  # a second run that fails is a change too
    outcome = fz.judge(fz.host_run(model, x, LIMITS, differential=True), "no-peer", {}, {})
    assert outcome.kind == "nondeterministic" and "trap:crash" in outcome.message
    fake_session(a, wasmhost.TimeoutExceeded("slow"))  # but not the wall clock
    assert fz.host_run(model, x, LIMITS, differential=True).rerun is None
    fake_session(a)  # without --differential: one run
    assert fz.host_run(model, x, LIMITS).outcome.kind == "ok" and _FakeSession.runs == 1
    # An unseeded random operator: not run again, not compared.
    unseeded = _random_model(helper.make_node("RandomNormal", [], ["r"], shape=[3]))
    fake_session(a, b)
    run = fz.host_run(unseeded, {"x": np.ones(3, np.float32)}, LIMITS, differential=True)
    assert (run.random, run.rerun, _FakeSession.runs) == (["RandomNormal"], None, 1)
    assert fz.judge(run, "random", {}, {}).check == "random"


def test_random_operators_are_not_compared_and_seeded_ones_are_rerun():
    lane = fz._Lane(LIMITS, PEERS)
    try:
        for i, seed in enumerate([{}, {"seed": 3.0}, {}, {"seed": 3.0}]):
            node = helper.make_node("RandomNormal", [], ["r"], shape=[3], **seed)
            x = {"x": np.arange(3, dtype=np.float32) * i}
            outcome = lane.run(fz.Case(i, "none", _random_model(node), x), differential=True)
            # Seeded, two runs of a session answer the same: no state crosses runs.
            assert (outcome.kind, outcome.check) == ("ok", "random"), outcome
            assert outcome.detail["peers"] == {}  # no peer was asked
    finally:
        lane.close()


def test_differential_fuzz_of_a_small_model():
    campaigns = [
        fz.fuzz(small_model(), 30, seed=3, limits=LIMITS, jobs=j, differential=True) for j in (1, 2)
    ]
    assert campaigns[0].counts == campaigns[1].counts  # the same cases, the same verdicts
    assert campaigns[0].checks == campaigns[1].checks
    counts, checks = campaigns[0].counts, campaigns[0].checks
    assert sum(counts.values()) == 30 and counts["ok"] > 5
    assert not any(counts[k] for k in fz.FAILURES), counts
    assert checks["agree"] > 5 and checks["onnxruntime answered"] > 5
    if "tract" in PEERS:
        assert checks["tract answered"] > 5


def _lstm_model() -> bytes:
    rng = np.random.default_rng(1)
    hidden, features = 4, 3
    weights = {
        "W": rng.standard_normal((1, 4 * hidden, features)),
        "R": rng.standard_normal((1, 4 * hidden, hidden)),
        "B": rng.standard_normal((1, 8 * hidden)),
    }
    return make_model(
        [helper.make_node("LSTM", ["x", "W", "R", "B"], ["Y", "Y_h"], hidden_size=hidden)],
        [f32("x", ["seq", 1, features])],
        [f32("Y", ["seq", 1, 1, hidden]), f32("Y_h", [1, 1, hidden])],
        [numpy_helper.from_array(w.astype(np.float32), n) for n, w in weights.items()],
    )


def test_differential_lstm_answers_do_not_change_from_run_to_run():
    """Fails with a guest that keeps tract's state across runs (its LSTM answered right on
    a session's first run and wrong from the second on): its cases are nondeterministic."""
    model = _lstm_model()
    campaign = fz.fuzz(model, 30, seed=0, limits=LIMITS, jobs=2, differential=True)
    assert campaign.counts["nondeterministic"] == 0, list(campaign.findings)
    assert campaign.counts["mismatch"] == 0, list(campaign.findings)
    assert campaign.counts["ok"] > 3
    rng = np.random.default_rng(0)
    feeds = [{"x": rng.standard_normal((n, 1, 3)).astype(np.float32)} for n in (5, 2, 5)]
    feeds[2] = feeds[0]
    lane = fz._Lane(LIMITS, PEERS)
    try:
        for i, x in enumerate(feeds):
            outcome = lane.run(fz.Case(i, "none", model, x), differential=True)
            assert (outcome.kind, outcome.check) == ("ok", "agree"), outcome.message
    finally:
        lane.close()
    with wasmhost.InferenceSession(model, limits=LIMITS, pool_size=1) as sess:
        for x in feeds:  # one session, other inputs in between, against onnxruntime
            assert_outputs_equal(sess.run(None, x), reference(model, x))


# Fake guests (WAT) through the real worker processes: one that answers zeros whatever it
# is asked (a wrong answer), one whose answers alternate (a changing answer).

ADD_ONE = make_model(
    [helper.make_node("Add", ["x", "one"], ["y"])],
    [f32("x", [2])],
    [f32("y", [2])],
    [numpy_helper.from_array(np.ones(2, np.float32), "one")],
)
TIMES_ZERO = make_model(
    [helper.make_node("Mul", ["x", "zero"], ["y"])],
    [f32("x", [2])],
    [f32("y", [2])],
    [numpy_helper.from_array(np.zeros(2, np.float32), "zero")],
)


def _alternating_guest() -> str:
    """A guest whose runs answer zeros, then ones, then zeros..."""
    ones = {**RUN_OK["outputs"][0], "data": np.ones(2, np.float32).tobytes()}
    ones_at = RUN_AT + 4096
    run = (
        '(func (export "wh_run") (param i32 i32) (result i32) (global.set $mode (i32.const 1))'
        " (global.set $runs (i32.add (global.get $runs) (i32.const 1))) i32.const 0)"
    )
    odd = "(i32.and (global.get $runs) (i32.const 1))"
    return guest(
        result_ptr=f"(select (select (i32.const {RUN_AT}) (i32.const {ones_at}) {odd})"
        f" (i32.const {LOAD_AT}) (global.get $mode))",
        omit="wh_run",
        extra=f"(global $runs (mut i32) (i32.const 0)) {run}"
        f' (data (i32.const {ones_at}) "{wat_bytes(msgpack.packb({"outputs": [ones]}))}")',
    )


def test_a_guest_whose_answers_change_is_nondeterministic(use_guest, tmp_path):
    use_guest(_alternating_guest())  # the worker processes inherit the fake guest
    lane = fz._Lane(LIMITS, PEERS)
    try:
        for i, x in enumerate([np.ones(2, np.float32), np.arange(2, dtype=np.float32)]):
            outcome = lane.run(fz.Case(i, "none", TIMES_ZERO, {"x": x}), differential=True)
            assert outcome.kind == "nondeterministic", outcome
            # Its first answer (zeros) was right: the peers agreed with it.
            assert outcome.detail["peers_verdict"] == ("agree" if PEERS else "no-peer")
            assert outcome.detail["output"] == "y" and outcome.detail["worst_abs_diff"] == 1.0
    finally:
        lane.close()


def test_a_wrong_answer_is_a_mismatch_and_replays(use_guest, tmp_path, monkeypatch):
    if not PEERS:
        pytest.skip("no peer installed")
    use_guest(guest())  # answers zeros
    lane = fz._Lane(LIMITS, PEERS)
    try:
        for i, x in enumerate([np.ones(2, np.float32), np.array([3, -1], np.float32)]):
            case = fz.Case(i, "none", ADD_ONE, {"x": x})
            outcome = lane.run(case, differential=True)
            assert outcome.kind == "mismatch", outcome
            assert outcome.detail["against"] == PEERS
            assert outcome.detail["worst_abs_diff"] == float(np.abs(x + 1).max())
    finally:
        lane.close()
    campaign = fz.Campaign(differential=True)
    campaign.record(case, outcome)
    (finding,) = campaign.findings.values()
    path = fz.save_reproducer(tmp_path / "corpus", finding)
    recorded = json.loads((path / "outcome.json").read_text())
    assert recorded["differential"] and recorded["outcome"]["kind"] == "mismatch"
    again, _ = fz.replay(path, LIMITS)
    assert again.kind == "mismatch"
    proc = wasmhost_cli("fuzz", "--replay", path / "outcome.json")
    assert proc.returncode == 0 and "reproduced" in proc.stdout, proc.stdout + proc.stderr
    # With the real guest, the answer is right: the finding does not reproduce.
    monkeypatch.delenv("WASMHOST_MODULE")
    monkeypatch.delenv("WASMHOST_CACHE_DIR")
    proc = wasmhost_cli("fuzz", "--replay", path)
    assert proc.returncode == 1 and "not reproduced" in proc.stdout, proc.stdout + proc.stderr
    assert "now:      ok" in proc.stdout


def test_cli_fuzz_differential(tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(small_model())
    help_text = wasmhost_cli("fuzz", "--help").stdout
    assert "--differential" in help_text
    assert "mismatch" in help_text and "nondeterministic" in help_text
    proc = wasmhost_cli("fuzz", model, "--differential", "-n", 25, "-j", 2, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "differential checks" in proc.stdout and "agree" in proc.stdout
    assert "host-crash" not in proc.stdout and "mismatch" not in proc.stdout


def test_a_peer_that_crashes_has_no_answer_and_is_replaced():
    lane = fz._Lane(LIMITS, PEERS)
    x = {"x": np.arange(2, dtype=np.float32)}
    try:
        # Unpickling the job kills each peer's process, as a native crash would.
        answers, statuses = lane._ask(fz.Case(0, "boom", ADD_ONE, {"x": _Boom()}))
        assert answers == {} and statuses == dict.fromkeys(PEERS, "crashed")
        if "tract" in PEERS:  # native tract segfaults on this model (docs/fuzzing.md)
            fault = (Path(__file__).parent / "data" / "fuzz_densenet_heap_fault.onnx").read_bytes()
            data = {"data_0": np.zeros((1, 3, 224, 224), np.float32)}
            _, statuses = lane._ask(fz.Case(1, "fault", fault, data))
            assert statuses["tract"] == "crashed"
        for i in range(2):  # the replaced processes answer, again and again
            answers, statuses = lane._ask(fz.Case(2 + i, "none", ADD_ONE, x))
            assert statuses == dict.fromkeys(PEERS, "answered")
            for outputs in answers.values():
                np.testing.assert_array_equal(outputs[0], x["x"] + 1)
    finally:
        lane.close()
