"""`wasmhost serve --ray`: its command line here, and a two-node Ray cluster on loopback.

The cluster's cases (tests/ray_cluster_cases.py) run in a child pytest inside a network
namespace of its own (`unshare -n`, loopback only): Ray advertises the machine's routable
address rather than 127.0.0.1, and none of its traffic may leave the machine. Where
`unshare` is not permitted (or Ray is not installed) the test is skipped with the reason;
under WASMHOST_TEST_SERVERS=required (CI) it fails instead.

Every process the child starts lives in that namespace; when the child is done (or has
been stopped at the deadline), whatever is left in the namespace is killed by its pid.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import ROOT, assert_one_line_error, wasmhost_cli
from servers import ServerUnavailable, free_port, unless_unavailable

from wasmhost.errors import InvalidArgument, Unavailable

CASES = Path(__file__).with_name("ray_cluster_cases.py")
#: The cluster's cases as a whole, their teardown included; past it they are stopped.
DEADLINE = 420.0


def _namespace_available() -> None:
    if importlib_missing("ray"):
        raise ServerUnavailable("Ray is not installed (pip install 'wasmhost[ray]')")
    if sys.platform != "linux":
        raise ServerUnavailable("network namespaces (unshare -n) are Linux's")
    try:
        proc = subprocess.run(
            ["unshare", "-n", "sh", "-c", "ip link set lo up"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except FileNotFoundError as e:
        raise ServerUnavailable(f"no unshare or ip command: {e}") from None
    if proc.returncode != 0:
        raise ServerUnavailable(
            "a network namespace of the test's own is not permitted here (unshare -n, then "
            f"ip link set lo up: {' '.join(proc.stderr.split())[:200]})"
        )


def importlib_missing(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is None


def _in_namespace(netns: str) -> list[int]:
    """Pids of the processes in the network namespace `netns` (readlink of ns/net)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if os.readlink(entry / "ns" / "net") == netns:
                    found.append(int(entry.name))
    return found


def test_two_node_cluster_in_its_own_network_namespace(tmp_path):
    unless_unavailable(_namespace_available)
    netns_file = tmp_path / "netns"
    log = tmp_path / "cases.log"
    # Ray's session directory: a short path (its socket paths must fit in 107 bytes),
    # removed here once everything in the namespace is gone.
    ray_temp = Path(tempfile.mkdtemp(prefix="whray-", dir="/tmp"))
    env = {
        **os.environ,
        "WASMHOST_RAY_NETNS_FILE": str(netns_file),
        "WASMHOST_RAY_TEMP": str(ray_temp),
        "RAY_USAGE_STATS_ENABLED": "0",
        # Ray's token authentication on, with a token of the test's own.
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(32),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    command = "ip link set lo up && exec " + " ".join(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-x",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(ROOT),
            "-o",
            "addopts=-ra",
            str(CASES),
        ]
    )
    with log.open("wb") as out:
        child = subprocess.Popen(
            ["unshare", "-n", "sh", "-c", command],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        child.wait(DEADLINE)
    except subprocess.TimeoutExpired:
        # SIGINT first: pytest tears its fixtures down (ray stop, the servers).
        os.killpg(child.pid, signal.SIGINT)
        try:
            child.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
    finally:
        # Whatever is left in the namespace (a daemon that escaped the process group).
        if netns_file.exists():
            netns = netns_file.read_text().strip()
            for _ in range(50):
                left = _in_namespace(netns)
                if not left:
                    break
                for pid in left:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                time.sleep(0.1)
        shutil.rmtree(ray_temp, ignore_errors=True)
    output = log.read_text(errors="replace")
    print(output[-6000:])
    assert child.returncode == 0, f"the cluster's cases failed:\n{output[-20000:]}"
    assert " passed" in output and "skipped" not in output, output[-3000:]


# -- the command line, without a cluster -------------------------------------------------------


def test_serve_ray_refuses_a_registry_other_nodes_cannot_read(tmp_path):
    pytest.importorskip("ray", reason="the ray extra is not installed")
    proc = wasmhost_cli("--registry", tmp_path / "home", "serve", "--ray", "127.0.0.1:1")
    assert_one_line_error(proc, InvalidArgument.exit_code, "postgresql://", "s3://", "--ray local")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--replicas", "2"], ["--replicas apply only with --ray"]),
        (["--ray", "--replicas", "2", "--max-replicas", "3"], ["--max-replicas", "fixed"]),
        (["--ray", "--replicas", "0"], ["--replicas must be at least 1"]),
        (["--ray", "--min-replicas", "3", "--max-replicas", "2"], ["min <= max"]),
        (["--ray", "--max-queued-requests", "0"], ["--max-queued-requests must be positive"]),
        (["--ray", "--ray-attach", "--replicas", "2"], ["--replicas", "not --ray-attach's"]),
    ],
)
def test_serve_ray_options_are_checked(tmp_path, args, words):
    pytest.importorskip("ray", reason="the ray extra is not installed")
    proc = wasmhost_cli("--registry", tmp_path / "home", "serve", *args)
    assert_one_line_error(proc, InvalidArgument.exit_code, *words)


def test_serve_ray_without_its_extra_says_how_to_install_it(tmp_path):
    fake = tmp_path / "site" / "ray"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'ray'\", name='ray')\n"
    )
    path = os.pathsep.join(filter(None, [str(fake.parent), os.environ.get("PYTHONPATH")]))
    proc = wasmhost_cli("--registry", tmp_path / "home", "serve", "--ray", env={"PYTHONPATH": path})
    assert_one_line_error(proc, InvalidArgument.exit_code, "pip install 'wasmhost[ray]'")


def test_serve_ray_without_a_cluster_fails_in_one_line(postgres_url, s3_url):
    pytest.importorskip("ray", reason="the ray extra is not installed")
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    proc = wasmhost_cli(
        "--registry", postgres_url, "--blobs", s3_url, "serve", "--ray", address, timeout=120
    )
    assert_one_line_error(proc, Unavailable.exit_code, f"no Ray cluster at {address}")


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"replicas": 3}, {"num_replicas": 3, "autoscaling": None}),
        (
            {"min_replicas": 0, "max_replicas": 5, "target_ongoing_requests": 3.0},
            {"autoscaling": (0, 1, 5, 3.0)},
        ),
    ],
)
def test_settings_make_a_deployment_ray_accepts(settings, expected):
    pytest.importorskip("ray", reason="the ray extra is not installed")
    from wasmhost.serve import ray_replica
    from wasmhost.serve.ray_backend import RaySettings

    made = RaySettings(max_ongoing_requests=3, max_queued_requests=7, **settings)
    made.check()
    deployment = ray_replica.deployment(5, **made.options())  # Serve validates the options
    assert (deployment.max_ongoing_requests, deployment.max_queued_requests) == (3, 7)
    assert deployment.ray_actor_options["num_cpus"] == 1.0
    if "num_replicas" in expected:
        assert deployment.num_replicas == expected["num_replicas"]
    # Serve keeps the autoscaling policy in the deployment's config (no public accessor).
    auto = deployment._deployment_config.autoscaling_config
    if expected["autoscaling"] is None:
        assert auto is None
    else:
        got = (auto.min_replicas, auto.initial_replicas, auto.max_replicas)
        assert (*got, auto.target_ongoing_requests) == expected["autoscaling"]
