"""The remote mode: `wasmhost.Client` and `wasmhost --server URL --token T ...` against one
live server (a child process on loopback, started once for the module).

Every Client method is compared with the same call on a `Registry` of the server's own
store (the same records, equal), and the same operations on a local registry of its own
(the same records but for ids, times and users); `infer` with onnxruntime, twice; each CLI
command in a child process with `--json` with the local CLI's output on the server's store;
and each error's class and exit code with what the same call raises locally.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from conftest import (
    assert_outputs_equal,
    f32,
    make_model,
    reference,
    string_model,
    vi,
    wasmhost_cli,
)
from onnx import TensorProto, helper
from registry_support import add_model
from serve_support import LiveServer, free_port, start_server

import wasmhost
from wasmhost.cli import EXIT_CODES, main
from wasmhost.client import Client, ServerUnavailable
from wasmhost.errors import (
    AlreadyExists,
    Forbidden,
    InvalidArgument,
    InvalidModel,
    InvalidName,
    NotFound,
    Unauthorized,
)
from wasmhost.registry import Registry, catalog

IRIS = catalog.entries()[0]
#: What differs between two registries doing the same things: ids, times, who.
VOLATILE = {"id", "model_id", "project_id", "created_at", "created_by"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = start_server(tmp_path_factory.mktemp("client") / "home")
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture(scope="module")
def client(server: LiveServer) -> Iterator[Client]:
    with Client(server.url, server.admin) as c:
        yield c


@pytest.fixture(scope="module")
def store(server: LiveServer) -> Iterator[Registry]:
    """A Registry on the server's own store: what the client reads must equal it."""
    with Registry(server.home) as r:
        yield r


def norm(value: Any) -> Any:
    """A record (or records) as JSON, without what differs between two registries."""
    if hasattr(value, "to_dict"):
        value = value.to_dict()
    if isinstance(value, dict):
        return {k: norm(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list | tuple):
        return [norm(v) for v in value]
    return value


def multi_model() -> bytes:
    """x float32 [batch, 3] -> y = x * 2 (float32), idx = argmax (int64), pos = x > 0 (bool)."""
    two = helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])
    zero = helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0])
    return make_model(
        [
            helper.make_node("Mul", ["x", "two"], ["y"]),
            helper.make_node("ArgMax", ["x"], ["idx"], axis=1, keepdims=0),
            helper.make_node("Greater", ["x", "zero"], ["pos"]),
        ],
        [f32("x", ["batch", 3])],
        [
            f32("y", ["batch", 3]),
            vi("idx", TensorProto.INT64, ["batch"]),
            vi("pos", TensorProto.BOOL, ["batch", 3]),
        ],
        [two, zero],
    )


# -- the Client's methods ---------------------------------------------------------------------


