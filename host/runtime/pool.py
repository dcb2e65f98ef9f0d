"""A pool of isolates of one model: grown lazily up to a size, one isolate per
concurrent run, a trapped isolate discarded and replaced on next use."""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable
from dataclasses import dataclass

from .isolate import Isolate
from .limits import Limits


@dataclass(frozen=True)
class PoolStats:
    """What a pool holds and has done.

    Attributes:
        size: most isolates alive at once.
        live: isolates alive now (idle or running).
        idle: isolates waiting for a run.
        created: isolates started since the pool was made.
        discarded: isolates dropped after a trap (or a change of limits; isolating per
            run, after every run).
        peak: most isolates alive at once so far.
    """

    size: int
    live: int
    idle: int
    created: int
    discarded: int
    peak: int


class IsolatePool:
    """Isolates of one model under one set of limits, lent one run at a time.

    `make(limits)` starts an isolate; `first`, if given, is an isolate already started
    (the session's first, which read the model's signature). Unless `reuse`, every
    isolate is dropped after its run (per-run isolation): the pool then only bounds how
    many run at once.
    """

    def __init__(
        self,
        make: Callable[[Limits], Isolate],
        limits: Limits,
        size: int,
        first: Isolate | None = None,
        *,
        reuse: bool = True,
    ) -> None:
        self._make = make
        self._reuse = reuse
        self.limits = limits
        self.size = size
        self._cond = threading.Condition()
        # Callers waiting for an isolate, in arrival order: served first come, first
        # served (a thread that gives an isolate back and asks again queues behind the
        # others; without this, p99 under contention was 100x p50).
        self._waiting: collections.deque[object] = collections.deque()
        self._idle: list[Isolate] = [first] if first is not None else []
        self._live = len(self._idle)
        self._created = self._live
        self._discarded = 0
        self._peak = self._live

    def acquire(self) -> Isolate:
        """An idle isolate, a new one if the pool is not full, else waits for one.

        Raises:
            whatever starting an isolate raises (the pool is left as it was).
        """
        with self._cond:
            ticket = object()
            self._waiting.append(ticket)
            try:
                while self._waiting[0] is not ticket or (
                    not self._idle and self._live >= self.size
                ):
                    self._cond.wait()
            finally:
                self._waiting.remove(ticket)  # the head, unless interrupted
                self._cond.notify_all()  # the next in line checks its turn
            if self._idle:
                return self._idle.pop()
            self._live += 1
            self._created += 1
            self._peak = max(self._peak, self._live)
            limits = self.limits
        try:
            return self._make(limits)
        except BaseException:
            with self._cond:
                self._live -= 1
                self._cond.notify_all()
            raise

    def release(self, isolate: Isolate) -> None:
        """Gives `isolate` back: kept if it is sound and under the current limits."""
        # Identity, not equality, on the run path: limits change only by `reconfigure`.
        keep = self._reuse and not isolate.dead and isolate.limits is self.limits
        with self._cond:
            if keep:
                self._idle.append(isolate)
            else:
                self._live -= 1  # a fresh isolate replaces it on next use
                self._discarded += 1
            self._cond.notify_all()  # only the head of the queue may take it
        if not keep:
            isolate.close()

    def reconfigure(self, limits: Limits, size: int) -> None:
        """New limits and size: idle isolates under other limits are dropped now, the
        running ones when they come back."""
        with self._cond:
            self.size = size
            stale = [] if limits == self.limits else self._idle
            self.limits = limits
            if stale:
                self._idle = []
                self._live -= len(stale)
                self._discarded += len(stale)
            self._cond.notify_all()
        for isolate in stale:
            isolate.close()

    def close(self) -> None:
        """Drops the idle isolates; runs under way finish on theirs."""
        with self._cond:
            idle, self._idle = self._idle, []
            self._live -= len(idle)
        for isolate in idle:
            isolate.close()

    def stats(self) -> PoolStats:
        with self._cond:
            return PoolStats(
                self.size, self._live, len(self._idle), self._created, self._discarded, self._peak
            )
