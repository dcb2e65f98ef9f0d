"""The dashboard: `wasmhost serve`'s page at `/` in a real browser (Debian's chromium,
headless, driven by selenium through /usr/bin/chromedriver), its three routes over HTTP
(whoami, stats, classify), and the modules behind them (serve.images, serve.stats).

The browser tests save a screenshot of each page to tests/artifacts/dashboard/ (not kept
in git). Without chromium they skip with the reason -- or fail, under
WASMHOST_TEST_SERVERS=required (CI).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnx
import pytest
from conftest import f32, make_model
from onnx import helper
from PIL import Image
from serve_support import LiveServer, start_server, wasmhost
from servers import ServerUnavailable, unless_unavailable

from wasmhost.errors import InvalidArgument, InvalidInput, InvalidModel
from wasmhost.registry import catalog
from wasmhost.serve import images
from wasmhost.serve.stats import Window, percentile

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(__file__).resolve().parent / "artifacts" / "dashboard"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
IMAGENET = "imagenet-efficientnet-lite0"
CAT = ROOT / "images" / "chelsea.png"
IRIS_FILE = catalog.entry("iris-classifier").path
COLOURS = ["red", "green", "blue"]


# -- serve.images -------------------------------------------------------------------------


def png(colour: tuple[int, ...], size: tuple[int, int] = (40, 30), mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, colour).save(out, "PNG")
    return out.getvalue()


def test_preprocess_matches_the_catalog_examples():
    """The catalog's ImageNet entry lists the top 5 onnxruntime gives on each photo of
    images/ after its builder's preprocessing: ours must give the same input."""
    import onnxruntime as ort

    entry = catalog.entry(IMAGENET)
    session = ort.InferenceSession(str(entry.path), providers=["CPUExecutionProvider"])
    assert entry.metrics["examples"]
    for name, expected in entry.metrics["examples"].items():
        batch = images.preprocess((ROOT / name).read_bytes(), entry.preprocess)
        assert batch.shape == (1, 3, 224, 224) and batch.dtype == np.float32
        logits = session.run(["logits"], {"image": batch})[0]
        top = images.top_k(images.probabilities(logits), entry.labels, 5)
        assert [c["label"] for c in top] == [c["label"] for c in expected], name
        got = [c["probability"] for c in top]
        np.testing.assert_allclose(got, [c["probability"] for c in expected], atol=6e-5)


def test_preprocess_layouts_colours_and_sizes():
    spec = {"size": [4, 6], "scale": 1.0, "layout": "NHWC", "color": "BGR", "dtype": "uint8"}
    out = images.preprocess(png((10, 20, 30)), spec)
    assert out.shape == (1, 4, 6, 3) and out.dtype == np.uint8
    assert out[0, 0, 0].tolist() == [30, 20, 10]
    grey = images.preprocess(png((255, 255, 255)), {"size": 5, "color": "L"})
    assert grey.shape == (1, 1, 5, 5) and np.allclose(grey, 1.0)
    # Alpha is dropped, not composited; a resize_shorter + centre crop of a wide image.
    spec = {"resize_shorter": 8, "center_crop": [8, 8], "mean": 0.5, "std": 0.5}
    out = images.preprocess(png((255, 0, 0, 0), (30, 10), "RGBA"), spec)
    assert out.shape == (1, 3, 8, 8)
    assert np.allclose(out[0, 0], 1.0) and np.allclose(out[0, 1:], -1.0)


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ([1], "JSON object"),
        ({"size": [224, 224], "rotate": 90}, "unknown preprocess key(s): rotate"),
        ({}, "center_crop or size"),
        ({"size": 224, "center_crop": 224}, "center_crop or size"),
        ({"center_crop": 224, "resize_shorter": 100}, "resize_shorter"),
        ({"size": [0, 3]}, "size must be"),
        ({"size": 3, "mean": [1, 2]}, "mean must be 3"),
        ({"size": 3, "std": [1, 0, 1]}, "std must be 3"),
        ({"size": 3, "resample": "nearest"}, "bilinear"),
        ({"size": 3, "input_range": [0, 1]}, "input_range"),
        ({"size": 3, "layout": "CHW"}, "layout"),
        ({"size": 3, "scale": float("nan")}, "scale"),
    ],
)
def test_specs_it_cannot_follow_exactly_are_refused(spec, words):
    with pytest.raises(InvalidArgument, match=None) as raised:
        images.check_spec(spec)
    assert words in str(raised.value)


