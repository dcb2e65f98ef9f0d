"""Naming a trap: which limit it hit, or what the guest printed before it died. Pure
functions of what wasmtime and the guest said, so that each rule is unit-tested."""

from __future__ import annotations

import re
from dataclasses import dataclass

import wasmtime

from ..errors import (
    FuelExhausted,
    GuestCrash,
    MemoryLimitExceeded,
    TimeoutExceeded,
    WasmHostError,
)
from .limits import format_size

TRAP_REASON = re.compile(r"wasm trap: (.+)")
TRAP_FAULT = re.compile(r"(memory fault at wasm address \S+)")
TRAP_FRAME = re.compile(r"^\s*0: +0x[0-9a-f]+ - (?:[^!\n]*!)?(.+)$", re.M)
HASH = re.compile(r"\[[0-9a-f]{16}\]")
# Rust's allocation-failure message, and tract's own (its tensor storage panics with it).
OOM = re.compile(
    r"memory allocation of (\d+) bytes failed|failed to allocate Layout \{ size: (\d+)"
)
PANIC = re.compile(r"panicked at ([^\n]*):\n(.*)", re.DOTALL)
REGISTRY = re.compile(r"^/cargo/registry/src/[^/]+/")


@dataclass(frozen=True)
class Budgets:
    """What the trapped call was allowed: memory cap (bytes), its timeout and fuel, and
    the session's own fuel limit (to say which budget ran out)."""

    memory: int
    timeout: float | None
    fuel: int | None
    limits_fuel: int | None


def name_trap(
    code: wasmtime.TrapCode | None, text: str, stderr: str, what: str, budgets: Budgets
) -> WasmHostError:
    """The error a trap is: from its code, wasmtime's report `text`, the guest's
    `stderr` and the `budgets` of the call (`what` names the call: "loading", ...)."""
    limit = format_size(budgets.memory)
    timeout, fuel = budgets.timeout, budgets.fuel
    if code == wasmtime.TrapCode.INTERRUPT:
        return TimeoutExceeded(f"{what}: exceeded the {timeout} s timeout")
    if code == wasmtime.TrapCode.OUT_OF_FUEL:
        if what == "loading":
            return FuelExhausted(
                f"loading: used up its load fuel ({fuel} instructions, Limits.load_fuel)"
            )
        budget = "Limits.fuel" if fuel == budgets.limits_fuel else "this run's fuel"
        return FuelExhausted(f"{what}: used up its fuel ({fuel} instructions, {budget})")
    if m := OOM.search(stderr):
        return MemoryLimitExceeded(
            f"{what}: the guest could not allocate {format_size(int(m[1] or m[2]))} "
            f"under its {limit} memory limit"
        )
    if "memory" in text and "limit" in text:
        return MemoryLimitExceeded(f"{what}: the guest exceeded its {limit} memory limit")
    if code == wasmtime.TrapCode.STACK_OVERFLOW:
        return GuestCrash(f"{what}: the guest overflowed its stack")
    if m := PANIC.search(stderr):
        message = m[2].strip().splitlines()[0] if m[2].strip() else ""
        # The guest's crates live under cargo's registry: name them by crate, not path.
        location = REGISTRY.sub("", m[1])
        panic = f"{message} (at {location})"
        return GuestCrash(f"{what}: the interpreter panicked: {panic}", panic=panic)
    return GuestCrash(f"{what}: the guest trapped: {trap_summary(text)}")


def trap_summary(text: str) -> str:
    """One line from wasmtime's trap report: the trap, the fault, and the innermost frame."""
    reason = TRAP_REASON.search(text)
    fault = TRAP_FAULT.search(text)
    frame = TRAP_FRAME.search(text)
    if not reason:
        lines = text.strip().splitlines()
        return lines[0][:200] if lines else "an unknown trap"
    summary = reason[1].strip()
    if fault and fault[1].strip() not in summary:
        summary += f" ({fault[1].strip()})"
    if frame:
        summary += f" in {HASH.sub('', frame[1]).strip()[:160]}"
    return summary
