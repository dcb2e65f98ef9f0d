"""The dashboard: a web page at `/` (static/: one HTML, one JS, one CSS; no build step,
nothing fetched from elsewhere) over the management API, and the three small routes it
needs beyond that API:

- `GET /api/v1/whoami`: the token's name, role and project (the page's log-in check);
- `GET /api/v1/stats`: each visible model's recent runs (counts, p50/p99, traps by kind,
  the last latencies, runs per 10 s), from the deployments' bounded window;
- `GET, POST /api/v1/classify/{project}/{model}[?version=V&k=5]`: how an image classifier
  takes its images (GET), and an image (multipart `image`, or a raw `image/*` body) run
  through it, answered as its top k classes with their labels (POST).

The page and its files need no token (they hold no data); every route they call does,
with the API's own bearer tokens.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..errors import InvalidArgument, InvalidModel
from ..registry import catalog
from ..registry.catalog import CatalogEntry
from ..registry.names import CATALOG
from ..registry.records import ModelVersion
from . import images
from .web import RequestTooLarge, State, blocking, body, caller, ok, state

STATIC = Path(__file__).resolve().parent / "static"
#: Largest image a classify request may send, bytes (refused before it is decoded).
MAX_IMAGE_BYTES = 16 * 1024**2
#: The page may load only its own files and talk only to this server.
_PAGE_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
}


async def page(request: Request) -> Response:
    return FileResponse(STATIC / "index.html", headers=_PAGE_HEADERS)


async def whoami(request: Request) -> Response:
    s = state(request)
    principal = await caller(request)
    return ok(
        {
            "name": principal.name,
            "role": principal.role,
            "project": principal.project,
            "auth": s.auth,
        }
    )


async def stats(request: Request) -> Response:
    s = state(request)
    principal = await caller(request)
    window = s.deployments.recent
    return ok({"window": window.size, "models": window.snapshot(principal.sees)})


# ---- classify --------------------------------------------------------------------------

#: Uploaded versions' metadata, by version id (a version's bytes never change).
_metadata: OrderedDict[str, dict[str, str]] = OrderedDict()


def _onnx_metadata(s: State, version: ModelVersion) -> dict[str, str]:
    """An uploaded model's ONNX metadata properties (`preprocess`, `labels`...)."""
    found = _metadata.get(version.id)
    if found is None:
        import onnx

        try:
            model = onnx.load_model_from_string(s.registry.read(version.id))
            found = {p.key: p.value for p in model.metadata_props}
        except Exception:  # the sandbox validated it; a parser's refusal means no metadata
            found = {}
        _metadata[version.id] = found
        while len(_metadata) > 256:
            _metadata.popitem(last=False)
    return found


def classifier(s: State, target: ModelVersion | CatalogEntry) -> dict[str, Any]:
    """How `target` takes images: `{"preprocess": spec or None, "labels": [...], "from":
    where the spec was found}`. A catalog entry says so in its manifest (a project's
    version added from the catalog, in its entry's); an uploaded model in its ONNX
    metadata: `preprocess` (a JSON object, see images.py) and `labels` (a JSON list)."""
    entry: CatalogEntry | None = None
    if isinstance(target, CatalogEntry):
        entry = target
    elif target.catalog:
        entry = catalog.entry(target.catalog)
    if entry is not None:
        spec = entry.preprocess or None
        return {"preprocess": spec, "labels": list(entry.labels), "from": "catalog"}
    meta = _onnx_metadata(s, target)
    if "preprocess" not in meta:
        return {"preprocess": None, "labels": [], "from": None}
    try:
        spec = json.loads(meta["preprocess"])
        labels = json.loads(meta.get("labels", "[]"))
    except ValueError as e:
        raise InvalidModel(f"the model's preprocess or labels metadata is not JSON: {e}") from None
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise InvalidModel("the model's labels metadata must be a JSON list of strings")
    return {"preprocess": spec, "labels": labels, "from": "onnx metadata"}


def _signature(target: ModelVersion | CatalogEntry) -> dict[str, list[dict[str, Any]]]:
    if isinstance(target, CatalogEntry):
        return {
            "inputs": [
                {"name": t["name"], "type": t["dtype"], "shape": t["shape"]} for t in target.inputs
            ],
            "outputs": [
                {"name": t["name"], "type": t["dtype"], "shape": t["shape"]} for t in target.outputs
            ],
        }
    return {
        "inputs": [t.to_dict() for t in target.inputs],
        "outputs": [t.to_dict() for t in target.outputs],
    }


async def _target(request: Request) -> tuple[Any, str, str | None, ModelVersion | CatalogEntry]:
    s = state(request)
    principal = await caller(request)
    name = f"{request.path_params['project']}.{request.path_params['model']}"
    version = request.query_params.get("version") or None
    return principal, name, version, await s.deployments.resolve(principal, name, version)


