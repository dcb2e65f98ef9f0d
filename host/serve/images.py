"""Images in, classes out: an image classifier's input made from a photo by its
`preprocess` spec, and its scores turned into the top k labels.

A spec is a catalog entry's `preprocess` (imagenet-efficientnet-lite0's, say), or an
uploaded model's ONNX metadata property `preprocess` (JSON), in the catalog's words:

    {"color": "RGB",             # or "BGR", or "L" (one grey channel); alpha is dropped
     "resize_shorter": 256,      # the shorter side resized to this (the longer one to
                                 # floor(longer * 256 / shorter)), bilinear, antialiased
     "center_crop": 224,         # then the centre 224 x 224 (or [height, width]), offset
                                 # floor((side - crop) / 2)
     "size": [224, 224],         # instead of both: resized straight to [height, width]
     "scale": 1.0,               # then (pixel * scale - mean[c]) / std[c], pixel in 0..255
     "mean": [127.0, 127.0, 127.0],
     "std": [128.0, 128.0, 128.0],
     "layout": "NCHW",           # or "NHWC"
     "dtype": "float32",         # or "float16", "float64", "uint8"
     "input": "image"}           # the input it feeds (default: the model's first)

`resample` may only be "bilinear", `antialias` only true and `input_range` only [0, 255]:
what this module does. The catalog's prose fields (`alpha`, `grayscale`, `resize_longer`,
`resample_as`, `crop_offset`, `formula`) describe exactly that and are not read. Any
other key is refused: a spec half understood would give wrong classes without a word.

Only Pillow decodes, and only bytes the caller has already capped; an image of more than
`MAX_PIXELS` is refused from its header, before its pixels are decoded (a decompression
bomb never allocates). EXIF orientation is applied first (a phone's photo is classified
upright, as a browser shows it). Pillow is imported when an image arrives.
"""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np

from ..errors import InvalidArgument, InvalidInput, InvalidModel

#: Largest image decoded, in pixels (a 12-megapixel photo is 12e6).
MAX_PIXELS = 40_000_000
#: The decoders tried: common photo formats only.
FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")

_READ = {
    "color",
    "resize_shorter",
    "center_crop",
    "size",
    "scale",
    "mean",
    "std",
    "layout",
    "dtype",
    "input",
    "resample",
    "antialias",
    "input_range",
}
_PROSE = {"alpha", "grayscale", "resize_longer", "resample_as", "crop_offset", "formula"}
_DTYPES = {"float32", "float16", "float64", "uint8"}


def check_spec(spec: Any) -> dict[str, Any]:
    """The spec's settings, checked, with their defaults. Raises InvalidArgument for a
    spec this module cannot follow exactly."""
    if not isinstance(spec, dict):
        raise InvalidArgument("a preprocess spec is a JSON object")
    unknown = sorted(set(spec) - _READ - _PROSE)
    if unknown:
        raise InvalidArgument(f"unknown preprocess key(s): {', '.join(unknown)}")
    if spec.get("resample", "bilinear") != "bilinear" or spec.get("antialias", True) is not True:
        raise InvalidArgument("preprocess resample must be bilinear (antialiased)")
    if spec.get("input_range", [0, 255]) != [0, 255]:
        raise InvalidArgument("preprocess input_range must be [0, 255]")
    shorter = spec.get("resize_shorter")
    crop = _pair(spec, "center_crop")
    size = _pair(spec, "size")
    if (size is None) == (crop is None):
        raise InvalidArgument("a preprocess spec needs center_crop or size (one of them)")
    if size is not None and shorter is not None:
        raise InvalidArgument("preprocess resize_shorter goes with center_crop, not size")
    if crop is not None:
        shorter = max(crop) if shorter is None else shorter
        if not (isinstance(shorter, int) and max(crop) <= shorter <= 8192):
            raise InvalidArgument("preprocess resize_shorter must be an integer >= the crop")
    color = spec.get("color", "RGB")
    if color not in ("RGB", "BGR", "L"):
        raise InvalidArgument("preprocess color must be RGB, BGR or L")
    channels = 1 if color == "L" else 3
    layout = spec.get("layout", "NCHW")
    if layout not in ("NCHW", "NHWC"):
        raise InvalidArgument("preprocess layout must be NCHW or NHWC")
    dtype = spec.get("dtype", "float32")
    if dtype not in _DTYPES:
        raise InvalidArgument(f"preprocess dtype must be one of {', '.join(sorted(_DTYPES))}")
    scale = spec.get("scale", 1 / 255)
    if not _number(scale):
        raise InvalidArgument("preprocess scale must be a number")
    checked: dict[str, Any] = {
        "color": color,
        "resize_shorter": shorter,
        "center_crop": crop,
        "size": size,
        "scale": scale,
        "layout": layout,
        "dtype": dtype,
        "input": spec.get("input"),
    }
    for key, default in (("mean", 0.0), ("std", 1.0)):
        value = spec.get(key, [default] * channels)
        if _number(value):
            value = [value] * channels
        if (
            not isinstance(value, list)
            or len(value) != channels
            or not all(_number(v) for v in value)
            or (key == "std" and 0 in value)
        ):
            raise InvalidArgument(f"preprocess {key} must be {channels} number(s)")
        checked[key] = value
    if checked["input"] is not None and not isinstance(checked["input"], str):
        raise InvalidArgument("preprocess input must be an input's name")
    return checked


