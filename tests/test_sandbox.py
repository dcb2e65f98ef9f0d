"""The sandbox's guarantees: no capabilities, bounded time and memory, contained traps."""

from __future__ import annotations

import resource
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
import wasmtime
from conftest import LIGHT, f32, make_model, vi
from guests import guest
from onnx import TensorProto, helper, numpy_helper

import wasmhost

# Each probe calls one WASI function in _initialize and traps if it was granted
# anything. Memory 0..64 is scratch space for the results.
PROBES = {
    # The first preopened directory would be fd 3: there must be none.
    "files": "(if (i32.eqz (call $fd_prestat_get (i32.const 3) (i32.const 0))) (then unreachable))",
    "environment": """(drop (call $environ_sizes_get (i32.const 0) (i32.const 4)))
        (if (i32.ne (i32.load (i32.const 0)) (i32.const 0)) (then unreachable))""",
    "arguments": """(drop (call $args_sizes_get (i32.const 0) (i32.const 4)))
        (if (i32.ne (i32.load (i32.const 0)) (i32.const 0)) (then unreachable))""",
    # No socket is handed over: accepting on fds 3..9 must fail.
    "sockets": """(local $fd i32) (local.set $fd (i32.const 3))
        (loop $l
          (if (i32.eqz (call $sock_accept (local.get $fd) (i32.const 0) (i32.const 8)))
            (then unreachable))
          (local.set $fd (i32.add (local.get $fd) (i32.const 1)))
          (br_if $l (i32.lt_u (local.get $fd) (i32.const 10))))""",
}
IMPORTS = "\n".join(
    f'(import "wasi_snapshot_preview1" "{name}" (func ${name} (param {params}) (result i32)))'
    for name, params in [
        ("fd_prestat_get", "i32 i32"),
        ("environ_sizes_get", "i32 i32"),
        ("args_sizes_get", "i32 i32"),
        ("sock_accept", "i32 i32 i32"),
    ]
)


def probe_guest(probe: str) -> str:
    wat = guest(initialize=PROBES[probe])
    return wat.replace("(module", "(module " + IMPORTS, 1)


@pytest.mark.parametrize("probe", sorted(PROBES))
def test_guest_is_granted_nothing(use_guest, probe):
    use_guest(probe_guest(probe))  # loads: the probe found nothing


@pytest.mark.parametrize("probe", ["environment", "arguments", "files"])
def test_probes_would_see_a_capability(tmp_path, probe):
    """The probes can fail: with the capability granted, the same guest traps."""
    engine = wasmtime.Engine()
    module = wasmtime.Module(engine, probe_guest(probe))
    wasi = wasmtime.WasiConfig()
    if probe == "environment":
        wasi.env = [("SECRET", "1")]
    elif probe == "arguments":
        wasi.argv = ["guest", "--flag"]
    else:
        wasi.preopen_dir(str(tmp_path), "/data")
    store = wasmtime.Store(engine)
    store.set_wasi(wasi)
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    instance = linker.instantiate(store, module)
    with pytest.raises(wasmtime.Trap):
        instance.exports(store)["_initialize"](store)


# --- time ------------------------------------------------------------------------------


def test_timeout_stops_a_heavy_model_promptly():
    # Few nodes, so that loading (also under the timeout) is cheap even on a busy machine;
    # each 2048x2048 MatMul takes about a second here.
    n = 2048
    nodes = [
        helper.make_node("MatMul", ["x" if i == 0 else f"m{i}", "x"], [f"m{i + 1}"])
        for i in range(20)
    ]
    model = make_model(nodes, [f32("x", [n, n])], [f32("m20", [n, n])])
    sess = wasmhost.InferenceSession(model, limits=wasmhost.Limits(timeout=0.3))
    x = np.full((n, n), 1e-4, np.float32)
    for _ in range(2):
        start = time.monotonic()
        with pytest.raises(wasmhost.TimeoutExceeded):
            sess.run(None, {"x": x})
        # Not a speed test: a generous bound that a deadline which did not fire would
        # blow by far (the whole run takes tens of seconds here).
        assert time.monotonic() - start < 0.3 + 2.0


# --- memory ----------------------------------------------------------------------------


