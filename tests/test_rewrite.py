"""Rewrites for what tract lacks, done in a child process: operators inlined from their
ONNX function definitions, and classifiers' ZipMap lifted out; compared with onnxruntime."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from conftest import assert_outputs_equal, f32, make_model, reference, vi
from onnx import TensorProto, helper

import wasmhost
from wasmhost.runtime import rewrite


def test_operators_named_in_guest_errors():
    assert rewrite.operators_named(
        "operators not supported by tract: NegativeLogLikelihoodLoss, ai.onnx.ml:Foo"
    ) == ["NegativeLogLikelihoodLoss", "ai.onnx.ml:Foo"]
    assert rewrite.operators_named(
        "tract could not read the graph: Building node  (Attention): softcap is not supported"
    ) == ["Attention"]
    assert rewrite.operators_named("not an ONNX model: it has no graph") == []


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
    monkeypatch.setattr(rewrite, "_CHILD_MEMORY", 16 << 20)  # the child cannot even start
    with pytest.raises(wasmhost.UnsupportedModel, match="NegativeLogLikelihoodLoss"):
        wasmhost.InferenceSession(nll_model())


def test_the_child_survives_garbage_and_reports_nothing():
    assert rewrite.rewrite_isolated(b"\xff" * 100, ["Foo"]) is None
    assert rewrite.rewrite_isolated(nll_model(), []) is None
    assert rewrite.rewrite_isolated(nll_model(), ["Relu"]) is None  # not in the model


def test_expansion_in_process_matches_onnx_inliner():
    done = rewrite.rewrite(nll_model(), ["NegativeLogLikelihoodLoss"])
    assert done is not None and done.expanded == ["NegativeLogLikelihoodLoss"]
    assert done.zipmaps == {}
    ops = {n.op_type for n in onnx.load_from_string(done.model).graph.node}
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


# --- ZipMap ------------------------------------------------------------------------------


def classifier(labels: np.ndarray) -> bytes:
    """A scikit-learn classifier exported by skl2onnx with its defaults (ZipMap on)."""
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    x = np.random.default_rng(0).standard_normal((30, 4)).astype(np.float32)
    return to_onnx(LogisticRegression().fit(x, labels), x[:1]).SerializeToString()


def test_zipmap_outputs_come_back_as_onnxruntime_returns_them():
    import onnxruntime as ort

    model = classifier(np.arange(30) % 3)
    sess = wasmhost.InferenceSession(model)
    oracle = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    assert [(o.name, o.type) for o in sess.get_outputs()] == [
        (o.name, o.type) for o in oracle.get_outputs()
    ]
    x = np.random.default_rng(1).standard_normal((5, 4)).astype(np.float32)
    (got_labels, got_maps), (want_labels, want_maps) = (
        sess.run(None, {"X": x}),
        oracle.run(None, {"X": x}),
    )
    np.testing.assert_array_equal(got_labels, want_labels)
    assert len(got_maps) == len(want_maps) == 5
    for got, want in zip(got_maps, want_maps, strict=True):
        assert list(got) == list(want)  # the same labels, of the same Python type, in order
        np.testing.assert_allclose(list(got.values()), list(want.values()), rtol=1e-5)
    assert sess.run(["output_label"], {"X": x})[0].shape == (5,)


@pytest.mark.parametrize("labels", [[3, 1, 2], ["b", "c", "a"]])
def test_zipmap_keys_come_sorted_as_in_onnxruntime(labels):
    """onnxruntime's maps are std::maps: keys sorted, whatever the attribute's order (a
    differential campaign found the order differing)."""
    import onnx
    import onnxruntime as ort

    proto = onnx.load_from_string(classifier(np.arange(30) % 3))
    (zipmap,) = [n for n in proto.graph.node if n.op_type == "ZipMap"]
    del zipmap.attribute[:]
    key = "classlabels_int64s" if isinstance(labels[0], int) else "classlabels_strings"
    zipmap.attribute.append(onnx.helper.make_attribute(key, labels))
    if isinstance(labels[0], str):
        out = next(o for o in proto.graph.output if o.name == "output_probability")
        out.type.CopyFrom(
            onnx.helper.make_sequence_type_proto(
                onnx.helper.make_map_type_proto(
                    onnx.TensorProto.STRING, onnx.helper.make_tensor_type_proto(1, None)
                )
            )
        )
    model = proto.SerializeToString()
    x = np.random.default_rng(2).standard_normal((3, 4)).astype(np.float32)
    want = ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, {"X": x})[1]
    sess = wasmhost.InferenceSession(model)
    for _ in range(2):
        got = sess.run(None, {"X": x})[1]
        for g, w in zip(got, want, strict=True):
            assert list(g) == list(w) == sorted(labels)
            np.testing.assert_allclose(list(g.values()), list(w.values()), rtol=1e-5)


def test_cli_writes_zipmaps_as_json_only(tmp_path):
    from test_cli import assert_one_line_error, wasmhost_cli

    from wasmhost.cli import EXIT_CODES

    path = tmp_path / "clf.onnx"
    path.write_bytes(classifier(np.arange(30) % 3))
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((2, 4), np.float32))
    proc = wasmhost_cli("run", path, x, "--json")
    assert proc.returncode == 0, proc.stderr
    maps = json.loads(proc.stdout)["outputs"][1]
    assert maps["type"] == "seq(map)" and set(maps["data"][0]) == {"0", "1", "2"}
    proc = wasmhost_cli("run", path, x, "-o", tmp_path / "o.npz")
    assert_one_line_error(proc, EXIT_CODES["InvalidArgument"], "output_probability", ".json")
    assert wasmhost_cli("run", path, x).returncode == 0


def test_string_labels_are_lifted_and_the_labels_are_strings():
    """The ZipMap rewrite keeps string labels; the classifier's own label output is a
    string tensor (ABI 1.1), equal to onnxruntime's, run after run."""
    model = classifier(np.array(["cat", "dog", "eel"] * 10))
    done = rewrite.rewrite(model, [rewrite.ZIPMAP])
    assert done is not None and done.zipmaps == {"output_probability": ["cat", "dog", "eel"]}
    sess = wasmhost.InferenceSession(model)
    assert sess.get_outputs()[1].type == "seq(map(string,tensor(float)))"
    x = np.random.default_rng(1).standard_normal((6, 4)).astype(np.float32)
    want = ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, {"X": x})
    for _ in range(3):
        labels, maps = sess.run(None, {"X": x})
        assert labels.dtype == object and labels.tolist() == want[0].tolist()
        assert [list(m) for m in maps] == [list(m) for m in want[1]]


