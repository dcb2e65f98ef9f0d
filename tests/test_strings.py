"""String tensors (guest ABI 1.1): feeds and outputs as onnxruntime takes and returns
them, checked against onnxruntime on every run of a session, from several threads, and
the host's guard against a guest that returns malformed strings or predates them."""

from __future__ import annotations

import threading

import msgpack
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from conftest import string_model
from guests import LOAD_OK, guest
from onnx import TensorProto, helper

import wasmhost

RUNS = 3


def model(nodes, inputs, outputs, ml: int = 3, opset: int = 20) -> bytes:
    graph = helper.make_graph(nodes, "g", inputs, outputs)
    m = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", opset), helper.make_opsetid("ai.onnx.ml", ml)],
    )
    m.ir_version = 9
    onnx.checker.check_model(m)
    return m.SerializeToString()


def strings(name: str, shape) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.STRING, shape)


def assert_same(got: list, expected: list) -> None:
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert isinstance(g, np.ndarray) and g.dtype == e.dtype, (g, e)
        assert g.shape == e.shape, (g.shape, e.shape)
        if g.dtype.kind == "O":
            assert all(type(v) is str for v in g.flat)
            assert g.tolist() == e.tolist()
        else:
            np.testing.assert_array_equal(g, e)


def check_against_onnxruntime(data: bytes, feeds: list[dict[str, np.ndarray]]) -> None:
    """Every feed and its rows reversed, RUNS times over, in one session, equal to
    onnxruntime's outputs: other inputs run between repeats."""
    feeds = [g for f in feeds for g in (f, {k: np.flip(v, 0) for k, v in f.items()})]
    sess = wasmhost.InferenceSession(data)
    oracle = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    expected = [oracle.run(None, f) for f in feeds]
    for _ in range(RUNS):
        for feed, want in zip(feeds, expected, strict=True):
            assert_same(sess.run(None, feed), want)


IDENTITY = model(
    [helper.make_node("Identity", ["x"], ["y"])], [strings("x", ["N"])], [strings("y", ["N"])]
)


def test_signatures_say_string():
    sess = wasmhost.InferenceSession(IDENTITY)
    (x,) = sess.get_inputs()
    (y,) = sess.get_outputs()
    assert (x.type, y.type) == ("tensor(string)", "tensor(string)")
    assert x.dtype == np.dtype(object)


@pytest.mark.parametrize(
    "values",
    [
        ["a", "bé", "", "日本語", "x" * 5000, "tab\tnew\nline"],
        [],
        ["only"],
    ],
)
def test_strings_round_trip(values):
    feeds = [{"x": np.array(values, dtype=object)}, {"x": np.array(values, dtype=str)}]
    check_against_onnxruntime(IDENTITY, feeds)


def test_an_embedded_nul_is_kept():
    # onnxruntime cuts a string at its first NUL (it passes C strings); a Python str
    # may hold one, and the sandbox returns it whole.
    sess = wasmhost.InferenceSession(IDENTITY)
    for _ in range(RUNS):
        assert sess.run(None, {"x": np.array(["nul\0byte"], dtype=object)})[0].tolist() == [
            "nul\0byte"
        ]


