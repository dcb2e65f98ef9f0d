"""The `wasmhost` command, run as users run it: a subprocess, checked by exit code and output."""

from __future__ import annotations

import json
import os
import subprocess
import venv
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import wasmtime
from conftest import ROOT, SQUEEZENET, assert_one_line_error, wasmhost_cli
from onnx import TensorProto, helper

import wasmhost
from wasmhost.cli import EXIT_CODES


def save_model(tmp_path: Path, graph: onnx.GraphProto, name: str = "m.onnx") -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / name
    path.write_bytes(model.SerializeToString())
    return path


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("inputs") / "x.npy"
    np.save(path, np.random.default_rng(0).standard_normal((1, 3, 224, 224), dtype=np.float32))
    return path


def squeezenet_reference(x: np.ndarray) -> list[np.ndarray]:
    sess = ort.InferenceSession(str(SQUEEZENET), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})


def test_run_writes_npz_equal_to_onnxruntime(tmp_path, image):
    out = tmp_path / "o.npz"
    proc = wasmhost_cli("run", SQUEEZENET, image, "--output", out, "--stats")
    assert proc.returncode == 0, proc.stderr
    assert "softmaxout_1" in proc.stdout and "peak guest memory" in proc.stdout
    (expected,) = squeezenet_reference(np.load(image))
    with np.load(out) as got:
        np.testing.assert_allclose(got["softmaxout_1"], expected, rtol=1e-5, atol=1e-6)


def test_run_json_and_named_and_npz_inputs(tmp_path, image):
    (expected,) = squeezenet_reference(np.load(image))
    named = wasmhost_cli("run", SQUEEZENET, f"data_0={image}", "--json", "--stats")
    assert named.returncode == 0, named.stderr
    doc = json.loads(named.stdout)
    (out,) = doc["outputs"]
    assert out["name"] == "softmaxout_1" and out["shape"] == list(expected.shape)
    np.testing.assert_allclose(np.array(out["data"], dtype=np.float32), expected, rtol=1e-5)
    assert doc["stats"]["peak_memory_bytes"] > 0

    archive = tmp_path / "in.npz"
    np.savez(archive, data_0=np.load(image))
    from_npz = wasmhost_cli("run", SQUEEZENET, archive, "--output", tmp_path / "o.json")
    assert from_npz.returncode == 0, from_npz.stderr
    written = json.loads((tmp_path / "o.json").read_text())["outputs"][0]
    np.testing.assert_allclose(np.array(written["data"], dtype=np.float32), expected, rtol=1e-5)


def test_run_npy_output_and_symbolic_dims(tmp_path):
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["y"])],
        "add",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, ["batch", "seq"]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, ["batch", "seq"]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "seq"])],
    )
    model = save_model(tmp_path, graph)
    for shape in [(1, 3), (8, 17)]:
        a = np.random.default_rng(1).standard_normal(shape, dtype=np.float32)
        b = np.ones(shape, np.float32)
        np.save(tmp_path / "a.npy", a)
        np.save(tmp_path / "b.npy", b)
        out = tmp_path / "y.npy"
        # b by name, a positionally: the named one is taken out of the order.
        proc = wasmhost_cli("run", model, f"b={tmp_path / 'b.npy'}", tmp_path / "a.npy", "-o", out)
        assert proc.returncode == 0, proc.stderr
        np.testing.assert_array_equal(np.load(out), a + b)


def test_inspect(image):
    proc = wasmhost_cli("inspect", SQUEEZENET, "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["inputs"][0] == {
        "name": "data_0",
        "type": "tensor(float)",
        "shape": [1, 3, 224, 224],
    }
    assert doc["opset"] == {"": 9}
    assert doc["operators"]["Conv"] == 26
    assert doc["loads_in_sandbox"] is True
    text = wasmhost_cli("inspect", SQUEEZENET)
    assert text.returncode == 0 and "Conv" in text.stdout and "loads" in text.stdout


def test_version():
    proc = wasmhost_cli("--version")
    assert proc.returncode == 0
    manifest = json.loads((ROOT / "wasm_modules" / "tract_onnx.json").read_text())
    assert f"tract {manifest['tract_version']}" in proc.stdout
    assert manifest["sha256"] in proc.stdout
    assert f"wasmhost {wasmhost.__version__}" in proc.stdout


