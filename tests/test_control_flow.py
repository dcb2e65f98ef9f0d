"""`If` folded to the branch its condition picks once the inputs are known, and models
typed another way when one way fails: each against onnxruntime, run more than once."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_outputs_equal, f32, make_model, reference, vi
from onnx import TensorProto, helper, numpy_helper

import wasmhost


def _branch(name: str, nodes, out: str, shape) -> object:
    return helper.make_graph(nodes, name, [], [f32(out, shape)])


def _consts(**values) -> list:
    return [numpy_helper.from_array(np.asarray(v), k) for k, v in values.items()]


def sample_rate_model() -> bytes:
    """An audio front end's shape: a scalar int64 input picks a branch, and the two
    branches' outputs have different shapes (x * 2 for 16 kHz, x[:2] otherwise)."""
    then_g = _branch("then", [helper.make_node("Mul", ["x", "two"], ["t"])], "t", ["N"])
    else_g = _branch("else", [helper.make_node("Slice", ["x", "zero", "two_i"], ["e"])], "e", [2])
    nodes = [
        helper.make_node("Equal", ["sr", "k16000"], ["c"]),
        helper.make_node("If", ["c"], ["y"], then_branch=then_g, else_branch=else_g),
    ]
    consts = _consts(
        two=np.float32(2), zero=np.array([0]), two_i=np.array([2]), k16000=np.array(16000, np.int64)
    )
    return make_model(
        nodes, [f32("x", ["N"]), vi("sr", TensorProto.INT64, [])], [f32("y", ["M"])], consts
    )


def nested_model() -> bytes:
    """Two Ifs, the inner inside the outer's then-branch, on a bool and an int input,
    with outputs of three different ranks."""
    inner_then = _branch("inner_then", [helper.make_node("Neg", ["x"], ["it"])], "it", ["N"])
    inner_else = _branch(
        "inner_else", [helper.make_node("Unsqueeze", ["x", "axes0"], ["ie"])], "ie", [1, "N"]
    )
    outer_then = helper.make_graph(
        [
            helper.make_node("Greater", ["k", "zero_i"], ["kc"]),
            helper.make_node("If", ["kc"], ["ot"], then_branch=inner_then, else_branch=inner_else),
        ],
        "outer_then",
        [],
        [f32("ot", None)],
    )
    outer_else = _branch(
        "outer_else", [helper.make_node("ReduceSum", ["x"], ["oe"], keepdims=0)], "oe", []
    )
    nodes = [
        helper.make_node("If", ["flag"], ["y"], then_branch=outer_then, else_branch=outer_else)
    ]
    return make_model(
        nodes,
        [f32("x", ["N"]), vi("flag", TensorProto.BOOL, []), vi("k", TensorProto.INT64, [])],
        [f32("y", None)],
        _consts(axes0=np.array([0]), zero_i=np.array(0, np.int64)),
        check=False,
    )


def unused_branch_model() -> bytes:
    """The else-branch reshapes x to rows of 3, which no input length but multiples of 3
    allows: a 5-long x must still run the then-branch (onnxruntime does; tract, which
    types both branches, refused it)."""
    then_g = _branch("then", [helper.make_node("Identity", ["x"], ["t"])], "t", ["N"])
    else_g = _branch(
        "else",
        [
            helper.make_node("Reshape", ["x", "rows3"], ["r"]),
            helper.make_node("Shape", ["x"], ["sx"]),
            helper.make_node("Reshape", ["r", "sx"], ["e"]),
        ],
        "e",
        ["N"],
    )
    nodes = [
        helper.make_node("Greater", ["n", "zero"], ["c"]),
        helper.make_node("If", ["c"], ["y"], then_branch=then_g, else_branch=else_g),
    ]
    return make_model(
        nodes,
        [f32("x", ["N"]), vi("n", TensorProto.INT64, [])],
        [f32("y", ["N"])],
        _consts(rows3=np.array([-1, 3]), zero=np.array(0, np.int64)),
    )


def _check_runs(model: bytes, feed_sets: list[dict[str, np.ndarray]], rounds: int = 3) -> None:
    """Every feed set, in turn, `rounds` times in one session, against onnxruntime."""
    sess = wasmhost.InferenceSession(model)
    expected = [reference(model, feeds) for feeds in feed_sets]
    for _ in range(rounds):
        for feeds, exp in zip(feed_sets, expected, strict=True):
            assert_outputs_equal(sess.run(None, feeds), exp)


def test_if_on_a_scalar_input_with_branches_of_different_shapes():
    x = np.arange(5, dtype=np.float32)
    _check_runs(
        sample_rate_model(),
        [
            {"x": x, "sr": np.array(16000, np.int64)},
            {"x": x, "sr": np.array(8000, np.int64)},
            {"x": x[:4], "sr": np.array(8000, np.int64)},
        ],
    )


def test_nested_ifs_on_a_bool_and_an_int_input():
    x = np.arange(4, dtype=np.float32) - 1.5
    feed_sets = [
        {"x": x, "flag": np.array(flag), "k": np.array(k, np.int64)}
        for flag in (True, False)
        for k in (1, -1)
    ]
    _check_runs(nested_model(), feed_sets)


def test_a_branch_that_cannot_type_for_these_inputs_does_not_stop_the_other():
    feed_sets = [
        {"x": np.arange(5, dtype=np.float32), "n": np.array(1, np.int64)},  # then; else would fail
        {
            "x": np.arange(6, dtype=np.float32),
            "n": np.array(0, np.int64),
        },  # else, which types for 6
        {"x": np.arange(7, dtype=np.float32), "n": np.array(3, np.int64)},
    ]
    _check_runs(unused_branch_model(), feed_sets)


def test_the_branch_that_runs_still_fails_precisely():
    sess = wasmhost.InferenceSession(unused_branch_model())
    for _ in range(2):
        with pytest.raises(wasmhost.UnsupportedModel, match=r"tried .*input values") as info:
            sess.run(None, {"x": np.arange(5, dtype=np.float32), "n": np.array(0, np.int64)})
        # Every way of typing the model is named, so that a user can tell what was tried.
        assert "concrete input shapes" in str(info.value)
        assert "declared input facts" in str(info.value)
    # The session goes on with inputs it can run.
    out = sess.run(None, {"x": np.arange(6, dtype=np.float32), "n": np.array(0, np.int64)})
    np.testing.assert_array_equal(out[0], np.arange(6, dtype=np.float32))


def test_a_constant_condition_folds_at_load():
    """A condition that is a constant: the model is static and typed when loaded."""
    then_g = _branch("then", [helper.make_node("Mul", ["x", "x"], ["t"])], "t", [3])
    else_g = _branch("else", [helper.make_node("Slice", ["x", "z", "o"], ["e"])], "e", [1])
    nodes = [helper.make_node("If", ["c"], ["y"], then_branch=then_g, else_branch=else_g)]
    model = make_model(
        nodes,
        [f32("x", [3])],
        [f32("y", None)],
        _consts(c=np.bool_(False), z=np.array([0]), o=np.array([1])),
        check=False,
    )
    _check_runs(model, [{"x": np.array([3, 4, 5], np.float32)}])