def test_every_method_matches_the_registry(client, store, tmp_path):
    """Each call on the client equals the same read on the server's store, and what the same
    call does on a registry of its own (but for ids, times and users)."""
    mirror = Registry(tmp_path / "mirror")

    def both(call: Callable[[Any], Any]) -> Any:
        remote, local = call(client), call(mirror)
        assert norm(remote) == norm(local)
        return remote

    assert both(lambda r: r.runtimes()) == store.runtimes()
    assert both(lambda r: r.runtime("onnx")) == store.runtime("onnx")
    p1 = both(lambda r: r.create_project("m-one", limits=wasmhost.Limits(memory="256MiB")))
    assert p1 == store.project("m-one")
    both(lambda r: r.create_project("m-two", limits={"memory": "128MiB", "concurrency": 3}))
    both(lambda r: r.set_project_limits("m-one", {"timeout": 5.0, "queue": 4}))
    both(lambda r: r.set_project_limits("m-two", None))
    model = tmp_path / "add3.onnx"
    model.write_bytes(add_model(3.0))
    first = both(lambda r: r.upload("m-one", "add", add_model(2.0), description="x+2"))
    second = both(lambda r: r.upload("m-one", "add", model))  # a file, streamed
    assert (first.version, second.version, second.status) == (1, 2, "ready")
    assert first == store.version("m-one/add@1") and second == store.version(second.id)
    both(lambda r: r.upload("m-two", "mul", multi_model(), description="three outputs"))

    assert client.projects() == store.projects()
    assert [p.name for p in both(lambda r: r.projects())] == ["m-one", "m-two"]
    assert client.project("m-one") == store.project("m-one")
    assert client.project(p1.id) == store.project(p1.id)
    assert client.models("m-one") == store.models("m-one")
    assert client.models(p1.id) == store.models(p1.id)
    both(lambda r: r.models("m-one"))
    for ref in ("m-one/add", "m-one/add@1", first.id, second.model_id):
        assert client.model(ref) == store.model(ref)
        assert client.versions(ref) == store.versions(ref)
    for ref in ("m-one/add", "m-one/add@1", "m-one/add@2", first.id, second.model_id):
        assert client.version(ref) == store.version(ref)
        assert client.resolve(ref) == store.resolve(ref)
    for ref in ("m-one/add", "m-one/add@1", "m-two/mul"):
        both(lambda r, ref=ref: r.model(ref))
        both(lambda r, ref=ref: r.versions(ref))
        both(lambda r, ref=ref: r.version(ref))
    # The catalog: the same CatalogEntry (its file found in this wasmhost's own copy).
    for ref in ("catalog/iris-classifier", IRIS.id):
        assert client.resolve(ref) == store.resolve(ref) == IRIS
    assert client.catalog() == list(catalog.entries())
    assert client.catalog_entry(IRIS.name) == client.catalog_entry(IRIS.id) == IRIS

    moved = both(lambda r: r.set_alias("m-one/add@1", "production"))
    assert moved.aliases == ["production"] and moved == store.version("m-one/add@production")
    both(lambda r: r.set_alias("m-one/add@2", "production"))  # aliases move
    assert client.model("m-one/add").aliases == {"production": 2}
    assert both(lambda r: r.remove_alias("m-one/add", "production")) is None
    assert client.model("m-one/add") == store.model("m-one/add")

    for ref in ("m-one/add@1", "m-one/add", second.id, "catalog/iris-classifier"):
        assert client.read(ref) == store.read(ref)
    out = tmp_path / "out.onnx"
    for ref in ("m-one/add@1", "catalog/iris-classifier"):
        assert client.download(ref, out) == store.resolve(ref)
        assert out.read_bytes() == store.read(ref)
    assert not list(tmp_path.glob(".out.onnx-*"))  # no temporary file left

    assert both(lambda r: r.settings()) == store.settings()
    assert both(lambda r: r.set_setting("validate_timeout", "30")) == 30.0
    assert both(lambda r: r.get_setting("validate_timeout")) == store.get_setting(
        "validate_timeout"
    )
    assert both(lambda r: r.set_setting("validate_timeout", None)) == 60.0

    made, secret = client.create_token("m-deployer", role="deploy", project="m-one")
    assert secret.startswith("wh_") and norm(made) == norm(
        mirror.create_token("m-deployer", role="deploy", project="m-one")[0]
    )
    assert client.tokens() == store.tokens()
    assert client.revoke_token(made.id) == made
    assert "m-deployer" not in [t.name for t in store.tokens()]

    # Deletes: a version by number, by id, then the model by its id, then a project.
    assert both(lambda r: r.delete("m-one/add@1")) == [first]
    third = both(lambda r: r.upload("m-one", "add", add_model(4.0)))
    assert client.delete(third.id) == [third]
    mirror.delete(mirror.version("m-one/add@3").id)
    assert client.versions("m-one/add") == store.versions("m-one/add") == [second]
    assert client.delete(second.model_id) == [second]
    mirror.delete(mirror.model("m-one/add").id)
    with pytest.raises(NotFound):
        store.model("m-one/add")
    both(lambda r: r.delete_project("m-two"))
    assert client.projects() == store.projects()
    both(lambda r: r.delete_project("m-one"))
    mirror.close()


