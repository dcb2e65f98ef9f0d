"""Operators tract lacks, inlined from their ONNX function definitions (in a child
process), and compared with onnxruntime."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from conftest import assert_outputs_equal, f32, make_model, reference, vi
from onnx import TensorProto, helper

import wasmhost
from wasmhost import functions


def test_operators_named_in_guest_errors():
    assert functions.operators_named(
        "operators not supported by tract: NegativeLogLikelihoodLoss, ai.onnx.ml:Foo"
    ) == ["NegativeLogLikelihoodLoss", "ai.onnx.ml:Foo"]
    assert functions.operators_named(
        "tract could not read the graph: Building node  (Attention): softcap is not supported"
    ) == ["Attention"]
    assert functions.operators_named("not an ONNX model: it has no graph") == []


def nll_model() -> bytes:
    node = helper.make_node("NegativeLogLikelihoodLoss", ["x", "t"], ["loss"], reduction="mean")
    return make_model(
        [node],
        [f32("x", ["n", 5]), vi("t", TensorProto.INT64, ["n"])],
        [f32("loss", [])],
        opset=22,
    )


def test_an_operator_tract_lacks_runs_from_its_onnx_definition():
    sess = wasmhost.InferenceSession(nll_model())
    assert sess.expanded_functions == ["NegativeLogLikelihoodLoss"]
    rng = np.random.default_rng(0)
    for n in (1, 7):  # the expanded model keeps the symbolic batch
        feeds = {
            "x": rng.standard_normal((n, 5)).astype(np.float32),
            "t": rng.integers(0, 5, n).astype(np.int64),
        }
        assert_outputs_equal(sess.run(None, feeds), reference(nll_model(), feeds))


def test_a_rejected_attribute_falls_back_to_the_definition():
    """tract reads Attention but not its `softcap`; onnx defines Attention as a function."""
    node = helper.make_node("Attention", ["q", "k", "v"], ["y"], softcap=2.0)
    shape = [1, 2, 3, 4]
    model = make_model(
        [node], [f32("q", shape), f32("k", shape), f32("v", shape)], [f32("y", shape)], opset=23
    )
    sess = wasmhost.InferenceSession(model)
    assert sess.expanded_functions == ["Attention"]
    rng = np.random.default_rng(1)
    feeds = {k: rng.standard_normal(shape).astype(np.float32) for k in "qkv"}
    assert_outputs_equal(sess.run(None, feeds), reference(model, feeds))


def test_an_operator_with_no_definition_is_still_unsupported():
    model = make_model(
        [helper.make_node("Unique", ["x"], ["y"])], [f32("x", [4])], [f32("y", ["m"])]
    )
    with pytest.raises(wasmhost.UnsupportedModel, match="Unique"):
        wasmhost.InferenceSession(model)


def test_a_failed_expansion_leaves_the_original_error(monkeypatch):
    monkeypatch.setattr(functions, "_CHILD_MEMORY", 16 << 20)  # the child cannot even start
    with pytest.raises(wasmhost.UnsupportedModel, match="NegativeLogLikelihoodLoss"):
        wasmhost.InferenceSession(nll_model())


def test_the_child_survives_garbage_and_reports_nothing():
    assert functions.expand_isolated(b"\xff" * 100, ["Foo"]) is None
    assert functions.expand_isolated(nll_model(), []) is None
    assert functions.expand_isolated(nll_model(), ["Relu"]) is None  # not in the model


def test_expansion_in_process_matches_onnx_inliner():
    expanded, inlined = functions.expand(nll_model(), ["NegativeLogLikelihoodLoss"])
    assert inlined == ["NegativeLogLikelihoodLoss"]
    ops = {n.op_type for n in onnx.load_from_string(expanded).graph.node}
    assert "NegativeLogLikelihoodLoss" not in ops and "GatherElements" in ops


def test_cli_inspect_and_run_say_what_was_inlined(tmp_path):
    from test_cli import wasmhost_cli

    path = tmp_path / "nll.onnx"
    path.write_bytes(nll_model())
    proc = wasmhost_cli("inspect", "--json", path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["expanded_functions"] == ["NegativeLogLikelihoodLoss"]
    x = tmp_path / "x.npy"
    t = tmp_path / "t.npy"
    np.save(x, np.zeros((3, 5), np.float32))
    np.save(t, np.array([0, 1, 4], np.int64))
    proc = wasmhost_cli("run", path, x, t, "--json")
    assert proc.returncode == 0, proc.stderr
