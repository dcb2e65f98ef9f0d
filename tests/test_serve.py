"""`wasmhost serve` end to end: one live server (a child process on loopback, started once
for the module), driven by stock clients only — tritonclient.http, httpx and curl — with
every model's outputs compared against onnxruntime's, on more than one run each.

Covered: health and metadata, the model repository extension, inference (binary and JSON
tensors both ways, outputs subsets, versions, aliases, UUIDs, the catalog, dtypes, dynamic
batch sizes), the management API, tokens and tenants, /metrics, and the error bodies.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import onnx
import pytest
import tritonclient.http as triton
from conftest import (
    SQUEEZENET,
    assert_outputs_equal,
    f32,
    make_model,
    reference,
    string_model,
    vi,
)
from onnx import TensorProto, helper, numpy_helper
from prometheus_client.parser import text_string_to_metric_families
from registry_support import add_model, blob_files
from serve_support import LiveServer, start_server
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

import wasmhost
from wasmhost.registry import catalog

#: How many times each model-running case runs (a loaded model must answer alike each time).
REPEATS = 2
NAME_PATTERN = "^[a-zA-Z0-9_-]+$"
IRIS = catalog.entries()[0]

#: OIP datatype -> (ONNX element type, numpy dtype, the op `y = op(a, b)` is built from).
DTYPES = {
    "FP32": (TensorProto.FLOAT, np.float32, "Add"),
    "FP64": (TensorProto.DOUBLE, np.float64, "Add"),
    "FP16": (TensorProto.FLOAT16, np.float16, "Add"),
    "INT64": (TensorProto.INT64, np.int64, "Add"),
    "INT32": (TensorProto.INT32, np.int32, "Add"),
    "INT8": (TensorProto.INT8, np.int8, "Add"),
    "UINT8": (TensorProto.UINT8, np.uint8, "Add"),
    "BOOL": (TensorProto.BOOL, np.bool_, "Xor"),
}


# -- the server, its clients and the models it serves --------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = start_server(tmp_path_factory.mktemp("serve") / "home")
    try:
        yield live
    finally:
        live.stop()
        # Every failure in this module must have been answered as {error, type}: an
        # unexpected exception would have left its traceback in the server's log.
        log = live.log.read_text()
        assert "Traceback" not in log and "internal error" not in log, log[-4000:]


@pytest.fixture(scope="module")
def admin(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


@pytest.fixture(scope="module")
def tc(server: LiveServer) -> Iterator[triton.InferenceServerClient]:
    client = triton.InferenceServerClient(url=server.host_port, network_timeout=120)
    try:
        yield client
    finally:
        client.close()


def two_outputs_model() -> bytes:
    """sum = x + k and prod = x * k, for x float32 [batch, 3]."""
    k = numpy_helper.from_array(np.array([0.5, -2.0, 3.0], np.float32), "k")
    return make_model(
        [
            helper.make_node("Add", ["x", "k"], ["sum"]),
            helper.make_node("Mul", ["x", "k"], ["prod"]),
        ],
        [f32("x", ["batch", 3])],
        [f32("sum", ["batch", 3]), f32("prod", ["batch", 3])],
        [k],
    )


def dtype_model(datatype: str) -> bytes:
    """y = a + b (a xor b for BOOL), every tensor of that datatype, shape [n, 3]."""
    elem, _, op = DTYPES[datatype]
    return make_model(
        [helper.make_node(op, ["a", "b"], ["y"])],
        [vi("a", elem, ["n", 3]), vi("b", elem, ["n", 3])],
        [vi("y", elem, ["n", 3])],
    )


def dtype_feeds(datatype: str, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    dtype = DTYPES[datatype][1]
    if dtype is np.bool_:
        return {k: rng.integers(0, 2, (n, 3)).astype(np.bool_) for k in "ab"}
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        low, high = max(info.min, -1000), min(info.max, 1000)
        return {k: rng.integers(low, high, (n, 3)).astype(dtype) for k in "ab"}
    return {k: rng.uniform(-10, 10, (n, 3)).astype(dtype) for k in "ab"}


@dataclass
class World:
    """What the module's fixtures put in the server's registry."""

    #: OIP name -> version number -> the uploaded bytes.
    models: dict[str, dict[int, bytes]] = field(default_factory=dict)
    #: OIP name -> version number -> the upload's answer (the version record).
    records: dict[str, dict[int, dict]] = field(default_factory=dict)


def upload(
    client: httpx.Client, project: str, name: str, data: bytes, description: str | None = None
) -> httpx.Response:
    form = {"name": name} | ({"description": description} if description is not None else {})
    return client.post(
        f"/api/v1/projects/{project}/models",
        files={"file": (f"{name}.onnx", data, "application/octet-stream")},
        data=form,
    )


@pytest.fixture(scope="module")
def world(admin: httpx.Client) -> World:
    """Project `oip`: `add` (v1: x + 1, v2: x + 2, alias `prod` -> 1), `two` (two outputs),
    `squeezenet`, and `dt-<datatype>` for each of DTYPES."""
    assert admin.post("/api/v1/projects", json={"name": "oip"}).status_code == 201
    found = World()
    plan = [
        ("add", add_model(1.0)),
        ("add", add_model(2.0)),
        ("two", two_outputs_model()),
        ("squeezenet", SQUEEZENET.read_bytes()),
        ("strings", string_model()),
        *[(f"dt-{d.lower()}", dtype_model(d)) for d in DTYPES],
    ]
    for name, data in plan:
        r = upload(admin, "oip", name, data)
        assert r.status_code == 201, r.text
        doc = r.json()
        found.models.setdefault(f"oip.{name}", {})[doc["version"]] = data
        found.records.setdefault(f"oip.{name}", {})[doc["version"]] = doc
    r = admin.put("/api/v1/projects/oip/models/add/aliases/prod", json={"version": 1})
    assert r.status_code == 200 and r.json()["aliases"] == ["prod"], r.text
    return found


def output_names(model: bytes | Path) -> list[str]:
    proto = onnx.load(model) if isinstance(model, Path) else onnx.load_from_string(model)
    return [o.name for o in proto.graph.output]


def infer(
    server: LiveServer,
    tc: triton.InferenceServerClient,
    name: str,
    feeds: dict[str, np.ndarray],
    *,
    version: str = "",
    binary: bool = True,
    outputs: list[tuple[str, bool]] | None = None,
    token: str | None = None,
    **options,
) -> triton.InferResult:
    """One infer request through tritonclient; `outputs` are (name, as binary) pairs, and
    `options` go to `InferenceServerClient.infer` (request_id, compression)."""
    inputs = []
    for key, value in feeds.items():
        tensor = triton.InferInput(key, list(value.shape), np_to_triton_dtype(value.dtype))
        tensor.set_data_from_numpy(value, binary_data=binary)
        inputs.append(tensor)
    requested = (
        None
        if outputs is None
        else [triton.InferRequestedOutput(n, binary_data=b) for n, b in outputs]
    )
    # A fresh headers dict each time: tritonclient adds to the one it is given.
    return tc.infer(
        name,
        inputs,
        model_version=version,
        outputs=requested,
        headers=server.headers(token),
        **options,
    )


def check_runs(
    server: LiveServer,
    tc: triton.InferenceServerClient,
    name: str,
    model: bytes | Path,
    feeds: dict[str, np.ndarray],
    *,
    expect_version: int | str,
    outputs: list[tuple[str, bool]] | None = None,
    **kwargs,
) -> triton.InferResult:
    """Runs the request REPEATS times; each answer must equal onnxruntime's outputs."""
    names = [n for n, _ in outputs] if outputs is not None else output_names(model)
    expected = reference(model, feeds, names)
    for _ in range(REPEATS):
        result = infer(server, tc, name, feeds, outputs=outputs, **kwargs)
        response = result.get_response()
        assert response["model_name"] == name
        assert response["model_version"] == str(expect_version)
        assert [o["name"] for o in response["outputs"]] == names
        assert_outputs_equal([result.as_numpy(n) for n in names], expected)
    return result


