"""The ONNX backend test suite through wasmhost against the committed expected-pass list:
a lost pass fails; a new pass is reported so that the list can be raised."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
from conftest import ROOT

EXPECTED = ROOT / "tests" / "conformance" / "wasmhost_passes.txt"


def test_expected_passes_still_pass():
    expected = EXPECTED.read_text().split()
    assert len(expected) > 900  # the list is the real suite, not a token subset
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "conformance.py"),
            "--engines",
            "wasmhost",
            "--jobs",
            str(min(os.cpu_count() or 1, 4)),
            "--check",
            str(EXPECTED),
        ],
        capture_output=True,
        text=True,
        timeout=3600,
    )
    report = proc.stdout[-20000:] + proc.stderr[-5000:]
    assert proc.returncode == 0, report
    summary = proc.stdout.strip().splitlines()[-1]
    assert summary.startswith(f"{len(expected)} expected passes checked, 0 lost"), report
    print(report)


def _conformance():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import conformance
    finally:
        sys.path.pop(0)
    return conformance


def test_check_fails_on_a_lost_pass_and_reports_new_ones(tmp_path, capsys):
    conformance = _conformance()
    listed = tmp_path / "passes.txt"
    listed.write_text("node/a\nnode/b\n")
    ok = {"status": "pass", "detail": ""}
    lost = {"status": "fail", "detail": "Mismatched elements"}
    assert conformance.check_expected(listed, {"wasmhost": {"node/a": ok, "node/b": ok}}) == 0
    results = {"wasmhost": {"node/a": ok, "node/b": lost, "node/c": ok}}
    assert conformance.check_expected(listed, results) == 1
    out = capsys.readouterr().out
    assert "LOST  node/b: fail Mismatched elements" in out
    assert "NEW   node/c passes now" in out


def _fake_case(conformance, n_sets=1):
    """A case whose model doubles its input `x`; no model needed, the runs are fakes."""
    sets = []
    for k in range(n_sets):
        x = np.arange(6, dtype=np.float32).reshape(2, 3) + 10 * k
        sets.append(({"x": x}, [x * 2]))
    return conformance.Case("node/fake", b"", sets, 1e-3, 1e-7)


def test_a_case_whose_second_run_differs_fails_on_rerun():
    conformance = _conformance()
    case = _fake_case(conformance)
    calls = []

    def run(feeds):  # a session that keeps state: its second run adds to the first
        calls.append(feeds["x"])
        return [feeds["x"] * 2 + (1.0 if len(calls) == 2 else 0.0)]

    result = conformance.check_runs(case, run)
    assert result["status"] == "fail-rerun" and result["first"] is True
    assert result["detail"].startswith("run 2 of data set 0: output 0: 6/6 values out of")
    assert "max |diff| 1 " in result["detail"]
    assert "(1 of 3 later runs wrong)" in result["detail"]
    # three runs, then other inputs (the same values shuffled), then the first data set again
    assert len(calls) == 5
    x = case.data_sets[0][0]["x"]
    assert all(np.array_equal(c, x) for c in calls[:3] + calls[4:])
    assert calls[3].shape == x.shape and calls[3].dtype == x.dtype
    assert not np.array_equal(calls[3], x) and sorted(calls[3].ravel()) == sorted(x.ravel())

    results = {"wasmhost": {"node/fake": result}}
    assert conformance.runs_table(["wasmhost"], ["node/fake"], results) == [
        ["node", "wasmhost", "1", "1", "0", "1"]
    ]


def test_state_left_by_other_inputs_fails_on_rerun_and_steady_runs_pass():
    conformance = _conformance()
    case = _fake_case(conformance, n_sets=2)
    seen = []

    def stale(feeds):  # from the other inputs on, answers for them whatever it is given
        seen.append(feeds["x"])
        return [seen[min(len(seen), 2 * conformance.RUNS + 1) - 1] * 2]

    result = conformance.check_runs(case, stale)
    assert result["status"] == "fail-rerun" and result["first"] is True
    assert result["detail"].startswith("run 4 of data set 0, after other inputs: output 0")
    assert len(seen) == 2 * 3 + 2  # the second data set is the other inputs
    assert np.array_equal(seen[6], case.data_sets[1][0]["x"])

    assert conformance.check_runs(case, lambda feeds: [feeds["x"] * 2]) == {
        "status": "pass",
        "detail": "",
        "first": True,
    }
    wrong = conformance.check_runs(case, lambda feeds: [feeds["x"] * 3])
    assert wrong["status"] == "fail" and wrong["first"] is False

    def refuses(feeds):
        raise ValueError("no")

    assert conformance.check_runs(case, refuses)["status"] == "error"

    one = _fake_case(conformance)
    calls = []

    def refuses_other_inputs(feeds):  # an error on the other inputs is no result
        calls.append(feeds["x"])
        if len(calls) == conformance.RUNS + 1:
            raise ValueError("not these")
        return [feeds["x"] * 2]

    assert conformance.check_runs(one, refuses_other_inputs)["status"] == "pass"
    assert len(calls) == 5
