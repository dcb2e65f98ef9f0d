"""The msgpack messages of guest ABI v1 (docs/guest-abi.md).

Requests are built as *segments*: small msgpack headers as bytes and tensor
payloads as the caller's arrays, so that the isolate copies each payload
straight into guest memory, once. Responses are parsed by a small decoder of
our own that trusts nothing: it bounds nesting and lengths, checks every type,
and returns binary fields as views into the response (no copy), so that each
output tensor is copied once, into its final array.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Any

import msgpack
import numpy as np

from .errors import GuestProtocolError

#: numpy dtype names exchanged with the guest.
DTYPES = frozenset(
    [
        "bool",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "int8",
        "int16",
        "int32",
        "int64",
        "float16",
        "float32",
        "float64",
    ]
)
MAX_RANK = 64
_MAX_DEPTH = 8
# numpy computes dtype.name in Python each time, a measurable part of a tiny run.
_NAMES = {np.dtype(name).newbyteorder(order): name for name in DTYPES for order in "<>"}


def dtype_name(dtype: np.dtype) -> str:
    """`dtype.name`, looked up for the exchanged dtypes (of either byte order)."""
    return _NAMES.get(dtype) or dtype.name


Segment = bytes | np.ndarray


def _bin_header(n: int) -> bytes:
    if n < 1 << 8:
        return b"\xc4" + n.to_bytes(1, "big")
    if n < 1 << 16:
        return b"\xc5" + n.to_bytes(2, "big")
    if n < 1 << 32:
        return b"\xc6" + n.to_bytes(4, "big")
    raise ValueError(f"{n} bytes do not fit a wasm32 guest")


class _Segments:
    """Collects a message, merging adjacent headers into one bytes segment."""

    def __init__(self) -> None:
        self.parts: list[Segment] = []
        self._pending = bytearray()
        self._packer = msgpack.Packer(use_bin_type=True)

    def pack(self, obj: Any) -> None:
        self._pending += self._packer.pack(obj)

    def raw(self, data: bytes) -> None:
        self._pending += data

    def array_header(self, n: int) -> None:
        self._pending += self._packer.pack_array_header(n)

    def payload(self, data: bytes | np.ndarray) -> None:
        nbytes = data.nbytes if isinstance(data, np.ndarray) else len(data)
        self._pending += _bin_header(nbytes)
        self.parts.append(bytes(self._pending))
        self._pending.clear()
        self.parts.append(data)

    def finish(self) -> list[Segment]:
        if self._pending:
            self.parts.append(bytes(self._pending))
        return self.parts


def segments_size(segments: list[Segment]) -> int:
    return sum(s.nbytes if isinstance(s, np.ndarray) else len(s) for s in segments)


def encode_load(model: bytes, plan_cache: int) -> list[Segment]:
    s = _Segments()
    s.raw(b"\x82")
    s.pack("model")
    s.payload(model)
    s.pack("options")
    s.pack({"plan_cache": plan_cache})
    return s.finish()


def encode_run(inputs: list[tuple[str, np.ndarray]], outputs: list[str] | None) -> list[Segment]:
    """A run request; arrays must be C-contiguous, native-endian, of a dtype in DTYPES."""
    s = _Segments()
    s.raw(b"\x82")
    s.pack("inputs")
    s.array_header(len(inputs))
    for name, array in inputs:
        s.raw(b"\x84")
        s.pack("name")
        s.pack(name)
        s.pack("dtype")
        s.pack(dtype_name(array.dtype))
        s.pack("shape")
        s.pack([int(d) for d in array.shape])
        s.pack("data")
        s.payload(array)
    s.pack("outputs")
    s.pack(outputs)
    return s.finish()


# --- responses ---------------------------------------------------------------


class _Decoder:
    """msgpack, the subset the guest speaks, over a memoryview; bins stay views."""

    def __init__(self, data: memoryview) -> None:
        self.data = data
        self.pos = 0

    def fail(self, why: str) -> GuestProtocolError:
        return GuestProtocolError(f"malformed guest response at byte {self.pos}: {why}")

    def take(self, n: int) -> memoryview:
        end = self.pos + n
        if end > len(self.data):
            raise self.fail(f"{n} bytes announced, {len(self.data) - self.pos} left")
        view = self.data[self.pos : end]
        self.pos = end
        return view

    def byte(self) -> int:
        # The hottest path of a small response: no slice, no int.from_bytes.
        if self.pos >= len(self.data):
            raise self.fail("1 bytes announced, 0 left")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def uint(self, n: int) -> int:
        return self.byte() if n == 1 else int.from_bytes(self.take(n), "big")

    def value(self, depth: int = 0) -> Any:
        if depth > _MAX_DEPTH:
            raise self.fail("nested too deeply")
        b = self.byte()
        if b <= 0x7F:
            return b
        if b >= 0xE0:
            return b - 0x100
        if 0x80 <= b <= 0x8F:
            return self.map(b & 0x0F, depth)
        if 0x90 <= b <= 0x9F:
            return self.array(b & 0x0F, depth)
        if 0xA0 <= b <= 0xBF:
            return self.str(b & 0x1F)
        match b:
            case 0xC0:
                return None
            case 0xC2:
                return False
            case 0xC3:
                return True
            case 0xC4 | 0xC5 | 0xC6:
                return self.take(self.uint(1 << (b - 0xC4)))
            case 0xCA:
                return struct.unpack(">f", self.take(4))[0]
            case 0xCB:
                return struct.unpack(">d", self.take(8))[0]
            case 0xCC | 0xCD | 0xCE | 0xCF:
                return self.uint(1 << (b - 0xCC))
            case 0xD0 | 0xD1 | 0xD2 | 0xD3:
                n = 1 << (b - 0xD0)
                return int.from_bytes(self.take(n), "big", signed=True)
            case 0xD9 | 0xDA | 0xDB:
                return self.str(self.uint(1 << (b - 0xD9)))
            case 0xDC | 0xDD:
                return self.array(self.uint(2 if b == 0xDC else 4), depth)
            case 0xDE | 0xDF:
                return self.map(self.uint(2 if b == 0xDE else 4), depth)
        raise self.fail(f"unsupported msgpack type 0x{b:02x}")

    def str(self, n: int) -> str:
        try:
            return str(self.take(n), "utf-8")
        except UnicodeDecodeError as e:
            raise self.fail("a string is not UTF-8") from e

    def array(self, n: int, depth: int) -> list:
        # Each element takes a byte at least: refuse counts the data cannot hold
        # before allocating anything for them.
        if n > len(self.data) - self.pos:
            raise self.fail(f"array of {n} items in {len(self.data) - self.pos} bytes")
        return [self.value(depth + 1) for _ in range(n)]

    def map(self, n: int, depth: int) -> dict:
        if 2 * n > len(self.data) - self.pos:
            raise self.fail(f"map of {n} entries in {len(self.data) - self.pos} bytes")
        out = {}
        for _ in range(n):
            key = self.value(depth + 1)
            if not isinstance(key, str):
                raise self.fail("a map key is not a string")
            out[key] = self.value(depth + 1)
        return out


def decode(data: memoryview | bytes) -> dict:
    """Parses one response: a map with string keys, nothing after it.

    Raises:
        GuestProtocolError: the bytes are not such a message.
    """
    d = _Decoder(memoryview(data).cast("B"))
    value = d.value()
    if d.pos != len(d.data):
        raise d.fail(f"{len(d.data) - d.pos} bytes after the message")
    if not isinstance(value, dict):
        raise GuestProtocolError("malformed guest response: not a map")
    return value


def _expect(cond: bool, what: str) -> None:
    if not cond:
        raise GuestProtocolError(f"invalid guest response: {what}")


def _str(v: Any, what: str) -> str:
    _expect(isinstance(v, str), f"{what} is not a string")
    return v


def _int(v: Any, what: str) -> int:
    _expect(isinstance(v, int) and not isinstance(v, bool), f"{what} is not an integer")
    return v


@dataclass(frozen=True)
class GuestError:
    code: str
    message: str


def error_of(response: dict) -> GuestError:
    """The error carried by a non-zero status's response."""
    err = response.get("error")
    _expect(isinstance(err, dict), "an error status without an error map")
    return GuestError(
        _str(err.get("code"), "error code"), _str(err.get("message"), "error message")
    )