def test_lists_fetch_every_page(server, client, store):
    for name in ("page-a", "page-b", "page-c"):
        client.create_project(name)
    with Client(server.url, server.admin) as paged:
        paged._per_page = 1
        assert paged.projects() == store.projects()
        assert len(paged.projects()) >= 3
        assert paged.tokens() == store.tokens()
        assert paged.catalog() == list(catalog.entries())
    for name in ("page-a", "page-b", "page-c"):
        client.delete_project(name)


def test_health_and_lazy_export(server):
    assert wasmhost.Client is Client
    with Client(server.url + "/") as anonymous:  # health needs no token
        assert anonymous.health() == {"live": True, "ready": True}
        assert repr(anonymous) == f"Client({server.url!r})"


def test_catalog_models_join_a_project_remotely(client, store):
    client.create_project("from-catalog")
    try:
        added = client.add_from_catalog("from-catalog", "iris", "catalog/iris-classifier")
        assert added == store.version("from-catalog/iris@1")
        assert added.catalog == "iris-classifier"
        entry = catalog.entry("iris-classifier")
        inputs, expected = entry.reference_case()
        for _ in range(2):
            got = client.infer("from-catalog.iris", inputs)
            np.testing.assert_allclose(got["probabilities"], expected["probabilities"], rtol=1e-4)
            np.testing.assert_array_equal(got["label"], expected["label"])
        with pytest.raises(wasmhost.NotFound):
            client.add_from_catalog("from-catalog", "x", "catalog/no-such-model")
    finally:
        client.delete_project("from-catalog")


def test_refused_operations_say_why(client):
    for call in (
        lambda: client.register_runtime("x", b"\0asm"),
        lambda: client.check(),
        lambda: client.gc(),
        lambda: client.source("p/m"),
        lambda: client.session("p/m"),
    ):
        with pytest.raises(InvalidArgument, match="server"):
            call()
    with pytest.raises(InvalidArgument, match="http"):
        Client("localhost:8000")


# -- errors: the same classes remotely as locally ------------------------------------------


