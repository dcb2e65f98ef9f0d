"""A wasmhost service's registry, remotely: `Client` offers `Registry`'s operations over the
management API, and runs models over the Open Inference Protocol (v2, binary tensor data).

    with wasmhost.Client("https://models.example.com", token="wh_...") as client:
        client.upload("vision", "squeezenet", "squeezenet.onnx")
        outputs = client.infer("vision/squeezenet", {"data": image})

Its methods have `Registry`'s names, arguments and return types (the same records), and
raise the same classes: the server's `{"error", "type"}` becomes that `wasmhost.errors`
class again. What only the server's host can do (register runtimes, check or collect the
registry, make sessions in this process) raises InvalidArgument saying so.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar
from urllib.parse import quote

import numpy as np

from . import errors
from .errors import (
    InvalidArgument,
    InvalidInput,
    InvalidModel,
    InvalidName,
    NotFound,
    RegistryCorrupt,
    WasmHostError,
)
from .registry import catalog
from .registry.catalog import CatalogEntry
from .registry.names import CATALOG, as_uuid, check_alias, check_name, parse_reference
from .registry.records import (
    Model,
    ModelVersion,
    Project,
    Runtime,
    Tensor,
    Token,
    project_limits,
)
from .registry.settings import setting
from .runtime.limits import Limits
from .serve.tensors import CONTENT_JSON, DATATYPES, DTYPE_NAMES, pack_strings, unpack_strings

try:
    import httpx
except ImportError:  # pragma: no cover - httpx comes with the dev and serve set-ups
    raise ImportError("wasmhost.Client needs httpx: pip install httpx") from None

_R = TypeVar("_R")
#: Error types the server sends that are not `wasmhost.errors` classes.
_SERVER_TYPES: dict[str, type[WasmHostError]] = {
    "RequestTooLarge": InvalidArgument,
    "UploadTooLarge": InvalidModel,
}
_LOCAL_ONLY = "the server's host (without --server): the service's API has no route for it"


class ServerUnavailable(WasmHostError, ConnectionError):
    """The server could not be reached, or did not answer in time."""

    http_status = 503


def error_class(name: str) -> type[WasmHostError]:
    """The `wasmhost.errors` class a response's `type` names (WasmHostError if none)."""
    found = getattr(errors, name, None) if name.isidentifier() else None
    if isinstance(found, type) and issubclass(found, WasmHostError):
        return found
    return _SERVER_TYPES.get(name, WasmHostError)


def _one_line(text: object) -> str:
    return " ".join(str(text).split())[:300]


