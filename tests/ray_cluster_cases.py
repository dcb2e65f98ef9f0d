"""A two-node Ray cluster on loopback serving `wasmhost serve --ray`: run by
tests/test_ray.py inside a network namespace of its own, never collected by itself (its
name is not test_*.py).

Here: PostgreSQL and moto's S3 (tests/servers.py) hold the one registry; a head node and a
worker node (`ray start --block`, one CPU each) run the replicas, each of which needs more
than half a CPU, so that two replicas take one node each; the front (`wasmhost serve --ray`)
is the ingress. The cases run in order, on one cluster: replicas on both nodes, tritonclient
against onnxruntime (every case more than once), hostile models, backpressure, a replica
killed in the middle of a request, a worker node lost and a new one joining.

Every client call has a timeout and every wait a deadline: a hang fails a case.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pytest
import ray
import tritonclient.http as triton
from conftest import SQUEEZENET, assert_one_line_error, assert_outputs_equal, reference
from ray import serve
from registry_support import add_model
from servers import MotoServer, PostgresServer, free_port, make_bucket
from test_serve import two_outputs_model
from test_serve_robustness import ATTACKS, EVIL, bomb_model, crash_model, spin_body, spin_model
from tritonclient.utils import np_to_triton_dtype

from wasmhost import Registry
from wasmhost.errors import Unavailable

if not os.environ.get("WASMHOST_RAY_NETNS_FILE"):
    pytest.skip(
        "run by tests/test_ray.py inside its own network namespace", allow_module_level=True
    )
Path(os.environ["WASMHOST_RAY_NETNS_FILE"]).write_text(os.readlink("/proc/self/ns/net"))
# Ray's token authentication, as a cluster should run: test_ray.py gives this process (the
# nodes, the front and the driver inherit it) a token of its own, before ray is imported
# (it reads the mode once); whatever ~/.ray/auth_token holds is not used.
assert os.environ.get("RAY_AUTH_MODE") == "token" and os.environ.get("RAY_AUTH_TOKEN")

#: A line Ray's C++ core logs itself: `[2026-11-29 07:30:25,659 W 14107 14107] x.cc:330: ...`.
RAY_CORE_LOG = re.compile(r"\[[\d-]+ [\d:,]+ [DIWEF] \d+ \d+\] [\w.]+\.cc:\d+: ")
#: Seconds one client call may take (a hang, not a slow run, fails the case).
TIMEOUT = 60
#: Runs of each case against onnxruntime.
REPEATS = 3
APP = "wasmhost"
ADD = "ray.add"
SPIN = "ray.spin"
SNAP = "ray.snap"


def ray_command() -> list[str]:
    script = Path(sys.executable).with_name("ray")
    return [str(script)] if script.exists() else [shutil.which("ray") or "ray"]


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(children.get(p, []))
    return found


def wait_for(what: str, check: Callable[[], bool], timeout: float = 120.0) -> None:
    """Polls `check` until it is true; a Ray error on the way (a replica that died since
    it was routed to) counts as not yet."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            if check():
                return
        except ray.exceptions.RayError as e:
            last = e
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g} s (last: {last})")
        time.sleep(0.5)


