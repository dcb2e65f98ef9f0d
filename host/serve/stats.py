"""Recent inferences per model, for the dashboard's charts: a bounded window in memory.

Each model keeps its last `size` runs (when, how long, the outcome) and counts since the
server started; at most `max_models` models are kept (the least recently run dropped).
Prometheus' /metrics stays the record to alert on; this is a glance at the last minutes.
"""

from __future__ import annotations

import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: The outcome classes that count as traps (as wasmhost_traps counts them).
TRAPS = ("trap", "timeout", "fuel")


@dataclass
class _Model:
    project: str
    runs: deque[tuple[float, float, str]]
    total: int = 0
    errors: int = 0
    traps: Counter[str] = field(default_factory=Counter)


class Window:
    """The last runs of each model. Called on the event loop only (not thread-safe)."""

    def __init__(self, size: int = 1024, max_models: int = 1000, clock=time.monotonic) -> None:
        self.size = size
        self.max_models = max_models
        self.clock = clock
        self._models: OrderedDict[str, _Model] = OrderedDict()

    def record(self, model: str, project: str, seconds: float, outcome: str = "ok") -> None:
        """One run of `model` (`project.model`) that took `seconds`: `ok`, or the error's
        outcome class (`trap:oom`, `timeout`, `fuel`, `error:invalid_input`...)."""
        found = self._models.get(model)
        if found is None:
            found = self._models[model] = _Model(project, deque(maxlen=self.size))
            while len(self._models) > self.max_models:
                self._models.popitem(last=False)
        else:
            self._models.move_to_end(model)
        found.runs.append((self.clock(), seconds, outcome))
        found.total += 1
        if outcome != "ok":
            found.errors += 1
            if outcome.startswith(TRAPS):
                found.traps[outcome] += 1

    def snapshot(
        self, sees: Callable[[str], bool], *, interval: float = 10, intervals: int = 30
    ) -> list[dict[str, Any]]:
        """Each model whose project `sees(project)` allows: counts since start, p50 and
        p99 over the window (ms), traps by kind, the window's last 60 latencies (ms), and
        runs per `interval` seconds over the last `intervals` of them (oldest first)."""
        now = self.clock()
        found = []
        for name, m in sorted(self._models.items()):
            if not sees(m.project):
                continue
            durations = sorted(s for _, s, _ in m.runs)
            counts = [0] * intervals
            for at, _, _ in m.runs:
                slot = intervals - 1 - int((now - at) // interval)
                if 0 <= slot < intervals:
                    counts[slot] += 1
            found.append(
                {
                    "model": name,
                    "project": m.project,
                    "requests": m.total,
                    "errors": m.errors,
                    "traps": dict(sorted(m.traps.items())),
                    "window": len(m.runs),
                    "p50_ms": _ms(percentile(durations, 50)),
                    "p99_ms": _ms(percentile(durations, 99)),
                    "latency_ms": [_ms(s) for _, s, _ in list(m.runs)[-60:]],
                    "per_interval": {"seconds": interval, "counts": counts},
                }
            )
        return found


def percentile(ordered: list[float], p: float) -> float | None:
    """The nearest-rank `p`th percentile of an ascending list (None when empty)."""
    if not ordered:
        return None
    rank = max(1, -(-len(ordered) * p // 100))  # ceil(n * p / 100), at least 1
    return ordered[int(rank) - 1]


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)