class Client:
    """The registry of a wasmhost service (`wasmhost serve`), over HTTP.

    Args:
        url: the service's base URL, e.g. `http://127.0.0.1:8000`.
        token: a bearer token (`wasmhost token create`); its role and project bound what
            the client may do (Forbidden), and what it sees (NotFound).
        timeout: seconds to connect and to wait for each answer (uploads, which the
            server validates in a sandbox first, wait at least 300 s).

    One connection pool serves every call: `close()` it, or use the client as a context
    manager. Lists fetch every page. Records are those of `Registry` (`Project`, `Model`,
    `ModelVersion`, `Runtime`, `Token`, `CatalogEntry`): equal to what a `Registry` on
    the server's store returns. The server records the token's name as `created_by`
    (the `user` arguments are ignored).

    Catalog entries are `CatalogEntry`s built from the server's JSON; their `file` and
    `reference_file` come from this wasmhost's own copy of the catalog when it holds the
    same entry (same id and sha256), else they are empty and `read()`/`reference_case()`
    fail (the service has no route that sends a catalog model's bytes).

    Raises (every method): the `wasmhost.errors` class the server answered with;
    ServerUnavailable (a ConnectionError) when the server cannot be reached or times out.
    """

    _per_page = 1000

    def __init__(self, url: str, token: str | None = None, *, timeout: float = 60.0) -> None:
        text = str(url).strip().rstrip("/")
        if not text.startswith(("http://", "https://")) or len(text) <= len("https://"):
            raise InvalidArgument(f"server URL {url!r}: expected http://HOST[:PORT] or https://")
        self.url = text
        self.timeout = timeout
        from . import __version__

        headers = {"user-agent": f"wasmhost-client/{__version__}"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        self._http = httpx.Client(base_url=text, headers=headers, timeout=timeout)

    def __repr__(self) -> str:
        return f"Client({self.url!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- HTTP ----------------------------------------------------------------------

    def _unreachable(self, e: Exception) -> ServerUnavailable:
        if isinstance(e, httpx.TimeoutException):
            return ServerUnavailable(
                f"{self.url} did not answer within {self.timeout:g} s ({type(e).__name__})"
            )
        return ServerUnavailable(f"cannot reach {self.url}: {_one_line(e) or type(e).__name__}")

    def _error(
        self, response: httpx.Response, by_status: Mapping[int, type[WasmHostError]] | None = None
    ) -> WasmHostError:
        status = response.status_code
        try:
            doc = response.json()
            message, name = str(doc["error"]), str(doc.get("type", ""))
        except (ValueError, KeyError, TypeError):
            text = _one_line(response.text)[:200] or response.reason_phrase
            return WasmHostError(f"{self.url}: HTTP {status}: {text}")
        if by_status and status in by_status:
            return by_status[status](message)
        cls = error_class(name)
        if cls is WasmHostError:  # not one of ours: a route or server failure
            message = f"{self.url}: HTTP {status}: {message}"
        return cls(message)

    def _request(
        self,
        method: str,
        path: str,
        *,
        by_status: Mapping[int, type[WasmHostError]] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.RequestError as e:
            raise self._unreachable(e) from None
        if response.is_error:
            raise self._error(response, by_status)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._request(method, path, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise WasmHostError(f"{self.url}{path}: the answer is not JSON") from None

    def _pages(self, path: str) -> list[Any]:
        """Every item of a paged list."""
        items: list[Any] = []
        number = 1
        while True:
            doc = self._json("GET", path, params={"page": number, "per_page": self._per_page})
            items.extend(doc["result"])
            if not doc["result"] or len(items) >= doc["total"]:
                return items
            number += 1

    def health(self) -> dict[str, bool]:
        """`{"live": ..., "ready": ...}` (no token needed); ready is False while the server
        stops. Raises ServerUnavailable if it cannot be reached."""
        live = self._request("GET", "/v2/health/live").json()["live"]
        try:
            response = self._http.get("/v2/health/ready")
        except httpx.RequestError as e:
            raise self._unreachable(e) from None
        return {"live": bool(live), "ready": response.status_code == 200}

    # ---- runtimes -------------------------------------------------------------------

    def runtimes(self) -> list[Runtime]:
        """Every runtime, the bundled `onnx` first."""
        return [_record(Runtime, d) for d in self._pages("/api/v1/runtimes")]

    def runtime(self, name: str) -> Runtime:
        """Raises NotFound for an unknown runtime."""
        for found in self.runtimes():
            if found.name == name:
                return found
        raise NotFound(f"no runtime {name!r} (see `wasmhost runtime list`)")

    def register_runtime(self, name: str, module: Any, **kwargs: Any) -> NoReturn:
        """Refused: runtimes are registered on the server's host."""
        raise InvalidArgument(f"a server's runtimes are registered on {_LOCAL_ONLY}")

    # ---- projects -------------------------------------------------------------------

    def _project_name(self, name_or_id: str) -> str:
        """The name in a project's route: a name as given (checked), an id looked up."""
        uid = as_uuid(name_or_id) if isinstance(name_or_id, str) else None
        if uid is None:
            return check_name("project", name_or_id)
        for found in self.projects():
            if found.id == uid:
                return found.name
        raise NotFound(f"no project {name_or_id!r}")

    def _project_path(self, name_or_id: str) -> str:
        return "/api/v1/projects/" + quote(self._project_name(name_or_id), safe="")

    def create_project(
        self,
        name: str,
        *,
        runtime: str = "onnx",
        limits: Limits | dict[str, Any] | None = None,
        user: str | None = None,
    ) -> Project:
        """Creates a project whose models run on `runtime`, with default `limits`.
        Raises InvalidName, AlreadyExists, NotFound (no such runtime), InvalidArgument."""
        doc = {"name": name, "runtime": runtime, "limits": _limits_json(limits)}
        return _record(Project, self._json("POST", "/api/v1/projects", json=doc))

    def projects(self) -> list[Project]:
        """Every project the token sees, by name, with its number of models."""
        return [_record(Project, d) for d in self._pages("/api/v1/projects")]

    def project(self, name_or_id: str) -> Project:
        """Raises NotFound (and InvalidName for a string that is neither name nor id)."""
        uid = as_uuid(name_or_id) if isinstance(name_or_id, str) else None
        if uid is not None:
            for found in self.projects():
                if found.id == uid:
                    return found
            raise NotFound(f"no project {name_or_id!r}")
        return _record(Project, self._json("GET", self._project_path(name_or_id)))

    def set_project_limits(self, name: str, limits: Limits | dict[str, Any] | None) -> Project:
        """Replaces a project's default limits (None: wasmhost's defaults).
        Raises NotFound, InvalidArgument."""
        doc = {"limits": _limits_json(limits)}
        return _record(Project, self._json("PATCH", self._project_path(name), json=doc))

    def delete_project(self, name: str) -> Project:
        """Deletes a project with its models and versions. Raises NotFound."""
        return _record(Project, self._json("DELETE", self._project_path(name)))

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
        """Uploads a model (streamed from a file): version 1 of a new name, else the next
        version. The server validates it in a sandbox first; a refusal stores nothing.

        Raises like `Registry.upload` (an upload over the server's cap is InvalidModel),
        and OSError when the file cannot be read.
        """
        check_name("model", name)
        if project == CATALOG:
            raise InvalidName("the catalog is read-only: upload to a project of your own")
        path = self._project_path(project) + "/models"
        fields = {"name": name} | ({} if description is None else {"description": description})
        timeout = httpx.Timeout(self.timeout, read=max(self.timeout, 300.0))
        with contextlib.ExitStack() as stack:
            if isinstance(model, bytes):
                part: Any = ("model.onnx", model, "application/octet-stream")
            else:
                f = stack.enter_context(Path(model).open("rb"))
                part = (Path(model).name, f, "application/octet-stream")
            doc = self._json(
                "POST",
                path,
                data=fields,
                files={"file": part},
                timeout=timeout,
                by_status={413: InvalidModel},
            )
        return _version(doc)

    def add_from_catalog(
        self,
        project: str,
        name: str,
        entry: str,
        *,
        description: str | None = None,
        user: str | None = None,
    ) -> ModelVersion:
        """Adds a catalog model to a project by reference (no bytes sent). Raises like
        `Registry.add_from_catalog`; `user` is ignored (the server records the token)."""
        check_name("model", name)
        if project == CATALOG:
            raise InvalidName("the catalog is read-only: add to a project of your own")
        doc = {"name": name, "catalog": entry, "description": description}
        return _version(self._json("POST", self._project_path(project) + "/models", json=doc))

    # ---- lookups --------------------------------------------------------------------

    def _locate(self, ref: str) -> tuple[str, str, ModelVersion | None]:
        """(project, model, the version when `ref` is a version's id) of a non-catalog
        reference: a model's or a version's id is looked up."""
        parsed = parse_reference(ref)
        if not parsed.id:
            return parsed.project or "", parsed.model or "", None
        try:
            found = self.resolve(parsed.id)
        except NotFound:
            found = None
        if isinstance(found, ModelVersion):
            return found.project, found.model, found if found.id == parsed.id else None
        # A model with no ready version (resolve names none): look through the models.
        for project in self.projects():
            for model in self.models(project.name):
                if model.id == parsed.id:
                    return project.name, model.name, None
        raise NotFound(f"no model or version has id {parsed.id}")

    def _model_path(self, project: str, model: str) -> str:
        return f"/api/v1/projects/{quote(project, safe='')}/models/{quote(model, safe='')}"

    def _model_doc(self, ref: str) -> dict[str, Any]:
        if parse_reference(ref).catalog:
            raise NotFound(f"{ref} is a catalog model: see `wasmhost catalog show`")
        project, model, _ = self._locate(ref)
        return self._json("GET", self._model_path(project, model))

    def resolve(self, ref: str) -> ModelVersion | CatalogEntry:
        """The version (or catalog entry) a reference names; `project/model` is its newest
        ready version. Raises InvalidName, NotFound."""
        parse_reference(ref)
        doc = self._json("GET", "/api/v1/resolve", params={"ref": ref})
        if doc.pop("kind", "version") == "catalog":
            return _catalog_entry(doc)
        return _version(doc)

    def version(self, ref: str) -> ModelVersion:
        """Like `resolve`, for registry versions only (NotFound for catalog entries)."""
        found = self.resolve(ref)
        if isinstance(found, CatalogEntry):
            raise NotFound(f"{ref} is a catalog model, not a version of a project's model")
        return found

    def model(self, ref: str) -> Model:
        """The model a reference names (its version or alias part is ignored).
        Raises InvalidName, NotFound."""
        doc = self._model_doc(ref)
        doc.pop("version_list", None)
        return _record(Model, doc)

    def models(self, project: str) -> list[Model]:
        """A project's models, by name. Raises NotFound."""
        return [_record(Model, d) for d in self._pages(self._project_path(project) + "/models")]

    def versions(self, ref: str) -> list[ModelVersion]:
        """Every version of the model `ref` names, oldest first. Raises NotFound."""
        return [_version(d) for d in self._model_doc(ref)["version_list"]]

    # ---- aliases, reads, deletes -----------------------------------------------------

    def set_alias(self, ref: str, alias: str) -> ModelVersion:
        """Points `alias` at the version `ref` names. Raises InvalidName, NotFound."""
        check_alias(alias)
        target = self.version(ref)
        path = self._model_path(target.project, target.model) + f"/aliases/{quote(alias)}"
        return _version(self._json("PUT", path, json={"version": target.version}))

    def remove_alias(self, ref: str, alias: str) -> None:
        """Removes an alias of the model `ref` names. Raises InvalidName, NotFound."""
        check_alias(alias)
        if parse_reference(ref).catalog:
            raise NotFound(f"{ref} is a catalog model: see `wasmhost catalog show`")
        project, model, _ = self._locate(ref)
        self._request("DELETE", self._model_path(project, model) + f"/aliases/{quote(alias)}")

    def _file_path(self, found: ModelVersion) -> str:
        return self._model_path(found.project, found.model) + f"/versions/{found.version}/file"

    def read(self, ref: str) -> bytes:
        """The bytes of the version (or catalog model) `ref` names, checked by sha256.
        Raises InvalidName, NotFound, RegistryCorrupt."""
        found = self.resolve(ref)
        if isinstance(found, CatalogEntry):
            return _catalog_bytes(found)
        data = self._request("GET", self._file_path(found)).content
        if hashlib.sha256(data).hexdigest() != found.sha256:
            raise RegistryCorrupt(f"the bytes {self.url} sent for {found.reference} differ")
        return data

    def download(self, ref: str, path: str | os.PathLike[str]) -> ModelVersion | CatalogEntry:
        """Writes the model's bytes to `path` (streamed, checked by sha256), whole or not at
        all. Raises like `read`, and OSError when `path` cannot be written."""
        found = self.resolve(ref)
        target = Path(path)
        fd, tmp = tempfile.mkstemp(dir=target.parent or ".", prefix=f".{target.name}-")
        try:
            with os.fdopen(fd, "wb") as f:
                if isinstance(found, CatalogEntry):
                    f.write(_catalog_bytes(found))
                else:
                    digest = hashlib.sha256()
                    for chunk in self._stream(self._file_path(found)):
                        digest.update(chunk)
                        f.write(chunk)
                    if digest.hexdigest() != found.sha256:
                        raise RegistryCorrupt(
                            f"the bytes {self.url} sent for {found.reference} differ"
                        )
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return found

    def _stream(self, path: str) -> Iterator[bytes]:
        try:
            with self._http.stream("GET", path) as response:
                if response.is_error:
                    response.read()
                    raise self._error(response)
                yield from response.iter_bytes()
        except httpx.RequestError as e:
            raise self._unreachable(e) from None

    def delete(self, ref: str) -> list[ModelVersion]:
        """Deletes one version (`project/model@3`, `@alias`, a version id) or a whole model
        (`project/model`, a model id); returns what was deleted. Raises InvalidName,
        NotFound (and NotFound for catalog models: read-only)."""
        parsed = parse_reference(ref)
        if parsed.catalog:
            raise NotFound(f"{ref} is in the read-only catalog")
        one: ModelVersion | None = None
        if parsed.version is not None or parsed.alias:
            one = self.version(ref)
            project, model = one.project, one.model
        else:
            project, model, one = self._locate(ref)
        path = self._model_path(project, model)
        if one is not None:
            path += f"/versions/{one.version}"
        return [_version(d) for d in self._json("DELETE", path)]

    # ---- the catalog -----------------------------------------------------------------

    def catalog(self) -> list[CatalogEntry]:
        """The server's catalog (see the class's note on `CatalogEntry`)."""
        return [_catalog_entry(d) for d in self._pages("/api/v1/catalog")]

    def catalog_entry(self, name_or_id: str) -> CatalogEntry:
        """The server's catalog entry of that name or id. Raises NotFound."""
        if not isinstance(name_or_id, str) or not name_or_id or "/" in name_or_id:
            have = ", ".join(e.name for e in self.catalog()) or "nothing"
            raise NotFound(f"the catalog has no model {name_or_id!r} (it has: {have})")
        return _catalog_entry(self._json("GET", f"/api/v1/catalog/{quote(name_or_id)}"))

    # ---- sessions: on the server ---------------------------------------------------

    def source(self, ref: str, **kwargs: Any) -> NoReturn:
        """Refused: a remote registry's models run on the server (`infer`)."""
        raise InvalidArgument(
            f"{ref}: a model of a remote registry runs on the server (Client.infer, or "
            "`wasmhost --server URL run`), not in this process"
        )

    session = source

    def infer(
        self,
        model: str,
        inputs: Mapping[str, Any],
        *,
        version: int | str | None = None,
        outputs: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """Runs `model` on the server: OIP v2 with the binary tensor data extension both
        ways. `model` is a reference (`project/model[@VERSION|@ALIAS]`, `catalog/NAME`, a
        model or version id) or an OIP name (`project.model`); `version` a number or alias.

        Returns the outputs by name (all, or `outputs` in that order) as numpy arrays; a
        ZipMap's output is a list of dicts with string keys.

        Raises InvalidInput (a feed that does not fit, a dtype OIP lacks), NotFound,
        Forbidden, Overloaded (the model's queue is full: retry), and what the model's run
        raises in its sandbox (MemoryLimitExceeded, TimeoutExceeded, ...).
        """
        name, wanted = _oip_name(model, version)
        specs, chunks = [], []
        for input_name, value in inputs.items():
            array = np.asarray(value)
            if array.dtype.kind in "UO":  # strings: BYTES, as UTF-8
                items = array.ravel().tolist()
                if not all(isinstance(v, str) for v in items):
                    raise InvalidInput(f"input {input_name!r}: an object array must hold str")
                datatype, raw = "BYTES", pack_strings(items)
            elif (datatype := DTYPE_NAMES.get(array.dtype.newbyteorder("="))) is None:
                raise InvalidInput(
                    f"input {input_name!r}: dtype {array.dtype} has no OIP datatype "
                    f"(one of {', '.join(DATATYPES)})"
                )
            else:
                raw = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
            specs.append(
                {
                    "name": str(input_name),
                    "datatype": datatype,
                    "shape": list(array.shape),
                    "parameters": {"binary_data_size": len(raw)},
                }
            )
            chunks.append(raw)
        doc: dict[str, Any] = {"inputs": specs, "parameters": {"binary_data_output": True}}
        if outputs is not None:
            doc["outputs"] = [{"name": n, "parameters": {"binary_data": True}} for n in outputs]
        header = json.dumps(doc).encode()
        path = f"/v2/models/{quote(name, safe='')}"
        if wanted is not None:
            path += f"/versions/{quote(wanted, safe='')}"
        response = self._request(
            "POST",
            path + "/infer",
            content=header + b"".join(chunks),
            headers={
                "content-type": "application/octet-stream",
                "inference-header-content-length": str(len(header)),
            },
        )
        return _decode_outputs(response.content, response.headers)

    # ---- tokens ----------------------------------------------------------------------

    def create_token(
        self, name: str, *, role: str = "run", project: str | None = None, user: str | None = None
    ) -> tuple[Token, str]:
        """A new bearer token: (its record, its secret, shown this once).
        Raises InvalidName, InvalidArgument, AlreadyExists, NotFound."""
        doc = self._json(
            "POST", "/api/v1/tokens", json={"name": name, "role": role, "project": project}
        )
        secret = doc.pop("token")
        return _record(Token, doc), secret

    def tokens(self) -> list[Token]:
        """Every token (never their secrets), by name."""
        return [_record(Token, d) for d in self._pages("/api/v1/tokens")]

    def revoke_token(self, name_or_id: str) -> Token:
        """Deletes a token. Raises NotFound."""
        try:
            key = as_uuid(name_or_id) or check_name("token", name_or_id)
        except InvalidName:  # no token has such a name
            raise NotFound(f"no token {name_or_id!r}") from None
        path = f"/api/v1/tokens/{quote(key, safe='')}"
        return _record(Token, self._json("DELETE", path))

    # ---- settings ------------------------------------------------------------------

    def settings(self) -> dict[str, Any]:
        """Every setting's value (stored, else default)."""
        return dict(self._json("GET", "/api/v1/config"))

    def get_setting(self, name: str) -> Any:
        """Raises InvalidArgument for an unknown setting."""
        setting(name)
        return self.settings()[name]

    def set_setting(self, name: str, value: str | None) -> Any:
        """Sets a setting from its text (None: back to its default); returns the value.
        Raises InvalidArgument: unknown setting or bad value."""
        setting(name)
        doc = {"value": None if value is None else str(value)}
        return self._json("PUT", f"/api/v1/config/{quote(name, safe='')}", json=doc)[name]

    # ---- housekeeping: on the server's host -----------------------------------------

    def check(self, *, deep: bool = False) -> NoReturn:
        """Refused: the registry's integrity is checked on the server's host."""
        raise InvalidArgument(f"a registry is checked on {_LOCAL_ONLY}")

    def gc(self, grace: float = 0) -> NoReturn:
        """Refused: leftovers are collected on the server's host."""
        raise InvalidArgument(f"a registry's leftovers are collected on {_LOCAL_ONLY}")


def _record(cls: type[_R], doc: dict[str, Any]) -> _R:
    """A record from the server's JSON; fields this wasmhost does not know are dropped
    (a newer server's), so that a client works with a server of another version."""
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in doc.items() if k in known})


def _limits_json(limits: Limits | dict[str, Any] | None) -> dict[str, Any] | None:
    return project_limits(limits) if isinstance(limits, Limits) else limits


def _version(doc: dict[str, Any]) -> ModelVersion:
    fields = dict(doc)
    for key in ("inputs", "outputs"):
        fields[key] = [_record(Tensor, t) for t in fields[key]]
    return _record(ModelVersion, fields)


def _catalog_entry(doc: dict[str, Any]) -> CatalogEntry:
    """A catalog entry from its JSON (`to_dict`): the keys that are no field of this
    wasmhost's `CatalogEntry` go to its `extra`; `file` and `reference_file` come from this
    wasmhost's copy of the same entry (same id and sha256), if it has one."""
    names = {f.name for f in dataclasses.fields(CatalogEntry)}
    own = ("file", "reference_file", "extra")
    fields = {k: v for k, v in doc.items() if k in names and k not in own}
    if "extra" in names:
        fields["extra"] = {k: v for k, v in doc.items() if k not in names and k != "reference"}
    local = next(
        (e for e in catalog.entries() if e.id == doc["id"] and e.sha256 == doc["sha256"]), None
    )
    if local is not None:
        fields.update(file=local.file, reference_file=local.reference_file)
    return CatalogEntry(**fields)


def _catalog_bytes(entry: CatalogEntry) -> bytes:
    """A catalog model's bytes from this wasmhost's copy (the service sends none)."""
    if not entry.file:
        raise NotFound(
            f"{entry.reference}: the service sends no catalog model's bytes, and this "
            f"wasmhost's catalog has no copy of it (sha256 {entry.sha256[:12]})"
        )
    return entry.read()


def _oip_name(model: str, version: int | str | None) -> tuple[str, str | None]:
    """The OIP model name and version of a reference (or of an OIP name as given)."""
    wanted = None if version is None else str(version)
    if not isinstance(model, str):
        raise InvalidName(f"a model reference must be a string, not {type(model).__name__}")
    if "/" not in model and not as_uuid(model):
        return model, wanted  # `project.model`, as OIP names it
    parsed = parse_reference(model)
    if parsed.id:
        if wanted is not None:
            raise InvalidArgument(f"{model} is an id: it takes no version")
        return parsed.id, None
    in_ref = str(parsed.version) if parsed.version is not None else parsed.alias
    if in_ref is not None and wanted is not None and in_ref != wanted:
        raise InvalidArgument(f"{model} names a version already: not also version {wanted}")
    return f"{parsed.project}.{parsed.model}", in_ref or wanted


def _decode_outputs(body: bytes, headers: Mapping[str, str]) -> dict[str, Any]:
    """An infer response's outputs: JSON, then the binary data its header sizes."""
    length = headers.get("inference-header-content-length")
    head, binary = (body, b"") if length is None else (body[: int(length)], body[int(length) :])
    doc = json.loads(head)
    result: dict[str, Any] = {}
    offset = 0
    for tensor in doc["outputs"]:
        name, datatype, shape = tensor["name"], tensor["datatype"], tensor["shape"]
        params = tensor.get("parameters") or {}
        size = params.get("binary_data_size")
        if size is not None:
            raw = binary[offset : offset + size]
            offset += size
            if len(raw) != size:
                raise WasmHostError(f"output {name!r}: the answer is cut short")
            if datatype == "BYTES":
                value: Any = unpack_strings(raw, math.prod(shape), f"output {name!r}")
            else:
                dtype = DATATYPES[datatype]
                value = np.frombuffer(raw, dtype=dtype.newbyteorder("<")).astype(dtype)
        elif datatype == "BYTES":
            value = np.empty(len(tensor["data"]), dtype=object)
            value[:] = tensor["data"]
        else:
            value = np.asarray(tensor["data"], dtype=DATATYPES[datatype])
        if datatype == "BYTES" and params.get("content_type") == CONTENT_JSON:
            result[name] = [json.loads(row) for row in value]  # a ZipMap's maps
        else:
            result[name] = value.reshape(shape)
    return result
