"""Registry-wide settings (`wasmhost config`), kept in the registry so that every process
using it (the CLI, the server) sees the same values."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidArgument
from ..runtime.limits import format_size, parse_size


@dataclass(frozen=True)
class Setting:
    name: str
    #: The value when none is stored (see `initial`).
    default: Any
    parse: Callable[[str], Any]
    show: Callable[[Any], str]
    help: str
    #: An environment variable that, when set, replaces `default` (a machine's choice).
    env: str | None = None

    @property
    def initial(self) -> Any:
        """The value when none is stored: the environment variable's, else `default`.

        Raises InvalidArgument for a bad value in the environment variable.
        """
        if self.env and (text := os.environ.get(self.env)):
            return self.parse(text)
        return self.default


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InvalidArgument(f"expected seconds, got {text!r}") from None
    if not 0 < value <= 3600:
        raise InvalidArgument(f"expected seconds in (0, 3600], got {text!r}")
    return value


def _switch(text: str) -> bool:
    value = text.strip().lower()
    if value not in ("on", "off"):
        raise InvalidArgument(f"expected on or off, got {text!r}")
    return value == "on"


def _on_off(value: bool) -> str:
    return "on" if value else "off"


def _size(text: str) -> int:
    value = parse_size(text, "max_model_size")
    if not 1024 <= value <= 4 * 1024**3:
        raise InvalidArgument(f"max_model_size: expected 1KiB to 4GiB, got {text!r}")
    return value


SETTINGS: dict[str, Setting] = {
    s.name: s
    for s in (
        Setting(
            "max_model_size",
            10 * 1024**2,  # Constellation's beta cap
            _size,
            format_size,
            "largest model file an upload accepts",
        ),
        Setting(
            "validate_timeout",
            60.0,
            _seconds,
            str,
            "seconds an upload's sandboxed load may take before it is refused",
        ),
        Setting(
            "snapshots",
            True,
            _switch,
            _on_off,
            "snapshot each upload (compiled once, 10-15 s) so that the service runs it "
            "in a fresh isolate per request (WASMHOST_SNAPSHOTS sets the default)",
            env="WASMHOST_SNAPSHOTS",
        ),
    )
}


def setting(name: str) -> Setting:
    """Raises InvalidArgument for an unknown name (listing the known ones)."""
    try:
        return SETTINGS[name]
    except KeyError:
        raise InvalidArgument(
            f"unknown setting {name!r}: the settings are {', '.join(SETTINGS)}"
        ) from None
