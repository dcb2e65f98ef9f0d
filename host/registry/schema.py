"""The registry's tables (SQLAlchemy Core), as the newest migration leaves them.

Times are ISO-8601 UTC strings (sortable, the same on SQLite and PostgreSQL); ids are UUID
strings; signatures and limits are JSON text.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

#: Bookkeeping: the schema version (`schema_version`).
meta = sa.Table(
    "wasmhost_meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

runtimes = sa.Table(
    "runtimes",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("version", sa.String(200), nullable=False),
    sa.Column("module_sha256", sa.String(64), nullable=False),
    # True for the guest bundled with wasmhost, whose module is found on disk; a registered
    # runtime's module is a blob, so that every node of a shared registry can load it.
    sa.Column("builtin", sa.Boolean, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("created_at", sa.String(40), nullable=False),
)

projects = sa.Table(
    "projects",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("name", sa.String(100), nullable=False, unique=True),
    sa.Column("runtime", sa.String(100), sa.ForeignKey("runtimes.name"), nullable=False),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
    sa.Column("limits", sa.Text, nullable=True),  # schema v2
)

models = sa.Table(
    "models",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("project_id", sa.String(36), sa.ForeignKey("projects.id"), nullable=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
    sa.UniqueConstraint("project_id", "name"),
)

blobs = sa.Table(
    "blobs",
    metadata,
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("created_at", sa.String(40), nullable=False),
)

versions = sa.Table(
    "versions",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("model_id", sa.String(36), sa.ForeignKey("models.id"), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("sha256", sa.String(64), sa.ForeignKey("blobs.sha256"), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("signature", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
    # Schema v4: the catalog entry (id) whose file this version is; its bytes are read
    # from the catalog, never copied into the blob store (the blob row only counts it).
    sa.Column("catalog", sa.String(36), nullable=True),
    sa.UniqueConstraint("model_id", "version"),
    sa.Index("versions_by_sha256", "sha256"),
)

aliases = sa.Table(
    "aliases",
    metadata,
    sa.Column("model_id", sa.String(36), sa.ForeignKey("models.id"), primary_key=True),
    sa.Column("alias", sa.String(100), primary_key=True),
    sa.Column("version_id", sa.String(36), sa.ForeignKey("versions.id"), nullable=False),
)

#: Registry-wide settings (`wasmhost config`): schema v2.
settings = sa.Table(
    "settings",
    metadata,
    sa.Column("key", sa.String(100), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

#: The service's bearer tokens (schema v3): only their sha256 is kept.
tokens = sa.Table(
    "tokens",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("name", sa.String(100), nullable=False, unique=True),
    sa.Column("sha256", sa.String(64), nullable=False, unique=True),
    # admin: everything; deploy: a project's models (upload, alias, delete) and runs;
    # run: a project's models, read and run.
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("project_id", sa.String(36), sa.ForeignKey("projects.id"), nullable=True),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
)
