"""Schema migrations: numbered steps, each run once, in one transaction with its bump of
`schema_version`, so a registry is at one version or the next, never between.

A registry from an older wasmhost opens after an upgrade (its pending steps run); one
written by a newer wasmhost is refused rather than misread. Append steps; never edit one
that has shipped.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa

from ..errors import RegistryCorrupt
from . import schema

Step = Callable[[sa.Connection], None]


def _v1_core(conn: sa.Connection) -> None:
    """Runtimes, projects, models, blobs, versions, aliases (projects without limits)."""
    v1 = sa.MetaData()
    for table in (schema.runtimes, schema.models, schema.blobs, schema.versions, schema.aliases):
        table.to_metadata(v1)
    project_columns = [c.copy() for c in schema.projects.columns if c.name != "limits"]
    sa.Table("projects", v1, *project_columns)
    v1.create_all(conn)


def _v2_limits_and_settings(conn: sa.Connection) -> None:
    """Projects gain default limits; the registry gains settings (`wasmhost config`)."""
    conn.execute(sa.text("ALTER TABLE projects ADD COLUMN limits TEXT"))
    schema.settings.create(conn)


MIGRATIONS: list[Step] = [_v1_core, _v2_limits_and_settings]
LATEST = len(MIGRATIONS)


def current_version(conn: sa.Connection) -> int:
    """The schema version the database is at (0 for an empty one)."""
    if not sa.inspect(conn).has_table(schema.meta.name):
        return 0
    row = conn.execute(
        sa.select(schema.meta.c.value).where(schema.meta.c.key == "schema_version")
    ).first()
    return int(row[0]) if row else 0


def upgrade(conn: sa.Connection, target: int = LATEST) -> int:
    """Runs the pending steps up to `target` in the caller's (write) transaction.

    Returns the version before. Raises RegistryCorrupt for a schema newer than this code.
    """
    found = current_version(conn)
    if found > LATEST:
        raise RegistryCorrupt(
            f"the registry's schema is v{found}, newer than this wasmhost's v{LATEST}: "
            "upgrade wasmhost to open it"
        )
    if found == 0:
        schema.meta.create(conn, checkfirst=True)
    for number in range(found + 1, target + 1):
        MIGRATIONS[number - 1](conn)
        conn.execute(sa.delete(schema.meta).where(schema.meta.c.key == "schema_version"))
        conn.execute(sa.insert(schema.meta).values(key="schema_version", value=str(number)))
    return found
