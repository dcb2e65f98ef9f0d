"""Naming traps: pure functions of wasmtime's trap code and report and what the guest
printed (runtime/traps.py), without a guest."""

from __future__ import annotations

import pytest
import wasmtime

import wasmhost
from wasmhost.runtime.traps import Budgets, name_trap, trap_summary

BUDGETS = Budgets(memory=64 * 2**20, timeout=2.5, fuel=1000, limits_fuel=1000)
REPORT = """error while executing at wasm backtrace:
    0: 0x1234 - tract_onnx_guest.wasm!tract_core::ops::array::gather::Gather::eval[0123456789abcdef]
    1: 0x5678 - <unknown>!wh_run
wasm trap: out of bounds memory access (memory fault at wasm address 0x100000 in linear memory \
of size 0x10000)"""


@pytest.mark.parametrize(
    ("code", "text", "stderr", "what", "error", "words"),
    [
        (wasmtime.TrapCode.INTERRUPT, "", "", "running", wasmhost.TimeoutExceeded, ["2.5 s"]),
        (
            wasmtime.TrapCode.OUT_OF_FUEL,
            "",
            "",
            "running",
            wasmhost.FuelExhausted,
            ["1000", "Limits.fuel"],
        ),
        (
            wasmtime.TrapCode.OUT_OF_FUEL,
            "",
            "",
            "loading",
            wasmhost.FuelExhausted,
            ["Limits.load_fuel"],
        ),
        (
            None,
            "",
            "memory allocation of 1048576 bytes failed\n",
            "running",
            wasmhost.MemoryLimitExceeded,
            ["1 MiB", "64 MiB"],
        ),
        (
            None,
            "",
            "failed to allocate Layout { size: 2097152, align: 8 }",
            "running",
            wasmhost.MemoryLimitExceeded,
            ["2 MiB"],
        ),
        (
            None,
            "memory minimum size exceeds limit",
            "",
            "loading",
            wasmhost.MemoryLimitExceeded,
            ["64 MiB"],
        ),
        (wasmtime.TrapCode.STACK_OVERFLOW, "", "", "running", wasmhost.GuestCrash, ["stack"]),
        (
            None,
            REPORT,
            "",
            "running",
            wasmhost.GuestCrash,
            ["out of bounds memory access", "Gather::eval"],
        ),
    ],
)
def test_each_trap_is_named(code, text, stderr, what, error, words):
    named = name_trap(code, text, stderr, what, BUDGETS)
    assert type(named) is error
    for w in words:
        assert w in str(named), str(named)


def test_a_panic_names_its_message_and_crate_not_its_path():
    stderr = (
        "thread '<unnamed>' panicked at /cargo/registry/src/index.crates.io-1949cf8c6b5b557f/"
        "tract-core-0.23.9/src/ops/array/gather.rs:85:9:\nindex out of bounds: the len is 3\n"
    )
    named = name_trap(
        wasmtime.TrapCode.UNREACHABLE, "wasm trap: unreachable", stderr, "running", BUDGETS
    )
    assert isinstance(named, wasmhost.GuestCrash)
    assert (
        named.panic
        == "index out of bounds: the len is 3 (at tract-core-0.23.9/src/ops/array/gather.rs:85:9)"
    )
    assert named.outcome == "trap:panic"


def test_a_run_budget_other_than_the_limits_is_named_as_the_runs():
    named = name_trap(
        wasmtime.TrapCode.OUT_OF_FUEL, "", "", "running", Budgets(2**24, None, 5, 1000)
    )
    assert "this run's fuel" in str(named)


def test_trap_summaries_are_one_line():
    # The reason, its fault once, and the innermost frame without its hash.
    assert trap_summary(REPORT) == (
        "out of bounds memory access (memory fault at wasm address 0x100000 in linear memory "
        "of size 0x10000) in tract_core::ops::array::gather::Gather::eval"
    )
    assert (
        trap_summary(
            "wasm trap: out of bounds memory access\nmemory fault at wasm address 0x10 in x"
        )
        == "out of bounds memory access (memory fault at wasm address 0x10)"
    )
    assert trap_summary("") == "an unknown trap"
    assert trap_summary("something odd\nmore") == "something odd"
