"""The catalog: verified, ready-to-use models, read-only, shipped inside the package.

Each entry's file is built by `scripts/build_catalog.py` and listed in `catalog.json` with
its sha256, how to feed it, and a reference case (inputs and onnxruntime's outputs). Users
reach an entry as `catalog/NAME` or by its id.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from ..errors import NotFound, RegistryCorrupt
from .blobs import sha256_of
from .names import CATALOG

DIRECTORY = Path(__file__).resolve().parent / "catalog"
#: Manifest fields that become CatalogEntry attributes (the rest go to `extra`).
_KNOWN = frozenset(
    [
        "name",
        "id",
        "description",
        "task",
        "license",
        "source",
        "sha256",
        "size",
        "inputs",
        "outputs",
        "labels",
        "metrics",
        "file",
        "reference",
        "preprocess",
    ]
)


@dataclass(frozen=True)
class CatalogEntry:
    """One verified model: what it is, where it came from, how to feed it."""

    name: str
    id: str
    description: str
    task: str
    license: str
    source: str
    runtime: str
    sha256: str
    size: int
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    labels: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    file: str = ""
    reference_file: str = ""
    #: How to turn an image into the model's input (image classifiers): resize_shorter,
    #: center_crop, color, layout, mean, std, resample...; empty for other models.
    preprocess: dict[str, Any] = field(default_factory=dict)
    #: The manifest's other fields (sources, built_with, tokenizer, ...), as they are.
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def reference(self) -> str:
        return f"{CATALOG}/{self.name}"

    @property
    def path(self) -> Path:
        return DIRECTORY / self.file

    def read(self) -> bytes:
        """The model's bytes, checked against the manifest.

        Raises:
            RegistryCorrupt: the file is missing or differs from its manifest.
        """
        try:
            data = self.path.read_bytes()
        except OSError:
            raise RegistryCorrupt(f"catalog model file {self.path} is missing") from None
        if sha256_of(data) != self.sha256:
            raise RegistryCorrupt(f"catalog model {self.name} differs from its manifest")
        return data

    def reference_case(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The entry's reference inputs and onnxruntime's outputs on them, by name."""
        import numpy as np

        with np.load(DIRECTORY / self.reference_file) as data:
            arrays = {k: data[k] for k in data.files}
        names = {i["name"] for i in self.inputs}
        inputs = {k: v for k, v in arrays.items() if k in names}
        return inputs, {k: v for k, v in arrays.items() if k not in names}

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "id": self.id,
            "reference": self.reference,
            "description": self.description,
            "task": self.task,
            "license": self.license,
            "source": self.source,
            "runtime": self.runtime,
            "sha256": self.sha256,
            "size": self.size,
            "inputs": self.inputs,
            "outputs": self.outputs,
            "labels": self.labels,
            "metrics": self.metrics,
            "preprocess": self.preprocess,
            **self.extra,
        }


@cache
def entries() -> tuple[CatalogEntry, ...]:
    """The catalog's entries, from its manifest (empty if the package ships none)."""
    try:
        manifest = json.loads((DIRECTORY / "catalog.json").read_text())
    except FileNotFoundError:
        return ()
    runtime = manifest["project"]["runtime"]
    return tuple(
        CatalogEntry(
            name=m["name"],
            id=m["id"],
            description=m["description"],
            task=m["task"],
            license=m["license"],
            source=m["source"],
            runtime=runtime,
            sha256=m["sha256"],
            size=m["size"],
            inputs=m["inputs"],
            outputs=m["outputs"],
            labels=m.get("labels", []),
            metrics=m.get("metrics", {}),
            file=m["file"],
            reference_file=m["reference"]["file"],
            preprocess=m.get("preprocess", {}),
            extra={k: v for k, v in m.items() if k not in _KNOWN},
        )
        for m in manifest["models"]
    )


def entry(name_or_id: str) -> CatalogEntry:
    """The entry of that name or id.

    Raises:
        NotFound: the catalog has no such entry (the message lists what it has).
    """
    for e in entries():
        if name_or_id in (e.name, e.id):
            return e
    have = ", ".join(e.name for e in entries()) or "nothing"
    raise NotFound(f"the catalog has no model {name_or_id!r} (it has: {have})")
