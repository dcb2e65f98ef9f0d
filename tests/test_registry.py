"""The registry's Python API end to end, on both stores: SQLite + a blob directory, and a
real PostgreSQL + a real S3 API (moto's server), each started by the tests on 127.0.0.1.

Every model-running case runs more than once and is compared with onnxruntime."""

from __future__ import annotations

import dataclasses
import hashlib
import uuid

import numpy as np
import onnx
import pytest
from conftest import SQUEEZENET, f32, make_model, reference
from onnx import helper, numpy_helper
from registry_support import add_model

import wasmhost
from wasmhost import (
    AlreadyExists,
    InvalidArgument,
    InvalidModel,
    InvalidName,
    Limits,
    MemoryLimitExceeded,
    NotFound,
    Registry,
    UnsupportedModel,
)
from wasmhost.registry import catalog, parse_reference
from wasmhost.registry.names import MAX_NAME, Reference
from wasmhost.runtime.engine import module_path


@pytest.fixture(params=["sqlite", "postgres+s3"])
def registry(request, tmp_path):
    if request.param == "sqlite":
        reg = Registry(tmp_path / "home")
    else:
        reg = Registry(
            request.getfixturevalue("postgres_url"), blobs=request.getfixturevalue("s3_url")
        )
    yield reg
    reg.close()


def run_twice(session, feeds):
    first = session.run(None, feeds)
    second = session.run(None, feeds)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    return first


def stored(reg: Registry) -> tuple[int, set[str]]:
    """(number of versions, digests of visible blobs): what a refusal must not change."""
    count = sum(
        len(reg.versions(f"{p.name}/{m.name}")) for p in reg.projects() for m in reg.models(p.name)
    )
    return count, {name for name, _ in reg.blobs.list() if not name.startswith("tmp/")}


# --- names and references ------------------------------------------------------------


@pytest.mark.parametrize("name", ["a", "Z", "0", "-", "_", "a-b_C9", "x" * MAX_NAME])
def test_names_at_the_edges_of_the_pattern_are_accepted(registry, name):
    project = registry.create_project(name)
    assert registry.project(name) == project
    version = registry.upload(name, name, add_model(1.0))
    assert registry.resolve(f"{name}/{name}") == version


@pytest.mark.parametrize(
    "name", ["", " ", "a b", "a.b", "a/b", "a@b", "é", "x" * (MAX_NAME + 1), "a\n", "catalog"]
)
def test_bad_project_names_are_refused_with_the_pattern(registry, name):
    with pytest.raises(InvalidName) as e:
        registry.create_project(name)
    assert (
        "^[a-zA-Z0-9_-]+$" in str(e.value) or "reserved" in str(e.value) or "longer" in str(e.value)
    )
    assert registry.projects() == []


def test_bad_model_names_are_refused(registry):
    registry.create_project("p")
    for name in ("m.onnx", "m/1", "", "m@1"):
        with pytest.raises(InvalidName, match="must match"):
            registry.upload("p", name, add_model(1.0))
    assert registry.models("p") == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("p/m", Reference("p", "m")),
        ("p/m@3", Reference("p", "m", version=3)),
        ("p/m@production", Reference("p", "m", alias="production")),
        ("catalog/iris-classifier", Reference("catalog", "iris-classifier")),
        (
            "0b9e1c8a-4f8e-4c0a-9a57-0e1a4a3d2f10",
            Reference(id="0b9e1c8a-4f8e-4c0a-9a57-0e1a4a3d2f10"),
        ),
    ],
)
def test_references_parse(text, expected):
    assert parse_reference(text) == expected
    assert str(parse_reference(text)) == text


@pytest.mark.parametrize(
    "text", ["p", "p/", "/m", "p/m@", "p/m@0", "p/m@-1", "p/m/x", "p.m", "catalog/x@2", "p/m@a.b"]
)
def test_bad_references_are_refused(text):
    with pytest.raises(InvalidName):
        parse_reference(text)


# --- projects --------------------------------------------------------------------------