def assert_error(response: httpx.Response, status: int, kind: str, *words: str) -> dict:
    """An error answer: `status`, a JSON body {"error", "type": kind}, never a traceback."""
    assert response.status_code == status, (response.status_code, response.text)
    assert "Traceback" not in response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    doc = response.json()
    assert set(doc) == {"error", "type"}, doc
    assert doc["type"] == kind, doc
    assert isinstance(doc["error"], str) and doc["error"]
    for word in words:
        assert word in doc["error"], doc
    return doc


def x_batch(n: int, rng: np.random.Generator, width: int = 4) -> np.ndarray:
    return rng.standard_normal((n, width)).astype(np.float32)


# -- 1. health, metadata, readiness, the model repository ------------------------------------


def test_health_needs_no_token(server, tc):
    live = httpx.get(f"{server.url}/v2/health/live")
    assert live.status_code == 200 and live.json() == {"live": True}
    ready = httpx.get(f"{server.url}/v2/health/ready")
    assert ready.status_code == 200 and ready.json() == {"ready": True}
    assert tc.is_server_live() and tc.is_server_ready()


def test_server_metadata_needs_a_token_and_lists_extensions(server, tc):
    assert_error(httpx.get(f"{server.url}/v2"), 401, "Unauthorized", "Bearer")
    with pytest.raises(InferenceServerException) as refused:
        tc.get_server_metadata()
    assert refused.value.status() == "401"
    doc = tc.get_server_metadata(headers=server.headers())
    assert doc["name"] == "wasmhost" and doc["version"] == wasmhost.__version__
    assert {"binary_tensor_data", "model_repository"} <= set(doc["extensions"])


