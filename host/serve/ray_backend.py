"""`wasmhost serve --ray`: model versions run by a Ray Serve deployment across a cluster.

The front (this process: routes, tokens, admission, metrics) stays as in `wasmhost serve`;
only the run of a model version goes to a replica of `ray_replica.deployment`, through a
Serve handle with the version's id as the multiplexed model id. The replicas read the
same registry as the front, which must therefore be one every node reaches: PostgreSQL
and S3.

Backpressure: each replica takes at most `max_ongoing_requests` at once; the front's
handle queues at most `max_queued_requests` more, then refuses (`Overloaded`, 429); a
version's own admission (its project's `concurrency` per replica, times the most
replicas, plus its `queue`) is the front's, as in `wasmhost serve`. A replica that dies
during a run, or no answer within `request_timeout`, is `Unavailable` (503): the next
request goes to a live replica.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import ray
import ray.exceptions
from ray import serve
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError
from ray.serve.handle import DeploymentHandle

from ..errors import InvalidArgument, Overloaded, Unavailable, WasmHostError
from ..registry.catalog import CatalogEntry
from ..registry.records import ModelVersion
from ..registry.registry import Registry
from ..runtime.isolate import RunStats
from ..runtime.session import NodeArg
from . import ray_replica
from .backend import Offload

log = logging.getLogger("wasmhost.serve.ray")

#: Seconds a readiness answer is reused.
READY_TTL = 1.0
#: `address` that starts a private one-node Ray instance in this process (to try it out).
LOCAL = "local"


@dataclass(frozen=True)
class RaySettings:
    """How the deployment is run (the `wasmhost serve --ray` options).

    Attributes:
        address: the cluster (`HOST:PORT` of its head, `auto` for the one `ray start`
            made on this machine or RAY_ADDRESS, or `local` for a private one-node Ray).
        app: the Serve application's name; this front deploys it and deletes it when it
            stops.
        replicas: a fixed number of replicas, or None to autoscale between
            `min_replicas` and `max_replicas`, aiming at `target_ongoing_requests` each.
        max_ongoing_requests: runs at once per replica.
        max_queued_requests: requests this front's handle may queue for a replica.
        replica_cpus: the CPUs Ray reserves for each replica.
        models_per_replica: versions each replica keeps loaded (least recently used out).
        request_timeout: seconds a run may take from the front, the replica's load and
            queue included; past it the request is `Unavailable`.
        start_timeout: seconds to wait for the deployment's replicas at start.
        attach: join the application another front deployed (`app`) instead of
            deploying one; it is left running when this front stops. The deployment's
            own settings (replicas, resources, queues) are that front's; this front's
            admission counts `max_replicas` (default 4) as the most replicas.
    """

    address: str = "auto"
    app: str = "wasmhost"
    replicas: int | None = None
    min_replicas: int = 1
    max_replicas: int = 4
    target_ongoing_requests: float = 2.0
    max_ongoing_requests: int = 4
    max_queued_requests: int = 64
    replica_cpus: float = 1.0
    models_per_replica: int = 8
    request_timeout: float = 120.0
    start_timeout: float = 120.0
    attach: bool = False

    def check(self) -> None:
        """Raises InvalidArgument for settings that cannot be deployed."""
        if self.replicas is not None and self.replicas < 1:
            raise InvalidArgument(f"--replicas must be at least 1, not {self.replicas}")
        if not 0 <= self.min_replicas <= self.max_replicas or self.max_replicas < 1:
            raise InvalidArgument(
                "--min-replicas and --max-replicas need 0 <= min <= max and max >= 1, "
                f"not {self.min_replicas} and {self.max_replicas}"
            )
        for name, value in [
            ("--target-ongoing-requests", self.target_ongoing_requests),
            ("--max-ongoing-requests", self.max_ongoing_requests),
            ("--max-queued-requests", self.max_queued_requests),
            ("--models-per-replica", self.models_per_replica),
            ("--request-timeout", self.request_timeout),
            ("--start-timeout", self.start_timeout),
        ]:
            if value <= 0:
                raise InvalidArgument(f"{name} must be positive, not {value}")
        if self.replica_cpus < 0:
            raise InvalidArgument(f"--replica-cpus must be 0 or more, not {self.replica_cpus}")

    @property
    def most_replicas(self) -> int:
        return self.replicas if self.replicas is not None else self.max_replicas

    def options(self) -> dict[str, Any]:
        """`serve.deployment` options."""
        options: dict[str, Any] = {
            "max_ongoing_requests": self.max_ongoing_requests,
            "max_queued_requests": self.max_queued_requests,
            "ray_actor_options": {"num_cpus": self.replica_cpus},
        }
        if self.replicas is not None:
            options["num_replicas"] = self.replicas
        else:
            options["autoscaling_config"] = {
                "min_replicas": self.min_replicas,
                "initial_replicas": max(self.min_replicas, 1),
                "max_replicas": self.max_replicas,
                "target_ongoing_requests": self.target_ongoing_requests,
            }
        return options


def shared_registry(registry: Registry, address: str) -> tuple[str, str]:
    """The (database URL, blob store URL) replicas open.

    Raises:
        InvalidArgument: a registry on this machine's disk (SQLite, a blob directory),
            which other nodes cannot read, for a cluster other than `local`.
    """
    database = registry.db.engine.url.render_as_string(hide_password=False)
    blobs = registry.blobs.url
    if address != LOCAL and (database.startswith("sqlite") or "://" not in blobs):
        raise InvalidArgument(
            "serve --ray needs a registry every node reads: --registry postgresql://... "
            "--blobs s3://BUCKET/PREFIX (a registry on this machine's disk works only "
            "with --ray local)"
        )
    return database, blobs


class RayRunner:
    """A version run by the deployment's replicas."""

    def __init__(
        self,
        backend: RayBackend,
        version_id: str,
        signature: tuple[list[NodeArg], list[NodeArg], int, str],
    ) -> None:
        self._backend = backend
        self._handle = backend.handle.options(multiplexed_model_id=version_id)
        # The isolation is the first replica's that loaded it (another node's may differ:
        # the snapshot is in one node's cache and not yet in another's).
        self._inputs, self._outputs, per_replica, self.isolation = signature
        self.slots = per_replica * backend.settings.most_replicas

    def get_inputs(self) -> list[NodeArg]:
        return list(self._inputs)

    def get_outputs(self) -> list[NodeArg]:
        return list(self._outputs)

    async def run(
        self, outputs: Sequence[str], feeds: dict[str, np.ndarray]
    ) -> tuple[list[Any], RunStats | None]:
        return await self._backend.call(self._handle.run, list(outputs), feeds)

    def isolates(self) -> None:
        return None  # in the replicas

    async def close(self) -> None:
        return None  # the replicas' LRU closes it when other versions need room