def test_project_lifecycle(registry):
    created = registry.create_project("vision", limits=Limits(memory="256MiB", timeout=5))
    assert uuid.UUID(created.id)
    assert created.runtime == "onnx"
    assert created.limits == {
        "memory": 256 * 1024**2,
        "timeout": 5,
        "fuel": None,
        "load_fuel": None,
    }
    assert registry.project(created.id) == created
    with pytest.raises(AlreadyExists):
        registry.create_project("vision")
    with pytest.raises(NotFound, match="runtime"):
        registry.create_project("other", runtime="pytorch")
    with pytest.raises(NotFound):
        registry.project("nope")
    assert [p.name for p in registry.projects()] == ["vision"]
    registry.delete_project("vision")
    assert registry.projects() == []
    with pytest.raises(NotFound):
        registry.delete_project("vision")


def test_deleting_a_project_takes_its_models_and_only_their_unshared_blobs(registry):
    registry.create_project("a")
    registry.create_project("b")
    shared, own = add_model(1.0), add_model(2.0)
    registry.upload("a", "m", shared)
    registry.upload("a", "m", own)
    registry.upload("a", "n", own)
    registry.upload("b", "m", shared)
    registry.set_alias("a/m@1", "production")
    sha = {hashlib.sha256(d).hexdigest() for d in (shared, own)}
    assert sha <= stored(registry)[1]
    registry.delete_project("a")
    assert stored(registry) == (1, {hashlib.sha256(shared).hexdigest()})
    assert registry.read("b/m") == shared
    with pytest.raises(NotFound):
        registry.resolve("a/m@production")
    assert registry.check(deep=True) == []


# --- uploads, versions, aliases ---------------------------------------------------------


def test_versions_are_numbered_and_aliases_move(registry):
    registry.create_project("p")
    models = [add_model(float(k)) for k in range(3)]
    uploaded = [
        registry.upload("p", "m", data, description=f"k={k}") for k, data in enumerate(models)
    ]
    assert [v.version for v in uploaded] == [1, 2, 3]
    assert len({v.id for v in uploaded}) == 3
    assert registry.model("p/m").description == "k=2"
    assert registry.model("p/m").latest_version == 3
    assert registry.resolve("p/m") == uploaded[2]
    assert registry.resolve("p/m@1") == uploaded[0]
    assert registry.resolve(uploaded[1].id) == uploaded[1]  # a version's id
    assert registry.resolve(uploaded[0].model_id).version == 3  # a model's id: its newest
    registry.set_alias("p/m@1", "production")
    assert registry.resolve("p/m@production").version == 1
    registry.set_alias("p/m@2", "production")  # moves
    assert registry.resolve("p/m@production").version == 2
    assert registry.model("p/m").aliases == {"production": 2}
    assert registry.version("p/m@2").aliases == ["production"]
    for k, data in enumerate(models):
        assert registry.read(f"p/m@{k + 1}") == data
    with pytest.raises(NotFound, match="version 9"):
        registry.resolve("p/m@9")
    with pytest.raises(NotFound, match="alias 'staging'"):
        registry.resolve("p/m@staging")
    with pytest.raises(InvalidName, match="number"):
        registry.set_alias("p/m@1", "123")
    with pytest.raises(InvalidName, match="number"):
        registry.set_alias("p/m@1", "-1")
    registry.remove_alias("p/m", "production")
    with pytest.raises(NotFound):
        registry.remove_alias("p/m", "production")


def test_upload_records_the_sandbox_signature(registry):
    registry.create_project("p")
    version = registry.upload("p", "sq", SQUEEZENET)
    assert version.sha256 == hashlib.sha256(SQUEEZENET.read_bytes()).hexdigest()
    assert version.size == SQUEEZENET.stat().st_size
    assert version.status == "ready"
    assert [(t.name, t.type, t.shape) for t in version.inputs] == [
        ("data_0", "tensor(float)", [1, 3, 224, 224])
    ]
    assert [t.name for t in version.outputs] == ["softmaxout_1"]
    assert version.created_by


def test_deleting_a_version_or_a_model(registry):
    registry.create_project("p")
    for k in range(3):
        registry.upload("p", "m", add_model(float(k)))
    registry.set_alias("p/m@2", "production")
    deleted = registry.delete("p/m@production")
    assert [v.version for v in deleted] == [2]
    assert [v.version for v in registry.versions("p/m")] == [1, 3]
    assert registry.model("p/m").aliases == {}
    # Numbers are never reused: the next upload is 4.
    assert registry.upload("p", "m", add_model(9.0)).version == 4
    registry.delete("p/m")
    with pytest.raises(NotFound):
        registry.model("p/m")
    assert stored(registry) == (0, set())


