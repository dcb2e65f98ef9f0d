"""The engine's on-disk cache of the compiled guest: hit, miss, corruption."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import f32, make_model
from onnx import helper

import wasmhost
from wasmhost.runtime.engine import Engine, EngineConfig, module_path
from wasmhost.runtime.isolate import Isolate

MODEL = make_model([helper.make_node("Neg", ["x"], ["y"])], [f32("x", [2])], [f32("y", [2])])


def works(engine: Engine) -> None:
    isolate = Isolate(MODEL, wasmhost.Limits(), engine=engine)
    (y,) = isolate.run([("x", np.array([1, -2], np.float32))], ["y"])
    np.testing.assert_array_equal(y, [-1, 2])


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("WASMHOST_CACHE_DIR", str(tmp_path))
    return tmp_path


@pytest.fixture(scope="module")
def warm_entry(tmp_path_factory) -> list:
    """One compile for the module's tests (each takes seconds): the entry's files."""
    directory = tmp_path_factory.mktemp("warm")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WASMHOST_CACHE_DIR", str(directory))
        Engine(EngineConfig(), module_path())
    return sorted(directory.iterdir())


def test_cache_miss_then_hit(cache):
    first = Engine(EngineConfig(), module_path())
    assert not first.cache_hit
    (entry,) = cache.glob("*.cwasm")
    assert first.sha256[:32] in entry.name
    second = Engine(EngineConfig(), module_path())
    assert second.cache_hit
    works(second)
    # Fuel changes the compiled code: another entry.
    assert not Engine(EngineConfig(fuel=True), module_path()).cache_hit
    assert len(list(cache.glob("*.cwasm"))) == 2


@pytest.mark.parametrize("damage", ["flip", "truncate", "digest"])
def test_damaged_entry_is_recompiled(cache, warm_entry, damage):
    for f in warm_entry:
        (cache / f.name).write_bytes(f.read_bytes())
    assert Engine(EngineConfig(), module_path()).cache_hit
    (entry,) = cache.glob("*.cwasm")
    digest = entry.with_suffix(".sha256")
    data = bytearray(entry.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0xFF
        entry.write_bytes(bytes(data))
    elif damage == "truncate":
        entry.write_bytes(bytes(data[: len(data) // 3]))
    else:
        digest.write_text("0" * 64)
    engine = Engine(EngineConfig(), module_path())
    assert not engine.cache_hit
    works(engine)
    assert Engine(EngineConfig(), module_path()).cache_hit  # and the entry is whole again


def test_unwritable_cache_is_only_slower(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("WASMHOST_CACHE_DIR", str(blocker / "cache"))
    works(Engine(EngineConfig(), module_path()))


def test_missing_module_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("WASMHOST_MODULE", str(tmp_path / "absent.wasm"))
    with pytest.raises(wasmhost.InvalidArgument, match="cannot read the guest module"):
        Engine.get()
    bad = tmp_path / "bad.wasm"
    bad.write_bytes(b"\0asm garbage")
    monkeypatch.setenv("WASMHOST_MODULE", str(bad))
    monkeypatch.setenv("WASMHOST_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(wasmhost.GuestProtocolError, match="not valid"):
        Engine.get()
