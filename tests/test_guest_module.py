"""The committed guest module, checked through the raw ABI with plain wasmtime.

Nothing here goes through the wasmhost package: these tests pin down the guest
itself (docs/guest-abi.md), so that a host bug cannot hide a guest bug.
"""

from __future__ import annotations

import hashlib
import json
import struct
import subprocess
import sys

import msgpack
import numpy as np
import onnxruntime as ort
import pytest
import wasmtime
from conftest import LIGHT, ROOT

from wasmhost.runtime.engine import Engine, EngineConfig, module_path

WASM = ROOT / "wasm_modules" / "tract_onnx.wasm"
MANIFEST = ROOT / "wasm_modules" / "tract_onnx.json"

ABI_EXPORTS = {
    "memory",
    "_initialize",
    "wh_abi_version",
    "wh_alloc",
    "wh_free",
    "wh_load",
    "wh_run",
    "wh_result_ptr",
    "wh_result_len",
    "wh_result_cell",
    "wh_abi_minor",
}


# The guest compiled as sessions with a deadline (the default) compile it, so that this
# file reuses their cache entry instead of compiling 18 MB once more; the guest is still
# driven by hand below, not through wasmhost's isolate.
_COMPILED = Engine.get(EngineConfig(fuel=False, epoch=True))
ENGINE = _COMPILED.wasmtime


@pytest.fixture(scope="module")
def module() -> wasmtime.Module:
    # The module the engine compiled is the checkout's, byte for byte.
    assert module_path().read_bytes() == WASM.read_bytes()
    return _COMPILED.module


class RawGuest:
    """The guest driven by hand: alloc, write, call, read the response."""

    def __init__(self, module: wasmtime.Module) -> None:
        self.store = wasmtime.Store(ENGINE)
        self.store.set_epoch_deadline(1 << 62)  # the engine checks epochs: never due here
        self.store.set_wasi(wasmtime.WasiConfig())
        linker = wasmtime.Linker(ENGINE)
        linker.define_wasi()
        self.instance = linker.instantiate(self.store, module)
        self.exports = self.instance.exports(self.store)
        self.memory: wasmtime.Memory = self.exports["memory"]
        self.exports["_initialize"](self.store)

    def call(self, fn: str, request: dict) -> tuple[int, dict]:
        payload = msgpack.packb(request, use_bin_type=True)
        ptr = self.exports["wh_alloc"](self.store, len(payload))
        assert ptr != 0
        self.memory.write(self.store, payload, ptr)
        status = self.exports[fn](self.store, ptr, len(payload))
        self.exports["wh_free"](self.store, ptr, len(payload))
        rptr = self.exports["wh_result_ptr"](self.store)
        rlen = self.exports["wh_result_len"](self.store)
        # The result cell names the same response.
        cell = self.exports["wh_result_cell"](self.store)
        assert struct.unpack("<II", self.memory.read(self.store, cell, cell + 8)) == (rptr, rlen)
        raw = self.memory.read(self.store, rptr, rptr + rlen)
        return status, msgpack.unpackb(raw, raw=False, ext_hook=self._guest_bytes)

    def _guest_bytes(self, code: int, data: bytes) -> bytes:
        """An output payload the guest left in its memory (ext type 1): read it there."""
        assert code == 1 and len(data) == 8
        address, length = struct.unpack("<II", data)
        return self.memory.read(self.store, address, address + length)


def tensor(name: str, a: np.ndarray) -> dict:
    a = np.asarray(a, order="C")  # ascontiguousarray would turn 0-d into 1-d
    return {"name": name, "dtype": a.dtype.name, "shape": list(a.shape), "data": a.tobytes()}


def array(t: dict) -> np.ndarray:
    return np.frombuffer(t["data"], dtype=t["dtype"]).reshape(t["shape"])


def test_module_matches_manifest():
    manifest = json.loads(MANIFEST.read_text())
    assert hashlib.sha256(WASM.read_bytes()).hexdigest() == manifest["sha256"]
    assert manifest["abi_version"] == 1
    assert manifest["tract_version"].startswith("0.23.")


def test_sources_match_manifest():
    check = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "wasm_manifest.py"), "check"],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr


def test_exports_and_imports_are_abi_v1(module):
    assert {e.name for e in module.exports} == ABI_EXPORTS
    assert {i.module for i in module.imports} == {"wasi_snapshot_preview1"}


def test_abi_version(module):
    guest = RawGuest(module)
    assert guest.exports["wh_abi_version"](guest.store) == 1
    # Revision 1 of ABI 1: string tensors.
    assert guest.exports["wh_abi_minor"](guest.store) == 1


def test_squeezenet_matches_onnxruntime(module):
    path = LIGHT / "light_squeezenet.onnx"
    guest = RawGuest(module)
    status, resp = guest.call("wh_load", {"model": path.read_bytes(), "options": {}})
    assert status == 0, resp
    ref = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i["name"] for i in resp["inputs"]] == [i.name for i in ref.get_inputs()]
    assert [o["name"] for o in resp["outputs"]] == [o.name for o in ref.get_outputs()]
    assert resp["inputs"][0]["dtype"] == "float32"
    assert resp["inputs"][0]["shape"] == ref.get_inputs()[0].shape
    assert resp["meta"]["ops"]["Conv"] > 0

    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224), dtype=np.float32)
    name = resp["inputs"][0]["name"]
    status, out = guest.call("wh_run", {"inputs": [tensor(name, x)], "outputs": None})
    assert status == 0, out
    (expected,) = ref.run(None, {name: x})
    got = array(out["outputs"][0])
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_errors_are_responses_not_traps(module):
    guest = RawGuest(module)
    status, resp = guest.call("wh_run", {"inputs": [], "outputs": None})
    assert status != 0 and resp["error"]["code"] == "not_loaded"
    status, resp = guest.call("wh_load", {"model": b"\x00garbage\xff" * 3})
    assert status != 0 and resp["error"]["code"] == "invalid_model"
    status, resp = guest.call("wh_load", {"nothing": 1})
    assert status != 0 and resp["error"]["code"] == "invalid_request"