def test_refused_uploads_store_nothing(registry, tmp_path):
    registry.create_project("p", limits={"memory": "32MiB"})
    registry.upload("p", "ok", add_model(1.0))
    before = stored(registry)
    external = tmp_path / "external.onnx"
    weights = numpy_helper.from_array(np.ones((64, 64), np.float32), "w")
    model = helper.make_model(
        helper.make_graph(
            [helper.make_node("MatMul", ["x", "w"], ["y"])],
            "g",
            [f32("x", [1, 64])],
            [f32("y", [1, 64])],
            [weights],
        )
    )
    onnx.save_model(model, external, save_as_external_data=True, location="w.bin", size_threshold=0)
    unsupported = make_model(
        [helper.make_node("Col2Im", ["x", "s", "b"], ["y"])],
        [
            f32("x", [1, 4, 4]),
            helper.make_tensor_value_info("s", onnx.TensorProto.INT64, [2]),
            helper.make_tensor_value_info("b", onnx.TensorProto.INT64, [2]),
        ],
        [f32("y", None)],
        opset=18,
        check=False,
    )
    big = numpy_helper.from_array(np.ones((3000, 3000), np.float32), "w")  # 36 MB > 32 MiB
    hog = make_model(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        [f32("x", [1, 3000])],
        [f32("y", [1, 3000])],
        [big],
    )
    registry.set_setting("max_model_size", "64MiB")
    cases = [
        (b"not a model at all", InvalidModel, "ONNX"),
        (b"", InvalidModel, "empty"),
        (external, InvalidModel, "external data"),
        (unsupported, UnsupportedModel, "Col2Im"),
        (hog, MemoryLimitExceeded, "memory"),
    ]
    for data, error, words in cases:
        with pytest.raises(error, match=words):
            registry.upload("p", "bad", data)
        assert stored(registry) == before
    registry.set_setting("max_model_size", "1KiB")
    with pytest.raises(InvalidModel, match="max_model_size"):
        registry.upload("p", "bad", SQUEEZENET)
    assert stored(registry) == before
    with pytest.raises(NotFound):
        registry.model("p/bad")


def test_uploads_to_the_catalog_or_a_missing_project_are_refused(registry):
    with pytest.raises(InvalidName, match="read-only"):
        registry.upload("catalog", "x", add_model(1.0))
    with pytest.raises(NotFound):
        registry.upload("nope", "x", add_model(1.0))
    with pytest.raises(NotFound, match="read-only"):
        registry.delete("catalog/iris-classifier")


# --- sessions --------------------------------------------------------------------------


def test_sessions_run_registry_models_like_onnxruntime(registry, rng):
    registry.create_project("vision")
    registry.upload("vision", "squeezenet", SQUEEZENET)
    data = add_model(3.0)
    registry.upload("vision", "add", data)
    x = rng.standard_normal((1, 3, 224, 224), dtype=np.float32)
    for ref in ("vision/squeezenet", "vision/squeezenet@1"):
        with registry.session(ref) as session:
            got = run_twice(session, {"data_0": x})
        np.testing.assert_allclose(
            got[0], reference(SQUEEZENET, {"data_0": x})[0], rtol=1e-4, atol=1e-6
        )
    for rows in (1, 5):
        feeds = {"x": rng.standard_normal((rows, 4), dtype=np.float32)}
        with registry.session("vision/add") as session:
            np.testing.assert_array_equal(run_twice(session, feeds)[0], reference(data, feeds)[0])