def test_model_metadata(server, tc, world):
    doc = tc.get_model_metadata("oip.add", headers=server.headers())
    assert doc["name"] == "oip.add" and doc["versions"] == ["1", "2"]
    assert doc["platform"] == "onnx_onnxv1"
    # The symbolic batch dim is -1.
    assert doc["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]
    assert doc["outputs"] == [{"name": "y", "datatype": "FP32", "shape": [-1, 4]}]
    for version in ["1", "2", "prod"]:
        pinned = tc.get_model_metadata("oip.add", version, headers=server.headers())
        assert pinned["versions"] == ["1", "2"] and pinned["inputs"] == doc["inputs"]
    fixed = tc.get_model_metadata("oip.squeezenet", headers=server.headers())
    assert fixed["inputs"] == [{"name": "data_0", "datatype": "FP32", "shape": [1, 3, 224, 224]}]
    assert fixed["versions"] == ["1"]
    two = tc.get_model_metadata("oip.two", headers=server.headers())
    assert [o["name"] for o in two["outputs"]] == ["sum", "prod"]
    for datatype in DTYPES:
        typed = tc.get_model_metadata(f"oip.dt-{datatype.lower()}", headers=server.headers())
        assert [t["datatype"] for t in typed["inputs"] + typed["outputs"]] == [datatype] * 3
        assert typed["inputs"][0]["shape"] == [-1, 3]
    iris = tc.get_model_metadata(f"catalog.{IRIS.name}", headers=server.headers())
    assert iris["versions"] == ["1"]
    assert iris["inputs"] == [{"name": "features", "datatype": "FP32", "shape": [-1, 4]}]
    assert iris["outputs"] == [
        {"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]},
        {"name": "label", "datatype": "INT64", "shape": [-1]},
    ]


def test_model_ready(server, tc, world, admin):
    assert tc.is_model_ready("oip.add", headers=server.headers())
    for version in ["1", "2", "prod"]:
        assert tc.is_model_ready("oip.add", version, headers=server.headers())
    assert tc.is_model_ready(f"catalog.{IRIS.name}", headers=server.headers())
    assert not tc.is_model_ready("oip.nope", headers=server.headers())
    assert not tc.is_model_ready("oip.add", "9", headers=server.headers())
    r = admin.get("/v2/models/oip.add/versions/2/ready")
    assert r.status_code == 200 and r.json() == {"name": "oip.add", "ready": True}
    assert_error(admin.get("/v2/models/oip.add/versions/9/ready"), 404, "NotFound")


def index_states(
    server: LiveServer, tc: triton.InferenceServerClient
) -> dict[tuple[str, str], str]:
    entries = tc.get_model_repository_index(headers=server.headers())
    assert all(set(e) == {"name", "version", "state", "reason"} for e in entries), entries
    return {(e["name"], e["version"]): e["state"] for e in entries}


def test_repository_index_load_unload(server, tc, world, rng):
    states = index_states(server, tc)
    for name, versions in world.models.items():
        for number in versions:
            assert (name, str(number)) in states
    assert (f"catalog.{IRIS.name}", "1") in states

    tc.load_model("oip.two", headers=server.headers())
    assert index_states(server, tc)[("oip.two", "1")] == "READY"
    feeds = {"x": x_batch(2, rng, 3)}
    check_runs(server, tc, "oip.two", world.models["oip.two"][1], feeds, expect_version=1)

    tc.unload_model("oip.two", headers=server.headers())
    assert index_states(server, tc)[("oip.two", "1")] == "UNAVAILABLE"
    # Unloaded is not gone: the next request loads it again.
    check_runs(server, tc, "oip.two", world.models["oip.two"][1], feeds, expect_version=1)
    assert index_states(server, tc)[("oip.two", "1")] == "READY"

    # Loading loads the newest version; unloading closes every loaded version.
    check_runs(
        server,
        tc,
        "oip.add",
        world.models["oip.add"][1],
        {"x": x_batch(1, rng)},
        version="1",
        expect_version=1,
    )
    tc.load_model("oip.add", headers=server.headers())
    states = index_states(server, tc)
    assert states[("oip.add", "1")] == states[("oip.add", "2")] == "READY"
    tc.unload_model("oip.add", headers=server.headers())
    states = index_states(server, tc)
    assert states[("oip.add", "1")] == states[("oip.add", "2")] == "UNAVAILABLE"

    with pytest.raises(InferenceServerException) as missing:
        tc.load_model("oip.nope", headers=server.headers())
    assert missing.value.status() == "404"


# -- 2. inference ------------------------------------------------------------------------------


@pytest.mark.parametrize("binary_in", [True, False], ids=["binary-in", "json-in"])
@pytest.mark.parametrize("binary_out", [True, False], ids=["binary-out", "json-out"])
def test_infer_binary_and_json_tensors(server, tc, world, rng, binary_in, binary_out):
    feeds = {"x": x_batch(3, rng)}
    result = check_runs(
        server,
        tc,
        "oip.add",
        world.models["oip.add"][2],
        feeds,
        binary=binary_in,
        outputs=[("y", binary_out)],
        expect_version=2,
    )
    (out,) = result.get_response()["outputs"]
    if binary_out:
        assert out["parameters"] == {"binary_data_size": 3 * 4 * 4} and "data" not in out
    else:
        assert "parameters" not in out and len(out["data"]) == 12


def test_infer_without_outputs_sends_every_output_binary(server, tc, world, rng):
    feeds = {"x": x_batch(2, rng, 3)}
    for binary in (True, False):
        result = check_runs(
            server,
            tc,
            "oip.two",
            world.models["oip.two"][1],
            feeds,
            binary=binary,
            expect_version=1,
        )
        for out in result.get_response()["outputs"]:
            assert out["parameters"]["binary_data_size"] == 2 * 3 * 4


def test_infer_outputs_subset(server, tc, world, rng):
    model = world.models["oip.two"][1]
    feeds = {"x": x_batch(4, rng, 3)}
    only = check_runs(
        server, tc, "oip.two", model, feeds, outputs=[("prod", True)], expect_version=1
    )
    assert only.as_numpy("sum") is None
    # Both, in the order asked for, one as JSON and one binary.
    both = check_runs(
        server,
        tc,
        "oip.two",
        model,
        feeds,
        outputs=[("prod", False), ("sum", True)],
        expect_version=1,
    )
    prod, total = both.get_response()["outputs"]
    assert "data" in prod and "parameters" not in prod
    assert total["parameters"]["binary_data_size"] == 4 * 3 * 4


def test_infer_request_id_and_non_finite_values(server, tc, world):
    x = np.array([[np.nan, np.inf, -np.inf, 3e38], [-0.0, 1e-45, -1.5, 0.25]], np.float32)
    for binary in (True, False):
        result = check_runs(
            server,
            tc,
            "oip.add",
            world.models["oip.add"][2],
            {"x": x},
            binary=binary,
            outputs=[("y", binary)],
            request_id=f"req-{binary}",
            expect_version=2,
        )
        assert result.get_response()["id"] == f"req-{binary}"
        y = result.as_numpy("y")
        assert np.isnan(y[0, 0]) and y[0, 1] == np.inf and y[0, 2] == -np.inf


@pytest.mark.parametrize("batch", [1, 5])
def test_infer_dynamic_batch(server, tc, world, rng, batch):
    feeds = {"x": x_batch(batch, rng)}
    for binary in (True, False):
        result = check_runs(
            server,
            tc,
            "oip.add",
            world.models["oip.add"][2],
            feeds,
            binary=binary,
            expect_version=2,
        )
        assert result.as_numpy("y").shape == (batch, 4)


def test_infer_versions_and_aliases(server, tc, world, admin, rng):
    v1, v2 = world.models["oip.add"][1], world.models["oip.add"][2]
    feeds = {"x": x_batch(2, rng)}
    check_runs(server, tc, "oip.add", v1, feeds, version="1", expect_version=1)
    check_runs(server, tc, "oip.add", v2, feeds, version="2", expect_version=2)
    check_runs(server, tc, "oip.add", v2, feeds, expect_version=2)  # newest
    check_runs(server, tc, "oip.add", v1, feeds, version="prod", expect_version=1)
    # An alias set and moved through the management API is followed at once.
    r = admin.put("/api/v1/projects/oip/models/add/aliases/canary", json={"version": 2})
    assert r.status_code == 200 and r.json()["version"] == 2, r.text
    check_runs(server, tc, "oip.add", v2, feeds, version="canary", expect_version=2)
    r = admin.put("/api/v1/projects/oip/models/add/aliases/canary", json={"version": 1})
    assert r.status_code == 200 and r.json()["version"] == 1, r.text
    check_runs(server, tc, "oip.add", v1, feeds, version="canary", expect_version=1)
    r = admin.delete("/api/v1/projects/oip/models/add/aliases/canary")
    assert r.status_code == 200 and r.json() == {"removed": "canary"}
    with pytest.raises(InferenceServerException) as gone:
        infer(server, tc, "oip.add", feeds, version="canary")
    assert gone.value.status() == "404" and "canary" in gone.value.message()


def test_infer_by_uuid(server, tc, world, rng):
    feeds = {"x": x_batch(3, rng)}
    v1, v2 = world.records["oip.add"][1], world.records["oip.add"][2]
    assert v1["model_id"] == v2["model_id"]
    model_id = v1["model_id"]
    # A model's id is its newest version; a version's id is that version.
    check_runs(server, tc, model_id, world.models["oip.add"][2], feeds, expect_version=2)
    check_runs(server, tc, v1["id"], world.models["oip.add"][1], feeds, expect_version=1)
    doc = tc.get_model_metadata(model_id, headers=server.headers())
    assert doc["name"] == model_id and doc["versions"] == ["1", "2"]
    assert tc.is_model_ready(model_id, headers=server.headers())


def test_infer_catalog_model(server, tc):
    inputs, expected = IRIS.reference_case()
    names = [o["name"] for o in IRIS.outputs]
    # The catalog's recorded outputs are onnxruntime's on its file.
    ours = reference(IRIS.path, inputs, names)
    assert_outputs_equal(ours, [expected[n] for n in names])
    name = f"catalog.{IRIS.name}"
    for version in ("", "1"):
        for binary in (True, False):
            check_runs(
                server,
                tc,
                name,
                IRIS.path,
                inputs,
                version=version,
                binary=binary,
                outputs=[(n, binary) for n in names],
                expect_version=1,
            )


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
@pytest.mark.parametrize("datatype", list(DTYPES))
def test_infer_dtypes_round_trip(server, tc, world, rng, datatype, binary):
    name = f"oip.dt-{datatype.lower()}"
    feeds = dtype_feeds(datatype, 2, rng)
    result = check_runs(
        server,
        tc,
        name,
        world.models[name][1],
        feeds,
        binary=binary,
        outputs=[("y", binary)],
        expect_version=1,
    )
    (out,) = result.get_response()["outputs"]
    assert out["datatype"] == datatype
    assert result.as_numpy("y").dtype == DTYPES[datatype][1]


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_infer_strings(server, tc, world, binary):
    words = np.array(["b", "zz", "a", "é", ""], dtype=object)
    expected = reference(string_model(), {"x": words})
    for feed in (words, np.array([w.encode() for w in words], dtype=object)):
        for _ in range(REPEATS):
            result = infer(
                server,
                tc,
                "oip.strings",
                {"x": feed},
                binary=binary,
                outputs=[("code", binary), ("same", binary)],
            )
            assert result.as_numpy("code").tolist() == expected[0].tolist()
            same = [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("same")]
            assert same == words.tolist()
            out = result.get_output("same")
            assert out["datatype"] == "BYTES" and out["shape"] == [5]
            assert out["parameters"]["content_type"] == "str"
    meta = tc.get_model_metadata("oip.strings", headers=server.headers())
    assert [(t["name"], t["datatype"]) for t in meta["inputs"]] == [("x", "BYTES")]


BAD_BYTES = {
    "count-over-data": ([4], b"\x01\x00\x00\x00a", "cannot hold 4"),
    "length-past-end": ([1], b"\x09\x00\x00\x00abc", "runs past"),
    "not-utf8": ([1], b"\x02\x00\x00\x00\xff\xfe", "not UTF-8"),
    "trailing": ([1], b"\x01\x00\x00\x00ab", "follow"),
    "huge-shape": ([2**30], b"\x00" * 8, "cannot hold"),
}


@pytest.mark.parametrize("case", list(BAD_BYTES))
def test_bad_binary_strings_are_400(admin, world, case):
    shape, raw, word = BAD_BYTES[case]
    header = {"name": "x", "datatype": "BYTES", "shape": shape}
    header["parameters"] = {"binary_data_size": len(raw)}
    head = json.dumps({"inputs": [header]}).encode()
    response = admin.post(
        "/v2/models/oip.strings/infer",
        content=head + raw,
        headers={"Inference-Header-Content-Length": str(len(head))},
    )
    assert_error(response, 400, "InvalidInput", word)
    body = {"inputs": [{"name": "x", "datatype": "BYTES", "shape": [2], "data": ["a", 1]}]}
    assert_error(admin.post("/v2/models/oip.strings/infer", json=body), 400, "InvalidInput")


def test_infer_squeezenet(server, tc, world, rng):
    feeds = {"data_0": rng.standard_normal((1, 3, 224, 224)).astype(np.float32)}
    check_runs(server, tc, "oip.squeezenet", SQUEEZENET, feeds, expect_version=1)
    # Compressed both ways, as tritonclient does it (the answer is over the 1 KiB that
    # the server compresses from).
    for algorithm in ("gzip", "deflate"):
        check_runs(
            server,
            tc,
            "oip.squeezenet",
            SQUEEZENET,
            feeds,
            request_compression_algorithm=algorithm,
            response_compression_algorithm=algorithm,
            expect_version=1,
        )
    check_runs(
        server,
        tc,
        "oip.squeezenet",
        SQUEEZENET,
        feeds,
        binary=False,
        outputs=[("softmaxout_1", False)],
        expect_version=1,
    )


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed on this machine")
def test_infer_with_curl(server, world, rng):
    x = x_batch(2, rng)
    (expected,) = reference(world.models["oip.add"][2], {"x": x})
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 4], "data": x.tolist()}]}
    for _ in range(REPEATS):
        proc = subprocess.run(
            [
                "curl",
                "-sS",
                "--max-time",
                "60",
                "-X",
                "POST",
                "-H",
                f"Authorization: Bearer {server.admin}",
                "-H",
                "Content-Type: application/json",
                "--data-binary",
                json.dumps(body),
                "-w",
                "\n%{http_code}",
                f"{server.url}/v2/models/oip.add/infer",
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        text, _, status = proc.stdout.rpartition("\n")
        assert status == "200", proc.stdout
        doc = json.loads(text)
        assert doc["model_name"] == "oip.add" and doc["model_version"] == "2"
        (out,) = doc["outputs"]
        assert out["name"] == "y" and out["datatype"] == "FP32" and out["shape"] == [2, 4]
        got = np.array(out["data"], np.float32).reshape(out["shape"])
        assert_outputs_equal([got], [expected])
    health = subprocess.run(
        ["curl", "-sS", f"{server.url}/v2/health/ready"], capture_output=True, text=True, check=True
    )
    assert json.loads(health.stdout) == {"ready": True}


# -- 3. the management API ---------------------------------------------------------------------


def test_projects_create_conflict_bad_name_and_paging(admin):
    for name in ("m-one", "m-two"):
        r = admin.post("/api/v1/projects", json={"name": name})
        assert r.status_code == 201, r.text
        doc = r.json()
        assert doc["name"] == name and doc["runtime"] == "onnx" and doc["models"] == 0
    assert_error(admin.post("/api/v1/projects", json={"name": "m-one"}), 409, "AlreadyExists")
    bad = assert_error(
        admin.post("/api/v1/projects", json={"name": "bad name!"}), 400, "InvalidName"
    )
    assert NAME_PATTERN in bad["error"]
    assert_error(admin.post("/api/v1/projects", json={"name": "catalog"}), 400, "InvalidName")
    assert_error(admin.post("/api/v1/projects", content=b"[1, 2"), 400, "InvalidArgument")

    everything = admin.get("/api/v1/projects").json()
    names = [p["name"] for p in everything["result"]]
    assert {"m-one", "m-two"} <= set(names) and names == sorted(names)
    assert everything["total"] == len(names) and everything["page"] == 1
    second = admin.get("/api/v1/projects", params={"page": 2, "per_page": 1}).json()
    assert second["page"] == 2 and second["per_page"] == 1 and second["total"] == len(names)
    assert [p["name"] for p in second["result"]] == names[1:2]
    past = admin.get("/api/v1/projects", params={"page": len(names) + 1, "per_page": 1}).json()
    assert past["result"] == []
    assert_error(admin.get("/api/v1/projects", params={"page": 0}), 400, "InvalidArgument")
    assert_error(admin.get("/api/v1/projects", params={"per_page": "x"}), 400, "InvalidArgument")

    shown = admin.get("/api/v1/projects/m-two")
    assert shown.status_code == 200 and shown.json()["name"] == "m-two"
    assert admin.get(f"/api/v1/projects/{shown.json()['id']}").json()["name"] == "m-two"
    assert admin.delete("/api/v1/projects/m-two").status_code == 200
    assert_error(admin.get("/api/v1/projects/m-two"), 404, "NotFound")


def test_models_upload_show_alias_download_delete(admin, server, tc, rng):
    assert admin.post("/api/v1/projects", json={"name": "mgmt"}).status_code == 201
    data = {1: add_model(10.0), 2: add_model(20.0)}
    for number, blob in data.items():
        r = upload(admin, "mgmt", "adder", blob, description=f"adds, take {number}")
        assert r.status_code == 201, r.text
        doc = r.json()
        assert doc["version"] == number and doc["status"] == "ready"
        assert doc["project"] == "mgmt" and doc["model"] == "adder" and doc["size"] == len(blob)
        assert doc["inputs"] == [{"name": "x", "type": "tensor(float)", "shape": ["batch", 4]}]

    listed = admin.get("/api/v1/projects/mgmt/models").json()
    assert [m["name"] for m in listed["result"]] == ["adder"] and listed["total"] == 1
    shown = admin.get("/api/v1/projects/mgmt/models/adder").json()
    assert shown["description"] == "adds, take 2" and shown["latest_version"] == 2
    assert [v["version"] for v in shown["version_list"]] == [1, 2]

    r = admin.put("/api/v1/projects/mgmt/models/adder/aliases/stable", json={"version": 1})
    assert r.status_code == 200 and r.json()["aliases"] == ["stable"]
    assert_error(
        admin.put("/api/v1/projects/mgmt/models/adder/aliases/stable", json={"version": "1"}),
        400,
        "InvalidArgument",
    )
    assert_error(
        admin.put("/api/v1/projects/mgmt/models/adder/aliases/42", json={"version": 1}),
        400,
        "InvalidName",
    )
    by_number = admin.get("/api/v1/projects/mgmt/models/adder/versions/1").json()
    by_alias = admin.get("/api/v1/projects/mgmt/models/adder/versions/stable").json()
    assert by_number == by_alias and by_number["version"] == 1
    assert admin.get("/api/v1/projects/mgmt/models/adder").json()["aliases"] == {"stable": 1}

    for number, blob in data.items():
        r = admin.get(f"/api/v1/projects/mgmt/models/adder/versions/{number}/file")
        assert r.status_code == 200 and r.content == blob
    assert admin.get("/api/v1/projects/mgmt/models/adder/versions/stable/file").content == data[1]

    # What was uploaded is served.
    feeds = {"x": x_batch(2, rng)}
    check_runs(server, tc, "mgmt.adder", data[1], feeds, version="stable", expect_version=1)

    r = admin.delete("/api/v1/projects/mgmt/models/adder/aliases/stable")
    assert r.status_code == 200
    assert_error(admin.get("/api/v1/projects/mgmt/models/adder/versions/stable"), 404, "NotFound")
    assert_error(admin.delete("/api/v1/projects/mgmt/models/adder/aliases/stable"), 404, "NotFound")

    r = admin.delete("/api/v1/projects/mgmt/models/adder/versions/2")
    assert r.status_code == 200 and [v["version"] for v in r.json()] == [2]
    assert [
        v["version"] for v in admin.get("/api/v1/projects/mgmt/models/adder").json()["version_list"]
    ] == [1]
    assert_error(admin.get("/api/v1/projects/mgmt/models/adder/versions/2"), 404, "NotFound")
    # The newest version now is 1.
    check_runs(server, tc, "mgmt.adder", data[1], feeds, expect_version=1)

    r = admin.delete("/api/v1/projects/mgmt/models/adder")
    assert r.status_code == 200 and [v["version"] for v in r.json()] == [1]
    assert_error(admin.get("/api/v1/projects/mgmt/models/adder"), 404, "NotFound")
    assert_error(admin.post("/v2/models/mgmt.adder/infer", json={}), 404, "NotFound")
    assert admin.delete("/api/v1/projects/mgmt").status_code == 200
    assert_error(admin.get("/api/v1/projects/mgmt"), 404, "NotFound")
    assert_error(admin.get("/api/v1/projects/mgmt/models"), 404, "NotFound")


def test_garbage_upload_stores_nothing(admin, server):
    assert admin.post("/api/v1/projects", json={"name": "junk"}).status_code == 201
    blobs_before = blob_files(server.home / "blobs")
    assert_error(
        upload(admin, "junk", "noise", b"\x08\x07 this is not onnx" * 50), 422, "InvalidModel"
    )
    assert_error(upload(admin, "junk", "empty", b""), 422, "InvalidModel")
    assert admin.get("/api/v1/projects/junk/models").json()["result"] == []
    assert admin.get("/api/v1/projects/junk").json()["models"] == 0
    assert blob_files(server.home / "blobs") == blobs_before
    # Malformed forms: no file, no name, not multipart.
    r = admin.post("/api/v1/projects/junk/models", data={"name": "x"})
    assert_error(r, 400, "InvalidArgument")
    r = admin.post("/api/v1/projects/junk/models", files={"file": ("m.onnx", add_model(5.0))})
    assert_error(r, 400, "InvalidArgument", "name")
    assert_error(admin.post("/api/v1/projects/junk/models", json={}), 400, "InvalidArgument")
    assert_error(upload(admin, "junk", "bad name", add_model(5.0)), 400, "InvalidName")
    assert_error(upload(admin, "nosuch", "m", add_model(5.0)), 404, "NotFound")
    assert admin.get("/api/v1/projects/junk").json()["models"] == 0


def test_catalog_list_and_show(admin):
    listed = admin.get("/api/v1/catalog").json()
    assert listed["total"] == len(catalog.entries()) >= 1
    assert [e["name"] for e in listed["result"]] == [e.name for e in catalog.entries()]
    by_name = admin.get(f"/api/v1/catalog/{IRIS.name}").json()
    by_id = admin.get(f"/api/v1/catalog/{IRIS.id}").json()
    assert by_name == by_id == IRIS.to_dict()
    assert by_name["reference"] == f"catalog/{IRIS.name}"
    assert_error(admin.get("/api/v1/catalog/nosuch"), 404, "NotFound", IRIS.name)


def test_runtimes(admin):
    listed = admin.get("/api/v1/runtimes").json()
    (onnx_runtime,) = [r for r in listed["result"] if r["name"] == "onnx"]
    assert onnx_runtime["builtin"] is True and len(onnx_runtime["module_sha256"]) == 64


def test_config_is_admin_only(admin, server, tenants):
    settings = admin.get("/api/v1/config").json()
    assert settings["max_model_size"] == 10 * 1024**2 and settings["validate_timeout"] == 60.0
    r = admin.put("/api/v1/config/validate_timeout", json={"value": 30})
    assert r.status_code == 200 and r.json()["validate_timeout"] == 30.0
    assert admin.get("/api/v1/config").json()["validate_timeout"] == 30.0
    assert admin.put("/api/v1/config/validate_timeout", json={"value": None}).json() == settings
    assert_error(admin.put("/api/v1/config/nosuch", json={"value": 1}), 400, "InvalidArgument")
    assert_error(
        admin.put("/api/v1/config/max_model_size", json={"value": "huge"}), 400, "InvalidArgument"
    )
    for role in ("run", "deploy"):
        with server.client(tenants.secrets[role]) as client:
            assert_error(client.get("/api/v1/config"), 403, "Forbidden", "admin")
            r = client.put("/api/v1/config/validate_timeout", json={"value": 1})
            assert_error(r, 403, "Forbidden")
    assert admin.get("/api/v1/config").json() == settings


def test_resolve(admin, world):
    r = admin.get("/api/v1/resolve", params={"ref": "oip/add@1"})
    assert r.status_code == 200
    doc = r.json()
    assert doc["kind"] == "version" and doc["version"] == 1
    assert doc["id"] == world.records["oip.add"][1]["id"]
    assert admin.get("/api/v1/resolve", params={"ref": "oip/add"}).json()["version"] == 2
    assert admin.get("/api/v1/resolve", params={"ref": "oip/add@prod"}).json()["version"] == 1
    model_id = world.records["oip.add"][1]["model_id"]
    assert admin.get("/api/v1/resolve", params={"ref": model_id}).json()["version"] == 2
    cat = admin.get("/api/v1/resolve", params={"ref": f"catalog/{IRIS.name}"}).json()
    assert cat["kind"] == "catalog" and cat["id"] == IRIS.id
    assert_error(admin.get("/api/v1/resolve", params={"ref": "no slash"}), 400, "InvalidName")
    assert_error(admin.get("/api/v1/resolve"), 400, "InvalidName")
    assert_error(admin.get("/api/v1/resolve", params={"ref": "oip/add@7"}), 404, "NotFound")


# -- 4. tokens and tenants ---------------------------------------------------------------------


@dataclass
class Tenants:
    #: role (run, deploy) -> the secret of that token for project `ta`.
    secrets: dict[str, str]
    models: dict[str, bytes]
    #: OIP name -> its upload's answer (the version record).
    records: dict[str, dict]


@pytest.fixture(scope="module")
def tenants(admin: httpx.Client) -> Tenants:
    """Projects `ta` (model m: x + 3) and `tb` (m: x + 4, only-b: x + 5); a run and a deploy
    token for `ta`, made through the API."""
    models = {"ta.m": add_model(3.0), "tb.m": add_model(4.0), "tb.only-b": add_model(5.0)}
    records = {}
    for project in ("ta", "tb"):
        assert admin.post("/api/v1/projects", json={"name": project}).status_code == 201
    for name, data in models.items():
        project, _, model = name.partition(".")
        r = upload(admin, project, model, data)
        assert r.status_code == 201, r.text
        records[name] = r.json()
    secrets = {}
    for role in ("run", "deploy"):
        r = admin.post("/api/v1/tokens", json={"name": f"{role}-a", "role": role, "project": "ta"})
        assert r.status_code == 201, r.text
        doc = r.json()
        assert doc["name"] == f"{role}-a" and doc["role"] == role and doc["project"] == "ta"
        assert doc["token"].startswith("wh_")
        secrets[role] = doc["token"]
    return Tenants(secrets, models, records)


def test_tokens_are_listed_without_secrets(admin, tenants):
    listed = admin.get("/api/v1/tokens")
    assert listed.status_code == 200
    by_name = {t["name"]: t for t in listed.json()["result"]}
    assert by_name["run-a"]["role"] == "run" and by_name["deploy-a"]["project"] == "ta"
    assert all("token" not in t and "sha256" not in t for t in by_name.values())
    for secret in tenants.secrets.values():
        assert secret not in listed.text
    assert_error(admin.post("/api/v1/tokens", json={"name": "run-a"}), 409, "AlreadyExists")
    assert_error(
        admin.post("/api/v1/tokens", json={"name": "x", "role": "root"}), 400, "InvalidArgument"
    )
    assert_error(
        admin.post("/api/v1/tokens", json={"name": "y", "project": "nosuch"}), 404, "NotFound"
    )
    for role in ("run", "deploy"):
        with httpx.Client(
            base_url=admin.base_url, headers={"Authorization": f"Bearer {tenants.secrets[role]}"}
        ) as c:
            assert_error(c.get("/api/v1/tokens"), 403, "Forbidden")
            assert_error(c.post("/api/v1/tokens", json={"name": "z"}), 403, "Forbidden")
            assert_error(c.post("/api/v1/projects", json={"name": "z"}), 403, "Forbidden")


@pytest.mark.parametrize("role", ["run", "deploy"])
def test_project_token_sees_nothing_of_another_project(server, tc, tenants, role, rng):
    secret = tenants.secrets[role]
    x = x_batch(1, rng)
    body = {
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": x.ravel().tolist()}]
    }
    with server.client(secret) as client:
        # Everything of tb is answered as if it did not exist: 404, never 403.
        for path in (
            "/v2/models/tb.m",
            "/v2/models/tb.m/versions/1",
            "/v2/models/tb.m/ready",
            "/api/v1/projects/tb",
            "/api/v1/projects/tb/models",
            "/api/v1/projects/tb/models/m",
            "/api/v1/projects/tb/models/m/versions/1",
            "/api/v1/projects/tb/models/m/versions/1/file",
        ):
            assert_error(client.get(path), 404, "NotFound")
        assert_error(client.get("/api/v1/resolve", params={"ref": "tb/m"}), 404, "NotFound")
        assert_error(client.post("/v2/models/tb.m/infer", json=body), 404, "NotFound")
        assert_error(client.post("/v2/repository/models/tb.m/load"), 404, "NotFound")
        assert_error(client.post("/v2/repository/models/tb.m/unload"), 404, "NotFound")
        assert_error(upload(client, "tb", "mine", add_model(6.0)), 404, "NotFound")
        assert_error(client.delete("/api/v1/projects/tb/models/m"), 404, "NotFound")
        assert_error(
            client.put("/api/v1/projects/tb/models/m/aliases/x", json={"version": 1}),
            404,
            "NotFound",
        )
        # Nor can it tell tb's models from names nothing has: the answers are alike.
        answers = {
            name: client.post(f"/v2/models/{name}/infer", json=body).json()
            for name in ("tb.m", "tb.only-b", "tb.nosuch", "nosuch.m")
        }
        assert {a["type"] for a in answers.values()} == {"NotFound"}
        shapes = {
            a["error"].replace(name.split(".")[0], "P").replace(name.split(".")[1], "M")
            for name, a in answers.items()
        }
        assert len(shapes) == 1, answers
        for ref in ("tb/only-b", "tb/nosuch@1", "nosuch/m"):
            r = client.get("/api/v1/resolve", params={"ref": ref})
            assert_error(r, 404, "NotFound")
            assert r.json()["error"] == f"no project {ref.split('/')[0]!r}"
        # Nor tb's ids (a version's, a model's) from ids nothing has.
        nobody = "00000000-0000-4000-8000-000000000000"
        for hidden in (tenants.records["tb.m"]["id"], tenants.records["tb.m"]["model_id"]):
            for path in ("/v2/models/{}", "/v2/models/{}/ready", "/api/v1/resolve?ref={}"):
                got = assert_error(client.get(path.format(hidden)), 404, "NotFound")
                alike = assert_error(client.get(path.format(nobody)), 404, "NotFound")
                assert got["error"].replace(hidden, nobody) == alike["error"], (got, alike)
            got = client.post(f"/v2/models/{hidden}/infer", json=body)
            assert_error(got, 404, "NotFound")
            assert "tb" not in got.json()["error"]
        # Lists show its own project and the catalog only.
        projects = [p["name"] for p in client.get("/api/v1/projects").json()["result"]]
        assert projects == ["ta"]
        index = tc.get_model_repository_index(headers=server.headers(secret))
        assert {e["name"].split(".")[0] for e in index} == {"ta", "catalog"}
    with pytest.raises(InferenceServerException) as hidden:
        infer(server, tc, "tb.m", {"x": x}, token=secret)
    assert hidden.value.status() == "404"
    assert not tc.is_model_ready("tb.m", headers=server.headers(secret))
    # Its own project's models and the catalog it reads and runs.
    check_runs(server, tc, "ta.m", tenants.models["ta.m"], {"x": x}, token=secret, expect_version=1)
    inputs, _ = IRIS.reference_case()
    check_runs(
        server, tc, f"catalog.{IRIS.name}", IRIS.path, inputs, token=secret, expect_version=1
    )
    with server.client(secret) as client:
        assert client.get("/api/v1/catalog").json()["total"] == len(catalog.entries())
        assert client.get(f"/api/v1/catalog/{IRIS.name}").status_code == 200
        r = client.get("/api/v1/resolve", params={"ref": f"catalog/{IRIS.name}"})
        assert r.status_code == 200 and r.json()["kind"] == "catalog"
        assert client.get("/api/v1/projects/ta/models/m").status_code == 200
        assert client.get(f"/v2/models/catalog.{IRIS.name}").status_code == 200


def test_run_token_cannot_upload_deploy_token_can(server, tenants, tc, rng):
    with server.client(tenants.secrets["run"]) as client:
        assert_error(upload(client, "ta", "by-run", add_model(7.0)), 403, "Forbidden", "deploy")
        assert_error(client.delete("/api/v1/projects/ta/models/m"), 403, "Forbidden")
        assert_error(
            client.put("/api/v1/projects/ta/models/m/aliases/x", json={"version": 1}),
            403,
            "Forbidden",
        )
        assert client.get("/api/v1/projects/ta/models").json()["total"] == 1
    with server.client(tenants.secrets["deploy"]) as client:
        data = add_model(8.0)
        r = upload(client, "ta", "by-deploy", data)
        assert r.status_code == 201 and r.json()["created_by"] == "deploy-a", r.text
        assert_error(client.delete("/api/v1/projects/ta"), 403, "Forbidden", "admin")
    check_runs(
        server,
        tc,
        "ta.by-deploy",
        data,
        {"x": x_batch(3, rng)},
        token=tenants.secrets["run"],
        expect_version=1,
    )


#: Every route but health, with a method it answers.
ROUTES = [
    ("GET", "/v2"),
    ("GET", "/v2/models/oip.add"),
    ("GET", "/v2/models/oip.add/versions/1"),
    ("GET", "/v2/models/oip.add/ready"),
    ("GET", "/v2/models/oip.add/versions/1/ready"),
    ("POST", "/v2/models/oip.add/infer"),
    ("POST", "/v2/models/oip.add/versions/1/infer"),
    ("POST", "/v2/repository/index"),
    ("POST", "/v2/repository/models/oip.add/load"),
    ("POST", "/v2/repository/models/oip.add/unload"),
    ("GET", "/api/v1/runtimes"),
    ("GET", "/api/v1/projects"),
    ("POST", "/api/v1/projects"),
    ("GET", "/api/v1/projects/oip"),
    ("PATCH", "/api/v1/projects/oip"),
    ("DELETE", "/api/v1/projects/oip"),
    ("GET", "/api/v1/projects/oip/models"),
    ("POST", "/api/v1/projects/oip/models"),
    ("GET", "/api/v1/projects/oip/models/add"),
    ("DELETE", "/api/v1/projects/oip/models/add"),
    ("GET", "/api/v1/projects/oip/models/add/versions/1"),
    ("DELETE", "/api/v1/projects/oip/models/add/versions/1"),
    ("GET", "/api/v1/projects/oip/models/add/versions/1/file"),
    ("PUT", "/api/v1/projects/oip/models/add/aliases/prod"),
    ("DELETE", "/api/v1/projects/oip/models/add/aliases/prod"),
    ("GET", "/api/v1/resolve?ref=oip/add"),
    ("GET", "/api/v1/catalog"),
    ("GET", f"/api/v1/catalog/{IRIS.name}"),
    ("GET", "/api/v1/config"),
    ("PUT", "/api/v1/config/validate_timeout"),
    ("GET", "/api/v1/tokens"),
    ("POST", "/api/v1/tokens"),
    ("DELETE", "/api/v1/tokens/run-a"),
    ("GET", "/metrics"),
]


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wh_not-a-token", "Bearer nonsense", "Basic dXNlcjpwYXNz", "Bearer"],
    ids=["none", "unknown", "malformed", "basic", "empty"],
)
def test_every_route_but_health_needs_a_valid_token(server, world, tenants, admin, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}
    with httpx.Client(base_url=server.url, headers=headers, timeout=60) as anonymous:
        for method, path in ROUTES:
            r = anonymous.request(method, path, json={"name": "zzz", "version": 1, "value": 1})
            assert_error(r, 401, "Unauthorized")
        for path in ("/v2/health/live", "/v2/health/ready"):
            assert anonymous.get(path).status_code == 200
    # Nothing was done on their behalf.
    assert admin.get("/api/v1/projects/oip").status_code == 200
    assert admin.get("/api/v1/projects/oip/models/add").json()["aliases"]["prod"] == 1
    assert "run-a" in admin.get("/api/v1/tokens").text
    assert "zzz" not in admin.get("/api/v1/projects").text


def test_revoked_token_is_refused(server, admin, tenants, rng):
    r = admin.post("/api/v1/tokens", json={"name": "short-lived", "role": "run", "project": "ta"})
    secret = r.json()["token"]
    with server.client(secret) as client:
        assert client.get("/v2/models/ta.m").status_code == 200
        r = admin.delete("/api/v1/tokens/short-lived")
        assert r.status_code == 200 and r.json()["name"] == "short-lived"
        assert_error(client.get("/v2/models/ta.m"), 401, "Unauthorized", "revoked")
        assert_error(client.get("/metrics"), 401, "Unauthorized")
    assert_error(admin.delete("/api/v1/tokens/short-lived"), 404, "NotFound")


def metric_samples(text: str) -> dict[str, list]:
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def test_metrics_need_a_token_and_count_inferences(server, tc, tenants, rng):
    assert_error(httpx.get(f"{server.url}/metrics"), 401, "Unauthorized")
    secret = tenants.secrets["run"]
    x = {"x": x_batch(2, rng)}
    check_runs(server, tc, "ta.m", tenants.models["ta.m"], x, token=secret, expect_version=1)
    with pytest.raises(InferenceServerException):
        infer(server, tc, "ta.m", {"x": x["x"].astype(np.float64)}, token=secret)
    with server.client(secret) as client:
        r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert "wasmhost_inferences_total" in r.text and "wasmhost_loaded_models" in r.text
    samples = metric_samples(r.text)
    counts = {
        (s.labels["model"], s.labels["version"], s.labels["outcome"]): s.value
        for s in samples["wasmhost_inferences"]
        if s.name == "wasmhost_inferences_total"
    }
    assert counts[("ta.m", "1", "ok")] >= REPEATS
    assert counts[("ta.m", "1", "InvalidInput")] >= 1
    (loaded,) = samples["wasmhost_loaded_models"]
    assert loaded.value >= 1
    requests = {
        (s.labels["route"], s.labels["status"])
        for s in samples["wasmhost_requests"]
        if s.name == "wasmhost_requests_total"
    }
    assert ("/v2/models/{name}/infer", "200") in requests
    assert ("/metrics", "401") in requests


# -- 5. error bodies ----------------------------------------------------------------------------


def infer_body(x: np.ndarray, name: str = "x", datatype: str = "FP32") -> dict:
    return {
        "inputs": [
            {"name": name, "datatype": datatype, "shape": list(x.shape), "data": x.ravel().tolist()}
        ]
    }


@pytest.mark.parametrize(
    "name", ["oip.nope", "nope.add", "catalog.nope", "00000000-0000-4000-8000-000000000000"]
)
def test_unknown_model_is_404(admin, server, tc, world, name, rng):
    x = x_batch(1, rng)
    assert_error(admin.get(f"/v2/models/{name}"), 404, "NotFound")
    assert_error(admin.get(f"/v2/models/{name}/ready"), 404, "NotFound")
    assert_error(admin.post(f"/v2/models/{name}/infer", json=infer_body(x)), 404, "NotFound")
    with pytest.raises(InferenceServerException) as refused:
        infer(server, tc, name, {"x": x})
    assert refused.value.status() == "404"


@pytest.mark.parametrize(
    ("version", "status", "kind"),
    [
        ("0", 400, "InvalidName"),
        ("-1", 400, "InvalidName"),
        ("bad%20alias", 400, "InvalidName"),
        ("9", 404, "NotFound"),
        ("nosuch", 404, "NotFound"),
    ],
)
def test_bad_versions(admin, world, rng, version, status, kind):
    body = infer_body(x_batch(1, rng))
    assert_error(admin.get(f"/v2/models/oip.add/versions/{version}"), status, kind)
    assert_error(admin.get(f"/v2/models/oip.add/versions/{version}/ready"), status, kind)
    r = admin.post(f"/v2/models/oip.add/versions/{version}/infer", json=body)
    assert_error(r, status, kind)
    # The catalog has version 1 only.
    if version != "0":
        r = admin.post(f"/v2/models/catalog.{IRIS.name}/versions/{version}/infer", json=body)
        assert r.status_code in (400, 404) and "Traceback" not in r.text


def test_malformed_model_names_are_400(admin, world, rng):
    for name in ("noproject", "oip.add.x", "oip.bad name"):
        assert_error(admin.get(f"/v2/models/{name}"), 400, "InvalidName")
    assert_error(
        admin.get(f"/v2/models/{world.records['oip.add'][1]['model_id']}/versions/1"),
        400,
        "InvalidName",
    )


BAD_INPUTS = {
    "wrong-name": (
        {"inputs": [{"name": "z", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]},
        "'z'",
    ),
    "wrong-dtype": (
        {"inputs": [{"name": "x", "datatype": "INT32", "shape": [1, 4], "data": [1, 2, 3, 4]}]},
        "tensor(float)",
    ),
    "wrong-dim": (
        {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 5], "data": [1, 2, 3, 4, 5]}]},
        "dim 4",
    ),
    "wrong-rank": (
        {"inputs": [{"name": "x", "datatype": "FP32", "shape": [4], "data": [1, 2, 3, 4]}]},
        "rank 2",
    ),
    "too-few-values": (
        {"inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 4], "data": [1, 2, 3, 4]}]},
        "shape",
    ),
    "unknown-datatype": (
        {"inputs": [{"name": "x", "datatype": "FP33", "shape": [1, 4], "data": [1, 2, 3, 4]}]},
        "FP33",
    ),
    "strings-where-floats-belong": (
        {"inputs": [{"name": "x", "datatype": "BYTES", "shape": [1, 4], "data": list("abcd")}]},
        "tensor(string)",
    ),
    "strings-as-numbers": (
        {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": ["1", 2, 3, 4]}]},
        "numbers",
    ),
    "negative-shape": (
        {"inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4], "data": [1, 2, 3, 4]}]},
        "shape",
    ),
    "no-inputs": ({"inputs": []}, "inputs"),
    "unknown-output": (
        {
            "inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}],
            "outputs": [{"name": "nope"}],
        },
        "nope",
    ),
    "twice": (
        {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}] * 2},
        "twice",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_inputs_are_400_invalid_input(admin, world, case):
    body, word = BAD_INPUTS[case]
    assert_error(admin.post("/v2/models/oip.add/infer", json=body), 400, "InvalidInput", word)


def test_bad_bodies_are_400_invalid_input(admin, world):
    header = {"name": "x", "datatype": "FP32", "shape": [1, 4]}
    header["parameters"] = {"binary_data_size": 16}
    short = json.dumps({"inputs": [header]}).encode()
    for content, headers in [
        (b"{not json", {}),
        (b"[]", {}),
        (b"\xff\xfe", {}),
        (short + b"AAAA", {"Inference-Header-Content-Length": str(len(short))}),
        (short + b"A" * 20, {"Inference-Header-Content-Length": str(len(short))}),
        (b"{}", {"Inference-Header-Content-Length": "99"}),
        (b"{}", {"Inference-Header-Content-Length": "x"}),
    ]:
        r = admin.post("/v2/models/oip.add/infer", content=content, headers=headers)
        assert_error(r, 400, "InvalidInput")


def test_bad_inputs_through_tritonclient(server, tc, world, rng):
    x = x_batch(1, rng)
    for feeds in ({"x": x.astype(np.float64)}, {"z": x}, {"x": x[:, :3]}, {"x": x.reshape(4)}):
        with pytest.raises(InferenceServerException) as refused:
            infer(server, tc, "oip.add", feeds)
        assert refused.value.status() == "400" and "Traceback" not in refused.value.message()
    # The model still answers right afterwards.
    check_runs(server, tc, "oip.add", world.models["oip.add"][2], {"x": x}, expect_version=2)


def test_missing_input_is_400(admin, world):
    body = {"inputs": [{"name": "a", "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]}]}
    assert_error(admin.post("/v2/models/oip.dt-fp32/infer", json=body), 400, "InvalidInput", "'b'")
