"""The guest's text and label operators against onnxruntime: each model built here, run in
one session on several feeds (of several shapes), round after round, so that an answer
that depends on an earlier run shows; and hostile attributes refused as invalid models."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

import wasmhost

ROUNDS = 3
S = TensorProto.STRING


def node_model(op: str, inputs, outputs, domain: str = "", ml: int = 3, **attrs) -> bytes:
    """One node; `inputs`/`outputs` are (name, elem type, shape)."""
    node = helper.make_node(op, [i[0] for i in inputs], [o[0] for o in outputs], domain=domain)
    node.attribute.extend(helper.make_attribute(k, v) for k, v in attrs.items())
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info(*i) for i in inputs],
        [helper.make_tensor_value_info(*o) for o in outputs],
    )
    opsets = [helper.make_opsetid("", 20), helper.make_opsetid("ai.onnx.ml", ml)]
    if domain == "com.microsoft":
        opsets.append(helper.make_opsetid("com.microsoft", 1))
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 9
    return model.SerializeToString()


def words(*rows) -> np.ndarray:
    return np.array(rows, dtype=object)


def flipped(feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The feed with each input's rows reversed: other values, the same shapes."""
    return {k: np.flip(v, 0) if v.ndim else v for k, v in feed.items()}


def assert_like_onnxruntime(data: bytes, feeds: list[dict[str, np.ndarray]]) -> None:
    """Every feed and its rows reversed, in rounds: other inputs between repeats."""
    feeds = [g for f in feeds for g in (f, flipped(f))]
    sess = wasmhost.InferenceSession(data)
    oracle = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    expected = [oracle.run(None, f) for f in feeds]
    for _ in range(ROUNDS):
        for feed, want in zip(feeds, expected, strict=True):
            got = sess.run(None, feed)
            for g, e in zip(got, want, strict=True):
                assert g.dtype == e.dtype and g.shape == e.shape, (feed, g, e)
                if g.dtype.kind == "f":
                    np.testing.assert_allclose(g, e, rtol=1e-6, atol=1e-7)
                else:
                    assert g.tolist() == e.tolist(), (feed, g, e)


SENTENCES = words("The Cat sat", "", "a DOG and the cat", "Ünïcödé Straße", "the the the")

