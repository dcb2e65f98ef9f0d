"""Names and references: what users type to name a project, a model or one of its versions.

Names match `^[a-zA-Z0-9_-]+$` (Constellation's rule). References:

- `project/model`: the model's newest ready version;
- `project/model@3`: version 3; `project/model@production`: the version an alias points to;
- a model's or a version's UUID;
- `catalog/NAME`: a model of the read-only catalog.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from ..errors import InvalidName

NAME_PATTERN = r"^[a-zA-Z0-9_-]+$"
MAX_NAME = 100
#: Largest version number a reference may name (a signed 64-bit integer's largest).
MAX_VERSION = 2**63 - 1
_NAME = re.compile(r"[a-zA-Z0-9_-]+")
#: The catalog's project: reserved, read-only.
CATALOG = "catalog"


def check_name(kind: str, name: object) -> str:
    """`name` if it is a valid name of `kind` (project, model, alias).

    Raises:
        InvalidName: it does not match `NAME_PATTERN`, or is longer than `MAX_NAME`.
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidName(f"invalid {kind} name {name!r}: names must match {NAME_PATTERN}")
    if len(name) > MAX_NAME:
        raise InvalidName(f"invalid {kind} name {name[:20]!r}...: longer than {MAX_NAME}")
    return name


def check_alias(alias: object) -> str:
    """`alias` if valid: a name that is not a number (those are version numbers).

    Raises:
        InvalidName: it is not a name, or it is a number.
    """
    check_name("alias", alias)
    assert isinstance(alias, str)
    if alias.lstrip("-").isdigit():
        raise InvalidName(f"invalid alias {alias!r}: a number would read as a version number")
    return alias


def as_uuid(text: str) -> str | None:
    """`text` as a canonical UUID string, or None if it is not one."""
    try:
        return str(uuid.UUID(text))
    except (ValueError, AttributeError, TypeError):
        return None


@dataclass(frozen=True)
class Reference:
    """A parsed reference: by `id`, or by `project`/`model` with a `version` or `alias`."""

    project: str | None = None
    model: str | None = None
    version: int | None = None
    alias: str | None = None
    id: str | None = None

    @property
    def catalog(self) -> bool:
        return self.project == CATALOG

    def __str__(self) -> str:
        if self.id:
            return self.id
        tail = f"@{self.version}" if self.version is not None else ""
        tail = f"@{self.alias}" if self.alias else tail
        return f"{self.project}/{self.model}{tail}"


def parse_reference(text: object) -> Reference:
    """Parses `project/model[@version|@alias]`, a UUID or `catalog/NAME`.

    Raises:
        InvalidName: `text` is none of these; the message shows the accepted forms.
    """
    if not isinstance(text, str):
        raise InvalidName(f"a model reference must be a string, not {type(text).__name__}")
    if (canonical := as_uuid(text)) is not None and "/" not in text:
        return Reference(id=canonical)
    head, at, tail = text.partition("@")
    project, slash, model = head.partition("/")
    if not slash:
        raise InvalidName(
            f"invalid model reference {text!r}: expected project/model, project/model@VERSION, "
            "project/model@ALIAS, catalog/NAME or a model id"
        )
    check_name("project", project)
    check_name("model", model)
    if not at:
        return Reference(project, model)
    if project == CATALOG:
        raise InvalidName(f"invalid reference {text!r}: catalog models have no versions")
    if tail.isascii() and tail.isdigit():  # not "²", which int() refuses
        version = int(tail)
        if not 1 <= version <= MAX_VERSION:  # past it: no database integer holds it
            raise InvalidName(
                f"invalid reference {text[:120]!r}: versions count from 1 to {MAX_VERSION}"
            )
        return Reference(project, model, version=version)
    return Reference(project, model, alias=check_alias(tail))
