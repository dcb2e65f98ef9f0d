"""The registry: projects, models with immutable numbered versions and movable aliases, the
catalog, and runtimes, over a database (SQLite or PostgreSQL) and a blob store.

An upload is validated in a sandboxed isolate first; then its bytes are written whole
(content-addressed) and one transaction records the version. Whatever kills the process,
the registry is as before or as after: at worst a blob that no row names is left behind,
and `gc()` collects it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import getpass
import json
import logging
import math
import os
import secrets
import tempfile
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import platformdirs
import sqlalchemy as sa

from ..errors import (
    AlreadyExists,
    InvalidArgument,
    InvalidModel,
    InvalidName,
    NotFound,
    RegistryCorrupt,
    Unauthorized,
    WasmHostError,
)
from ..runtime.engine import Engine, EngineConfig
from ..runtime.limits import Limits, format_size
from ..runtime.session import InferenceSession
from . import catalog
from . import runtimes as modules
from .blobs import LocalBlobs, S3Blobs, open_blobs, sha256_of
from .catalog import CatalogEntry
from .database import Database
from .names import CATALOG, Reference, as_uuid, check_alias, check_name, parse_reference
from .records import (
    LIMIT_FIELDS,
    Model,
    ModelVersion,
    Project,
    Runtime,
    Tensor,
    Token,
    project_limits,
)
from .schema import aliases, blobs, models, projects, settings, tokens, versions
from .schema import runtimes as runtime_table
from .settings import SETTINGS, setting
from .validate import validate

log = logging.getLogger("wasmhost.registry")

#: What the service holds a project's models to beyond `Limits`: runs at once per model,
#: and requests that may wait for one (more are refused with 429).
SERVICE_FIELDS = ("concurrency", "queue")
ROLES = ("admin", "deploy", "run")
#: A blob no row names is collected only once it is this old (seconds): an upload in
#: another process writes its blob before the transaction that names it.
GC_GRACE = 3600.0

_READY, _PENDING, _FAILED = "ready", "pending", "failed"


@dataclass(frozen=True)
class SessionSource:
    """A model as a session is made from it: see `Registry.source`."""

    reference: str
    model: bytes
    #: The project's default limits (wasmhost's defaults for the catalog).
    limits: Limits
    #: The runtime's guest module, or None for the bundled one.
    module: Path | None


def home() -> Path:
    """The embedded registry's directory: `WASMHOST_HOME`, else the user data dir."""
    if env := os.environ.get("WASMHOST_HOME"):
        return Path(env)
    return Path(platformdirs.user_data_dir("wasmhost"))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _user(user: str | None) -> str:
    if user:
        return user
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _locate(path_or_url: str | os.PathLike[str] | None, blob_url: str | None) -> tuple[str, str]:
    """The (database URL, blob store URL) a registry argument names."""
    if path_or_url is None:
        path_or_url = os.environ.get("WASMHOST_REGISTRY") or home()
        blob_url = blob_url or os.environ.get("WASMHOST_BLOBS")
    text = os.fspath(path_or_url)
    if "://" not in text:  # a directory: the embedded layout
        directory = Path(text)
        directory.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{directory / 'registry.db'}", blob_url or str(directory / "blobs")
    if text.startswith("sqlite:///"):
        database = Path(text.removeprefix("sqlite:///"))
        database.parent.mkdir(parents=True, exist_ok=True)
        return text, blob_url or str(database.parent / "blobs")
    if not blob_url:
        raise InvalidArgument(
            f"a registry at {text.split('@')[-1]!r} needs a blob store too: "
            "--blobs s3://BUCKET/PREFIX (or WASMHOST_BLOBS)"
        )
    return text, blob_url