class RayBackend:
    """The deployment, deployed on a Ray cluster by this process (`connect`)."""

    def __init__(self, settings: RaySettings, handle: DeploymentHandle) -> None:
        self.settings = settings
        self.handle = handle
        self._ready: tuple[float, bool] = (-READY_TTL, False)

    @classmethod
    def connect(
        cls, registry: Registry, settings: RaySettings, isolation: str = "per-run"
    ) -> RayBackend:
        """Joins the cluster at `settings.address` and deploys the replicas (their runs'
        `isolation` as `wasmhost serve --isolation` says); returns when they are up.

        Raises:
            InvalidArgument: bad settings, or a registry other nodes cannot read.
            Unavailable: no cluster at that address, or the replicas did not start
                within `start_timeout` (the cluster lacks the CPUs, say).
        """
        settings.check()
        database, blobs = shared_registry(registry, settings.address)
        _reachable(settings.address)
        # Ray's driver-side progress (connecting, Serve's steps) would interleave with the
        # front's own log and its one-line errors: its warnings and worse only.
        logging.getLogger("ray.serve").setLevel(logging.WARNING)
        options: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
        try:
            if settings.address == LOCAL:
                ray.init(include_dashboard=False, **options)
            else:
                ray.init(address=settings.address, **options)
        except (ConnectionError, RuntimeError) as e:
            raise Unavailable(
                f"no Ray cluster at {settings.address}: {' '.join(str(e).split())[:300]}"
            ) from None
        if settings.attach:
            handle = _attach(settings.app)
            log.info("attached to Ray Serve app %s on %s", settings.app, settings.address)
            return cls(settings, handle)
        try:
            # The front is the ingress: Ray's own HTTP proxies are not started.
            serve.start(proxy_location="Disabled")
            if settings.app in serve.status().applications:
                # A front that died without deleting it, or another front of that name.
                log.warning(
                    "a Ray Serve app named %s runs on the cluster: this front takes it over "
                    "(another front using it needs its own --ray-app)",
                    settings.app,
                )
            app = ray_replica.deployment(settings.models_per_replica, **settings.options())
            handle = _deploy(app.bind(database, blobs, isolation), settings)
            log.info("deployed Ray Serve app %s on %s", settings.app, settings.address)
            return cls(settings, handle)
        except BaseException:
            shutdown(settings.app)
            raise

    async def ready(self) -> bool:
        """Whether a replica of the deployment is running (asked of Serve at most once
        per READY_TTL: load balancers probe often)."""
        checked, answer = self._ready
        if time.monotonic() - checked >= READY_TTL:
            answer = await asyncio.to_thread(self._running_replicas) > 0
            self._ready = (time.monotonic(), answer)
        return answer

    def _running_replicas(self) -> int:
        try:
            app = serve.status().applications.get(self.settings.app)
        except Exception as e:  # the cluster unreachable: not ready, and said why
            log.warning("Ray Serve's status: %s", " ".join(str(e).split())[:300])
            return 0
        if app is None:
            return 0
        return sum(d.replica_states.get("RUNNING", 0) for d in app.deployments.values())

    async def open(
        self, target: ModelVersion | CatalogEntry, concurrency: int, offload: Offload
    ) -> RayRunner:
        """Loads `target` on a replica (the version's first run would) and reads its
        signature there. Raises what the replica's load raises, and `Unavailable`."""
        handle = self.handle.options(multiplexed_model_id=target.id)
        signature = await self.call(handle.describe)
        return RayRunner(self, target.id, signature)

    async def call(self, method: Any, *args: Any) -> Any:
        """`method.remote(*args)`, awaited under the request timeout, with Ray's failures
        as wasmhost's errors."""
        response = method.remote(*args)
        timeout = self.settings.request_timeout
        try:
            return await asyncio.wait_for(_awaited(response), timeout)
        except ray.exceptions.RayTaskError as e:
            # First: the cause may be a TimeoutError too (TimeoutExceeded, the run's own).
            if isinstance(e.cause, WasmHostError):
                raise e.cause from None
            raise
        except TimeoutError:
            response.cancel()
            raise Unavailable(f"no replica answered within {timeout:g} s") from None
        except BackPressureError:
            raise Overloaded(
                f"every replica is busy and {self.settings.max_queued_requests} requests are "
                "queued for them; retry later"
            ) from None
        except (
            ray.exceptions.RayActorError,  # the replica died (its process, its node)
            ray.exceptions.ActorUnavailableError,
            ray.exceptions.TaskCancelledError,
            ray.exceptions.ObjectLostError,
            DeploymentUnavailableError,
        ) as e:
            log.warning("replica failed: %s", " ".join(str(e).split())[:500])
            raise Unavailable(
                f"the replica running the request failed ({type(e).__name__}); retry: "
                "another replica takes it"
            ) from None

    async def close(self) -> None:
        await asyncio.to_thread(self.shutdown)

    def shutdown(self) -> None:
        """Deletes the app this front deployed (not one it attached to) and leaves the
        cluster (which stays up)."""
        shutdown(None if self.settings.attach else self.settings.app)


