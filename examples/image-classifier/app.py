"""An image classifier on wasmhost: POST a photo, get its ImageNet class back.

The analogue of the Worker in Cloudflare's Constellation demo, as a small ASGI app
(Starlette on uvicorn):

    python examples/image-classifier/app.py --port 8080
    curl -F file=@images/coffee.png http://127.0.0.1:8080/
    {"name": "espresso", "probability": 0.9567, "top5": [{"name": "espresso", ...}, ...]}

By default the model runs in this process, sandboxed, from the local registry
(`WASMHOST_HOME`): on first start the app creates the project `image-classifier` and adds
`catalog/imagenet-efficientnet-lite0` to it as model `classifier` (by reference: no bytes
are copied), then runs `image-classifier/classifier` with `Registry.session`.

With `--server URL --token T` it calls a running `wasmhost serve` instead
(`wasmhost.Client.infer`), as a Worker calls Constellation. The model is deployed there
first, on the server's host (the service's API cannot add a catalog model by reference):

    wasmhost project create image-classifier
    wasmhost model upload image-classifier classifier catalog/imagenet-efficientnet-lite0
    wasmhost token create classifier-app --role run --project image-classifier

A photo is a multipart field `file` (or the raw body, with an image Content-Type): PNG,
JPEG, WebP, GIF, BMP or TIFF of any size and mode (RGBA, greyscale, palette), its EXIF
orientation applied. Preprocessing is the catalog entry's `preprocess` spec, done by
`wasmhost.serve.images` (the service's own). Bodies over `--max-bytes` are refused (413)
while they stream, images over `--max-pixels` from their header (400), before any pixel
is decoded; what is not an image is a 400. Every error is `{"error": "one line"}`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

import wasmhost
from wasmhost.errors import AlreadyExists, InvalidInput, NotFound, WasmHostError
from wasmhost.registry import catalog
from wasmhost.registry.records import ModelVersion
from wasmhost.serve import images

PROJECT = "image-classifier"
MODEL = "classifier"
REFERENCE = f"{PROJECT}/{MODEL}"
ENTRY = "imagenet-efficientnet-lite0"
#: Largest photo accepted, in bytes (the multipart envelope may add `_ENVELOPE`).
MAX_BYTES = 16 * 1024**2
#: Largest photo decoded, in pixels (width x height, read from the header).
MAX_PIXELS = images.MAX_PIXELS
_ENVELOPE = 64 * 1024
TOP = 5

log = logging.getLogger("image-classifier")

USAGE = "POST an image: curl -F file=@photo.jpg {url} (PNG, JPEG, WebP, GIF, BMP, TIFF)\n"
FORM = """<!doctype html><title>wasmhost image classifier</title>
<form method="post" enctype="multipart/form-data"><input type="file" name="file"
accept="image/*" required> <button>Classify</button></form>
"""


class Refused(Exception):
    """A request answered with `status` and `{"error": message}`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _one_line(text: object) -> str:
    return " ".join(str(text).split())[:300] or "error"


def _error(status: int, message: object) -> JSONResponse:
    return JSONResponse({"error": _one_line(message)}, status_code=status)


# ---- the model: in this process, or on a wasmhost serve ------------------------------


def setup(registry: wasmhost.Registry) -> ModelVersion:
    """The project's model, set up if absent: `catalog/ENTRY` added by reference."""
    try:
        registry.project(PROJECT)
    except NotFound:
        with contextlib.suppress(AlreadyExists):  # another process made it meanwhile
            registry.create_project(PROJECT)
    try:
        return registry.version(REFERENCE)  # its newest ready version
    except NotFound:
        return registry.add_from_catalog(PROJECT, MODEL, f"catalog/{ENTRY}")


@dataclass
class Classifier:
    """What the routes need: the preprocessing spec, the labels, and `scores(batch)`,
    the model's one row of probabilities (or logits) for a preprocessed image."""

    spec: dict[str, Any]
    labels: list[str]
    scores: Callable[[np.ndarray], np.ndarray]
    close: Callable[[], None]
    where: str


def _io(version: Any, spec: dict[str, Any]) -> tuple[str, str]:
    """(input, output): the spec's input (else the first), `probabilities` if the model
    has it (else its first output, logits, softmaxed by `images.probabilities`)."""
    outputs = [t.name for t in version.outputs]
    return (
        spec.get("input") or version.inputs[0].name,
        "probabilities" if "probabilities" in outputs else outputs[0],
    )


def _check(version: ModelVersion, entry: catalog.CatalogEntry) -> None:
    if version.sha256 != entry.sha256:
        log.warning(
            "%s is not catalog/%s: its labels and preprocessing are used all the same",
            version.reference,
            entry.name,
        )


def local(registry: wasmhost.Registry | None = None) -> Classifier:
    """The model in this process, from `registry` (default: the local one), set up first."""
    entry = catalog.entry(ENTRY)
    own = registry is None
    registry = registry or wasmhost.Registry()
    try:
        version = setup(registry)
        _check(version, entry)
        session = registry.session(version.reference)
    except BaseException:
        if own:
            registry.close()
        raise
    feed, output = _io(version, entry.preprocess)

    def scores(batch: np.ndarray) -> np.ndarray:
        return session.run([output], {feed: batch})[0]

    def close() -> None:
        session.close()
        if own:
            registry.close()

    where = f"{version.reference}, sandboxed in this process"
    return Classifier(entry.preprocess, entry.labels, scores, close, where)


