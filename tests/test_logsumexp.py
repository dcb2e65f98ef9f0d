"""ReduceLogSumExp as onnxruntime computes it: tract's log(sum(exp(x))) overflowed (inf)
or underflowed (-inf) past |x| ~ 88, so MultinomialNB answered inf probabilities; the
session rewrites the op into the max-shifted form. Against onnxruntime, twice each."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from conftest import f32, make_model, reference
from onnx import TensorProto, helper

import wasmhost


def lse_model(opset: int, axes: list[int] | None, keepdims: int) -> bytes:
    inputs = ["x"]
    initializers = []
    attrs: dict = {"keepdims": keepdims}
    if axes is not None:
        if opset >= 18:
            inputs.append("axes")
            initializers.append(helper.make_tensor("axes", TensorProto.INT64, [len(axes)], axes))
        else:
            attrs["axes"] = axes
    node = helper.make_node("ReduceLogSumExp", inputs, ["y"], **attrs)
    return make_model(
        [node], [f32("x", [2, 3, 4])], [f32("y", None)], initializers, opset=opset, check=False
    )


CASES = [
    (opset, axes, keep)
    for opset in (13, 18)
    for axes in ([1], [0, 2], [-1], None)
    for keep in (0, 1)
]


@pytest.mark.parametrize(("opset", "axes", "keepdims"), CASES)
def test_large_magnitudes_match_onnxruntime(opset, axes, keepdims, rng):
    model = lse_model(opset, axes, keepdims)
    session = wasmhost.InferenceSession(model)
    for scale in (1.0, 300.0, 5000.0):
        x = (rng.standard_normal((2, 3, 4)) * scale).astype(np.float32)
        x[0, 0, 0] = -1e4  # far below the rest: exp underflows without the shift
        expected = reference(model, {"x": x})[0]
        for _ in range(2):
            got = session.run(None, {"x": x})[0]
            assert got.shape == expected.shape
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)
    assert np.isfinite(session.run(None, {"x": x})[0]).all()


def test_infinite_slices_keep_onnxruntimes_answers():
    model = lse_model(13, [2], 0)
    x = np.zeros((2, 3, 4), np.float32)
    x[0, 0, :] = -np.inf  # every value -inf: -inf
    x[0, 1, 2] = np.inf  # one +inf: +inf
    x[1, 2, :] = [1000.0, -np.inf, 999.0, -np.inf]
    expected = reference(model, {"x": x})[0]
    with wasmhost.InferenceSession(model) as session:
        for _ in range(2):
            np.testing.assert_allclose(session.run(None, {"x": x})[0], expected, rtol=1e-6)


def test_multinomial_naive_bayes_answers_right():
    from skl2onnx import to_onnx
    from sklearn.datasets import load_digits
    from sklearn.naive_bayes import MultinomialNB

    x, y = load_digits(return_X_y=True)
    model = to_onnx(
        MultinomialNB().fit(x, y), x[:1].astype(np.float32), options={"zipmap": False}
    ).SerializeToString()
    feeds = {"X": x[:50].astype(np.float32)}
    labels, probabilities = reference(model, feeds)
    with wasmhost.InferenceSession(model) as session:
        for _ in range(2):
            got_labels, got_probabilities = session.run(None, feeds)
            np.testing.assert_array_equal(got_labels, labels)
            np.testing.assert_allclose(got_probabilities, probabilities, rtol=1e-5, atol=1e-6)


def test_models_without_it_are_not_rewritten(rng):
    model = make_model(
        [helper.make_node("ReduceSum", ["x"], ["y"], keepdims=0)],
        [f32("x", [2, 3])],
        [f32("y", None)],
        opset=11,
        check=False,
    )
    with wasmhost.InferenceSession(model) as session:
        assert session._model == model
    assert onnx.load_from_string(model).graph.node[0].op_type == "ReduceSum"


def test_doubles_too(rng):
    """float64 (the node suite's cases): the rewrite's guard types for doubles as well."""
    node = helper.make_node("ReduceLogSumExp", ["x", "axes"], ["y"], keepdims=1)
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [1])
    model = make_model(
        [node],
        [helper.make_tensor_value_info("x", TensorProto.DOUBLE, [3, 2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.DOUBLE, None)],
        [axes],
        opset=18,
        check=False,
    )
    x = rng.standard_normal((3, 2, 2)) * 1000.0
    with wasmhost.InferenceSession(model) as session:
        for _ in range(2):
            np.testing.assert_allclose(
                session.run(None, {"x": x})[0], reference(model, {"x": x})[0], rtol=1e-12
            )
