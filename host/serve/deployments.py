"""Loaded models: one session (and its isolate pool) per model version, each held to its
project's concurrency and queue, run on a bounded thread pool off the event loop.

A request beyond a model's `concurrency` waits in its queue; beyond `concurrency + queue`
it is refused at once (`Overloaded`, 429): never an unbounded backlog. Versions are loaded
on first use (or `load`), and the least recently used are closed past `max_loaded`.

Tenants' models run in a fresh isolate per request (per-run isolation), spawned from the
snapshot the registry made at upload (docs/snapshots.md). A version without a snapshot on
this machine (made elsewhere, the `snapshots` setting off, a runtime of its own) runs in
pooled isolates, saying so in the log; its snapshot is then built in the background, one
at a time, for the next time it is loaded.

Where a version runs is its backend's (`wasmhost.serve.backend`): a session in this process
by default, or a Ray Serve replica (`wasmhost.serve.ray_backend`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.to_thread
import numpy as np

from ..errors import InvalidName, NotFound, Overloaded, WasmHostError
from ..registry.catalog import CatalogEntry
from ..registry.names import CATALOG, as_uuid, check_alias, check_name
from ..registry.records import ModelVersion
from ..registry.registry import Registry
from ..runtime.session import InferenceSession
from .auth import Principal
from .backend import Backend, Runner, SessionBackend
from .metrics import Metrics
from .stats import Window

log = logging.getLogger("wasmhost.serve")

#: A model's defaults when its project sets none.
DEFAULT_CONCURRENCY = 2
DEFAULT_QUEUE = 16
#: How long a name's resolution (to a version: an alias moved, a version uploaded) is
#: reused: the registry is read at most this often per name, not on every request.
RESOLVE_TTL = 1.0


def reference(name: str, version: str | None) -> str:
    """The registry reference an OIP model name and version mean: `project.model` (or
    `catalog.NAME`, or a UUID) and a version number or alias.

    Raises InvalidName for a name of another form.
    """
    if as_uuid(name) and not version:
        return name
    project, dot, model = name.partition(".")
    if not dot:
        raise InvalidName(
            f"invalid model name {name!r}: expected project.model, catalog.NAME or a model id"
        )
    check_name("project", project)
    check_name("model", model)
    if not version:
        return f"{project}/{model}"
    if project == CATALOG:
        if version != "1":
            raise NotFound(f"catalog models have only version 1, not {version!r}")
        return f"{project}/{model}"
    if version.isdigit():
        return f"{project}/{model}@{int(version)}"
    return f"{project}/{model}@{check_alias(version)}"


@dataclass
class Deployment:
    """A loaded model version: its runner and its admission counters."""

    key: str
    name: str
    version: str
    project: str
    target: ModelVersion | CatalogEntry
    runner: Runner
    concurrency: int
    queue: int
    slots: asyncio.Semaphore
    #: "per-run" (a fresh isolate per request) or "pooled".
    isolation: str = "pooled"
    waiting_or_running: int = 0
    last_used: float = field(default_factory=time.monotonic)


class Deployments:
    """The server's loaded models."""

    def __init__(
        self,
        registry: Registry,
        metrics: Metrics,
        *,
        threads: int,
        max_loaded: int = 32,
        isolation: str = "per-run",
        backend: Backend | None = None,
    ) -> None:
        """`backend` runs the versions (default: sessions in this process)."""
        self.registry = registry
        self.isolation = isolation
        self._building = threading.Lock()  # one background snapshot build at a time
        self.backend = backend or SessionBackend(self._open_session)
        self.metrics = metrics
        self.max_loaded = max_loaded
        self.limiter = anyio.CapacityLimiter(threads)
        self.recent = Window()  # the dashboard's charts: the last runs of each model
        self._loaded: OrderedDict[str, Deployment] = OrderedDict()
        self._resolved: dict[tuple[str, str | None], tuple[float, Any]] = {}
        self._generation = 0  # bumped by forget(): a resolution begun before is not kept
        self._loading: dict[str, asyncio.Future[Deployment]] = {}
        metrics.watch(self._pools)

    def _pools(self) -> Iterator[tuple[str, tuple[int, int] | None, int]]:
        for d in list(self._loaded.values()):
            yield f"{d.name}:{d.version}", d.runner.isolates(), d.waiting_or_running

    async def resolve(
        self, principal: Principal, name: str, version: str | None
    ) -> ModelVersion | CatalogEntry:
        """The version an OIP name and version mean, if `principal` may see it.

        A project the principal may not see is refused before the registry is asked, and
        a hidden version's id as if nothing had it: its models cannot be told from names
        (or ids) nothing has.
        """
        ref = reference(name, version)
        if ref != name:  # project.model: no id
            principal.require("read", name.partition(".")[0])
        key = (name, version)
        now = time.monotonic()
        cached = self._resolved.get(key)
        if cached is not None and now - cached[0] < RESOLVE_TTL:
            target = cached[1]
        else:
            generation = self._generation
            target = await self._thread(self.registry.resolve, ref)
            if len(self._resolved) > 10_000:  # names are the callers' to choose: bounded
                self._resolved.clear()
            if generation == self._generation:
                self._resolved[key] = (now, target)
        project = target.project if isinstance(target, ModelVersion) else CATALOG
        if not principal.sees(project):
            raise NotFound(f"no model or version has id {as_uuid(name)}")
        principal.require("read", project)
        return target

    def forget(self) -> None:
        """Drops every kept resolution: the registry changed through this server (an alias
        moved, a version uploaded or deleted), which holds from the next request on."""
        self._resolved.clear()
        self._generation += 1

    async def get(self, principal: Principal, name: str, version: str | None) -> Deployment:
        """The loaded deployment of that model version, loaded now if it is not yet."""
        target = await self.resolve(principal, name, version)
        key = target.id
        found = self._loaded.get(key)
        if found is not None:
            self._loaded.move_to_end(key)
            return found
        pending = self._loading.get(key)
        if pending is None:
            pending = asyncio.get_running_loop().create_future()
            self._loading[key] = pending
            try:
                deployment = await self._load(target)
            except BaseException as e:
                pending.set_exception(e)
                pending.exception()  # retrieved: no "never retrieved" warning
                raise
            finally:
                del self._loading[key]
            pending.set_result(deployment)
            self._loaded[key] = deployment
            await self._evict()
            return deployment
        return await asyncio.shield(pending)

    async def _load(self, target: ModelVersion | CatalogEntry) -> Deployment:
        if isinstance(target, CatalogEntry):
            project, name, version = CATALOG, f"{CATALOG}.{target.name}", "1"
            limits: dict[str, Any] = {}
        else:
            project, name, version = (
                target.project,
                f"{target.project}.{target.model}",
                str(target.version),
            )
            limits = (await self._thread(self.registry.project, project)).limits
        concurrency = int(limits.get("concurrency", DEFAULT_CONCURRENCY))
        queue = int(limits.get("queue", DEFAULT_QUEUE))
        runner = await self.backend.open(target, concurrency, self._thread)
        return Deployment(
            target.id,
            name,
            version,
            project,
            target,
            runner,
            runner.slots,
            queue,
            asyncio.Semaphore(runner.slots),
            runner.isolation,
        )

    def _open_session(
        self, target: ModelVersion | CatalogEntry, concurrency: int
    ) -> InferenceSession:
        session = self.registry.session(
            target.id, pool_size=concurrency, isolation=self.isolation, snapshot_build=False
        )
        if session.snapshot_missing:
            log.info(
                "%s: no snapshot on this machine yet: pooled isolates until it is loaded "
                "again after its snapshot is built",
                target.reference,
            )
            self._build_snapshot(target.reference, session)
        return session

    def _build_snapshot(self, reference: str, session: InferenceSession) -> None:
        """Builds the session's snapshot in a thread of its own, unless one is being built
        (the next load tries again): 10-15 s of compiling, cached for every later load."""
        if not self._building.acquire(blocking=False):
            return

        def build() -> None:
            try:
                session.prepare_snapshot()
                log.info("%s: snapshot built; per-run isolation from its next load", reference)
            except (WasmHostError, OSError) as e:
                log.warning("%s: no snapshot (%s: %s)", reference, type(e).__name__, e)
            finally:
                self._building.release()

        threading.Thread(target=build, name="wasmhost-snapshot", daemon=True).start()

    async def _evict(self) -> None:
        while len(self._loaded) > self.max_loaded:
            _, oldest = self._loaded.popitem(last=False)
            await self._close_when_idle(oldest)

    async def _close_when_idle(self, deployment: Deployment) -> None:
        # In-flight runs hold their isolates; close() waits for none, so wait for them.
        while deployment.waiting_or_running:
            await asyncio.sleep(0.01)
        await deployment.runner.close()

    async def unload(self, principal: Principal, name: str) -> bool:
        """Closes every loaded version of that model; True if one was loaded."""
        target = await self.resolve(principal, name, None)
        model_id = target.model_id if isinstance(target, ModelVersion) else target.id
        doomed = [
            k
            for k, d in self._loaded.items()
            if (d.target.model_id if isinstance(d.target, ModelVersion) else d.target.id)
            == model_id
        ]
        for key in doomed:
            await self._close_when_idle(self._loaded.pop(key))
        return bool(doomed)

    def loaded(self) -> list[Deployment]:
        return list(self._loaded.values())

    async def infer(
        self,
        deployment: Deployment,
        feeds: dict[str, np.ndarray],
        outputs: Sequence[str] | None,
    ) -> list[Any]:
        """Runs the model on the feeds when a slot is free.

        Raises:
            Overloaded: the model's queue is full.
            What the runner raises (`Runner.run`).
        """
        label = deployment.name
        if deployment.waiting_or_running >= deployment.concurrency + deployment.queue:
            self.metrics.rejected.labels(label).inc()
            raise Overloaded(
                f"model {deployment.name} version {deployment.version} is busy: "
                f"{deployment.concurrency} running and {deployment.queue} queued; retry later"
            )
        deployment.waiting_or_running += 1
        queued = time.perf_counter()
        try:
            async with deployment.slots:
                self.metrics.queue_seconds.labels(label).observe(time.perf_counter() - queued)
                started = time.perf_counter()
                outcome = "error:other"
                try:
                    result, stats = await deployment.runner.run(outputs, feeds)
                    outcome = "ok"
                except WasmHostError as e:
                    outcome = e.outcome
                    if e.fuzz_class.startswith(("trap", "timeout", "fuel")):
                        self.metrics.traps.labels(e.outcome).inc()
                    raise
                finally:
                    elapsed = time.perf_counter() - started
                    self.metrics.compute_seconds.labels(label).observe(elapsed)
                    self.recent.record(label, deployment.project, elapsed, outcome)
                if stats is not None:
                    self.metrics.peak_memory.labels(label).set(stats.peak_memory)
                    if stats.fuel_consumed is not None:
                        self.metrics.fuel.labels(label).observe(stats.fuel_consumed)
                return result
        finally:
            deployment.waiting_or_running -= 1
            deployment.last_used = time.monotonic()

    async def _thread(self, fn: Any, *args: Any) -> Any:
        return await anyio.to_thread.run_sync(fn, *args, limiter=self.limiter)

    async def close(self) -> None:
        while self._loaded:
            _, deployment = self._loaded.popitem()
            await self._close_when_idle(deployment)
        await self.backend.close()