@dataclass
class Cluster:
    """`ray start --block` nodes on 127.0.0.1; `workers` are the worker nodes' processes."""

    port: int
    temp: Path
    env: dict[str, str]
    head: subprocess.Popen
    workers: list[subprocess.Popen] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, *args: str, log: str) -> subprocess.Popen:
        out = (self.temp / log).open("ab")
        return subprocess.Popen(
            [*ray_command(), "start", "--block", "--node-ip-address=127.0.0.1", *args],
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )

    def add_worker(self) -> subprocess.Popen:
        node = self.start(
            f"--address={self.address}",
            "--num-cpus=1",
            "--object-store-memory=80000000",
            log=f"worker{len(self.workers)}.log",
        )
        self.workers.append(node)
        return node

    def kill(self, node: subprocess.Popen) -> None:
        """The node lost at once: SIGKILL to its raylet, its workers, everything on it."""
        for pid in descendants(node.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        node.wait(30)

    def alive(self) -> set[str]:
        return {n["NodeID"] for n in ray.nodes() if n["Alive"]}


@pytest.fixture(scope="module")
def cluster(moto_server: MotoServer) -> Iterator[Cluster]:
    temp = Path(os.environ["WASMHOST_RAY_TEMP"])  # short (Ray's socket paths); test_ray.py's
    env = {
        **os.environ,
        "RAY_USAGE_STATS_ENABLED": "0",
        # A node whose raylet is gone is declared dead within ~3 s, not ~30 s.
        "RAY_health_check_initial_delay_ms": "1000",
        "RAY_health_check_period_ms": "1000",
        "RAY_health_check_timeout_ms": "1000",
        "RAY_health_check_failure_threshold": "3",
        # The replicas read the registry's blobs from moto's server, as boto3 finds it.
        "AWS_ENDPOINT_URL": moto_server.endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    for name in ["AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"]:
        env.pop(name, None)
    os.environ.update({k: env[k] for k in env if k.startswith("AWS_")})
    port = free_port()
    head = Cluster(port, temp, env, None).start(  # type: ignore[arg-type]
        "--head",
        f"--port={port}",
        "--num-cpus=1",
        "--include-dashboard=false",
        "--disable-usage-stats",
        f"--temp-dir={temp}",
        "--object-store-memory=80000000",
        log="head.log",
    )
    found = Cluster(port, temp, env, head)
    try:
        wait_for("the head node", lambda: _connect(found.address), 60)
        found.add_worker()
        wait_for("two nodes", lambda: len(found.alive()) == 2, 60)
        yield found
    finally:
        with contextlib.suppress(Exception):
            ray.shutdown()
        subprocess.run(
            [*ray_command(), "stop", "--force"], env=env, capture_output=True, timeout=60
        )
        for node in [head, *found.workers]:
            for pid in descendants(node.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        shutil.rmtree(temp, ignore_errors=True)


def _connect(address: str) -> bool:
    try:
        ray.init(address=address, log_to_driver=False, logging_level="warning")
        return True
    except (ConnectionError, RuntimeError):
        return False


@dataclass
class Front:
    """`wasmhost serve --ray` on 127.0.0.1: its URL and an admin token's secret."""

    process: subprocess.Popen
    url: str
    host_port: str
    admin: str
    log: Path
    #: OIP name -> the model's bytes (the oracle's input).
    models: dict[str, bytes]
    #: The registry's database and blob store URLs.
    registry: tuple[str, str] = ("", "")

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin}"}

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers(), timeout=TIMEOUT)


@pytest.fixture(scope="module")
def front(cluster: Cluster, postgres_server: PostgresServer, moto_server: MotoServer):
    database = postgres_server.new_database(f"ray_{os.getpid()}")
    blobs = f"s3://{make_bucket(moto_server.endpoint, f'ray-{os.getpid()}')}/models"
    models = {
        "ray.add": add_model(1.0),
        "ray.two": two_outputs_model(),
        "ray.squeezenet": SQUEEZENET.read_bytes(),
        SPIN: spin_model(40),
    }
    with Registry(database, blobs=blobs) as registry:
        registry.create_project("ray")
        registry.create_project("evil", limits=EVIL)
        registry.upload("ray", "add", add_model(2.0))  # version 1: x + 2; version 2: x + 1
        for name, data in models.items():
            registry.upload(name.split(".")[0], name.split(".")[1], data)
        for name, data in [
            ("bomb", bomb_model()),
            ("spin", spin_model(40)),
            ("crash", crash_model()),
        ]:
            registry.upload("evil", name, data)
        # One version snapshotted at upload (tests turn snapshots off: a compile of
        # 10-15 s each), into this machine's cache, which both nodes share here.
        registry.set_setting("snapshots", "on")
        registry.upload("ray", "snap", models.setdefault(SNAP, add_model(5.0)))
        _, admin = registry.create_token("ray-admin", role="admin")
    deploying = ["--replicas", "2", "--replica-cpus", "0.6", "--max-ongoing-requests", "2"]
    deploying += ["--max-queued-requests", "2", "--request-timeout", "45", "--start-timeout", "120"]
    registry = (database, blobs)
    process, port, log = start_front(cluster, registry, "front", *deploying)
    url = f"http://127.0.0.1:{port}"
    try:
        yield Front(process, url, f"127.0.0.1:{port}", admin, log, models, registry)
    finally:
        stop_front(process, log)


def start_front(
    cluster: Cluster, registry: tuple[str, str], name: str, *extra: str
) -> tuple[subprocess.Popen, int, Path]:
    """`wasmhost serve --ray` on a free port, once it answers; its log is `name`.log."""
    port = free_port()
    log = cluster.temp / f"{name}.log"
    args = ["-m", "wasmhost.cli", "--registry", registry[0], "--blobs", registry[1], "serve"]
    args += ["--port", str(port), "--ray", cluster.address, *extra]
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, *args], env=cluster.env, stdout=out, stderr=subprocess.STDOUT
        )

    def up() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"the front exited ({process.returncode}):\n{log.read_text()}")
        with contextlib.suppress(httpx.HTTPError):
            return (
                httpx.get(f"http://127.0.0.1:{port}/v2/health/live", timeout=2).status_code == 200
            )
        return False

    try:
        wait_for("the front", up, 180)
    except BaseException:
        stop_front(process, log, check=False)
        raise
    return process, port, log