def test_many_shapes_and_threads():
    data = model(
        [helper.make_node("Identity", ["x"], ["y"])],
        [strings("x", ["N", "M"])],
        [strings("y", ["N", "M"])],
    )
    rng = np.random.default_rng(0)
    words = np.array(["", "a", "bb", "ü", "spam eggs", "🙂"], dtype=object)
    feeds = [{"x": rng.choice(words, size=(n, m))} for n, m in [(1, 1), (3, 2), (0, 4), (7, 5)]]
    sess = wasmhost.InferenceSession(data, pool_size=2)
    errors: list[BaseException] = []

    def worker(seed: int) -> None:
        try:
            for i in range(20):
                feed = feeds[(seed + i) % len(feeds)]
                (y,) = sess.run(None, feed)
                assert y.shape == feed["x"].shape and y.tolist() == feed["x"].tolist()
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def test_category_mapper_both_ways():
    to_int = model(
        [
            helper.make_node(
                "CategoryMapper",
                ["x"],
                ["y"],
                domain="ai.onnx.ml",
                cats_strings=["a", "b", "c"],
                cats_int64s=[1, 2, 3],
                default_int64=-1,
            )
        ],
        [strings("x", ["N"])],
        [helper.make_tensor_value_info("y", TensorProto.INT64, ["N"])],
    )
    check_against_onnxruntime(to_int, [{"x": np.array(["a", "c", "zz", "b", ""])}])
    to_str = model(
        [
            helper.make_node(
                "CategoryMapper",
                ["x"],
                ["y"],
                domain="ai.onnx.ml",
                cats_strings=["a", "b", "c"],
                cats_int64s=[1, 2, 3],
                default_string="?",
            )
        ],
        [helper.make_tensor_value_info("x", TensorProto.INT64, ["N"])],
        [strings("y", ["N"])],
    )
    check_against_onnxruntime(to_str, [{"x": np.array([1, 3, 7, -2], np.int64)}])


@pytest.mark.parametrize(
    ("feed", "message"),
    [
        (np.array([1.0]), r"must be tensor\(string\), got tensor\(double\)"),
        (np.array([b"x"]), r"must be tensor\(string\), got tensor\(bytes"),
        (np.array([1, "a"], dtype=object), "holds a int"),
        (np.array([None], dtype=object), "holds a NoneType"),
        (np.array([["a"]]), "rank 1"),
    ],
)
def test_bad_string_feeds(feed, message):
    sess = wasmhost.InferenceSession(IDENTITY)
    with pytest.raises(wasmhost.InvalidInput, match=message):
        sess.run(None, {"x": feed})
    # The session goes on.
    assert sess.run(None, {"x": np.array(["ok"])})[0].tolist() == ["ok"]


