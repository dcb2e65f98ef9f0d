"""LSTM, GRU and RNN against onnxruntime, with and without initial states.

tract-onnx 0.23.9 builds a missing initial state (`initial_h`, LSTM's `initial_c`)
itself and then fails every batch larger than 1 ("Scan: Setting body inputs: Clashing
resolution for expression. 1=1 != 2"); native tract fails too. The guest gives such
nodes a state of zeros in the graph before tract parses it
(wasm_modules/tract_onnx_guest/src/rewrite_rnn.rs). Each model runs in one session
for batches 1, 2 and 3, interleaved, three times over: a plan per batch, each reused.

onnxruntime runs neither `layout = 1` nor float64 recurrences: layout 1 is checked
against onnxruntime on the layout-0 model, its inputs and outputs transposed.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_outputs_equal, f32, make_model, reference
from onnx import helper, numpy_helper

import wasmhost

SIZE, HIDDEN = 3, 4
#: Gates per operator: W is [num_directions, GATES * hidden, input].
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
#: Batch sizes in the order each round runs them.
ROUNDS = [(2, 1, 3), (3, 2, 1), (1, 3, 2)]


def outputs_of(op: str) -> list[str]:
    return ["y", "y_h", "y_c"] if op == "LSTM" else ["y", "y_h"]


def states_of(op: str) -> list[str]:
    return ["h0", "c0"] if op == "LSTM" else ["h0"]


def recurrent_model(
    op: str,
    direction: str = "forward",
    layout: int = 0,
    bias: bool = True,
    states: tuple[str, ...] = (),
    peepholes: bool = False,
    x_from_node: bool = False,
    seed: int = 0,
) -> bytes:
    """One recurrent node; `states` names the initial states given as graph inputs."""
    rng = np.random.default_rng(seed)
    nd = 2 if direction == "bidirectional" else 1
    g = GATES[op]
    weights = {
        "W": rng.standard_normal((nd, g * HIDDEN, SIZE)),
        "R": rng.standard_normal((nd, g * HIDDEN, HIDDEN)),
    }
    if bias:
        weights["B"] = rng.standard_normal((nd, 2 * g * HIDDEN))
    if peepholes:
        weights["P"] = rng.standard_normal((nd, 3 * HIDDEN))
    initializers = [
        numpy_helper.from_array((0.5 * v).astype(np.float32), k) for k, v in weights.items()
    ]
    x = "x_inner" if x_from_node else "x"
    inputs = [
        x,
        "W",
        "R",
        "B" if bias else "",
        "",
        *(s if s in states else "" for s in states_of(op)),
    ]
    if peepholes:
        inputs.append("P")
    while inputs and inputs[-1] == "":
        inputs.pop()
    attrs = {"hidden_size": HIDDEN, "direction": direction}
    if layout:
        attrs["layout"] = layout
    nodes = [helper.make_node(op, inputs, outputs_of(op), name="rec", **attrs)]
    if x_from_node:
        nodes.insert(0, helper.make_node("Relu", ["x"], ["x_inner"]))
    x_dims = ["batch", "seq", SIZE] if layout else ["seq", "batch", SIZE]
    state_dims = ["batch", nd, HIDDEN] if layout else [nd, "batch", HIDDEN]
    graph_inputs = [f32("x", x_dims), *(f32(s, state_dims) for s in states)]
    y_dims = ["batch", "seq", nd, HIDDEN] if layout else ["seq", nd, "batch", HIDDEN]
    graph_outputs = [f32("y", y_dims), *(f32(n, state_dims) for n in outputs_of(op)[1:])]
    return make_model(nodes, graph_inputs, graph_outputs, initializers)


def feeds_for(
    rng: np.random.Generator, batch: int, layout: int, nd: int, states: tuple[str, ...]
) -> dict[str, np.ndarray]:
    seq = batch + 2
    x_shape = (batch, seq, SIZE) if layout else (seq, batch, SIZE)
    state_shape = (batch, nd, HIDDEN) if layout else (nd, batch, HIDDEN)
    feeds = {"x": rng.standard_normal(x_shape).astype(np.float32)}
    for s in states:
        feeds[s] = rng.standard_normal(state_shape).astype(np.float32)
    return feeds


def expected(op: str, model_args: dict, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """onnxruntime's answer; for layout 1, on the layout-0 model, transposed."""
    if not model_args.get("layout"):
        return reference(recurrent_model(op, **model_args), feeds)
    layout0 = recurrent_model(op, **{**model_args, "layout": 0})
    moved = {k: np.ascontiguousarray(np.swapaxes(v, 0, 1)) for k, v in feeds.items()}
    y, *last = reference(layout0, moved)
    # Y: [seq, nd, batch, hidden] -> [batch, seq, nd, hidden]; Y_h, Y_c: swap the first two.
    return [np.transpose(y, (2, 0, 1, 3)), *(np.swapaxes(s, 0, 1) for s in last)]


