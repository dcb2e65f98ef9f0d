"""InferenceSession's API: onnxruntime's shape, every error class, limits, threads."""

from __future__ import annotations

import threading

import numpy as np
import onnxruntime as ort
import pytest
from conftest import LIGHT, SQUEEZENET, assert_outputs_equal, f32, make_model, reference, vi
from onnx import TensorProto, helper, numpy_helper

import wasmhost
from wasmhost.runtime.isolate import Isolate


def mlp_model() -> bytes:
    return make_model(
        [
            helper.make_node("Relu", ["x"], ["h"]),
            helper.make_node("Sigmoid", ["h"], ["y"]),
            helper.make_node("Not", ["mask"], ["mask_out"]),
        ],
        [f32("x", ["batch", 3]), vi("mask", TensorProto.BOOL, ["batch", None])],
        [f32("y", ["batch", 3]), vi("mask_out", TensorProto.BOOL, None)],
        check=False,
    )


def test_exports_every_error_class_under_one_root():
    for name in [
        "InvalidArgument",
        "InvalidModel",
        "UnsupportedModel",
        "InvalidInput",
        "MemoryLimitExceeded",
        "TimeoutExceeded",
        "FuelExhausted",
        "GuestCrash",
        "GuestProtocolError",
    ]:
        assert issubclass(getattr(wasmhost, name), wasmhost.WasmHostError), name


def test_node_args_match_onnxruntime():
    for model in [str(SQUEEZENET), mlp_model()]:
        ours = wasmhost.InferenceSession(model)
        theirs = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
        for a, b in zip(ours.get_inputs(), theirs.get_inputs(), strict=True):
            assert (a.name, a.type, a.shape) == (b.name, b.type, b.shape)
        for a, b in zip(ours.get_outputs(), theirs.get_outputs(), strict=True):
            assert (a.name, a.type) == (b.name, b.type)
            # Outputs show their declared shape; onnxruntime shows what it inferred.
            assert a.shape is None or a.shape == b.shape


def test_model_metadata():
    model = make_model(
        [helper.make_node("Relu", ["x"], ["y"])], [f32("x", [2])], [f32("y", [2])], check=False
    )
    meta = wasmhost.InferenceSession(model).get_modelmeta()
    assert meta.opset == {"": 17}
    assert meta.operators == {"Relu": 1}
    squeeze = wasmhost.InferenceSession(SQUEEZENET).get_modelmeta()
    expected = ort.InferenceSession(str(SQUEEZENET)).get_modelmeta()
    assert squeeze.producer_name == expected.producer_name
    assert squeeze.graph_name == expected.graph_name
    assert squeeze.version == expected.version


# --- bad models --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"",
        bytes(4096),
        b"\xff" * 100,
        SQUEEZENET.read_bytes()[:3000],
        SQUEEZENET.read_bytes()[:-7],
        np.random.default_rng(0).bytes(10_000),
    ],
    ids=["empty", "zeros", "ff", "truncated-head", "truncated-tail", "random"],
)
def test_invalid_model_bytes(data):
    with pytest.raises(wasmhost.InvalidModel):
        wasmhost.InferenceSession(data)


def test_model_size_is_checked_before_reading(tmp_path):
    limits = wasmhost.Limits(max_model_size="1KiB")
    with pytest.raises(wasmhost.InvalidModel, match="over the 1 KiB limit"):
        wasmhost.InferenceSession(SQUEEZENET, limits=limits)
    with pytest.raises(FileNotFoundError):
        wasmhost.InferenceSession(tmp_path / "absent.onnx")


def test_unsupported_operator_is_named():
    model = make_model(
        [helper.make_node("Frobnicate", ["x"], ["y"], domain="example.com")],
        [f32("x", [1])],
        [f32("y", [1])],
        check=False,
    )
    with pytest.raises(wasmhost.UnsupportedModel, match=r"example\.com:Frobnicate"):
        wasmhost.InferenceSession(model)


def test_dangling_graph_output_is_invalid_not_a_crash():
    model = make_model(
        [helper.make_node("Relu", ["x"], ["y"])], [f32("x", [1])], [f32("zz", [1])], check=False
    )
    with pytest.raises(wasmhost.InvalidModel, match="zz"):
        wasmhost.InferenceSession(model)


# --- bad inputs --------------------------------------------------------------------------


