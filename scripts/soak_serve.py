"""Soak `wasmhost serve`: many mixed requests, hostile ones among them, from a few threads
against one live server on 127.0.0.1; then its memory and isolates must be where they
were.

    python scripts/soak_serve.py [--requests 10000] [--seconds 600] [--threads 4]
                                 [--rss-factor 1.5] [--keep]

A server is started (tests/serve_support.py: a child process on a free loopback port,
a temporary registry) with three tenants: `good` (y = x + 1, default limits), `bp`
(concurrency 1, queue 1: a MatMul loop of a few ms, so some requests earn 429) and `evil`
(64 MiB, 2 s, concurrency 1, queue 1: a memory bomb, a guest crash, a loop past its
timeout). The mix, by weight: good JSON and binary inferences, malformed bodies, metadata
and health, bp, evil's bomb and crash, and rarely (each costs 2 s of a core) evil's loop.

Printed: requests by kind and status, the server's RSS at start (after one request to
each model), in the middle and at the end, its open file descriptors, and the isolates
/metrics reports per model. Exits 1 if the RSS grew past `--rss-factor` times its start,
if any model holds more isolates than its pool size or still has requests in flight,
if any answer was a 500 other than evil's GuestCrash, if a request failed at the
transport level, or if SIGTERM did not stop the server with exit 0. Everything is bounded:
`--requests` and `--seconds`, and a timeout on every call.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import signal
import struct
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
from onnx import TensorProto, helper

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from serve_support import LiveServer, start_server

from wasmhost import Registry

TIMEOUT = 30
X = [1.0, 2.0, 3.0, 4.0]
#: Pool size (= concurrency) of each model the soak loads: more live isolates is a leak.
POOL = {"good.add": 2, "bp.slow": 1, "evil.bomb": 1, "evil.crash": 1, "evil.spin": 1}


def _model(nodes, inputs, outputs, initializers=()) -> bytes:
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return model.SerializeToString()


def _f32(name: str, shape) -> object:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def _i64(name: str, shape) -> object:
    return helper.make_tensor_value_info(name, TensorProto.INT64, shape)


def add_one() -> bytes:
    k = helper.make_tensor("k", TensorProto.FLOAT, [4], [1.0] * 4)
    return _model(
        [helper.make_node("Add", ["x", "k"], ["y"])],
        [_f32("x", ["b", 4])],
        [_f32("y", ["b", 4])],
        [k],
    )


def spin(matmuls: int) -> bytes:
    nodes = [helper.make_node("Expand", ["x", "shape"], ["m0"])]
    nodes += [helper.make_node("MatMul", [f"m{i}", "m0"], [f"m{i + 1}"]) for i in range(matmuls)]
    nodes.append(helper.make_node("ReduceSum", [f"m{matmuls}"], ["y"], keepdims=0))
    return _model(nodes, [_f32("x", [1]), _i64("shape", [2])], [_f32("y", [])])


def bomb() -> bytes:
    return _model(
        [helper.make_node("Expand", ["x", "shape"], ["y"])],
        [_f32("x", [1]), _i64("shape", [1])],
        [_f32("y", ["n"])],
    )


def crash() -> bytes:
    return _model(
        [helper.make_node("Gather", ["table", "i"], ["y"])],
        [_f32("table", [4, 2]), _i64("i", ["n"])],
        [_f32("y", ["n", 2])],
    )


def _t(name: str, datatype: str, shape: list[int], data: list) -> dict:
    return {"name": name, "datatype": datatype, "shape": shape, "data": data}


def _spin_body(n: int) -> bytes:
    return json.dumps(
        {"inputs": [_t("x", "FP32", [1], [1e-3]), _t("shape", "INT64", [2], [n, n])]}
    ).encode()


def _binary_good() -> tuple[bytes, dict[str, str]]:
    head = json.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "datatype": "FP32",
                    "shape": [1, 4],
                    "parameters": {"binary_data_size": 16},
                }
            ],
            "parameters": {"binary_data_output": True},
        }
    ).encode()
    return head + struct.pack("<4f", *X), {"Inference-Header-Content-Length": str(len(head))}


_MALFORMED = [
    b"{not json",
    b"[1, 2]",
    b'{"inputs": []}',
    json.dumps({"inputs": [_t("x", "FP128", [1, 4], X)]}).encode(),
    json.dumps({"inputs": [_t("x", "FP32", [-1, 4], X)]}).encode(),
    json.dumps({"inputs": [_t("x", "FP32", [2, 2], [[1.0, 2.0], [3.0]])]}).encode(),
    json.dumps({"inputs": [_t("x", "FP32", [1, 4], X[:3])]}).encode(),
    b'{"inputs": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
]

#: kind -> (weight, method, path, body, headers, the statuses it may earn).
KINDS: dict[str, tuple[float, str, str, bytes | None, dict[str, str], set[int]]] = {
    "good-json": (
        40,
        "POST",
        "/v2/models/good.add/infer",
        json.dumps({"inputs": [_t("x", "FP32", [1, 4], X)]}).encode(),
        {},
        {200},
    ),
    "good-binary": (15, "POST", "/v2/models/good.add/infer", *_binary_good(), {200}),
    "malformed": (10, "POST", "/v2/models/good.add/infer", None, {}, {400}),
    "metadata": (5, "GET", "/v2/models/good.add", None, {}, {200}),
    "health": (3, "GET", "/v2/health/ready", None, {}, {200}),
    "bp-slow": (8, "POST", "/v2/models/bp.slow/infer", _spin_body(128), {}, {200, 429}),
    "evil-bomb": (
        8,
        "POST",
        "/v2/models/evil.bomb/infer",
        json.dumps(
            {"inputs": [_t("x", "FP32", [1], [1.0]), _t("shape", "INT64", [1], [1 << 28])]}
        ).encode(),
        {},
        {422, 429},
    ),
    "evil-crash": (
        8,
        "POST",
        "/v2/models/evil.crash/infer",
        json.dumps(
            {"inputs": [_t("table", "FP32", [4, 2], list(range(8))), _t("i", "INT64", [2], [0, 9])]}
        ).encode(),
        {},
        {500, 429},
    ),
    "evil-spin": (0.3, "POST", "/v2/models/evil.spin/infer", _spin_body(1024), {}, {504, 429}),
}


def rss_mib(server: LiveServer) -> float:
    status = Path(f"/proc/{server.process.pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status)[1]) / 1024


def open_fds(server: LiveServer) -> int:
    return len(list(Path(f"/proc/{server.process.pid}/fd").iterdir()))


def scrape(server: LiveServer) -> dict[tuple[str, tuple], float]:
    text = httpx.get(f"{server.url}/metrics", headers=server.headers(), timeout=TIMEOUT).text
    samples = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name_labels, _, value = line.rpartition(" ")
        name = name_labels.partition("{")[0]
        labels = tuple(sorted(re.findall(r'(\w+)="([^"]*)"', name_labels)))
        samples[(name, labels)] = float(value)
    return samples


def pools(server: LiveServer) -> dict[str, dict[str, float]]:
    """model -> {"live", "idle", "in_flight"} from /metrics."""
    found: dict[str, dict[str, float]] = {}
    for (name, labels), value in scrape(server).items():
        d = dict(labels)
        if name == "wasmhost_pool_isolates":
            found.setdefault(d["model"].rsplit(":", 1)[0], {})[d["state"]] = value
        elif name == "wasmhost_in_flight":
            found.setdefault(d["model"].rsplit(":", 1)[0], {})["in_flight"] = value
    return found


def setup(home: Path) -> None:
    registry = Registry(home)
    registry.create_project("good")
    registry.upload("good", "add", add_one())
    registry.create_project("bp", limits={"concurrency": 1, "queue": 1})
    registry.upload("bp", "slow", spin(8))
    registry.create_project(
        "evil", limits={"memory": "64MiB", "timeout": 2, "concurrency": 1, "queue": 1}
    )
    registry.upload("evil", "bomb", bomb())
    registry.upload("evil", "crash", crash())
    registry.upload("evil", "spin", spin(40))
    registry.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=600, help="stop sending after this")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument(
        "--rss-factor", type=float, default=1.5, help="fail if end RSS > this x start RSS"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the temporary registry")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="wasmhost-soak-"))
    setup(home)
    server = start_server(home)
    problems: list[str] = []
    try:
        rss_bare = rss_mib(server)
        with httpx.Client(base_url=server.url, headers=server.headers(), timeout=TIMEOUT) as c:
            for _, method, path, body, headers, _ in KINDS.values():  # every model loaded
                c.request(method, path, content=body, headers=headers)
        rss = {"start": rss_mib(server)}
        fds_start = open_fds(server)
        names = list(KINDS)
        weights = [KINDS[k][0] for k in names]
        counts: Counter[tuple[str, int | str]] = Counter()
        lock = threading.Lock()
        sent = 0
        started = time.monotonic()
        deadline = started + args.seconds

        def worker(seed: int) -> None:
            nonlocal sent
            rng = random.Random(seed)
            with httpx.Client(base_url=server.url, headers=server.headers(), timeout=TIMEOUT) as c:
                while time.monotonic() < deadline:
                    with lock:
                        if sent >= args.requests:
                            return
                        sent += 1
                        if sent == args.requests // 2:
                            rss["middle"] = rss_mib(server)
                    kind = rng.choices(names, weights)[0]
                    _, method, path, body, headers, expected = KINDS[kind]
                    if kind == "malformed":
                        body = rng.choice(_MALFORMED)
                    try:
                        resp = c.request(method, path, content=body, headers=headers)
                        outcome: int | str = resp.status_code
                        if outcome not in expected:
                            with lock:
                                problems.append(f"{kind}: {outcome} {resp.text[:200]}")
                    except httpx.HTTPError as e:
                        outcome = type(e).__name__
                        with lock:
                            problems.append(f"{kind}: {outcome} {e}")
                    with lock:
                        counts[(kind, outcome)] += 1

        threads = [
            threading.Thread(target=worker, args=(args.seed + i,)) for i in range(args.threads)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(args.seconds + 2 * TIMEOUT)
        if any(t.is_alive() for t in threads):
            problems.append("a client thread did not finish")
        elapsed = time.monotonic() - started
        # Bounded: in-flight requests (a 2 s spin at most) drain, then the pools are read.
        settle = time.monotonic() + 10
        while time.monotonic() < settle:
            found = pools(server)
            if all(p.get("in_flight", 0) == 0 for p in found.values()):
                break
            time.sleep(0.1)
        rss.setdefault("middle", float("nan"))
        rss["end"] = rss_mib(server)
        fds_end = open_fds(server)

        total = sum(counts.values())
        print(
            f"{total} requests in {elapsed:.1f} s ({total / elapsed:.0f}/s) "
            f"from {args.threads} threads"
        )
        by_status = Counter()
        for (_, outcome), n in counts.items():
            by_status[outcome] += n
        print("by status:", dict(sorted(by_status.items(), key=lambda kv: str(kv[0]))))
        for kind in names:
            row = {o: n for (k, o), n in sorted(counts.items(), key=str) if k == kind}
            print(f"  {kind:12s} {row}")
        print(
            f"server RSS: {rss_bare:.0f} MiB bare, {rss['start']:.0f} MiB at start (models "
            f"loaded), {rss['middle']:.0f} MiB in the middle, {rss['end']:.0f} MiB at the end"
        )
        print(f"server open fds: {fds_start} at start, {fds_end} at the end")
        print("isolates (live/idle/in flight) per model:")
        for model, p in sorted(found.items()):
            print(
                f"  {model:12s} {p.get('live', 0):.0f}/{p.get('idle', 0):.0f}/"
                f"{p.get('in_flight', 0):.0f} (pool size {POOL.get(model, '?')})"
            )
            if p.get("live", 0) > POOL.get(model, 0):
                problems.append(f"{model}: {p.get('live'):.0f} live isolates, pool {POOL[model]}")
            if p.get("in_flight", 0):
                problems.append(f"{model}: {p['in_flight']:.0f} requests still in flight")
        if rss["end"] > args.rss_factor * rss["start"]:
            problems.append(
                f"RSS grew from {rss['start']:.0f} to {rss['end']:.0f} MiB "
                f"(over {args.rss_factor}x)"
            )
        if fds_end > fds_start + 16:
            problems.append(f"open fds grew from {fds_start} to {fds_end}")
    finally:
        code = server.stop(signal.SIGTERM)
        print(f"server stopped by SIGTERM: exit {code}")
        if code != 0:
            problems.append(f"the server exited {code} on SIGTERM")
        log = server.log.read_text()
        if "internal error" in log or "Traceback" in log:
            problems.append("the server's log has an internal error (see it with --keep)")
        if args.keep:
            print(f"registry and log kept in {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)
    for p in problems[:20]:
        print("PROBLEM:", p)
    if problems:
        print(f"FAILED: {len(problems)} problems")
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