# --- every error: one line, its own exit code ---------------------------------------


def test_bad_model_bytes(tmp_path, image):
    for name, data in [
        ("garbage", os.urandom(4096)),
        ("zeros", bytes(4096)),
        ("truncated", SQUEEZENET.read_bytes()[:5000]),
    ]:
        path = tmp_path / f"{name}.onnx"
        path.write_bytes(data)
        assert_one_line_error(wasmhost_cli("run", path, image), EXIT_CODES["InvalidModel"])
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    assert_one_line_error(wasmhost_cli("run", empty, image), EXIT_CODES["InvalidModel"], "empty")


def test_unsupported_operator(tmp_path, image):
    graph = helper.make_graph(
        [helper.make_node("NoSuchOp", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    model = save_model(tmp_path, graph)
    proc = wasmhost_cli("inspect", model)
    assert_one_line_error(proc, EXIT_CODES["UnsupportedModel"], "NoSuchOp")


def test_bad_inputs(tmp_path, image):
    wrong_dtype = tmp_path / "x64.npy"
    np.save(wrong_dtype, np.zeros((1, 3, 224, 224), np.float64))
    wrong_shape = tmp_path / "small.npy"
    np.save(wrong_shape, np.zeros((1, 3, 32, 32), np.float32))
    not_npy = tmp_path / "bad.npy"
    not_npy.write_bytes(b"not numpy")
    code = EXIT_CODES["InvalidInput"]
    assert_one_line_error(wasmhost_cli("run", SQUEEZENET, wrong_dtype), code, "tensor(float)")
    assert_one_line_error(wasmhost_cli("run", SQUEEZENET, wrong_shape), code, "dim 224")
    assert_one_line_error(wasmhost_cli("run", SQUEEZENET, image, image), code, "too many")
    assert_one_line_error(wasmhost_cli("run", SQUEEZENET, f"nope={image}"), code, "nope")
    assert_one_line_error(wasmhost_cli("run", SQUEEZENET, not_npy), code, "bad.npy")
    assert_one_line_error(wasmhost_cli("run", SQUEEZENET), code, "missing input")


def test_files_and_arguments(tmp_path, image):
    file_code = EXIT_CODES["file"]
    assert_one_line_error(wasmhost_cli("run", tmp_path / "none.onnx", image), file_code)
    assert_one_line_error(wasmhost_cli("run", SQUEEZENET, tmp_path / "none.npy"), file_code)
    assert_one_line_error(
        wasmhost_cli("run", SQUEEZENET, image, "-o", tmp_path / "no" / "dir" / "o.npz"), file_code
    )
    usage = EXIT_CODES["usage"]
    assert_one_line_error(wasmhost_cli("run", SQUEEZENET, image, "-o", tmp_path / "o.txt"), usage)
    assert_one_line_error(wasmhost_cli("run", SQUEEZENET, image, "--memory", "lots"), usage)
    assert_one_line_error(wasmhost_cli("run", SQUEEZENET, image, "--timeout", "soon"), usage)
    # Every usage error is one line too, pointing at --help; a directory is a file error.
    assert_one_line_error(wasmhost_cli("frobnicate"), usage, "No such command", "--help")
    assert_one_line_error(wasmhost_cli("run", "--nope", SQUEEZENET), usage, "--nope", "--help")
    assert_one_line_error(wasmhost_cli("run"), usage, "MODEL")
    assert_one_line_error(wasmhost_cli("run", tmp_path, image), file_code, "directory")
    assert_one_line_error(wasmhost_cli("inspect", tmp_path), file_code, "directory")


def test_a_file_that_is_not_npy_is_named_as_such(tmp_path):
    text = tmp_path / "x.npy"
    text.write_text("1 2 3\n")
    for _ in range(2):
        proc = wasmhost_cli("run", SQUEEZENET, text)
        assert_one_line_error(proc, EXIT_CODES["InvalidInput"], "not a .npy file")
        assert "pickle" not in proc.stderr


def test_limits_from_the_cli(tmp_path):
    # Expand to a shape given at run time: 1 GiB of float32 under a 128 MiB cap.
    graph = helper.make_graph(
        [helper.make_node("Expand", ["x", "shape"], ["y"])],
        "alloc",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1]),
            helper.make_tensor_value_info("shape", TensorProto.INT64, [1]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n"])],
    )
    model = save_model(tmp_path, graph)
    np.save(tmp_path / "x.npy", np.ones(1, np.float32))
    huge = tmp_path / "huge.npy"
    np.save(huge, np.array([256 * 1024 * 1024], np.int64))
    proc = wasmhost_cli("run", model, tmp_path / "x.npy", huge, "--memory", "128MiB")
    assert_one_line_error(proc, EXIT_CODES["MemoryLimitExceeded"], "128 MiB")

    n = 1024
    a = tmp_path / "a.npy"
    np.save(a, np.ones((n, n), np.float32))
    nodes = [
        helper.make_node("MatMul", ["x" if i == 0 else f"m{i}", "x"], [f"m{i + 1}"])
        for i in range(40)
    ]
    heavy = save_model(
        tmp_path,
        helper.make_graph(
            nodes,
            "heavy",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, n])],
            [helper.make_tensor_value_info("m40", TensorProto.FLOAT, [n, n])],
        ),
        "heavy.onnx",
    )
    proc = wasmhost_cli("run", heavy, a, "--timeout", "0.3")
    assert_one_line_error(proc, EXIT_CODES["TimeoutExceeded"], "0.3 s")
    # --fuel bounds each run; loading has its own budget, so the model loads.
    image = tmp_path / "image.npy"
    np.save(image, np.zeros((1, 3, 224, 224), np.float32))
    proc = wasmhost_cli("run", SQUEEZENET, image, "--fuel", "100000")
    assert_one_line_error(proc, EXIT_CODES["FuelExhausted"], "running", "100000")
    proc = wasmhost_cli("run", SQUEEZENET, image, "--load-fuel", "100000")
    assert_one_line_error(proc, EXIT_CODES["FuelExhausted"], "loading", "Limits.load_fuel")


