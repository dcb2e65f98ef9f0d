"""What the registry returns: plain, immutable records, each with `to_dict()` for JSON."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..runtime.limits import Limits

#: The `Limits` fields a project may set as its sessions' defaults.
LIMIT_FIELDS = ("memory", "timeout", "fuel", "load_fuel")


def project_limits(limits: Limits) -> dict[str, Any]:
    """The project-default fields of a `Limits`, as a project records them (JSON)."""
    return {f: int(limits.memory) if f == "memory" else getattr(limits, f) for f in LIMIT_FIELDS}


class _Record:
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]


@dataclass(frozen=True)
class Runtime(_Record):
    """What a project's models run on: a guest module of ABI v1 (today's `onnx`: tract)."""

    name: str
    version: str
    module_sha256: str
    builtin: bool
    description: str
    created_at: str


@dataclass(frozen=True)
class Project(_Record):
    """A named group of models, all run on one runtime, with default limits for sessions."""

    id: str
    name: str
    runtime: str
    created_at: str
    created_by: str
    #: Default `Limits` fields (memory, timeout, fuel, load_fuel) for its sessions.
    limits: dict[str, Any] = field(default_factory=dict)
    models: int = 0


@dataclass(frozen=True)
class Tensor(_Record):
    """One input or output of a model version's signature (as the sandbox typed it)."""

    name: str
    type: str
    shape: list[int | str | None]


@dataclass(frozen=True)
class ModelVersion(_Record):
    """One immutable upload of a model: its bytes (by sha256), signature and status."""

    id: str
    model_id: str
    project: str
    model: str
    version: int
    sha256: str
    size: int
    inputs: list[Tensor]
    outputs: list[Tensor]
    #: `ready` (validated in a sandbox), `pending` or `failed` (with `reason`).
    status: str
    reason: str | None
    created_at: str
    created_by: str
    aliases: list[str] = field(default_factory=list)
    #: The catalog entry this version is (added by reference, its bytes not copied).
    catalog: str | None = None

    @property
    def reference(self) -> str:
        return f"{self.project}/{self.model}@{self.version}"


@dataclass(frozen=True)
class Model(_Record):
    """A named model in a project; its bytes live in its versions."""

    id: str
    project: str
    project_id: str
    name: str
    description: str
    created_at: str
    created_by: str
    latest_version: int | None
    versions: int
    aliases: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Token(_Record):
    """A bearer token of the service (its secret is shown once, at creation)."""

    id: str
    name: str
    #: `admin`, `deploy` or `run`.
    role: str
    #: The one project it may act on, or None for all of them.
    project: str | None
    created_at: str
    created_by: str
