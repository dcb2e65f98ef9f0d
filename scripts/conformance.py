#!/usr/bin/env python3
"""The ONNX backend test suite through wasmhost, native tract and onnxruntime, side by side.

    python scripts/conformance.py --jobs 2 --docs docs/conformance.md
    python scripts/conformance.py --engines wasmhost --suites node,simple \
        --check tests/conformance/wasmhost_passes.txt

Every case runs in a worker process per engine, so that a crash or a hang is a recorded
result (`crash`, `timeout`), not the end of the run. A case is one of the onnx package's
test models whose inputs and outputs are tensors. Each engine gets one session per case
and runs it again and again: every data set three times (in rounds: each data set once,
then again, then again), then other inputs once (the second data set, or the first one's
values shuffled), then the first data set again. The case passes when every one of those
runs matches the expected outputs within the case's tolerances (onnx's own comparison);
a case whose first round matches and a later run does not is `fail-rerun`: the runs of a
session are not independent (state kept from one run to the next).

`--check FILE` exits 1 when a case listed in FILE (one id per line) does not pass in
wasmhost, and lists new passes so that the file can be raised (`--write-expected FILE`).

`--suites sklearn` runs the scikit-learn corpus instead (scripts/sklearn_corpus.py: skl2onnx
exports checked against onnxruntime; `--check tests/conformance/sklearn_passes.txt`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import platform
import queue
import re
import sys
import tempfile
import threading
import time
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

SUITES = ("node", "simple", "pytorch-converted", "pytorch-operator", "light")
CORPUS = "sklearn"  # scripts/sklearn_corpus.py, run on its own
ENGINES = ("wasmhost", "tract", "onnxruntime")
DATA = Path(onnx.__file__).parent / "backend" / "test" / "data"
CASE_SECONDS = 300.0

# --- cases -------------------------------------------------------------------------------


@dataclass
class Case:
    """A model, its data sets (feeds by input name, expected outputs) and tolerances."""

    id: str
    model: bytes
    data_sets: list[tuple[dict[str, np.ndarray], list[np.ndarray]]]
    rtol: float
    atol: float


_node_cases: dict[str, Any] | None = None


def _node_tests() -> dict[str, Any]:
    global _node_cases
    if _node_cases is None:
        from onnx.backend.test.loader import load_model_tests

        with warnings.catch_warnings():  # the generators overflow casts on purpose
            warnings.simplefilter("ignore")
            _node_cases = {t.name: t for t in load_model_tests(kind="node")}
    return _node_cases


def _tensor_graph(model: onnx.ModelProto) -> bool:
    values = list(model.graph.input) + list(model.graph.output)
    return all(v.type.HasField("tensor_type") for v in values)


def _array(value: Any) -> np.ndarray | None:
    if isinstance(value, onnx.TensorProto):
        return onnx.numpy_helper.to_array(value)
    if isinstance(value, np.generic):  # a 0-d input, as the generators give some
        return np.asarray(value)
    return value if isinstance(value, np.ndarray) else None


def _feeds(model: onnx.ModelProto, inputs: list[Any]) -> dict[str, np.ndarray] | None:
    arrays = [_array(x) for x in inputs]
    if any(a is None for a in arrays):
        return None
    return {v.name: a for v, a in zip(model.graph.input, arrays, strict=False)}


_SCHEMAS = sorted({s.name for s in onnx.defs.get_all_schemas()}, key=len, reverse=True)


def _main_op(model: onnx.ModelProto, name: str) -> str:
    """The operator a node test is about: the one its name spells, else its first node."""
    key = name.removeprefix("test_").replace("_", "").lower()
    for op in _SCHEMAS:
        if key.startswith(op.lower()):
            return op
    return model.graph.node[0].op_type if model.graph.node else "?"


def left_out_node_cases() -> dict[str, list[str]]:
    """The node cases not counted, by why: a graph input or output that is a sequence, an
    optional or a map (the sandbox exchanges tensors), or data a runner cannot feed."""
    why: dict[str, list[str]] = {}
    for name, t in sorted(_node_tests().items()):
        kinds = {
            v.type.WhichOneof("value")
            for v in list(t.model.graph.input) + list(t.model.graph.output)
        } - {"tensor_type"}
        if kinds:
            key = ", ".join(sorted(k.removesuffix("_type") for k in kinds))
        elif f"node/{name}" not in list_cases(["node"]):
            key = "data the runners cannot feed"
        else:
            continue
        why.setdefault(key, []).append(name)
    return why


def list_cases(suites: list[str]) -> list[str]:
    """Ids (`suite/name`) of the tensor-only cases of the given suites."""
    ids = []
    for suite in suites:
        if suite == "node":
            for name, t in sorted(_node_tests().items()):
                if _tensor_graph(t.model) and all(
                    _feeds(t.model, list(ins)) is not None
                    and all(_array(o) is not None for o in outs)
                    for ins, outs in t.data_sets
                ):
                    ids.append(f"node/{name}")
        elif suite == "light":
            ids += [f"light/{p.stem}" for p in sorted((DATA / "light").glob("*.onnx"))]
        else:
            for d in sorted((DATA / suite).iterdir()):
                if (d / "model.onnx").exists():
                    model = onnx.load(d / "model.onnx", load_external_data=False)
                    if _tensor_graph(model):
                        ids.append(f"{suite}/{d.name}")
    return ids


def load_case(case_id: str) -> Case:
    """Reads a case's model and data (node cases are generated by the onnx package)."""
    suite, name = case_id.split("/", 1)
    if suite == "node":
        t = _node_tests()[name]
        sets = [
            (_feeds(t.model, list(ins)), [_array(o) for o in outs]) for ins, outs in t.data_sets
        ]
        return Case(case_id, t.model.SerializeToString(), sets, t.rtol, t.atol)
    if suite == "light":
        from onnx.backend.test.runner import Runner

        path = DATA / "light" / f"{name}.onnx"
        model = onnx.load(path)
        inits = {i.name for i in model.graph.initializer}
        feeds = {
            v.name: Runner.generate_dummy_data(v, seed=0, name=name, random=False)
            for v in model.graph.input
            if v.name not in inits
        }
        expected = onnx.TensorProto()
        expected.ParseFromString((DATA / "light" / f"{name}_output_0.pb").read_bytes())
        sets = [(feeds, [onnx.numpy_helper.to_array(expected)])]
        return Case(case_id, path.read_bytes(), sets, 1e-3, 1e-7)
    case_dir = DATA / suite / name
    model = onnx.load(case_dir / "model.onnx")
    rtol, atol = 1e-3, 1e-7
    if (case_dir / "data.json").exists():
        data = json.loads((case_dir / "data.json").read_text())
        rtol, atol = data.get("rtol", rtol), data.get("atol", atol)
    sets = []
    for data_dir in sorted(case_dir.glob("test_data_set*")):
        ins, outs = [], []
        for kind, target in (("input", ins), ("output", outs)):
            for i in range(len(list(data_dir.glob(f"{kind}_*.pb")))):
                proto = onnx.TensorProto()
                proto.ParseFromString((data_dir / f"{kind}_{i}.pb").read_bytes())
                target.append(proto)
        sets.append((_feeds(model, ins), [_array(o) for o in outs]))
    return Case(case_id, model.SerializeToString(), sets, rtol, atol)