def test_images_refused_before_decoding():
    spec = {"size": 8}
    with pytest.raises(InvalidInput, match="known format"):
        images.preprocess(b"not an image", spec)
    with pytest.raises(InvalidInput, match="damaged"):
        images.preprocess(png((1, 2, 3))[:60], spec)
    # Over the pixel cap (below Pillow's own MAX_IMAGE_PIXELS): refused from the header,
    # a 49-megapixel PNG of 50 KiB.
    bomb = io.BytesIO()
    Image.new("L", (7_000, 7_000)).save(bomb, "PNG")
    assert len(bomb.getvalue()) < 100_000 and images.MAX_PIXELS < Image.MAX_IMAGE_PIXELS
    started = time.perf_counter()
    with pytest.raises(InvalidInput, match="over the cap"):
        images.preprocess(bomb.getvalue(), spec)
    assert time.perf_counter() - started < 0.5
    with pytest.raises(InvalidInput, match="over the cap"):
        images.preprocess(png((0, 0, 0)), spec, max_pixels=100)


def test_probabilities_and_top_k():
    probs = images.probabilities([2.0, 1.0, 0.1])
    assert probs.sum() == pytest.approx(1) and probs.argmax() == 0
    kept = images.probabilities([0.2, 0.7, 0.1])  # already probabilities: as they are
    assert kept.tolist() == [0.2, 0.7, 0.1]
    top = images.top_k(kept, ["a", "b"], 5)
    assert [(c["index"], c["label"]) for c in top] == [(1, "b"), (0, "a"), (2, "class 2")]
    # Logits that happen to look like probabilities are softmaxed when known to be logits.
    assert images.probabilities([0.2, 0.7, 0.1], normalized=False).tolist() != [0.2, 0.7, 0.1]
    assert images.probabilities([3.0, 1.0], normalized=True).tolist() == [3.0, 1.0]
    with pytest.raises(InvalidModel):  # the model's answer is at fault, not the caller
        images.probabilities([np.nan, 1.0])


# -- serve.stats --------------------------------------------------------------------------


def test_window_counts_percentiles_traps_and_bounds():
    now = [1000.0]
    window = Window(size=100, max_models=2, clock=lambda: now[0])
    for i in range(150):
        window.record("p.m", "p", (i + 1) / 1000)
    window.record("p.m", "p", 0.5, "trap:oom")
    window.record("p.m", "p", 0.5, "error:invalid_input")
    now[0] += 25
    window.record("q.m", "q", 0.002, "timeout")
    (m,) = window.snapshot(lambda project: project == "p")
    assert m["requests"] == 152 and m["errors"] == 2 and m["window"] == 100
    assert m["traps"] == {"trap:oom": 1}
    assert m["p50_ms"] == 102.0 and m["p99_ms"] == 500.0  # 53..150 ms, 500, 500
    assert len(m["latency_ms"]) == 60
    counts = m["per_interval"]["counts"]
    assert len(counts) == 30 and counts[-3] == 100 and sum(counts) == 100
    window.record("r.m", "r", 0.001)  # a third model: the least recently run one goes
    assert [s["model"] for s in window.snapshot(lambda p: True)] == ["q.m", "r.m"]
    assert percentile([], 50) is None and percentile([3.0], 99) == 3.0


# -- a live server ------------------------------------------------------------------------


def colour_model(metadata: dict[str, str]) -> bytes:
    """A tiny 'image classifier': the mean of each channel of an 8 x 8 image, as scores of
    red, green and blue; `metadata` becomes its ONNX metadata properties."""
    model = make_model(
        [
            helper.make_node("GlobalAveragePool", ["pixels"], ["mean"]),
            helper.make_node("Flatten", ["mean"], ["scores"]),
        ],
        [f32("pixels", [1, 3, 8, 8])],
        [f32("scores", [1, 3])],
    )
    parsed = onnx.load_model_from_string(model)
    for key, value in metadata.items():
        parsed.metadata_props.add(key=key, value=value)
    return parsed.SerializeToString()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = start_server(tmp_path_factory.mktemp("dashboard") / "home")
    try:
        yield live
    finally:
        live.stop()
        log = live.log.read_text()
        assert "Traceback" not in log and "internal error" not in log, log[-4000:]


