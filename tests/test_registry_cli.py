"""The registry's commands end to end: every command with --json, tables without it,
references wherever `run`, `inspect` and `bench` take a file, and each error class as one
line with its exit code."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import SQUEEZENET, assert_one_line_error, reference, wasmhost_cli
from registry_support import add_model

from wasmhost.cli import EXIT_CODES, main
from wasmhost.registry import catalog


@pytest.fixture
def wh(tmp_path, monkeypatch, capsys):
    """`wasmhost ARGS...` in this process on a fresh WASMHOST_HOME: (exit code, out, err)."""
    monkeypatch.setenv("WASMHOST_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("WASMHOST_REGISTRY", raising=False)
    monkeypatch.delenv("WASMHOST_BLOBS", raising=False)

    def run(*args):
        capsys.readouterr()
        with pytest.raises(SystemExit) as done:
            main([str(a) for a in args])
        out, err = capsys.readouterr()
        return done.value.code, out, err

    return run


def ok_json(result):
    code, out, err = result
    assert code == 0, err
    return json.loads(out)


def error(result, name, *words):
    code, _out, err = result
    assert code == EXIT_CODES[name], (code, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wasmhost: error: "), err
    for w in words:
        assert w in lines[0], lines[0]


def test_every_command_with_json(wh, tmp_path, rng):
    (runtime,) = ok_json(wh("runtime", "list", "--json"))
    assert runtime["name"] == "onnx"
    project = ok_json(wh("project", "create", "vision", "--memory", "256MiB", "--json"))
    assert project["limits"] == {"memory": 256 * 1024**2}
    assert [p["name"] for p in ok_json(wh("project", "list", "--json"))] == ["vision"]
    model = tmp_path / "add.onnx"
    model.write_bytes(add_model(2.0))
    first = ok_json(wh("model", "upload", "vision", "add", model, "--description", "x+2", "--json"))
    assert (first["version"], first["status"]) == (1, "ready")
    model.write_bytes(add_model(3.0))
    second = ok_json(wh("model", "upload", "vision", "add", model, "--json"))
    assert second["version"] == 2
    moved = ok_json(wh("model", "alias", "vision/add@1", "production", "--json"))
    assert moved["aliases"] == ["production"]
    (listed,) = ok_json(wh("model", "list", "vision", "--json"))
    assert (listed["latest_version"], listed["aliases"]) == (2, {"production": 1})
    assert ok_json(wh("model", "show", "vision/add@production", "--json"))["id"] == first["id"]
    assert ok_json(wh("model", "show", first["id"], "--json"))["version"] == 1
    assert [v["version"] for v in ok_json(wh("model", "versions", "vision/add", "--json"))] == [
        1,
        2,
    ]
    shown = ok_json(wh("project", "show", "vision", "--json"))
    assert [m["name"] for m in shown["model_list"]] == ["add"]

    # run takes references: the alias runs version 1 (x + 2), the name the newest (x + 3).
    x = rng.standard_normal((3, 4), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    for ref, k in (("vision/add@production", 2.0), ("vision/add", 3.0), (first["id"], 2.0)):
        for _ in range(2):
            doc = ok_json(wh("run", ref, tmp_path / "x.npy", "--json"))
            np.testing.assert_array_equal(
                np.array(doc["outputs"][0]["data"], np.float32),
                reference(add_model(k), {"x": x})[0],
            )
    assert ok_json(wh("inspect", "vision/add", "--json"))["inputs"][0]["name"] == "x"
    assert ok_json(wh("bench", "vision/add", "-n", "2", "--json", "--no-compare"))["wasmhost_ms"]

    out = tmp_path / "down.onnx"
    assert ok_json(wh("model", "download", "vision/add@1", "-o", out, "--json"))["size"] > 0
    assert out.read_bytes() == add_model(2.0)
    assert ok_json(wh("model", "alias", "vision/add", "production", "--remove", "--json"))
    deleted = ok_json(wh("model", "delete", "vision/add@1", "--json"))
    assert [v["version"] for v in deleted] == [1]
    assert ok_json(wh("registry", "check", "--json")) == {"problems": []}
    assert ok_json(wh("registry", "gc", "--json", "--grace", "0")) == {
        "blobs": 0,
        "rows": 0,
        "temporary": 0,
    }
    assert ok_json(wh("registry", "info", "--json"))["projects"] == 1
    assert ok_json(wh("project", "delete", "vision", "--json"))["name"] == "vision"
    assert ok_json(wh("project", "list", "--json")) == []


def test_project_limits_are_the_defaults_under_the_options(wh, tmp_path):
    wh("project", "create", "p", "--memory", "32MiB")
    big = tmp_path / "sq.onnx"
    big.write_bytes(SQUEEZENET.read_bytes())
    assert wh("model", "upload", "p", "sq", big)[0] == 0
    np.save(tmp_path / "img.npy", np.zeros((1, 3, 224, 224), np.float32))
    # 32 MiB holds squeezenet's working set (about 20 MiB); 16 MiB, the option, does not.
    assert wh("run", "p/sq", tmp_path / "img.npy")[0] == 0
    error(wh("run", "p/sq", tmp_path / "img.npy", "--memory", "16MiB"), "MemoryLimitExceeded")
    ok_json(wh("project", "set-limits", "p", "--memory", "16MiB", "--json"))
    error(wh("run", "p/sq", tmp_path / "img.npy"), "MemoryLimitExceeded")
    assert wh("run", "p/sq", tmp_path / "img.npy", "--memory", "64MiB")[0] == 0
    assert ok_json(wh("project", "set-limits", "p", "--reset", "--json"))["limits"] == {}


def test_tables_without_json(wh, tmp_path):
    wh("project", "create", "p")
    model = tmp_path / "m.onnx"
    model.write_bytes(add_model(1.0))
    code, out, _ = wh("model", "upload", "p", "m", model)
    assert code == 0 and "uploaded p/m@1" in out
    for args, words in [
        (("runtime", "list"), ["onnx", "tract"]),
        (("project", "list"), ["p", "onnx"]),
        (("project", "show", "p"), ["p", "m"]),
        (("model", "list", "p"), ["m"]),
        (("model", "show", "p/m"), ["p/m@1", "ready", "sha256"]),
        (("model", "versions", "p/m"), ["ready"]),
        (("catalog", "list"), ["catalog/iris-classifier"]),
        (("catalog", "show", "iris-classifier"), ["license", "preprocessing", "setosa"]),
        (("config", "list"), ["max_model_size", "10 MiB"]),
    ]:
        code, out, err = wh(*args)
        assert code == 0, err
        for w in words:
            assert w in out, (args, out)


def test_config_raises_the_upload_cap(wh, tmp_path):
    model = tmp_path / "sq.onnx"
    model.write_bytes(SQUEEZENET.read_bytes())  # 15 KiB
    wh("project", "create", "p")
    assert wh("config", "set", "max_model_size", "8KiB")[0] == 0
    assert wh("config", "get", "max_model_size")[1].strip() == "8 KiB"
    error(wh("model", "upload", "p", "sq", model), "InvalidModel", "max_model_size")
    assert wh("config", "set", "max_model_size", "--reset")[0] == 0
    assert wh("model", "upload", "p", "sq", model)[0] == 0
    error(wh("config", "set", "max_model_size", "lots"), "InvalidArgument")
    error(wh("config", "set", "colour", "red"), "InvalidArgument", "unknown setting")


def test_errors_are_one_line_with_their_exit_codes(wh, tmp_path):
    wh("project", "create", "p")
    model = tmp_path / "m.onnx"
    model.write_bytes(add_model(1.0))
    garbage = tmp_path / "g.onnx"
    garbage.write_bytes(b"no model here")
    error(wh("project", "create", "p"), "AlreadyExists", "exists")
    error(wh("project", "create", "a.b"), "InvalidName", "^[a-zA-Z0-9_-]+$")
    error(wh("project", "create", "catalog"), "InvalidName", "reserved")
    error(wh("project", "show", "nope"), "NotFound", "nope")
    error(wh("project", "create", "q", "--runtime", "pytorch"), "NotFound", "runtime")
    error(wh("model", "upload", "p", "m", garbage), "InvalidModel")
    error(wh("model", "upload", "nope", "m", model), "NotFound")
    error(wh("model", "upload", "p", "m.v2", model), "InvalidName", "must match")
    error(wh("model", "upload", "p", "m", tmp_path / "absent.onnx"), "file")
    error(wh("model", "show", "p/m"), "NotFound", "no model 'm'")
    error(wh("model", "show", "p/m@x.y"), "InvalidName")
    error(wh("model", "alias", "p/m", "production"), "NotFound")
    wh("model", "upload", "p", "m", model)
    error(wh("model", "alias", "p/m", "7"), "InvalidName", "number")
    error(wh("model", "show", "p/m@3"), "NotFound", "version 3")
    error(wh("run", "p/zzz", tmp_path / "x.npy"), "NotFound")
    error(wh("run", "catalog/nothing", tmp_path / "x.npy"), "NotFound", "iris-classifier")
    error(wh("model", "delete", "catalog/iris-classifier"), "NotFound", "read-only")
    error(wh("project", "create", "q", "--memory", "lots"), "InvalidArgument")
    # A missing file that is no reference stays a file error.
    error(wh("run", "missing.onnx", tmp_path / "x.npy"), "file")


def test_catalog_models_run_by_reference(wh, tmp_path):
    for entry in catalog.entries():
        inputs, expected = entry.reference_case()
        archive = tmp_path / f"{entry.name}.npz"
        np.savez(archive, **inputs)
        for _ in range(2):
            doc = ok_json(wh("run", entry.reference, archive, "--json"))
            for output in doc["outputs"]:
                np.testing.assert_allclose(
                    np.array(output["data"]), expected[output["name"]], rtol=1e-4, atol=1e-5
                )
        listed = ok_json(wh("catalog", "list", "--json"))
        assert entry.name in [e["name"] for e in listed]
        assert ok_json(wh("catalog", "show", entry.name, "--json"))["sha256"] == entry.sha256


def test_the_registry_option_and_a_child_process(tmp_path):
    """`--registry` names the registry; the installed command line, in a child process."""
    model = tmp_path / "m.onnx"
    model.write_bytes(add_model(1.0))
    where = tmp_path / "elsewhere"
    assert wasmhost_cli("--registry", where, "project", "create", "p").returncode == 0
    assert wasmhost_cli("--registry", where, "model", "upload", "p", "m", model).returncode == 0
    assert (where / "registry.db").exists()
    proc = wasmhost_cli("--registry", where, "model", "show", "p/nope")
    assert_one_line_error(proc, EXIT_CODES["NotFound"], "nope")


def test_service_limits_and_catalog_models_from_the_command_line(wh):
    made = ok_json(wh("project", "create", "p", "--concurrency", "3", "--queue", "0", "--json"))
    assert made["limits"] == {"concurrency": 3, "queue": 0}
    error(wh("project", "set-limits", "p", "--concurrency", "0"), "InvalidArgument", "concurrency")
    entry = catalog.entries()[0]
    added = ok_json(wh("model", "upload", "p", "mine", entry.reference, "--json"))
    assert (added["catalog"], added["sha256"]) == (entry.name, entry.sha256)
    error(wh("model", "upload", "p", "x", "catalog/no-such-model"), "NotFound")


def test_serve_without_its_extra_says_how_to_install_it(wh, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "wasmhost.serve.server", None)  # as if not installed
    error(wh("serve", "--port", "1"), "InvalidArgument", "pip install 'wasmhost[serve]'")
