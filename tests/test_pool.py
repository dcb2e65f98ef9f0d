"""The isolate pool hands isolates out first come, first served: a caller that gives one
back and asks again queues behind those already waiting (without this, a few threads
waited through many others' runs: p99 100x p50 under contention, docs/benchmarks.md)."""

from __future__ import annotations

import threading
import time

import pytest

from wasmhost.runtime.limits import Limits
from wasmhost.runtime.pool import IsolatePool


class FakeIsolate:
    dead = False

    def __init__(self, limits: Limits) -> None:
        self.limits = limits

    def close(self) -> None:
        pass


def wait_until(condition, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def test_waiters_are_served_in_arrival_order_and_a_returner_queues_behind():
    limits = Limits()
    pool = IsolatePool(FakeIsolate, limits, size=1)
    held = pool.acquire()
    order: list[str] = []
    lock = threading.Lock()

    def worker(name: str) -> None:
        isolate = pool.acquire()
        with lock:
            order.append(name)
        time.sleep(0.005)
        pool.release(isolate)

    threads = []
    for name in "abcd":
        thread = threading.Thread(target=worker, args=(name,))
        thread.start()
        threads.append(thread)
        waiting = len(threads)
        wait_until(lambda waiting=waiting: len(pool._waiting) == waiting)
    # The holder gives the isolate back and at once asks again: it is served last.
    pool.release(held)
    again = threading.Thread(target=worker, args=("holder-again",))
    again.start()
    for thread in [*threads, again]:
        thread.join(10)
    assert order == ["a", "b", "c", "d", "holder-again"]
    assert pool.stats().live == 1
    assert not pool._waiting


def test_a_failed_start_leaves_the_queue_moving():
    attempts = []

    def make(limits: Limits) -> FakeIsolate:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("no isolate this time")
        return FakeIsolate(limits)

    pool = IsolatePool(make, Limits(), size=1)
    with pytest.raises(RuntimeError):
        pool.acquire()
    isolate = pool.acquire()  # the slot the failure took is free again
    assert isinstance(isolate, FakeIsolate)
    assert pool.stats().live == 1 and not pool._waiting
