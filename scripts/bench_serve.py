"""The service's load benchmark: throughput and latency of `wasmhost serve` against the
same session called in-process, at several numbers of concurrent clients.

    python scripts/bench_serve.py [--seconds 5] [--clients 1,2,8,32] [--models tiny,squeezenet]

A server is started on 127.0.0.1 (a free port, `--no-auth`, a temporary registry); each
client is a thread with its own keep-alive connection sending OIP v2 binary requests
(what tritonclient sends). The peer is one `InferenceSession` (the same pool size as the
server's, `concurrency`) driven by as many threads. Clients and server share this
machine's cores: the figures are ratios measured in the same run, not a capacity claim.
Every run is bounded by `--seconds` per measurement and `--max-requests`.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from wasmhost import InferenceSession, Registry

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"


def tiny() -> bytes:
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 4]) for n in ("a", "b")],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def body(feeds: dict[str, np.ndarray]) -> tuple[bytes, dict[str, str]]:
    inputs = [
        {
            "name": n,
            "datatype": "FP32",
            "shape": list(a.shape),
            "parameters": {"binary_data_size": a.nbytes},
        }
        for n, a in feeds.items()
    ]
    header = json.dumps({"inputs": inputs, "parameters": {"binary_data_output": True}}).encode()
    data = header + b"".join(a.tobytes() for a in feeds.values())
    return data, {
        "Inference-Header-Content-Length": str(len(header)),
        "Content-Type": "application/octet-stream",
    }


def infer_caller(port: int, model: str, feeds: dict[str, np.ndarray]):
    """A factory of infer calls to `model` on 127.0.0.1:`port`, one HTTP connection per
    caller (what `drive` takes); a call raises on any answer but 200."""
    payload, headers = body(feeds)
    path = f"/v2/models/{model}/infer"

    def factory():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

        def call() -> None:
            conn.request("POST", path, payload, headers)
            response = conn.getresponse()
            data = response.read()
            if response.status != 200:
                raise RuntimeError(f"{response.status}: {data[:200]!r}")

        return call

    return factory


def drive(clients: int, seconds: float, limit: int, call_factory) -> tuple[float, list[float]]:
    """Runs `clients` threads calling until `seconds` or `limit` calls: (calls/s, latencies)."""
    latencies: list[float] = []
    lock = threading.Lock()
    stop = time.perf_counter() + seconds
    count = [0]

    def worker() -> None:
        call = call_factory()
        mine = []
        while time.perf_counter() < stop:
            with lock:
                if count[0] >= limit:
                    break
                count[0] += 1
            start = time.perf_counter()
            call()
            mine.append(time.perf_counter() - start)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(latencies) / (time.perf_counter() - started), latencies


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--max-requests", type=int, default=20_000)
    parser.add_argument("--clients", default="1,2,8,32")
    parser.add_argument("--models", default="tiny,squeezenet")
    parser.add_argument("--concurrency", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    counts = [int(c) for c in args.clients.split(",")]
    rng = np.random.default_rng(0)
    models = {
        "tiny": (tiny(), {n: rng.standard_normal((1, 4), dtype=np.float32) for n in "ab"}),
        "squeezenet": (
            (LIGHT / "light_squeezenet.onnx").read_bytes(),
            {"data_0": rng.standard_normal((1, 3, 224, 224), dtype=np.float32)},
        ),
    }
    with tempfile.TemporaryDirectory() as home:
        registry = Registry(home)
        registry.create_project(
            "bench", limits={"concurrency": args.concurrency, "queue": 256, "timeout": 60}
        )
        for name in args.models.split(","):
            registry.upload("bench", name, models[name][0])
        registry.close()
        port = _free_port()
        env = {**os.environ, "WASMHOST_HOME": home}
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "wasmhost.cli",
                "serve",
                "--port",
                str(port),
                "--no-auth",
                "--log-level",
                "warning",
            ],
            env=env,
        )
        try:
            _wait(port)
            rows = []
            for name in args.models.split(","):
                data, feeds = models[name]
                http_call = infer_caller(port, f"bench.{name}", feeds)

                session = InferenceSession(data, pool_size=args.concurrency)
                in_process = lambda session=session, feeds=feeds: lambda: session.run(None, feeds)  # noqa: E731
                drive(2, 1.0, 200, http_call)  # warm-up: load, plan, connections
                drive(2, 1.0, 200, in_process)
                for clients in counts:
                    served, served_lat = drive(clients, args.seconds, args.max_requests, http_call)
                    local, local_lat = drive(clients, args.seconds, args.max_requests, in_process)
                    rows.append((name, clients, served, served_lat, local, local_lat))
                session.close()
        finally:
            server.terminate()
            server.wait(60)
    print(
        f"{'model':<11}{'clients':>8}{'server/s':>10}{'p50 ms':>8}{'p99 ms':>8}"
        f"{'in-proc/s':>11}{'p50 ms':>8}{'p99 ms':>8}{'+p50 ms':>9}{'x 1 client':>11}"
    )
    base: dict[str, float] = {}
    for name, clients, served, s_lat, local, l_lat in rows:
        base.setdefault(name, served)
        print(
            f"{name:<11}{clients:>8}{served:>10.0f}{pct(s_lat, 0.5):>8.2f}{pct(s_lat, 0.99):>8.2f}"
            f"{local:>11.0f}{pct(l_lat, 0.5):>8.2f}{pct(l_lat, 0.99):>8.2f}"
            f"{pct(s_lat, 0.5) - pct(l_lat, 0.5):>9.2f}{served / base[name]:>11.2f}"
        )
    print(
        f"(medians over {args.seconds:g} s per row; {os.cpu_count()} CPUs; "
        f"load {' '.join(f'{v:.2f}' for v in os.getloadavg())})"
    )


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/v2/health/live")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the server did not start in 60 s")


if __name__ == "__main__":
    main()
