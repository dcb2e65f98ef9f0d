"""The msgpack messages of guest ABI v1 (docs/guest-abi.md).

Requests are built as *segments*: small msgpack headers as bytes and tensor
payloads as the caller's arrays, so that the isolate copies each payload
straight into guest memory, once. Responses are small: output payloads stay in
guest memory and the response points at them (`GuestBytes`), so that each output
is copied once, into its final array. Responses are parsed by msgpack's C decoder
held to their size, then validated field by field: the host trusts nothing.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import msgpack
import numpy as np

from ..errors import GuestProtocolError
from .abi import ADDRESS_AND_LENGTH, EXT_GUEST_BYTES

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
#: The dtype of string tensors (ABI 1.1): numpy `object` arrays of `str` on the host,
#: a msgpack array of str on the wire, in C order.
STRING = "string"
MAX_RANK = 64
_NP_DTYPES = {name: np.dtype(name) for name in DTYPES}
# numpy computes dtype.name in Python each time, a measurable part of a tiny run.
_NAMES = {dt.newbyteorder(order): name for name, dt in _NP_DTYPES.items() for order in "<>"}


def dtype_name(dtype: np.dtype) -> str:
    """`dtype.name`, looked up for the exchanged dtypes (of either byte order)."""
    return _NAMES.get(dtype) or dtype.name


Segment = bytes | np.ndarray
#: Payloads up to this size are copied into the message's bytes; bigger ones stay the
#: caller's arrays, copied once, straight into guest memory.
INLINE_PAYLOAD = 64 * 1024


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

    def pack(self, obj: Any) -> None:
        self._pending += msgpack.packb(obj, use_bin_type=True)

    def raw(self, data: bytes) -> None:
        self._pending += data

    def array_header(self, n: int) -> None:
        self._pending += bytes([0x90 | n]) if n < 16 else msgpack.Packer().pack_array_header(n)

    def payload(self, data: bytes | np.ndarray) -> None:
        nbytes = data.nbytes if isinstance(data, np.ndarray) else len(data)
        self._pending += _bin_header(nbytes)
        if nbytes <= INLINE_PAYLOAD:
            # One copy here saves the isolate a memmove per payload, which costs more.
            self._pending += data.data if isinstance(data, np.ndarray) else data
            return
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


@functools.lru_cache(maxsize=1024)
def _tensor_header(name: str, dtype: str, shape: tuple[int, ...]) -> bytes:
    """A tensor map up to its `data` key: 4 entries, name, dtype and shape. Cached: a
    session sends the same few again and again."""
    pack = msgpack.Packer(use_bin_type=True).pack
    return b"\x84" + b"".join(
        pack(v) for v in ("name", name, "dtype", dtype, "shape", list(shape), "data")
    )


def encode_run(inputs: list[tuple[str, np.ndarray]], outputs: list[str] | None) -> list[Segment]:
    """A run request; arrays must be C-contiguous, native-endian, of a dtype in DTYPES,
    or `object` arrays holding only `str` (string tensors, ABI 1.1)."""
    s = _Segments()
    s.raw(b"\x82\xa6inputs")
    s.array_header(len(inputs))
    for name, array in inputs:
        if array.dtype.kind == "O":
            s.raw(_tensor_header(name, STRING, array.shape))
            s.pack(array.ravel().tolist())
            continue
        s.raw(_tensor_header(name, dtype_name(array.dtype), array.shape))
        s.payload(array)
    s.raw(b"\xa7outputs")
    s.raw(_packed_names(None if outputs is None else tuple(outputs)))
    return s.finish()


@functools.lru_cache(maxsize=256)
def _packed_names(names: tuple[str, ...] | None) -> bytes:
    return msgpack.packb(names, use_bin_type=True)


# --- responses ---------------------------------------------------------------

#: The msgpack ext type of a payload the guest left in its own memory: 8 bytes, its
#: address and length as little-endian u32s (docs/guest-abi.md).


class GuestBytes(NamedTuple):
    """A payload left in guest memory: `length` bytes at guest address `address`, valid
    until the next guest call. Nothing is checked yet: the isolate bounds-checks it."""

    address: int
    length: int


def _ext(code: int, data: bytes) -> GuestBytes:
    if code != EXT_GUEST_BYTES or len(data) != ADDRESS_AND_LENGTH.size:
        raise GuestProtocolError(f"malformed guest response: ext type {code} of {len(data)} bytes")
    return GuestBytes(*ADDRESS_AND_LENGTH.unpack(data))


def decode(data: memoryview | bytes) -> dict:
    """Parses one response: a map with string keys, nothing after it.

    msgpack's C decoder, held to the response's own size: every length it announces
    is checked against the bytes left, nesting is bounded, map keys must be strings.
    Payloads come as `bytes` (inline) or `GuestBytes` (left in guest memory).

    Raises:
        GuestProtocolError: the bytes are not such a message.
    """
    try:
        value = msgpack.unpackb(data, raw=False, strict_map_key=True, ext_hook=_ext)
    except GuestProtocolError:
        raise
    except Exception as e:  # msgpack raises ValueError subclasses, and TypeError for keys
        raise GuestProtocolError(
            f"malformed guest response: {type(e).__name__}: {str(e)[:200]}"
        ) from None
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise GuestProtocolError("malformed guest response: not a map with string keys")
    return value


def _invalid(what: str) -> GuestProtocolError:
    return GuestProtocolError(f"invalid guest response: {what}")


def _expect(cond: bool, what: str) -> None:
    if not cond:
        raise _invalid(what)


def _str(v: Any, what: str) -> str:
    if type(v) is not str:
        raise _invalid(f"{what} is not a string")
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


class TensorView(NamedTuple):
    """An output as the guest returned it: `data` may still point into guest memory.

    A NamedTuple: built on every run, and a frozen dataclass costs 1.8 µs to build."""

    name: str
    dtype: np.dtype
    shape: tuple[int, ...]
    data: memoryview | bytes | list[str]

    def to_array(self) -> np.ndarray:
        """Copies the tensor (out of guest memory) into a new, writable array; a string
        tensor into an `object` array of `str`, as onnxruntime returns it."""
        if isinstance(self.data, list):
            strings = np.empty(len(self.data), dtype=object)
            strings[:] = self.data
            return strings.reshape(self.shape)
        if self.dtype == np.bool_:
            # A byte other than 0 or 1 is not a valid numpy bool: normalise, never copy raw.
            return (np.frombuffer(self.data, dtype=np.uint8) != 0).reshape(self.shape)
        # run_result checked the length: a whole number of items, as many as the shape holds.
        return np.frombuffer(self.data, dtype=self.dtype).reshape(self.shape).copy()


def run_result(
    response: dict,
    expected_names: list[str],
    resolve: Callable[[GuestBytes], memoryview],
) -> list[TensorView]:
    """Validates a run response: the outputs asked for, each consistent with its shape.
    `resolve` maps a payload left in guest memory to a view of it (bounds-checked).

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
    # Messages are formatted only on failure: this runs on every call.
    for t, expected in zip(outputs, expected_names, strict=True):
        if type(t) is not dict:
            raise _invalid("an output is not a map")
        name = _str(t.get("name"), "output name")
        if name != expected:
            raise _invalid(f"output '{name}' returned where '{expected}' was asked for")
        dtype = _str(t.get("dtype"), f"output '{name}' dtype")
        shape = t.get("shape")
        # type() is int, not isinstance: a bool is not a dim.
        if not (
            type(shape) is list
            and len(shape) <= MAX_RANK
            and all(type(d) is int and d >= 0 for d in shape)
        ):
            raise _invalid(f"output '{name}' has a bad shape")
        data = t.get("data")
        if dtype == STRING:
            views.append(_strings(name, shape, data))
            continue
        np_dtype = _NP_DTYPES.get(dtype)
        if np_dtype is None:
            raise _invalid(f"output '{name}' has dtype '{dtype}'")
        if isinstance(data, GuestBytes):
            size = data.length
        elif isinstance(data, bytes):
            size = len(data)
        else:
            raise _invalid(f"output '{name}' data is not binary")
        nbytes = math.prod(shape) * np_dtype.itemsize
        if nbytes != size:
            raise _invalid(
                f"output '{name}' of shape {shape} {dtype} needs {nbytes} bytes, has {size}"
            )
        if isinstance(data, GuestBytes):
            data = resolve(data)
        views.append(TensorView(name, np_dtype, tuple(shape), data))
    return views


_OBJECT = np.dtype(object)


def _strings(name: str, shape: list[int], data: Any) -> TensorView:
    """A string output: exactly `prod(shape)` str, nothing else."""
    if type(data) is not list:
        raise _invalid(f"output '{name}' is a string tensor whose data is not an array")
    if len(data) != math.prod(shape):
        raise _invalid(f"output '{name}' of shape {shape} holds {len(data)} strings")
    if not all(type(v) is str for v in data):
        raise _invalid(f"output '{name}' is a string tensor holding a non-string")
    return TensorView(name, _OBJECT, tuple(shape), data)