@dataclass(frozen=True)
class Signature:
    """A declared input or output: dims are ints, symbol names, or None (unknown)."""

    name: str
    dtype: str
    shape: tuple[int | str | None, ...] | None


def _signature(v: Any, what: str) -> Signature:
    _expect(isinstance(v, dict), f"{what} is not a map")
    name = _str(v.get("name"), f"{what} name")
    dtype = _str(v.get("dtype"), f"{what} '{name}' dtype")
    shape = v.get("shape")
    if shape is not None:
        _expect(isinstance(shape, list) and len(shape) <= MAX_RANK, f"{what} '{name}' shape")
        for d in shape:
            _expect(
                d is None
                or isinstance(d, str)
                or (isinstance(d, int) and not isinstance(d, bool) and d >= 0),
                f"{what} '{name}' has a bad dim {d!r}",
            )
        shape = tuple(shape)
    return Signature(name, dtype, shape)


@dataclass(frozen=True)
class LoadResult:
    inputs: list[Signature]
    outputs: list[Signature]
    meta: dict[str, Any]


_META_STR = ("producer_name", "producer_version", "domain", "doc_string", "graph_name")


def load_result(response: dict) -> LoadResult:
    """Validates a load response.

    Raises:
        GuestProtocolError: a field is missing or of the wrong type.
    """
    sigs = {}
    for key in ("inputs", "outputs"):
        items = response.get(key)
        _expect(isinstance(items, list), f"'{key}' is not a list")
        sigs[key] = [_signature(s, key[:-1]) for s in items]
        names = [s.name for s in sigs[key]]
        _expect(len(set(names)) == len(names), f"duplicate {key[:-1]} names")
    meta = response.get("meta", {})
    _expect(isinstance(meta, dict), "'meta' is not a map")
    clean: dict[str, Any] = {}
    for k in (*_META_STR, "graph_description"):
        clean[k] = _str(meta.get(k, ""), f"meta {k}")
    for k in ("model_version", "ir_version"):
        clean[k] = _int(meta.get(k, 0), f"meta {k}")
    for k, value_type in (("opset", int), ("ops", int), ("metadata_props", str)):
        m = meta.get(k, {})
        _expect(isinstance(m, dict), f"meta {k} is not a map")
        for key, value in m.items():
            _expect(
                isinstance(value, value_type) and not isinstance(value, bool),
                f"meta {k} '{key}' has a {type(value).__name__}",
            )
        clean[k] = dict(m)
    return LoadResult(sigs["inputs"], sigs["outputs"], clean)