def test_invalid_inputs_name_what_was_expected():
    sess = wasmhost.InferenceSession(SQUEEZENET)
    x = np.zeros((1, 3, 224, 224), np.float32)
    cases = [
        ({"data_0": x.astype(np.float64)}, "must be tensor(float), got tensor(double)"),
        ({"data_0": x[0]}, "must have rank 4"),
        ({"data_0": np.zeros((1, 3, 224, 225), np.float32)}, "dim 224 on axis 3"),
        ({}, "missing input 'data_0'"),
        ({"data_0": x, "extra": x}, "no input 'extra'"),
        ({"data_0": "a string"}, "expected a numpy array"),
        ({"data_0": np.array(["a"])}, "got tensor"),
    ]
    for feeds, message in cases:
        with pytest.raises(
            wasmhost.InvalidInput, match=message.replace("(", r"\(").replace(")", r"\)")
        ):
            sess.run(None, feeds)
    with pytest.raises(wasmhost.InvalidInput, match="no output 'nope'"):
        sess.run(["nope"], {"data_0": x})
    # The session is unharmed by all of that.
    (y,) = sess.run(None, {"data_0": x})
    assert y.shape == (1, 1000, 1, 1)


def test_out_of_range_gather_is_a_contained_crash():
    """tract 0.23.9 panics on an out-of-range Gather index (onnxruntime reports an error):
    the isolate dies, the caller gets GuestCrash with the panic, and the session goes on."""
    model = make_model(
        [helper.make_node("Gather", ["table", "i"], ["y"])],
        [f32("table", [4, 2]), vi("i", TensorProto.INT64, ["n"])],
        [f32("y", ["n", 2])],
    )
    sess = wasmhost.InferenceSession(model)
    table = np.arange(8, dtype=np.float32).reshape(4, 2)
    with pytest.raises(wasmhost.GuestCrash, match=r"gather\.rs") as crash:
        sess.run(None, {"table": table, "i": np.array([0, 9], np.int64)})
    assert "out of range" in crash.value.panic
    (y,) = sess.run(None, {"table": table, "i": np.array([3, 0], np.int64)})
    np.testing.assert_array_equal(y, table[[3, 0]])


# --- limits ------------------------------------------------------------------------------


def expand_model() -> bytes:
    return make_model(
        [helper.make_node("Expand", ["x", "shape"], ["y"])],
        [f32("x", [1]), vi("shape", TensorProto.INT64, [1])],
        [f32("y", ["n"])],
    )


def test_memory_limit_then_recovery():
    sess = wasmhost.InferenceSession(expand_model(), limits=wasmhost.Limits(memory="128MiB"))
    one = np.ones(1, np.float32)
    for _ in range(3):
        with pytest.raises(wasmhost.MemoryLimitExceeded, match="128 MiB"):
            sess.run(None, {"x": one, "shape": np.array([256 * 1024 * 1024], np.int64)})  # 1 GiB
        (y,) = sess.run(None, {"x": one, "shape": np.array([10], np.int64)})
        np.testing.assert_array_equal(y, np.ones(10, np.float32))


def heavy_model(n: int = 512, depth: int = 200) -> bytes:
    nodes = [
        helper.make_node("MatMul", ["x" if i == 0 else f"m{i}", "x"], [f"m{i + 1}"])
        for i in range(depth)
    ]
    return make_model(nodes, [f32("x", [n, n])], [f32(f"m{depth}", [n, n])])


def test_timeout_then_recovery():
    sess = wasmhost.InferenceSession(heavy_model(), limits=wasmhost.Limits(timeout=0.2))
    x = np.full((512, 512), 1e-3, np.float32)
    with pytest.raises(wasmhost.TimeoutExceeded, match=r"0\.2 s"):
        sess.run(None, {"x": x})
    small = wasmhost.InferenceSession(heavy_model(8, 2), limits=wasmhost.Limits(timeout=0.2))
    (y,) = small.run(None, {"x": np.eye(8, dtype=np.float32)})
    np.testing.assert_array_equal(y, np.eye(8, dtype=np.float32))


