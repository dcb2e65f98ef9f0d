"""The registry's database: SQLite (embedded, WAL) or PostgreSQL, through SQLAlchemy Core.

Writers serialise: on SQLite every write transaction starts with `BEGIN IMMEDIATE` (it
takes the write lock at once, so two processes never both read-then-write); on PostgreSQL
the rows a write depends on are locked with `SELECT ... FOR UPDATE`, and a transaction that
lost a race (a unique key taken meanwhile) is retried.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy import event

from ..errors import InvalidArgument
from . import migrations

T = TypeVar("T")
#: How long a writer waits for another process's write lock (SQLite), in seconds.
BUSY_TIMEOUT = 60
_RETRIES = 8


def engine_url(url: str) -> str:
    """`postgresql://` means psycopg 3 (SQLAlchemy would pick psycopg2)."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


class Database:
    """A connection pool to the registry's database, its schema brought up to date.

    Raises:
        InvalidArgument: the URL names no database SQLAlchemy can open (or its driver
            is missing).
        RegistryCorrupt: the schema is newer than this wasmhost's.
    """

    def __init__(self, url: str, *, migrate: bool = True) -> None:
        self.url = engine_url(url)
        try:
            self.engine = sa.create_engine(self.url, pool_pre_ping=True)
        except (sa.exc.ArgumentError, ImportError) as e:
            hint = " (pip install 'wasmhost[postgres]')" if "postgres" in self.url else ""
            raise InvalidArgument(f"cannot open registry database {url!r}: {e}{hint}") from None
        self.sqlite = self.engine.dialect.name == "sqlite"
        if self.sqlite:
            event.listen(self.engine, "connect", _sqlite_connect)
            event.listen(self.engine, "begin", _sqlite_begin)
        if migrate:
            self.write(self._migrate)

    def _migrate(self, conn: sa.Connection) -> None:
        if not self.sqlite:
            # Two processes opening one fresh database must not both create its tables.
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(7150616)"))
        migrations.upgrade(conn)

    @contextlib.contextmanager
    def reading(self) -> Iterator[sa.Connection]:
        """A read transaction (a consistent snapshot on both databases)."""
        with self.engine.connect() as conn, conn.begin():
            yield conn

    def write(self, work: Callable[[sa.Connection], T]) -> T:
        """Runs `work` in a write transaction, retried if it lost a race to another writer.

        `work` must be safe to repeat: it is rerun from the start after a rollback.
        """
        for attempt in range(_RETRIES):
            try:
                with self.engine.connect() as conn:
                    conn = conn.execution_options(wasmhost_write=True)
                    with conn.begin():
                        return work(conn)
            except sa.exc.IntegrityError:
                if attempt == _RETRIES - 1:
                    raise
            except sa.exc.OperationalError as e:
                # PostgreSQL's serialization failures and deadlocks, SQLite's "locked".
                if attempt == _RETRIES - 1 or not _transient(e):
                    raise
            time.sleep(0.01 * (attempt + 1))
        raise AssertionError("unreachable")

    def dispose(self) -> None:
        self.engine.dispose()


def _transient(error: sa.exc.OperationalError) -> bool:
    text = str(error.orig).lower()
    return any(s in text for s in ("deadlock", "serialize", "locked", "busy"))


def _sqlite_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    # pysqlite's own transaction handling is off: the begin event below decides.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT * 1000}")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA synchronous = FULL")
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.close()


def _sqlite_begin(conn: sa.Connection) -> None:
    write = conn.get_execution_options().get("wasmhost_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