def stop_front(process: subprocess.Popen, log: Path, check: bool = True) -> None:
    """SIGTERM; the front must exit 0 with no traceback in its log."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    text = log.read_text(errors="replace")
    if check:
        assert process.returncode == 0, text[-4000:]
        assert "Traceback" not in text, text[-4000:]


@pytest.fixture(scope="module")
def handle(front: Front):
    """The deployment's handle, from this process (a driver of the cluster too)."""
    return serve.get_app_handle(APP)


def replicas(handle, model_id: str | None = None, calls: int = 40) -> dict[int, str]:
    """pid -> node of the replicas that answered `calls` `where` calls (sequential calls
    without a model id go to either replica at random: 40 miss one with odds 2**-39)."""
    h = handle.options(multiplexed_model_id=model_id) if model_id else handle
    found = {}
    for _ in range(calls):
        where = h.where.remote().result(timeout_s=TIMEOUT)
        found[where["pid"]] = where["node"]
    return found


def infer(
    front: Front, name: str, feeds: dict[str, np.ndarray], version: str = ""
) -> list[np.ndarray]:
    client = triton.InferenceServerClient(front.host_port, network_timeout=TIMEOUT)
    try:
        inputs = []
        for key, value in feeds.items():
            tensor = triton.InferInput(key, list(value.shape), np_to_triton_dtype(value.dtype))
            tensor.set_data_from_numpy(value)
            inputs.append(tensor)
        result = client.infer(name, inputs, model_version=version, headers=front.headers())
        names = [o["name"] for o in result.get_response()["outputs"]]
        return [result.as_numpy(n) for n in names]
    finally:
        client.close()