def test_fuel_is_deterministic_and_exhaustible():
    # Loading this model costs about 7 M instructions, running it about 42 M.
    model = heavy_model(128, 8)
    x = np.full((128, 128), 0.5, np.float32)
    counts = []
    for _ in range(3):  # the first run of a fresh session costs the same every time
        metered = wasmhost.InferenceSession(model, limits=wasmhost.Limits(fuel=10**10))
        metered.run(None, {"x": x})
        counts.append(metered.last_run_stats.fuel_consumed)
    used = counts[0]
    assert counts == [used] * 3 and used > 10**7
    # The budget is per guest call: what the run used is enough; half of it never is.
    # (Fuel is checked at function entries and loop heads, so the boundary is not exact.)
    exact = wasmhost.InferenceSession(model, limits=wasmhost.Limits(fuel=used))
    assert_outputs_equal(exact.run(None, {"x": x}), reference(model, {"x": x}))
    for _ in range(2):
        short = wasmhost.InferenceSession(model, limits=wasmhost.Limits(fuel=used // 2))
        with pytest.raises(wasmhost.FuelExhausted, match=f"{used // 2} instructions"):
            short.run(None, {"x": x})
    # Loading has a budget of its own: a run's budget does not bound it, and each error
    # names the budget that ran out.
    tight = wasmhost.InferenceSession(model, limits=wasmhost.Limits(fuel=1000))
    for _ in range(2):
        with pytest.raises(
            wasmhost.FuelExhausted, match=r"running.*1000 instructions, Limits\.fuel"
        ):
            tight.run(None, {"x": x})
    with pytest.raises(wasmhost.FuelExhausted, match=r"loading.*Limits\.load_fuel"):
        wasmhost.InferenceSession(model, limits=wasmhost.Limits(load_fuel=1000))
    loaded = wasmhost.InferenceSession(model, limits=wasmhost.Limits(load_fuel=10**9))
    assert_outputs_equal(loaded.run(None, {"x": x}), reference(model, {"x": x}))


def test_run_stats():
    sess = wasmhost.InferenceSession(SQUEEZENET)
    assert sess.last_run_stats is None
    sess.run(None, {"data_0": np.zeros((1, 3, 224, 224), np.float32)})
    stats = sess.last_run_stats
    assert stats.wall_time > 0 and stats.peak_memory > 10 * 2**20 and stats.fuel_consumed is None


# --- threads -----------------------------------------------------------------------------


def test_concurrent_runs_are_correct_and_bounded():
    sess = wasmhost.InferenceSession(SQUEEZENET, pool_size=2)
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal((1, 3, 224, 224), dtype=np.float32) for _ in range(3)]
    expected = [reference(SQUEEZENET, {"data_0": x}) for x in xs]
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            for i in range(4):
                j = (i + k) % len(xs)
                assert_outputs_equal(sess.run(None, {"data_0": xs[j]}), expected[j])
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    stats = sess.pool
    assert 1 <= stats.peak <= 2 and stats.size == 2 and stats.discarded == 0
    assert stats.live == stats.idle == stats.created == stats.peak


def test_invalid_arguments():
    with pytest.raises(wasmhost.InvalidArgument):
        wasmhost.InferenceSession(SQUEEZENET, pool_size=0)
    with pytest.raises(wasmhost.InvalidInput):
        wasmhost.InferenceSession(SQUEEZENET).run("softmaxout_1", {})


def test_sessions_without_a_timeout_run_code_without_epoch_checks():
    """Epoch checks cost 6-15% of a run; a session with no deadline does without them."""
    model = LIGHT / "light_squeezenet.onnx"
    x = {"data_0": np.random.default_rng(0).standard_normal((1, 3, 224, 224), np.float32)}
    timed = wasmhost.InferenceSession(model)
    untimed = wasmhost.InferenceSession(model, limits=wasmhost.Limits(timeout=None))
    assert Isolate(model.read_bytes(), timed.limits).engine.config.epoch
    assert not Isolate(model.read_bytes(), untimed.limits).engine.config.epoch
    np.testing.assert_array_equal(untimed.run(None, x)[0], timed.run(None, x)[0])


def test_a_graph_whose_shapes_contradict_each_other_is_invalid():
    """tract cannot type it; onnx's shape inference says why: an invalid model (exit 3),
    as onnxruntime calls it, not an unsupported one."""
    weights = numpy_helper.from_array(np.ones((2, 3, 3, 3), np.float32), "w")
    model = make_model(
        [helper.make_node("Conv", ["x", "w"], ["y"])],
        [f32("x", [1, 3, 8])],  # rank 3 for a 2-d kernel
        [f32("y", None)],
        [weights],
        check=False,
    )
    for _ in range(2):
        with pytest.raises(wasmhost.InvalidModel, match="spatial dimensions"):
            wasmhost.InferenceSession(model)
    # A model tract merely lacks an operator for stays unsupported.
    with pytest.raises(wasmhost.UnsupportedModel):
        wasmhost.InferenceSession(
            make_model(
                [helper.make_node("Col2Im", ["x", "s", "b"], ["y"])],
                [
                    f32("x", [1, 4, 4]),
                    vi("s", TensorProto.INT64, [2]),
                    vi("b", TensorProto.INT64, [2]),
                ],
                [f32("y", None)],
                check=False,
            )
        )