@pytest.fixture(scope="module")
def world(server: LiveServer) -> dict[str, str]:
    """Project `vision` with `iris` (two versions, alias production) and `colours` (an
    image classifier by its ONNX metadata); a run token bound to it."""
    with server.client() as admin:
        assert admin.post("/api/v1/projects", json={"name": "vision"}).status_code == 201
        for _ in range(2):
            files = {"file": ("iris.onnx", IRIS_FILE.read_bytes())}
            r = admin.post("/api/v1/projects/vision/models", files=files, data={"name": "iris"})
            assert r.status_code == 201, r.text
        r = admin.put("/api/v1/projects/vision/models/iris/aliases/production", json={"version": 1})
        assert r.status_code == 200, r.text
        meta = {"preprocess": json.dumps({"size": 8}), "labels": json.dumps(COLOURS)}
        files = {"file": ("c.onnx", colour_model(meta))}
        r = admin.post("/api/v1/projects/vision/models", files=files, data={"name": "colours"})
        assert r.status_code == 201, r.text
        files = {"file": ("c.onnx", colour_model({"preprocess": "{not json"}))}
        r = admin.post("/api/v1/projects/vision/models", files=files, data={"name": "broken"})
        assert r.status_code == 201, r.text
        r = admin.post("/api/v1/projects", json={"name": "elsewhere"})
        assert r.status_code == 201, r.text
        # `tight`: its iris runs out of fuel on every run (a trap, by kind "fuel").
        assert admin.post("/api/v1/projects", json={"name": "tight"}).status_code == 201
        files = {"file": ("iris.onnx", IRIS_FILE.read_bytes())}
        r = admin.post("/api/v1/projects/tight/models", files=files, data={"name": "iris"})
        assert r.status_code == 201, r.text
        r = admin.patch("/api/v1/projects/tight", json={"limits": {"fuel": 2000}})
        assert r.status_code == 200, r.text
        r = admin.post(
            "/api/v1/tokens", json={"name": "viewer", "role": "run", "project": "vision"}
        )
        assert r.status_code == 201, r.text
        return {"run": r.json()["token"]}