def test_errors_are_the_classes_raised_locally(client, store, tmp_path):
    mirror = Registry(tmp_path / "mirror")
    for r in (client, mirror):
        r.create_project("errs")
        r.upload("errs", "add", add_model(2.0))
    big = tmp_path / "big.onnx"
    big.write_bytes(b"\x08" * 200_000)
    cases: list[tuple[type[Exception], Callable[[Any], Any]]] = [
        (NotFound, lambda r: r.project("nope")),
        (NotFound, lambda r: r.project("catalog")),
        (NotFound, lambda r: r.project("00000000-0000-4000-8000-000000000000")),
        (InvalidName, lambda r: r.project("bad name")),
        (AlreadyExists, lambda r: r.create_project("errs")),
        (InvalidName, lambda r: r.create_project("catalog")),
        (InvalidName, lambda r: r.create_project("a/b")),
        (NotFound, lambda r: r.create_project("x", runtime="nope")),
        (InvalidArgument, lambda r: r.create_project("x", limits={"memory": "huge"})),
        (InvalidArgument, lambda r: r.create_project("x", limits={"colour": 1})),
        (NotFound, lambda r: r.set_project_limits("nope", None)),
        (NotFound, lambda r: r.delete_project("nope")),
        (InvalidModel, lambda r: r.upload("errs", "m", b"not a model")),
        (InvalidModel, lambda r: r.upload("errs", "m", b"")),
        (InvalidModel, lambda r: r.upload("errs", "m", big)),  # not ONNX
        (NotFound, lambda r: r.upload("nope", "m", add_model(1.0))),
        (InvalidName, lambda r: r.upload("catalog", "m", add_model(1.0))),
        (InvalidName, lambda r: r.upload("errs", "bad name", add_model(1.0))),
        (FileNotFoundError, lambda r: r.upload("errs", "m", tmp_path / "missing.onnx")),
        (NotFound, lambda r: r.models("nope")),
        (InvalidName, lambda r: r.version("nope")),
        (NotFound, lambda r: r.version("errs/add@9")),
        (NotFound, lambda r: r.version("errs/add@nope")),
        (NotFound, lambda r: r.version("errs/none")),
        (NotFound, lambda r: r.version("catalog/iris-classifier")),
        (NotFound, lambda r: r.resolve("catalog/nope")),
        (InvalidName, lambda r: r.resolve("catalog/iris-classifier@1")),
        (NotFound, lambda r: r.model("catalog/iris-classifier")),
        (NotFound, lambda r: r.versions("errs/none")),
        (NotFound, lambda r: r.model("00000000-0000-4000-8000-000000000000")),
        (InvalidName, lambda r: r.set_alias("errs/add@1", "3")),
        (NotFound, lambda r: r.set_alias("errs/add@7", "prod")),
        (NotFound, lambda r: r.remove_alias("errs/add", "nope")),
        (NotFound, lambda r: r.read("errs/add@5")),
        (NotFound, lambda r: r.delete("catalog/iris-classifier")),
        (NotFound, lambda r: r.delete("errs/add@5")),
        (InvalidArgument, lambda r: r.get_setting("nope")),
        (InvalidArgument, lambda r: r.set_setting("nope", "1")),
        (InvalidArgument, lambda r: r.set_setting("max_model_size", "1")),
        (InvalidArgument, lambda r: r.create_token("t", role="root")),
        (InvalidName, lambda r: r.create_token("bad name")),
        (NotFound, lambda r: r.create_token("t", project="nope")),
        (NotFound, lambda r: r.revoke_token("nope")),
        (NotFound, lambda r: r.revoke_token("a/b")),
        (NotFound, lambda r: r.runtime("nope")),
    ]
    try:
        for expected, call in cases:
            raised = []
            for r in (client, mirror):
                with pytest.raises(expected) as caught:
                    call(r)
                raised.append(caught.value)
            remote, local = raised
            assert type(remote) is type(local), (remote, local)
            assert str(remote) == str(local), (remote, local)
        # A file much larger than the cap is refused while it streams (413): InvalidModel too.
        for r in (client, mirror):
            r.set_setting("max_model_size", "1KiB")
        for r in (client, mirror):
            with pytest.raises(InvalidModel, match="max_model_size"):
                r.upload("errs", "m", big)
        assert client.models("errs") == store.models("errs")  # nothing stored
    finally:
        for r in (client, mirror):
            r.set_setting("max_model_size", None)
            r.delete_project("errs")
        mirror.close()
    with pytest.raises(NotFound, match="has no model 'nope'"):
        client.catalog_entry("nope")


def test_tokens_and_connections(server, client):
    client.create_project("guarded")
    _, runner = client.create_token("guarded-runner", role="run", project="guarded")
    try:
        for token in ("wh_not-a-token", None):
            with Client(server.url, token) as c, pytest.raises(Unauthorized) as caught:
                c.projects()
            assert type(caught.value) is Unauthorized
        with Client(server.url, runner) as c:
            assert [p.name for p in c.projects()] == ["guarded"]
            with pytest.raises(Forbidden):
                c.upload("guarded", "m", add_model(1.0))
            with pytest.raises(Forbidden):
                c.tokens()
            with pytest.raises(NotFound):  # another project is as if it did not exist
                c.models("errs-elsewhere")
    finally:
        client.revoke_token("guarded-runner")
        client.delete_project("guarded")
    url = f"http://127.0.0.1:{free_port()}"
    with Client(url, timeout=5) as c, pytest.raises(ServerUnavailable) as caught:
        c.projects()
    assert isinstance(caught.value, ConnectionError)
    assert url in str(caught.value) and "\n" not in str(caught.value)


