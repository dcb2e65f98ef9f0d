"""Shared helpers: the repository's paths, the models the onnx package ships, models built
with onnx.helper, onnxruntime as the oracle, the command line in a child process, and
WAT guests (tests/guests.py) loaded in place of the real one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import wasmtime
from onnx import TensorProto, helper

import wasmhost

ROOT = Path(__file__).resolve().parent.parent
LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
LIGHT_MODELS = sorted(LIGHT.glob("light_*.onnx"))
SQUEEZENET = LIGHT / "light_squeezenet.onnx"
OPSET = 17


def make_model(
    nodes: list[onnx.NodeProto],
    inputs: list[onnx.ValueInfoProto],
    outputs: list[onnx.ValueInfoProto],
    initializers: list[onnx.TensorProto] | None = None,
    opset: int = OPSET,
    check: bool = True,
    **graph_kwargs,
) -> bytes:
    """A model built with onnx.helper, as bytes; checked unless it has unranked inputs."""
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializers or [], **graph_kwargs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    if check:
        onnx.checker.check_model(model)
    return model.SerializeToString()


def vi(name: str, elem: int, shape) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, shape)


def f32(name: str, shape) -> onnx.ValueInfoProto:
    return vi(name, TensorProto.FLOAT, shape)


def reference(model: bytes | Path, feeds: dict[str, np.ndarray], names=None) -> list[np.ndarray]:
    source = str(model) if isinstance(model, Path) else model
    sess = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
    return sess.run(names, feeds)


def assert_outputs_equal(got: list[np.ndarray], expected: list[np.ndarray], rtol=1e-4, atol=1e-5):
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert g.dtype == e.dtype, (g.dtype, e.dtype)
        assert g.shape == e.shape, (g.shape, e.shape)
        if g.dtype.kind in "fc":
            np.testing.assert_allclose(g, e, rtol=rtol, atol=atol)
        else:
            np.testing.assert_array_equal(g, e)


def wasmhost_cli(
    *args: str | Path,
    env: dict[str, str] | None = None,
    cwd: str | Path | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess:
    """`wasmhost ARGS...` in a child process (`python -m wasmhost.cli`), its output as text."""
    return subprocess.run(
        [sys.executable, "-m", "wasmhost.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=timeout,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess, code: int, *words: str) -> None:
    """A failure as the CLI reports it: exit `code`, one line on stderr naming `words`."""
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("wasmhost: error: "), lines[0]
    assert "Traceback" not in proc.stderr
    for w in words:
        assert w in lines[0], lines[0]


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def use_guest(tmp_path, monkeypatch):
    """Makes wasmhost load the given WAT as its guest; returns a session factory."""

    def make(wat: str, limits: wasmhost.Limits | None = None) -> wasmhost.InferenceSession:
        path = tmp_path / f"guest{len(list(tmp_path.glob('*.wasm')))}.wasm"
        path.write_bytes(wasmtime.wat2wasm(wat))
        monkeypatch.setenv("WASMHOST_MODULE", str(path))
        monkeypatch.setenv("WASMHOST_CACHE_DIR", str(tmp_path / "cache"))
        return wasmhost.InferenceSession(b"any model", limits=limits)

    return make
