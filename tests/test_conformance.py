"""The ONNX backend test suite through wasmhost against the committed expected-pass list:
a lost pass fails; a new pass is reported so that the list can be raised."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
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


def test_check_fails_on_a_lost_pass_and_reports_new_ones(tmp_path, capsys):
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import conformance
    finally:
        sys.path.pop(0)
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