class Registry:
    """Projects, models, versions, aliases, runtimes and the catalog.

    Args:
        path_or_url: a directory (SQLite + blobs inside it), a `sqlite:///` URL, or a
            `postgresql://` URL; default `WASMHOST_REGISTRY`, else `WASMHOST_HOME`, else
            the user data directory.
        blobs: where model bytes go: a directory or `s3://bucket/prefix` (default: the
            registry directory's `blobs/`; required with PostgreSQL).

    Several processes may use one registry at once.

    Raises:
        InvalidArgument: a URL that names no usable database or blob store.
        RegistryCorrupt: the registry was written by a newer wasmhost.
    """

    def __init__(
        self, path_or_url: str | os.PathLike[str] | None = None, *, blobs: str | None = None
    ) -> None:
        database_url, blob_url = _locate(path_or_url, blobs)
        self.db = Database(database_url)
        self.blobs: LocalBlobs | S3Blobs = open_blobs(blob_url)
        self._sync_builtin_runtime()

    def __repr__(self) -> str:
        return f"Registry({self.db.engine.url.render_as_string(hide_password=True)!r})"

    def close(self) -> None:
        self.db.dispose()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- runtimes -------------------------------------------------------------------

    def _sync_builtin_runtime(self) -> None:
        version, sha = modules.builtin()
        row = dict(
            name=modules.BUILTIN,
            version=version,
            module_sha256=sha,
            builtin=True,
            description=modules.BUILTIN_DESCRIPTION,
        )
        with self.db.reading() as conn:
            found = conn.execute(
                sa.select(runtime_table).where(runtime_table.c.name == modules.BUILTIN)
            ).first()
        if found and found.version == version and found.module_sha256 == sha:
            return

        def work(conn: sa.Connection) -> None:
            table = runtime_table
            if conn.execute(sa.select(table.c.name).where(table.c.name == row["name"])).first():
                conn.execute(sa.update(table).where(table.c.name == row["name"]).values(**row))
            else:
                conn.execute(sa.insert(table).values(**row, created_at=_now()))

        self.db.write(work)

    def runtimes(self) -> list[Runtime]:
        """Every runtime, the bundled `onnx` first."""
        table = runtime_table
        with self.db.reading() as conn:
            rows = conn.execute(sa.select(table).order_by(~table.c.builtin, table.c.name))
            return [Runtime(**row._mapping) for row in rows]

    def runtime(self, name: str) -> Runtime:
        """Raises NotFound for an unknown runtime."""
        for found in self.runtimes():
            if found.name == name:
                return found
        raise NotFound(f"no runtime {name!r} (see `wasmhost runtime list`)")

    def register_runtime(
        self,
        name: str,
        module: str | os.PathLike[str] | bytes,
        *,
        version: str = "",
        description: str = "",
    ) -> Runtime:
        """Registers a guest module (ABI v1) as a runtime projects can choose.

        Raises:
            InvalidName: a bad name.
            AlreadyExists: a runtime of that name exists.
            GuestProtocolError: the module is not WebAssembly, or lacks ABI v1.
            OSError: the module file cannot be read.
        """
        check_name("runtime", name)
        data = module if isinstance(module, bytes) else Path(module).read_bytes()
        sha = sha256_of(data)
        Engine.get(EngineConfig(), modules.module_file(sha, lambda: data))  # compiles, checks
        self.blobs.put(sha, data)

        def work(conn: sa.Connection) -> None:
            table = runtime_table
            if conn.execute(sa.select(table.c.name).where(table.c.name == name)).first():
                raise AlreadyExists(f"runtime {name!r} exists already")
            self._hold_blob(conn, sha, data)
            conn.execute(
                sa.insert(table).values(
                    name=name,
                    version=version or f"module {sha[:12]}",
                    module_sha256=sha,
                    builtin=False,
                    description=description,
                    created_at=_now(),
                )
            )

        self.db.write(work)
        return self.runtime(name)

    def _module(self, runtime: str) -> Path | None:
        """The guest module file a runtime's sessions load (None: the bundled one)."""
        found = self.runtime(runtime)
        if found.builtin:
            return None
        return modules.module_file(found.module_sha256, lambda: self.blobs.get(found.module_sha256))

    # ---- projects -------------------------------------------------------------------

    def create_project(
        self,
        name: str,
        *,
        runtime: str = modules.BUILTIN,
        limits: Limits | dict[str, Any] | None = None,
        user: str | None = None,
    ) -> Project:
        """Creates a project whose models run on `runtime`, with default `limits`.

        Raises:
            InvalidName: a bad name, or `catalog` (reserved).
            AlreadyExists: a project of that name exists.
            NotFound: no such runtime.
            InvalidArgument: limits out of range.
        """
        check_name("project", name)
        if name == CATALOG:
            raise InvalidName(f"the project name {CATALOG!r} is reserved for the catalog")
        self.runtime(runtime)
        stored = _limits_dict(limits)
        project_id = str(uuid.uuid4())

        def work(conn: sa.Connection) -> None:
            if conn.execute(sa.select(projects.c.id).where(projects.c.name == name)).first():
                raise AlreadyExists(f"project {name!r} exists already")
            conn.execute(
                sa.insert(projects).values(
                    id=project_id,
                    name=name,
                    runtime=runtime,
                    created_at=_now(),
                    created_by=_user(user),
                    limits=json.dumps(stored) if stored else None,
                )
            )

        self.db.write(work)
        return self.project(name)

    def projects(self) -> list[Project]:
        """Every project, by name, with its number of models."""
        counts = (
            sa.select(models.c.project_id, sa.func.count().label("n"))
            .group_by(models.c.project_id)
            .subquery()
        )
        query = (
            sa.select(projects, sa.func.coalesce(counts.c.n, 0).label("models"))
            .outerjoin(counts, counts.c.project_id == projects.c.id)
            .order_by(projects.c.name)
        )
        with self.db.reading() as conn:
            return [_project(row) for row in conn.execute(query)]

    def project(self, name_or_id: str) -> Project:
        """Raises NotFound (and InvalidName for a string that is neither name nor id)."""
        if name_or_id == CATALOG:
            raise NotFound("`catalog` is the read-only catalog: see `wasmhost catalog list`")
        column = projects.c.id if as_uuid(name_or_id) else projects.c.name
        if column is projects.c.name:
            check_name("project", name_or_id)
        for found in self.projects():
            if getattr(found, column.name) == (as_uuid(name_or_id) or name_or_id):
                return found
        raise NotFound(f"no project {name_or_id!r}")

    def set_project_limits(self, name: str, limits: Limits | dict[str, Any] | None) -> Project:
        """Replaces a project's default limits (None: wasmhost's defaults).

        Raises NotFound, InvalidArgument.
        """
        found = self.project(name)
        stored = _limits_dict(limits)

        def work(conn: sa.Connection) -> None:
            conn.execute(
                sa.update(projects)
                .where(projects.c.id == found.id)
                .values(limits=json.dumps(stored) if stored else None)
            )

        self.db.write(work)
        return self.project(found.id)

    def delete_project(self, name: str) -> Project:
        """Deletes a project, its models and their versions; blobs no version names any
        more are removed. Raises NotFound."""
        found = self.project(name)

        def work(conn: sa.Connection) -> list[str]:
            model_ids = sa.select(models.c.id).where(models.c.project_id == found.id)
            shas = conn.execute(
                sa.select(versions.c.sha256).where(versions.c.model_id.in_(model_ids))
            ).scalars()
            shas = sorted(set(shas))
            conn.execute(sa.delete(aliases).where(aliases.c.model_id.in_(model_ids)))
            conn.execute(sa.delete(versions).where(versions.c.model_id.in_(model_ids)))
            conn.execute(sa.delete(models).where(models.c.project_id == found.id))
            conn.execute(sa.delete(tokens).where(tokens.c.project_id == found.id))
            conn.execute(sa.delete(projects).where(projects.c.id == found.id))
            return shas

        self._release(self.db.write(work))
        return found

    # ---- uploads --------------------------------------------------------------------

    def upload(
        self,
        project: str,
        name: str,
        model: str | os.PathLike[str] | bytes,
        *,
        description: str | None = None,
        user: str | None = None,
    ) -> ModelVersion:
        """Uploads a model: version 1 of a new name, else the next version of that name.

        The bytes are loaded in a sandboxed isolate of the project's runtime, under the
        project's limits (and the registry's `validate_timeout`), before anything is
        stored; a refusal stores nothing.

        Raises:
            InvalidName, NotFound: a bad name, no such project.
            InvalidModel: not ONNX, over `max_model_size`, external data, or invalid.
            UnsupportedModel: the project's runtime cannot run it.
            MemoryLimitExceeded, TimeoutExceeded, FuelExhausted, GuestCrash: loading it
                trapped in the sandbox.
            OSError: the file cannot be read.
        """
        check_name("model", name)
        if project == CATALOG:
            raise InvalidName("the catalog is read-only: upload to a project of your own")
        target = self.project(project)
        data = _read_capped(model, self.get_setting("max_model_size"))
        return self._add(target, name, data, None, description, user)

    def add_from_catalog(
        self,
        project: str,
        name: str,
        entry: str,
        *,
        description: str | None = None,
        user: str | None = None,
    ) -> ModelVersion:
        """Adds catalog model `entry` (a name, `catalog/NAME` or its id) to a project as
        the next version of `name`, without copying its bytes: the version reads them from
        the catalog. It is validated under the project's limits like an upload.

        Raises like `upload`, and NotFound for an unknown entry.
        """
        check_name("model", name)
        if project == CATALOG:
            raise InvalidName("the catalog is read-only: add to a project of your own")
        found = catalog.entry(entry.removeprefix(f"{CATALOG}/"))
        target = self.project(project)
        if found.runtime != target.runtime:
            raise InvalidArgument(
                f"catalog model {found.name} runs on {found.runtime}, project {target.name} on "
                f"{target.runtime}"
            )
        return self._add(target, name, found.read(), found, description or found.description, user)

    def _add(
        self,
        target: Project,
        name: str,
        data: bytes,
        entry: CatalogEntry | None,
        description: str | None,
        user: str | None,
    ) -> ModelVersion:
        limits = self._limits(target)
        timeout = min(limits.timeout or math.inf, self.get_setting("validate_timeout"))
        inputs, outputs = validate(
            data, dataclasses.replace(limits, timeout=timeout), self._module(target.runtime)
        )
        sha = sha256_of(data)
        if entry is None and not self.blobs.exists(sha):
            self.blobs.put(sha, data)
        signature = json.dumps(
            {"inputs": [t.to_dict() for t in inputs], "outputs": [t.to_dict() for t in outputs]}
        )
        version_id = str(uuid.uuid4())

        def work(conn: sa.Connection) -> None:
            if not conn.execute(
                sa.select(projects.c.id).where(projects.c.id == target.id).with_for_update()
            ).first():
                raise NotFound(f"project {target.name!r} was deleted during the upload")
            self._hold_blob(conn, sha, data, store=entry is None)
            found = conn.execute(
                sa.select(models.c.id)
                .where(models.c.project_id == target.id, models.c.name == name)
                .with_for_update()
            ).first()
            if found is None:
                model_id = str(uuid.uuid4())
                conn.execute(
                    sa.insert(models).values(
                        id=model_id,
                        project_id=target.id,
                        name=name,
                        description=description or "",
                        created_at=_now(),
                        created_by=_user(user),
                    )
                )
            else:
                model_id = found.id
                if description is not None:
                    conn.execute(
                        sa.update(models)
                        .where(models.c.id == model_id)
                        .values(description=description)
                    )
            last = conn.execute(
                sa.select(sa.func.max(versions.c.version)).where(versions.c.model_id == model_id)
            ).scalar()
            conn.execute(
                sa.insert(versions).values(
                    id=version_id,
                    model_id=model_id,
                    version=(last or 0) + 1,
                    sha256=sha,
                    size=len(data),
                    signature=signature,
                    status=_READY,
                    reason=None,
                    created_at=_now(),
                    created_by=_user(user),
                    catalog=entry.id if entry else None,
                )
            )

        self.db.write(work)
        version = self._version_by_id(version_id)
        self._snapshot(target, data, version)
        return version

    def _snapshot(self, project: Project, data: bytes, version: ModelVersion) -> None:
        """Snapshots a new version (setting `snapshots`, on by default) so that the service
        runs it in a fresh isolate per request (docs/snapshots.md). Only for the bundled
        runtime, under the project's limits: one compile of 10-15 s. The version is ready
        already: a failure is logged and the service runs it in pooled isolates."""
        if not self.get_setting("snapshots") or not self.runtime(project.runtime).builtin:
            return
        try:
            with InferenceSession(
                data, limits=self._limits(project), pool_size=1, isolation="per-run"
            ):
                pass
        except (WasmHostError, OSError) as e:
            log.warning(
                "%s: no snapshot (%s: %s); the service runs it in pooled isolates",
                version.reference,
                type(e).__name__,
                e,
            )

    def _hold_blob(self, conn: sa.Connection, sha: str, data: bytes, *, store: bool = True) -> None:
        """Makes the blob row exist, locked, with its bytes present (when `store`: a
        catalog version's bytes stay in the catalog), for this transaction.

        A concurrent release of the same digest (a delete elsewhere) takes the same row
        lock, so it either finished first (and the bytes are written again here) or waits
        and then sees the version this transaction adds.
        """
        row = conn.execute(
            sa.select(blobs.c.sha256).where(blobs.c.sha256 == sha).with_for_update()
        ).first()
        if row is None:
            conn.execute(sa.insert(blobs).values(sha256=sha, size=len(data), created_at=_now()))
        if store and not self.blobs.exists(sha):
            self.blobs.put(sha, data)

    def _release(self, shas: Iterable[str]) -> None:
        """Removes the blobs among `shas` that no version or runtime names any more."""
        for sha in shas:

            def work(conn: sa.Connection, sha: str = sha) -> None:
                if not conn.execute(
                    sa.select(blobs.c.sha256).where(blobs.c.sha256 == sha).with_for_update()
                ).first():
                    return
                if _blob_used(conn, sha):
                    return
                # Bytes first, row second: a crash between leaves a row without bytes that
                # nothing names (gc removes it), never a version without its bytes.
                self.blobs.delete(sha)
                conn.execute(sa.delete(blobs).where(blobs.c.sha256 == sha))

            self.db.write(work)

    # ---- lookups --------------------------------------------------------------------

    def resolve(self, ref: str) -> ModelVersion | CatalogEntry:
        """The version (or catalog entry) a reference names.

        `project/model` is its newest ready version.

        Raises:
            InvalidName: not a reference.
            NotFound: nothing has that name, version, alias or id.
        """
        parsed = parse_reference(ref)
        if parsed.catalog:
            return catalog.entry(parsed.model or "")
        if parsed.id:
            with contextlib.suppress(NotFound):
                return self._version_by_id(parsed.id)
            for entry in catalog.entries():
                if entry.id == parsed.id:
                    return entry
        model = self._model_row(parsed)
        with self.db.reading() as conn:
            query = sa.select(versions.c.id).where(versions.c.model_id == model.id)
            if parsed.version is not None:
                query = query.where(versions.c.version == parsed.version)
            elif parsed.alias:
                query = sa.select(aliases.c.version_id).where(
                    aliases.c.model_id == model.id, aliases.c.alias == parsed.alias
                )
            else:
                query = query.where(versions.c.status == _READY).order_by(versions.c.version.desc())
            found = conn.execute(query.limit(1)).scalar()
        if found is None:
            what = (
                f"version {parsed.version}"
                if parsed.version is not None
                else f"alias {parsed.alias!r}"
                if parsed.alias
                else "ready version"
            )
            raise NotFound(f"model {model.project}/{model.name} has no {what}")
        return self._version_by_id(found)

    def version(self, ref: str) -> ModelVersion:
        """Like `resolve`, for registry versions only (NotFound for catalog entries)."""
        found = self.resolve(ref)
        if isinstance(found, CatalogEntry):
            raise NotFound(f"{ref} is a catalog model, not a version of a project's model")
        return found

    def _model_row(self, parsed: Reference) -> Model:
        if parsed.id:
            found = self._models(models.c.id == parsed.id)
            if not found:
                raise NotFound(f"no model or version has id {parsed.id}")
            return found[0]
        project = self.project(parsed.project or "")
        found = self._models(models.c.project_id == project.id, models.c.name == parsed.model)
        if not found:
            raise NotFound(f"project {project.name!r} has no model {parsed.model!r}")
        return found[0]

    def model(self, ref: str) -> Model:
        """The model a reference names (its version or alias part, if any, is ignored).

        Raises InvalidName, NotFound (catalog references too: see `catalog`).
        """
        parsed = parse_reference(ref)
        if parsed.catalog:
            raise NotFound(f"{ref} is a catalog model: see `wasmhost catalog show`")
        if parsed.id:
            with contextlib.suppress(NotFound):
                version = self._version_by_id(parsed.id)
                return self._model_row(Reference(id=version.model_id))
        return self._model_row(Reference(parsed.project, parsed.model, id=parsed.id))

    def models(self, project: str) -> list[Model]:
        """A project's models, by name. Raises NotFound."""
        found = self.project(project)
        return self._models(models.c.project_id == found.id)

    def _models(self, *where: Any) -> list[Model]:
        stats = (
            sa.select(
                versions.c.model_id,
                sa.func.max(versions.c.version).label("latest"),
                sa.func.count().label("n"),
            )
            .group_by(versions.c.model_id)
            .subquery()
        )
        query = (
            sa.select(
                models,
                projects.c.name.label("project"),
                stats.c.latest,
                sa.func.coalesce(stats.c.n, 0).label("n"),
            )
            .join(projects, projects.c.id == models.c.project_id)
            .outerjoin(stats, stats.c.model_id == models.c.id)
            .where(*where)
            .order_by(models.c.name)
        )
        alias_query = (
            sa.select(aliases.c.model_id, aliases.c.alias, versions.c.version)
            .join(versions, versions.c.id == aliases.c.version_id)
            .join(models, models.c.id == aliases.c.model_id)
            .where(*where)
        )
        with self.db.reading() as conn:
            rows = conn.execute(query).all()
            by_model: dict[str, dict[str, int]] = {}
            for row in conn.execute(alias_query):
                by_model.setdefault(row.model_id, {})[row.alias] = row.version
        return [
            Model(
                id=row.id,
                project=row.project,
                project_id=row.project_id,
                name=row.name,
                description=row.description,
                created_at=row.created_at,
                created_by=row.created_by,
                latest_version=row.latest,
                versions=row.n,
                aliases=dict(sorted(by_model.get(row.id, {}).items())),
            )
            for row in rows
        ]

    def versions(self, ref: str) -> list[ModelVersion]:
        """Every version of the model `ref` names, oldest first. Raises NotFound."""
        model = self.model(ref)
        return self._versions(versions.c.model_id == model.id)

    def _version_by_id(self, version_id: str) -> ModelVersion:
        found = self._versions(versions.c.id == version_id)
        if not found:
            raise NotFound(f"no model version has id {version_id}")
        return found[0]

    def _versions(self, *where: Any) -> list[ModelVersion]:
        query = (
            sa.select(versions, models.c.name.label("model"), projects.c.name.label("project"))
            .join(models, models.c.id == versions.c.model_id)
            .join(projects, projects.c.id == models.c.project_id)
            .where(*where)
            .order_by(versions.c.version)
        )
        with self.db.reading() as conn:
            rows = conn.execute(query).all()
            names: dict[str, list[str]] = {}
            ids = [row.id for row in rows]
            if ids:
                for row in conn.execute(
                    sa.select(aliases.c.version_id, aliases.c.alias)
                    .where(aliases.c.version_id.in_(ids))
                    .order_by(aliases.c.alias)
                ):
                    names.setdefault(row.version_id, []).append(row.alias)
        result = []
        for row in rows:
            signature = json.loads(row.signature)
            result.append(
                ModelVersion(
                    id=row.id,
                    model_id=row.model_id,
                    project=row.project,
                    model=row.model,
                    version=row.version,
                    sha256=row.sha256,
                    size=row.size,
                    inputs=[Tensor(**t) for t in signature["inputs"]],
                    outputs=[Tensor(**t) for t in signature["outputs"]],
                    status=row.status,
                    reason=row.reason,
                    created_at=row.created_at,
                    created_by=row.created_by,
                    aliases=names.get(row.id, []),
                    catalog=_catalog_name(row.catalog),
                )
            )
        return result

    # ---- aliases, reads, deletes -----------------------------------------------------

    def set_alias(self, ref: str, alias: str) -> ModelVersion:
        """Points `alias` of the model at the version `ref` names (moving it if it
        pointed elsewhere). Raises InvalidName, NotFound."""
        check_alias(alias)
        target = self.version(ref)

        def work(conn: sa.Connection) -> None:
            if not conn.execute(
                sa.select(versions.c.id).where(versions.c.id == target.id).with_for_update()
            ).first():
                raise NotFound(f"{target.reference} was deleted meanwhile")
            conn.execute(
                sa.delete(aliases).where(
                    aliases.c.model_id == target.model_id, aliases.c.alias == alias
                )
            )
            conn.execute(
                sa.insert(aliases).values(
                    model_id=target.model_id, alias=alias, version_id=target.id
                )
            )

        self.db.write(work)
        return self._version_by_id(target.id)

    def remove_alias(self, ref: str, alias: str) -> None:
        """Removes an alias of the model `ref` names. Raises InvalidName, NotFound."""
        check_alias(alias)
        model = self.model(ref)

        def work(conn: sa.Connection) -> int:
            return conn.execute(
                sa.delete(aliases).where(aliases.c.model_id == model.id, aliases.c.alias == alias)
            ).rowcount

        if not self.db.write(work):
            raise NotFound(f"model {model.project}/{model.name} has no alias {alias!r}")

    def read(self, ref: str) -> bytes:
        """The bytes of the version (or catalog model) `ref` names, checked by sha256.

        Raises InvalidName, NotFound, RegistryCorrupt (the stored bytes are damaged).
        """
        found = self.resolve(ref)
        if isinstance(found, CatalogEntry):
            return found.read()
        return self._bytes(found)

    def _bytes(self, version: ModelVersion) -> bytes:
        if version.catalog is not None:
            return catalog.entry(version.catalog).read()
        return self.blobs.get(version.sha256)

    def download(self, ref: str, path: str | os.PathLike[str]) -> ModelVersion | CatalogEntry:
        """Writes the model's bytes to `path`, whole or not at all. Raises like `read`,
        and OSError when `path` cannot be written."""
        found = self.resolve(ref)
        data = self.read(ref)
        target = Path(path)
        fd, tmp = tempfile.mkstemp(dir=target.parent or ".", prefix=f".{target.name}-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return found

    def delete(self, ref: str) -> list[ModelVersion]:
        """Deletes one version (`project/model@3`, `@alias`, a version id) or a whole model
        (`project/model`, a model id), with their aliases; returns what was deleted.

        Raises InvalidName, NotFound (and NotFound for catalog models: read-only).
        """
        parsed = parse_reference(ref)
        if parsed.catalog:
            raise NotFound(f"{ref} is in the read-only catalog")
        one: ModelVersion | None = None
        if parsed.version is not None or parsed.alias:
            one = self.version(ref)
        elif parsed.id:
            with contextlib.suppress(NotFound):
                one = self._version_by_id(parsed.id)
        model = self.model(ref)
        doomed = [one] if one else self.versions(ref)

        def work(conn: sa.Connection) -> list[str]:
            ids = [v.id for v in doomed]
            conn.execute(sa.delete(aliases).where(aliases.c.version_id.in_(ids)))
            conn.execute(sa.delete(versions).where(versions.c.id.in_(ids)))
            if one is None:
                conn.execute(sa.delete(aliases).where(aliases.c.model_id == model.id))
                conn.execute(sa.delete(versions).where(versions.c.model_id == model.id))
                conn.execute(sa.delete(models).where(models.c.id == model.id))
            return sorted({v.sha256 for v in doomed})

        self._release(self.db.write(work))
        return doomed

    # ---- sessions ------------------------------------------------------------------

    def source(self, ref: str) -> SessionSource:
        """What a session of `ref` needs: the bytes (checked), the project's default limits
        and the runtime's module.

        Raises like `read`, and InvalidModel for a version that is not `ready`.
        """
        found = self.resolve(ref)
        if isinstance(found, CatalogEntry):
            return SessionSource(
                found.reference, found.read(), Limits(), self._module(found.runtime)
            )
        if found.status != _READY:
            raise InvalidModel(
                f"{found.reference} is {found.status}"
                + (f": {found.reason}" if found.reason else "")
            )
        project = self.project(found.project)
        return SessionSource(
            found.reference,
            self._bytes(found),
            self._limits(project),
            self._module(project.runtime),
        )

    def session(
        self,
        ref: str,
        *,
        limits: Limits | None = None,
        isolation: str = "pooled",
        **kwargs: Any,
    ) -> InferenceSession:
        """An `InferenceSession` of the version (or catalog model) `ref` names, on its
        project's runtime, with the project's default limits unless `limits` is given.
        `isolation="per-run"` applies where the registry makes snapshots (the bundled
        runtime, setting `snapshots` on); elsewhere the session is pooled. Other keyword
        arguments go to `InferenceSession`.

        Raises:
            InvalidName, NotFound, RegistryCorrupt: as `read`.
            InvalidModel: the version is not `ready` (its reason says why).
            And what `InferenceSession` raises.
        """
        source = self.source(ref)
        if isolation == "per-run" and not (source.module is None and self.get_setting("snapshots")):
            isolation = "pooled"
        return InferenceSession(
            source.model,
            limits=limits or source.limits,
            module=source.module,
            isolation=isolation,
            **kwargs,
        )

    def _limits(self, project: Project) -> Limits:
        return Limits(**{k: v for k, v in project.limits.items() if k in LIMIT_FIELDS})

    # ---- tokens ----------------------------------------------------------------------

    def create_token(
        self, name: str, *, role: str = "run", project: str | None = None, user: str | None = None
    ) -> tuple[Token, str]:
        """A new bearer token for the service: (its record, its secret). Only the secret's
        sha256 is stored: the secret is shown once.

        Raises:
            InvalidName: a bad name; InvalidArgument: an unknown role.
            AlreadyExists: a token of that name exists. NotFound: no such project.
        """
        check_name("token", name)
        if role not in ROLES:
            raise InvalidArgument(f"unknown role {role!r}: roles are {', '.join(ROLES)}")
        project_id = self.project(project).id if project else None
        secret = "wh_" + secrets.token_urlsafe(32)
        token_id = str(uuid.uuid4())

        def work(conn: sa.Connection) -> None:
            if conn.execute(sa.select(tokens.c.id).where(tokens.c.name == name)).first():
                raise AlreadyExists(f"token {name!r} exists already")
            conn.execute(
                sa.insert(tokens).values(
                    id=token_id,
                    name=name,
                    sha256=sha256_of(secret.encode()),
                    role=role,
                    project_id=project_id,
                    created_at=_now(),
                    created_by=_user(user),
                )
            )

        self.db.write(work)
        return self._tokens(tokens.c.id == token_id)[0], secret

    def tokens(self) -> list[Token]:
        """Every token (never their secrets), by name."""
        return self._tokens()

    def _tokens(self, *where: Any) -> list[Token]:
        query = (
            sa.select(tokens, projects.c.name.label("project"))
            .outerjoin(projects, projects.c.id == tokens.c.project_id)
            .where(*where)
            .order_by(tokens.c.name)
        )
        with self.db.reading() as conn:
            return [
                Token(
                    id=row.id,
                    name=row.name,
                    role=row.role,
                    project=row.project,
                    created_at=row.created_at,
                    created_by=row.created_by,
                )
                for row in conn.execute(query)
            ]

    def revoke_token(self, name_or_id: str) -> Token:
        """Deletes a token: requests bearing it are refused from now on. Raises NotFound."""
        found = self._tokens(sa.or_(tokens.c.name == name_or_id, tokens.c.id == name_or_id))
        if not found:
            raise NotFound(f"no token {name_or_id!r}")
        self.db.write(
            lambda conn: conn.execute(sa.delete(tokens).where(tokens.c.id == found[0].id))
        )
        return found[0]

    def authenticate(self, secret: str) -> Token:
        """The token whose secret this is. Raises Unauthorized for any other string."""
        if not secret.startswith("wh_") or len(secret) > 200:
            raise Unauthorized("invalid token")
        found = self._tokens(tokens.c.sha256 == sha256_of(secret.encode()))
        if not found:
            raise Unauthorized("invalid or revoked token")
        return found[0]

    # ---- settings ------------------------------------------------------------------

    def settings(self) -> dict[str, Any]:
        """Every setting's value (stored, else default)."""
        with self.db.reading() as conn:
            stored = dict(conn.execute(sa.select(settings.c.key, settings.c.value)).all())
        return {
            name: s.parse(stored[name]) if name in stored else s.initial
            for name, s in SETTINGS.items()
        }

    def get_setting(self, name: str) -> Any:
        """Raises InvalidArgument for an unknown setting."""
        setting(name)
        return self.settings()[name]

    def set_setting(self, name: str, value: str | None) -> Any:
        """Sets a setting from its text (None: back to its default); returns the value.

        Raises InvalidArgument: unknown setting or bad value.
        """
        spec = setting(name)
        parsed = spec.initial if value is None else spec.parse(str(value))

        def work(conn: sa.Connection) -> None:
            conn.execute(sa.delete(settings).where(settings.c.key == name))
            if value is not None:
                conn.execute(sa.insert(settings).values(key=name, value=str(value)))

        self.db.write(work)
        return parsed

    # ---- housekeeping --------------------------------------------------------------

    def gc(self, grace: float = GC_GRACE) -> dict[str, int]:
        """Collects what interrupted writes left: blobs no row names, rows no version
        names, temporary files; each only once older than `grace` seconds (an upload
        in flight elsewhere writes its blob before its row). Returns counts."""
        done = {"blobs": 0, "rows": 0, "temporary": 0}
        with self.db.reading() as conn:
            rows = dict(conn.execute(sa.select(blobs.c.sha256, blobs.c.created_at)).all())
        cutoff = datetime.now(UTC).timestamp() - grace
        for name, age in list(self.blobs.list()):
            if age < grace:
                continue
            if name.startswith("tmp/"):
                self.blobs.delete_temporary(name.removeprefix("tmp/"))
                done["temporary"] += 1
            elif name not in rows:

                def work(conn: sa.Connection, sha: str = name) -> bool:
                    # Under the database's write lock: an upload naming it now would
                    # have inserted its row first.
                    if conn.execute(
                        sa.select(blobs.c.sha256).where(blobs.c.sha256 == sha).with_for_update()
                    ).first():
                        return False
                    self.blobs.delete(sha)
                    return True

                done["blobs"] += self.db.write(work)
        stale = [
            sha
            for sha, created in rows.items()
            if datetime.fromisoformat(created).timestamp() < cutoff
        ]
        with self.db.reading() as conn:
            unused = [sha for sha in stale if not _blob_used(conn, sha)]
        before = len(unused)
        self._release(unused)
        with self.db.reading() as conn:
            left = conn.execute(
                sa.select(sa.func.count()).where(blobs.c.sha256.in_(unused))
            ).scalar()
        done["rows"] = before - (left or 0)
        return done

    def check(self, *, deep: bool = False) -> list[str]:
        """Problems with the registry's integrity (empty when sound): versions or runtimes
        whose bytes are missing (or, with `deep`, damaged), blob rows of the wrong size,
        aliases across models."""
        problems = []
        with self.db.reading() as conn:
            # A catalog version's bytes are the catalog's (checked when read), not a blob.
            used = conn.execute(
                sa.select(versions.c.sha256, versions.c.size, blobs.c.size.label("blob"))
                .outerjoin(blobs, blobs.c.sha256 == versions.c.sha256)
                .where(versions.c.catalog.is_(None))
            ).all()
            modules = (
                conn.execute(
                    sa.select(runtime_table.c.module_sha256).where(~runtime_table.c.builtin)
                )
                .scalars()
                .all()
            )
            crossed = conn.execute(
                sa.select(sa.func.count())
                .select_from(aliases.join(versions, versions.c.id == aliases.c.version_id))
                .where(versions.c.model_id != aliases.c.model_id)
            ).scalar()
        for sha, size, blob_size in used:
            if blob_size is None:
                problems.append(f"a version names blob {sha[:12]}, which has no row")
            elif blob_size != size:
                problems.append(f"blob {sha[:12]}: row size {blob_size}, version size {size}")
        for sha in sorted({u.sha256 for u in used} | set(modules)):
            if deep:
                try:
                    self.blobs.get(sha)
                except RegistryCorrupt as e:
                    problems.append(str(e))
            elif not self.blobs.exists(sha):
                problems.append(f"blob {sha[:12]} is missing")
        if crossed:
            problems.append(f"{crossed} aliases point at another model's versions")
        return problems


def _catalog_name(entry_id: str | None) -> str | None:
    if entry_id is None:
        return None
    for entry in catalog.entries():
        if entry.id == entry_id:
            return entry.name
    return entry_id  # an entry this wasmhost no longer ships: reading it says so


def _blob_used(conn: sa.Connection, sha: str) -> bool:
    table = runtime_table
    return bool(
        conn.execute(sa.select(versions.c.id).where(versions.c.sha256 == sha).limit(1)).first()
        or conn.execute(
            sa.select(table.c.name).where(table.c.module_sha256 == sha).limit(1)
        ).first()
    )


def _project(row: sa.Row[Any]) -> Project:
    return Project(
        id=row.id,
        name=row.name,
        runtime=row.runtime,
        created_at=row.created_at,
        created_by=row.created_by,
        limits=json.loads(row.limits) if row.limits else {},
        models=row.models,
    )


def _limits_dict(limits: Limits | dict[str, Any] | None) -> dict[str, Any]:
    """The project-default fields of `limits`, validated by building a `Limits`."""
    if limits is None:
        return {}
    if isinstance(limits, Limits):
        return project_limits(limits)
    known = LIMIT_FIELDS + SERVICE_FIELDS
    unknown = set(limits) - set(known)
    if unknown:
        raise InvalidArgument(
            f"a project's limits are {', '.join(known)}; not {', '.join(sorted(unknown))}"
        )
    for name, low in (("concurrency", 1), ("queue", 0)):
        value = limits.get(name, low)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= 10_000:
            raise InvalidArgument(f"{name}: expected an integer from {low} to 10000, got {value!r}")
    given = {f: v for f, v in limits.items() if f in LIMIT_FIELDS}
    checked = project_limits(Limits(**given))  # raises InvalidArgument for a value out of range
    stored = {f: checked[f] for f in given}
    return stored | {f: limits[f] for f in SERVICE_FIELDS if f in limits}


def _read_capped(model: str | os.PathLike[str] | bytes, cap: int) -> bytes:
    """The upload's bytes, refused over `cap` before a large file is read."""
    hint = "(raise it with `wasmhost config set max_model_size SIZE`)"
    if isinstance(model, bytes):
        size, data = len(model), model
    else:
        path = Path(model)
        size = path.stat().st_size
        data = b""
    if size > cap:
        raise InvalidModel(
            f"the model is {format_size(size)}, over the registry's max_model_size of "
            f"{format_size(cap)} {hint}"
        )
    if not isinstance(model, bytes):
        with Path(model).open("rb") as f:
            data = f.read(cap + 1)
        if len(data) > cap:  # it grew since the stat
            raise InvalidModel(f"the model is over the registry's max_model_size {hint}")
    if not data:
        raise InvalidModel("the model is empty (0 bytes)")
    return data
