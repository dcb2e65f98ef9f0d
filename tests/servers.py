"""Real servers for the tests, on 127.0.0.1 only: PostgreSQL (Debian's binaries, a throwaway
cluster) and an S3 API (moto's server, in a thread of the test process).

Both are started by the session fixtures in conftest.py. When one genuinely cannot start here
(no PostgreSQL binaries, root without a `postgres` user to run them as, moto not installed),
the start function raises ServerUnavailable(reason) and the fixtures skip with that reason --
unless WASMHOST_TEST_SERVERS=required (set by .ci/run), where they fail instead.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pytest

START_TIMEOUT = 30.0  # seconds until a server that has not answered counts as failed

# The cluster's superuser (initdb -U): it authenticates by trust, over 127.0.0.1 only.
PG_USER = "wasmhost"
PG_DATABASE = "wasmhost"


class ServerUnavailable(Exception):
    """A server cannot be started on this machine; the message says why."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


T = TypeVar("T")


def unless_unavailable(start: Callable[..., T], *args, **kwargs) -> T:
    """start(*args, **kwargs); if it raises ServerUnavailable, the test is skipped with the
    reason -- or fails, under WASMHOST_TEST_SERVERS=required (CI: there they must start)."""
    try:
        return start(*args, **kwargs)
    except ServerUnavailable as e:
        reason = e.reason
    if os.environ.get("WASMHOST_TEST_SERVERS") == "required":
        pytest.fail(f"WASMHOST_TEST_SERVERS=required, but: {reason}", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (just now: the caller retries on a clash)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- PostgreSQL ---------------------------------------------------------------------------------


def postgres_bin_dir() -> Path:
    """The directory with initdb, pg_ctl and postgres: Debian keeps them out of PATH, under
    /usr/lib/postgresql/<major>/bin (the newest major wins); elsewhere they are on PATH."""
    found = [d for d in Path("/usr/lib/postgresql").glob("*/bin") if (d / "initdb").is_file()]
    found.sort(key=lambda d: int(d.parent.name) if d.parent.name.isdigit() else -1)
    if found:
        return found[-1]
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl", path=str(Path(initdb).parent)):
        return Path(initdb).parent
    raise ServerUnavailable(
        "PostgreSQL server binaries not found (no /usr/lib/postgresql/*/bin/initdb, no initdb "
        "on PATH); `apt-get install postgresql` provides them"
    )


def _run_as_prefix() -> tuple[list[str], pwd.struct_passwd | None]:
    """The command prefix that runs the server's programs, and the account they run as.

    initdb and postgres refuse to run as root, so as root they run as the `postgres` system
    user that Debian's package creates (runuser, else setpriv); otherwise as ourselves."""
    if os.geteuid() != 0:
        return [], None
    try:
        account = pwd.getpwnam("postgres")
    except KeyError:
        raise ServerUnavailable(
            "running as root, and there is no `postgres` user to run PostgreSQL as "
            "(initdb refuses root)"
        ) from None
    if runuser := shutil.which("runuser"):
        return [runuser, "-u", "postgres", "--"], account
    if setpriv := shutil.which("setpriv"):
        return [
            setpriv,
            f"--reuid={account.pw_uid}",
            f"--regid={account.pw_gid}",
            "--init-groups",
            "--",
        ], account
    raise ServerUnavailable(
        "running as root, and neither runuser nor setpriv is there to run PostgreSQL as the "
        "`postgres` user (initdb refuses root)"
    )


def pg_url(port: int, database: str) -> str:
    """The SQLAlchemy URL of a database on the test server."""
    return f"postgresql+psycopg://{PG_USER}@127.0.0.1:{port}/{database}"


@dataclass
class PostgresServer:
    """A throwaway PostgreSQL cluster listening on 127.0.0.1:port; `url` is its database
    `wasmhost`. Everything (data, socket, log) lives in `root`, removed by stop()."""

    root: Path
    bin_dir: Path
    port: int
    prefix: list[str] = field(repr=False)
    startup_seconds: float = 0.0
    _stopped: bool = field(default=False, repr=False)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        return self.root / "server.log"

    @property
    def url(self) -> str:
        return pg_url(self.port, PG_DATABASE)

    def _pg(self, program: str, *args: str, timeout: float = START_TIMEOUT + 10):
        return subprocess.run(
            [*self.prefix, str(self.bin_dir / program), *args],
            cwd=self.root,  # the postgres user may not be able to enter ours
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def log(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except OSError as e:
            return f"(no server log: {e})"

    def connect(self, database: str = "postgres", **kwargs):
        """A psycopg connection to `database` on this server, as its superuser."""
        import psycopg

        return psycopg.connect(
            host="127.0.0.1", port=self.port, user=PG_USER, dbname=database, **kwargs
        )

    def new_database(self, name: str) -> str:
        """Creates the (empty) database `name`; returns its SQLAlchemy URL."""
        from psycopg import sql

        with self.connect(autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return pg_url(self.port, name)

    def stop(self) -> None:
        """Stops the server (fast shutdown: open sessions are cut) and removes its files."""
        if self._stopped:
            return
        self._stopped = True
        try:
            if (self.data_dir / "postmaster.pid").exists():
                proc = self._pg("pg_ctl", "stop", "-D", str(self.data_dir), "-m", "fast", "-w")
                if proc.returncode != 0:
                    self._pg("pg_ctl", "stop", "-D", str(self.data_dir), "-m", "immediate", "-w")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def start_postgres(tmp_dir: Path | None = None) -> PostgresServer:
    """initdb + pg_ctl start of a fresh cluster, ready for connections, with database
    `wasmhost` created. `tmp_dir` is where its directory goes (default: the system's temporary
    directory). As root, the postgres user must be able to reach it: pytest's tmp_path dirs
    are mode 0700, so then it goes to the system's temporary directory (else /tmp) instead."""
    bin_dir = postgres_bin_dir()
    prefix, account = _run_as_prefix()
    candidates = [Path(p) for p in (tmp_dir, tempfile.gettempdir(), "/tmp") if p is not None]
    parent = next(
        (p for p in candidates if account is None or _world_traversable(p)), candidates[-1]
    )
    root = Path(tempfile.mkdtemp(prefix="wasmhost-pg-", dir=parent))
    os.chmod(root, 0o755)
    if account is not None:
        os.chown(root, account.pw_uid, account.pw_gid)

    started = time.monotonic()
    last_error = ""
    try:
        for _ in range(3):  # a fresh port each try: another process may take ours meanwhile
            server = PostgresServer(root=root, bin_dir=bin_dir, port=free_port(), prefix=prefix)
            if not (server.data_dir / "PG_VERSION").exists():
                _initdb(server)
            ok, last_error = _start(server)
            if ok:
                server.startup_seconds = time.monotonic() - started
                atexit.register(server.stop)  # if the session fixture's teardown never runs
                server.new_database(PG_DATABASE)
                return server
            if "already in use" not in last_error:
                break
        raise RuntimeError(f"PostgreSQL did not start:\n{last_error}")
    except BaseException:
        with contextlib.suppress(Exception):
            if (root / "data" / "postmaster.pid").exists():
                pg_ctl = [*prefix, str(bin_dir / "pg_ctl"), "stop", "-D", str(root / "data")]
                pg_ctl += ["-m", "immediate", "-w"]
                subprocess.run(pg_ctl, cwd=root, capture_output=True, timeout=30)
        shutil.rmtree(root, ignore_errors=True)
        raise


def _world_traversable(path: Path) -> bool:
    path = path.resolve()
    return all(os.stat(p).st_mode & 0o001 for p in [path, *path.parents])


def _initdb(server: PostgresServer) -> None:
    proc = server._pg(
        "initdb",
        "-D",
        str(server.data_dir),
        "-A",
        "trust",
        "-U",
        PG_USER,
        "--no-sync",
        # C collation and UTF-8, whatever the machine's locale (which may not be installed).
        "--no-locale",
        "-E",
        "UTF8",
        timeout=120,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"initdb failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")


def _start(server: PostgresServer) -> tuple[bool, str]:
    """pg_ctl start, then waits (bounded) until a query goes through; (ok, log on failure)."""
    options = [
        ("listen_addresses", "127.0.0.1"),
        ("port", str(server.port)),
        ("unix_socket_directories", str(server.root)),
        # A throwaway cluster: durability buys nothing and costs time.
        ("fsync", "off"),
        ("synchronous_commit", "off"),
        ("full_page_writes", "off"),
    ]
    for name, value in options:
        # Values are paths from mkdtemp and numbers: nothing pg_ctl's shell would split.
        if not re.fullmatch(r"[\w./-]+", value):
            raise ValueError(f"unsafe server option {name}={value!r}")
    opts = " ".join(f"-c {name}={value}" for name, value in options)
    deadline = time.monotonic() + START_TIMEOUT
    proc = server._pg(
        "pg_ctl",
        "start",
        "-D",
        str(server.data_dir),
        "-l",
        str(server.log_file),
        "-o",
        opts,
        "-w",
        "-t",
        str(int(START_TIMEOUT)),
    )
    if proc.returncode != 0:
        return (
            False,
            f"pg_ctl start: {proc.stdout}{proc.stderr}\n--- server log ---\n{server.log()}",
        )
    error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with server.connect(connect_timeout=5) as conn:
                conn.execute("select 1")
            return True, ""
        except Exception as e:  # psycopg.OperationalError while it comes up
            error = e
            time.sleep(0.1)
    return False, f"no connection within {START_TIMEOUT:.0f} s: {error}\n{server.log()}"


# -- S3 (moto) ----------------------------------------------------------------------------------

S3_CREDENTIALS = {
    "aws_access_key_id": "testing",
    "aws_secret_access_key": "testing",
    "region_name": "us-east-1",
}


@dataclass
class MotoServer:
    """moto's S3 (and other AWS) API, served from a thread of this process."""

    server: object = field(repr=False)
    endpoint: str
    startup_seconds: float = 0.0

    def stop(self) -> None:
        self.server.stop()


def start_moto() -> MotoServer:
    """moto's ThreadedMotoServer on 127.0.0.1 and a port the OS picks."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as e:
        raise ServerUnavailable(f"moto's server is not installed (moto[server]): {e}") from None
    started = time.monotonic()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    moto = MotoServer(server=server, endpoint=f"http://{host}:{port}")
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            with socket.create_connection((host, port), timeout=1):
                break
        except OSError as e:
            if time.monotonic() > deadline:
                moto.stop()
                raise RuntimeError(f"moto's server on {moto.endpoint}: no connection") from e
            time.sleep(0.05)
    moto.startup_seconds = time.monotonic() - started
    return moto


def s3_client(endpoint: str):
    """A boto3 S3 client for the moto server at `endpoint`, with its dummy credentials."""
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, **S3_CREDENTIALS)


def make_bucket(endpoint: str, name: str) -> str:
    """Creates bucket `name` on the moto server at `endpoint`; returns the name."""
    s3_client(endpoint).create_bucket(Bucket=name)
    return name