def _pair(spec: dict[str, Any], key: str) -> list[int] | None:
    """`key` as [height, width] (an integer is a square), or None when absent."""
    value = spec.get(key)
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value, value]
    if not (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= 4096 for n in value)
    ):
        raise InvalidArgument(f"preprocess {key} must be [height, width], each 1 to 4096")
    return value


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def preprocess(
    image_bytes: bytes, spec: dict[str, Any], *, max_pixels: int = MAX_PIXELS
) -> np.ndarray:
    """The batch of one that `spec` makes of an encoded image (JPEG, PNG, WebP, GIF, BMP,
    TIFF): `[1, C, H, W]` or `[1, H, W, C]` of the spec's dtype.

    Raises:
        InvalidInput: not an image of those formats, damaged, or over `max_pixels`.
        InvalidArgument: a spec `check_spec` refuses.
    """
    spec = check_spec(spec)
    try:
        from PIL import Image, ImageOps, UnidentifiedImageError
    except ImportError:  # pragma: no cover - the serve extra brings it
        raise InvalidArgument("classifying images needs Pillow: pip install pillow") from None
    try:
        with Image.open(io.BytesIO(image_bytes), formats=FORMATS) as opened:
            # The header alone says how big it is: refuse before any pixel is decoded.
            if opened.width * opened.height > max_pixels:
                raise InvalidInput(
                    f"the image is {opened.width}x{opened.height}: over the cap of "
                    f"{max_pixels} pixels"
                )
            image = ImageOps.exif_transpose(opened).convert(spec["color"].replace("BGR", "RGB"))
    except InvalidInput:
        raise
    except UnidentifiedImageError:
        raise InvalidInput(f"not an image of a known format ({', '.join(FORMATS)})") from None
    except Image.DecompressionBombError as e:
        raise InvalidInput(f"the image is too large to decode: {e}") from None
    except Exception as e:
        # TypeError, struct.error and more on damaged files: all of it is a bad image.
        raise InvalidInput(f"the image is damaged: {type(e).__name__}: {e}") from None
    if spec["center_crop"] is not None:
        height, width = spec["center_crop"]
        shorter = spec["resize_shorter"]
        if image.width <= image.height:
            scaled = (shorter, int(image.height * shorter / image.width))
        else:
            scaled = (int(image.width * shorter / image.height), shorter)
        image = image.resize(scaled, Image.Resampling.BILINEAR)
        left, top = (scaled[0] - width) // 2, (scaled[1] - height) // 2
        image = image.crop((left, top, left + width, top + height))
    else:
        height, width = spec["size"]
        image = image.resize((width, height), Image.Resampling.BILINEAR)
    pixels = np.asarray(image, dtype=np.float32)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if spec["color"] == "BGR":
        pixels = pixels[:, :, ::-1]
    mean = np.asarray(spec["mean"], dtype=np.float32)
    std = np.asarray(spec["std"], dtype=np.float32)
    pixels = (pixels * np.float32(spec["scale"]) - mean) / std
    if spec["layout"] == "NCHW":
        pixels = pixels.transpose(2, 0, 1)
    if spec["dtype"] == "uint8":
        pixels = np.clip(np.rint(pixels), 0, 255)
    return np.ascontiguousarray(pixels[None].astype(spec["dtype"]))


def probabilities(scores: Any, normalized: bool | None = None) -> np.ndarray:
    """A classifier's one row of scores as probabilities: as they are when `normalized`
    (an output that is probabilities), a softmax when not (logits); when unknown (None),
    as they are only if they already are (each in [0, 1], summing to 1).

    Raises InvalidModel for empty or non-finite scores (the model's answer, not the
    caller's image, is at fault).
    """
    row = np.asarray(scores, dtype=np.float64).reshape(-1)
    if row.size == 0 or not np.all(np.isfinite(row)):
        raise InvalidModel("the model's scores are empty or not finite")
    if normalized is None:
        normalized = bool(row.min() >= 0 and row.max() <= 1 and abs(row.sum() - 1) < 1e-3)
    if normalized:
        return row
    shifted = np.exp(row - row.max())
    return shifted / shifted.sum()


def top_k(probs: Any, labels: list[str] | None, k: int = 5) -> list[dict[str, Any]]:
    """The `k` most probable classes, most probable first: `{"index", "label",
    "probability"}` each (a class without a label is named by its index)."""
    row = np.asarray(probs, dtype=np.float64).reshape(-1)
    k = max(0, min(k, row.size))
    order = np.argsort(-row, kind="stable")[:k]
    labels = labels or []
    return [
        {
            "index": int(i),
            "label": labels[i] if i < len(labels) else f"class {int(i)}",
            "probability": float(row[i]),
        }
        for i in order
    ]
