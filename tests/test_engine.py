"""The engine's on-disk cache of the compiled guest: the key, hit and miss, damaged and
refused entries (recompiled, never loaded), concurrent writers, where the cache lives.

The cache logic does not depend on the guest: every test but one runs a small WAT guest
(tests/guests.py) that compiles in milliseconds, and counts what wasmtime was asked to do
(compile the module, deserialize an entry). One test compiles the real 18 MB guest (10 to
30 s) and loads it back from the cache.
"""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import msgpack
import numpy as np
import pytest
import wasmtime
from conftest import f32, make_model
from guests import RUN_OK, guest
from onnx import helper

import wasmhost
from wasmhost.runtime.engine import Engine, EngineConfig, cache_dir, module_path
from wasmhost.runtime.isolate import Isolate

NEG = make_model([helper.make_node("Neg", ["x"], ["y"])], [f32("x", [2])], [f32("y", [2])])
TAGS = {
    EngineConfig(): "epoch",
    EngineConfig(fuel=True): "epoch-fuel",
    EngineConfig(epoch=False): "noepoch",
    EngineConfig(fuel=True, epoch=False): "noepoch-fuel",
}


@dataclass
class Calls:
    """What the engine asked wasmtime for."""

    compiled: int = 0  # wasmtime.Module(engine, wasm)
    loaded: int = 0  # wasmtime.Module.deserialize(engine, entry), accepted
    refused: int = 0  # the same, refused by wasmtime


@pytest.fixture
def calls(monkeypatch) -> Calls:
    """Counts the compilations and deserializations of the test (any thread)."""
    counts = Calls()
    lock = threading.Lock()

    class Counting(wasmtime.Module):
        def __init__(self, engine: wasmtime.Engine, wasm: bytes) -> None:
            super().__init__(engine, wasm)
            with lock:
                counts.compiled += 1

        @classmethod
        def deserialize(cls, engine: wasmtime.Engine, encoded: bytes) -> wasmtime.Module:
            try:
                module = super().deserialize(engine, encoded)
            except wasmtime.WasmtimeError:
                with lock:
                    counts.refused += 1
                raise
            with lock:
                counts.loaded += 1
            return module

    monkeypatch.setattr(wasmtime, "Module", Counting)
    return counts


def answering(value: float) -> bytes:
    """A small ABI v1 guest whose every run answers y = [value, -value]."""
    y = np.array([value, -value], np.float32)
    return wasmtime.wat2wasm(
        guest(run=msgpack.packb({"outputs": [{**RUN_OK["outputs"][0], "data": y.tobytes()}]}))
    )


@pytest.fixture
def small(tmp_path, monkeypatch) -> Path:
    """The guest is a small one answering [1, -1]; the cache an empty directory."""
    path = tmp_path / "guest.wasm"
    path.write_bytes(answering(1))
    monkeypatch.setenv("WASMHOST_MODULE", str(path))
    monkeypatch.setenv("WASMHOST_CACHE_DIR", str(tmp_path / "cache"))
    return path


def new_engine() -> Engine:
    """A new engine (not the process's shared one) for `EngineConfig()`: cache hit or miss."""
    return Engine(EngineConfig(), module_path())


def answer(engine: Engine) -> list[float]:
    """What the guest compiled or loaded for `engine` answers."""
    isolate = Isolate(b"any model", wasmhost.Limits(), engine=engine)
    try:
        (y,) = isolate.run([("x", np.ones(2, np.float32))], ["y"])
    finally:
        isolate.close()
    return y.tolist()


def entry_name(wasm: bytes, tag: str) -> str:
    digest = hashlib.sha256(wasm).hexdigest()
    return f"{digest[:32]}-wasmtime{metadata.version('wasmtime')}-{tag}.cwasm"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_miss_compiles_and_stores_an_entry_that_a_hit_loads(small, calls):
    first = new_engine()
    assert not first.cache_hit
    assert calls == Calls(compiled=1)
    entry = cache_dir() / entry_name(small.read_bytes(), "epoch")
    digest = entry.with_suffix(".sha256")
    assert sorted(cache_dir().iterdir()) == [entry, digest]  # and no temporary file left
    assert digest.read_text() == sha256(entry)
    second = new_engine()
    assert second.cache_hit
    assert calls == Calls(compiled=1, loaded=1)
    assert answer(second) == [1, -1]


def test_each_engine_config_has_an_entry_of_its_own(small, calls):
    """Fuel and epoch checks change the compiled code: a fuel entry is never loaded by an
    engine without fuel, and so on."""
    for config in TAGS:
        assert not Engine(config, module_path()).cache_hit
    assert sorted(p.name for p in cache_dir().glob("*.cwasm")) == sorted(
        entry_name(small.read_bytes(), tag) for tag in TAGS.values()
    )
    for config in TAGS:
        assert Engine(config, module_path()).cache_hit
    assert calls == Calls(compiled=4, loaded=4)


def test_a_changed_module_is_compiled_never_the_old_entry_loaded(small, calls):
    assert answer(new_engine()) == [1, -1]
    small.write_bytes(answering(2))  # the same path, another module
    changed = new_engine()
    assert not changed.cache_hit
    assert answer(changed) == [2, -2]
    assert calls == Calls(compiled=2)
    assert len(list(cache_dir().glob("*.cwasm"))) == 2