def test_sessions_inherit_the_project_limits_unless_given(registry):
    registry.create_project("p", limits={"memory": "64MiB", "timeout": 7.5, "fuel": 10**9})
    registry.upload("p", "m", add_model(1.0))
    with registry.session("p/m") as session:
        assert (int(session.limits.memory), session.limits.timeout, session.limits.fuel) == (
            64 * 1024**2,
            7.5,
            10**9,
        )
    with registry.session("p/m", limits=Limits(memory="128MiB")) as session:
        assert int(session.limits.memory) == 128 * 1024**2
        assert session.limits.fuel is None
    registry.set_project_limits("p", {"memory": "32MiB"})
    with registry.session("p/m") as session:
        assert int(session.limits.memory) == 32 * 1024**2
    with pytest.raises(InvalidArgument):
        registry.set_project_limits("p", {"memory": "1KiB"})
    with pytest.raises(InvalidArgument, match="limits are"):
        registry.set_project_limits("p", {"colour": "red"})


def test_a_hostile_upload_does_not_harm_the_registry_or_its_other_models(registry, rng):
    registry.create_project("p", limits={"memory": "32MiB", "timeout": 5})
    data = add_model(1.0)
    registry.upload("p", "good", data)
    big = numpy_helper.from_array(np.ones((3000, 3000), np.float32), "w")
    registry.set_setting("max_model_size", "64MiB")
    hog = make_model(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        [f32("x", [1, 3000])],
        [f32("y", [1, 3000])],
        [big],
    )
    for _ in range(2):
        with pytest.raises(MemoryLimitExceeded):
            registry.upload("p", "hog", hog)
    feeds = {"x": rng.standard_normal((2, 4), dtype=np.float32)}
    with registry.session("p/good") as session:
        np.testing.assert_array_equal(run_twice(session, feeds)[0], reference(data, feeds)[0])


# --- settings, runtimes, catalog --------------------------------------------------------


def test_settings_are_shared_and_checked(registry, tmp_path):
    assert registry.get_setting("max_model_size") == 10 * 1024**2  # Constellation's beta cap
    assert registry.set_setting("max_model_size", "100MiB") == 100 * 1024**2
    with pytest.raises(InvalidArgument, match="unknown setting"):
        registry.set_setting("colour", "red")
    with pytest.raises(InvalidArgument):
        registry.set_setting("max_model_size", "lots")
    with pytest.raises(InvalidArgument):
        registry.set_setting("validate_timeout", "-1")
    assert registry.settings()["max_model_size"] == 100 * 1024**2
    registry.set_setting("max_model_size", None)
    assert registry.get_setting("max_model_size") == 10 * 1024**2


def test_a_registry_is_shared_by_two_handles(registry):
    other = (
        Registry(registry.db.url, blobs=registry.blobs.url)
        if not isinstance(registry.blobs, wasmhost.registry.blobs.LocalBlobs)
        else Registry(registry.db.url)
    )
    try:
        registry.create_project("p")
        registry.upload("p", "m", add_model(1.0))
        registry.set_setting("max_model_size", "20MiB")
        assert other.resolve("p/m").version == 1
        assert other.get_setting("max_model_size") == 20 * 1024**2
        other.upload("p", "m", add_model(2.0))
        assert registry.resolve("p/m").version == 2
    finally:
        other.close()


def test_runtimes_list_the_bundled_guest(registry):
    (builtin,) = registry.runtimes()
    assert builtin.name == "onnx" and builtin.builtin
    assert builtin.module_sha256 == hashlib.sha256(module_path().read_bytes()).hexdigest()
    assert "tract" in builtin.version


def test_a_second_runtime_is_a_registered_module(registry, rng):
    module = module_path().read_bytes()
    with pytest.raises(wasmhost.GuestProtocolError):
        registry.register_runtime("broken", b"\0asm\x01\0\0\0garbage")
    runtime = registry.register_runtime("onnx-copy", module, version="copy of the bundled guest")
    assert not runtime.builtin
    assert [r.name for r in registry.runtimes()] == ["onnx", "onnx-copy"]
    with pytest.raises(AlreadyExists):
        registry.register_runtime("onnx-copy", module)
    registry.create_project("p", runtime="onnx-copy")
    data = add_model(5.0)
    registry.upload("p", "m", data)
    source = registry.source("p/m")
    assert source.module is not None and source.module != module_path()
    assert hashlib.sha256(source.module.read_bytes()).hexdigest() == runtime.module_sha256
    feeds = {"x": rng.standard_normal((3, 4), dtype=np.float32)}
    with registry.session("p/m") as session:
        np.testing.assert_array_equal(run_twice(session, feeds)[0], reference(data, feeds)[0])
    assert registry.check(deep=True) == []