# -- infer ------------------------------------------------------------------------------------


def test_infer_matches_onnxruntime(client, rng):
    client.create_project("inf")
    try:
        client.upload("inf", "mul", multi_model())
        client.upload("inf", "add", add_model(2.0))
        client.upload("inf", "add", add_model(3.0))
        client.set_alias("inf/add@1", "production")
        x = rng.standard_normal((5, 3), dtype=np.float32)
        expected = reference(multi_model(), {"x": x})
        for _ in range(2):  # a loaded model answers alike each time
            got = client.infer("inf/mul", {"x": x})
            assert list(got) == ["y", "idx", "pos"]
            assert_outputs_equal(list(got.values()), expected)
            assert got["y"].flags.writeable
        subset = client.infer("inf.mul", {"x": x}, outputs=["pos", "y"])
        assert list(subset) == ["pos", "y"]
        assert_outputs_equal([subset["pos"], subset["y"]], [expected[2], expected[0]])

        a = rng.standard_normal((2, 4), dtype=np.float32)
        for ref, version, k in (
            ("inf/add", None, 3.0),
            ("inf/add@1", None, 2.0),
            ("inf/add@production", None, 2.0),
            ("inf/add", 1, 2.0),
            ("inf/add", "production", 2.0),
            ("inf.add", "2", 3.0),
            (client.version("inf/add@1").id, None, 2.0),
        ):
            for _ in range(2):
                got = client.infer(ref, {"x": a}, version=version)
                assert_outputs_equal([got["y"]], reference(add_model(k), {"x": a}))
        with pytest.raises(InvalidArgument, match="names a version"):
            client.infer("inf/add@1", {"x": a}, version=2)
        with pytest.raises(wasmhost.InvalidInput):
            client.infer("inf/add", {"nope": a})
        with pytest.raises(wasmhost.InvalidInput, match=r"tensor\(string\)"):
            client.infer("inf/add", {"x": np.array(["a"])})
        with pytest.raises(wasmhost.InvalidInput, match="OIP"):
            client.infer("inf/add", {"x": np.array([1 + 2j])})
        client.upload("inf", "strings", string_model())
        words = np.array(["b", "zz", "a", "é"], dtype=object)
        expected = reference(string_model(), {"x": words})
        for feed in (words, words.astype(str)):
            for _ in range(2):
                got = client.infer("inf/strings", {"x": feed})
                assert got["code"].tolist() == expected[0].tolist()
                assert got["same"].dtype == object and got["same"].tolist() == words.tolist()
        with pytest.raises(NotFound):
            client.infer("inf/none", {"x": a})
    finally:
        client.delete_project("inf")
    inputs, outputs = IRIS.reference_case()
    for ref in ("catalog/iris-classifier", "catalog.iris-classifier"):
        got = client.infer(ref, inputs)
        assert_outputs_equal([got[k] for k in outputs], list(outputs.values()))


# -- the command line, remotely ---------------------------------------------------------------


@pytest.fixture
def cli(server, monkeypatch, capsys):
    """(remote, local): `wasmhost --server URL --token T ARGS` in a child process, and
    `wasmhost ARGS` in this process on the server's store; each (exit code, out, err)."""
    monkeypatch.setenv("WASMHOST_HOME", str(server.home))
    for name in ("WASMHOST_REGISTRY", "WASMHOST_BLOBS", "WASMHOST_SERVER", "WASMHOST_TOKEN"):
        monkeypatch.delenv(name, raising=False)

    def remote(*args: Any, token: str | None = None) -> tuple[int, str, str]:
        proc = wasmhost_cli("--server", server.url, "--token", token or server.admin, *args)
        return proc.returncode, proc.stdout, proc.stderr

    def local(*args: Any) -> tuple[int, str, str]:
        capsys.readouterr()
        with pytest.raises(SystemExit) as done:
            main([str(a) for a in args])
        out, err = capsys.readouterr()
        return done.value.code, out, err

    return remote, local