def test_page_and_files_need_no_token_and_load_nothing_from_elsewhere(server):
    page = httpx.get(server.url + "/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy
    for name in ("app.js", "style.css"):
        r = httpx.get(f"{server.url}/static/{name}")
        assert r.status_code == 200 and r.text
    text = page.text + httpx.get(server.url + "/static/app.js").text
    text += httpx.get(server.url + "/static/style.css").text
    assert "http://" not in text.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in text and "//fonts" not in text and "@import" not in text
    assert httpx.get(server.url + "/static/nothing.js").status_code == 404


def test_whoami(server, world):
    assert httpx.get(server.url + "/api/v1/whoami").status_code == 401
    r = httpx.get(server.url + "/api/v1/whoami", headers=server.headers(world["run"]))
    assert r.json() == {"name": "viewer", "role": "run", "project": "vision", "auth": True}
    r = httpx.get(server.url + "/api/v1/whoami", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401 and r.json()["type"] == "Unauthorized"


def test_classify_an_uploaded_classifier_by_its_onnx_metadata(server, world):
    with server.client(world["run"]) as run:
        info = run.get("/api/v1/classify/vision/colours").json()
        assert info["image"] and info["labels"] == COLOURS and info["from"] == "onnx metadata"
        r = run.post(
            "/api/v1/classify/vision/colours", files={"image": ("b.png", png((0, 0, 255)))}
        )
        assert r.status_code == 200, r.text
        doc = r.json()
        assert doc["model"] == "vision.colours" and doc["output"] == "scores"
        assert [c["label"] for c in doc["top"]] == ["blue", "red", "green"]
        assert sum(c["probability"] for c in doc["top"]) == pytest.approx(1)
        # A raw image/* body, and ?k=
        r = run.post(
            "/api/v1/classify/vision/colours?k=1",
            content=png((0, 255, 0)),
            headers={"content-type": "image/png"},
        )
        assert [c["label"] for c in r.json()["top"]] == ["green"]
        # Not an image classifier; broken metadata; another project's model.
        assert run.get("/api/v1/classify/vision/iris").json()["image"] is False
        r = run.post("/api/v1/classify/vision/iris", files={"image": ("b.png", png((0, 0, 0)))})
        assert r.status_code == 400 and "not an image classifier" in r.json()["error"]
        r = run.get("/api/v1/classify/vision/broken")
        assert r.status_code == 422 and r.json()["type"] == "InvalidModel"
        assert run.get("/api/v1/classify/elsewhere/colours").status_code == 404


def test_classify_a_project_version_added_from_the_catalog(server, world):
    """A catalog model added to a project by reference classifies by its entry's spec."""
    wasmhost(server.home, "model", "upload", "vision", "photos", f"catalog/{IMAGENET}")
    with server.client(world["run"]) as run:
        info = run.get("/api/v1/classify/vision/photos").json()
        assert info["image"] and info["from"] == "catalog" and info["version"] == "1"
        coffee = {"image": ("coffee.png", (ROOT / "images" / "coffee.png").read_bytes())}
        r = run.post("/api/v1/classify/vision/photos?k=2", files=coffee)
    assert r.status_code == 200, r.text
    assert [c["label"] for c in r.json()["top"]] == ["espresso", "cup"]


@pytest.mark.parametrize(
    ("send", "status", "kind", "words"),
    [
        ({"files": {"image": ("x.png", b"no image")}}, 400, "InvalidInput", "known format"),
        ({"files": {"file": ("x.png", b"x")}}, 400, "InvalidArgument", '"image" part'),
        ({"content": b"{}", "headers": {"content-type": "application/json"}}, 400, "", "multipart"),
        ({"files": {"image": ("x.png", b"0" * (17 << 20))}}, 413, "InvalidArgument", "cap"),
        (
            {"content": b"0" * (17 << 20), "headers": {"content-type": "image/png"}},
            413,
            "InvalidArgument",
            "cap",
        ),
    ],
)
def test_classify_refuses_bad_images(server, world, send, status, kind, words):
    with server.client() as admin:
        r = admin.post("/api/v1/classify/vision/colours", **send)
    assert r.status_code == status, r.text
    assert words in r.json()["error"] and r.json()["type"].startswith(kind)


def test_classify_k_and_catalog_entries(server):
    with server.client() as admin:
        r = admin.post("/api/v1/classify/vision/colours?k=0", content=png((0, 0, 0)))
        assert r.status_code == 400
        info = admin.get(f"/api/v1/classify/catalog/{IMAGENET}").json()
        assert info["image"] and info["from"] == "catalog" and len(info["labels"]) == 1000
        assert info["inputs"][0]["name"] == "image"
        assert admin.get("/api/v1/classify/catalog/iris-classifier").json()["image"] is False


def test_stats_shows_each_token_its_own_models(server, world):
    with server.client() as admin:
        body = {"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 4]}]}
        body["inputs"][0]["data"] = [5.1, 3.5, 1.4, 0.2]
        for name in ("vision.iris", "catalog.iris-classifier"):
            assert admin.post(f"/v2/models/{name}/infer", json=body).status_code == 200
        bad = {"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 3]}]}
        bad["inputs"][0]["data"] = [1, 2, 3]
        assert admin.post("/v2/models/vision.iris/infer", json=bad).status_code == 400
        found = {m["model"]: m for m in admin.get("/api/v1/stats").json()["models"]}
    assert found["vision.iris"]["requests"] >= 1 and found["vision.iris"]["p50_ms"] > 0
    assert found["vision.iris"]["per_interval"]["counts"][-1] >= 1
    with server.client(world["run"]) as run:
        seen = {m["project"] for m in run.get("/api/v1/stats").json()["models"]}
    assert seen <= {"vision", "catalog"}


# -- the browser --------------------------------------------------------------------------


def start_browser() -> Any:
    """Headless chromium under selenium, the driver and browser given by path (selenium
    manager never looks anything up: SE_OFFLINE). Raises ServerUnavailable."""
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        raise ServerUnavailable(
            f"no {CHROMIUM} or {CHROMEDRIVER}: apt-get install chromium chromium-driver"
        )
    try:
        from selenium import webdriver
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        raise ServerUnavailable("selenium is not installed (the dev extra has it)") from None
    os.environ["SE_OFFLINE"] = "true"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,1000",
        "--lang=en-US",
    ):
        options.add_argument(argument)
    try:
        return webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    except WebDriverException as e:
        raise ServerUnavailable(f"chromium did not start: {e.msg}") from None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    driver = unless_unavailable(start_browser)
    driver.set_script_timeout(30)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()


def wait(driver: Any, condition: Callable[[Any], Any], timeout: float = 60) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(condition)


def by_id(driver: Any, element: str) -> Any:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, element)


def css(driver: Any, selector: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def visible(element: str) -> Callable[[Any], Any]:
    def check(driver: Any) -> Any:
        found = by_id(driver, element)
        return found if found.is_displayed() else False

    return check


def error_text(driver: Any) -> str:
    return wait(driver, visible("error")).text


def shoot(driver: Any, name: str) -> None:
    # The whole page: as tall as its content (within reason).
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, max(800, min(int(height) + 140, 3000)))
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))
    driver.set_window_size(1280, 1000)