def test_the_catalog_runs_its_reference_cases_like_onnxruntime(registry):
    entries = catalog.entries()
    assert entries, "the catalog must have at least one entry"
    for entry in entries:
        assert registry.resolve(entry.reference) == entry
        assert registry.resolve(entry.id) == entry
        data = registry.read(entry.reference)
        assert hashlib.sha256(data).hexdigest() == entry.sha256
        inputs, expected = entry.reference_case()
        ours = reference(data, inputs)  # onnxruntime today agrees with the stored case
        names = [o["name"] for o in entry.outputs]
        for name, value in zip(names, ours, strict=True):
            np.testing.assert_allclose(value, expected[name], rtol=1e-5, atol=1e-6)
        with registry.session(entry.reference) as session:
            got = run_twice(session, inputs)
        for name, value in zip(names, got, strict=True):
            np.testing.assert_allclose(value, expected[name], rtol=1e-4, atol=1e-5)
    with pytest.raises(NotFound, match="has: "):
        registry.resolve("catalog/no-such-model")


def test_damaged_blobs_are_reported_never_run(tmp_path):
    registry = Registry(tmp_path / "home")
    registry.create_project("p")
    version = registry.upload("p", "m", add_model(1.0))
    path = tmp_path / "home" / "blobs" / "sha256" / version.sha256[:2] / version.sha256
    path.write_bytes(add_model(2.0))
    with pytest.raises(wasmhost.RegistryCorrupt, match="damaged"):
        registry.session("p/m")
    assert registry.check(deep=True)
    path.unlink()
    with pytest.raises(wasmhost.RegistryCorrupt, match="missing"):
        registry.read("p/m")
    assert any("missing" in p for p in registry.check())


def test_the_default_registry_is_wasmhost_home(tmp_path, monkeypatch):
    monkeypatch.setenv("WASMHOST_HOME", str(tmp_path / "h"))
    monkeypatch.delenv("WASMHOST_REGISTRY", raising=False)
    with Registry() as registry:
        registry.create_project("p")
    assert (tmp_path / "h" / "registry.db").exists()
    with Registry(tmp_path / "h") as again:
        assert [p.name for p in again.projects()] == ["p"]


def test_postgres_needs_a_blob_store(postgres_url):
    with pytest.raises(InvalidArgument, match="blob store"):
        Registry(postgres_url)


def test_limits_dataclass_fields_cover_project_limits():
    # A project's limits are Limits fields: a renamed field must fail here, not at run time.
    names = {f.name for f in dataclasses.fields(Limits)}
    assert {"memory", "timeout", "fuel", "load_fuel"} <= names


def test_catalog_models_join_a_project_without_copying_bytes(registry, rng):
    entry = catalog.entries()[0]
    registry.create_project("p")
    version = registry.add_from_catalog("p", "mine", entry.reference)
    assert (version.version, version.catalog, version.sha256) == (1, entry.name, entry.sha256)
    assert registry.model("p/mine").description == entry.description
    assert entry.sha256 not in {name for name, _ in registry.blobs.list()}  # not copied
    assert registry.read("p/mine") == entry.read()
    inputs, expected = entry.reference_case()
    with registry.session("p/mine@1") as session:
        got = run_twice(session, inputs)
    for name, value in zip([o["name"] for o in entry.outputs], got, strict=True):
        np.testing.assert_allclose(value, expected[name], rtol=1e-4, atol=1e-5)
    assert registry.check(deep=True) == []
    # An upload of the same bytes next to it stores them; deleting it keeps the catalog's.
    registry.upload("p", "copy", entry.read())
    assert entry.sha256 in {name for name, _ in registry.blobs.list()}
    registry.delete("p/copy")
    assert registry.read("p/mine") == entry.read()
    assert registry.check(deep=True) == []
    registry.delete("p/mine")
    assert stored(registry) == (0, set())
    with pytest.raises(NotFound):
        registry.add_from_catalog("p", "x", "catalog/no-such-model")
    with pytest.raises(InvalidName, match="read-only"):
        registry.add_from_catalog("catalog", "x", entry.name)