GUEST_OK_EXPORTS = """
  (memory (export "memory") 2)
  (func (export "wh_alloc") (param i32) (result i32) i32.const 1024)
  (func (export "wh_free") (param i32 i32))
  (func (export "wh_load") (param i32 i32) (result i32) i32.const 0)
  (func (export "wh_run") (param i32 i32) (result i32) i32.const 0)
  (func (export "wh_result_ptr") (result i32) i32.const 0)
  (func (export "wh_result_len") (result i32) i32.const 0)
"""


def hostile_guest(tmp_path: Path, name: str, body: str) -> dict[str, str]:
    """A WAT guest written to a file, and the environment that makes wasmhost use it."""
    path = tmp_path / f"{name}.wasm"
    path.write_bytes(wasmtime.wat2wasm(f"(module {body})"))
    return {"WASMHOST_MODULE": str(path), "WASMHOST_CACHE_DIR": str(tmp_path / "cache")}


def test_guest_crash_and_protocol_error(tmp_path, image):
    crash = hostile_guest(
        tmp_path,
        "crash",
        GUEST_OK_EXPORTS
        + """(func (export "_initialize") unreachable)
             (func (export "wh_abi_version") (result i32) i32.const 1)""",
    )
    proc = wasmhost_cli("run", SQUEEZENET, image, env=crash)
    assert_one_line_error(proc, EXIT_CODES["GuestCrash"], "initializing")
    abi2 = hostile_guest(
        tmp_path,
        "abi2",
        GUEST_OK_EXPORTS
        + """(func (export "_initialize"))
             (func (export "wh_abi_version") (result i32) i32.const 2)""",
    )
    proc = wasmhost_cli("run", SQUEEZENET, image, env=abi2)
    assert_one_line_error(proc, EXIT_CODES["GuestProtocolError"], "ABI 2")


def test_debug_shows_traceback(tmp_path, image):
    garbage = tmp_path / "g.onnx"
    garbage.write_bytes(b"\xff" * 64)
    for args in (("--debug", "run", garbage, image), ("run", garbage, image, "--debug")):
        proc = wasmhost_cli(*args)
        assert proc.returncode == EXIT_CODES["InvalidModel"]
        assert "Traceback" in proc.stderr