CASES = {
    "normalizer-lower-stopwords": (
        node_model(
            "StringNormalizer",
            [("x", S, ["C"])],
            [("y", S, ["D"])],
            case_change_action="LOWER",
            stopwords=["the", "A"],
            is_case_sensitive=0,
            locale="C.UTF-8",
        ),
        [{"x": words("The", "cat", "A", "Ünï")}, {"x": words("the", "THE")}, {"x": words("x")}],
    ),
    "normalizer-upper-sensitive-1xC": (
        node_model(
            "StringNormalizer",
            [("x", S, [1, "C"])],
            [("y", S, [1, "D"])],
            case_change_action="UPPER",
            stopwords=["the"],
            is_case_sensitive=1,
            locale="C.UTF-8",
        ),
        [{"x": words(["the", "The", "straße"])}, {"x": words(["the"])}],
    ),
    "tokenizer-tokenexp": (
        node_model(
            "Tokenizer",
            [("x", S, ["N"])],
            [("y", S, ["N", "T"])],
            domain="com.microsoft",
            mark=0,
            mincharnum=1,
            pad_value="#",
            tokenexp="[a-zA-Z0-9_]+",
        ),
        [{"x": SENTENCES}, {"x": words("one")}, {"x": words("", "")}],
    ),
    "tokenizer-separators-marks-2d": (
        node_model(
            "Tokenizer",
            [("x", S, ["N", "C"])],
            [("y", S, ["N", "C", "T"])],
            domain="com.microsoft",
            mark=1,
            mincharnum=2,
            pad_value="<pad>",
            separators=[" ", ","],
        ),
        [{"x": words(["a b,cd", "efg"], ["", "hi there"])}, {"x": words(["xx yy"])}],
    ),
    "tfidf-strings-tfidf-skip": (
        node_model(
            "TfIdfVectorizer",
            [("x", S, ["N", "C"])],
            [("y", TensorProto.FLOAT, ["N", 6])],
            mode="TFIDF",
            min_gram_length=1,
            max_gram_length=2,
            max_skip_count=1,
            ngram_counts=[0, 3],
            ngram_indexes=[0, 1, 2, 3, 4, 5],
            weights=[0.5, 1.0, 2.0, 0.25, 3.0, 1.5],
            pool_strings=["a", "b", "c", "a", "b", "b", "c", "a", "c"],
        ),
        [
            {"x": words(["a", "b", "c", "a"], ["c", "a", "c", "#"])},
            {"x": words(["b", "b", "b", "b"])},
        ],
    ),
    "tfidf-ints-idf-1d": (
        node_model(
            "TfIdfVectorizer",
            [("x", TensorProto.INT64, ["C"])],
            [("y", TensorProto.FLOAT, [4])],
            mode="IDF",
            min_gram_length=1,
            max_gram_length=1,
            max_skip_count=0,
            ngram_counts=[0],
            ngram_indexes=[3, 0, 1, 2],
            weights=[1.0, 2.0, 3.0, 4.0],
            pool_int64s=[5, 6, 7, 8],
        ),
        [{"x": np.array([5, 6, 6, 9], np.int64)}, {"x": np.array([8], np.int64)}],
    ),
    "string-concat-broadcast": (
        node_model(
            "StringConcat",
            [("a", S, ["N", 2]), ("b", S, [2])],
            [("y", S, ["N", 2])],
        ),
        [{"a": words(["a", "b"], ["", "é"]), "b": words("-1", "")}],
    ),
    "string-split": (
        node_model(
            "StringSplit",
            [("x", S, ["N"])],
            [("y", S, ["N", "P"]), ("z", TensorProto.INT64, ["N"])],
            delimiter="-",
            maxsplit=2,
        ),
        [{"x": words("a-b-c-d", "", "x", "--")}, {"x": words("q-r")}],
    ),
    "string-split-whitespace": (
        node_model(
            "StringSplit",
            [("x", S, ["N"])],
            [("y", S, ["N", "P"]), ("z", TensorProto.INT64, ["N"])],
        ),
        [{"x": words(" a  b ", "c", "  ")}],
    ),
    "regex-full-match": (
        node_model(
            "RegexFullMatch",
            [("x", S, ["N"])],
            [("y", TensorProto.BOOL, ["N"])],
            pattern=r"[a-z]+@[a-z]+\.(com|org)",
        ),
        [{"x": words("a@b.com", "a@b.co", "x@y.org!", "")}],
    ),
    "label-encoder-v1-to-int": (
        node_model(
            "LabelEncoder",
            [("x", S, ["N"])],
            [("y", TensorProto.INT64, ["N"])],
            domain="ai.onnx.ml",
            ml=1,
            classes_strings=["b", "a", "c"],
            default_int64=-7,
        ),
        [{"x": words("a", "zz", "c")}],
    ),
    "label-encoder-v1-to-string": (
        node_model(
            "LabelEncoder",
            [("x", TensorProto.INT64, ["N"])],
            [("y", S, ["N"])],
            domain="ai.onnx.ml",
            ml=1,
            classes_strings=["b", "a", "c"],
        ),
        [{"x": np.array([2, 0, 9, -1], np.int64)}],
    ),
    "label-encoder-v2-string-to-float": (
        node_model(
            "LabelEncoder",
            [("x", S, ["N", 2])],
            [("y", TensorProto.FLOAT, ["N", 2])],
            domain="ai.onnx.ml",
            ml=2,
            keys_strings=["x", "y", "x"],
            values_floats=[1.5, -2.0, 9.0],
            default_float=0.25,
        ),
        [{"x": words(["x", "y"], ["z", "x"])}],
    ),
    "label-encoder-v2-int-to-string": (
        node_model(
            "LabelEncoder",
            [("x", TensorProto.INT64, ["N"])],
            [("y", S, ["N"])],
            domain="ai.onnx.ml",
            ml=2,
            keys_int64s=[3, 1],
            values_strings=["three", "one"],
        ),
        [{"x": np.array([1, 2, 3], np.int64)}],
    ),
    "label-encoder-v4-nan-key": (
        node_model(
            "LabelEncoder",
            [("x", TensorProto.FLOAT, ["N"])],
            [("y", TensorProto.INT64, ["N"])],
            domain="ai.onnx.ml",
            ml=4,
            keys_floats=[np.nan, 1.0, -0.0],
            values_int64s=[10, 11, 12],
        ),
        [{"x": np.array([np.nan, 1.0, 0.0, 2.0], np.float32)}],
    ),
    "category-mapper-no-default": (
        node_model(
            "CategoryMapper",
            [("x", S, ["N"])],
            [("y", TensorProto.INT64, ["N"])],
            domain="ai.onnx.ml",
            cats_strings=["a", "b"],
            cats_int64s=[5, 6],
        ),
        [{"x": words("b", "q", "a")}],
    ),
    "category-mapper-to-string-both-defaults": (
        node_model(
            "CategoryMapper",
            [("x", TensorProto.INT64, ["N"])],
            [("y", S, ["N"])],
            domain="ai.onnx.ml",
            cats_strings=["a", "b"],
            cats_int64s=[5, 6],
            default_int64=0,
            default_string="none",
        ),
        [{"x": np.array([6, 7, 5], np.int64)}],
    ),
    "one-hot-strings": (
        node_model(
            "OneHotEncoder",
            [("x", S, ["N", 2])],
            [("y", TensorProto.FLOAT, ["N", 2, 3])],
            domain="ai.onnx.ml",
            cats_strings=["red", "green", "blue"],
            zeros=1,
        ),
        [{"x": words(["red", "blue"], ["pink", "green"])}],
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_text_ops_match_onnxruntime(case):
    data, feeds = CASES[case]
    assert_like_onnxruntime(data, feeds)


def test_a_whole_text_pipeline_many_times_and_threads():
    """skl2onnx's TfidfVectorizer path: Reshape, StringNormalizer, Tokenizer, Flatten,
    TfIdfVectorizer, from a few threads at once."""
    import threading

    shape = onnx.numpy_helper.from_array(np.array([-1], np.int64), "flat")
    nodes = [
        helper.make_node("Reshape", ["text", "flat"], ["flattened"]),
        helper.make_node(
            "StringNormalizer",
            ["flattened"],
            ["normalized"],
            case_change_action="LOWER",
            locale="C.UTF-8",
        ),
        helper.make_node(
            "Tokenizer",
            ["normalized"],
            ["tokens"],
            domain="com.microsoft",
            mark=0,
            mincharnum=1,
            pad_value="#",
            tokenexp="[a-zA-Z0-9_]+",
        ),
        helper.make_node("Flatten", ["tokens"], ["flat_tokens"]),
        helper.make_node(
            "TfIdfVectorizer",
            ["flat_tokens"],
            ["y"],
            mode="TF",
            min_gram_length=1,
            max_gram_length=1,
            max_skip_count=0,
            ngram_counts=[0],
            ngram_indexes=[0, 1, 2],
            pool_strings=["cat", "dog", "the"],
        ),
    ]
    graph = helper.make_graph(
        nodes,
        "text",
        [helper.make_tensor_value_info("text", S, ["N", 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
        [shape],
    )
    opsets = [helper.make_opsetid(d, v) for d, v in (("", 17), ("com.microsoft", 1))]
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 9
    data = model.SerializeToString()
    feeds = [
        {"text": SENTENCES.reshape(-1, 1)},
        {"text": words(["dog dog cat"])},
        {"text": words(["", "THE"]).reshape(-1, 1)},
    ]
    assert_like_onnxruntime(data, feeds)
    oracle = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    expected = [oracle.run(None, f)[0] for f in feeds]
    sess = wasmhost.InferenceSession(data, pool_size=2)
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        try:
            for i in range(12):
                j = (k + i) % len(feeds)
                np.testing.assert_array_equal(sess.run(None, feeds[j])[0], expected[j])
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


HOSTILE = {
    "invalid regex": (
        "RegexFullMatch",
        [("x", S, ["N"])],
        [("y", TensorProto.BOOL, ["N"])],
        {"pattern": "(a"},
        "RegexFullMatch",
    ),
    "back-reference": (
        "RegexFullMatch",
        [("x", S, ["N"])],
        [("y", TensorProto.BOOL, ["N"])],
        {"pattern": r"(a)\1"},
        "RegexFullMatch",
    ),
    "huge pattern": (
        "RegexFullMatch",
        [("x", S, ["N"])],
        [("y", TensorProto.BOOL, ["N"])],
        {"pattern": "(((a{100}){100}){100})"},
        "RegexFullMatch",
    ),
    "tokenizer without pad_value": (
        "Tokenizer",
        [("x", S, ["N"])],
        [("y", S, ["N", "T"])],
        {"mark": 0, "mincharnum": 1, "tokenexp": "a"},
        "pad_value",
    ),
    "tfidf index past the pool": (
        "TfIdfVectorizer",
        [("x", S, ["C"])],
        [("y", TensorProto.FLOAT, [2])],
        {
            "mode": "TF",
            "min_gram_length": 1,
            "max_gram_length": 3,
            "max_skip_count": 0,
            "ngram_counts": [0],
            "ngram_indexes": [0, 1],
            "pool_strings": ["a", "b"],
        },
        "max_gram_length",
    ),
    "tfidf negative skip": (
        "TfIdfVectorizer",
        [("x", S, ["C"])],
        [("y", TensorProto.FLOAT, [2])],
        {
            "mode": "TF",
            "min_gram_length": 1,
            "max_gram_length": 1,
            "max_skip_count": -1,
            "ngram_counts": [0],
            "ngram_indexes": [0, 1],
            "pool_strings": ["a", "b"],
        },
        "max_skip_count",
    ),
    "label encoder keys without values": (
        "LabelEncoder",
        [("x", S, ["N"])],
        [("y", TensorProto.INT64, ["N"])],
        {"keys_strings": ["a", "b"], "values_int64s": [1]},
        "2 keys for 1 values",
    ),
    "category mapper lists of two lengths": (
        "CategoryMapper",
        [("x", S, ["N"])],
        [("y", TensorProto.INT64, ["N"])],
        {"cats_strings": ["a", "b"], "cats_int64s": [1]},
        "cats_strings",
    ),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_attributes_are_invalid_models(case):
    op, inputs, outputs, attrs, word = HOSTILE[case]
    domain = {"Tokenizer": "com.microsoft"}.get(op, "ai.onnx.ml" if op[0] in "LC" else "")
    data = node_model(op, inputs, outputs, domain=domain, ml=2, **attrs)
    with pytest.raises(wasmhost.InvalidModel, match=word):
        wasmhost.InferenceSession(data)
