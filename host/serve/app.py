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
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import WasmHostError
from ..registry.registry import Registry
from . import dashboard, management, oip
from .auth import Authenticator
from .deployments import Deployments
from .metrics import Metrics
from .web import State, caller, error_response, state

log = logging.getLogger("wasmhost.serve")


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
    max_loaded: int = 32,
) -> Starlette:
    """The service over `registry`.

    Args:
        auth: require bearer tokens (every route but health); False serves every caller
            as the operator (admin): only for a server bound to loopback.
        threads: the thread pool models run on (default: 2 x CPUs, at least 4).
        max_request_size: largest infer request body, bytes (uploads: the registry's
            `max_model_size`).
        max_loaded: model versions kept loaded; the least recently used are closed.
    """
    m = Metrics()
    deployments = Deployments(
        registry, m, threads=threads or max(4, 2 * (os.cpu_count() or 1)), max_loaded=max_loaded
    )
    shared = State(registry, deployments, m, auth, max_request_size, Authenticator(registry))

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
            Exception: internal_error,
        },
    )
    app.state.wasmhost = shared
    return app


class _Measured:
    """Counts requests by route template and status, and times them (pure ASGI: no
    per-request task, unlike BaseHTTPMiddleware)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

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
    """The route's template (`/v2/models/{name}/infer`), so metrics stay low-cardinality."""
    for route in scope["app"].routes:
        match, _ = route.matches(scope)
        if match.name == "FULL":
            return getattr(route, "path", "?")
    return "unmatched"
