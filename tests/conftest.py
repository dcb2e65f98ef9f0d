"""Shared helpers: the repository's paths, the models the onnx package ships, models built
with onnx.helper, onnxruntime as the oracle, the command line in a child process, and
WAT guests (tests/guests.py) loaded in place of the real one."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import wasmtime
from onnx import TensorProto, helper
from servers import (
    MotoServer,
    PostgresServer,
    make_bucket,
    start_moto,
    start_postgres,
    unless_unavailable,
)

import wasmhost

# Registries made by the tests (and the commands they run) do not snapshot uploads: a
# snapshot is a compile of 10-15 s per model. tests/test_snapshot.py turns it on.
os.environ["WASMHOST_SNAPSHOTS"] = "off"

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


def string_model() -> bytes:
    """Strings in and out: `code` = CategoryMapper(x) ("a" 1, "b" 2, else -1), `same` = x."""
    graph = helper.make_graph(
        [
            helper.make_node(
                "CategoryMapper",
                ["x"],
                ["code"],
                domain="ai.onnx.ml",
                cats_strings=["a", "b"],
                cats_int64s=[1, 2],
                default_int64=-1,
            ),
            helper.make_node("Identity", ["x"], ["same"]),
        ],
        "strings",
        [vi("x", TensorProto.STRING, ["N"])],
        [vi("code", TensorProto.INT64, ["N"]), vi("same", TensorProto.STRING, ["N"])],
    )
    opsets = [helper.make_opsetid("", OPSET), helper.make_opsetid("ai.onnx.ml", 3)]
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 9
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


# -- Real servers on 127.0.0.1 for the registry's tests (tests/servers.py) --------------------
# Started once per session, on first use. A server that genuinely cannot start here skips its
# tests with the reason; with WASMHOST_TEST_SERVERS=required (.ci/run sets it) it fails them.


def _unique_name(request: pytest.FixtureRequest, max_len: int, sep: str) -> str:
    """A name from the test's own (for whoever reads the server's state) and a random tail."""
    stem = re.sub(r"[^a-z0-9]+", sep, request.node.name.lower()).strip(sep)
    tail = uuid.uuid4().hex[:10]
    return f"t{sep}{stem[: max_len - len(tail) - 3]}{sep}{tail}".replace(sep + sep, sep)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server (Debian's binaries, a throwaway cluster) on 127.0.0.1."""
    server = unless_unavailable(start_postgres)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer, request: pytest.FixtureRequest) -> str:
    """The SQLAlchemy URL (postgresql+psycopg://...) of a new, empty database for this test."""
    return postgres_server.new_database(_unique_name(request, 63, "_"))


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """moto's S3 API on 127.0.0.1 (a thread of this process); `.endpoint` is its URL."""
    server = unless_unavailable(start_moto)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_url(moto_server: MotoServer, request: pytest.FixtureRequest, monkeypatch) -> str:
    """`s3://BUCKET/prefix` in a new, empty bucket on moto's server; for the test's duration
    the environment points boto3 at that server with its dummy credentials."""
    for name in [
        # Anything of the machine's that would take precedence or send us elsewhere.
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_ENDPOINT_URL_S3",
        "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
    ]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name in ["NO_PROXY", "no_proxy"]:  # an HTTP proxy of the machine's must not see it
        monkeypatch.setenv(name, ",".join(filter(None, [os.environ.get(name), "127.0.0.1"])))
    bucket = make_bucket(moto_server.endpoint, _unique_name(request, 63, "-"))
    return f"s3://{bucket}/prefix"
