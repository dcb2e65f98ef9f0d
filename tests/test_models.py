"""Real architectures and helper-built models through InferenceSession, against onnxruntime."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from conftest import LIGHT_MODELS, assert_outputs_equal, f32, make_model, reference, vi
from onnx import TensorProto, helper, numpy_helper

import wasmhost
import wasmhost.runtime.wire


def test_all_nine_light_models_are_here():
    assert len(LIGHT_MODELS) == 9, LIGHT_MODELS


def without_final_softmax(path) -> bytes | None:
    """The model cut before its final Softmax: its logits, which carry more than a softmax."""
    model = onnx.load(path)
    graph = model.graph
    last = graph.node[-1]
    if last.op_type != "Softmax" or last.output[0] != graph.output[0].name:
        return None
    graph.node.pop()
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info(last.input[0], TensorProto.FLOAT, None))
    return model.SerializeToString()


@pytest.mark.parametrize("path", LIGHT_MODELS, ids=lambda p: p.stem)
def test_light_model_matches_onnxruntime(path, rng):
    # VGG-19's weights (574 MB as float32) and ZFNet-512's (333 MB) do not fit the
    # default 512 MiB with tract's working copies.
    big = path.stem in ("light_vgg19", "light_zfnet512")
    limits = wasmhost.Limits(memory="3GiB" if big else "512MiB")
    sess = wasmhost.InferenceSession(path, limits=limits)
    (arg,) = sess.get_inputs()
    x = rng.standard_normal(arg.shape, dtype=np.float32)
    assert_outputs_equal(sess.run(None, {arg.name: x}), reference(path, {arg.name: x}))

    logits = without_final_softmax(path)
    if logits is not None:
        cut = wasmhost.InferenceSession(logits, limits=limits)
        got = cut.run(None, {arg.name: x})
        expected = reference(logits, {arg.name: x})
        scale = float(np.max(np.abs(expected[0]))) or 1.0
        assert_outputs_equal(got, expected, rtol=1e-4, atol=1e-5 * scale)


def run_shapes(model: bytes, feeds_list: list[dict[str, np.ndarray]], **tol) -> None:
    """One session, several input shapes, each compared with onnxruntime."""
    sess = wasmhost.InferenceSession(model)
    for feeds in feeds_list:
        assert_outputs_equal(sess.run(None, feeds), reference(model, feeds), **tol)


def test_mlp_with_symbolic_batch(rng):
    w = numpy_helper.from_array(rng.standard_normal((4, 3)).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.standard_normal(3).astype(np.float32), "b")
    model = make_model(
        [
            helper.make_node("MatMul", ["x", "w"], ["h"]),
            helper.make_node("Add", ["h", "b"], ["z"]),
            helper.make_node("Relu", ["z"], ["y"]),
        ],
        [f32("x", ["batch", 4])],
        [f32("y", ["batch", 3])],
        [w, b],
    )
    run_shapes(model, [{"x": rng.standard_normal((n, 4), dtype=np.float32)} for n in (1, 8, 1, 3)])


def reshape_heads_model(value_info: list[onnx.ValueInfoProto] | None = None) -> bytes:
    """[batch, seq, 6] -> heads [batch, 2, seq, 3] via Shape/Slice/Concat, as exporters write it."""
    consts = [
        numpy_helper.from_array(np.array([0], np.int64), "start"),
        numpy_helper.from_array(np.array([2], np.int64), "end"),
        numpy_helper.from_array(np.array([2, 3], np.int64), "heads"),
    ]
    return make_model(
        [
            helper.make_node("Shape", ["x"], ["s"]),
            helper.make_node("Slice", ["s", "start", "end"], ["bs"]),
            helper.make_node("Concat", ["bs", "heads"], ["new_shape"], axis=0),
            helper.make_node("Reshape", ["x", "new_shape"], ["r"]),
            helper.make_node("Transpose", ["r"], ["t"], perm=[0, 2, 1, 3]),
            helper.make_node("Softmax", ["t"], ["y"], axis=-1),
        ],
        [f32("x", ["batch", "seq", 6])],
        [f32("y", ["batch", 2, "seq", 3])],
        consts,
        value_info=value_info or [],
    )


SHAPES = [(1, 5, 6), (8, 7, 6), (2, 1, 6)]


def test_dynamic_reshape_at_several_shapes(rng):
    feeds = [{"x": rng.standard_normal(s, dtype=np.float32)} for s in SHAPES]
    run_shapes(reshape_heads_model(), feeds)


def test_stale_symbolic_value_info_is_survived(rng):
    # value_info that disagrees with what the graph computes, as exporters leave behind.
    stale = [f32("r", ["N", "S", 5, 3]), f32("t", ["N", 2, "unk", 9])]
    feeds = [{"x": rng.standard_normal(s, dtype=np.float32)} for s in SHAPES]
    run_shapes(reshape_heads_model(stale), feeds)


def test_exported_style_encoder_with_dynamic_batch_and_sequence(rng):
    """Token ids [batch, seq] -> embeddings + positions (Range over Shape) -> LayerNorm ->
    self-attention -> pooled projection: the patterns a PyTorch export of a text encoder has."""
    vocab, d = 50, 8
    init = [
        numpy_helper.from_array(rng.standard_normal((vocab, d)).astype(np.float32), "tok_emb"),
        numpy_helper.from_array(rng.standard_normal((64, d)).astype(np.float32), "pos_emb"),
        numpy_helper.from_array(np.ones(d, np.float32), "ln_scale"),
        numpy_helper.from_array(np.zeros(d, np.float32), "ln_bias"),
        numpy_helper.from_array(rng.standard_normal((d, d)).astype(np.float32) * 0.3, "wq"),
        numpy_helper.from_array(rng.standard_normal((d, d)).astype(np.float32) * 0.3, "wk"),
        numpy_helper.from_array(rng.standard_normal((d, d)).astype(np.float32) * 0.3, "wv"),
        numpy_helper.from_array(rng.standard_normal((d, 3)).astype(np.float32), "wo"),
        numpy_helper.from_array(np.array(1, np.int64), "one"),
        numpy_helper.from_array(np.array(0, np.int64), "zero"),
        numpy_helper.from_array(np.array(np.sqrt(d), np.float32), "sqrt_d"),
        numpy_helper.from_array(np.array([1], np.int64), "axis1"),
    ]
    nodes = [
        helper.make_node("Gather", ["tok_emb", "ids"], ["tok"]),
        helper.make_node("Shape", ["ids"], ["ids_shape"]),
        helper.make_node("Gather", ["ids_shape", "one"], ["seq_len"], axis=0),
        helper.make_node("Range", ["zero", "seq_len", "one"], ["positions"]),
        helper.make_node("Gather", ["pos_emb", "positions"], ["pos"]),
        helper.make_node("Add", ["tok", "pos"], ["emb"]),
        helper.make_node(
            "LayerNormalization", ["emb", "ln_scale", "ln_bias"], ["h"], axis=-1, epsilon=1e-5
        ),
        helper.make_node("MatMul", ["h", "wq"], ["q"]),
        helper.make_node("MatMul", ["h", "wk"], ["k"]),
        helper.make_node("MatMul", ["h", "wv"], ["v"]),
        helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 2, 1]),
        helper.make_node("MatMul", ["q", "kt"], ["scores_raw"]),
        helper.make_node("Div", ["scores_raw", "sqrt_d"], ["scores"]),
        helper.make_node("Softmax", ["scores"], ["attn"], axis=-1),
        helper.make_node("MatMul", ["attn", "v"], ["ctx"]),
        helper.make_node("ReduceMean", ["ctx", "axis1"], ["pooled"], keepdims=0),
        helper.make_node("MatMul", ["pooled", "wo"], ["logits"]),
    ]
    model = make_model(
        nodes,
        [vi("ids", TensorProto.INT64, ["batch", "sequence"])],
        [f32("logits", ["batch", 3])],
        init,
        opset=18,
    )
    feeds = [
        {"ids": rng.integers(0, vocab, size=shape, dtype=np.int64)}
        for shape in [(1, 4), (8, 4), (8, 16), (1, 1), (3, 9)]
    ]
    run_shapes(model, feeds)


def test_runtime_shape_input_is_specialised_by_value(rng):
    """Expand to a shape given as an input: tract types it once it knows the values."""
    model = make_model(
        [helper.make_node("Expand", ["x", "shape"], ["y"])],
        [f32("x", [1, "n"]), vi("shape", TensorProto.INT64, [2])],
        [f32("y", ["a", "b"])],
    )
    feeds = [
        {"x": rng.standard_normal((1, n), dtype=np.float32), "shape": np.array(s, np.int64)}
        for n, s in [(3, [2, 3]), (3, [5, 3]), (1, [4, 7]), (3, [2, 3])]
    ]
    run_shapes(model, feeds)


def test_output_selection_and_order(rng):
    model = make_model(
        [
            helper.make_node("Relu", ["x"], ["a"]),
            helper.make_node("Neg", ["x"], ["b"]),
            helper.make_node("Abs", ["x"], ["c"]),
        ],
        [f32("x", ["n"])],
        [f32("a", ["n"]), f32("b", ["n"]), f32("c", ["n"])],
    )
    sess = wasmhost.InferenceSession(model)
    x = rng.standard_normal(5, dtype=np.float32)
    for names in (["c", "a"], ["b"], None, ["a", "b", "c"]):
        assert_outputs_equal(sess.run(names, {"x": x}), reference(model, {"x": x}, names))


DTYPES = [
    "bool",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "int8",
    "int16",
    "int32",
    "int64",
    "float16",
    "float32",
    "float64",
]


def test_the_dtype_list_is_the_abi_list():
    # Spelled out above on purpose: a dtype dropped from the ABI must fail here.
    assert set(DTYPES) == wasmhost.runtime.wire.DTYPES


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_dtype_round_trips(dtype, rng):
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    model = make_model(
        [helper.make_node("Identity", ["x"], ["y"])],
        [vi("x", elem, None)],
        [vi("y", elem, None)],
        check=False,  # unranked input: any shape, scalars included
    )
    sess = wasmhost.InferenceSession(model)
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None
    for shape in [(3, 4), (), (0, 5), (2, 1, 3)]:
        if dtype == "bool":
            x = rng.standard_normal(shape) > 0
        elif info is not None:
            x = rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)
        else:
            x = (rng.standard_normal(shape) * 1e3).astype(dtype)
        (y,) = sess.run(None, {"x": x})
        assert y.dtype == x.dtype and y.shape == x.shape
        np.testing.assert_array_equal(y, x)
        assert y.flags.writeable


def test_scalars_views_and_byte_order(rng):
    model = make_model(
        [helper.make_node("Mul", ["x", "x"], ["y"])],
        [f32("x", None)],
        [f32("y", None)],
        check=False,
    )
    sess = wasmhost.InferenceSession(model)
    base = rng.standard_normal((6, 8), dtype=np.float32)
    for x in [
        np.float32(3.0),  # a numpy scalar
        np.array(2.5, np.float32),  # a 0-d array
        base[:, ::2],  # not contiguous
        base.T,  # Fortran order
        base.astype(">f4"),  # big-endian
    ]:
        (y,) = sess.run(None, {"x": x})
        expected = np.asarray(x, dtype=np.float32) ** 2
        assert y.shape == expected.shape
        np.testing.assert_allclose(y, expected, rtol=1e-6)


def test_shape_output_is_int64_and_quantized_output_is_its_storage_type(rng):
    shape_model = make_model(
        [helper.make_node("Shape", ["x"], ["y"])],
        [f32("x", ["n", "m"])],
        [vi("y", TensorProto.INT64, [2])],
    )
    x = np.zeros((3, 5), np.float32)
    assert_outputs_equal(
        wasmhost.InferenceSession(shape_model).run(None, {"x": x}), reference(shape_model, {"x": x})
    )
    quant = make_model(
        [helper.make_node("QuantizeLinear", ["x", "scale", "zero"], ["y"])],
        [f32("x", ["n"])],
        [vi("y", TensorProto.UINT8, ["n"])],
        [
            numpy_helper.from_array(np.array(0.05, np.float32), "scale"),
            numpy_helper.from_array(np.array(128, np.uint8), "zero"),
        ],
    )
    x = rng.standard_normal(32, dtype=np.float32)
    assert_outputs_equal(
        wasmhost.InferenceSession(quant).run(None, {"x": x}), reference(quant, {"x": x})
    )


def lrn_reference(x: np.ndarray, size: int, alpha: float, beta: float, bias: float) -> np.ndarray:
    """ONNX's LRN definition, in float64: the oracle for dtypes onnxruntime lacks."""
    # ONNX attributes are float32: so are alpha, beta and bias, whatever the tensor type.
    alpha, beta, bias = (float(np.float32(v)) for v in (alpha, beta, bias))
    x64 = x.astype(np.float64)
    square_sum = np.zeros_like(x64)
    channels = x.shape[1]
    for c in range(channels):
        lo, hi = max(0, c - (size - 1) // 2), min(channels - 1, c + (size) // 2)
        square_sum[:, c] = (x64[:, lo : hi + 1] ** 2).sum(axis=1)
    return (x64 / (bias + alpha / size * square_sum) ** beta).astype(x.dtype)


def lrn_model(elem: int, shape: list[int], **attrs) -> bytes:
    return make_model(
        [helper.make_node("LRN", ["x"], ["y"], **attrs)],
        [vi("x", elem, shape)],
        [vi("y", elem, shape)],
    )


@pytest.mark.parametrize(
    ("shape", "attrs"),
    [
        ([1, 96, 13, 11], {"size": 5, "alpha": 5e-4, "beta": 0.75, "bias": 2.0}),  # zfnet512's
        ([2, 7, 5, 3], {"size": 3}),  # ONNX's defaults: beta 0.75, bias 1
        ([1, 6, 4, 4], {"size": 4, "alpha": 0.5, "beta": 0.5, "bias": 0.25}),  # even window
        ([1, 3, 9], {"size": 7, "alpha": 2.0, "beta": 1.3, "bias": 1.0}),  # wider than C
        ([3, 5], {"size": 2, "beta": 0.75}),  # no spatial dims
        ([2, 4, 2, 3, 2], {"size": 3, "alpha": 1e-2, "beta": 0.9}),  # 3-d images
    ],
)
def test_lrn_matches_onnxruntime(rng, shape, attrs):
    # The guest's own LRN (wasm_modules/tract_onnx_guest/src/ops/lrn.rs), not tract's.
    model = lrn_model(TensorProto.FLOAT, shape, **attrs)
    x = (rng.standard_normal(shape) * 3).astype(np.float32)
    (got,) = wasmhost.InferenceSession(model).run(None, {"x": x})
    if len(shape) == 4 and attrs["size"] % 2:  # onnxruntime's LRN: images, odd windows
        assert_outputs_equal([got], reference(model, {"x": x}), rtol=2e-6, atol=1e-7)
    defaults = {"alpha": 1e-4, "beta": 0.75, "bias": 1.0, **attrs}
    np.testing.assert_allclose(got, lrn_reference(x, **defaults), rtol=2e-6, atol=1e-7)


@pytest.mark.parametrize(
    ("elem", "dtype", "rtol"), [(11, np.float64, 1e-12), (10, np.float16, 2e-3)]
)
def test_lrn_in_other_float_types(rng, elem, dtype, rtol):
    attrs = {"size": 3, "alpha": 0.1, "beta": 0.75, "bias": 1.5}
    x = rng.standard_normal((1, 5, 4, 4)).astype(dtype)
    (got,) = wasmhost.InferenceSession(lrn_model(elem, [1, 5, 4, 4], **attrs)).run(None, {"x": x})
    assert got.dtype == dtype
    np.testing.assert_allclose(got, lrn_reference(x, **attrs), rtol=rtol, atol=rtol)


def test_lrn_of_an_empty_batch_and_a_bad_size():
    model = lrn_model(TensorProto.FLOAT, ["n", 4, 2], size=3)
    (got,) = wasmhost.InferenceSession(model).run(None, {"x": np.zeros((0, 4, 2), np.float32)})
    assert got.shape == (0, 4, 2)
    bad = lrn_model(TensorProto.FLOAT, [1, 4, 2], size=0)
    with pytest.raises(wasmhost.InvalidModel, match="LRN size"):
        wasmhost.InferenceSession(bad)


def max_pool_model(elem: int, shape: list[int], outputs: int = 1, **attrs) -> bytes:
    names = ["y", "i"][:outputs]
    types = [elem, TensorProto.INT64]
    return make_model(
        [helper.make_node("MaxPool", ["x"], names, **attrs)],
        [vi("x", elem, shape)],
        [vi(n, t, None) for n, t in zip(names, types, strict=False)],
        check=False,
    )


@pytest.mark.parametrize(
    ("shape", "attrs"),
    [
        # The guest's own pool (src/ops/maxpool.rs in the guest crate): 2-d, explicit pads.
        ([1, 96, 21, 21], {"kernel_shape": [3, 3], "strides": [2, 2]}),  # squeezenet's
        ([2, 5, 28, 28], {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}),  # inception's
        ([1, 3, 12, 10], {"kernel_shape": [2, 2], "strides": [2, 2]}),  # a 2x2 pool
        ([1, 4, 9, 11], {"kernel_shape": [3, 2], "strides": [3, 1], "pads": [2, 0, 1, 1]}),
        ([1, 2, 7, 7], {"kernel_shape": [5, 5], "strides": [1, 2], "pads": [0, 4, 4, 0]}),
        ([1, 1, 3, 3], {"kernel_shape": [3, 3]}),  # one output pixel
        ([1, 2, 8, 8], {"kernel_shape": [3, 3], "strides": [4, 4]}),  # taps skipped
        # tract's: ceil mode, dilation, auto_pad, 1-d and 3-d pools.
        ([1, 2, 9, 9], {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1}),
        ([1, 2, 9, 9], {"kernel_shape": [2, 2], "dilations": [2, 2]}),
        ([1, 2, 9, 9], {"kernel_shape": [3, 3], "auto_pad": "SAME_UPPER", "strides": [2, 2]}),
        ([1, 3, 10], {"kernel_shape": [3], "strides": [2]}),
        ([1, 2, 5, 6, 7], {"kernel_shape": [2, 3, 2]}),
    ],
)
def test_max_pool_matches_onnxruntime(rng, shape, attrs):
    model = max_pool_model(TensorProto.FLOAT, shape, **attrs)
    x = rng.standard_normal(shape).astype(np.float32)
    x.flat[::7] = -np.inf  # windows whose max is not their first tap
    (got,) = wasmhost.InferenceSession(model).run(None, {"x": x})
    assert_outputs_equal([got], reference(model, {"x": x}), rtol=0, atol=0)


@pytest.mark.parametrize(
    ("elem", "dtype"),
    [(TensorProto.DOUBLE, np.float64), (TensorProto.UINT8, np.uint8), (TensorProto.INT8, np.int8)],
)
def test_max_pool_in_other_types(rng, elem, dtype):
    shape = [1, 3, 11, 11]
    model = max_pool_model(elem, shape, kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    x = (rng.standard_normal(shape) * 50).astype(dtype)
    (got,) = wasmhost.InferenceSession(model).run(None, {"x": x})
    assert_outputs_equal([got], reference(model, {"x": x}), rtol=0, atol=0)


def test_max_pool_with_indices_is_tracts():
    model = max_pool_model(TensorProto.FLOAT, [1, 1, 4, 4], outputs=2, kernel_shape=[2, 2])
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    got = wasmhost.InferenceSession(model).run(None, {"x": x})
    assert_outputs_equal(got, reference(model, {"x": x}))


def test_guest_ops_refuse_bad_shapes_with_a_reason():
    pool = max_pool_model(TensorProto.FLOAT, [1, 1, 3, 3], kernel_shape=[5, 5])
    with pytest.raises(wasmhost.UnsupportedModel, match=r"5x5 kernel is larger .* \[1, 1, 3, 3\]"):
        wasmhost.InferenceSession(pool)
    lrn = make_model(
        [helper.make_node("LRN", ["x"], ["y"], size=3)], [f32("x", [4])], [f32("y", [4])]
    )
    with pytest.raises(wasmhost.UnsupportedModel, match="LRN wants an input of rank 2"):
        wasmhost.InferenceSession(lrn)