async def _awaited(response: Any) -> Any:
    return await response


def _reachable(address: str, timeout: float = 10.0) -> None:
    """Raises Unavailable when nothing listens at a HOST:PORT address (`ray.init` would
    retry for minutes); `auto`, `local` and `ray://` addresses are Ray's to find."""
    host, colon, port = address.rpartition(":")
    if not colon or not port.isdigit() or "://" in address:
        return
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as e:
        raise Unavailable(f"no Ray cluster at {address}: {e.strerror or e}") from None


def _attach(app: str) -> DeploymentHandle:
    """The handle of the running app `app`. Raises Unavailable if none runs."""
    try:
        status = serve.status().applications.get(app)
    except Exception as e:
        shutdown(None)
        raise Unavailable(f"Ray Serve's status: {' '.join(str(e).split())[:300]}") from None
    if status is None:
        shutdown(None)
        raise Unavailable(
            f"no Ray Serve app {app} runs on the cluster: start a front without "
            "--ray-attach first (it deploys the replicas)"
        )
    return serve.get_app_handle(app)


def _deploy(app: Any, settings: RaySettings) -> DeploymentHandle:
    """`serve.run`, bounded: it waits without end for replicas the cluster cannot place."""
    done: dict[str, Any] = {}

    def deploy() -> None:
        try:
            done["handle"] = serve.run(app, name=settings.app, route_prefix=None)
        except BaseException as e:
            done["error"] = e

    thread = threading.Thread(target=deploy, name="wasmhost-ray-deploy", daemon=True)
    thread.start()
    thread.join(settings.start_timeout)
    if "handle" in done:
        return done["handle"]
    if "error" in done:
        message = " ".join(str(done["error"]).split())[:500]
        raise Unavailable(f"the Ray Serve app {settings.app} failed to deploy: {message}")
    raise Unavailable(
        f"the Ray Serve app {settings.app} was not running within {settings.start_timeout:g} s: "
        f"has the cluster {settings.replica_cpus:g} CPUs free for each replica?"
    )


def shutdown(app: str | None) -> None:
    """Deletes the app this front deployed (if `app`) and leaves the cluster (which stays
    up)."""
    try:
        if app is not None and ray.is_initialized():
            serve.delete(app)
    except Exception as e:  # the cluster may be gone already: nothing left to delete
        log.warning("could not delete the Ray Serve app %s: %s", app, e)
    finally:
        ray.shutdown()