def remote(url: str, token: str | None) -> Classifier:
    """The model on a `wasmhost serve` at `url`: checked to be there, run by `infer`."""
    entry = catalog.entry(ENTRY)
    client = wasmhost.Client(url, token)
    try:
        version = client.version(REFERENCE)
    except NotFound:
        client.close()
        raise NotFound(
            f"{url} has no model {REFERENCE}: on the server's host, run `wasmhost model "
            f"upload {PROJECT} {MODEL} catalog/{ENTRY}` (after `wasmhost project create "
            f"{PROJECT}`)"
        ) from None
    except BaseException:
        client.close()
        raise
    _check(version, entry)
    feed, output = _io(version, entry.preprocess)

    def scores(batch: np.ndarray) -> np.ndarray:
        return client.infer(REFERENCE, {feed: batch}, outputs=[output])[output]

    where = f"{version.reference} on {url}"
    return Classifier(entry.preprocess, entry.labels, scores, client.close, where)


# ---- the routes ---------------------------------------------------------------------


async def _body(request: Request, cap: int) -> bytes:
    """The request's body, refused (413) as soon as it passes `cap` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > cap):
        raise Refused(413, f"the request is over the cap of {cap} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            raise Refused(413, f"the request is over the cap of {cap} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _photo(request: Request, max_bytes: int) -> bytes:
    """The posted photo's bytes: multipart field `file`, or a raw image body."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        body = await _body(request, max_bytes + _ENVELOPE)
        sent = False

        async def replay() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        try:
            form = await Request(request.scope, replay).form(max_files=1, max_fields=8)
        except Exception as e:  # python-multipart's and Starlette's parse errors
            raise Refused(400, f"a malformed multipart body: {e}") from None
        try:
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                raise Refused(400, "no file: send the image as the multipart field `file`")
            data = await upload.read()
        finally:
            await form.close()
    elif kind.startswith("image/") or kind == "application/octet-stream":
        data = await _body(request, max_bytes)
    else:
        raise Refused(400, "send the image as multipart/form-data field `file` (curl -F)")
    if len(data) > max_bytes:
        raise Refused(413, f"the image is over the cap of {max_bytes} bytes")
    if not data:
        raise Refused(400, "the file is empty")
    return data


def answer(probabilities: np.ndarray, labels: list[str]) -> dict[str, Any]:
    """`{"name", "probability", "top5"}` of one row of probabilities (rounded to 4 places,
    as the catalog's `metrics.examples` has them)."""
    top = [
        {"name": c["label"], "probability": round(c["probability"], 4)}
        for c in images.top_k(probabilities, labels, TOP)
    ]
    return {"name": top[0]["name"], "probability": top[0]["probability"], "top5": top}


def create_app(
    classifier: Classifier,
    *,
    max_bytes: int = MAX_BYTES,
    max_pixels: int = MAX_PIXELS,
    concurrency: int = 2,
) -> Starlette:
    """The app over `classifier` (closed when the app stops). At most `concurrency`
    photos are decoded and classified at once; others wait their turn."""
    gate = asyncio.Semaphore(concurrency)

    def classify(data: bytes) -> dict[str, Any]:
        try:
            batch = images.preprocess(data, classifier.spec, max_pixels=max_pixels)
        except WasmHostError:
            raise
        except Exception as e:  # Pillow on hostile bytes (a malformed EXIF block, ...)
            raise InvalidInput(f"the image is damaged: {type(e).__name__}: {e}") from None
        probabilities = images.probabilities(classifier.scores(batch))
        return answer(probabilities, classifier.labels)

    async def usage(request: Request) -> Response:
        if "text/html" in request.headers.get("accept", ""):
            return HTMLResponse(FORM)
        return PlainTextResponse(USAGE.format(url=str(request.url)))

    async def post(request: Request) -> Response:
        try:
            data = await _photo(request, max_bytes)
            async with gate:
                return JSONResponse(await run_in_threadpool(classify, data))
        except Refused as e:
            return _error(e.status, e)
        except InvalidInput as e:  # not an image, damaged, or over max_pixels
            return _error(400, e)
        except WasmHostError as e:  # the model's run, or the server, failed
            log.warning("classification failed: %s", _one_line(e))
            return _error(e.http_status if e.http_status != 400 else 500, e)
        except ClientDisconnect:
            return Response(status_code=400)

    async def http_error(request: Request, e: Exception) -> Response:
        assert isinstance(e, HTTPException)
        return _error(e.status_code, e.detail)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            classifier.close()

    return Starlette(
        routes=[Route("/", usage, methods=["GET"]), Route("/", post, methods=["POST"])],
        exception_handlers={HTTPException: http_error},
        lifespan=lifespan,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8080, help="port to listen on")
    parser.add_argument("--server", metavar="URL", help="run the model on this wasmhost serve")
    parser.add_argument("--token", metavar="T", help="the server's bearer token (run role)")
    parser.add_argument("--max-bytes", type=int, default=MAX_BYTES, metavar="N")
    parser.add_argument("--max-pixels", type=int, default=MAX_PIXELS, metavar="N")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # no line per request
    try:
        classifier = remote(args.server, args.token) if args.server else local()
    except WasmHostError as e:
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return 1
    import uvicorn

    log.info("http://%s:%d/ classifies with %s", args.host, args.port, classifier.where)
    app = create_app(classifier, max_bytes=args.max_bytes, max_pixels=args.max_pixels)
    # Beyond 32 connections at once, 503 at once: bodies are buffered (up to --max-bytes).
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", limit_concurrency=32)
    return 0


if __name__ == "__main__":
    sys.exit(main())
