"""The management API, after Constellation's: runtimes, projects, models (multipart upload
of `file`, `name`, `description`), versions, aliases, the catalog, settings and tokens.

Bodies and answers are JSON, the same records the CLI prints with `--json`; lists are
paged (`?page=&per_page=`: `{"result": [...], "page", "per_page", "total"}`).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..errors import InvalidArgument, NotFound
from ..registry import catalog
from ..registry.names import CATALOG, parse_reference
from .web import UploadTooLarge, blocking, body, caller, changing, deadline, ok, page, state

#: Room for a multipart form's boundaries, headers and small fields around the file.
_FORM_OVERHEAD = 64 * 1024


async def _json(request: Request) -> dict[str, Any]:
    data = await body(request, 1 << 20)
    try:
        doc = json.loads(data or b"{}")
    except (ValueError, RecursionError) as e:  # RecursionError: nested too deep
        raise InvalidArgument(f"the body is not JSON: {e}") from None
    if not isinstance(doc, dict):
        raise InvalidArgument("the body must be a JSON object")
    return doc


async def runtimes(request: Request) -> Response:
    s = state(request)
    await caller(request)
    return ok(page(request, [r.to_dict() for r in await blocking(s, s.registry.runtimes)]))


async def projects(request: Request) -> Response:
    s = state(request)
    principal = await caller(request)
    if request.method == "POST":
        principal.require("admin")
        doc = await _json(request)
        created = await blocking(
            s,
            s.registry.create_project,
            doc.get("name"),
            runtime=doc.get("runtime", "onnx"),
            limits=doc.get("limits"),
            user=principal.name,
        )
        return ok(created.to_dict(), 201)
    found = [p.to_dict() for p in await blocking(s, s.registry.projects) if principal.sees(p.name)]
    return ok(page(request, found))


async def project(request: Request) -> Response:
    s = state(request)
    principal = await caller(request)
    name = request.path_params["project"]
    principal.require("read", name)
    found = await blocking(s, s.registry.project, name)
    principal.require("read", found.name)  # by id: check the name it has
    if request.method == "DELETE":
        principal.require("admin")
        return ok((await changing(s, s.registry.delete_project, found.id)).to_dict())
    if request.method == "PATCH":
        principal.require("admin")
        doc = await _json(request)
        updated = await blocking(s, s.registry.set_project_limits, found.id, doc.get("limits"))
        return ok(updated.to_dict())
    return ok(found.to_dict())


async def models(request: Request) -> Response:
    s = state(request)
    principal = await caller(request)
    name = request.path_params["project"]
    principal.require("read", name)
    if request.method == "POST":
        principal.require("deploy", name)
        if request.headers.get("content-type", "").startswith("application/json"):
            # {"name", "catalog": ENTRY, "description"}: a catalog model joins the project
            # by reference, its bytes not copied.
            doc = await _json(request)
            if not isinstance(doc.get("catalog"), str) or "name" not in doc:
                raise InvalidArgument(
                    'a JSON body adds a catalog model: {"name": ..., "catalog": ENTRY}; '
                    "upload a file with multipart/form-data (file, name, description)"
                )
            version = await changing(
                s,
                s.registry.add_from_catalog,
                name,
                doc.get("name"),
                doc["catalog"],
                description=doc.get("description"),
                user=principal.name,
            )
            return ok(version.to_dict(), 201)
        fields = await _form(request, await blocking(s, s.registry.get_setting, "max_model_size"))
        version = await changing(
            s,
            s.registry.upload,
            name,
            fields.get("name"),
            fields.get("file"),
            description=fields.get("description"),
            user=principal.name,
        )
        return ok(version.to_dict(), 201)
    found = await blocking(s, s.registry.models, name)
    return ok(page(request, [m.to_dict() for m in found]))


async def _form(request: Request, cap: int) -> dict[str, Any]:
    """A multipart form's fields, its `file` as bytes, read under `cap` while streaming."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise InvalidArgument("upload with multipart/form-data: file, name, description")
    limit = cap + _FORM_OVERHEAD
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise UploadTooLarge(
            f"the upload ({declared} bytes) is over the registry's max_model_size of {cap} bytes"
        )

    async def capped() -> AsyncIterator[bytes]:
        seen = 0
        async for chunk in request.stream():
            seen += len(chunk)
            if seen > limit:
                raise UploadTooLarge(
                    f"the upload is over the registry's max_model_size of {cap} bytes"
                )
            yield chunk

    try:
        with deadline(state(request)):
            form = await MultiPartParser(
                request.headers, capped(), max_files=1, max_fields=8
            ).parse()
    except MultiPartException as e:
        raise InvalidArgument(f"a malformed multipart form: {e.message}") from None
    fields: dict[str, Any] = {}
    for key in ("name", "description"):
        value = form.get(key)
        if value is not None and not isinstance(value, str):
            raise InvalidArgument(f"form field {key!r} must be text")
        fields[key] = value
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise InvalidArgument('the form needs a "file" part (the .onnx model)')
    fields["file"] = await upload.read()
    await upload.close()
    if fields["name"] is None:
        raise InvalidArgument('the form needs a "name" field')
    return fields