def test_a_string_fed_where_numbers_belong():
    data = model(
        [helper.make_node("Identity", ["x"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N"])],
    )
    sess = wasmhost.InferenceSession(data)
    with pytest.raises(wasmhost.InvalidInput, match=r"must be tensor\(float\), got tensor\(string"):
        sess.run(None, {"x": np.array(["1.0"])})


# --- the host's guard on string tensors ----------------------------------------

STRING_LOAD = {
    **LOAD_OK,
    "inputs": [{"name": "x", "dtype": "string", "shape": [2]}],
    "outputs": [{"name": "y", "dtype": "string", "shape": [2]}],
}
MINOR_1 = '(func (export "wh_abi_minor") (result i32) i32.const 1)'


def _string_run(data: object, shape=(2,)) -> bytes:
    out = {"name": "y", "dtype": "string", "shape": list(shape), "data": data}
    return msgpack.packb({"outputs": [out]}, use_bin_type=True)


def test_a_guest_before_revision_1_gets_no_strings(use_guest):
    sess = use_guest(guest(msgpack.packb(STRING_LOAD), _string_run(["a", "b"])))
    assert sess.get_inputs()[0].dtype is None
    with pytest.raises(wasmhost.InvalidInput, match="cannot exchange"):
        sess.run(None, {"x": np.array(["a", "b"])})


def test_a_revision_1_guest_exchanges_strings(use_guest):
    sess = use_guest(guest(msgpack.packb(STRING_LOAD), _string_run(["p", "q"]), extra=MINOR_1))
    for _ in range(RUNS):
        (y,) = sess.run(None, {"x": np.array(["a", "b"])})
        assert y.dtype == object and y.tolist() == ["p", "q"]


@pytest.mark.parametrize(
    ("data", "shape", "message"),
    [
        (["a"], (2,), "holds 1 strings"),
        (["a", 7], (2,), "non-string"),
        (b"ab", (2,), "not an array"),
        (["a", b"b"], (2,), "non-string"),
        (["a", "b", "c"], (2,), "holds 3 strings"),
        ([], (2**40, 2**40), "holds 0 strings"),
    ],
)
def test_malformed_string_outputs_are_protocol_errors(use_guest, data, shape, message):
    sess = use_guest(guest(msgpack.packb(STRING_LOAD), _string_run(data, shape), extra=MINOR_1))
    with pytest.raises(wasmhost.GuestProtocolError, match=message):
        sess.run(None, {"x": np.array(["a", "b"])})


def test_invalid_utf8_in_a_string_output(use_guest):
    # msgpack str 0xa2 followed by two bytes that are not UTF-8.
    bad = _string_run(["ok", "XX"]).replace(b"\xa2XX", b"\xa2\xff\xfe")
    sess = use_guest(guest(msgpack.packb(STRING_LOAD), bad, extra=MINOR_1))
    with pytest.raises(wasmhost.GuestProtocolError, match="malformed"):
        sess.run(None, {"x": np.array(["a", "b"])})


# --- the CLI -------------------------------------------------------------------

MAPPER = string_model()


def test_cli_takes_string_npy_and_json_and_writes_them(tmp_path):
    import json

    from conftest import wasmhost_cli

    path = tmp_path / "m.onnx"
    path.write_bytes(MAPPER)
    np.save(tmp_path / "x.npy", np.array(["a", "zz", "b"]))
    (tmp_path / "x.json").write_text(json.dumps(["a", "zz", "b"]))
    (tmp_path / "all.json").write_text(json.dumps({"x": ["a", "zz", "b"]}))
    expected = {"code": [1, -1, 2], "same": ["a", "zz", "b"]}
    for arg in ["x.npy", "x.json", "all.json", "x=x.json"]:
        proc = wasmhost_cli("run", path, arg, "--json", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        outputs = {o["name"]: o for o in json.loads(proc.stdout)["outputs"]}
        assert {n: o["data"] for n, o in outputs.items()} == expected
        assert outputs["same"]["dtype"] == "string"
    for out in ["o.npz", "o.json"]:
        proc = wasmhost_cli("run", path, "x.npy", "-o", out, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert "'zz'" in proc.stdout  # the table shows the strings
    with np.load(tmp_path / "o.npz", allow_pickle=False) as saved:
        assert saved["same"].tolist() == expected["same"]
    doc = json.loads((tmp_path / "o.json").read_text())
    assert doc["outputs"][1]["data"] == expected["same"]


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("[1, 2]", ["tensor(string)", "give strings"]),
        ('[["a"], "b"]', ["rectangular"]),
        ("[null]", ["rectangular"]),
        ("{not json", ["not valid JSON"]),
        ('{"y": ["a"]}', ["no input 'y'"]),
    ],
)
def test_cli_refuses_bad_json_in_one_line(tmp_path, content, words):
    from conftest import assert_one_line_error, wasmhost_cli

    path = tmp_path / "m.onnx"
    path.write_bytes(MAPPER)
    (tmp_path / "x.json").write_text(content)
    assert_one_line_error(wasmhost_cli("run", path, "x.json", cwd=tmp_path), 5, *words)


def test_cli_json_numbers_are_the_inputs_type_exactly(tmp_path):
    from conftest import assert_one_line_error, wasmhost_cli

    data = model(
        [helper.make_node("Identity", ["i"], ["o"])],
        [helper.make_tensor_value_info("i", TensorProto.INT64, [2])],
        [helper.make_tensor_value_info("o", TensorProto.INT64, [2])],
    )
    path = tmp_path / "m.onnx"
    path.write_bytes(data)
    (tmp_path / "ok.json").write_text("[3, -4]")
    proc = wasmhost_cli("run", path, "ok.json", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert '"data": [3, -4]' in proc.stdout
    for content, words in [("[1.5, 2]", ["not an integer"]), ('["1", "2"]', ["give numbers"])]:
        (tmp_path / "bad.json").write_text(content)
        assert_one_line_error(wasmhost_cli("run", path, "bad.json", cwd=tmp_path), 5, *words)
