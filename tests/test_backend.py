"""wasmhost.tools.backend: the onnx.backend.base.Backend that lets onnx's test suite drive it."""

from __future__ import annotations

import unittest

import numpy as np
import onnx
import onnx.backend.test
import pytest
from conftest import assert_outputs_equal, f32, make_model, reference
from onnx import TensorProto, helper

import wasmhost
from wasmhost import backend


def _model() -> onnx.ModelProto:
    nodes = [helper.make_node("Add", ["a", "b"], ["s"]), helper.make_node("Relu", ["s"], ["y"])]
    return onnx.load_from_string(
        make_model(nodes, [f32("a", ["n", 3]), f32("b", [3])], [f32("y", ["n", 3])])
    )


def test_run_model_takes_a_list_or_a_dict_and_matches_onnxruntime():
    model = _model()
    a = np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3)
    b = np.array([0.5, -0.5, 0.0], np.float32)
    expected = reference(model.SerializeToString(), {"a": a, "b": b})
    by_position = backend.run_model(model, [a, b])
    assert by_position._fields == ("y",)
    assert_outputs_equal(list(by_position), expected)
    assert_outputs_equal(list(backend.run_model(model, {"a": a, "b": b})), expected)


def test_prepared_model_runs_several_shapes():
    rep = backend.prepare(_model())
    b = np.ones(3, np.float32)
    for n in (1, 8):
        (y,) = rep.run([np.full((n, 3), -2.0, np.float32), b])
        np.testing.assert_array_equal(y, np.zeros((n, 3), np.float32))


def test_run_node_with_and_without_output_info():
    node = helper.make_node("Mul", ["x", "k"], ["y"])
    x = np.arange(6, dtype=np.int64).reshape(2, 3)
    k = np.array(3, np.int64)
    (y,) = backend.run_node(node, [x, k], outputs_info=[(np.int64, (2, 3))])
    np.testing.assert_array_equal(y, x * 3)
    (y,) = backend.run_node(helper.make_node("Neg", ["x"], ["y"]), [x.astype(np.float32)])
    np.testing.assert_array_equal(y, -x.astype(np.float32))


def test_run_node_checks_the_node():
    with pytest.raises(onnx.checker.ValidationError):
        backend.run_node(helper.make_node("NoSuchOp", ["x"], ["y"]), [np.zeros(1)])


def test_devices_and_errors():
    assert backend.supports_device("CPU")
    assert not backend.supports_device("CUDA")
    with pytest.raises(wasmhost.InvalidArgument, match="CPU only"):
        backend.prepare(_model(), "CUDA")
    with pytest.raises(wasmhost.InvalidInput, match="3 inputs given"):
        backend.run_model(_model(), [np.zeros((1, 3), np.float32)] * 3)
    with pytest.raises(wasmhost.InvalidInput):
        backend.run_model(_model(), [np.zeros((1, 3), np.int32), np.zeros(3, np.float32)])
    limits = wasmhost.Limits(memory="32MiB")
    node = helper.make_node("Expand", ["x", "shape"], ["y"])
    model = onnx.load_from_string(
        make_model(
            [node],
            [f32("x", [1]), helper.make_tensor_value_info("shape", TensorProto.INT64, [1])],
            [f32("y", ["n"])],
        )
    )
    feeds = [np.ones(1, np.float32), np.array([1 << 28], np.int64)]  # 1 GiB of output
    with pytest.raises(wasmhost.MemoryLimitExceeded):
        backend.run_model(model, feeds, limits=limits)


def test_onnx_backend_test_drives_wasmhost():
    """onnx's own runner, as a user would wire it, on a few of its node cases."""
    suite = onnx.backend.test.BackendTest(backend.WasmHostBackend, __name__)
    suite.include(r"^test_(abs|relu|matmul_2d|softmax_axis_1|gemm_default_no_bias)_cpu$")
    result = unittest.TextTestRunner(verbosity=0).run(suite.test_suite)
    assert result.testsRun - len(result.skipped) == 5  # the others are skipped, not run
    assert result.wasSuccessful(), result.failures + result.errors


def test_run_model_takes_a_path_or_bytes(tmp_path):
    model = make_model([helper.make_node("Relu", ["x"], ["y"])], [f32("x", [3])], [f32("y", [3])])
    path = tmp_path / "m.onnx"
    path.write_bytes(model)
    x = np.array([-1.0, 0.0, 2.0], np.float32)
    for source in (str(path), path, model):
        for _ in range(2):
            (y,) = backend.run_model(source, [x])
            np.testing.assert_array_equal(y, np.maximum(x, 0))