async def classify(request: Request) -> Response:
    s = state(request)
    principal, name, version, target = await _target(request)
    how = await blocking(s, classifier, s, target)
    if request.method == "GET":
        number = "1" if isinstance(target, CatalogEntry) else str(target.version)
        return ok(
            {"model": name, "version": number, "image": how["preprocess"] is not None}
            | how
            | _signature(target)
        )
    project = target.project if isinstance(target, ModelVersion) else CATALOG
    principal.require("run", project)
    if how["preprocess"] is None:
        raise InvalidArgument(
            f"model {name} is not an image classifier (no preprocess spec): "
            f"run it with POST /v2/models/{name}/infer"
        )
    try:
        k = int(request.query_params.get("k", "5"))
    except ValueError:
        raise InvalidArgument("k must be an integer") from None
    if not 1 <= k <= 100:
        raise InvalidArgument("k must be from 1 to 100")
    data = await _image(request, min(MAX_IMAGE_BYTES, s.max_request_size))
    started = time.perf_counter()
    batch = await blocking(s, images.preprocess, data, how["preprocess"])
    prepared = time.perf_counter()
    deployment = await s.deployments.get(principal, name, version)
    inputs = deployment.runner.get_inputs()
    feed = how["preprocess"].get("input") or inputs[0].name
    if feed not in {i.name for i in inputs}:
        raise InvalidModel(f"the preprocess spec feeds {feed!r}, which model {name} has not")
    names = [o.name for o in deployment.runner.get_outputs()]
    try:
        results = await s.deployments.infer(deployment, {feed: batch}, names)
    except Exception as e:
        s.metrics.inferences.labels(name, deployment.version, type(e).__name__).inc()
        raise
    s.metrics.inferences.labels(name, deployment.version, "ok").inc()
    output, scores = _scores(names, results, len(how["labels"]))
    return ok(
        {
            "model": name,
            "version": deployment.version,
            "output": output,
            "top": images.top_k(
                images.probabilities(scores, normalized="prob" in output.lower() or None),
                how["labels"],
                k,
            ),
            "ms": {
                "preprocess": round((prepared - started) * 1000, 2),
                "run": round((time.perf_counter() - prepared) * 1000, 2),
            },
        }
    )


def _scores(names: list[str], results: list[Any], classes: int) -> tuple[str, np.ndarray]:
    """The output holding the class scores: one named like probabilities with as many
    values as there are labels, else any with as many values, else the first
    floating-point one."""
    arrays = [(n, r) for n, r in zip(names, results, strict=True) if isinstance(r, np.ndarray)]
    floats = [(n, r) for n, r in arrays if np.issubdtype(r.dtype, np.floating) and r.size > 1]
    floats.sort(key=lambda nr: "prob" not in nr[0].lower())  # probabilities first, stably
    for n, r in floats:
        if classes and r.size == classes:
            return n, r
    if not floats:
        raise InvalidModel("the model has no floating-point output to read class scores from")
    return floats[0]


async def _image(request: Request, cap: int) -> bytes:
    """The request's image: a multipart form's `image` part, or the whole body when it is
    `image/*` or `application/octet-stream`; refused (413) past `cap` bytes while it
    streams, before anything decodes it."""
    kind = request.headers.get("content-type", "")
    if not kind.startswith("multipart/form-data"):
        if kind.startswith(("image/", "application/octet-stream")):
            return await body(request, cap)
        raise InvalidArgument("send the image as multipart/form-data (field image) or image/*")
    limit = cap + 64 * 1024
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestTooLarge(f"the image ({declared} bytes) is over the cap of {cap} bytes")

    async def capped() -> AsyncIterator[bytes]:
        seen = 0
        async for chunk in request.stream():
            seen += len(chunk)
            if seen > limit:
                raise RequestTooLarge(f"the image is over the cap of {cap} bytes")
            yield chunk

    try:
        form = await MultiPartParser(request.headers, capped(), max_files=1, max_fields=4).parse()
    except MultiPartException as e:
        raise InvalidArgument(f"a malformed multipart form: {e.message}") from None
    upload = form.get("image")
    if not isinstance(upload, UploadFile):
        raise InvalidArgument('the form needs an "image" part')
    try:
        data = await upload.read()
    finally:
        await upload.close()
    if len(data) > cap:
        raise RequestTooLarge(f"the image is over the cap of {cap} bytes")
    return data


ROUTES = [
    Route("/", page),
    Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    Route("/api/v1/whoami", whoami),
    Route("/api/v1/stats", stats),
    Route("/api/v1/classify/{project}/{model}", classify, methods=["GET", "POST"]),
]
