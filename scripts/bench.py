#!/usr/bin/env python3
"""Latency of wasmhost next to native tract, onnxruntime (1 thread) and onnxruntime-web.

    python scripts/bench.py --quick
    python scripts/bench.py --docs docs/benchmarks.md --chart docs/benchmarks.png

One process, one engine at a time: each model is loaded in every engine, warmed up, then
timed in rounds, each round running every engine once in a rotating order. onnxruntime-web
(npm, wasm backend, one thread) runs in a long-lived Node child (scripts/ortweb/runner.mjs)
fed over a pipe and timed inside Node, so the pipe is not counted; its node_modules are
installed on first use (`npm ci`). Beyond the models: per-call overhead on a tiny Add model,
a 64 MiB Identity round trip against two numpy copies, one session driven by one and by two
threads, session creation with a cold and a warm module cache, and `wasmhost run` end to
end. It prints the tables, and writes them as markdown (`--docs`) and a bar chart (`--chart`,
with matplotlib).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import onnx
from onnx import TensorProto, helper
from rich.console import Console
from rich.table import Table

import wasmhost
from wasmhost.tools.bench import Timing, onnxruntime_session

ROOT = Path(__file__).resolve().parent.parent
ORTWEB = Path(__file__).resolve().parent / "ortweb"
LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
MODELS = ("squeezenet", "shufflenet", "resnet50", "inception_v1", "zfnet512")
QUICK_MODELS = ("squeezenet", "shufflenet")
ENGINES = ("wasmhost", "tract", "onnxruntime-1t", "onnxruntime-web")
# The big light models need more than the default 512 MiB, and a loaded machine more time.
LIMITS = wasmhost.Limits(memory="4GiB", timeout=600)
IDENTITY_SHAPE = (16, 1024, 1024)  # 64 MiB of float32
_RUN_KEYS = ("rounds", "warmup", "threads_model", "chart")  # in `info`, not machine facts
GENERATED_END = "<!-- end of the generated part: scripts/bench.py keeps what follows -->"

SHORT = {
    "wasmhost": "wasmhost",
    "tract": "tract",
    "onnxruntime-1t": "ort 1t",
    "onnxruntime-web": "ort-web",
}
# Piped output would otherwise be cut to 80 columns.
console = Console(width=None if sys.stdout.isatty() else 132)


def log(message: str) -> None:
    console.print(f"[dim]{message}[/dim]", highlight=False)


# --- engines -------------------------------------------------------------------------------


class Runner(Protocol):
    name: str

    def load(self, path: Path, feeds: dict[str, np.ndarray]) -> None: ...

    def run(self) -> float:
        """Seconds taken by one run of the loaded model on its feeds."""
        ...

    def outputs(self) -> list[np.ndarray]: ...

    def close(self) -> None: ...


class WasmhostRunner:
    name = "wasmhost"

    def load(self, path: Path, feeds: dict[str, np.ndarray]) -> None:
        self.session = wasmhost.InferenceSession(path, limits=LIMITS)
        self.feeds = feeds

    def run(self) -> float:
        t = time.perf_counter()
        out = self.session.run(None, self.feeds)
        dt = time.perf_counter() - t
        del out  # freed after the clock: no engine is charged for its outputs' release
        return dt

    def outputs(self) -> list[np.ndarray]:
        return self.session.run(None, self.feeds)

    def close(self) -> None:
        self.session.close()


_TRACT_TYPES = {"float32": "f32", "float64": "f64", "int64": "i64", "int32": "i32", "uint8": "u8"}


class TractRunner:
    name = "tract"

    def load(self, path: Path, feeds: dict[str, np.ndarray]) -> None:
        import tract

        model = tract.onnx().load(str(path))
        self.inputs = []
        for i in range(model.input_count()):
            x = feeds[model.input_name(i)]
            model.set_input_fact(i, ",".join([*map(str, x.shape), _TRACT_TYPES[str(x.dtype)]]))
            self.inputs.append(x)
        self.plan = model.into_model().into_runnable()

    def run(self) -> float:
        t = time.perf_counter()
        out = self.plan.run(self.inputs)
        dt = time.perf_counter() - t
        del out
        return dt

    def outputs(self) -> list[np.ndarray]:
        return [t.to_numpy() for t in self.plan.run(self.inputs)]

    def close(self) -> None:
        self.plan = None


class OrtRunner:
    name = "onnxruntime-1t"

    def load(self, path: Path, feeds: dict[str, np.ndarray]) -> None:
        self.session = onnxruntime_session(path)
        self.feeds = feeds

    def run(self) -> float:
        t = time.perf_counter()
        out = self.session.run(None, self.feeds)
        dt = time.perf_counter() - t
        del out
        return dt

    def outputs(self) -> list[np.ndarray]:
        return self.session.run(None, self.feeds)

    def close(self) -> None:
        self.session = None


class OrtWebRunner:
    """onnxruntime-web in a Node child; see the framing in scripts/ortweb/runner.mjs."""

    name = "onnxruntime-web"

    def __init__(self) -> None:
        _npm_install()
        self.proc = subprocess.Popen(
            ["node", "runner.mjs"], cwd=ORTWEB, stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        self.versions: dict[str, str] = self._call({"op": "version"})[0]["versions"]

    def _read(self, n: int) -> bytes:
        assert self.proc.stdout is not None
        data = self.proc.stdout.read(n)
        if len(data) != n:
            raise RuntimeError(f"onnxruntime-web: node exited ({self.proc.poll()})")
        return data

    def _call(
        self, header: dict[str, Any], payloads: Iterable[np.ndarray] = ()
    ) -> tuple[dict[str, Any], list[np.ndarray]]:
        assert self.proc.stdin is not None
        raw = json.dumps(header).encode()
        self.proc.stdin.write(struct.pack("<I", len(raw)) + raw)
        for p in payloads:
            self.proc.stdin.write(memoryview(p).cast("B"))
        self.proc.stdin.flush()
        reply = json.loads(self._read(struct.unpack("<I", self._read(4))[0]))
        if not reply["ok"]:
            raise RuntimeError(f"onnxruntime-web: {reply['error']}")
        arrays = [
            np.frombuffer(self._read(t["nbytes"]), dtype=t["dtype"]).reshape(t["shape"])
            for t in reply.get("outputs", [])
        ]
        return reply, arrays

    def load(self, path: Path, feeds: dict[str, np.ndarray]) -> None:
        arrays = {k: np.ascontiguousarray(v) for k, v in feeds.items()}
        specs = [
            {"name": k, "dtype": str(v.dtype), "shape": list(v.shape), "nbytes": v.nbytes}
            for k, v in arrays.items()
        ]
        self._call({"op": "load", "model": str(path), "inputs": specs}, arrays.values())

    def run(self) -> float:
        return self._call({"op": "run", "outputs": False})[0]["ms"] / 1000

    def outputs(self) -> list[np.ndarray]:
        return self._call({"op": "run", "outputs": True})[1]

    def close(self) -> None:
        self._call({"op": "close"})

    def shutdown(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)


class NumpyCopies:
    """The floor of a round trip: two `np.copyto` of the input into preallocated arrays."""

    name = "numpy 2 copies"

    def load(self, path: Path, feeds: dict[str, np.ndarray]) -> None:
        (self.x,) = feeds.values()
        self.a, self.b = np.empty_like(self.x), np.empty_like(self.x)

    def run(self) -> float:
        t = time.perf_counter()
        np.copyto(self.a, self.x)
        np.copyto(self.b, self.x)
        return time.perf_counter() - t

    def outputs(self) -> list[np.ndarray]:
        return [self.x]

    def close(self) -> None:
        self.a = self.b = self.x = None


def _npm_install() -> None:
    """Installs scripts/ortweb's node_modules when absent or not the pinned version."""
    pinned = json.loads((ORTWEB / "package.json").read_text())["dependencies"]["onnxruntime-web"]
    installed = ORTWEB / "node_modules" / "onnxruntime-web" / "package.json"
    if installed.exists() and json.loads(installed.read_text())["version"] == pinned:
        return
    npm = "ci" if (ORTWEB / "package-lock.json").exists() else "install"
    log(f"npm {npm} in {ORTWEB.relative_to(ROOT)}")
    subprocess.run(
        ["npm", npm, "--no-audit", "--no-fund", "--loglevel=error"], cwd=ORTWEB, check=True
    )


