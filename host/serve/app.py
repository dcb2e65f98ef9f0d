"""The ASGI app: OIP v2, the management API and /metrics over one registry.

Errors leave as `{"error": message, "type": class}` with the status the class carries;
an unexpected exception is a 500 whose body names no internals (the log has the
traceback). Models run on a bounded thread pool, never on the event loop.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import InvalidArgument, WasmHostError
from ..registry.registry import Registry
from . import dashboard, management, oip
from .auth import Authenticator
from .backend import Backend
from .deployments import Deployments
from .metrics import Metrics
from .web import State, caller, error_response, state

log = logging.getLogger("wasmhost.serve")

#: Largest request head (request line and headers) a route sees; past it, 431. (h11
#: drops a connection whose head passes 64 KiB before it is complete; one that arrived
#: whole in a single read, up to ~128 KiB on loopback, reaches the app and stops here.)
MAX_HEAD = 64 * 1024


async def metrics(request: Request) -> Response:
    s = state(request)
    await caller(request)
    return Response(s.metrics.render(), media_type="text/plain; version=0.0.4")


def create_app(
    registry: Registry,
    *,
    auth: bool = True,
    threads: int | None = None,
    max_request_size: int = 64 * 1024**2,
    body_timeout: float = 60.0,
    max_loaded: int = 32,
    isolation: str = "per-run",
    backend: Backend | None = None,
) -> Starlette:
    """The service over `registry`.

    Args:
        auth: require bearer tokens (every route but health); False serves every caller
            as the operator (admin): only for a server bound to loopback.
        threads: the thread pool models run on (default: 2 x CPUs, at least 4).
        body_timeout: seconds a request body may take to arrive (408 after that).
        max_request_size: largest infer request body, bytes (uploads: the registry's
            `max_model_size`).
        max_loaded: model versions kept loaded; the least recently used are closed.
        isolation: "per-run" (default): each request in a fresh isolate spawned from the
            model's snapshot, where it has one (docs/snapshots.md); "pooled": isolates
            reused from request to request.
        backend: where model versions run (default: sessions in this process; a
            `ray_backend.RayBackend` runs them on a Ray cluster), closed with the app.
    """
    m = Metrics()
    deployments = Deployments(
        registry,
        m,
        threads=threads or max(4, 2 * (os.cpu_count() or 1)),
        max_loaded=max_loaded,
        isolation=isolation,
        backend=backend,
    )
    shared = State(
        registry, deployments, m, auth, max_request_size, Authenticator(registry), body_timeout
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        shared.stopping = True
        await deployments.close()

    async def wasmhost_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, WasmHostError)
        return error_response(exc)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return JSONResponse({"error": exc.detail, "type": "http"}, status_code=exc.status_code)

    async def client_gone(request: Request, exc: Exception) -> Response:
        # The client closed its connection before its body was whole: nothing to answer,
        # and no bug to log (the answer goes nowhere; metrics count it as a 400).
        log.info("client disconnected during %s %s", request.method, request.url.path)
        return error_response(InvalidArgument("the client disconnected before its body ended"))

    async def internal_error(request: Request, exc: Exception) -> Response:
        log.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
        return JSONResponse(
            {"error": "internal error (the server's log has the details)", "type": "internal"},
            status_code=500,
        )

    app = Starlette(
        routes=[*oip.ROUTES, *management.ROUTES, Route("/metrics", metrics), *dashboard.ROUTES],
        lifespan=lifespan,
        middleware=[Middleware(_Measured, metrics=m)],
        exception_handlers={
            WasmHostError: wasmhost_error,
            HTTPException: http_error,
            ClientDisconnect: client_gone,
            Exception: internal_error,
        },
    )
    app.state.wasmhost = shared
    return app


class RequestHeadTooLarge(InvalidArgument):
    """A request head over MAX_HEAD (HTTP 431; its type says InvalidArgument)."""

    http_status = 431


class _Measured:
    """Counts requests by route template and status, and times them (pure ASGI: no
    per-request task, unlike BaseHTTPMiddleware); refuses a head over MAX_HEAD."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        head = len(scope.get("raw_path") or b"") + len(scope["query_string"])
        head += sum(len(k) + len(v) + 4 for k, v in scope["headers"])
        if head > MAX_HEAD:
            refused = error_response(
                RequestHeadTooLarge(f"the request head ({head} bytes) is over {MAX_HEAD} bytes")
            )
            await refused(scope, receive, send)
            self.metrics.requests.labels(_route(scope), "431").inc()
            return

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = _route(scope)
            self.metrics.requests.labels(route, str(status)).inc()
            self.metrics.request_seconds.labels(route).observe(time.perf_counter() - started)


def _route(scope: Scope) -> str:
    """The route's template (`/v2/models/{name}/infer`), so metrics stay low-cardinality:
    the router records the route it matched in the scope."""
    return getattr(scope.get("route"), "path", "unmatched")