def log_in(driver: Any, server: LiveServer, token: str) -> None:
    """A fresh tab state (no token), then the log-in form."""
    driver.get(server.url + "/")
    driver.execute_script("sessionStorage.clear()")
    driver.get(server.url + "/?fresh=" + str(time.monotonic_ns()) + "#/login")
    field = wait(driver, visible("login-token"))
    field.clear()
    field.send_keys(token)
    by_id(driver, "login-form").submit()
    wait(driver, visible("view-projects"))
    wait(driver, lambda d: css(d, "#projects-list table, #projects-list p"))


def go(driver: Any, hash_: str, view: str) -> None:
    driver.execute_script("location.hash = arguments[0]", hash_)
    wait(driver, visible(view))


def test_log_in_refuses_a_bad_token_then_lists_projects(browser, server, world):
    browser.get(server.url + "/")
    driver = browser
    driver.execute_script("sessionStorage.clear()")
    driver.refresh()
    field = wait(driver, visible("login-token"))
    assert by_id(driver, "nav").is_displayed() is False
    label = css(driver, "label[for=login-token]")
    assert label and label[0].text == "API token"
    field.send_keys("not-a-token")
    by_id(driver, "login-form").submit()
    assert error_text(driver) == "Unauthorized: invalid token"
    assert by_id(driver, "view-login").is_displayed()
    assert driver.execute_script("return sessionStorage.length") == 0
    shoot(driver, "01-login-refused")

    log_in(driver, server, server.admin)
    assert driver.execute_script("return sessionStorage.getItem('wasmhost.token')") == server.admin
    wait(driver, lambda d: "vision" in by_id(d, "projects-list").text)
    rows = [r.text for r in css(driver, "#projects-list tbody tr")]
    assert any(r.startswith("vision") for r in rows) and any("elsewhere" in r for r in rows)
    assert by_id(driver, "nav-tokens").is_displayed()
    shoot(driver, "02-projects")

    go(driver, "#/projects/vision", "view-project")
    wait(driver, lambda d: css(d, "section.model[data-model=iris] tbody tr"))
    iris = css(driver, "section.model[data-model=iris]")[0]
    assert "2 versions, latest 2; aliases: production → 1" in iris.text
    versions = [r.text for r in css(driver, "section.model[data-model=iris] tbody tr")]
    assert len(versions) == 2 and versions[0].startswith("1 ready") and "production" in versions[0]
    shoot(driver, "03-project")

    go(driver, "#/catalog", "view-catalog")
    wait(driver, lambda d: IMAGENET in by_id(d, "catalog-list").text)
    shoot(driver, "04-catalog")


def test_upload_through_the_form(browser, server, world, tmp_path):
    driver = browser
    log_in(driver, server, server.admin)
    go(driver, "#/upload", "view-upload")
    wait(driver, lambda d: css(d, "#upload-project option[value=vision]"))
    from selenium.webdriver.support.ui import Select

    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"this is not an ONNX model")
    Select(by_id(driver, "upload-project")).select_by_value("vision")
    by_id(driver, "upload-name").send_keys("garbage")
    by_id(driver, "upload-file").send_keys(str(garbage))
    by_id(driver, "upload-form").submit()
    message = error_text(driver)
    assert message.startswith("InvalidModel: "), message
    shoot(driver, "05-upload-refused")
    with server.client() as admin:
        names = [m["name"] for m in admin.get("/api/v1/projects/vision/models").json()["result"]]
    assert "garbage" not in names

    by_id(driver, "upload-name").clear()
    by_id(driver, "upload-name").send_keys("iris-form")
    by_id(driver, "upload-description").send_keys("uploaded by the dashboard's test")
    by_id(driver, "upload-file").send_keys(str(IRIS_FILE))
    by_id(driver, "upload-form").submit()
    done = wait(driver, visible("upload-ok"))
    assert "Uploaded vision/iris-form version 1 (ready" in done.text
    assert not by_id(driver, "error").is_displayed()
    shoot(driver, "06-upload-done")

    go(driver, "#/projects/vision", "view-project")
    section = wait(driver, lambda d: css(d, "section.model[data-model=iris-form]"))[0]
    assert "uploaded by the dashboard's test" in section.text