def _huge_dims_no_data() -> onnx.TensorProto:
    """An initializer claiming 16 G floats with one value."""
    init = onnx.TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[4096, 4096, 256])
    init.float_data.extend([1.0])
    return init


def _raw_data_shorter_than_dims() -> onnx.TensorProto:
    init = numpy_helper.from_array(np.zeros(4, np.float32), "w")
    init.dims[:] = [1 << 20, 1 << 20]
    return init


@pytest.mark.parametrize("initializer", [_huge_dims_no_data, _raw_data_shorter_than_dims])
def test_initializers_that_lie_about_their_size(initializer):
    """An error or the memory cap at load, never an allocation on the host."""
    model = make_model(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        [f32("x", [1])],
        [f32("y", None)],
        [initializer()],
        check=False,
    )
    with pytest.raises((wasmhost.InvalidModel, wasmhost.MemoryLimitExceeded)):
        wasmhost.InferenceSession(model, limits=wasmhost.Limits(memory="64MiB"))


def nested_ifs(depth: int) -> bytes:
    body = helper.make_graph([helper.make_node("Relu", ["x"], ["r0"])], "b0", [], [f32("r0", None)])
    for i in range(1, depth):
        node = helper.make_node("If", ["c"], [f"r{i}"], then_branch=body, else_branch=body)
        body = helper.make_graph([node], f"b{i}", [], [f32(f"r{i}", None)])
    top = helper.make_node("If", ["c"], ["y"], then_branch=body, else_branch=body)
    return make_model(
        [top], [f32("x", [2]), vi("c", TensorProto.BOOL, [])], [f32("y", [2])], check=False
    )


def test_deeply_nested_graphs_are_contained():
    sess = wasmhost.InferenceSession(nested_ifs(6))
    (y,) = sess.run(None, {"x": np.array([-1, 2], np.float32), "c": np.array(True)})
    np.testing.assert_array_equal(y, [0, 2])
    # Each level doubles the subgraphs tract parses: 2^14 of them (a 1.7 MB model)
    # exhaust a 64 MiB cap. (Deeper, and the model itself gets too big to build here.)
    with pytest.raises(wasmhost.MemoryLimitExceeded):
        wasmhost.InferenceSession(nested_ifs(14), limits=wasmhost.Limits(memory="64MiB"))


def test_traps_do_not_leak():
    """Many trap-and-replace cycles: the process's peak RSS stays flat."""
    sess = wasmhost.InferenceSession(
        make_model(
            [helper.make_node("Expand", ["x", "shape"], ["y"])],
            [f32("x", [1]), vi("shape", TensorProto.INT64, [1])],
            [f32("y", ["n"])],
        ),
        limits=wasmhost.Limits(memory="64MiB"),
    )
    one = np.ones(1, np.float32)
    huge = {"x": one, "shape": np.array([1 << 28], np.int64)}

    def cycles(n: int) -> None:
        for _ in range(n):
            with pytest.raises(wasmhost.MemoryLimitExceeded):
                sess.run(None, huge)
            sess.run(None, {"x": one, "shape": np.array([4], np.int64)})

    cycles(30)  # warm up: allocator pools, caches
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cycles(150)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # ru_maxrss is in KiB; each isolate touches tens of MiB, so a leak of isolates would
    # add gigabytes over 150 cycles.
    assert after - before < 200 * 1024, (before, after)


def test_a_memory_fault_inside_tract_is_contained():
    """Found by `wasmhost fuzz` (densenet121 with rewired nodes): tract's type inference
    corrupts its heap and frees a bad pointer. Native tract segfaults on this model; in the
    sandbox it is an out-of-bounds trap, named, and the process goes on."""
    model = Path(__file__).parent / "data" / "fuzz_densenet_heap_fault.onnx"
    with pytest.raises(wasmhost.GuestCrash, match="out of bounds memory access"):
        wasmhost.InferenceSession(model)
    sess = wasmhost.InferenceSession(LIGHT / "light_squeezenet.onnx")
    (y,) = sess.run(None, {"data_0": np.zeros((1, 3, 224, 224), np.float32)})
    assert y.shape == (1, 1000, 1, 1)