def _flip(entry: Path, digest: Path) -> None:
    data = bytearray(entry.read_bytes())
    data[len(data) // 2] ^= 0xFF  # wasmtime itself loads this (it checks headers, not code)
    entry.write_bytes(bytes(data))


DAMAGES = {
    "flip": _flip,
    "truncate": lambda entry, digest: entry.write_bytes(entry.read_bytes()[:1000]),
    "empty": lambda entry, digest: entry.write_bytes(b""),
    "wrong-digest": lambda entry, digest: digest.write_text("0" * 64),
    "no-digest": lambda entry, digest: digest.unlink(),
}


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_entry_is_recompiled_never_loaded(small, calls, damage):
    new_engine()
    (entry,) = cache_dir().glob("*.cwasm")
    digest = entry.with_suffix(".sha256")
    whole = entry.read_bytes()
    DAMAGES[damage](entry, digest)
    recompiled = new_engine()
    assert not recompiled.cache_hit
    assert calls == Calls(compiled=2)  # the damaged entry never even reached wasmtime
    assert answer(recompiled) == [1, -1]
    # The entry is whole again (compilation is deterministic), and loads.
    assert entry.read_bytes() == whole
    assert digest.read_text() == hashlib.sha256(whole).hexdigest()
    assert new_engine().cache_hit
    assert calls == Calls(compiled=2, loaded=1)


@pytest.mark.parametrize("stale", ["other-config", "not-an-artifact"])
def test_an_entry_wasmtime_refuses_is_recompiled(small, calls, stale):
    """An entry whose digest matches but that wasmtime refuses: one compiled with fuel under
    the key of an engine without (what an entry of another wasmtime or configuration is),
    or bytes that are no compiled module at all."""
    new_engine()
    Engine(EngineConfig(fuel=True), module_path())
    entry = cache_dir() / entry_name(small.read_bytes(), "epoch")
    digest = entry.with_suffix(".sha256")
    whole = entry.read_bytes()
    if stale == "other-config":
        data = (cache_dir() / entry_name(small.read_bytes(), "epoch-fuel")).read_bytes()
    else:
        data = b"\x7fELF, or so it says" * 100
    entry.write_bytes(data)
    digest.write_text(hashlib.sha256(data).hexdigest())
    recompiled = new_engine()
    assert not recompiled.cache_hit
    assert calls == Calls(compiled=3, refused=1)
    assert answer(recompiled) == [1, -1]
    assert entry.read_bytes() == whole
    assert new_engine().cache_hit


def test_concurrent_writers_and_readers(small, calls):
    """Engines created at once by several threads on a cold cache: some compile and write
    the entry while others read it. Each works, nothing half-written reaches wasmtime, and
    what stays is one whole entry, no temporary file."""
    threads, rounds = 6, 5
    start = threading.Barrier(threads, timeout=60)

    def create(_) -> list[float]:
        start.wait()
        return answer(new_engine())

    with ThreadPoolExecutor(threads) as pool:
        for _ in range(rounds):
            for f in cache_dir().glob("*"):
                f.unlink()
            assert list(pool.map(create, range(threads))) == [[1, -1]] * threads
    entry = cache_dir() / entry_name(small.read_bytes(), "epoch")
    assert sorted(cache_dir().iterdir()) == [entry, entry.with_suffix(".sha256")]
    assert entry.with_suffix(".sha256").read_text() == sha256(entry)
    assert calls.refused == 0
    assert calls.compiled >= rounds
    assert calls.compiled + calls.loaded == threads * rounds
    assert new_engine().cache_hit


def test_the_cache_is_in_WASMHOST_CACHE_DIR_else_the_user_cache_dir(
    small, tmp_path, monkeypatch, calls
):
    assert cache_dir() == tmp_path / "cache"
    new_engine()
    assert len(list((tmp_path / "cache").glob("*.cwasm"))) == 1
    monkeypatch.delenv("WASMHOST_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))  # platformdirs' on Linux
    assert cache_dir() == tmp_path / "xdg" / "wasmhost"
    assert not new_engine().cache_hit  # another cache, empty
    assert new_engine().cache_hit
    assert len(list((tmp_path / "xdg" / "wasmhost").glob("*.cwasm"))) == 1
    assert calls == Calls(compiled=2, loaded=1)


def test_an_unwritable_cache_is_only_slower(small, tmp_path, monkeypatch, calls):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("WASMHOST_CACHE_DIR", str(blocker / "cache"))
    for _ in range(2):
        uncached = new_engine()
        assert not uncached.cache_hit
        assert answer(uncached) == [1, -1]
    assert calls == Calls(compiled=2)
    assert blocker.read_text() == "not a directory"


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


def test_the_real_guest_is_compiled_then_loaded_from_the_cache(tmp_path, monkeypatch, calls):
    """The one test of this file on the real guest, compiled (seconds) into an empty cache."""
    monkeypatch.delenv("WASMHOST_MODULE", raising=False)
    shipped = module_path()
    assert shipped.name == "tract_onnx.wasm"
    # A copy, so that a rebuild of the checkout's guest meanwhile does not change the key.
    real = tmp_path / shipped.name
    real.write_bytes(shipped.read_bytes())
    assert len(real.read_bytes()) > 10 * 2**20
    monkeypatch.setenv("WASMHOST_MODULE", str(real))
    monkeypatch.setenv("WASMHOST_CACHE_DIR", str(tmp_path / "cache"))
    assert not new_engine().cache_hit
    assert calls == Calls(compiled=1)
    entry = cache_dir() / entry_name(real.read_bytes(), "epoch")
    assert entry.with_suffix(".sha256").read_text() == sha256(entry)
    loaded = new_engine()
    assert loaded.cache_hit
    assert calls == Calls(compiled=1, loaded=1)
    isolate = Isolate(NEG, wasmhost.Limits(), engine=loaded)
    try:
        (y,) = isolate.run([("x", np.array([1, -2], np.float32))], ["y"])
    finally:
        isolate.close()
    np.testing.assert_array_equal(y, [-1, 2])
