"""onnxruntime's API: a script written for onnxruntime runs unchanged on wasmhost with
only its import swapped, and gives the same answers; onnxruntime's options that mean
something in a sandbox (providers, provider options, RunOptions) do."""

from __future__ import annotations

import numpy as np
import onnxruntime
import pytest
from conftest import SQUEEZENET, assert_outputs_equal

import wasmhost

MODEL = str(SQUEEZENET)

# What an onnxruntime user writes, with the module as `rt`.
SCRIPT = """
so = rt.SessionOptions()
so.intra_op_num_threads = 1
so.inter_op_num_threads = 1
so.graph_optimization_level = rt.GraphOptimizationLevel.ORT_ENABLE_ALL
so.execution_mode = rt.ExecutionMode.ORT_SEQUENTIAL
so.log_severity_level = 3
so.add_session_config_entry("session.load_model_format", "ONNX")
assert "CPUExecutionProvider" in rt.get_available_providers()
assert rt.get_device() == "CPU"
sess = rt.InferenceSession(model, so, providers=["CPUExecutionProvider"])
inputs = [(i.name, i.type, i.shape) for i in sess.get_inputs()]
outputs = [(o.name, o.type, o.shape) for o in sess.get_outputs()]
name = sess.get_inputs()[0].name
ro = rt.RunOptions()
ro.log_severity_level = 3
ro.logid = "compat"
results = [
    sess.run(None, {name: x}),
    sess.run([], {name: x}),
    sess.run([sess.get_outputs()[0].name], {name: x}, ro),
    sess.run(None, {name: x}, run_options=ro),
]
sess.set_providers(["CPUExecutionProvider"])
results.append(sess.run(None, {name: x}))
meta = sess.get_modelmeta()
producer = meta.producer_name
"""


def run_script(module) -> dict:
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224), dtype=np.float32)
    scope = {"rt": module, "model": MODEL, "x": x}
    exec(SCRIPT, scope)
    return scope


def test_the_same_script_runs_on_both_with_the_import_swapped():
    ort, ours = run_script(onnxruntime), run_script(wasmhost)
    assert ours["inputs"] == ort["inputs"]
    assert ours["outputs"] == ort["outputs"]
    assert ours["producer"] == ort["producer"]
    for got, expected in zip(ours["results"], ort["results"], strict=True):
        assert_outputs_equal(got, expected)


def test_providers_other_than_the_cpu_are_refused_by_name():
    for providers in (
        ["CUDAExecutionProvider"],
        ["CPUExecutionProvider", "TensorrtExecutionProvider"],
    ):
        with pytest.raises(wasmhost.InvalidArgument, match=r"is not available.*CPU"):
            wasmhost.InferenceSession(MODEL, providers=providers)
    with pytest.raises(wasmhost.InvalidArgument, match="not a string"):
        wasmhost.InferenceSession(MODEL, providers="CPUExecutionProvider")
    with pytest.raises(wasmhost.InvalidArgument, match="1 provider_options for 2 providers"):
        wasmhost.InferenceSession(
            MODEL,
            providers=["WasmHostExecutionProvider", "CPUExecutionProvider"],
            provider_options=[{}],
        )


def test_provider_options_set_the_limits():
    sess = wasmhost.InferenceSession(
        MODEL,
        providers=[("WasmHostExecutionProvider", {"memory": "256MiB", "timeout": "none"})],
    )
    assert sess.limits.memory == 256 * 2**20 and sess.limits.timeout is None
    assert sess.get_provider_options() == {
        "WasmHostExecutionProvider": {"memory": "256MiB", "timeout": "none"}
    }
    # CPU provider options tune onnxruntime's arenas: accepted, no effect.
    cpu = wasmhost.InferenceSession(
        MODEL,
        providers=["CPUExecutionProvider"],
        provider_options=[{"arena_extend_strategy": "kSameAsRequested"}],
    )
    assert cpu.limits == wasmhost.Limits()
    with pytest.raises(wasmhost.InvalidArgument, match="has no option 'memroy'"):
        wasmhost.InferenceSession(
            MODEL, providers=[("WasmHostExecutionProvider", {"memroy": "1G"})]
        )
    with pytest.raises(wasmhost.InvalidArgument, match="memory"):
        wasmhost.InferenceSession(
            MODEL, providers=[("WasmHostExecutionProvider", {"memory": "1TB"})]
        )
    # set_providers re-applies them: the next runs are under the new limits.
    sess.set_providers([("WasmHostExecutionProvider", {"memory": "16MiB"})])
    x = np.zeros((1, 3, 224, 224), np.float32)
    for _ in range(2):
        with pytest.raises(wasmhost.MemoryLimitExceeded):
            sess.run(None, {"data_0": x})
    sess.set_providers(["WasmHostExecutionProvider"])
    assert sess.run(None, {"data_0": x})[0].shape == (1, 1000, 1, 1)


def test_session_options_carry_limits_and_pool_size_and_refuse_typos():
    so = wasmhost.SessionOptions(limits=wasmhost.Limits(memory="300MiB"))
    so.inter_op_num_threads = 3
    sess = wasmhost.InferenceSession(MODEL, so)
    assert sess.limits.memory == 300 * 2**20 and sess.pool_size == 3 and sess.pool.size == 3
    assert sess.get_session_options().limits == sess.limits
    with pytest.raises(AttributeError, match="intra_op_num_thread"):
        so.intra_op_num_thread = 1
    so.enable_profiling = True
    with pytest.raises(wasmhost.InvalidArgument, match="profiler"):
        wasmhost.InferenceSession(MODEL, so)
    # wasmhost's own first API, a Limits in second place, still works.
    assert (
        wasmhost.InferenceSession(MODEL, wasmhost.Limits(memory="200MiB")).limits.memory
        == 200 * 2**20
    )


def test_run_options_give_a_run_its_own_timeout_and_fuel():
    x = {"data_0": np.zeros((1, 3, 224, 224), np.float32)}
    sess = wasmhost.InferenceSession(MODEL, limits=wasmhost.Limits(fuel=10**12))
    for _ in range(2):
        with pytest.raises(wasmhost.FuelExhausted, match="1000 instructions, this run's fuel"):
            sess.run(None, x, wasmhost.RunOptions(fuel=1000))
        assert sess.run(None, x)[0].shape == (1, 1000, 1, 1)  # the session's budget again
    with pytest.raises(wasmhost.TimeoutExceeded, match=r"0\.001 s timeout"):
        sess.run(None, x, wasmhost.RunOptions(timeout=0.001))
    assert sess.run(None, x, wasmhost.RunOptions(timeout=60))[0].shape == (1, 1000, 1, 1)
    untimed = wasmhost.InferenceSession(MODEL, limits=wasmhost.Limits(timeout=None))
    with pytest.raises(wasmhost.InvalidArgument, match="has no timeout"):
        untimed.run(None, x, wasmhost.RunOptions(timeout=5))
    with pytest.raises(wasmhost.InvalidArgument, match="not metered"):
        untimed.run(None, x, wasmhost.RunOptions(fuel=5))
    with pytest.raises(wasmhost.InvalidArgument, match="terminate"):
        sess.run(None, x, wasmhost.RunOptions(terminate=True))
    with pytest.raises(wasmhost.InvalidArgument, match="timeout"):
        sess.run(None, x, wasmhost.RunOptions(timeout=-1))
