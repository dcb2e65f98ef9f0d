"""The test servers themselves (tests/servers.py, the fixtures in conftest.py): a real
PostgreSQL and moto's S3 API, on 127.0.0.1, a fresh database and bucket for each test."""

from __future__ import annotations

import os
import uuid
from urllib.parse import urlsplit

import boto3
import pytest
from servers import PG_USER, postgres_bin_dir, start_postgres, unless_unavailable
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url


@pytest.fixture
def engine_for():
    engines = []

    def make(url: str):
        engines.append(create_engine(url))
        return engines[-1]

    yield make
    for engine in engines:
        engine.dispose()


def test_postgres_answers_on_loopback(postgres_url, engine_for):
    url = make_url(postgres_url)
    assert url.drivername == "postgresql+psycopg"
    assert (url.host, url.username) == ("127.0.0.1", PG_USER)
    with engine_for(postgres_url).connect() as conn:
        assert conn.execute(text("select 1")).scalar() == 1
        assert conn.execute(text("select current_database()")).scalar() == url.database
        version = conn.execute(text("show server_version_num")).scalar()
        assert int(version) >= 150000
        assert conn.execute(text("show listen_addresses")).scalar() == "127.0.0.1"
        assert conn.execute(text("show fsync")).scalar() == "off"


def test_postgres_tables_and_transactions(postgres_url, engine_for):
    engine = engine_for(postgres_url)
    with engine.begin() as conn:
        conn.execute(text("create table models (name text primary key, size bigint not null)"))
        conn.execute(text("insert into models values ('a', 1), ('b', 2)"))
    with pytest.raises(Exception, match="duplicate key"), engine.begin() as conn:
        conn.execute(text("insert into models values ('c', 3)"))
        conn.execute(text("insert into models values ('a', 9)"))  # rolls back 'c' too
    with engine.connect() as conn:
        rows = conn.execute(text("select name, size from models order by name")).all()
    assert [tuple(r) for r in rows] == [("a", 1), ("b", 2)]


def test_postgres_databases_are_isolated(postgres_server, postgres_url, engine_for):
    other_url = postgres_server.new_database(f"other_{uuid.uuid4().hex}")
    assert make_url(other_url).database != make_url(postgres_url).database
    with engine_for(postgres_url).begin() as conn:
        conn.execute(text("create table only_here (x int)"))
    assert inspect(engine_for(postgres_url)).get_table_names() == ["only_here"]
    assert inspect(engine_for(other_url)).get_table_names() == []


def test_postgres_url_is_fresh_per_test(postgres_url, engine_for):
    # The other tests create tables in theirs, whatever the order; this database has none.
    assert inspect(engine_for(postgres_url)).get_table_names() == []


def test_postgres_start_and_stop(tmp_path):
    """A second cluster from the same helper: its own port, its files gone after stop()."""
    server = unless_unavailable(start_postgres, tmp_path)
    try:
        engine = create_engine(server.url)
        with engine.connect() as conn:
            assert conn.execute(text("select current_database()")).scalar() == "wasmhost"
        engine.dispose()
        assert server.startup_seconds < 30
    finally:
        server.stop()
    assert not server.root.exists()
    server.stop()  # twice is harmless


def test_postgres_bin_dir_is_the_newest():
    bin_dir = unless_unavailable(postgres_bin_dir)
    assert (bin_dir / "initdb").is_file() and (bin_dir / "pg_ctl").is_file()


def test_s3_put_get_list(s3_url, moto_server):
    parsed = urlsplit(s3_url)
    assert parsed.scheme == "s3"
    bucket, prefix = parsed.netloc, parsed.path.lstrip("/")
    # boto3 reaches moto through the environment the fixture set, as registry code would.
    assert os.environ["AWS_ENDPOINT_URL"] == moto_server.endpoint
    assert urlsplit(moto_server.endpoint).hostname == "127.0.0.1"
    s3 = boto3.client("s3")
    assert s3.meta.endpoint_url == moto_server.endpoint
    key = f"{prefix}/models/m.onnx"
    s3.put_object(Bucket=bucket, Key=key, Body=b"\x08\x07onnx bytes")
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"\x08\x07onnx bytes"
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/")
    assert [o["Key"] for o in listed["Contents"]] == [key]


def test_s3_bucket_is_fresh_per_test(s3_url):
    bucket = urlsplit(s3_url).netloc
    s3 = boto3.client("s3")
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    # The other tests' buckets exist on the same server, but this one is empty and new.
    assert bucket in [b["Name"] for b in s3.list_buckets()["Buckets"]]
