"""HTTP plumbing shared by the routes: the app's state, the caller, bodies read under a
cap while they stream, and errors as `{"error": message, "type": class}` with the status
the class carries."""

from __future__ import annotations

import contextlib
import gzip
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .. import errors
from ..errors import InvalidArgument, InvalidModel, WasmHostError
from ..registry.registry import Registry
from .auth import OPERATOR, Authenticator, Principal, bearer
from .deployments import Deployments
from .metrics import Metrics


class RequestTooLarge(InvalidArgument):
    """A request body over the route's cap (HTTP 413; its type says InvalidArgument)."""

    http_status = 413


class BodyTimeout(InvalidArgument):
    """A request body that did not arrive within the server's body timeout (HTTP 408)."""

    http_status = 408


class UploadTooLarge(InvalidModel):
    """An upload over the registry's `max_model_size` (HTTP 413; type InvalidModel, as
    `wasmhost model upload` says locally)."""

    http_status = 413


@dataclass
class State:
    """What every route reaches through `request.app.state.wasmhost`."""

    registry: Registry
    deployments: Deployments
    metrics: Metrics
    auth: bool
    max_request_size: int
    authenticator: Authenticator
    #: Seconds a request's body may take to arrive: a stalled client is cut off.
    body_timeout: float = 60.0
    stopping: bool = False


def state(request: Request) -> State:
    return request.app.state.wasmhost


async def caller(request: Request) -> Principal:
    """The request's principal. Raises Unauthorized."""
    s = state(request)
    if not s.auth:
        return OPERATOR
    secret = bearer(request.headers.get("authorization"))
    return s.authenticator.cached(secret) or await blocking(s, s.authenticator.lookup, secret)


async def blocking(s: State, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Runs a blocking call (the registry's database, a session) off the event loop."""
    return await anyio.to_thread.run_sync(
        lambda: fn(*args, **kwargs), limiter=s.deployments.limiter
    )


async def changing(s: State, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """`blocking` for a call that changes what names resolve to or who a token is (an
    upload, an alias, a delete, a revocation): the kept resolutions and tokens are dropped
    once it is done, so the change holds from this server's next request on (a change
    made by another process still takes up to their one-second TTL)."""
    try:
        return await blocking(s, fn, *args, **kwargs)
    finally:
        s.deployments.forget()
        s.authenticator.forget()


async def body(request: Request, cap: int) -> bytes:
    """The request's body, refused (413) as soon as it passes `cap` bytes: never buffered
    whole first. gzip and deflate bodies (tritonclient's compression) are inflated under
    the same cap."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > cap:
        raise RequestTooLarge(f"the request body ({declared} bytes) is over the cap of {cap}")
    chunks, size = [], 0
    with deadline(state(request)):
        async for chunk in request.stream():
            size += len(chunk)
            if size > cap:
                raise RequestTooLarge(f"the request body is over the cap of {cap} bytes")
            chunks.append(chunk)
    data = b"".join(chunks)
    encoding = request.headers.get("content-encoding", "").lower()
    if encoding in ("gzip", "deflate"):
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS)
        try:
            data = inflater.decompress(data, cap + 1)
        except zlib.error as e:
            raise InvalidArgument(f"the {encoding} body is damaged: {e}") from None
        if len(data) > cap or inflater.unconsumed_tail:
            raise RequestTooLarge(f"the inflated request body is over the cap of {cap} bytes")
    elif encoding not in ("", "identity"):
        raise InvalidArgument(f"unsupported Content-Encoding {encoding!r}")
    return data


@contextlib.contextmanager
def deadline(s: State) -> Iterator[None]:
    """Raises BodyTimeout when the body takes longer than the server's body timeout."""
    try:
        with anyio.fail_after(s.body_timeout):
            yield
    except TimeoutError:
        raise BodyTimeout(f"the request body did not arrive within {s.body_timeout:g} s") from None


def gzip_if_asked(request: Request, payload: bytes, headers: dict[str, str]) -> Response:
    accept = request.headers.get("accept-encoding", "")
    if "gzip" in accept and len(payload) > 1024:
        return Response(gzip.compress(payload, 1), headers=headers | {"content-encoding": "gzip"})
    return Response(payload, headers=headers)


def ok(doc: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(doc, status_code=status)


def error_response(error: WasmHostError) -> JSONResponse:
    headers = {"retry-after": "1"} if error.http_status in (429, 503) else None
    message = " ".join(str(error).split())[:2000]
    # The public class (of wasmhost.errors) it is: clients re-raise that one.
    public = next(c for c in type(error).__mro__ if c.__module__ == errors.__name__)
    return JSONResponse(
        {"error": message, "type": public.__name__},
        status_code=error.http_status,
        headers=headers,
    )


def page(request: Request, items: list[Any]) -> dict[str, Any]:
    """`?page=N&per_page=M` (1-based; 100 per page by default, at most 1000)."""
    try:
        number = int(request.query_params.get("page", "1"))
        per_page = int(request.query_params.get("per_page", "100"))
    except ValueError:
        raise InvalidArgument("page and per_page must be integers") from None
    if number < 1 or not 1 <= per_page <= 1000:
        raise InvalidArgument("page must be at least 1, per_page from 1 to 1000")
    start = (number - 1) * per_page
    return {
        "result": items[start : start + per_page],
        "page": number,
        "per_page": per_page,
        "total": len(items),
    }
