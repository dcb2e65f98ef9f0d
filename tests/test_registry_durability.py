"""The registry under what kills and races it: processes killed (SIGKILL) at random points
of uploads, deletes and collections, a few hundred times, with an integrity check after
each; several processes writing at once; a registry of an older schema opened after an
upgrade. On SQLite + a blob directory and on a real PostgreSQL + S3 API."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
import sqlalchemy as sa
from conftest import ROOT
from registry_support import add_model, assert_blobs_whole

import wasmhost.registry.registry as registry_module
from wasmhost import Registry, RegistryCorrupt
from wasmhost.registry import migrations, schema
from wasmhost.registry.blobs import LocalBlobs
from wasmhost.registry.database import Database
from wasmhost.registry.records import Tensor

#: The models the workers upload: few, so that digests are shared across versions.
MODELS = [add_model(float(k)) for k in range(6)]


def _signature(data: bytes, limits, module):
    # The sandbox's validation is not what these tests kill: the storage path is.
    return [Tensor("x", "tensor(float)", ["batch", 4])], [
        Tensor("y", "tensor(float)", ["batch", 4])
    ]


def _store(kind: str, request, tmp_path) -> tuple[str, str | None]:
    if kind == "sqlite":
        return str(tmp_path / "home"), None
    return request.getfixturevalue("postgres_url"), request.getfixturevalue("s3_url")


def _worker(where: str, blobs: str | None, seed: int) -> None:
    """Writes at random until killed (runs in a forked child)."""
    registry_module.validate = _signature
    registry = Registry(where, blobs=blobs)
    rng = random.Random(seed)
    while True:
        roll = rng.random()
        name = f"m{rng.randrange(3)}"
        try:
            if roll < 0.45:
                registry.upload("p", name, rng.choice(MODELS))
            elif roll < 0.6:
                versions = registry.versions(f"p/{name}")
                registry.delete(f"p/{name}@{rng.choice(versions).version}")
            elif roll < 0.7:
                registry.delete(f"p/{name}")
            elif roll < 0.85:
                versions = registry.versions(f"p/{name}")
                registry.set_alias(f"p/{name}@{rng.choice(versions).version}", "production")
            else:
                registry.gc(grace=0)  # one writer at a time here: no upload is in flight
        except wasmhost_errors():
            pass  # a model that does not exist (yet): the next roll


def wasmhost_errors():
    from wasmhost import NotFound

    return (NotFound, IndexError)


def integrity(registry: Registry, root) -> None:
    problems = registry.check(deep=True)
    assert problems == [], problems
    if isinstance(registry.blobs, LocalBlobs):
        assert_blobs_whole(root)
    for model in registry.models("p"):
        for version in registry.versions(f"p/{model.name}"):
            assert registry.read(version.reference) in MODELS
        for alias, number in model.aliases.items():
            assert registry.resolve(f"p/{model.name}@{alias}").version == number


@pytest.mark.parametrize(("kind", "kills"), [("sqlite", 300), ("postgres+s3", 60)])
def test_kill_9_at_random_points_leaves_the_registry_sound(kind, kills, request, tmp_path):
    where, blobs = _store(kind, request, tmp_path)
    registry = Registry(where, blobs=blobs)
    registry_module.validate = _signature  # restored by the test's end (see finally)
    registry.create_project("p")
    registry.close()
    rng = random.Random(1)
    try:
        for i in range(kills):
            pid = os.fork()
            if pid == 0:  # the child writes until killed
                try:
                    _worker(where, blobs, seed=i)
                finally:
                    os._exit(1)
            time.sleep(rng.uniform(0.0, 0.25))
            os.kill(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
            assert os.WIFSIGNALED(status), "the worker died by itself: it hit a bug"
            registry = Registry(where, blobs=blobs)
            integrity(registry, tmp_path / "home" / "blobs")
            registry.close()
        registry = Registry(where, blobs=blobs)
        registry.gc(grace=0)
        integrity(registry, tmp_path / "home" / "blobs")
        # After collection, the store holds exactly the blobs some version names.
        named = {v.sha256 for m in registry.models("p") for v in registry.versions(f"p/{m.name}")}
        assert {name for name, _ in registry.blobs.list()} == named
        written = sum(m.latest_version or 0 for m in registry.models("p"))
        assert written > 0, "no upload ever committed: the kills came too early to test much"
        registry.close()
    finally:
        import wasmhost.registry.validate as real

        registry_module.validate = real.validate


@pytest.mark.parametrize("kind", ["sqlite", "postgres+s3"])
def test_concurrent_writers_number_versions_without_gaps_or_duplicates(kind, request, tmp_path):
    where, blobs = _store(kind, request, tmp_path)
    with Registry(where, blobs=blobs) as registry:
        registry.create_project("p")
    writers, each = 4, 8
    pids = []
    for w in range(writers):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                registry_module.validate = _signature
                mine = Registry(where, blobs=blobs)
                for k in range(each):
                    mine.upload("p", "shared", MODELS[(w + k) % len(MODELS)])
                    mine.upload("p", f"own{w}", MODELS[k % len(MODELS)])
                    mine.set_alias(f"p/own{w}", "latest-good")
                code = 0
            finally:
                os._exit(code)
        pids.append(pid)
    for pid in pids:
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    with Registry(where, blobs=blobs) as registry:
        shared = registry.versions("p/shared")
        assert [v.version for v in shared] == list(range(1, writers * each + 1))
        for w in range(writers):
            assert [v.version for v in registry.versions(f"p/own{w}")] == list(range(1, each + 1))
            assert registry.resolve(f"p/own{w}@latest-good").version == each
        assert registry.check(deep=True) == []


def test_concurrent_cli_uploads_validate_in_their_own_sandboxes(tmp_path):
    """Real processes, real validation: three `wasmhost model upload`s at a time."""
    env = {**os.environ, "WASMHOST_HOME": str(tmp_path / "home")}
    env.pop("WASMHOST_REGISTRY", None)
    files = []
    for k in range(6):
        path = tmp_path / f"m{k}.onnx"
        path.write_bytes(MODELS[k])
        files.append(path)
    cli = [sys.executable, "-m", "wasmhost.cli"]
    subprocess.run([*cli, "project", "create", "p"], env=env, check=True, cwd=ROOT)
    procs = [
        subprocess.Popen(
            [*cli, "model", "upload", "p", "m", str(path), "--json"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for path in files
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0] * len(files), [e for _, e in outputs]
    uploaded = {json.loads(out)["version"]: json.loads(out)["sha256"] for out, _ in outputs}
    assert sorted(uploaded) == list(range(1, 7))
    assert set(uploaded.values()) == {hashlib.sha256(m).hexdigest() for m in MODELS}
    with Registry(tmp_path / "home") as registry:
        assert registry.check(deep=True) == []


# --- migrations ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["sqlite", "postgres+s3"])
def test_a_registry_of_schema_v1_opens_after_an_upgrade(kind, request, tmp_path):
    where, blobs = _store(kind, request, tmp_path)
    url = f"sqlite:///{tmp_path / 'home' / 'registry.db'}" if kind == "sqlite" else where
    (tmp_path / "home").mkdir()
    old = Database(url, migrate=False)
    old.write(lambda conn: migrations.upgrade(conn, target=1))
    data = MODELS[0]
    sha = hashlib.sha256(data).hexdigest()
    signature = json.dumps({"inputs": [], "outputs": []})
    now = "2026-01-01T00:00:00.000+00:00"

    def fill(conn: sa.Connection) -> None:
        # Rows as a v1 wasmhost wrote them (its projects had no limits column).
        conn.execute(
            sa.text(
                "INSERT INTO runtimes VALUES ('onnx', 'tract 0.23.9, ABI v1', :sha, true, 'x', :t)"
            ),
            {"sha": "0" * 64, "t": now},
        )
        conn.execute(
            sa.text(
                "INSERT INTO projects (id, name, runtime, created_at, created_by) "
                "VALUES ('11111111-1111-4111-8111-111111111111', 'old', 'onnx', :t, 'me')"
            ),
            {"t": now},
        )
        conn.execute(
            sa.text(
                "INSERT INTO models VALUES ('22222222-2222-4222-8222-222222222222', "
                "'11111111-1111-4111-8111-111111111111', 'm', 'from v1', :t, 'me')"
            ),
            {"t": now},
        )
        conn.execute(
            sa.text("INSERT INTO blobs VALUES (:sha, :n, :t)"),
            {"sha": sha, "n": len(data), "t": now},
        )
        conn.execute(
            sa.text(
                "INSERT INTO versions VALUES ('33333333-3333-4333-8333-333333333333', "
                "'22222222-2222-4222-8222-222222222222', 1, :sha, :n, :sig, 'ready', NULL, "
                ":t, 'me')"
            ),
            {"sha": sha, "n": len(data), "sig": signature, "t": now},
        )

    old.write(fill)
    assert old.write(migrations.current_version) == 1
    old.dispose()
    store = LocalBlobs(tmp_path / "home" / "blobs") if blobs is None else None
    if store is None:
        from wasmhost.registry.blobs import open_blobs

        store = open_blobs(blobs)
    store.put(sha, data)

    with Registry(where, blobs=blobs) as registry:
        assert registry.db.write(migrations.current_version) == migrations.LATEST
        (project,) = registry.projects()
        assert (project.name, project.limits, project.models) == ("old", {}, 1)
        assert registry.model("old/m").description == "from v1"
        assert registry.read("old/m@1") == data
        assert registry.runtimes()[0].module_sha256 != "0" * 64  # refreshed on open
        registry.set_project_limits("old", {"memory": "64MiB"})  # a v2 column
        registry.set_setting("max_model_size", "20MiB")  # a v2 table
        assert registry.check(deep=True) == []


def test_a_registry_of_a_newer_schema_is_refused(tmp_path):
    with Registry(tmp_path / "home") as registry:
        registry.db.write(
            lambda conn: conn.execute(
                sa.update(schema.meta)
                .where(schema.meta.c.key == "schema_version")
                .values(value="99")
            )
        )
    with pytest.raises(RegistryCorrupt, match="newer"):
        Registry(tmp_path / "home")
