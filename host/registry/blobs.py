"""Content-addressed blob stores: model bytes kept under their sha256.

`LocalBlobs` (a directory) is the embedded default; `S3Blobs` (any S3 API, through boto3)
lets several nodes share one registry. A blob is written whole or not at all: a local one
through a temporary file, fsync and rename; an S3 object by one PUT. Reads verify the
sha256, so a damaged blob is reported, never run.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

from ..errors import InvalidArgument, RegistryCorrupt

_HEX = frozenset("0123456789abcdef")


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _check_digest(sha256: str) -> str:
    if len(sha256) != 64 or not set(sha256) <= _HEX:
        raise InvalidArgument(f"not a sha256 digest: {sha256!r}")
    return sha256


class BlobStore(Protocol):
    """Where a registry keeps the bytes of its model versions."""

    url: str

    def put(self, sha256: str, data: bytes) -> None:
        """Stores `data` (whose digest is `sha256`), whole or not at all."""

    def get(self, sha256: str) -> bytes:
        """The blob's bytes. Raises RegistryCorrupt if absent or damaged."""

    def exists(self, sha256: str) -> bool: ...

    def delete(self, sha256: str) -> None:
        """Removes the blob; absent is fine."""

    def list(self) -> Iterator[tuple[str, float]]:
        """Every blob (and leftover temporary file) as (name, age in seconds)."""


def _verified(sha256: str, data: bytes, where: str) -> bytes:
    if sha256_of(data) != sha256:
        raise RegistryCorrupt(f"blob {sha256[:12]} at {where} is damaged: its sha256 differs")
    return data


class LocalBlobs:
    """Blobs in a directory: `sha256/ab/<digest>`; temporary files in `tmp/`."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.url = str(self.root)
        self._tmp = self.root / "tmp"

    def _path(self, sha256: str) -> Path:
        return self.root / "sha256" / sha256[:2] / _check_digest(sha256)

    def put(self, sha256: str, data: bytes) -> None:
        target = self._path(sha256)
        target.parent.mkdir(parents=True, exist_ok=True)
        self._tmp.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self._tmp, prefix=f"{sha256[:12]}-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _fsync_dir(target.parent)

    def get(self, sha256: str) -> bytes:
        path = self._path(sha256)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise RegistryCorrupt(f"blob {sha256[:12]} is missing from {self.root}") from None
        return _verified(sha256, data, str(path))

    def exists(self, sha256: str) -> bool:
        return self._path(sha256).is_file()

    def delete(self, sha256: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(sha256).unlink()

    def list(self) -> Iterator[tuple[str, float]]:
        now = time.time()
        for directory in (self.root / "sha256", self._tmp):
            if not directory.is_dir():
                continue
            for path in directory.rglob("*"):
                with contextlib.suppress(FileNotFoundError):
                    if path.is_file():
                        name = path.name if directory != self._tmp else f"tmp/{path.name}"
                        yield name, now - path.stat().st_mtime

    def delete_temporary(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self._tmp / name).unlink()


def _fsync_dir(path: Path) -> None:
    # The rename is durable only once its directory is.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class S3Blobs:
    """Blobs in an S3 bucket (`s3://bucket/prefix`), keyed `prefix/sha256/<digest>`.

    boto3 finds its endpoint and credentials the usual way (`AWS_ENDPOINT_URL`,
    `AWS_ACCESS_KEY_ID`, ..., or the AWS config files).
    """

    def __init__(self, url: str) -> None:
        try:
            import boto3
            import botocore.exceptions
        except ImportError:
            raise InvalidArgument("s3:// blobs need boto3: pip install 'wasmhost[s3]'") from None
        parsed = urlparse(url)
        if not parsed.netloc:
            raise InvalidArgument(f"an S3 blob store URL is s3://BUCKET[/PREFIX], got {url!r}")
        self.url = url
        self.bucket = parsed.netloc
        self.prefix = parsed.path.strip("/")
        self._client = boto3.client("s3")
        self._errors = botocore.exceptions.ClientError

    def _key(self, sha256: str) -> str:
        key = f"sha256/{_check_digest(sha256)}"
        return f"{self.prefix}/{key}" if self.prefix else key

    def put(self, sha256: str, data: bytes) -> None:
        self._client.put_object(Bucket=self.bucket, Key=self._key(sha256), Body=data)

    def get(self, sha256: str) -> bytes:
        try:
            body = self._client.get_object(Bucket=self.bucket, Key=self._key(sha256))["Body"]
        except self._errors as e:
            if e.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise RegistryCorrupt(f"blob {sha256[:12]} is missing from {self.url}") from None
            raise
        return _verified(sha256, body.read(), self.url)

    def exists(self, sha256: str) -> bool:
        try:
            self._client.head_object(Bucket=self.bucket, Key=self._key(sha256))
        except self._errors as e:
            if e.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return False
            raise
        return True

    def delete(self, sha256: str) -> None:
        self._client.delete_object(Bucket=self.bucket, Key=self._key(sha256))

    def list(self) -> Iterator[tuple[str, float]]:
        now = time.time()
        start = f"{self.prefix}/sha256/" if self.prefix else "sha256/"
        pages = self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=start
        )
        for page in pages:
            for item in page.get("Contents", []):
                yield item["Key"].rsplit("/", 1)[-1], now - item["LastModified"].timestamp()

    def delete_temporary(self, name: str) -> None:  # S3 PUTs leave no temporary objects
        pass


def open_blobs(url: str | os.PathLike[str]) -> LocalBlobs | S3Blobs:
    """The blob store at `url`: `s3://bucket/prefix`, `file:///dir` or a directory path.

    Raises:
        InvalidArgument: an unknown scheme, or s3:// without boto3.
    """
    text = os.fspath(url)
    scheme = urlparse(text).scheme
    if scheme == "s3":
        return S3Blobs(text)
    if scheme == "file":
        return LocalBlobs(urlparse(text).path)
    if scheme and len(scheme) > 1:  # one letter is a Windows drive
        raise InvalidArgument(f"unknown blob store {text!r}: use a directory or s3://BUCKET/PREFIX")
    return LocalBlobs(text)
