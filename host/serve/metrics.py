"""The service's Prometheus metrics (prometheus-client), one collector registry per app."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

_LATENCY = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    """Requests, failures, durations, traps, fuel and memory per run, pools, loaded models."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "wasmhost_requests", "Requests by route and status.", ["route", "status"], registry=r
        )
        self.request_seconds = Histogram(
            "wasmhost_request_seconds",
            "Request duration.",
            ["route"],
            buckets=_LATENCY,
            registry=r,
        )
        self.inferences = Counter(
            "wasmhost_inferences",
            "Inference requests by model, version and outcome (ok or the error class).",
            ["model", "version", "outcome"],
            registry=r,
        )
        self.queue_seconds = Histogram(
            "wasmhost_queue_seconds",
            "Time an inference waited for its model's slot.",
            ["model"],
            buckets=_LATENCY,
            registry=r,
        )
        self.compute_seconds = Histogram(
            "wasmhost_compute_seconds",
            "Time an inference ran in its isolate.",
            ["model"],
            buckets=_LATENCY,
            registry=r,
        )
        self.traps = Counter(
            "wasmhost_traps", "Isolates discarded after a trap, by kind.", ["kind"], registry=r
        )
        self.fuel = Histogram(
            "wasmhost_run_fuel",
            "Instructions a metered run used.",
            ["model"],
            buckets=(1e6, 1e7, 1e8, 1e9, 1e10, 1e11),
            registry=r,
        )
        self.peak_memory = Gauge(
            "wasmhost_run_peak_memory_bytes",
            "Peak guest memory of the model's last run.",
            ["model"],
            registry=r,
        )
        self.rejected = Counter(
            "wasmhost_rejected",
            "Inferences refused because the model's queue was full.",
            ["model"],
            registry=r,
        )

    def watch(self, pools: Callable[[], Iterator[tuple[str, tuple[int, int] | None, int]]]) -> None:
        """Reports `pools()` — (model, (live, idle) isolates or None when they are held in
        remote replicas, in flight) per loaded model — at scrape."""
        self.registry.register(_PoolCollector(pools))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _PoolCollector(Collector):
    def __init__(
        self, pools: Callable[[], Iterator[tuple[str, tuple[int, int] | None, int]]]
    ) -> None:
        self._pools = pools

    def collect(self):  # type: ignore[no-untyped-def]
        loaded = GaugeMetricFamily("wasmhost_loaded_models", "Model versions loaded.")
        live = GaugeMetricFamily(
            "wasmhost_pool_isolates", "Isolates of a loaded model.", labels=["model", "state"]
        )
        flight = GaugeMetricFamily(
            "wasmhost_in_flight", "Inferences running or queued, per model.", labels=["model"]
        )
        count = 0
        for model, isolates, n_flight in self._pools():
            count += 1
            if isolates is not None:
                live.add_metric([model, "live"], isolates[0])
                live.add_metric([model, "idle"], isolates[1])
            flight.add_metric([model], n_flight)
        loaded.add_metric([], count)
        yield loaded
        yield live
        yield flight