def ok(result: tuple[int, str, str]) -> Any:
    code, out, err = result
    assert code == 0, err
    return json.loads(out) if out.startswith(("{", "[")) else out


def failed(result: tuple[int, str, str], name: str, *words: str) -> str:
    code, _out, err = result
    assert code == EXIT_CODES[name], (code, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wasmhost: error: "), err
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


def test_every_command_remotely(cli, server, tmp_path, rng):
    remote, local = cli

    def same(*args: Any) -> Any:
        """The command's output remotely is the local CLI's on the server's store."""
        got = ok(remote(*args))
        assert got == ok(local(*args)), args
        return got

    assert [r["name"] for r in same("runtime", "list", "--json")] == ["onnx"]
    same("runtime", "list")  # the table too
    made = ok(remote("project", "create", "cli-p", "--memory", "256MiB", "--json"))
    assert made["limits"] == {"memory": 256 * 1024**2}
    assert made["created_by"].startswith("admin-")  # the token's name
    assert "cli-p" in [p["name"] for p in same("project", "list", "--json")]
    limited = ok(remote("project", "set-limits", "cli-p", "--timeout", "5", "--json"))
    assert limited["limits"] == {"memory": 256 * 1024**2, "timeout": 5.0}
    model = tmp_path / "add.onnx"
    model.write_bytes(add_model(2.0))
    first = ok(remote("model", "upload", "cli-p", "add", model, "--description", "x+2", "--json"))
    assert (first["version"], first["status"]) == (1, "ready")
    model.write_bytes(add_model(3.0))
    assert "uploaded cli-p/add@2" in ok(remote("model", "upload", "cli-p", "add", model))
    moved = ok(remote("model", "alias", "cli-p/add@1", "production", "--json"))
    assert moved["aliases"] == ["production"]
    (listed,) = same("model", "list", "cli-p", "--json")
    assert (listed["latest_version"], listed["aliases"]) == (2, {"production": 1})
    shown = same("project", "show", "cli-p", "--json")
    assert [m["name"] for m in shown["model_list"]] == ["add"]
    same("project", "show", "cli-p")
    assert same("model", "show", "cli-p/add@production", "--json")["id"] == first["id"]
    same("model", "show", first["id"])
    assert [v["version"] for v in same("model", "versions", "cli-p/add", "--json")] == [1, 2]
    same("model", "versions", "cli-p/add")
    assert ok(remote("model", "alias", "cli-p/add", "production", "--remove", "--json")) == {
        "removed": "production"
    }
    out = tmp_path / "down.onnx"
    got = ok(remote("model", "download", "cli-p/add@1", "-o", out, "--json"))
    assert got["sha256"] == first["sha256"] and out.read_bytes() == add_model(2.0)

    # run by reference: on the server, the same outputs as the local run.
    x = rng.standard_normal((3, 4), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    for ref in ("cli-p/add", "cli-p/add@1"):
        ran = same("run", ref, tmp_path / "x.npy", "--json")
        k = 3.0 if ref == "cli-p/add" else 2.0
        np.testing.assert_allclose(ran["outputs"][0]["data"], (x + k).tolist(), rtol=1e-6)
    assert ok(remote("run", "cli-p/add", tmp_path / "x.npy", "-o", tmp_path / "y.npy")).startswith(
        "cli-p/add@2"
    )
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), x + 3.0, rtol=1e-6)
    inputs, _ = IRIS.reference_case()
    np.savez(tmp_path / "iris.npz", **inputs)
    same("run", "catalog/iris-classifier", tmp_path / "iris.npz", "--json")

    assert same("catalog", "list", "--json") == [e.to_dict() for e in catalog.entries()]
    same("catalog", "show", "catalog/iris-classifier", "--json")
    same("catalog", "show", IRIS.name)
    assert same("config", "list", "--json") == {
        "max_model_size": 10 * 1024**2,
        "validate_timeout": 60.0,
        "snapshots": False,  # conftest turns snapshots off
    }
    same("config", "get", "max_model_size")
    assert ok(remote("config", "set", "validate_timeout", "30")) == "validate_timeout = 30.0\n"
    assert ok(local("config", "get", "validate_timeout")) == "30.0\n"
    assert ok(remote("config", "set", "validate_timeout", "--reset")) == (
        "validate_timeout = 60.0\n"
    )

    token = ok(remote("token", "create", "cli-tok", "--project", "cli-p", "--json"))
    assert (token["role"], token["project"], token["token"][:3]) == ("run", "cli-p", "wh_")
    assert "cli-tok" in [t["name"] for t in same("token", "list", "--json")]
    # The environment names the server and token as well as the options.
    proc = wasmhost_cli(
        "project",
        "list",
        "--json",
        env={"WASMHOST_SERVER": server.url, "WASMHOST_TOKEN": token["token"]},
    )
    assert proc.returncode == 0 and [p["name"] for p in json.loads(proc.stdout)] == ["cli-p"]
    assert ok(remote("token", "revoke", "cli-tok")) == "revoked token cli-tok\n"

    deleted = ok(remote("model", "delete", "cli-p/add@1", "--json"))
    assert [v["version"] for v in deleted] == [1]
    assert [v["version"] for v in ok(remote("model", "delete", "cli-p/add", "--json"))] == [2]
    assert ok(remote("project", "delete", "cli-p", "--json"))["name"] == "cli-p"
    assert "cli-p" not in [p["name"] for p in ok(local("project", "list", "--json"))]