def _pipeline(tmp_path: Path, scaler: bool) -> Path:
    from skl2onnx import to_onnx
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = load_iris(return_X_y=True)
    x = x.astype(np.float32)
    steps = [StandardScaler()] if scaler else []
    model = make_pipeline(*steps, LogisticRegression(max_iter=500)).fit(x, y)
    path = tmp_path / f"pipeline{int(scaler)}.onnx"
    path.write_bytes(to_onnx(model, x[:1]).SerializeToString())
    return path


def test_inspect_a_refused_model_reads_what_it_can_and_names_only_real_reasons(tmp_path):
    import onnx

    # The guest runs Scaler and LabelEncoder since issue 16: the pipeline's scaler is made
    # an operator it runs only on a map input (CastMap), which must be the one reason named.
    refused = _pipeline(tmp_path, scaler=True)
    m = onnx.load(refused)
    next(n for n in m.graph.node if n.op_type == "Scaler").op_type = "CastMap"
    refused.write_bytes(m.SerializeToString())
    proc = wasmhost_cli("inspect", refused)
    assert_one_line_error(proc, EXIT_CODES["UnsupportedModel"], "ai.onnx.ml:CastMap")
    assert "ZipMap" not in proc.stderr  # supported: never a reason for a refusal
    assert "read without loading it" in proc.stdout and "refused" in proc.stdout
    for word in ("ai.onnx.ml:CastMap", "ai.onnx.ml:ZipMap", "seq(map(int64,tensor(float)))"):
        assert word in proc.stdout
    doc = json.loads(wasmhost_cli("inspect", refused, "--json").stdout)
    assert doc["loads_in_sandbox"] is False and doc["inputs"][0]["shape"] == [None, 4]
    assert doc["operators"]["ai.onnx.ml:CastMap"] == 1


def test_inspect_lists_the_models_operators_not_the_rewritten_ones(tmp_path):
    loads = _pipeline(tmp_path, scaler=False)
    doc = json.loads(wasmhost_cli("inspect", loads, "--json").stdout)
    assert doc["loads_in_sandbox"] is True
    assert doc["operators"]["ai.onnx.ml:ZipMap"] == 1 and "Identity" not in doc["operators"]
    sess = wasmhost.InferenceSession(loads)
    assert sess.get_modelmeta().operators == doc["operators"]


def test_inspect_names_the_memory_a_model_needs(tmp_path):
    weights = np.ones((6 * 1024 * 1024,), np.float32)  # 24 MiB of initializer
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        "big",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [weights.size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [weights.size])],
        [onnx.numpy_helper.from_array(weights, "w")],
    )
    model = save_model(tmp_path, graph)
    proc = wasmhost_cli("inspect", model, "--memory", "32MiB")
    assert_one_line_error(proc, EXIT_CODES["MemoryLimitExceeded"], "32 MiB")
    assert (
        "loads with --memory 128 MiB" in proc.stdout or "loads with --memory 64 MiB" in proc.stdout
    )


def test_piped_tables_are_not_wrapped(tmp_path):
    name = "an_input_with_a_name_far_longer_than_eighty_columns_would_allow_" * 2
    graph = helper.make_graph(
        [helper.make_node("Relu", [name], ["y"])],
        "wide",
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    proc = wasmhost_cli("inspect", save_model(tmp_path, graph))
    assert proc.returncode == 0 and name in proc.stdout


@pytest.mark.slow
def test_fresh_venv_install(tmp_path, image):
    """`pip install .` (not editable) into a fresh venv gives a working `wasmhost` command."""
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    pip = subprocess.run(
        [py, "-m", "pip", "install", "-q", "--disable-pip-version-check", str(ROOT)],
        capture_output=True,
        text=True,
    )
    assert pip.returncode == 0, pip.stderr[-3000:]
    where = subprocess.run(
        [py, "-c", "import wasmhost.runtime.engine as e; print(e.module_path())"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    # The module comes from the wheel, not from this checkout.
    assert where.stdout.strip().startswith(str(env_dir)), where
    out = tmp_path / "o.npz"
    proc = subprocess.run(
        [env_dir / "bin" / "wasmhost", "run", SQUEEZENET, image, "--output", out],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "WASMHOST_CACHE_DIR": str(tmp_path / "cache")},
    )
    assert proc.returncode == 0, proc.stderr
    (expected,) = squeezenet_reference(np.load(image))
    with np.load(out) as got:
        np.testing.assert_allclose(got["softmaxout_1"], expected, rtol=1e-5, atol=1e-6)
