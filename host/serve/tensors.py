"""Open Inference Protocol (KServe v2) tensors: JSON and the binary tensor data extension,
decoded into numpy arrays and encoded back.

Nothing is sized from what a request declares: a binary input's declared size must equal
both its shape's size and the bytes that are really there, and JSON data must hold exactly
as many elements as the shape says.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InvalidInput

#: OIP datatype -> numpy dtype; BYTES (strings, as UTF-8) are numpy `object` arrays of str.
DATATYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}
#: numpy dtype -> OIP datatype.
DTYPE_NAMES = {dtype: name for name, dtype in DATATYPES.items()}
#: A BYTES output's `parameters.content_type` (MLServer's names): "str" for a string tensor,
#: "json" for a ZipMap's maps, one JSON object per row.
CONTENT_STR, CONTENT_JSON = "str", "json"
#: BYTES elements in binary data: a little-endian uint32 length, then the bytes.
_LENGTH = struct.Struct("<I")
#: ONNX's tensor type names (as sessions report them) -> OIP datatypes.
ONNX_TYPES = {
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}
#: Elements one request may carry (the body cap bounds it too).
MAX_ELEMENTS = 1 << 31


def oip_datatype(onnx_type: str) -> str:
    """An ONNX type name as an OIP datatype (`BYTES` for strings and ZipMap's maps)."""
    return ONNX_TYPES.get(onnx_type, "BYTES")


def oip_shape(shape: list[int | str | None] | None) -> list[int]:
    """A signature's shape for OIP: symbolic or unknown dims are -1."""
    return [d if isinstance(d, int) and d >= 0 else -1 for d in (shape or [])]


@dataclass
class InferRequest:
    """A decoded infer request: inputs by name, the outputs asked for, and how to send them."""

    inputs: dict[str, np.ndarray]
    #: Output names asked for, in order (None: all of them).
    outputs: list[str] | None
    #: Output name -> send it as binary data.
    binary: dict[str, bool] = field(default_factory=dict)
    binary_default: bool = False
    id: str | None = None


def _fail(message: str) -> InvalidInput:
    return InvalidInput(message)


def _shape(value: Any, name: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in value
    ):
        raise _fail(f"input {name!r}: shape must be a list of non-negative integers")
    if len(value) > 32:
        raise _fail(f"input {name!r}: rank {len(value)} is over 32")
    if math.prod(value) > MAX_ELEMENTS:
        raise _fail(f"input {name!r}: shape {value} has too many elements")
    return tuple(value)


def decode(body: bytes, header_length: str | None) -> InferRequest:
    """An infer request's body (JSON, or JSON then binary data when `header_length`, the
    `Inference-Header-Content-Length` header, is given).

    Raises:
        InvalidInput: malformed JSON, an unknown datatype, a bad shape, data that does not
            fit its shape, binary sizes that lie, trailing bytes.
    """
    if header_length is not None:
        try:
            length = int(header_length)
        except ValueError:
            raise _fail("Inference-Header-Content-Length is not an integer") from None
        if not 0 < length <= len(body):
            raise _fail(
                f"Inference-Header-Content-Length {length} does not fit a body of {len(body)} bytes"
            )
        header, binary = body[:length], memoryview(body)[length:]
    else:
        header, binary = body, memoryview(b"")
    try:
        doc = json.loads(header)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:  # Recursion: nested deep
        raise _fail(f"the request is not JSON: {e}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("inputs"), list) or not doc["inputs"]:
        raise _fail('the request must be a JSON object with a non-empty "inputs" list')
    params = doc.get("parameters") or {}
    if not isinstance(params, dict):
        raise _fail('"parameters" must be an object')
    inputs: dict[str, np.ndarray] = {}
    offset = 0
    for item in doc["inputs"]:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise _fail('each input must be an object with a "name"')
        name = item["name"]
        if name in inputs:
            raise _fail(f"input {name!r} is given twice")
        datatype = item.get("datatype")
        if datatype not in DATATYPES:
            raise _fail(
                f"input {name!r}: unknown datatype {datatype!r} (one of {', '.join(DATATYPES)})"
            )
        dtype = DATATYPES[datatype]
        shape = _shape(item.get("shape"), name)
        count = math.prod(shape)
        item_params = item.get("parameters") or {}
        if not isinstance(item_params, dict):
            raise _fail(f"input {name!r}: parameters must be an object")
        size = item_params.get("binary_data_size")
        if size is not None:
            if "data" in item:
                raise _fail(f"input {name!r} has both data and binary_data_size")
            if isinstance(size, bool) or not isinstance(size, int) or size < 0:
                raise _fail(f"input {name!r}: binary_data_size must be a non-negative integer")
            if datatype == "BYTES":
                if offset + size > len(binary):
                    raise _fail(f"input {name!r}: binary_data_size {size} runs past the body's end")
                raw = binary[offset : offset + size]
                offset += size
                inputs[name] = unpack_strings(raw, count, f"input {name!r}").reshape(shape)
                continue
            if size != count * dtype.itemsize:
                raise _fail(
                    f"input {name!r}: binary_data_size {size} is not {count} {datatype} "
                    f"elements ({count * dtype.itemsize} bytes)"
                )
            if offset + size > len(binary):
                raise _fail(f"input {name!r}: binary_data_size {size} runs past the body's end")
            raw = binary[offset : offset + size]
            offset += size
            array = np.frombuffer(raw, dtype=dtype.newbyteorder("<")).reshape(shape)
            inputs[name] = array.astype(dtype, copy=False)
            continue
        if "data" not in item:
            raise _fail(f"input {name!r} has no data")
        inputs[name] = _from_json(item["data"], dtype, shape, name)
    if offset != len(binary):
        raise _fail(f"{len(binary) - offset} bytes of binary data follow the last input")
    outputs = None
    binary_out: dict[str, bool] = {}
    if "outputs" in doc:
        if not isinstance(doc["outputs"], list):
            raise _fail('"outputs" must be a list')
        outputs = []
        for out in doc["outputs"]:
            if not isinstance(out, dict) or not isinstance(out.get("name"), str):
                raise _fail('each requested output must be an object with a "name"')
            outputs.append(out["name"])
            out_params = out.get("parameters") or {}
            if isinstance(out_params, dict) and "binary_data" in out_params:
                binary_out[out["name"]] = bool(out_params["binary_data"])
    request_id = doc.get("id")
    return InferRequest(
        inputs,
        outputs,
        binary_out,
        bool(params.get("binary_data_output", False)),
        request_id if isinstance(request_id, str) else None,
    )


def pack_strings(items: list[str]) -> bytes:
    """Strings as OIP's binary BYTES elements: length-prefixed UTF-8."""
    encoded = [s.encode() for s in items]
    return b"".join(_LENGTH.pack(len(e)) + e for e in encoded)


def unpack_strings(raw: memoryview | bytes, count: int, name: str) -> np.ndarray:
    """`count` length-prefixed UTF-8 strings filling `raw` exactly, as an object array.

    Raises:
        InvalidInput: the data holds fewer or more elements, or one is not UTF-8.
    """
    # Each element takes 4 bytes at least: a count the data cannot hold is refused before
    # anything is allocated for it.
    if count * _LENGTH.size > len(raw):
        raise _fail(f"{name}: {len(raw)} bytes cannot hold {count} BYTES elements")
    out = np.empty(count, dtype=object)
    at = 0
    for i in range(count):
        if at + _LENGTH.size > len(raw):
            raise _fail(f"{name}: BYTES element {i} is cut short")
        (n,) = _LENGTH.unpack_from(raw, at)
        at += _LENGTH.size
        if at + n > len(raw):
            raise _fail(f"{name}: BYTES element {i} of {n} bytes runs past its data")
        try:
            out[i] = bytes(raw[at : at + n]).decode("utf-8")
        except UnicodeDecodeError:
            raise _fail(f"{name}: BYTES element {i} is not UTF-8") from None
        at += n
    if at != len(raw):
        raise _fail(f"{name}: {len(raw) - at} bytes follow its {count} BYTES elements")
    return out


def _from_json(data: Any, dtype: np.dtype, shape: tuple[int, ...], name: str) -> np.ndarray:
    if not isinstance(data, list):
        data = [data]
    try:
        flat = np.asarray(data, dtype=object).ravel() if _nested(data) else data
        if dtype.kind == "O":
            if not all(isinstance(v, str) for v in flat):
                raise ValueError("BYTES data must be strings")
            array = np.empty(len(flat), dtype=object)
            array[:] = list(flat)
        elif dtype == np.bool_:
            if not all(isinstance(v, bool) for v in flat):
                raise ValueError("BOOL data must be true or false")
            array = np.asarray(flat, dtype=np.bool_)
        else:
            if any(isinstance(v, (bool, str, list, dict)) or v is None for v in flat):
                raise ValueError("data must be numbers")
            array = np.asarray(flat, dtype=dtype)
    except (ValueError, TypeError, OverflowError) as e:
        raise _fail(f"input {name!r}: {e}") from None
    if array.size != math.prod(shape):
        raise _fail(f"input {name!r}: {array.size} values do not fill shape {list(shape)}")
    return array.reshape(shape)


def _nested(data: list) -> bool:
    if not any(isinstance(v, list) for v in data):
        return False
    # Nested (row-major) data must be rectangular: numpy would make ragged arrays objects.
    array = np.asarray(data, dtype=object)
    if array.dtype != object or any(isinstance(v, list) for v in array.ravel()):
        raise ValueError("nested data must be rectangular")
    return True


def encode(
    model_name: str,
    model_version: str,
    outputs: list[tuple[str, Any]],
    request: InferRequest,
) -> tuple[bytes, dict[str, str]]:
    """The infer response's body and headers; outputs asked for in binary go after the JSON."""
    tensors, chunks = [], []
    for name, value in outputs:
        binary = request.binary.get(name, request.binary_default)
        if isinstance(value, list):  # a ZipMap's maps: each row as a JSON string
            rows = [json.dumps({str(k): float(v) for k, v in row.items()}) for row in value]
            tensors.append(_bytes_tensor(name, [len(rows)], rows, CONTENT_JSON, binary, chunks))
            continue
        array = np.asarray(value)
        if array.dtype.kind == "O":
            strings = array.ravel().tolist()
            tensors.append(
                _bytes_tensor(name, list(array.shape), strings, CONTENT_STR, binary, chunks)
            )
            continue
        datatype = DTYPE_NAMES.get(array.dtype)
        if datatype is None:
            raise InvalidInput(f"output {name!r} has dtype {array.dtype}, which OIP lacks")
        tensor = {"name": name, "datatype": datatype, "shape": list(array.shape)}
        if binary:
            raw = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
            tensor["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            # NaN and infinities are written as JSON's common extension (NaN, Infinity),
            # as Python's json and tritonclient read them: never silently as null.
            tensor["data"] = array.ravel().tolist()
        tensors.append(tensor)
    doc: dict[str, Any] = {
        "model_name": model_name,
        "model_version": model_version,
        "outputs": tensors,
    }
    if request.id is not None:
        doc["id"] = request.id
    header = json.dumps(doc).encode()
    if not chunks:
        return header, {"content-type": "application/json"}
    return header + b"".join(chunks), {
        "content-type": "application/octet-stream",
        "inference-header-content-length": str(len(header)),
    }


def _bytes_tensor(
    name: str, shape: list[int], items: list[str], content: str, binary: bool, chunks: list
) -> dict[str, Any]:
    """A BYTES output: JSON strings, or length-prefixed UTF-8 appended to `chunks`."""
    tensor: dict[str, Any] = {"name": name, "datatype": "BYTES", "shape": shape}
    params: dict[str, Any] = {"content_type": content}
    if binary:
        raw = pack_strings(items)
        params["binary_data_size"] = len(raw)
        chunks.append(raw)
    else:
        tensor["data"] = items
    tensor["parameters"] = params
    return tensor