def test_a_classifier_refused_after_zipmap_is_lifted_says_why(monkeypatch):
    """When ZipMap was all the guest named at first, the refusal is the one for the rest of
    the model (a binary GradientBoostingClassifier's two base values, for tract 0.23.9),
    never 'ZipMap not supported'."""
    from wasmhost.runtime import session

    model = classifier(np.array([0, 1, 2] * 10))
    real = session.Isolate
    calls = []

    def isolate(model_bytes, *args, **kwargs):
        calls.append(model_bytes)
        if len(calls) == 1:
            raise wasmhost.UnsupportedModel("operator not supported by tract: ai.onnx.ml:ZipMap")
        if len(calls) == 2:
            raise wasmhost.InvalidModel("attribute 'base_values': expected length 1, got 2")
        return real(model_bytes, *args, **kwargs)

    monkeypatch.setattr(session, "Isolate", isolate)
    with pytest.raises(wasmhost.InvalidModel, match="'base_values': expected length 1") as e:
        wasmhost.InferenceSession(model)
    assert "ZipMap" not in str(e.value)
    assert calls[0] == model and calls[1] != model  # the second try had ZipMap lifted out


def test_no_child_process_for_operators_no_rewrite_could_help(monkeypatch):
    """Only ZipMap and operators with an ONNX function definition are worth a child
    process; a refusal naming others (Unique, a Scaler) is final at once."""
    from wasmhost.runtime import rewrite

    assert rewrite.rewritable(["Unique", "ai.onnx.ml:Scaler", "LpPool"]) == []
    assert rewrite.rewritable(["Unique", "NegativeLogLikelihoodLoss", rewrite.ZIPMAP]) == [
        "NegativeLogLikelihoodLoss",
        rewrite.ZIPMAP,
    ]

    def no_child(*args, **kwargs):
        raise AssertionError("a child process was started")

    monkeypatch.setattr(rewrite, "_child", no_child)
    assert rewrite.rewrite_isolated(b"any model", ["Unique", "ai.onnx.ml:Scaler"]) is None