def test_try_an_image_classifier_and_a_json_model(browser, server, world):
    driver = browser
    log_in(driver, server, server.admin)
    go(driver, f"#/try/catalog/{IMAGENET}", "view-try")
    wait(driver, visible("try-image"))
    assert not by_id(driver, "try-json").is_displayed()
    by_id(driver, "try-file").send_keys(str(CAT))
    wait(driver, lambda d: len(css(d, "#try-top li")) == 5, timeout=120)
    top = [
        (li.get_attribute("data-label"), float(li.get_attribute("data-probability")))
        for li in css(driver, "#try-top li")
    ]
    expected = catalog.entry(IMAGENET).metrics["examples"]["images/chelsea.png"]
    assert [label for label, _ in top] == [c["label"] for c in expected]
    np.testing.assert_allclose([p for _, p in top], [c["probability"] for c in expected], atol=1e-4)
    first = css(driver, "#try-top li")[0].text
    assert first.startswith("tiger cat") and "37.9%" in first
    wait(driver, lambda d: by_id(d, "try-preview").get_attribute("naturalWidth") not in ("0", None))
    shoot(driver, "07-try-image")

    go(driver, "#/try/vision/iris@production", "view-try")
    wait(driver, visible("try-json"))
    request = json.loads(by_id(driver, "try-request").get_attribute("value"))
    assert request["inputs"][0]["name"] == "features" and request["inputs"][0]["datatype"] == "FP32"
    request["inputs"][0]["data"] = [5.1, 3.5, 1.4, 0.2]
    driver.execute_script(
        "document.getElementById('try-request').value = arguments[0]", json.dumps(request)
    )
    by_id(driver, "try-json-form").submit()
    wait(driver, lambda d: by_id(d, "try-output").text.strip())
    outputs = {o["name"]: o for o in json.loads(by_id(driver, "try-output").text)}
    assert outputs["label"]["data"] == [0] and outputs["probabilities"]["shape"] == [1, 3]
    shoot(driver, "08-try-json")

    # A bad request shows the server's error as it is.
    driver.execute_script("document.getElementById('try-request').value = '{\"inputs\": []}'")
    by_id(driver, "try-json-form").submit()
    assert error_text(driver).startswith("InvalidInput: ")