# --- engines -----------------------------------------------------------------------------

Run = Callable[[dict[str, np.ndarray]], list[np.ndarray]]


@contextlib.contextmanager
def _wasmhost(case: Case) -> Iterator[Run]:
    import wasmhost

    limits = wasmhost.Limits(memory="2GiB", timeout=CASE_SECONDS / 2)
    # One isolate, so that every run of the case goes through the same guest state.
    with wasmhost.InferenceSession(case.model, limits=limits, pool_size=1) as sess:
        yield lambda feeds: sess.run(None, feeds)


@contextlib.contextmanager
def _onnxruntime(case: Case) -> Iterator[Run]:
    from wasmhost.tools.bench import onnxruntime_session

    sess = onnxruntime_session(case.model)
    yield lambda feeds: sess.run(None, feeds)


@contextlib.contextmanager
def _tract(case: Case) -> Iterator[Run]:
    """Native tract as the guest uses it: told each input's shape and type, optimised.
    One plan per input signature, reused by every run with that signature."""
    from wasmhost.tools.differential import tract_plan, tract_run

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        path.write_bytes(case.model)
        plans: dict[tuple, tuple[Any, list[str]]] = {}

        def run(feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
            key = tuple((n, a.shape, a.dtype.str) for n, a in feeds.items())
            if key not in plans:
                plans[key] = tract_plan(path, feeds)
            return tract_run(*plans[key], feeds)

        yield run


SESSIONS = {"wasmhost": _wasmhost, "tract": _tract, "onnxruntime": _onnxruntime}
RUNS = 3  # runs of every data set in one session; then other inputs, then the first again


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"[:300]


def _shuffled(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The same arrays in another order, by a fixed seed: same shapes, dtypes and values
    (so that indices stay valid), other inputs."""
    rng = np.random.default_rng(0)
    out = {}
    for name, a in feeds.items():
        flat = np.asarray(a).reshape(-1).copy()
        rng.shuffle(flat)
        out[name] = flat.reshape(np.shape(a))
    return out


def _worst_difference(expected: list[Any], outputs: list[Any], rtol: float, atol: float) -> str:
    """The output furthest from its expected values, in one phrase."""
    if len(outputs) != len(expected):
        return f"{len(outputs)} outputs, {len(expected)} expected"
    worst: tuple[float, str] | None = None
    for i, (e, a) in enumerate(zip(expected, outputs, strict=True)):
        e, a = np.asarray(e), np.asarray(a)
        if e.shape != a.shape:
            return f"output {i}: shape {list(a.shape)}, expected {list(e.shape)}"
        if e.size == 0:
            continue
        if e.dtype.kind in "biufc" and a.dtype.kind in "biufc":
            kind = np.complex128 if "c" in e.dtype.kind + a.dtype.kind else np.float64
            with np.errstate(all="ignore"):
                ef, af = e.astype(kind), a.astype(kind)
                same = (ef == af) | (np.isnan(ef) & np.isnan(af))
                diff = np.where(same, 0.0, np.nan_to_num(np.abs(af - ef), nan=np.inf))
                bad = int((~np.isclose(af, ef, rtol=rtol, atol=atol, equal_nan=True)).sum())
            at = np.unravel_index(int(np.argmax(diff)), diff.shape)
            score = float(diff[at])
            text = (
                f"output {i}: {bad}/{e.size} values out of tolerance, max |diff| {score:.3g}"
                f" at {list(map(int, at))} (got {af[at]:.6g}, expected {ef[at]:.6g})"
            )
        else:
            bad = int((e != a).sum())
            score, text = float(bad), f"output {i}: {bad}/{e.size} values differ"
        if worst is None or score > worst[0]:
            worst = (score, text)
    return worst[1] if worst else "outputs match"


def check_runs(case: Case, run: Run, runs: int = RUNS) -> dict[str, Any]:
    """Runs a case again and again through one session's `run`; returns {status, detail,
    first}, `first` whether the first round (every data set once, in order) matched.

    The first round, then `runs - 1` more; then other inputs (the second data set, or the
    first one's values shuffled: outputs unchecked, an error ignored); then the first data
    set again. Status: `error` (the first round raised), `fail` (it gave a wrong output),
    `fail-rerun` (it matched and a later run did not: the detail names the first such run
    and its worst difference) or `pass` (every run matched).
    """
    from onnx.backend.test.runner import Runner

    def mismatch(expected: list[np.ndarray], outputs: list[Any]) -> str | None:
        try:
            Runner.assert_similar_outputs(expected, list(outputs), case.rtol, case.atol)
        except (AssertionError, TypeError, ValueError) as e:
            return " ".join(str(e).split())
        return None

    sets = case.data_sets
    for feeds, expected in sets:
        try:
            outputs = run(feeds)
        except Exception as e:  # every refusal is a result
            return {"status": "error", "detail": _first_line(e), "first": False}
        if (detail := mismatch(expected, outputs)) is not None:
            return {"status": "fail", "detail": detail[:300], "first": False}
    if not sets:
        return {"status": "pass", "detail": "", "first": True}

    failures: list[str] = []

    def again(label: str, k: int) -> None:
        feeds, expected = sets[k]
        try:
            outputs = run(feeds)
        except Exception as e:
            failures.append(f"{label} raised {_first_line(e)}")
            return
        if mismatch(expected, outputs) is not None:
            worst = _worst_difference(expected, outputs, case.rtol, case.atol)
            failures.append(f"{label}: {worst}")

    for r in range(2, runs + 1):
        for k in range(len(sets)):
            again(f"run {r} of data set {k}", k)
    other = sets[1][0] if len(sets) > 1 else _shuffled(sets[0][0])
    with contextlib.suppress(Exception):  # its outputs are not checked, its errors no result
        run(other)
    again(f"run {runs + 1} of data set 0, after other inputs", 0)
    if failures:
        later = (runs - 1) * len(sets) + 1
        detail = f"{failures[0]} ({len(failures)} of {later} later runs wrong)"
        return {"status": "fail-rerun", "detail": detail[:300], "first": True}
    return {"status": "pass", "detail": "", "first": True}


def run_case(engine: str, case_id: str) -> dict[str, Any]:
    """Runs one case through one session of `engine`; returns {status, detail, first}."""
    case = load_case(case_id)
    try:
        with SESSIONS[engine](case) as run:
            return check_runs(case, run)
    except Exception as e:  # every refusal is a result
        return {"status": "error", "detail": _first_line(e), "first": False}


def _serve(engine: str, conn: Any) -> None:
    warnings.simplefilter("ignore")
    while True:
        case_id = conn.recv()
        if case_id is None:
            return
        start = time.perf_counter()
        result = run_case(engine, case_id)
        conn.send({**result, "seconds": time.perf_counter() - start})


class Worker:
    """One engine in a child process; a crash or hang there becomes a result."""

    def __init__(self, engine: str) -> None:
        self.engine = engine
        self.conn, child = mp.get_context("spawn").Pipe()
        self.proc = mp.get_context("spawn").Process(
            target=_serve, args=(engine, child), daemon=True
        )
        self.proc.start()
        child.close()

    def run(self, case_id: str, seconds: float) -> dict[str, Any]:
        start = time.perf_counter()
        self.conn.send(case_id)
        try:
            if self.conn.poll(seconds):
                return self.conn.recv()
            status, detail = "timeout", f"no result in {seconds:.0f} s"
        except EOFError:
            self.proc.join(5)
            status, detail = "crash", f"worker died (exit code {self.proc.exitcode})"
        self.stop()
        return {
            "status": status,
            "detail": detail,
            "first": False,
            "seconds": time.perf_counter() - start,
        }

    def stop(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join()

    def close(self) -> None:
        if self.proc.is_alive():
            self.conn.send(None)
            self.proc.join(10)
        self.stop()


def run_all(
    engines: list[str], ids: list[str], jobs: int, seconds: float
) -> dict[str, dict[str, dict]]:
    """Runs every case on every engine; results[engine][case] = {status, detail, first,
    seconds}, `first` whether the case's first round of runs matched."""
    from rich.progress import Progress

    results: dict[str, dict[str, dict]] = {e: {} for e in engines}
    work: queue.Queue[tuple[str, str]] = queue.Queue()
    # Engines interleave case by case, so a slow engine does not hold up the others' order.
    for case_id in ids:
        for engine in engines:
            work.put((engine, case_id))
    lock = threading.Lock()

    def drain(progress: Progress, task: Any) -> None:
        workers: dict[str, Worker] = {}
        try:
            while True:
                try:
                    engine, case_id = work.get_nowait()
                except queue.Empty:
                    return
                worker = workers.get(engine)
                if worker is None or not worker.proc.is_alive():
                    worker = workers[engine] = Worker(engine)
                result = worker.run(case_id, seconds)
                with lock:
                    results[engine][case_id] = {**result, "seconds": round(result["seconds"], 3)}
                    progress.advance(task)
        finally:
            for w in workers.values():
                w.close()

    with Progress(transient=True) as progress:
        task = progress.add_task("cases", total=work.qsize())
        threads = [
            threading.Thread(target=drain, args=(progress, task)) for _ in range(max(1, jobs))
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    return results


# --- reports -----------------------------------------------------------------------------


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {"onnx": onnx.__version__, "python": platform.python_version()}
    for dist in ("wasmhost", "tract", "onnxruntime", "wasmtime"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[dist] = metadata.version(dist)
    return out


def _ops(ids: list[str]) -> dict[str, str]:
    # From the generated cases directly: load_case would rebuild every data set too.
    tests = _node_tests()
    return {i: _main_op(tests[i[5:]].model, i[5:]) for i in ids if i.startswith("node/")}


def totals_table(engines: list[str], ids: list[str], results: dict) -> list[list[str]]:
    rows = []
    for suite in [*SUITES, "all"]:
        mine = [i for i in ids if suite == "all" or i.startswith(suite + "/")]
        if not mine:
            continue
        row = [suite, str(len(mine))]
        for e in engines:
            row.append(str(sum(results[e][i]["status"] == "pass" for i in mine)))
        rows.append(row)
    return rows


def runs_table(engines: list[str], ids: list[str], results: dict) -> list[list[str]]:
    """Per engine: node-suite (and all-suite) passes on the first run and on every run."""
    rows = []
    for suite in ("node", "all"):
        mine = [i for i in ids if suite == "all" or i.startswith(suite + "/")]
        if not mine or (suite == "all" and all(i.startswith("node/") for i in ids)):
            continue
        for e in engines:
            first = sum(bool(results[e][i].get("first")) for i in mine)
            every = sum(results[e][i]["status"] == "pass" for i in mine)
            rerun = sum(results[e][i]["status"] == "fail-rerun" for i in mine)
            rows.append([suite, e, str(len(mine)), str(first), str(every), str(rerun)])
    return rows


RUNS_HEADER = [
    "suite",
    "engine",
    "cases",
    "pass 1st run",
    f"pass all runs ({RUNS}+1)",
    "fail-rerun",
]
STATUSES = ("pass", "fail", "fail-rerun", "error", "timeout", "crash")


def reruns(engines: list[str], ids: list[str], results: dict) -> list[tuple[str, str, str]]:
    """Cases whose first run matched and a later one did not: (engine, case, detail)."""
    return [
        (e, i, results[e][i]["detail"])
        for e in engines
        for i in ids
        if results[e][i]["status"] == "fail-rerun"
    ]


def op_table(engines: list[str], ids: list[str], results: dict) -> list[list[str]]:
    by_op: dict[str, list[str]] = defaultdict(list)
    for case_id, op in _ops(ids).items():
        by_op[op].append(case_id)
    rows = []
    for op in sorted(by_op, key=str.lower):
        cases = by_op[op]
        row = [op, str(len(cases))]
        for e in engines:
            row.append(str(sum(results[e][i]["status"] == "pass" for i in cases)))
        rows.append(row)
    return rows


def print_tables(engines: list[str], ids: list[str], results: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for title, header, rows in (
        (
            "node suite by operator",
            ["operator", "cases", *engines],
            op_table(engines, ids, results),
        ),
        ("passes per suite", ["suite", "cases", *engines], totals_table(engines, ids, results)),
        ("first run and all runs", RUNS_HEADER, runs_table(engines, ids, results)),
    ):
        if not rows:
            continue
        table = Table(title=title)
        for col in header:
            table.add_column(
                col, justify="left" if col in ("operator", "suite", "engine") else "right"
            )
        for row in rows:
            table.add_row(*row)
        console.print(table)
    statuses = {e: Counter(r["status"] for r in results[e].values()) for e in engines}
    for e in engines:
        console.print(f"{e}: " + ", ".join(f"{k} {v}" for k, v in sorted(statuses[e].items())))
    for e, case_id, detail in reruns(engines, ids, results):
        print(f"{e} fail-rerun: {case_id}: {detail}")


def differences(results: dict, ids: list[str]) -> list[tuple[str, str, str]]:
    """Cases native tract passes and wasmhost does not: (case, status, detail)."""
    if "tract" not in results or "wasmhost" not in results:
        return []
    return [
        (i, results["wasmhost"][i]["status"], results["wasmhost"][i]["detail"])
        for i in ids
        if results["tract"][i]["status"] == "pass" and results["wasmhost"][i]["status"] != "pass"
    ]


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _left_out_text() -> str:
    why = left_out_node_cases()
    total = sum(len(v) for v in why.values())
    lines = [
        f"{total} of the {len(_node_tests())} node cases are not counted: their graph inputs or "
        "outputs are not tensors (the sandbox exchanges tensors; maps fed to DictVectorizer "
        "or CastMap are the exception, and no node case has one).\n"
    ]
    lines += [f"- {kind}: {len(names)}" for kind, names in sorted(why.items())]
    return "\n".join(lines)


def write_docs(
    path: Path, command: str, engines: list[str], ids: list[str], results: dict, took: float
) -> None:
    """Regenerates the figures section of `path`, keeping anything above the marker."""
    marker = "<!-- figures below are written by scripts/conformance.py -->"
    head = ""
    if path.exists() and marker in path.read_text():
        head = path.read_text().split(marker)[0]
    versions = ", ".join(f"{k} {v}" for k, v in _versions().items())
    beyond = [
        i
        for i in ids
        if "tract" in results
        and results["wasmhost"][i]["status"] == "pass"
        and results["tract"][i]["status"] != "pass"
    ]
    diffs = differences(results, ids)
    rerun_list = reruns(engines, ids, results)
    crashes = {e: [i for i in ids if results[e][i]["status"] == "crash"] for e in engines}
    parts = [
        head.rstrip() + "\n\n" if head else "",
        marker,
        "\n\n## Figures\n\n",
        f"Command: `{command}` ({len(ids)} cases, {took / 60:.1f} min on "
        f"{os.cpu_count()} cores).\n\nVersions: {versions}.\n\n",
        "### Passes per suite\n\n",
        _md_table(["suite", "cases", *engines], totals_table(engines, ids, results)),
        "\n\n### First run and all runs\n\n",
        f"A case passes only if all of its runs in one session match: every data set {RUNS} "
        "times, then once more after other inputs. `pass 1st run` counts the cases whose "
        "first run of each data set matched.\n\n",
        _md_table(RUNS_HEADER, runs_table(engines, ids, results)),
        "\n\nCases that pass their first run and fail a later one:\n\n",
        _md_table(
            ["case", "engine", "detail"],
            [[i, e, d.replace("|", "\\|")] for e, i, d in rerun_list],
        )
        if rerun_list
        else "None.",
        "\n\n### Outcomes\n\n",
        _md_table(
            [
                "engine",
                "pass",
                "fail (wrong output)",
                "fail-rerun (wrong on a later run)",
                "error (refused)",
                "timeout",
                "crash",
            ],
            [
                [e] + [str(sum(r["status"] == s for r in results[e].values())) for s in STATUSES]
                for e in engines
            ],
        ),
        "\n\n",
        "Worker crashes: "
        + "; ".join(f"{e}: {', '.join(c) if c else 'none'}" for e, c in crashes.items())
        + ".\n\n",
        "### Native tract passes that wasmhost does not\n\n",
        _md_table(
            ["case", "wasmhost", "detail"],
            [[i, s, d.replace("|", "\\|")] for i, s, d in diffs],
        )
        if diffs
        else "None.",
        "\n\n### wasmhost passes that native tract does not\n\n",
        ", ".join(f"`{i}`" for i in beyond) or "None.",
        "\n\n### Node cases left out\n\n",
        _left_out_text(),
        "\n\n### Node suite by operator\n\n",
        _md_table(["operator", "cases", *engines], op_table(engines, ids, results)),
        "\n",
    ]
    path.write_text("".join(parts))


def check_expected(path: Path, results: dict) -> int:
    expected = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    mine = results["wasmhost"]
    lost = [i for i in expected if i in mine and mine[i]["status"] != "pass"]
    unknown = [i for i in expected if i not in mine]
    new = sorted(i for i, r in mine.items() if r["status"] == "pass" and i not in expected)
    for i in lost:
        print(f"LOST  {i}: {mine[i]['status']} {mine[i]['detail']}")
    for i in new:
        print(f"NEW   {i} passes now: add it to {path}")
    checked = len(expected) - len(unknown)
    print(f"{checked} expected passes checked, {len(lost)} lost, {len(new)} new")
    return 1 if lost else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--suites", default=",".join(SUITES), help=f"or {CORPUS}")
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--only", help="regular expression on case ids")
    parser.add_argument("--case-timeout", type=float, default=CASE_SECONDS)
    parser.add_argument("--results", type=Path, help="write every result as JSON")
    parser.add_argument("--docs", type=Path, help="write the figures into this markdown")
    parser.add_argument("--check", type=Path, help="fail if a listed case no longer passes")
    parser.add_argument("--write-expected", type=Path, help="write wasmhost's passes")
    args = parser.parse_args(argv)
    suites = [s for s in args.suites.split(",") if s]
    engines = [e for e in args.engines.split(",") if e]
    if CORPUS in suites:
        if suites != [CORPUS]:
            parser.error(f"the {CORPUS} corpus runs on its own: --suites {CORPUS}")
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import sklearn_corpus

        return sklearn_corpus.run(args, argv)
    for name, allowed in ((suites, SUITES), (engines, ENGINES)):
        if bad := set(name) - set(allowed):
            parser.error(f"unknown {sorted(bad)}; choose from {', '.join(allowed)}")
    if (args.check or args.write_expected) and "wasmhost" not in engines:
        parser.error("--check and --write-expected need the wasmhost engine")

    ids = list_cases(suites)
    if args.only:
        ids = [i for i in ids if re.search(args.only, i)]
    start = time.perf_counter()
    results = run_all(engines, ids, args.jobs, args.case_timeout)
    took = time.perf_counter() - start
    print_tables(engines, ids, results)
    for case_id, status, detail in differences(results, ids):
        print(f"tract passes, wasmhost {status}: {case_id}: {detail}")
    if args.results:
        args.results.write_text(json.dumps(results, indent=1, sort_keys=True))
    if args.docs:
        command = "python scripts/conformance.py " + " ".join(
            a for a in (argv if argv is not None else sys.argv[1:])
        )
        write_docs(args.docs, command.strip(), engines, ids, results, took)
    if args.write_expected:
        passes = sorted(i for i, r in results["wasmhost"].items() if r["status"] == "pass")
        args.write_expected.write_text("".join(f"{i}\n" for i in passes))
    if args.check:
        return check_expected(args.check, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