# --- cases ---------------------------------------------------------------------------------


@dataclass
class Case:
    name: str
    path: Path
    feeds: dict[str, np.ndarray]
    kind: str  # "model" (latency table and ratios), "tiny" or "identity"
    calls: int = 1  # timed calls per engine per round


_NP_TYPES = {TensorProto.FLOAT: np.float32, TensorProto.INT64: np.int64}


def _feeds(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Random inputs, seeded, for the graph inputs that are not initializers."""
    rng = np.random.default_rng(0)
    inits = {i.name for i in model.graph.initializer}
    feeds = {}
    for value in model.graph.input:
        if value.name in inits:
            continue
        t = value.type.tensor_type
        shape = [d.dim_value or 1 for d in t.shape.dim]  # symbolic dims: batch 1
        feeds[value.name] = rng.standard_normal(shape).astype(_NP_TYPES[t.elem_type])
    return feeds


def light_case(name: str) -> Case:
    path = LIGHT / f"light_{name}.onnx"
    if not path.exists():
        names = sorted(p.stem.removeprefix("light_") for p in LIGHT.glob("light_*.onnx"))
        sys.exit(f"bench.py: no model {path.name}; choose from {', '.join(names)}")
    return Case(name, path, _feeds(onnx.load(path)), "model")


def _save(graph: onnx.GraphProto, path: Path) -> Path:
    # IR 8 / opset 13: read by every engine here, onnxruntime-web's older one included.
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def tiny_case(workdir: Path, calls: int) -> Case:
    f32 = TensorProto.FLOAT
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["y"])],
        "tiny_add",
        [helper.make_tensor_value_info(n, f32, [1, 4]) for n in ("a", "b")],
        [helper.make_tensor_value_info("y", f32, [1, 4])],
    )
    rng = np.random.default_rng(0)
    feeds = {n: rng.standard_normal((1, 4)).astype(np.float32) for n in ("a", "b")}
    return Case("tiny Add", _save(graph, workdir / "tiny_add.onnx"), feeds, "tiny", calls)


def identity_case(workdir: Path) -> Case:
    f32 = TensorProto.FLOAT
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "identity_64mib",
        [helper.make_tensor_value_info("x", f32, list(IDENTITY_SHAPE))],
        [helper.make_tensor_value_info("y", f32, list(IDENTITY_SHAPE))],
    )
    x = np.random.default_rng(0).standard_normal(IDENTITY_SHAPE).astype(np.float32)
    return Case("Identity 64 MiB", _save(graph, workdir / "identity.onnx"), {"x": x}, "identity")


def _max_diff(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    if len(a) != len(b):
        return math.inf
    diffs = [0.0]
    for x, y in zip(a, b, strict=True):
        x, y = np.asarray(x), np.asarray(y)
        if x.size != y.size:
            return math.inf
        diffs.append(float(np.max(np.abs(x.astype(np.float64).ravel() - y.ravel()), initial=0)))
    return max(diffs)


def bench_case(
    case: Case, runners: list[Runner], rounds: int, warmup: int
) -> tuple[dict[str, Timing], dict[str, str]]:
    """Times `case` on each runner; returns timings and, per runner, a check or an error."""
    notes: dict[str, str] = {}
    loaded: list[Runner] = []
    reference: list[np.ndarray] | None = None
    for r in runners:
        try:
            r.load(case.path, case.feeds)
            out = r.outputs()
        except Exception as e:
            notes[r.name] = f"error: {str(e).splitlines()[0][:120]}"
            log(f"  {case.name}: {r.name} failed: {notes[r.name]}")
            continue
        if reference is None:
            reference = out
        diff = _max_diff(reference, out)
        notes[r.name] = f"{diff:.2g}"
        if diff > 1e-3:
            log(f"  {case.name}: {r.name} differs from {loaded[0].name} by {diff:.3g}")
        loaded.append(r)
    timings = {r.name: Timing() for r in loaded}
    for _ in range(warmup):
        for r in loaded:
            for _ in range(case.calls):
                r.run()
    for i in range(rounds):
        k = i % max(len(loaded), 1)
        for r in loaded[k:] + loaded[:k]:
            timings[r.name].samples.extend(r.run() for _ in range(case.calls))
    for r in loaded:
        r.close()
    return timings, notes


# --- wasmhost alone ------------------------------------------------------------------------


def bench_threads(path: Path, rounds: int, calls: int) -> tuple[Timing, Timing, float]:
    """Throughput (runs/s) of one session driven by one thread and by two; CPUs busy with two."""
    session = wasmhost.InferenceSession(path, limits=LIMITS, pool_size=2)
    feeds = _feeds(onnx.load(path))

    def work() -> None:
        for _ in range(calls):
            session.run(None, feeds)

    def block(n: int) -> float:
        threads = [threading.Thread(target=work) for _ in range(n)]
        t, cpu = time.perf_counter(), time.process_time()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        wall = time.perf_counter() - t
        # Near 1.0 with two threads: serialised (a lock, the GIL) or no idle core to use.
        busy[n].append((time.process_time() - cpu) / wall)
        return n * calls / wall

    busy: dict[int, list[float]] = {1: [], 2: []}
    block(2)  # grows the pool to two isolates, both warm
    one, two = Timing(), Timing()
    for i in range(rounds):
        for n in (1, 2) if i % 2 == 0 else (2, 1):
            (one if n == 1 else two).samples.append(block(n))
    session.close()
    return one, two, float(np.median(busy[2]))


_CREATE = (
    "import sys, time, wasmhost\n"
    "t = time.perf_counter()\n"
    "wasmhost.InferenceSession(sys.argv[1])\n"
    "print(time.perf_counter() - t)\n"
)


def _create_in_child(path: Path, cache: Path) -> float:
    env = {**os.environ, "WASMHOST_CACHE_DIR": str(cache)}
    out = subprocess.run(
        [sys.executable, "-c", _CREATE, str(path)], env=env, capture_output=True, text=True
    )
    if out.returncode:
        raise RuntimeError(f"session creation failed: {out.stderr.strip()[-400:]}")
    return float(out.stdout)


def bench_startup(
    path: Path, workdir: Path, cold_rounds: int, rounds: int
) -> tuple[dict[str, Timing], Path]:
    """Session creation: cold module cache, warm cache in a new process, same process."""
    t = {k: Timing() for k in ("cold cache", "warm cache", "in process")}
    warm = workdir / "cache-warm"
    for i in range(cold_rounds):
        cold = workdir / f"cache-cold-{i}"  # a fresh, empty cache: the module is compiled
        t["cold cache"].samples.append(_create_in_child(path, cold))
        if not warm.exists():
            cold.rename(warm)
        else:
            shutil.rmtree(cold)
    for _ in range(rounds):
        t["warm cache"].samples.append(_create_in_child(path, warm))
    wasmhost.InferenceSession(path).close()  # this process's engine, compiled or cached
    for _ in range(rounds):
        start = time.perf_counter()
        session = wasmhost.InferenceSession(path)
        t["in process"].samples.append(time.perf_counter() - start)
        session.close()
    return t, warm


def _wasmhost_exe() -> str:
    beside = Path(sys.executable).parent / "wasmhost"
    return str(beside) if beside.exists() else shutil.which("wasmhost") or "wasmhost"


def bench_cli(path: Path, workdir: Path, cache: Path, rounds: int) -> Timing:
    """`wasmhost run MODEL x.npy` as a subprocess, warm cache, wall time."""
    x = workdir / "x.npy"
    np.save(x, next(iter(_feeds(onnx.load(path)).values())))
    env = {**os.environ, "WASMHOST_CACHE_DIR": str(cache)}
    cmd = [_wasmhost_exe(), "run", str(path), str(x)]
    subprocess.run(cmd, env=env, check=True, capture_output=True)  # warm the page cache too
    timing = Timing()
    for _ in range(rounds):
        t = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
        timing.samples.append(time.perf_counter() - t)
    return timing


# --- report --------------------------------------------------------------------------------


def geomean(values: list[float]) -> float:
    return math.exp(sum(map(math.log, values)) / len(values)) if values else math.nan


def num(v: float) -> str:
    return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"


def ms(t: Timing | None, scale: float = 1e3) -> str:
    """`median / p95`, in ms by default."""
    return (
        "n/a" if t is None or not t.samples else f"{num(t.median * scale)} / {num(t.p95 * scale)}"
    )


def ratio(num: Timing | None, den: Timing | None) -> float | None:
    if num is None or den is None or not num.samples or not den.samples:
        return None
    return num.median / den.median


def fmt_ratio(r: float | None) -> str:
    return "n/a" if r is None or math.isnan(r) else f"{r:.2f}"


@dataclass
class Report:
    models: dict[str, dict[str, Timing]] = field(default_factory=dict)
    notes: dict[str, dict[str, str]] = field(default_factory=dict)
    other: list[tuple[str, str, str, str]] = field(
        default_factory=list
    )  # what, engine, value, unit
    targets: list[tuple[str, str, str, bool | None]] = field(default_factory=list)
    engines: list[str] = field(default_factory=list)

    def model_table(self) -> tuple[list[str], list[list[str]]]:
        head = ["model", *(SHORT[e] for e in self.engines)]
        peers = [e for e in reversed(self.engines) if e != "wasmhost"]
        head += [f"wasmhost / {SHORT[e]}" for e in peers]
        rows, ratios = [], {e: [] for e in peers}
        for name, timings in self.models.items():
            row = [name, *(ms(timings.get(e)) for e in self.engines)]
            for e in peers:
                r = ratio(timings.get("wasmhost"), timings.get(e))
                row.append(fmt_ratio(r))
                if r is not None:
                    ratios[e].append(r)
            rows.append(row)
        rows.append(["geomean", *("" for _ in self.engines)])
        rows[-1] += [fmt_ratio(geomean(ratios[e])) for e in peers]
        return head, rows

    def geomean_of(self, peer: str) -> float:
        rs = [ratio(t.get("wasmhost"), t.get(peer)) for t in self.models.values()]
        return geomean([r for r in rs if r is not None])


def print_tables(report: Report) -> None:
    head, rows = report.model_table()
    table = Table(title="Latency, batch 1: median / p95 (ms)")
    for i, h in enumerate(head):
        table.add_column(h, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    other = Table(title="wasmhost's overheads: median / p95")
    for h in ("measurement", "engine", "value", "unit"):
        other.add_column(h, justify="right" if h == "value" else "left")
    for row in report.other:
        other.add_row(*row)
    console.print(other)
    targets = Table(title="Targets (issue 6)")
    for h in ("target", "goal", "measured", "status"):
        targets.add_column(h)
    for what, goal, measured, met in report.targets:
        status = "n/a" if met is None else "[green]met[/green]" if met else "[red]missed[/red]"
        targets.add_row(what, goal, measured, status)
    console.print(targets)


def _md_table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(lines)


def write_docs(path: Path, report: Report, info: dict[str, str], command: str) -> None:
    head, rows = report.model_table()
    checks = [
        [name, *(report.notes[name].get(e, "n/a") for e in report.engines)]
        for name in report.models
    ]
    targets = [
        [w, g, m, "n/a" if ok is None else "met" if ok else "**missed**"]
        for w, g, m, ok in report.targets
    ]
    text = f"""# Benchmarks

Generated by `scripts/bench.py`; rerun it to refresh this file (hand-written notes go
below the marker at the end, where the script keeps them).

```sh
{command}
```

## Method

- One process; engines never run at once. Each model is loaded in every engine, run once
  to check its outputs against the first engine's, warmed up ({info["warmup"]} untimed rounds),
  then timed over {info["rounds"]} rounds, each running every engine once in an order
  rotated from round to round. Medians and 95th percentiles of those samples.
- wasmhost: `InferenceSession(path).run(None, feeds)`, the whole Python call (feeds checked,
  copied into guest memory, outputs copied out). Native tract: the PyPI `tract` package,
  told the input shapes, `plan.run`. onnxruntime: CPU provider, `intra_op_num_threads=1`,
  `inter_op_num_threads=1`. onnxruntime-web: npm, wasm backend, `numThreads = 1`, in Node,
  driven over a pipe and timed inside Node around `session.run`, so the pipe is not counted.
- Models: the onnx package's `light_*.onnx` (real architectures, constant weights), batch 1,
  inputs from `np.random.default_rng(0)`. Tiny Add (two 1x4 float32): the cost of one call.
  Identity on a 64 MiB float32 tensor: a full round trip, against two `np.copyto` of it.
  Threads: one session (`pool_size=2`) driven by one thread, then two, `{info["threads_model"]}`.
  Session creation in a new process with an empty `WASMHOST_CACHE_DIR` (the module is
  compiled) and with a warm one; and in a process whose engine is already up.
  `wasmhost run` end to end: the command as a subprocess, warm cache, wall time.

## Machine

{_md_table(["", ""], [[k, v] for k, v in info.items() if k not in _RUN_KEYS])}

## Latency

Median / p95 in ms, batch 1. ort 1t: onnxruntime, one thread; ort-web: onnxruntime-web.

{_md_table(head, rows)}

Output check: the largest absolute difference from the first engine's outputs.

{_md_table(["model", *report.engines], checks)}

## wasmhost's overheads

{_md_table(["measurement", "engine", "median / p95", "unit"], [list(r) for r in report.other])}

## Targets

{_md_table(["target", "goal", "measured", "status"], targets)}
"""
    if info.get("chart"):
        text += f"\n![median latency per model and engine]({info['chart']})\n"
    kept = ""
    if path.exists() and GENERATED_END in (old := path.read_text()):
        kept = old.split(GENERATED_END, 1)[1]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{text}\n{GENERATED_END}\n{kept.lstrip(chr(10))}")
    log(f"wrote {path}")


def write_chart(path: Path, report: Report) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("no matplotlib: no chart (pip install matplotlib)")
        return False
    names = list(report.models)
    width = 0.8 / len(report.engines)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(names)), 4))
    for i, engine in enumerate(report.engines):
        xs = [j + (i - (len(report.engines) - 1) / 2) * width for j in range(len(names))]
        ys = [(t.median * 1e3 if (t := report.models[n].get(engine)) else 0) for n in names]
        ax.bar(xs, ys, width, label=engine)
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel("median latency, ms (lower is better)")
    ax.set_title("Batch-1 latency, one thread")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    log(f"wrote {path}")
    return True


# --- main ----------------------------------------------------------------------------------


def machine_info(ortweb: OrtWebRunner | None) -> dict[str, str]:
    import onnxruntime
    import tract

    from wasmhost.runtime.engine import manifest, wasmtime_version

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    guest = manifest()
    return {
        "cpu": f"{cpu}, {os.cpu_count()} logical CPUs",
        "load average at start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "os": platform.platform(),
        "python": platform.python_version(),
        "wasmhost": f"{wasmhost.__version__} (guest tract {guest.get('tract_version', '?')}, "
        f"module sha256 {guest.get('sha256', '?')[:12]})",
        "wasmtime": wasmtime_version(),
        "tract": f"{tract.version()} (PyPI)",
        "onnxruntime": onnxruntime.__version__,
        "onnxruntime-web": ortweb.versions.get("web", "?") if ortweb else "not run",
        "node": ortweb.versions.get("node", "?") if ortweb else "not run",
        "numpy": np.__version__,
        "onnx": metadata.version("onnx"),
    }


def make_runners(engines: list[str]) -> tuple[list[Runner], OrtWebRunner | None]:
    factories: dict[str, Callable[[], Runner]] = {
        "wasmhost": WasmhostRunner,
        "tract": TractRunner,
        "onnxruntime-1t": OrtRunner,
    }
    runners: list[Runner] = []
    ortweb = None
    for e in engines:
        if e == "onnxruntime-web":
            if not (shutil.which("node") and shutil.which("npm")):
                log("no node/npm on PATH: onnxruntime-web is left out")
                continue
            ortweb = OrtWebRunner()
            runners.append(ortweb)
        else:
            runners.append(factories[e]())
    return runners, ortweb


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", help=f"comma-separated light models (default: {','.join(MODELS)})")
    p.add_argument("--engines", default=",".join(ENGINES), help="comma-separated engines")
    p.add_argument("--rounds", type=int, help="timed rounds per model (default 20; quick 3)")
    p.add_argument("--warmup", type=int, help="untimed rounds first (default 3; quick 1)")
    p.add_argument("--quick", action="store_true", help=f"a smoke test: {','.join(QUICK_MODELS)}")
    p.add_argument("--docs", type=Path, help="write the report as markdown here")
    p.add_argument("--chart", type=Path, help="write a bar chart PNG here (needs matplotlib)")
    args = p.parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 20)
    warmup = args.warmup if args.warmup is not None else (1 if args.quick else 3)
    models = args.models.split(",") if args.models else list(QUICK_MODELS if args.quick else MODELS)
    engines = [e.strip() for e in args.engines.split(",")]
    if unknown := set(engines) - set(ENGINES):
        p.error(f"unknown engines {sorted(unknown)}; choose from {', '.join(ENGINES)}")
    if "wasmhost" not in engines:
        p.error("wasmhost must be one of the engines")

    cases = [light_case(m.strip()) for m in models]
    runners, ortweb = make_runners(engines)
    report = Report(engines=[r.name for r in runners])
    threads_model = LIGHT / "light_squeezenet.onnx"
    info = machine_info(ortweb)
    info |= {"rounds": str(rounds), "warmup": str(warmup), "threads_model": threads_model.name}
    try:
        with tempfile.TemporaryDirectory(prefix="wasmhost-bench-") as tmp:
            work = Path(tmp)
            for case in cases:
                log(f"{case.name}: {rounds} rounds")
                report.models[case.name], report.notes[case.name] = bench_case(
                    case, runners, rounds, warmup
                )
            tiny = tiny_case(work, calls=50 if args.quick else 200)
            log(f"{tiny.name}: {rounds} rounds of {tiny.calls} calls")
            tiny_t, _ = bench_case(tiny, runners, rounds, warmup)
            for name, t in tiny_t.items():
                report.other.append(("tiny Add, one call", name, ms(t, 1e6), "µs"))
            ident = identity_case(work)
            log(f"{ident.name}: {rounds} rounds")
            ident_t, ident_notes = bench_case(ident, [*runners, NumpyCopies()], rounds, warmup)
            for name, t in ident_t.items():
                report.other.append(("Identity 64 MiB round trip", name, ms(t), "ms"))
            log("threads: one session, one thread then two")
            one, two, busy = bench_threads(threads_model, rounds, 3 if args.quick else 5)
            for n, t, unit in ((1, one, ""), (2, two, f", {busy:.2f} CPUs busy")):
                what = f"{n} thread{'s' * (n > 1)}, one squeezenet session"
                report.other.append((what, "wasmhost", num(t.median), f"runs/s (median){unit}"))
            log("session creation: cold cache (compiles the module), warm cache, in process")
            start, warm = bench_startup(
                threads_model, work, 1 if args.quick else 3, min(rounds, 10)
            )
            for what, t in start.items():
                report.other.append((f"session creation, {what}", "wasmhost", ms(t), "ms"))
            log("wasmhost run light_squeezenet.onnx x.npy, warm cache")
            cli = bench_cli(threads_model, work, warm, min(rounds, 10))
            report.other.append(
                ("`wasmhost run` squeezenet, end to end", "wasmhost", ms(cli), "ms")
            )
    finally:
        if ortweb:
            ortweb.shutdown()

    # Targets, as issue 6 states them.
    complete = set(MODELS) <= set(report.models)
    over = "" if complete else " (not all five models run)"
    for peer, goal in (("onnxruntime-web", 1.0), ("tract", 1.5)):
        g = report.geomean_of(peer)
        met = None if math.isnan(g) or not complete else g <= goal
        report.targets.append(
            (f"geomean wasmhost / {peer}", f"<= {goal}", f"{fmt_ratio(g)}{over}", met)
        )
    wh = tiny_t.get("wasmhost")
    per_call = wh.median * 1e6 if wh else math.nan
    report.targets.append(
        ("per-call overhead, tiny Add", "<= 50 µs", f"{per_call:.1f} µs", per_call <= 50)
    )
    r = ratio(ident_t.get("wasmhost"), ident_t.get("numpy 2 copies"))
    report.targets.append(
        (
            "Identity 64 MiB / two numpy copies",
            "<= 2.0",
            fmt_ratio(r),
            None if r is None else r <= 2,
        )
    )
    scale = two.median / one.median
    report.targets.append(
        ("2 threads / 1 thread throughput", ">= 1.8", f"{scale:.2f}", scale >= 1.8)
    )
    report.targets.append(
        ("`wasmhost run` end to end, warm", "<= 1 s", f"{cli.median:.3f} s", cli.median <= 1)
    )
    info["load average at end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print_tables(report)
    for name, notes in {**report.notes, ident.name: ident_notes}.items():
        for engine, note in notes.items():
            if note.startswith("error"):
                log(f"{name}, {engine}: {note}")
    if args.chart and write_chart(args.chart, report) and args.docs:
        info["chart"] = os.path.relpath(args.chart, args.docs.parent)
    if args.docs:
        command = shlex.join(["python", "scripts/bench.py", *(argv or sys.argv[1:])])
        write_docs(args.docs, report, info, command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
