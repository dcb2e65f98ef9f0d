"""Limits: how much memory and time an isolate may use."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from ..errors import InvalidArgument

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kib": 1024,
    "kb": 1000,
    "m": 1024**2,
    "mib": 1024**2,
    "mb": 1000**2,
    "g": 1024**3,
    "gib": 1024**3,
    "gb": 1000**3,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$", re.IGNORECASE)
#: wasm32 addresses 4 GiB at most.
MAX_MEMORY = 4 * 1024**3


def parse_size(value: int | str, what: str = "size") -> int:
    """Bytes from an int or a string such as "512MiB", "1GB", "64k" (k, M, G are binary).

    Raises:
        InvalidArgument: the value is not a non-negative size.
    """
    if isinstance(value, bool):
        raise InvalidArgument(f"{what}: expected a size, got {value!r}")
    if isinstance(value, int):
        n = value
    elif isinstance(value, str) and (m := _SIZE.match(value)) and m[2].lower() in _UNITS:
        n = math.floor(float(m[1]) * _UNITS[m[2].lower()])
    else:
        raise InvalidArgument(f"{what}: expected a size such as 512MiB or 1GB, got {value!r}")
    if n < 0:
        raise InvalidArgument(f"{what}: must not be negative, got {value!r}")
    return n


def format_size(n: int) -> str:
    """A size for people: 512 MiB, 1.5 GiB, 300 B."""
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= scale:
            return f"{n / scale:.4g} {unit}"
    return f"{n} B"


@dataclass(frozen=True)
class Limits:
    """What one isolate may use. Sizes accept ints (bytes) or strings ("512MiB").

    Attributes:
        memory: cap on the guest's linear memory (default 512 MiB, at most 4 GiB).
        timeout: wall-clock seconds per guest call (model load, each run), or None.
        fuel: instructions per run (deterministic), or None for unmetered.
        load_fuel: instructions for loading the model (parsing, typing and optimising it,
            which takes far more than a run of a small model), or None for no budget.
        max_model_size: largest model accepted, checked before reading it (default 256 MiB).
        max_stdio: bytes of the guest's stdout and stderr kept per call (default 64 KiB).
        plan_cache: optimised plans (one per input-shape signature) kept per isolate.

    Raises:
        InvalidArgument: a value is out of range or not a size.
    """

    memory: int | str = "512MiB"
    timeout: float | None = 30.0
    fuel: int | None = None
    load_fuel: int | None = None
    max_model_size: int | str = "256MiB"
    max_stdio: int | str = "64KiB"
    plan_cache: int = 4

    def __post_init__(self) -> None:
        memory = parse_size(self.memory, "memory")
        if not 16 * 1024**2 <= memory <= MAX_MEMORY:
            raise InvalidArgument(f"memory: must be between 16MiB and 4GiB, got {self.memory!r}")
        object.__setattr__(self, "memory", memory)
        object.__setattr__(
            self, "max_model_size", parse_size(self.max_model_size, "max_model_size")
        )
        object.__setattr__(self, "max_stdio", parse_size(self.max_stdio, "max_stdio"))
        if self.timeout is not None:
            if isinstance(self.timeout, bool) or not isinstance(self.timeout, int | float):
                raise InvalidArgument(f"timeout: expected seconds, got {self.timeout!r}")
            if not 0 < self.timeout < 1e7 or math.isnan(self.timeout):
                raise InvalidArgument(f"timeout: must be positive seconds, got {self.timeout!r}")
        for name in ("fuel", "load_fuel"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value <= 0
            ):
                raise InvalidArgument(f"{name}: expected a positive integer, got {value!r}")
        if isinstance(self.plan_cache, bool) or not isinstance(self.plan_cache, int):
            raise InvalidArgument(f"plan_cache: expected an integer, got {self.plan_cache!r}")
        if not 1 <= self.plan_cache <= 64:
            raise InvalidArgument(f"plan_cache: must be between 1 and 64, got {self.plan_cache}")
