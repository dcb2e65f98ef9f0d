"""Where a loaded model version runs: the seam between the service's front (routes, tokens,
admission, metrics) and the isolates that run a model.

A `Backend` opens a `Runner` per model version. The local backend (`SessionBackend`) holds
an `InferenceSession` in this process and runs it on the server's bounded thread pool; the
Ray backend (`wasmhost.serve.ray_backend`) sends each run to a Ray Serve replica. The
front is the same for both.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import numpy as np

from ..registry.catalog import CatalogEntry
from ..registry.records import ModelVersion
from ..runtime.isolate import RunStats
from ..runtime.session import InferenceSession, NodeArg

#: Runs a blocking call on the server's bounded thread pool.
Offload = Callable[..., Awaitable[Any]]


class Runner(Protocol):
    """One model version, ready to run."""

    #: Runs of this version the front lets through at once (more wait in its queue).
    slots: int
    #: "per-run" (a fresh isolate per run, from the model's snapshot) or "pooled".
    isolation: str

    def get_inputs(self) -> list[NodeArg]: ...

    def get_outputs(self) -> list[NodeArg]: ...

    async def run(
        self, outputs: Sequence[str], feeds: dict[str, np.ndarray]
    ) -> tuple[list[Any], RunStats | None]:
        """The outputs named, and what the run cost (None when unknown).

        Raises what `InferenceSession.run` raises; a remote runner also `Unavailable`
        (the replica died or did not answer) and `Overloaded` (its queue is full).
        """
        ...

    def isolates(self) -> tuple[int, int] | None:
        """(live, idle) isolates this process holds for the version; None when they are
        held elsewhere (a remote replica)."""
        ...

    async def close(self) -> None:
        """Releases the version's isolates (runs under way finish on theirs)."""
        ...


class Backend(Protocol):
    """Opens runners."""

    async def ready(self) -> bool:
        """Whether a version could run now (the service's readiness probe)."""
        ...

    async def open(
        self, target: ModelVersion | CatalogEntry, concurrency: int, offload: Offload
    ) -> Runner:
        """A runner of `target`, whose project allows `concurrency` runs at once.

        Raises what `Registry.source` and `InferenceSession` raise (the model's bytes are
        loaded and checked now).
        """
        ...

    async def close(self) -> None:
        """Releases what the backend holds beyond its runners."""
        ...


class SessionRunner:
    """A session in this process, run on the server's thread pool."""

    def __init__(self, session: InferenceSession, offload: Offload) -> None:
        self.session = session
        self.slots = session.pool.size
        self.isolation = session.isolation
        self._offload = offload

    def get_inputs(self) -> list[NodeArg]:
        return self.session.get_inputs()

    def get_outputs(self) -> list[NodeArg]:
        return self.session.get_outputs()

    async def run(
        self, outputs: Sequence[str], feeds: dict[str, np.ndarray]
    ) -> tuple[list[Any], RunStats | None]:
        session = self.session

        def run() -> tuple[list[Any], RunStats | None]:
            # The stats are the calling thread's: read them in the same thread.
            return session.run(outputs, feeds), session.last_run_stats

        return await self._offload(run)

    def isolates(self) -> tuple[int, int]:
        stats = self.session.pool
        return stats.live, stats.idle

    async def close(self) -> None:
        await self._offload(self.session.close)


class SessionBackend:
    """Sessions in this process, made from the registry's bytes (`open_session`)."""

    def __init__(
        self, open_session: Callable[[ModelVersion | CatalogEntry, int], InferenceSession]
    ) -> None:
        self._open_session = open_session

    async def ready(self) -> bool:
        return True

    async def open(
        self, target: ModelVersion | CatalogEntry, concurrency: int, offload: Offload
    ) -> SessionRunner:
        session = await offload(self._open_session, target, concurrency)
        return SessionRunner(session, offload)

    async def close(self) -> None:
        return None