def check_interleaved(op: str, **model_args) -> None:
    rng = np.random.default_rng(7)
    nd = 2 if model_args.get("direction") == "bidirectional" else 1
    layout = model_args.get("layout", 0)
    states = model_args.get("states", ())
    inputs = {b: feeds_for(rng, b, layout, nd, states) for b in (1, 2, 3)}
    want = {b: expected(op, model_args, feeds) for b, feeds in inputs.items()}
    session = wasmhost.InferenceSession(recurrent_model(op, **model_args))
    for batches in ROUNDS:
        for b in batches:
            got = session.run(None, inputs[b])
            assert_outputs_equal(got, want[b], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("layout", [0, 1])
@pytest.mark.parametrize("given", [False, True], ids=["no-initial-state", "initial-state"])
def test_recurrent_against_onnxruntime(op, direction, layout, given):
    states = tuple(states_of(op)) if given else ()
    check_interleaved(op, direction=direction, layout=layout, states=states)


@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
def test_without_bias_or_states(op):
    """Only X, W and R: the zero state goes in after two absent inputs (B, sequence_lens)."""
    check_interleaved(op, bias=False)


def test_lstm_with_initial_h_only():
    """initial_c alone is missing: it gets zeros, initial_h stays the one given."""
    check_interleaved("LSTM", states=("h0",))


def test_lstm_with_initial_c_only():
    check_interleaved("LSTM", states=("c0",), direction="bidirectional")


def test_lstm_peepholes_without_states():
    """P (input 7) given while both states are absent: the states fill the gap before it."""
    check_interleaved("LSTM", peepholes=True)


@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
def test_x_computed_inside_the_graph(op):
    """X is not a graph input: its shape and type are read where a node produces it."""
    check_interleaved(op, x_from_node=True, direction="bidirectional")


def lstm_with_states(state_nodes, state_names) -> bytes:
    rng = np.random.default_rng(5)
    w = {
        "W": rng.standard_normal((1, 4 * HIDDEN, SIZE)),
        "R": rng.standard_normal((1, 4 * HIDDEN, HIDDEN)),
    }
    initializers = [numpy_helper.from_array((0.5 * v).astype(np.float32), k) for k, v in w.items()]
    lstm = helper.make_node(
        "LSTM", ["x", "W", "R", "", "", *state_names], ["y", "y_h", "y_c"], hidden_size=HIDDEN
    )
    return make_model(
        [*state_nodes, lstm],
        [
            f32("x", ["seq", "batch", SIZE]),
            *([f32("s", [1, "batch", HIDDEN])] if "s" in state_names else []),
        ],
        [
            f32("y", ["seq", 1, "batch", HIDDEN]),
            f32("y_h", [1, "batch", HIDDEN]),
            f32("y_c", [1, "batch", HIDDEN]),
        ],
        initializers,
    )


def check_lstm_states(model: bytes, fed: bool) -> None:
    rng = np.random.default_rng(11)
    inputs = {}
    for b in (1, 2, 3):
        inputs[b] = {"x": rng.standard_normal((b + 2, b, SIZE)).astype(np.float32)}
        if fed:
            inputs[b]["s"] = rng.standard_normal((1, b, HIDDEN)).astype(np.float32)
    want = {b: reference(model, feeds) for b, feeds in inputs.items()}
    session = wasmhost.InferenceSession(model)
    for batches in ROUNDS:
        for b in batches:
            assert_outputs_equal(session.run(None, inputs[b]), want[b], rtol=1e-4, atol=1e-5)


def test_lstm_one_input_for_both_states():
    """initial_h and initial_c are the same value: tract's Scan fails on batches over 1
    unless the two states reach it as different values."""
    check_lstm_states(lstm_with_states([], ["s", "s"]), fed=True)


def test_lstm_states_computed_twice_alike():
    """Zeros made twice the same way from X's shape, as exporters write `torch.zeros`
    for h0 and c0: tract merges the two computations into one value."""
    nodes = []
    for name in ("h0", "c0"):
        nodes += [
            helper.make_node("Shape", ["x"], [f"{name}_xs"]),
            helper.make_node(
                "Constant",
                [],
                [f"{name}_ix"],
                value=numpy_helper.from_array(np.array([1], np.int64)),
            ),
            helper.make_node("Gather", [f"{name}_xs", f"{name}_ix"], [f"{name}_b"], axis=0),
            helper.make_node(
                "Constant",
                [],
                [f"{name}_1"],
                value=numpy_helper.from_array(np.array([1], np.int64)),
            ),
            helper.make_node(
                "Constant",
                [],
                [f"{name}_h"],
                value=numpy_helper.from_array(np.array([HIDDEN], np.int64)),
            ),
            helper.make_node(
                "Concat", [f"{name}_1", f"{name}_b", f"{name}_h"], [f"{name}_shape"], axis=0
            ),
            helper.make_node(
                "ConstantOfShape",
                [f"{name}_shape"],
                [name],
                value=numpy_helper.from_array(np.zeros(1, np.float32)),
            ),
        ]
    check_lstm_states(lstm_with_states(nodes, ["h0", "c0"]), fed=False)


def test_two_recurrent_nodes_in_a_row():
    """A stacked LSTM: the second's X is the first's Y, squeezed; both lack states."""
    rng = np.random.default_rng(3)
    w = {
        "W1": rng.standard_normal((1, 4 * HIDDEN, SIZE)),
        "R1": rng.standard_normal((1, 4 * HIDDEN, HIDDEN)),
        "W2": rng.standard_normal((1, 4 * HIDDEN, HIDDEN)),
        "R2": rng.standard_normal((1, 4 * HIDDEN, HIDDEN)),
    }
    initializers = [numpy_helper.from_array((0.5 * v).astype(np.float32), k) for k, v in w.items()]
    initializers.append(numpy_helper.from_array(np.array([1], np.int64), "axis1"))
    nodes = [
        helper.make_node("LSTM", ["x", "W1", "R1"], ["y1"], hidden_size=HIDDEN),
        helper.make_node("Squeeze", ["y1", "axis1"], ["x2"]),
        helper.make_node("LSTM", ["x2", "W2", "R2"], ["y2", "y2_h"], hidden_size=HIDDEN),
    ]
    model = make_model(
        nodes,
        [f32("x", ["seq", "batch", SIZE])],
        [f32("y2", ["seq", 1, "batch", HIDDEN]), f32("y2_h", [1, "batch", HIDDEN])],
        initializers,
    )
    inputs = {b: {"x": rng.standard_normal((b + 2, b, SIZE)).astype(np.float32)} for b in (1, 2, 3)}
    want = {b: reference(model, feeds) for b, feeds in inputs.items()}
    session = wasmhost.InferenceSession(model)
    for batches in ROUNDS:
        for b in batches:
            assert_outputs_equal(session.run(None, inputs[b]), want[b], rtol=1e-4, atol=1e-5)


def test_metadata_counts_the_model_as_given():
    """The zero state's nodes are the guest's own: the operator histogram does not list them."""
    session = wasmhost.InferenceSession(recurrent_model("LSTM", bias=False))
    assert session.get_modelmeta().operators == {"LSTM": 1}


@pytest.mark.parametrize(
    ("op", "w_shape", "r_shape", "why"),
    [
        # An X of 64 features against a W made for 3: tract multiplied them anyway, and
        # the guest and native tract answered different garbage (a differential campaign).
        ("LSTM", (1, 16, 3), (1, 16, 4), r"W has shape \[1, 16, 3\], but X \[2, 1, 64\]"),
        ("GRU", (1, 12, 3), (1, 12, 4), r"W has shape \[1, 12, 3\]"),
        ("RNN", (1, 4, 3), (1, 4, 4), r"W has shape \[1, 4, 3\]"),
    ],
)
def test_weights_that_do_not_fit_the_input_are_invalid(op, w_shape, r_shape, why):
    rng = np.random.default_rng(0)
    weights = [
        numpy_helper.from_array(rng.standard_normal(w_shape).astype(np.float32), "W"),
        numpy_helper.from_array(rng.standard_normal(r_shape).astype(np.float32), "R"),
    ]
    model = make_model(
        [helper.make_node(op, ["x", "W", "R"], ["y"], hidden_size=4)],
        [f32("x", ["seq", 1, 64])],
        [f32("y", None)],
        weights,
        check=False,
    )
    sess = wasmhost.InferenceSession(model)
    for _ in range(2):
        with pytest.raises(wasmhost.InvalidModel, match=why):
            sess.run(None, {"x": np.ones((2, 1, 64), np.float32)})
