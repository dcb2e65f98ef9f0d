"""ONNX-ML linear models whose attributes contradict their input are refused as
InvalidModel (onnxruntime and tract each computed a different answer for some of
them); consistent ones match onnxruntime, run after run."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from conftest import assert_outputs_equal, reference
from onnx import TensorProto, helper

import wasmhost


def linear(op: str, features: int, outputs: list, **attrs) -> bytes:
    node = helper.make_node(op, ["x"], [o.name for o in outputs], domain="ai.onnx.ml", **attrs)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, features])],
        outputs,
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 1)]
    return helper.make_model(graph, opset_imports=opsets).SerializeToString()


def classifier(
    coefficients: int, classes: int = 3, features: int = 4, intercepts=None, post="NONE"
) -> bytes:
    attrs = {
        "coefficients": list(np.linspace(-1, 1, coefficients, dtype=np.float32)),
        "classlabels_ints": list(range(classes)),
        "post_transform": post,
    }
    if intercepts is not None:
        attrs["intercepts"] = [0.1] * intercepts
    outputs = [
        helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
        helper.make_tensor_value_info("scores", TensorProto.FLOAT, [None, classes]),
    ]
    return linear("LinearClassifier", features, outputs, **attrs)


def regressor(coefficients: int, targets: int, features: int = 4) -> bytes:
    attrs = {"coefficients": list(np.linspace(-1, 1, coefficients, dtype=np.float32))}
    attrs["targets"] = targets
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, targets])]
    return linear("LinearRegressor", features, outputs, **attrs)


X = np.arange(8, dtype=np.float32).reshape(2, 4) / 4


@pytest.mark.parametrize(
    "model",
    [
        classifier(12, intercepts=3),
        classifier(12, intercepts=3, post="SOFTMAX"),
        classifier(4, classes=2, intercepts=1, post="LOGISTIC"),
        classifier(8, classes=2, intercepts=2),
        regressor(4, 1),
        regressor(8, 2),
    ],
    ids=["3x4", "3x4-softmax", "binary-one-row", "binary-two-rows", "reg-1", "reg-2"],
)
def test_consistent_linear_models_match_onnxruntime(model):
    onnx.checker.check_model(onnx.load_from_string(model))
    sess = wasmhost.InferenceSession(model)
    for batch in (X, X[:1], np.concatenate([X, X])):
        expected = reference(model, {"x": batch})
        for _ in range(2):
            assert_outputs_equal(sess.run(None, {"x": batch}), expected)


@pytest.mark.parametrize(
    ("model", "reason"),
    [
        # 15 = 3 x 5: both onnxruntime and tract answered this one, differently.
        (
            classifier(15, intercepts=3),
            "15 coefficients are 3 rows of 5 features, but its input has 4",
        ),
        (classifier(9, intercepts=3), "9 coefficients are 3 rows of 3 features"),
        (classifier(6), "6 coefficients are 3 rows of 2 features"),
        (classifier(8, intercepts=2), "2 rows of coefficients \\(intercepts\\) for 3 class labels"),
        (classifier(13, intercepts=3), "13 coefficients cannot be 3 rows"),
        (regressor(6, 2), "6 coefficients are 2 rows of 3 features"),
        (regressor(7, 2), "7 coefficients cannot be 2 rows"),
    ],
)
def test_inconsistent_linear_models_are_invalid(model, reason):
    for _ in range(2):
        with pytest.raises(wasmhost.InvalidModel, match=reason):
            wasmhost.InferenceSession(model).run(None, {"x": X})


def test_no_intercepts_score_by_coefficients_alone():
    """onnxruntime refuses a LinearClassifier without intercepts; the ONNX-ML spec makes
    them optional: scores are x times the coefficient rows."""
    coefficients = np.linspace(-1, 1, 12, dtype=np.float32)
    sess = wasmhost.InferenceSession(classifier(12))
    scores = X @ coefficients.reshape(3, 4).T
    for _ in range(2):
        labels, got = sess.run(None, {"x": X})
        np.testing.assert_allclose(got, scores, rtol=1e-6)
        np.testing.assert_array_equal(labels, scores.argmax(axis=1))


@pytest.mark.parametrize("post", ["NONE", "SOFTMAX"])
def test_binary_one_row_scores_that_engines_disagree_on_are_refused(post):
    """Two classes scored by one row: tract's scores are [-s, s] (then softmaxed),
    onnxruntime's [1 - s, s] whatever the transform. No answer rather than one of two."""
    model = classifier(4, classes=2, intercepts=1, post=post)
    for _ in range(2):
        with pytest.raises(wasmhost.UnsupportedModel, match=f"post_transform {post}"):
            wasmhost.InferenceSession(model)


def forest(**changes) -> bytes:
    """A two-tree, three-class TreeEnsembleClassifier, with attributes changed."""
    attrs = {
        "nodes_treeids": [0, 0, 0, 1, 1, 1],
        "nodes_nodeids": [0, 1, 2, 0, 1, 2],
        "nodes_featureids": [0, 0, 0, 1, 0, 0],
        "nodes_values": [0.5, 0.0, 0.0, 1.0, 0.0, 0.0],
        "nodes_modes": ["BRANCH_LEQ", "LEAF", "LEAF"] * 2,
        "nodes_truenodeids": [1, 0, 0, 1, 0, 0],
        "nodes_falsenodeids": [2, 0, 0, 2, 0, 0],
        "class_treeids": [0, 0, 1, 1],
        "class_nodeids": [1, 2, 1, 2],
        "class_ids": [0, 1, 1, 2],
        "class_weights": [0.5, 0.5, 0.5, 0.5],
        "classlabels_int64s": [0, 1, 2],
    }
    attrs.update(changes)
    outputs = [
        helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
        helper.make_tensor_value_info("scores", TensorProto.FLOAT, [None, 3]),
    ]
    return linear("TreeEnsembleClassifier", 2, outputs, **attrs)


def test_a_consistent_forest_matches_onnxruntime():
    model = forest()
    x = np.array([[0.0, 0.0], [1.0, 2.0], [0.2, 1.5]], np.float32)
    sess = wasmhost.InferenceSession(model)
    for _ in range(2):
        assert_outputs_equal(sess.run(None, {"x": x}), reference(model, {"x": x}))


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        # A weight on node 2^40: on wasm32 tract read it as node 0 (native: nowhere).
        (
            {"class_nodeids": [1, 2, 1, 1 << 40]},
            "node 1099511627776 of tree 1, which the tree lacks",
        ),
        ({"class_nodeids": [1, 2, 1, 0]}, "node 0 of tree 1, which is not a leaf"),
        ({"nodes_truenodeids": [7, 0, 0, 1, 0, 0]}, "branches to node 7, which the tree lacks"),
        ({"nodes_nodeids": [0, 1, 1, 0, 1, 2]}, "node 1 of tree 0 is given twice"),
        ({"class_ids": [0, 1, 1, 3]}, "class id 3 is not one of the 3 classes"),
        ({"class_weights": [0.5, 0.5, 0.5]}, "have 4, 4, 4 and 3 entries"),
        ({"nodes_featureids": [0, 0, 0, -1, 0, 0]}, "feature id -1 is negative"),
    ],
)
def test_an_inconsistent_forest_is_invalid(changes, why):
    for _ in range(2):
        with pytest.raises(wasmhost.InvalidModel, match=why):
            wasmhost.InferenceSession(forest(**changes)).run(
                None, {"x": np.zeros((1, 2), np.float32)}
            )
