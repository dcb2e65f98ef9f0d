"""The launch post's demo, examples/image-classifier/app.py: the catalog's ImageNet
classifier behind `POST /`, in this process (the local registry) and through a live
`wasmhost serve` (--server), on the sample photos in images/ and on what users really send:
RGBA, greyscale, palette and EXIF-rotated photos, files that are not images, and files too
big to decode."""

from __future__ import annotations

import asyncio
import importlib.util
import io
import json
import struct
import subprocess
import sys
import zlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image, ImageFile
from serve_support import LiveServer, start_server, wasmhost

from wasmhost.errors import NotFound
from wasmhost.registry import catalog
from wasmhost.serve import images

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT / "images"
APP = ROOT / "examples" / "image-classifier" / "app.py"
ENTRY = catalog.entry("imagenet-efficientnet-lite0")
CATS = {"tiger cat", "Egyptian cat", "tabby"}


def _load_app() -> Any:
    spec = importlib.util.spec_from_file_location("image_classifier_app", APP)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


app = _load_app()


class AppClient:
    """The app in this process, through httpx's ASGI transport, on an event loop of its
    own (no lifespan: whoever made the classifier closes it)."""

    def __init__(self, asgi: Any) -> None:
        self.loop = asyncio.new_event_loop()
        transport = httpx.ASGITransport(app=asgi)
        self.http = httpx.AsyncClient(transport=transport, base_url="http://demo", timeout=120)

    def request(self, method: str, url: str = "/", **kwargs: Any) -> httpx.Response:
        return self.loop.run_until_complete(self.http.request(method, url, **kwargs))

    def get(self, url: str = "/", **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str = "/", **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def put(self, url: str = "/", **kwargs: Any) -> httpx.Response:
        return self.request("PUT", url, **kwargs)

    def close(self) -> None:
        self.loop.run_until_complete(self.http.aclose())
        self.loop.close()

    def __enter__(self) -> AppClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def photo(name: str) -> bytes:
    return (IMAGES / name).read_bytes()


def encode(image: Image.Image, fmt: str = "PNG", **kwargs: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **kwargs)
    return out.getvalue()


def classify(client: AppClient, data: bytes, name: str = "photo") -> dict[str, Any]:
    response = client.post("/", files={"file": (name, data)})
    assert response.status_code == 200, response.text
    return response.json()


def refusal(response: Any, status: int, *words: str) -> str:
    """The error of a refused request: `status`, `{"error": one line}` naming `words`."""
    assert response.status_code == status, response.text
    doc = response.json()
    assert set(doc) == {"error"}, doc
    message = doc["error"]
    assert message and "\n" not in message and "Traceback" not in message, message
    for word in words:
        assert word in message, message
    return message


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh local registry as WASMHOST_HOME (and no WASMHOST_REGISTRY)."""
    path = tmp_path_factory.mktemp("demo") / "home"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WASMHOST_HOME", str(path))
        mp.delenv("WASMHOST_REGISTRY", raising=False)
        mp.delenv("WASMHOST_BLOBS", raising=False)
        yield path


@pytest.fixture(scope="module")
def classifier(home: Path) -> Iterator[Any]:
    found = app.local()
    try:
        yield found
    finally:
        found.close()


@pytest.fixture(scope="module")
def client(classifier: Any) -> Iterator[AppClient]:
    found = AppClient(app.create_app(classifier))
    try:
        yield found
    finally:
        found.close()


# ---- preprocessing -------------------------------------------------------------------


@pytest.mark.parametrize("index,name", [(0, "chelsea.png"), (1, "coffee.png")])
def test_preprocessing_reproduces_the_catalog_reference(index: int, name: str) -> None:
    inputs, _ = ENTRY.reference_case()
    got = images.preprocess(photo(name), ENTRY.preprocess)
    expected = inputs["image"][index : index + 1]
    assert got.shape == expected.shape == (1, 3, 224, 224) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)


# ---- local mode ----------------------------------------------------------------------


def test_first_start_sets_the_model_up_once(home: Path, classifier: Any) -> None:
    import wasmhost

    with wasmhost.Registry() as registry:
        version = registry.version(app.REFERENCE)
        assert version.catalog == ENTRY.name and version.sha256 == ENTRY.sha256
        # A second start finds it: no new version, no copy of the bytes in the blob store.
        assert app.setup(registry).id == version.id
        assert [v.version for v in registry.versions(app.REFERENCE)] == [1]
    assert not any(p.is_file() for p in (home / "blobs").rglob("*"))


@pytest.mark.parametrize("name", sorted(ENTRY.metrics["examples"]))
def test_sample_photos(client: AppClient, name: str) -> None:
    """Every sample photo: the catalog's top-5 (onnxruntime's), posted twice alike."""
    first = classify(client, photo(Path(name).name), Path(name).name)
    assert classify(client, photo(Path(name).name)) == first
    expected = ENTRY.metrics["examples"][name]
    assert [c["name"] for c in first["top5"]] == [c["label"] for c in expected]
    for got, want in zip(first["top5"], expected, strict=True):
        assert abs(got["probability"] - want["probability"]) <= 2e-4
    assert (first["name"], first["probability"]) == (
        first["top5"][0]["name"],
        first["top5"][0]["probability"],
    )
    assert set(first) == {"name", "probability", "top5"}
    if name == "images/chelsea.png":
        assert first["name"] in CATS
    if name == "images/coffee.png":
        assert first["name"] == "espresso"


def test_usage(client: AppClient) -> None:
    text = client.get("/")
    assert text.status_code == 200 and "curl -F file=@" in text.text
    assert text.text.count("\n") == 1
    html = client.get("/", headers={"accept": "text/html"})
    assert html.status_code == 200 and 'type="file" name="file"' in html.text


def test_a_raw_body_is_a_photo_too(client: AppClient) -> None:
    response = client.post("/", content=photo("coffee.png"), headers={"content-type": "image/png"})
    assert response.status_code == 200 and response.json()["name"] == "espresso"


# ---- what users send -------------------------------------------------------------------


def test_modes_classify_like_the_original(client: AppClient) -> None:
    cat = Image.open(IMAGES / "chelsea.png")
    original = classify(client, photo("chelsea.png"))
    # Alpha is dropped, not composited: any alpha gives the original's answer exactly.
    rgba = cat.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(cat.size))
    assert classify(client, encode(rgba)) == original
    assert classify(client, photo("chelsea-rgba.png")) == original
    # Greyscale (one channel, replicated), a 256-colour palette, greyscale with alpha: a
    # cat still, the three cats on top (which of them first may change: the original's
    # first two are 0.379 and 0.375).
    for image in (
        Image.open(IMAGES / "chelsea-gray.png"),
        cat.convert("P", palette=Image.Palette.ADAPTIVE, colors=256),
        cat.convert("LA"),
    ):
        got = classify(client, encode(image))
        assert got["name"] in CATS, (image.mode, got)
        assert len({c["name"] for c in got["top5"]} & CATS) == 3, (image.mode, got)


def test_exif_rotated_jpeg_is_classified_upright(client: AppClient) -> None:
    """A phone's photo: pixels stored sideways, EXIF Orientation 6 (rotate 90 degrees
    clockwise to show). The app must classify it as shown, upright."""
    cat = Image.open(IMAGES / "chelsea.png").convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6
    sideways = cat.transpose(Image.Transpose.ROTATE_90)  # 90 degrees counter-clockwise
    jpeg = encode(sideways, "JPEG", quality=95, exif=exif.tobytes())
    with Image.open(io.BytesIO(jpeg)) as check:
        assert check.size == (cat.height, cat.width)
        assert check.getexif()[0x0112] == 6
        from PIL import ImageOps

        upright = ImageOps.exif_transpose(check)
        assert upright.size == cat.size
        # The restored pixels are the cat's, but for JPEG's loss.
        diff = np.abs(np.asarray(upright, np.int16) - np.asarray(cat, np.int16))
        assert diff.mean() < 3
        as_shown = classify(client, encode(upright))  # the same pixels, losslessly
        stored = encode(check.convert("RGB"))  # the sideways pixels, no tag
    got = classify(client, jpeg, "phone.jpg")
    assert got == as_shown
    assert got["name"] in CATS
    assert classify(client, stored) != got  # the orientation was applied, not ignored


@pytest.mark.parametrize(
    "data,words",
    [
        ((ROOT / "README.md").read_bytes(), ["not an image"]),
        (b"\x00" * 1000, ["not an image"]),
        (photo("chelsea.png")[:5000], ["damaged"]),  # a PNG cut short
    ],
    ids=["text", "zeros", "truncated-png"],
)
def test_not_an_image_is_a_400(client: AppClient, data: bytes, words: list[str]) -> None:
    refusal(client.post("/", files={"file": ("x.png", data)}), 400, *words)


def test_a_malformed_exif_block_is_a_400(client: AppClient) -> None:
    """EXIF whose XPosition (a RATIONAL tag) holds text: Pillow reads it, and raises
    TypeError when exif_transpose writes the block back without its Orientation."""
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "Maker"  # Make, ASCII
    block = exif.tobytes()
    make, xposition = b"\x01\x0f\x00\x02", b"\x01\x1e\x00\x02"  # tag, type 2 (ASCII)
    if block[6:8] == b"II":  # little-endian
        make, xposition = make[1::-1] + make[:1:-1], xposition[1::-1] + xposition[:1:-1]
    assert block.count(make) == 1
    block = block.replace(make, xposition)
    cat = Image.open(IMAGES / "chelsea.png").convert("RGB").resize((64, 48))
    refusal(client.post("/", files={"file": ("x.jpg", encode(cat, "JPEG", exif=block))}), 400)


def test_requests_without_a_photo(client: AppClient) -> None:
    refusal(client.post("/", files={"file": ("x.png", b"")}), 400, "empty")
    refusal(client.post("/", files={"other": ("x.png", photo("coffee.png"))}), 400, "file")
    refusal(client.post("/", data={"file": "a string"}), 400, "file")
    refusal(client.post("/", content=b"{}", headers={"content-type": "application/json"}), 400)
    refusal(
        client.post("/", content=b"--x\r\n", headers={"content-type": "multipart/form-data"}),
        400,
    )
    refusal(client.put("/"), 405)


def _boom(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("decoded although it should have been refused first")


def test_an_oversized_file_is_refused_before_decoding(
    classifier: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = photo("coffee.png")
    monkeypatch.setattr(images, "preprocess", _boom)
    monkeypatch.setattr(ImageFile.ImageFile, "load", _boom)

    # Streamed (chunked, no Content-Length): refused once it passes the cap.
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(0, len(data) + 2 * app._ENVELOPE, 65536):
            yield b"\x00" * 65536

    with AppClient(app.create_app(classifier, max_bytes=len(data) - 1)) as small:
        refusal(small.post("/", files={"file": ("coffee.png", data)}), 413, "cap")
        refusal(small.post("/", content=data, headers={"content-type": "image/png"}), 413, "cap")
        response = small.post(
            "/", content=chunks(), headers={"content-type": "multipart/form-data; boundary=b"}
        )
        refusal(response, 413, "cap")


def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares `width` x `height` (its pixel data is one empty chunk): what a
    decompression bomb's header looks like, without the bomb."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    "size", [(8000, 6000), (50_000, 50_000)], ids=["over-the-cap", "decompression-bomb"]
)
def test_too_many_pixels_are_refused_from_the_header(
    client: AppClient, monkeypatch: pytest.MonkeyPatch, size: tuple[int, int]
) -> None:
    """48 megapixels (over the app's 40) and 2.5 gigapixels (over Pillow's own
    MAX_IMAGE_PIXELS: DecompressionBombError): refused before a pixel is decoded."""
    assert size[0] * size[1] > app.MAX_PIXELS
    monkeypatch.setattr(ImageFile.ImageFile, "load", _boom)
    refusal(client.post("/", files={"file": ("bomb.png", _png_header(*size))}), 400)


def test_max_pixels_is_the_apps(classifier: Any) -> None:
    smaller = Image.open(IMAGES / "chelsea.png").resize((300, 200))
    with AppClient(app.create_app(classifier, max_pixels=451 * 300 - 1)) as tight:
        refusal(tight.post("/", files={"file": ("c.png", photo("chelsea.png"))}), 400, "pixels")
        assert classify(tight, encode(smaller))["name"] in CATS


# ---- server mode -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = start_server(tmp_path_factory.mktemp("demo-serve") / "home")
    try:
        yield live
    finally:
        live.stop()


def test_server_mode_answers_like_local_mode(client: AppClient, server: LiveServer) -> None:
    # Before the model is deployed, the app refuses to start, saying what to run.
    with pytest.raises(NotFound, match="wasmhost model upload image-classifier classifier"):
        app.remote(server.url, server.admin)
    # The operator deploys it on the server's host and makes the app a run token.
    wasmhost(server.home, "project", "create", app.PROJECT)
    deployed = wasmhost(
        server.home, "model", "upload", app.PROJECT, app.MODEL, f"catalog/{app.ENTRY}", "--json"
    )
    assert json.loads(deployed.stdout)["catalog"] == app.ENTRY
    token = wasmhost(
        server.home, "token", "create", "classifier-app", "--role", "run", "--project", app.PROJECT
    ).stdout.split()[-1]
    remote = app.remote(server.url, token)
    try:
        assert server.url in remote.where
        with AppClient(app.create_app(remote)) as through_server:
            for name in ("chelsea.png", "coffee.png", "rocket.jpg"):
                local = classify(client, photo(name))
                got = classify(through_server, photo(name))
                assert got == local, name
            refusal(through_server.post("/", files={"file": ("x", b"not an image")}), 400)
    finally:
        remote.close()
    # A wrong token: the app does not start.
    with pytest.raises(Exception, match="token"):
        app.remote(server.url, "wh_" + "x" * 40)


def test_command_line_refusal_is_one_line() -> None:
    """`app.py --server` at a server that is not there: exit 1, one line, no traceback."""
    proc = subprocess.run(
        [sys.executable, str(APP), "--server", "http://127.0.0.1:9", "--token", "wh_x"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
