"""The Ray Serve deployment that runs model versions for `wasmhost serve --ray`.

Each replica (a Ray actor, on any node of the cluster) opens the shared registry (PostgreSQL
and S3: every node reads the same one) and keeps the sessions of the model versions it was
asked to run, up to `models_per_replica`, closing the least recently used past that. Serve's
model multiplexing routes a request to a replica that holds its version (the version's id is
the multiplexed model id), so a version's isolates are made on few replicas, not all.

A run traps only its own isolate, exactly as in `wasmhost serve`: the error travels back to
the front, and the replica and its other models go on. With per-run isolation (the
default, as in `wasmhost serve`), a version whose snapshot is in this node's cache runs
each request in a fresh isolate spawned from it; one without runs pooled isolates here.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import ray
from ray import serve

from ..registry.catalog import CatalogEntry
from ..registry.registry import Registry
from ..runtime.isolate import RunStats
from ..runtime.session import InferenceSession, NodeArg

log = logging.getLogger("wasmhost.serve.ray")

#: A version's isolates per replica when its project sets no `concurrency`.
DEFAULT_CONCURRENCY = 2


class ModelReplica:
    """One replica: the registry, and an LRU of sessions by version id (`load`, made
    multiplexed by `deployment`)."""

    def __init__(self, registry: str, blobs: str, isolation: str = "per-run") -> None:
        self.registry = Registry(registry, blobs=blobs)
        self.isolation = isolation
        self._running = 0
        self._lock = threading.Lock()

    async def _open(self, version_id: str) -> _Loaded:
        def open_session() -> InferenceSession:
            target = self.registry.resolve(version_id)
            concurrency = DEFAULT_CONCURRENCY
            if not isinstance(target, CatalogEntry):
                limits = self.registry.project(target.project).limits
                concurrency = int(limits.get("concurrency", DEFAULT_CONCURRENCY))
            session = self.registry.session(
                version_id,
                pool_size=concurrency,
                isolation=self.isolation,
                # Not built here (10-15 s of compiling in a request): the node's cache has
                # it when an upload or a `wasmhost serve` on this node made it.
                snapshot_build=False,
            )
            if session.snapshot_missing:
                log.info("%s: no snapshot on this node: pooled isolates", target.reference)
            return session

        return _Loaded(await asyncio.to_thread(open_session))

    async def load(self, version_id: str) -> _Loaded:  # replaced by a multiplexed one
        return await self._open(version_id)

    async def describe(self) -> tuple[list[NodeArg], list[NodeArg], int, str]:
        """The request's version (its multiplexed model id), loaded: (inputs, outputs,
        isolates it may run at once here, its isolation)."""
        loaded = await self.load(serve.get_multiplexed_model_id())
        session = loaded.session
        return session.get_inputs(), session.get_outputs(), session.pool.size, session.isolation

    async def run(
        self, outputs: Sequence[str], feeds: dict[str, np.ndarray]
    ) -> tuple[list[Any], RunStats | None]:
        """Runs the request's version on `feeds`. Raises what `InferenceSession.run`
        raises."""
        loaded = await self.load(serve.get_multiplexed_model_id())
        session = loaded.session

        def run() -> tuple[list[Any], RunStats | None]:
            return session.run(outputs, feeds), session.last_run_stats

        with self._lock:
            self._running += 1
        try:
            return await asyncio.to_thread(run)
        finally:
            with self._lock:
                self._running -= 1

    def where(self) -> dict[str, Any]:
        """Where this replica runs and what it is doing: `node` (Ray's node id), `pid`,
        `running` (runs under way)."""
        return {
            "node": ray.get_runtime_context().get_node_id(),
            "pid": os.getpid(),
            "running": self._running,
        }


class _Loaded:
    """A version's session in a replica; closed when Serve evicts it (its `__del__`):
    runs under way finish on their isolates."""

    def __init__(self, session: InferenceSession) -> None:
        self.session = session

    def __del__(self) -> None:
        self.session.close()


def deployment(models_per_replica: int, **options: Any) -> serve.Deployment:
    """The Serve deployment of `ModelReplica`, keeping up to `models_per_replica` versions
    per replica; `options` go to `serve.deployment` (replicas, autoscaling, resources)."""

    class WasmhostModels(ModelReplica):
        @serve.multiplexed(max_num_models_per_replica=models_per_replica)
        async def load(self, version_id: str) -> _Loaded:
            return await self._open(version_id)

    return serve.deployment(WasmhostModels, name="WasmhostModels", **options)