def add_feeds(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {"x": rng.standard_normal((3, 4)).astype(np.float32)}


def assert_add_answers(front: Front, rng: np.random.Generator) -> None:
    feeds = add_feeds(rng)
    assert_outputs_equal(infer(front, ADD, feeds), reference(front.models[ADD], feeds))


# -- the cases, in order -------------------------------------------------------------------------


def test_replicas_run_on_both_nodes(cluster, front, handle):
    assert httpx.get(f"{front.url}/v2/health/ready", timeout=TIMEOUT).json() == {"ready": True}
    found = replicas(handle)
    assert len(found) == 2, found
    assert set(found.values()) == cluster.alive(), (found, cluster.alive())


def test_replicas_run_per_run_isolates_from_the_nodes_snapshot_cache(front, handle, rng):
    # ray/snap's upload made its snapshot (in this machine's cache: both nodes'); ray/add
    # has none, so the replicas run it in pooled isolates rather than compile one.
    snap = handle.options(multiplexed_model_id=_version_id(front, "ray/snap"))
    add = handle.options(multiplexed_model_id=_version_id(front, "ray/add"))
    for _ in range(REPEATS):
        assert snap.describe.remote().result(timeout_s=TIMEOUT)[3] == "per-run"
        assert add.describe.remote().result(timeout_s=TIMEOUT)[3] == "pooled"
        feeds = add_feeds(rng)
        assert_outputs_equal(infer(front, SNAP, feeds), reference(front.models[SNAP], feeds))


def test_results_equal_onnxruntime_through_tritonclient(front, rng):
    for _ in range(REPEATS):
        feeds = add_feeds(rng)
        assert_outputs_equal(infer(front, ADD, feeds), reference(front.models[ADD], feeds))
        assert_outputs_equal(
            infer(front, "ray.add", feeds, version="1"),
            [feeds["x"] + np.float32(2.0)],
        )
        x = {"x": rng.standard_normal((2, 3)).astype(np.float32)}
        assert_outputs_equal(infer(front, "ray.two", x), reference(front.models["ray.two"], x))
        image = {"data_0": rng.standard_normal((1, 3, 224, 224)).astype(np.float32)}
        model = front.models["ray.squeezenet"]
        assert_outputs_equal(infer(front, "ray.squeezenet", image), reference(model, image))


def test_a_second_front_attached_to_the_same_replicas(cluster, front, handle, rng):
    before = replicas(handle)
    process, port, log = start_front(cluster, front.registry, "attached", "--ray-attach")
    second = Front(process, f"http://127.0.0.1:{port}", f"127.0.0.1:{port}", front.admin, log, {})
    try:
        for _ in range(REPEATS):
            feeds = add_feeds(rng)
            assert_outputs_equal(infer(second, ADD, feeds), reference(front.models[ADD], feeds))
    finally:
        stop_front(process, log)
    # Its stop left the app to the front that deployed it.
    assert replicas(handle) == before
    for _ in range(REPEATS):
        assert_add_answers(front, rng)
    database, blobs = front.registry
    args = ["--registry", database, "--blobs", blobs, "serve", "--ray", cluster.address]
    proc = subprocess.run(
        [sys.executable, "-m", "wasmhost.cli", *args, "--ray-attach", "--ray-app", "nope"],
        env=cluster.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    # Ray's C++ core warns on stderr, by itself, that this namespace has no route out
    # ("Failed to determine local IP via external connectivity"): its lines, not ours.
    proc.stderr = "".join(
        line for line in proc.stderr.splitlines(True) if not RAY_CORE_LOG.match(line)
    )
    assert_one_line_error(proc, Unavailable.exit_code, "no Ray Serve app nope")


def test_the_management_api_and_metrics_are_the_fronts(front):
    with front.client() as client:
        names = [p["name"] for p in client.get("/api/v1/projects").json()["result"]]
        assert {"ray", "evil"} <= set(names)
        assert client.get("/api/v1/projects").status_code == 200
        r = httpx.get(f"{front.url}/api/v1/projects", timeout=TIMEOUT)
        assert r.status_code == 401 and r.json()["type"] == "Unauthorized"
        metrics = client.get("/metrics").text
    assert 'wasmhost_inferences_total{model="ray.add",outcome="ok",version="2"}' in metrics
    assert "wasmhost_loaded_models" in metrics


def test_hostile_models_trap_only_their_own_isolate(front, handle, rng):
    before = replicas(handle)
    with front.client() as client:
        for _ in range(2):
            for model, (body, status, kind) in ATTACKS.items():
                r = client.post(f"/v2/models/evil.{model}/infer", json=body)
                assert (r.status_code, r.json()["type"]) == (status, kind), r.text
                assert_add_answers(front, rng)
    assert replicas(handle) == before  # no replica died or was replaced


def test_a_full_queue_answers_429_at_once(front, rng):
    # Two replicas take two runs each; the front's handle queues two more: of twelve
    # requests at once, some are refused (429 Overloaded) rather than queued.
    outcomes: list[tuple[int, str]] = []
    lock = threading.Lock()
    # Every client made first, then all post at once: making a client takes long enough
    # that twelve started one after another could each find a free slot.
    ready = threading.Barrier(12)

    def one() -> None:
        with front.client() as client:
            ready.wait(TIMEOUT)
            r = client.post(f"/v2/models/{SPIN}/infer", json=spin_body(512))
        with lock:
            outcomes.append(
                (r.status_code, r.json().get("type", "") if r.status_code != 200 else "")
            )

    threads = [threading.Thread(target=one) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT * 2)
    assert len(outcomes) == 12, outcomes
    counts = Counter(outcomes)
    assert set(counts) <= {(200, ""), (429, "Overloaded")}, counts
    assert counts[(429, "Overloaded")] >= 1 and counts[(200, "")] >= 4, counts
    assert_add_answers(front, rng)


def test_a_replica_killed_mid_request_answers_503_and_the_next_succeeds(
    cluster, front, handle, rng
):
    before = replicas(handle)
    answer: dict[str, httpx.Response] = {}

    def slow() -> None:
        with front.client() as client:
            answer["r"] = client.post(f"/v2/models/{SPIN}/infer", json=spin_body(1024))

    thread = threading.Thread(target=slow)
    thread.start()
    victim = None
    deadline = time.monotonic() + TIMEOUT
    while victim is None and time.monotonic() < deadline and "r" not in answer:
        # The spin model's replica answers `where` for its model id (Serve's affinity).
        where = handle.options(multiplexed_model_id=_spin_id(front)).where.remote()
        found = where.result(timeout_s=TIMEOUT)
        if found["running"]:
            victim = found["pid"]
        else:
            time.sleep(0.05)
    assert victim is not None, answer
    os.kill(victim, signal.SIGKILL)
    thread.join(TIMEOUT + 15)
    assert "r" in answer, "the request in flight hung"
    r = answer["r"]
    assert (r.status_code, r.json()["type"]) == (503, "Unavailable"), r.text
    assert r.headers["retry-after"] == "1"
    for _ in range(REPEATS):
        assert_add_answers(front, rng)  # on the replica that lives
    # Serve replaces the dead replica (on the node it was on: the only one with room).
    wait_for(
        "the dead replica replaced",
        lambda: len(found := replicas(handle, calls=20)) == 2 and victim not in found,
    )
    assert set(replicas(handle).values()) == set(before.values())


def _spin_id(front: Front) -> str:
    return _version_id(front, "ray/spin")


def _version_id(front: Front, ref: str) -> str:
    with front.client() as client:
        return client.get("/api/v1/resolve", params={"ref": ref}).json()["id"]


def test_a_lost_worker_node_and_a_new_one(cluster, front, handle, rng):
    lost = cluster.workers[0]
    cluster.kill(lost)
    wait_for("the worker node declared dead", lambda: len(cluster.alive()) == 1, 60)
    head_node = cluster.alive()
    # Each request is answered (the survivor's or a 503 while Serve catches up), never hangs,
    # and the answers come back right.
    streak, outcomes = 0, Counter()
    deadline = time.monotonic() + 120
    while streak < 5:
        assert time.monotonic() < deadline, outcomes
        feeds = add_feeds(rng)
        try:
            got = infer(front, ADD, feeds)
        except triton.InferenceServerException as e:
            assert e.status() == "503", e
            outcomes["503"] += 1
            streak = 0
            time.sleep(0.2)
            continue
        assert_outputs_equal(got, reference(front.models[ADD], feeds))
        outcomes["200"] += 1
        streak += 1
    wait_for(
        "only the head node's replica answering",
        lambda: set(replicas(handle, calls=10).values()) == head_node,
        60,
    )
    # A new node joins: the replica that could not be placed is placed there.
    cluster.add_worker()
    wait_for("a new worker node", lambda: len(cluster.alive()) == 2, 60)
    wait_for(
        "replicas on both nodes again",
        lambda: set(replicas(handle, calls=20).values()) == cluster.alive(),
        120,
    )
    for _ in range(REPEATS):
        assert_add_answers(front, rng)


def test_without_replicas_the_front_is_not_ready_and_answers_503(front, rng):
    with front.client() as client:
        assert client.get("/v2/health/ready").json() == {"ready": True}
    serve.delete(APP)  # as if every replica were gone (the front's stop deletes nothing then)
    started = time.monotonic()
    with front.client() as client:
        wait_for("not ready", lambda: client.get("/v2/health/ready").status_code == 503, 30)
        assert client.get("/v2/health/ready").json() == {"ready": False}
        feeds = add_feeds(rng)
        r = client.post(f"/v2/models/{ADD}/infer", json=_json_body(feeds))
    assert (r.status_code, r.json()["type"]) == (503, "Unavailable"), r.text
    print(f"503 after {time.monotonic() - started:.1f} s")


def _json_body(feeds: dict[str, np.ndarray]) -> dict:
    return {
        "inputs": [
            {"name": k, "datatype": "FP32", "shape": list(v.shape), "data": v.ravel().tolist()}
            for k, v in feeds.items()
        ]
    }
