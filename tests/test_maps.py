"""Map inputs (ONNX-ML DictVectorizer and CastMap, which the session computes from the fed
dict) against onnxruntime, run after run, from Python and the CLI; bad dicts refused."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
from conftest import assert_one_line_error, wasmhost_cli
from onnx import TensorProto, helper

import wasmhost

RUNS = 3


def dict_pipeline() -> bytes:
    """scikit-learn's DictVectorizer + LogisticRegression, exported by skl2onnx."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DictionaryType, FloatTensorType, StringTensorType
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    x = [{"a": 1.0, "b": 2.0}, {"b": 3.0, "c": 1.0}, {"a": 0.5, "é": -1.0}] * 5
    y = [0, 1, 0] * 5
    fitted = make_pipeline(DictVectorizer(sparse=False), LogisticRegression()).fit(x, y)
    types = [("input", DictionaryType(StringTensorType([]), FloatTensorType([])))]
    opset = {"": 17, "ai.onnx.ml": 3}
    return convert_sklearn(fitted, "dict", types, target_opset=opset).SerializeToString()


def cast_map(form: str, cast_to: str, max_map: int = 5) -> bytes:
    node = helper.make_node(
        "CastMap",
        ["x"],
        ["y"],
        domain="ai.onnx.ml",
        cast_to=cast_to,
        map_form=form,
        max_map=max_map,
    )
    elem = {"TO_FLOAT": TensorProto.FLOAT, "TO_STRING": TensorProto.STRING}
    elem["TO_INT64"] = TensorProto.INT64
    map_type = helper.make_map_type_proto(
        TensorProto.INT64, helper.make_tensor_type_proto(TensorProto.FLOAT, None)
    )
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_value_info("x", map_type)],
        [helper.make_tensor_value_info("y", elem[cast_to], None)],
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)]
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 9
    return model.SerializeToString()


def same(got, expected) -> None:
    if isinstance(expected, list):  # ZipMap's maps
        assert len(got) == len(expected)
        for g, e in zip(got, expected, strict=True):
            assert list(g) == list(e)
            # The corpus's tolerance: rtol 1e-5, plus 1e-6 for values near zero.
            np.testing.assert_allclose(list(g.values()), list(e.values()), rtol=1e-5, atol=1e-6)
        return
    assert got.dtype == expected.dtype and got.shape == expected.shape, (got, expected)
    if got.dtype.kind == "f":
        np.testing.assert_allclose(got, expected, rtol=1e-5)
    else:
        assert got.tolist() == expected.tolist()


def check(data: bytes, feeds: list[dict]) -> wasmhost.InferenceSession:
    sess = wasmhost.InferenceSession(data)
    oracle = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    expected = [oracle.run(None, f) for f in feeds]
    for _ in range(RUNS):
        for feed, want in zip(feeds, expected, strict=True):
            for g, e in zip(sess.run(None, feed), want, strict=True):
                same(g, e)
    return sess


def test_dict_vectorizer_pipeline_matches_onnxruntime():
    feeds = [
        {"input": {"a": 1.0, "zz": 5.0}},
        {"input": {"b": 3.0, "c": 1.0, "é": 2.0}},
        {"input": {"c": np.float32(-4.0)}},
    ]
    sess = check(dict_pipeline(), feeds)
    (arg,) = sess.get_inputs()
    assert (arg.name, arg.type) == ("input", "map(string,tensor(float))")
    assert "ai.onnx.ml:DictVectorizer" not in sess.expanded_functions


@pytest.mark.parametrize(
    ("form", "cast_to"),
    [("DENSE", "TO_FLOAT"), ("DENSE", "TO_STRING"), ("DENSE", "TO_INT64"), ("SPARSE", "TO_FLOAT")],
)
def test_cast_map_matches_onnxruntime(form, cast_to):
    check(cast_map(form, cast_to), [{"x": {3: 1.5, 1: -2.25}}, {"x": {0: 7.75}}])


@pytest.mark.parametrize(
    ("feed", "message"),
    [
        ([1.0], "feed a dict"),
        ({"a": "x"}, "a value is 'x'"),
        ({1: 2.0}, "a key is 1"),
        ({"a": True}, "a value is True"),
    ],
)
def test_bad_dicts_are_invalid_input(feed, message):
    sess = wasmhost.InferenceSession(dict_pipeline())
    with pytest.raises(wasmhost.InvalidInput, match=message):
        sess.run(None, {"input": feed})
    assert sess.run(None, {"input": {"a": 1.0}})[0].tolist() == [0]


def test_sparse_cast_map_bounds():
    sess = wasmhost.InferenceSession(cast_map("SPARSE", "TO_FLOAT"))
    with pytest.raises(wasmhost.InvalidInput, match=r"key 9 is outside \[0, 5\)"):
        sess.run(None, {"x": {9: 1.0}})
    # A max_map the model declares is not an allocation the host makes blindly.
    huge = wasmhost.InferenceSession(cast_map("SPARSE", "TO_FLOAT", max_map=10**12))
    with pytest.raises(wasmhost.InvalidInput, match="does not fit the limits"):
        huge.run(None, {"x": {1: 1.0}})


def test_cli_reads_a_map_from_json(tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(dict_pipeline())
    (tmp_path / "x.json").write_text(json.dumps({"b": 3.0, "c": 1.0}))
    (tmp_path / "named.json").write_text(json.dumps({"input": {"b": 3.0, "c": 1.0}}))
    expected = ort.InferenceSession(dict_pipeline()).run(None, {"input": {"b": 3.0, "c": 1.0}})
    for arg in ["x.json", "named.json", "input=x.json"]:
        proc = wasmhost_cli("run", path, arg, "--json", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        label = json.loads(proc.stdout)["outputs"][0]
        assert label["data"] == expected[0].tolist()
    (tmp_path / "bad.json").write_text(json.dumps({"b": "x"}))
    assert_one_line_error(wasmhost_cli("run", path, "bad.json", cwd=tmp_path), 5, "a value is")
    (tmp_path / "list.json").write_text(json.dumps([1.0, 2.0]))
    assert_one_line_error(
        wasmhost_cli("run", path, "list.json", cwd=tmp_path), 5, "give a JSON object"
    )
    cm = tmp_path / "cm.onnx"
    cm.write_bytes(cast_map("DENSE", "TO_FLOAT"))
    (tmp_path / "ints.json").write_text(json.dumps({"3": 1.5, "1": 2.0}))
    proc = wasmhost_cli("run", cm, "ints.json", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["outputs"][0]["data"] == [[2.0, 1.5]]