def _ref(request: Request) -> str:
    project_name, model = request.path_params["project"], request.path_params["model"]
    version = request.path_params.get("version")
    return f"{project_name}/{model}" + (f"@{version}" if version else "")


async def model(request: Request) -> Response:
    s = state(request)
    principal = await caller(request)
    project_name = request.path_params["project"]
    principal.require("read", project_name)
    ref = _ref(request)
    if request.method == "DELETE":
        principal.require("deploy", project_name)
        return ok([v.to_dict() for v in await changing(s, s.registry.delete, ref)])
    found = await blocking(s, s.registry.model, ref)
    versions = await blocking(s, s.registry.versions, ref)
    return ok(found.to_dict() | {"version_list": [v.to_dict() for v in versions]})


async def version(request: Request) -> Response:
    s = state(request)
    principal = await caller(request)
    project_name = request.path_params["project"]
    principal.require("read", project_name)
    ref = _ref(request)
    if request.method == "DELETE":
        principal.require("deploy", project_name)
        return ok([v.to_dict() for v in await changing(s, s.registry.delete, ref)])
    return ok((await blocking(s, s.registry.version, ref)).to_dict())


async def version_file(request: Request) -> Response:
    s = state(request)
    principal = await caller(request)
    principal.require("read", request.path_params["project"])
    data = await blocking(s, s.registry.read, _ref(request))
    return Response(data, media_type="application/octet-stream")


async def alias(request: Request) -> Response:
    s = state(request)
    principal = await caller(request)
    project_name = request.path_params["project"]
    principal.require("deploy", project_name)
    name = request.path_params["alias"]
    ref = _ref(request)
    if request.method == "DELETE":
        await changing(s, s.registry.remove_alias, ref, name)
        return ok({"removed": name})
    doc = await _json(request)
    number = doc.get("version")
    if isinstance(number, bool) or not isinstance(number, int):
        raise InvalidArgument('the body must be {"version": N}')
    return ok((await changing(s, s.registry.set_alias, f"{ref}@{number}", name)).to_dict())


async def resolve(request: Request) -> Response:
    """`?ref=` any reference: the version (or catalog entry) it names."""
    s = state(request)
    principal = await caller(request)
    ref = request.query_params.get("ref", "")
    parsed = parse_reference(ref)
    if parsed.project is not None:
        # A project it may not see is refused before the registry is asked, and an id
        # of one as if nothing had it: its models cannot be told from names nothing has.
        principal.require("read", parsed.project)
    found = await blocking(s, s.registry.resolve, ref)
    project_name = getattr(found, "project", None) or CATALOG
    if not principal.sees(project_name):
        raise NotFound(f"no model or version has id {parsed.id}")
    doc = found.to_dict()
    doc["kind"] = "catalog" if isinstance(found, catalog.CatalogEntry) else "version"
    return ok(doc)


async def catalog_list(request: Request) -> Response:
    await caller(request)
    return ok(page(request, [e.to_dict() for e in catalog.entries()]))


async def catalog_entry(request: Request) -> Response:
    await caller(request)
    return ok(catalog.entry(request.path_params["name"]).to_dict())


async def config(request: Request) -> Response:
    s = state(request)
    principal = await caller(request)
    principal.require("admin")
    if request.method == "PUT":
        doc = await _json(request)
        value = doc.get("value")
        await blocking(
            s,
            s.registry.set_setting,
            request.path_params["key"],
            None if value is None else str(value),
        )
    return ok(await blocking(s, s.registry.settings))


async def tokens(request: Request) -> Response:
    s = state(request)
    principal = await caller(request)
    principal.require("admin")
    if request.method == "POST":
        doc = await _json(request)
        token, secret = await blocking(
            s,
            s.registry.create_token,
            doc.get("name"),
            role=doc.get("role", "run"),
            project=doc.get("project"),
            user=principal.name,
        )
        return ok(token.to_dict() | {"token": secret}, 201)
    return ok(page(request, [t.to_dict() for t in await blocking(s, s.registry.tokens)]))


async def token(request: Request) -> Response:
    s = state(request)
    principal = await caller(request)
    principal.require("admin")
    return ok((await changing(s, s.registry.revoke_token, request.path_params["name"])).to_dict())


_P = "/api/v1/projects/{project}/models/{model}"
ROUTES = [
    Route("/api/v1/runtimes", runtimes),
    Route("/api/v1/projects", projects, methods=["GET", "POST"]),
    Route("/api/v1/projects/{project}", project, methods=["GET", "PATCH", "DELETE"]),
    Route("/api/v1/projects/{project}/models", models, methods=["GET", "POST"]),
    Route(_P, model, methods=["GET", "DELETE"]),
    Route(_P + "/versions/{version}", version, methods=["GET", "DELETE"]),
    Route(_P + "/versions/{version}/file", version_file),
    Route(_P + "/aliases/{alias}", alias, methods=["PUT", "DELETE"]),
    Route("/api/v1/resolve", resolve),
    Route("/api/v1/catalog", catalog_list),
    Route("/api/v1/catalog/{name}", catalog_entry),
    Route("/api/v1/config", config),
    Route("/api/v1/config/{key}", config, methods=["PUT"]),
    Route("/api/v1/tokens", tokens, methods=["GET", "POST"]),
    Route("/api/v1/tokens/{name}", token, methods=["DELETE"]),
]
