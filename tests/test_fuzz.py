"""`wasmhost fuzz`: mutations, classification, determinism, reproducers, host-crash capture."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import LIGHT, f32, make_model
from onnx import helper

import wasmhost
from wasmhost import fuzz as fz

SQUEEZENET = LIGHT / "light_squeezenet.onnx"
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
        assert crash.kind == "host-crash" and "exit code 3" in crash.message
        fine = worker.run(fz.Case(1, "none", small_model(), {"x": x}), deadline=60)
        assert fine.kind == "ok"
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


def wasmhost_cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "wasmhost.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
    )


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
    assert wasmhost_cli("fuzz", "--replay", tmp_path / "nothing").returncode == 11


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
