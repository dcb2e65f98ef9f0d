"""`wasmhost serve`: the app on uvicorn, stopped cleanly by SIGTERM or SIGINT (in-flight
requests finish, then every isolate is closed; with `ray`, the Ray Serve app this server
deployed is deleted)."""

from __future__ import annotations

import ipaddress
import logging
import signal
import threading
from typing import TYPE_CHECKING

import uvicorn
from starlette.applications import Starlette

from ..errors import InvalidArgument
from ..registry.registry import Registry
from .app import create_app

if TYPE_CHECKING:
    from .ray_backend import RaySettings


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(
    registry: Registry,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    auth: bool = True,
    threads: int | None = None,
    max_request_size: int = 64 * 1024**2,
    body_timeout: float = 60.0,
    log_level: str = "info",
    isolation: str = "per-run",
    ray: RaySettings | None = None,
) -> None:
    """Serves until SIGTERM/SIGINT; with `ray`, models run on that Ray cluster's replicas.

    Raises:
        InvalidArgument: `auth=False` on an address that is not loopback; bad `ray`
            settings, or a registry the cluster's nodes cannot read.
        Unavailable: no Ray cluster at `ray.address`, or its replicas did not start.
    """
    if not auth and not is_loopback(host):
        raise InvalidArgument(f"--no-auth serves only on loopback (127.0.0.1), not on {host}")
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    backend = None
    if ray is not None:
        from .ray_backend import RayBackend

        backend = RayBackend.connect(registry, ray, isolation)
    try:
        app = create_app(
            registry,
            auth=auth,
            threads=threads,
            max_request_size=max_request_size,
            body_timeout=body_timeout,
            isolation=isolation,
            backend=backend,
        )
        _run(app, host, port, log_level)
    finally:
        if backend is not None:  # also when uvicorn never started (a port in use)
            backend.shutdown()


def _run(app: Starlette, host: str, port: int, log_level: str) -> None:
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        timeout_graceful_shutdown=30,
        # h11, whatever else is installed: its bound on a request's head is the one the
        # service documents and tests (httptools would be ~0.1 ms faster per request).
        http="h11",
        # A head still incomplete past 64 KiB: h11 drops the connection (never buffered);
        # one that arrived whole is answered 431 by the app (app.MAX_HEAD).
        h11_max_incomplete_event_size=64 * 1024,
        server_header=False,
    )
    # uvicorn re-raises the signal that stopped it once it has shut down, which with the
    # default disposition kills the process (exit -15 after a clean stop). A handler of
    # our own is what uvicorn restores and re-raises to: SIGTERM then ends in exit 0.
    server = uvicorn.Server(config)
    if threading.current_thread() is not threading.main_thread():
        server.run()  # uvicorn handles no signal there either
        return
    previous = signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        server.run()
    finally:
        signal.signal(signal.SIGTERM, previous)
