"""Per-run isolation's figures (docs/benchmarks.md, "Snapshots and per-run isolation").

    python scripts/bench_snapshot.py --rounds 40 --spawns 2000

Measures, on the onnx package's light models:
- spawning an isolate from a snapshot (new Store, instance, closed): p50 / p99, and
  spawn plus one guest call;
- squeezenet, one run: per-run isolation (spawn, run, close) against a pooled session's
  run, interleaved rounds; the first run's page-touch cost (a spawned isolate's run
  against a warm pooled isolate's, the run alone);
- RSS with 100 spawned isolates alive at once, idle and after one run each;
- building a snapshot per model: capture (load, read memory, write the module), compile,
  and loading it from the cache, in a fresh cache directory (so that the guest and its
  instrumented build are compiled too, reported apart).
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3g}"


def table(header: list[str], rows: list[list[str]]) -> None:
    """A markdown table: the first column left-aligned, the others right."""
    print("| " + " | ".join(header) + " |")
    print("|---|" + "---:|" * (len(header) - 1))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=40, help="squeezenet rounds")
    parser.add_argument("--spawns", type=int, default=2000, help="spawns timed")
    parser.add_argument(
        "--models",
        default="squeezenet,shufflenet,inception_v1,resnet50",
        help="light models to build snapshots of (fresh cache)",
    )
    args = parser.parse_args(argv)
    # A fresh cache: every compile below is a real one.
    os.environ["WASMHOST_CACHE_DIR"] = tempfile.mkdtemp(prefix="wasmhost-bench-snapshot-")

    from importlib import metadata

    import wasmhost
    from wasmhost.runtime import snapshot
    from wasmhost.runtime.engine import Engine, EngineConfig

    limits = wasmhost.Limits()
    print(f"python {sys.version.split()[0]}, wasmtime {metadata.version('wasmtime')}")
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}\n")

    # --- building snapshots ------------------------------------------------------------
    t = time.perf_counter()
    Engine.get(EngineConfig())
    guest_compile = time.perf_counter() - t
    engine = Engine.get(EngineConfig())
    t = time.perf_counter()  # the first capture compiles the instrumented guest (once per guest)
    snapshot.capture(engine.path, (LIGHT / "light_squeezenet.onnx").read_bytes(), limits)
    instrumented = time.perf_counter() - t
    cache = Path(os.environ["WASMHOST_CACHE_DIR"])
    rows = []
    for name in args.models.split(","):
        model = (LIGHT / f"light_{name}.onnx").read_bytes()
        t = time.perf_counter()
        captured = snapshot.capture(engine.path, model, limits)
        capture = time.perf_counter() - t
        t = time.perf_counter()
        snap = snapshot.get(model, limits)  # captures again, compiles, caches
        build = time.perf_counter() - t
        t = time.perf_counter()
        hit = snapshot.get(model, limits)
        cached = time.perf_counter() - t
        assert not snap.cache_hit and hit is not None and hit.cache_hit
        size = sum(p.stat().st_size for p in cache.glob("snapshot-*"))
        for p in cache.glob("snapshot-*"):
            p.unlink()  # one entry at a time
        del snap, hit
        gc.collect()
        mib = 2**20
        rows.append(
            [
                name,
                f"{len(model) / 1024:.0f} KiB",
                f"{captured.memory / mib:.0f} MiB",
                f"{captured.image / mib:.1f} MiB",
                f"{capture:.2f} s",
                f"{build - capture:.1f} s",
                f"{cached * 1e3:.0f} ms",
                f"{size / mib:.0f} MiB",
            ]
        )
    print(f"guest compiled: {guest_compile:.1f} s")
    print(f"first capture, compiling the instrumented guest: {instrumented:.1f} s\n")
    header = ["model", "file", "snapshot memory", "image", "capture", "compile + cache"]
    table([*header, "load from cache", "cache entry"], rows)

    # --- spawning ---------------------------------------------------------------------
    model = (LIGHT / "light_squeezenet.onnx").read_bytes()
    per_run = wasmhost.InferenceSession(model, isolation="per-run", pool_size=1)
    pooled = wasmhost.InferenceSession(model, pool_size=1)
    snap = per_run.snapshot
    for _ in range(50):
        snap.spawn(limits).close()
    spawn, spawn_call = [], []
    for _ in range(args.spawns):
        t = time.perf_counter()
        iso = snap.spawn(limits)
        spawn.append(time.perf_counter() - t)
        iso.close()
    for _ in range(args.spawns):
        t = time.perf_counter()
        iso = snap.spawn(limits)
        iso._fn["wh_abi_version"]()
        spawn_call.append(time.perf_counter() - t)
        iso.close()
    table(
        ["spawn (squeezenet's snapshot, 18 MiB)", "p50", "p99", "max"],
        [
            [label, *(f"{v * 1e6:.0f} µs" for v in (pct(xs, 50), pct(xs, 99), max(xs)))]
            for label, xs in (("spawn + close", spawn), ("spawn + one guest call", spawn_call))
        ],
    )

    # --- squeezenet, per run against pooled ----------------------------------------------
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224), dtype=np.float32)
    feeds = {"data_0": x}
    names = [o.name for o in per_run.get_outputs()]
    for _ in range(3):
        per_run.run(None, feeds)
        pooled.run(None, feeds)
    samples: dict[str, list[float]] = {"pooled": [], "per-run": [], "first run": [], "warm run": []}
    # An isolate of a pooled session of its own, for the run alone (no pool in between).
    warm_session = wasmhost.InferenceSession(model, pool_size=1)
    warm = warm_session._pool.acquire()
    for _ in range(3):
        warm.run([("data_0", x)], names)
    for i in range(args.rounds):
        order = ["pooled", "per-run", "parts"] if i % 2 else ["parts", "per-run", "pooled"]
        for what in order:
            if what == "pooled":
                t = time.perf_counter()
                pooled.run(None, feeds)
                samples["pooled"].append(time.perf_counter() - t)
            elif what == "per-run":
                t = time.perf_counter()
                per_run.run(None, feeds)
                samples["per-run"].append(time.perf_counter() - t)
            else:
                iso = snap.spawn(limits)
                t = time.perf_counter()
                iso.run([("data_0", x)], names)
                samples["first run"].append(time.perf_counter() - t)
                iso.close()
                t = time.perf_counter()
                warm.run([("data_0", x)], names)
                samples["warm run"].append(time.perf_counter() - t)
    warm_session._pool.release(warm)
    warm_session.close()
    med = {k: statistics.median(v) for k, v in samples.items()}
    table(
        [f"squeezenet, {args.rounds} interleaved rounds", "median", "p95"],
        [
            [label, f"{ms(med[key])} ms", f"{ms(pct(samples[key], 95))} ms"]
            for label, key in (
                ("pooled: `run`", "pooled"),
                ("per-run: `run` (spawn, run, close)", "per-run"),
                ("the run alone, in a freshly spawned isolate", "first run"),
                ("the run alone, in a warm pooled isolate", "warm run"),
            )
        ],
    )
    print(
        f"\nper-run / pooled: {med['per-run'] / med['pooled']:.3f}; "
        f"first-run page-touch cost (fresh - warm run): {ms(med['first run'] - med['warm run'])} ms"
    )

    # --- 100 spawned isolates at once ---------------------------------------------------
    gc.collect()
    base = rss_mib()
    isolates = [snap.spawn(limits) for _ in range(100)]
    idle = rss_mib()
    for iso in isolates:
        iso.run([("data_0", x)], names)
    ran = rss_mib()
    for iso in isolates:
        iso.close()
    gc.collect()
    after = rss_mib()
    table(
        ["100 spawned squeezenet isolates alive at once", "RSS", "per isolate"],
        [
            ["before", f"{base:.0f} MiB", ""],
            ["spawned, idle", f"{idle:.0f} MiB", f"{(idle - base) / 100 * 1024:.0f} KiB"],
            ["after one run each", f"{ran:.0f} MiB", f"{(ran - base) / 100:.1f} MiB"],
            ["all closed", f"{after:.0f} MiB", ""],
        ],
    )
    print(f"\nload average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