def test_errors_and_exit_codes_remotely(cli, server, client, tmp_path):
    remote, local = cli
    client.create_project("cli-errs")
    _, runner = client.create_token("cli-runner", role="run", project="cli-errs")
    model = tmp_path / "add.onnx"
    model.write_bytes(add_model(2.0))
    try:
        for args, name in (
            (("project", "show", "nope"), "NotFound"),
            (("model", "show", "cli-errs/nope"), "NotFound"),
            (("project", "create", "cli-errs"), "AlreadyExists"),
            (("project", "create", "bad name!"), "InvalidName"),
            (("model", "show", "not-a-reference"), "InvalidName"),
            (("config", "get", "nope"), "InvalidArgument"),
            (("model", "upload", "cli-errs", "m", tmp_path / "missing.onnx"), "file"),
        ):
            line = failed(remote(*args), name)
            assert line == failed(local(*args), name), args
        bad = remote("project", "list", token="wh_not-a-token")
        failed(bad, "Unauthorized", "token")
        upload = ("model", "upload", "cli-errs", "m", model)
        failed(remote(*upload, token=runner), "Forbidden", "cli-runner", "deploy")
    finally:
        client.revoke_token("cli-runner")
        client.delete_project("cli-errs")
    gone = f"http://127.0.0.1:{free_port()}"
    proc = wasmhost_cli("--server", gone, "project", "list")
    assert proc.returncode == 1 and gone in proc.stderr and len(proc.stderr.splitlines()) == 1


def test_local_only_commands_are_refused(cli, server, tmp_path):
    _, local = cli
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((1, 4), np.float32))
    base = ("--server", server.url, "--token", server.admin)
    for args, why in (
        (("runtime", "add", "mine", x), "runtime add"),
        (("registry", "info"), "registry info"),
        (("registry", "check"), "registry check"),
        (("registry", "gc"), "registry gc"),
        (("serve", "--port", "1"), "serve"),
        (("inspect", "p/m"), "inspect loads p/m"),
        (("bench", "p/m", x), "bench loads p/m"),
        (("run", "p/m", x, "--memory", "1GiB"), "--memory"),
        (("run", "p/m", x, "--stats"), "--stats"),
        (("--registry", tmp_path, "project", "list"), "--server and --registry"),
    ):
        failed(local(*base, *args), "InvalidArgument", why)
