"""`wasmhost serve --ray` on a two-node Ray cluster on loopback against one `wasmhost serve`:
throughput and p50/p99 at 1, 2 and 4 replicas, and what the Ray hop costs per request.

    python scripts/bench_ray.py [--seconds 3] [--clients 1,8] [--replicas 1,2,4]

It runs in a network namespace of its own (it re-executes itself under `unshare -n`, as
root or where user namespaces allow it): Ray advertises the machine's routable address
rather than 127.0.0.1, and none of its traffic may leave the machine. Inside, PostgreSQL
and moto's S3 (tests/servers.py) hold the registry; a head node and a worker node
(`ray start`, `--node-cpus` logical CPUs each) run the replicas; the front is restarted
for each replica count. Clients are threads with keep-alive connections sending OIP v2
binary requests (scripts/bench_serve.py's). Everything shares this machine's cores: the
figures are ratios measured in one run, not a capacity claim.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # servers.py: PostgreSQL and moto, on 127.0.0.1

import numpy as np  # noqa: E402
from bench_serve import LIGHT, drive, infer_caller, pct, tiny  # noqa: E402
from servers import free_port, make_bucket, start_moto, start_postgres  # noqa: E402

from wasmhost import Registry  # noqa: E402


def in_namespace() -> None:
    """Re-executes this script in a network namespace of its own, loopback up."""
    command = " ".join([sys.executable, *map(_quote, sys.argv), "--in-namespace"])
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    proc = subprocess.run(["unshare", "-n", "sh", "-c", f"ip link set lo up && {command}"], env=env)
    raise SystemExit(proc.returncode)


def _quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)


def ray_command() -> list[str]:
    script = Path(sys.executable).with_name("ray")
    return [str(script)] if script.exists() else [shutil.which("ray") or "ray"]


def wait(port: int, process: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited ({process.returncode})")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/v2/health/live")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"the server did not start in {timeout:g} s")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(port: int, pid: int, models, args) -> list[tuple[str, int, float, list[float], float]]:
    """(model, clients, requests/s, latencies, the server process's CPU seconds per
    request) for each model and number of clients."""
    rows = []
    for name, (_, feeds) in models.items():
        http_call = infer_caller(port, f"bench.{name}", feeds)

        drive(4, 2.0, 400, http_call)  # warm-up: every replica loads the model
        for clients in args.clients:
            cpu = cpu_seconds(pid)
            rate, latencies = drive(clients, args.seconds, args.max_requests, http_call)
            rows.append((name, clients, rate, latencies, (cpu_seconds(pid) - cpu) / len(latencies)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--max-requests", type=int, default=20_000)
    parser.add_argument("--clients", default="1,8")
    parser.add_argument("--replicas", default="1,2,4")
    parser.add_argument("--rounds", type=int, default=2, help="each server measured this often")
    parser.add_argument("--node-cpus", type=int, default=2, help="logical CPUs per Ray node")
    parser.add_argument("--in-namespace", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.in_namespace:
        in_namespace()
    args.clients = [int(c) for c in args.clients.split(",")]
    replica_counts = [int(r) for r in args.replicas.split(",")]
    rng = np.random.default_rng(0)
    models = {
        "tiny": (tiny(), {n: rng.standard_normal((1, 4), dtype=np.float32) for n in "ab"}),
        "squeezenet": (
            (LIGHT / "light_squeezenet.onnx").read_bytes(),
            {"data_0": rng.standard_normal((1, 3, 224, 224), dtype=np.float32)},
        ),
    }
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's request log
    temp = Path(tempfile.mkdtemp(prefix="whbench-", dir="/tmp"))
    postgres = start_postgres()
    moto = start_moto()
    env = {
        **os.environ,
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_AUTH_MODE": "token",  # as a cluster should run (the hop's cost includes it)
        "RAY_AUTH_TOKEN": secrets.token_hex(32),
        "AWS_ENDPOINT_URL": moto.endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    os.environ.update({k: v for k, v in env.items() if k.startswith("AWS_")})
    nodes: list[subprocess.Popen] = []
    results: dict[str, list] = {}
    try:
        database = postgres.url
        blobs = f"s3://{make_bucket(moto.endpoint, 'bench')}/models"
        with Registry(database, blobs=blobs) as registry:
            registry.create_project("bench", limits={"concurrency": 2, "queue": 256})
            for name, (data, _) in models.items():
                registry.upload("bench", name, data)
        registry_args = ["--registry", database, "--blobs", blobs]
        quiet = ["--no-auth", "--log-level", "warning"]

        head_port = free_port()
        common = ["start", "--block", "--node-ip-address=127.0.0.1", f"--num-cpus={args.node_cpus}"]
        common.append("--object-store-memory=80000000")
        log = (temp / "ray.log").open("ab")
        head = [*common, "--head", f"--port={head_port}", "--include-dashboard=false"]
        head += ["--disable-usage-stats", f"--temp-dir={temp}"]
        nodes.append(subprocess.Popen([*ray_command(), *head], env=env, stdout=log, stderr=log))
        status = [*ray_command(), "status", f"--address=127.0.0.1:{head_port}"]
        deadline = time.monotonic() + 60
        while subprocess.run(status, env=env, capture_output=True).returncode != 0:
            if time.monotonic() > deadline:
                raise SystemExit(f"the head node did not start: {temp / 'ray.log'}")
            time.sleep(1)
        worker = [*common, f"--address=127.0.0.1:{head_port}"]
        nodes.append(subprocess.Popen([*ray_command(), *worker], env=env, stdout=log, stderr=log))
        time.sleep(5)

        servers = {"wasmhost serve": []}
        for count in replica_counts:
            name = f"serve --ray, {count} replica{'s' if count > 1 else ''}"
            servers[name] = ["--ray", f"127.0.0.1:{head_port}", "--replicas", str(count)]
            servers[name] += ["--replica-cpus", "0.5"]
        # Rounds interleave the servers, so that the machine's other load falls on each alike.
        for _ in range(args.rounds):
            for name, extra in servers.items():
                port = free_port()
                command = [sys.executable, "-m", "wasmhost.cli", *registry_args, "serve"]
                process = subprocess.Popen([*command, "--port", str(port), *quiet, *extra], env=env)
                try:
                    wait(port, process)
                    results.setdefault(name, []).extend(measure(port, process.pid, models, args))
                finally:
                    stop(process)
    finally:
        with contextlib.suppress(Exception):
            subprocess.run(
                [*ray_command(), "stop", "--force"], env=env, capture_output=True, timeout=60
            )
        for node in nodes:
            with contextlib.suppress(Exception):
                node.kill()
        moto.stop()
        postgres.stop()
        shutil.rmtree(temp, ignore_errors=True)
    report(results)


def report(results: dict[str, list]) -> None:
    """One row per server, model and clients: the rounds' mean rate and CPU per request,
    their pooled latencies."""
    merged: dict[tuple[str, str, int], tuple[list[float], list[float], list[float]]] = {}
    for server, rows in results.items():
        for name, clients, rate, latencies, cpu in rows:
            rates, pooled, cpus = merged.setdefault((server, name, clients), ([], [], []))
            rates.append(rate)
            pooled.extend(latencies)
            cpus.append(cpu)
    print("| server | model | clients | req/s | p50 ms | p99 ms | server process CPU ms/req |")
    print("|---|---|---|---|---|---|---|")
    for (server, name, clients), (rates, pooled, cpus) in merged.items():
        print(
            f"| {server} | {name} | {clients} | {sum(rates) / len(rates):.0f} "
            f"| {pct(pooled, 0.5):.2f} | {pct(pooled, 0.99):.2f} "
            f"| {sum(cpus) / len(cpus) * 1e3:.2f} |"
        )
    for (server, name, clients), (_, pooled, _) in merged.items():
        if server != "wasmhost serve" and clients == 1:
            hop = pct(pooled, 0.5) - pct(merged[("wasmhost serve", name, 1)][1], 0.5)
            print(f"{server}, {name}, 1 client: p50 {hop:+.2f} ms against wasmhost serve")
    print(f"({os.cpu_count()} CPUs; load {' '.join(f'{v:.2f}' for v in os.getloadavg())})")


if __name__ == "__main__":
    main()
