"""`wasmhost bench` and wasmhost.tools.bench: what is measured, not how fast (no thresholds)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import LIGHT, assert_one_line_error, f32, make_model, vi, wasmhost_cli
from onnx import TensorProto, helper

import wasmhost
from wasmhost.cli import EXIT_CODES
from wasmhost.tools import bench


def test_sample_inputs_follow_the_signature():
    model = make_model(
        [helper.make_node("Identity", [n], [n + "_out"]) for n in ("x", "i", "b")],
        [f32("x", ["batch", 3]), vi("i", TensorProto.INT64, [2]), vi("b", TensorProto.BOOL, [])],
        [
            f32("x_out", None),
            vi("i_out", TensorProto.INT64, None),
            vi("b_out", TensorProto.BOOL, None),
        ],
        check=False,
    )
    feeds = bench.sample_inputs(wasmhost.InferenceSession(model).get_inputs())
    assert feeds["x"].shape == (1, 3) and feeds["x"].dtype == np.float32
    assert feeds["i"].tolist() == [0, 0]
    assert feeds["b"].dtype == np.bool_ and feeds["b"].shape == ()


def test_bench_times_every_round_and_the_peer():
    result = bench.bench(LIGHT / "light_squeezenet.onnx", rounds=4, warmup=1)
    assert len(result.wasmhost.samples) == 4
    assert result.peer is not None and len(result.peer.samples) == 4
    assert result.peer_name == "onnxruntime (1 thread)"
    assert result.wasmhost.best <= result.wasmhost.median <= result.wasmhost.p95
    assert result.session_seconds > 0 and result.first_run_seconds > 0
    assert result.peak_memory and result.peak_memory > 1 << 20
    alone = bench.bench(LIGHT / "light_squeezenet.onnx", rounds=2, warmup=0, compare=False)
    assert alone.peer is None and len(alone.wasmhost.samples) == 2


def test_cli_bench(tmp_path):
    model = LIGHT / "light_squeezenet.onnx"
    proc = wasmhost_cli("bench", model, "-n", "3", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert set(doc) >= {"session_ms", "first_run_ms", "wasmhost_ms", "peer_ms", "ratio"}
    for timing in (doc["wasmhost_ms"], doc["peer_ms"]):  # every figure the table shows
        assert set(timing) == {"median", "p95", "best"}
        assert 0 < timing["best"] <= timing["median"] <= timing["p95"]
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((1, 3, 224, 224), np.float32))
    proc = wasmhost_cli("bench", model, x, "-n", "2", "--no-compare")
    assert proc.returncode == 0, proc.stderr
    assert "wasmhost" in proc.stdout and "onnxruntime" not in proc.stdout
    assert_one_line_error(
        wasmhost_cli("bench", model, "-n", "0"), EXIT_CODES["InvalidArgument"], "--rounds"
    )


def test_made_up_inputs_are_capped_before_anything_is_allocated(tmp_path):
    """A 63-byte model may declare a [20000, 20000] float input (1.6 GB): the size is
    checked against the cap from the declared shapes, before numpy allocates."""
    for shape in ([20000, 20000], [100000, 100000, 100000]):
        model = make_model(
            [helper.make_node("Relu", ["x"], ["y"])], [f32("x", shape)], [f32("y", shape)]
        )
        args = [wasmhost.runtime.session.NodeArg("x", "tensor(float)", shape, np.dtype(np.float32))]
        with pytest.raises(wasmhost.InvalidInput, match="over 256 MiB"):
            bench.sample_inputs(args)
        path = tmp_path / "big.onnx"
        path.write_bytes(model)
        proc = wasmhost_cli("bench", path, "-n", "1")
        assert_one_line_error(proc, EXIT_CODES["InvalidInput"], "give the inputs yourself")
    small = [wasmhost.runtime.session.NodeArg("x", "tensor(float)", [4, 4], np.dtype(np.float32))]
    with pytest.raises(wasmhost.InvalidInput):
        bench.sample_inputs(small, max_bytes=63)
    assert bench.sample_inputs(small, max_bytes=64)["x"].shape == (4, 4)