def test_metrics_draw_charts_of_recent_runs(browser, server, world):
    driver = browser
    with server.client() as admin:
        for _ in range(3):
            r = admin.post(
                f"/api/v1/classify/catalog/{IMAGENET}", files={"image": CAT.read_bytes()}
            )
            assert r.status_code == 200, r.text
        body = {"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 4]}]}
        body["inputs"][0]["data"] = [5.1, 3.5, 1.4, 0.2]
        for _ in range(2):
            r = admin.post("/v2/models/tight.iris/infer", json=body)
            assert r.status_code == 422 and r.json()["type"] == "FuelExhausted", r.text
    log_in(driver, server, server.admin)
    go(driver, "#/metrics", "view-metrics")
    card = wait(driver, lambda d: css(d, f"article[data-model='catalog.{IMAGENET}']"))[0]
    from selenium.webdriver.common.by import By

    runs = card.find_element(By.CSS_SELECTOR, "dl div dd").text
    assert int(runs) >= 3
    assert card.find_element(By.CSS_SELECTOR, "dd.p50").text.endswith(" ms")
    charts = card.find_elements(By.CSS_SELECTOR, "svg[role=img]")
    assert len(charts) == 2 and all(c.get_attribute("aria-label") for c in charts)
    assert len(card.find_elements(By.CSS_SELECTOR, "svg rect.bar")) == 30
    assert "none" in card.find_elements(By.CSS_SELECTOR, "figure")[2].text
    tight = css(driver, "article[data-model='tight.iris']")[0]
    assert tight.find_elements(By.CSS_SELECTOR, "dl dd")[1].text == "2"  # errors
    traps = tight.find_elements(By.CSS_SELECTOR, "figure")[2]
    chart = traps.find_element(By.CSS_SELECTOR, "svg[role=img]")
    assert chart.get_attribute("aria-label") == "fuel: 2"
    shoot(driver, "09-metrics")


def test_tokens_admin_creates_and_revokes_run_token_is_refused(browser, server, world):
    driver = browser
    log_in(driver, server, server.admin)
    go(driver, "#/tokens", "view-tokens")
    wait(driver, lambda d: "viewer" in by_id(d, "tokens-list").text)
    by_id(driver, "token-name").send_keys("made-in-browser")
    from selenium.webdriver.support.ui import Select

    Select(by_id(driver, "token-role")).select_by_value("run")
    wait(driver, lambda d: css(d, "#token-project option[value=vision]"))
    Select(by_id(driver, "token-project")).select_by_value("vision")
    by_id(driver, "token-form").submit()
    secret = wait(driver, visible("token-secret-value")).text
    assert secret and "made-in-browser" in by_id(driver, "tokens-list").text
    r = httpx.get(server.url + "/api/v1/whoami", headers=server.headers(secret))
    assert r.json()["name"] == "made-in-browser" and r.json()["project"] == "vision"
    shoot(driver, "10-tokens")
    # Shown once: a fresh view of the page has no secret in it.
    go(driver, "#/projects", "view-projects")
    go(driver, "#/tokens", "view-tokens")
    wait(driver, lambda d: "made-in-browser" in by_id(d, "tokens-list").text)
    assert secret not in driver.page_source

    revoke = [b for b in css(driver, "#tokens-list button") if b.text == "Revoke made-in-browser"]
    revoke[0].click()
    wait(driver, lambda d: d.switch_to.alert).accept()
    wait(driver, lambda d: "made-in-browser" not in by_id(d, "tokens-list").text)
    deadline = time.monotonic() + 5
    while httpx.get(server.url + "/api/v1/whoami", headers=server.headers(secret)).is_success:
        assert time.monotonic() < deadline, "the revoked token still works"
        time.sleep(0.2)

    # A run token: no Tokens link, and the view shows the API's refusal.
    log_in(driver, server, world["run"])
    assert not by_id(driver, "nav-tokens").is_displayed()
    assert "elsewhere" not in by_id(driver, "projects-list").text
    go(driver, "#/tokens", "view-tokens")
    assert error_text(driver).startswith("Forbidden: token 'viewer' (run) may not do this")
    assert not by_id(driver, "tokens-body").is_displayed()
    shoot(driver, "11-tokens-refused")


# -- packaging ----------------------------------------------------------------------------


@pytest.mark.slow
def test_the_wheel_carries_the_page(tmp_path):
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", tmp_path, ROOT],
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = tmp_path.glob("wasmhost-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ("index.html", "app.js", "style.css"):
        assert f"wasmhost/serve/static/{name}" in names


def test_a_jpeg_with_damaged_exif_is_a_bad_image_not_a_crash():
    """EXIF whose XPosition (a RATIONAL tag) holds text: Pillow reads it and raises
    TypeError when exif_transpose writes the block back (found by the demo's fuzzing):
    that is InvalidInput, never a 500."""
    import io

    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "Maker"  # Make, ASCII: its entry is renamed XPosition below
    block = exif.tobytes()
    make, xposition = b"\x01\x0f\x00\x02", b"\x01\x1e\x00\x02"  # tag, type 2 (ASCII)
    if block[6:8] == b"II":  # little-endian
        make, xposition = make[1::-1] + make[:1:-1], xposition[1::-1] + xposition[:1:-1]
    assert block.count(make) == 1
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 100, 50)).save(
        buffer, "JPEG", exif=block.replace(make, xposition)
    )
    spec = {
        "resize_shorter": 48,
        "center_crop": 32,
        "color": "RGB",
        "layout": "NCHW",
        "mean": [0, 0, 0],
        "std": [1, 1, 1],
        "scale": 1.0,
        "resample": "bilinear",
    }
    with pytest.raises(InvalidInput, match="damaged"):
        images.preprocess(buffer.getvalue(), spec)
