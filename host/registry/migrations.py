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
    """Runtimes, projects, models, blobs, versions, aliases (projects without limits).

    Spelled out, not taken from `schema`: a shipped step must not change with it.
    """
    v1 = sa.MetaData()
    text, uid, name, when = sa.Text, sa.String(36), sa.String(100), sa.String(40)
    sa.Table(
        "runtimes",
        v1,
        sa.Column("name", name, primary_key=True),
        sa.Column("version", sa.String(200), nullable=False),
        sa.Column("module_sha256", sa.String(64), nullable=False),
        sa.Column("builtin", sa.Boolean, nullable=False),
        sa.Column("description", text, nullable=False),
        sa.Column("created_at", when, nullable=False),
    )
    sa.Table(
        "projects",
        v1,
        sa.Column("id", uid, primary_key=True),
        sa.Column("name", name, nullable=False, unique=True),
        sa.Column("runtime", name, sa.ForeignKey("runtimes.name"), nullable=False),
        sa.Column("created_at", when, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
    )
    sa.Table(
        "models",
        v1,
        sa.Column("id", uid, primary_key=True),
        sa.Column("project_id", uid, sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("name", name, nullable=False),
        sa.Column("description", text, nullable=False),
        sa.Column("created_at", when, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.UniqueConstraint("project_id", "name"),
    )
    sa.Table(
        "blobs",
        v1,
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("created_at", when, nullable=False),
    )
    sa.Table(
        "versions",
        v1,
        sa.Column("id", uid, primary_key=True),
        sa.Column("model_id", uid, sa.ForeignKey("models.id"), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("sha256", sa.String(64), sa.ForeignKey("blobs.sha256"), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("signature", text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", text, nullable=True),
        sa.Column("created_at", when, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.UniqueConstraint("model_id", "version"),
        sa.Index("versions_by_sha256", "sha256"),
    )
    sa.Table(
        "aliases",
        v1,
        sa.Column("model_id", uid, sa.ForeignKey("models.id"), primary_key=True),
        sa.Column("alias", name, primary_key=True),
        sa.Column("version_id", uid, sa.ForeignKey("versions.id"), nullable=False),
    )
    v1.create_all(conn)


def _v2_limits_and_settings(conn: sa.Connection) -> None:
    """Projects gain default limits; the registry gains settings (`wasmhost config`)."""
    conn.execute(sa.text("ALTER TABLE projects ADD COLUMN limits TEXT"))
    v2 = sa.MetaData()
    sa.Table(
        "settings",
        v2,
        sa.Column("key", sa.String(100), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    v2.create_all(conn)


def _v3_tokens(conn: sa.Connection) -> None:
    """The service's bearer tokens, stored by their sha256 only."""
    v3 = sa.MetaData()
    sa.Table("projects", v3, sa.Column("id", sa.String(36), primary_key=True))
    sa.Table(
        "tokens",
        v3,
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("project_id", sa.String(36), sa.ForeignKey("projects.id"), nullable=True),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
    )
    v3.tables["tokens"].create(conn)


def _v4_catalog_versions(conn: sa.Connection) -> None:
    """A version may be a catalog model added to a project: its bytes stay the catalog's."""
    conn.execute(sa.text("ALTER TABLE versions ADD COLUMN catalog VARCHAR(36)"))


MIGRATIONS: list[Step] = [_v1_core, _v2_limits_and_settings, _v3_tokens, _v4_catalog_versions]
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