@dataclass(frozen=True)
class TensorView:
    """An output as the guest returned it: `data` still points into guest memory."""

    name: str
    dtype: np.dtype
    shape: tuple[int, ...]
    data: memoryview

    def to_array(self) -> np.ndarray:
        """Copies the tensor out of guest memory into a new, writable array."""
        raw = np.frombuffer(self.data, dtype=np.uint8)
        if self.dtype == np.bool_:
            # A byte other than 0 or 1 is not a valid numpy bool: normalise, never copy raw.
            return (raw != 0).reshape(self.shape)
        out = np.empty(self.shape, dtype=self.dtype)
        out.reshape(-1).view(np.uint8)[:] = raw
        return out


def run_result(response: dict, expected_names: list[str]) -> list[TensorView]:
    """Validates a run response: the outputs asked for, each consistent with its shape.

    Raises:
        GuestProtocolError: a field is missing, inconsistent or not what was asked for.
    """
    outputs = response.get("outputs")
    _expect(isinstance(outputs, list), "'outputs' is not a list")
    _expect(
        len(outputs) == len(expected_names),
        f"{len(outputs)} outputs returned, {len(expected_names)} asked for",
    )
    views = []
    for t, expected in zip(outputs, expected_names, strict=True):
        _expect(isinstance(t, dict), "an output is not a map")
        name = _str(t.get("name"), "output name")
        _expect(name == expected, f"output '{name}' returned where '{expected}' was asked for")
        dtype = _str(t.get("dtype"), f"output '{name}' dtype")
        _expect(dtype in DTYPES, f"output '{name}' has dtype '{dtype}'")
        shape = t.get("shape")
        _expect(
            isinstance(shape, list)
            and len(shape) <= MAX_RANK
            and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape),
            f"output '{name}' has a bad shape",
        )
        data = t.get("data")
        _expect(isinstance(data, memoryview), f"output '{name}' data is not binary")
        np_dtype = np.dtype(dtype)
        nbytes = math.prod(shape) * np_dtype.itemsize
        _expect(
            nbytes == len(data),
            f"output '{name}' of shape {shape} {dtype} needs {nbytes} bytes, has {len(data)}",
        )
        views.append(TensorView(name, np_dtype, tuple(shape), data))
    return views
