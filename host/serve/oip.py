"""The Open Inference Protocol (KServe v2, Triton's HTTP API): health, metadata, infer
(JSON and binary tensor data), and the model repository extension.

Model names are `project.model`, `catalog.NAME` or a model id; versions are version
numbers or aliases.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .. import __version__
from ..errors import InvalidInput, InvalidName, NotFound
from ..registry.catalog import CatalogEntry
from ..registry.names import CATALOG
from ..registry.records import ModelVersion
from . import tensors
from .web import blocking, body, caller, gzip_if_asked, ok, state

PLATFORM = "onnx_onnxv1"
EXTENSIONS = ["binary_tensor_data", "model_repository"]


async def live(request: Request) -> Response:
    return ok({"live": True})


async def ready(request: Request) -> Response:
    s = state(request)
    is_ready = not s.stopping and await s.deployments.backend.ready()
    return ok({"ready": is_ready}, 200 if is_ready else 503)


async def server_metadata(request: Request) -> Response:
    await caller(request)
    return ok({"name": "wasmhost", "version": __version__, "extensions": EXTENSIONS})


def _version(request: Request) -> str | None:
    version = request.path_params.get("version") or None
    if version is not None and not version.isascii():  # "²" is a digit int() refuses
        raise InvalidName(f"invalid version {version[:40]!r}: a version number or an alias")
    return version


def _signature(target: ModelVersion | CatalogEntry) -> tuple[list[dict], list[dict]]:
    if isinstance(target, CatalogEntry):
        pairs = [
            [
                {
                    "name": t["name"],
                    "datatype": tensors.oip_datatype(_onnx_type(t["dtype"])),
                    "shape": tensors.oip_shape(t["shape"]),
                }
                for t in group
            ]
            for group in (target.inputs, target.outputs)
        ]
        return pairs[0], pairs[1]
    return tuple(  # type: ignore[return-value]
        [
            {
                "name": t.name,
                "datatype": tensors.oip_datatype(t.type),
                "shape": tensors.oip_shape(t.shape),
            }
            for t in group
        ]
        for group in (target.inputs, target.outputs)
    )


def _onnx_type(dtype: str) -> str:
    return {"float32": "tensor(float)", "float64": "tensor(double)"}.get(dtype, f"tensor({dtype})")


async def model_metadata(request: Request) -> Response:
    s = state(request)
    principal = await caller(request)
    name = request.path_params["name"]
    target = await s.deployments.resolve(principal, name, _version(request))
    if isinstance(target, CatalogEntry):
        versions = ["1"]
    else:
        versions = [str(v.version) for v in await blocking(s, s.registry.versions, target.id)]
    inputs, outputs = _signature(target)
    return ok(
        {
            "name": name,
            "versions": versions,
            "platform": PLATFORM,
            "inputs": inputs,
            "outputs": outputs,
        }
    )


async def model_ready(request: Request) -> Response:
    s = state(request)
    principal = await caller(request)
    name = request.path_params["name"]
    target = await s.deployments.resolve(principal, name, _version(request))
    is_ready = isinstance(target, CatalogEntry) or target.status == "ready"
    return ok({"name": name, "ready": is_ready}, 200 if is_ready else 400)


async def infer(request: Request) -> Response:
    s = state(request)
    principal = await caller(request)
    name = request.path_params["name"]
    deployment = await s.deployments.get(principal, name, _version(request))
    principal.require("run", deployment.project)
    data = await body(request, s.max_request_size)
    decoded = tensors.decode(data, request.headers.get("inference-header-content-length"))
    known = set([o.name for o in deployment.runner.get_outputs()])
    if decoded.outputs is not None:
        unknown = [n for n in decoded.outputs if n not in known]
        if unknown:
            raise InvalidInput(f"model {name} has no output {', '.join(map(repr, unknown))}")
    names = decoded.outputs or [o.name for o in deployment.runner.get_outputs()]
    try:
        results = await s.deployments.infer(deployment, decoded.inputs, names)
    except Exception as e:
        s.metrics.inferences.labels(name, deployment.version, type(e).__name__).inc()
        raise
    s.metrics.inferences.labels(name, deployment.version, "ok").inc()
    payload, headers = tensors.encode(
        name, deployment.version, list(zip(names, results, strict=True)), decoded
    )
    return gzip_if_asked(request, payload, headers)


async def repository_index(request: Request) -> Response:
    s = state(request)
    principal = await caller(request)
    loaded = {d.key for d in s.deployments.loaded()}
    entries: list[dict[str, Any]] = []

    def index() -> None:
        for project in s.registry.projects():
            if not principal.sees(project.name):
                continue
            for model in s.registry.models(project.name):
                for v in s.registry.versions(model.id):
                    entries.append(
                        {
                            "name": f"{project.name}.{model.name}",
                            "version": str(v.version),
                            "state": "READY" if v.id in loaded else "UNAVAILABLE",
                            "reason": "" if v.id in loaded else "not loaded",
                        }
                    )

    await blocking(s, index)
    from ..registry import catalog

    for entry in catalog.entries():
        entries.append(
            {
                "name": f"{CATALOG}.{entry.name}",
                "version": "1",
                "state": "READY" if entry.id in loaded else "UNAVAILABLE",
                "reason": "" if entry.id in loaded else "not loaded",
            }
        )
    return ok(entries)


async def repository_load(request: Request) -> Response:
    s = state(request)
    principal = await caller(request)
    name = request.path_params["name"]
    deployment = await s.deployments.get(principal, name, None)
    principal.require("run", deployment.project)
    return ok({"name": name, "version": deployment.version, "state": "READY"})


async def repository_unload(request: Request) -> Response:
    s = state(request)
    principal = await caller(request)
    name = request.path_params["name"]
    if not await s.deployments.unload(principal, name):
        raise NotFound(f"model {name} is not loaded")
    return ok({"name": name, "state": "UNAVAILABLE"})


ROUTES = [
    Route("/v2/health/live", live),
    Route("/v2/health/ready", ready),
    Route("/v2", server_metadata),
    Route("/v2/models/{name}", model_metadata),
    Route("/v2/models/{name}/versions/{version}", model_metadata),
    Route("/v2/models/{name}/ready", model_ready),
    Route("/v2/models/{name}/versions/{version}/ready", model_ready),
    Route("/v2/models/{name}/infer", infer, methods=["POST"]),
    Route("/v2/models/{name}/versions/{version}/infer", infer, methods=["POST"]),
    Route("/v2/repository/index", repository_index, methods=["POST"]),
    Route("/v2/repository/models/{name}/load", repository_load, methods=["POST"]),
    Route("/v2/repository/models/{name}/unload", repository_unload, methods=["POST"]),
]
