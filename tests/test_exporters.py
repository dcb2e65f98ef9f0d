"""Models written by a real exporter (skl2onnx), with a dynamic batch dim, against onnxruntime.

The exporter's output is not ours: its graphs, opsets, ai.onnx.ml operators and
unknown dims are what users will bring.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from conftest import assert_outputs_equal, reference
from skl2onnx import to_onnx
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import wasmhost

OPSETS = {"": 17, "ai.onnx.ml": 3}


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 6)).astype(np.float32)
    return x, (x[:, 0] + x[:, 1] > 0).astype(np.int64)


def export(estimator, x) -> bytes:
    options = {id(estimator): {"zipmap": False}} if hasattr(estimator, "predict_proba") else None
    return to_onnx(estimator, x[:1], options=options, target_opset=OPSETS).SerializeToString()


def fitted(estimator, x, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings: the fit's quality is not tested
        return estimator.fit(x, y)


@pytest.mark.parametrize(
    "make",
    [
        lambda: MLPRegressor(hidden_layer_sizes=(16,), max_iter=50, random_state=0),
        lambda: LogisticRegression(),
    ],
    ids=["mlp-regressor", "logistic-regression"],
)
def test_exported_model_at_several_batch_sizes(make, data):
    x, y = data
    model = export(fitted(make(), x, y), x)
    sess = wasmhost.InferenceSession(model)
    (arg,) = sess.get_inputs()
    assert arg.shape == [None, 6]  # the exporter leaves the batch dim unknown
    for n in (1, 8, 33, 200):
        feeds = {arg.name: x[:n]}
        assert_outputs_equal(sess.run(None, feeds), reference(model, feeds), rtol=1e-5, atol=1e-6)


def test_random_forest_probabilities(data):
    x, y = data
    model = export(fitted(RandomForestClassifier(5, max_depth=4, random_state=0), x, y), x)
    sess = wasmhost.InferenceSession(model)
    for n in (1, 40):
        feeds = {"X": x[:n]}
        _, probabilities = sess.run(None, feeds)
        np.testing.assert_allclose(probabilities, reference(model, feeds)[1], rtol=1e-5, atol=1e-6)


def test_random_forest_labels(data):
    """tract 0.23.9 picked binary forests' labels from the scores before their binary
    layout (label 0 where class 1 is likelier); the guest picks them as onnxruntime."""
    x, y = data
    model = export(fitted(RandomForestClassifier(5, max_depth=4, random_state=0), x, y), x)
    sess = wasmhost.InferenceSession(model)
    for n in (150, 40, 1, 150):
        labels, probabilities = sess.run(None, {"X": x[:n]})
        expected_labels, expected_probabilities = reference(model, {"X": x[:n]})
        np.testing.assert_array_equal(labels, expected_labels)
        np.testing.assert_allclose(probabilities, expected_probabilities, rtol=1e-5, atol=1e-6)
    # Not a vacuous check: both classes are answered.
    assert set(np.unique(labels)) == {0, 1}


def test_scaled_pipeline_runs_and_an_unsupported_ml_operator_is_named(data):
    """StandardScaler + LogisticRegression ran into `ai.onnx.ml:Scaler`, refused, until
    the guest had its own (issue 16); an ONNX-ML operator it still lacks is named."""
    import onnx

    x, y = data
    pipeline = fitted(make_pipeline(StandardScaler(), LogisticRegression()), x, y)
    model = export(pipeline, x)
    sess = wasmhost.InferenceSession(model)
    expected = reference(model, {"X": x})
    got = sess.run(None, {"X": x})
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_allclose(got[1], expected[1], rtol=1e-5, atol=1e-6)
    m = onnx.load_from_string(model)
    next(n for n in m.graph.node if n.op_type == "Scaler").op_type = "CastMap"
    with pytest.raises(wasmhost.UnsupportedModel, match=r"ai\.onnx\.ml:CastMap"):
        wasmhost.InferenceSession(m.SerializeToString())
