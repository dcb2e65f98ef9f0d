"""The wire codec and Limits, without a guest: encoding, validation, random bytes."""

from __future__ import annotations

import contextlib

import msgpack
import numpy as np
import pytest
from guests import guest_bytes as _ref
from hypothesis import given, settings
from hypothesis import strategies as st

import wasmhost
from wasmhost.runtime import wire
from wasmhost.runtime.limits import Limits, parse_size


def joined(segments: list[wire.Segment]) -> bytes:
    return b"".join(s.tobytes() if isinstance(s, np.ndarray) else s for s in segments)


def test_run_request_is_standard_msgpack():
    a = np.arange(30000, dtype=np.float32).reshape(3, 10000)
    b = np.array(True)
    segments = wire.encode_run([("a", a), ("b", b)], ["y"])
    assert wire.segments_size(segments) == len(joined(segments))
    # Big payloads are the caller's arrays, not copies; small ones travel in the headers.
    assert a.nbytes > wire.INLINE_PAYLOAD and any(s is a for s in segments)
    assert len(segments) == 3
    decoded = msgpack.unpackb(joined(segments))
    assert decoded["outputs"] == ["y"]
    ta, tb = decoded["inputs"]
    assert (ta["name"], ta["dtype"], ta["shape"]) == ("a", "float32", [3, 10000])
    assert ta["data"] == a.tobytes()
    assert (tb["dtype"], tb["shape"], tb["data"]) == ("bool", [], b"\x01")
    # Headers are cached per (name, dtype, shape): the same name with another shape differs.
    again = msgpack.unpackb(joined(wire.encode_run([("a", a.reshape(10000, 3))], None)))
    assert again["inputs"][0]["shape"] == [10000, 3] and again["outputs"] is None


@pytest.mark.parametrize("n", [0, 255, 256, 65535, 65536, 1 << 20])
def test_bin_headers_at_every_size(n):
    data = bytes(range(256)) * (n // 256) + bytes(n % 256)
    decoded = msgpack.unpackb(joined(wire.encode_load(data, 4)))
    assert decoded == {"model": data, "options": {"plan_cache": 4}}


def test_decoder_agrees_with_msgpack():
    doc = {
        "outputs": [{"name": "y", "dtype": "int64", "shape": [2], "data": b"\x01" * 16}],
        "n": -5,
        "big": 2**40,
        "neg": -(2**40),
        "f": 1.5,
        "t": True,
        "none": None,
        "s" * 40: "long key",
    }
    decoded = wire.decode(msgpack.packb(doc, use_bin_type=True))
    decoded["outputs"][0]["data"] = bytes(decoded["outputs"][0]["data"])
    assert decoded == doc


def _guest_memory(data: wire.GuestBytes) -> memoryview:
    """Stands in for an isolate's memory: 64 bytes counting up from 0."""
    if data.address + data.length > 64:
        raise wasmhost.GuestProtocolError("past memory")
    return memoryview(bytes(range(64)))[data.address : data.address + data.length]


def test_payloads_left_in_guest_memory():
    doc = {"outputs": [{"name": "y", "dtype": "uint8", "shape": [2, 3], "data": _ref(4, 6)}]}
    response = wire.decode(msgpack.packb(doc))
    assert response["outputs"][0]["data"] == wire.GuestBytes(4, 6)
    (view,) = wire.run_result(response, ["y"], _guest_memory)
    np.testing.assert_array_equal(view.to_array(), [[4, 5, 6], [7, 8, 9]])
    doc["outputs"][0]["data"] = _ref(60, 6)
    with pytest.raises(wasmhost.GuestProtocolError, match="past memory"):
        wire.run_result(wire.decode(msgpack.packb(doc)), ["y"], _guest_memory)
    doc["outputs"][0]["data"] = _ref(0, 5)
    with pytest.raises(wasmhost.GuestProtocolError, match="needs 6 bytes, has 5"):
        wire.run_result(wire.decode(msgpack.packb(doc)), ["y"], _guest_memory)
    for ext in (msgpack.ExtType(2, bytes(8)), msgpack.ExtType(1, bytes(7))):
        doc["outputs"][0]["data"] = ext
        with pytest.raises(wasmhost.GuestProtocolError, match="ext type"):
            wire.decode(msgpack.packb(doc))


def test_run_result_validation():
    def response(**tensor):
        base = {"name": "y", "dtype": "float32", "shape": [2], "data": b"\x00" * 8}
        return wire.decode(msgpack.packb({"outputs": [{**base, **tensor}]}))

    (view,) = wire.run_result(response(), ["y"], _guest_memory)
    out = view.to_array()
    assert out.shape == (2,) and out.flags.writeable
    bad = [
        ({"data": b"\x00" * 7}, "needs 8 bytes"),
        ({"shape": [2, -1]}, "bad shape"),
        ({"shape": [3]}, "needs 12 bytes"),
        ({"dtype": "object"}, "dtype"),
        ({"dtype": 5}, "not a string"),
        ({"name": "z"}, "asked for"),
        ({"data": "text"}, "not binary"),
        ({"shape": [True, 2]}, "bad shape"),
        ({"shape": [2**62, 2**62]}, "needs"),
    ]
    for fields, message in bad:
        with pytest.raises(wasmhost.GuestProtocolError, match=message):
            wire.run_result(response(**fields), ["y"], _guest_memory)
    with pytest.raises(wasmhost.GuestProtocolError, match="asked for"):
        wire.run_result(response(), ["y", "z"], _guest_memory)


def test_bool_outputs_are_normalised():
    doc = {"outputs": [{"name": "m", "dtype": "bool", "shape": [3], "data": b"\x00\x02\xff"}]}
    (view,) = wire.run_result(wire.decode(msgpack.packb(doc)), ["m"], _guest_memory)
    np.testing.assert_array_equal(view.to_array(), [False, True, True])


def test_load_result_validation():
    good = {
        "inputs": [{"name": "x", "dtype": "float32", "shape": ["n", 3, None]}],
        "outputs": [{"name": "y", "dtype": "string", "shape": None}],
        "meta": {"ops": {"Relu": 1}, "opset": {"": 13}},
    }
    result = wire.load_result(wire.decode(msgpack.packb(good)))
    assert result.inputs[0].shape == ("n", 3, None)
    assert result.outputs[0].shape is None
    for change in [
        {"inputs": {"x": 1}},
        {"inputs": [{"name": "x", "dtype": "float32", "shape": [-1]}]},
        {"inputs": [{"name": 3, "dtype": "float32", "shape": []}]},
        {"outputs": [good["outputs"][0], good["outputs"][0]]},
        {"meta": {"ops": {"Relu": "one"}}},
        {"meta": []},
    ]:
        with pytest.raises(wasmhost.GuestProtocolError):
            wire.load_result(wire.decode(msgpack.packb({**good, **change})))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x81",  # a map announcing one entry, with none
        b"\xc6\xff\xff\xff\xff",  # a 4 GiB bin in 5 bytes
        b"\xdd\xff\xff\xff\xff",  # an array of 4 G items
        b"\xdf\x7f\xff\xff\xff",  # a map of 2 G entries
        b"\x91" * 5000 + b"\xc0",  # nested 5000 deep
        b"\x81\x01\x02",  # a non-string key
        b"\x81\xa1a\xc1",  # a reserved byte
        b"\xa2\xff\xfe",  # not UTF-8
        b"\x80\x80",  # something after the message
        b"\x90",  # not a map
    ],
)
def test_decoder_rejects_bad_bytes(data):
    with pytest.raises(wasmhost.GuestProtocolError):
        wire.decode(data)


def _consume(data: bytes) -> None:
    response = wire.decode(data)
    for check in (
        lambda: wire.load_result(response),
        lambda: [v.to_array() for v in wire.run_result(response, ["y"], _guest_memory)],
        lambda: wire.error_of(response),
    ):
        with contextlib.suppress(wasmhost.GuestProtocolError):
            check()


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=512))
def test_random_bytes_only_ever_raise_protocol_errors(data):
    with contextlib.suppress(wasmhost.GuestProtocolError):
        _consume(data)


msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text()
    | st.binary(max_size=64)
    | st.builds(_ref, st.integers(0, 80), st.integers(0, 80))
    | st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=12)),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "name",
                    "dtype",
                    "shape",
                    "data",
                    "outputs",
                    "inputs",
                    "meta",
                    "error",
                    "code",
                    "message",
                    "x",
                ]
            ),
            children,
            max_size=5,
        )
    ),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(msgpack_values)
def test_random_structures_only_ever_raise_protocol_errors(value):
    with contextlib.suppress(wasmhost.GuestProtocolError):
        _consume(msgpack.packb(value, use_bin_type=True))


# --- Limits ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("512MiB", 512 * 2**20),
        ("512M", 512 * 2**20),
        ("1GB", 10**9),
        ("1.5GiB", 3 * 2**29),
        ("64k", 65536),
        ("64 KB", 64000),
        ("100", 100),
        (4096, 4096),
    ],
)
def test_sizes(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("bad", ["lots", "-1MiB", "12XB", "", "1e9", True, -5, None, 1.5])
def test_bad_sizes(bad):
    with pytest.raises(wasmhost.InvalidArgument):
        parse_size(bad)


def test_limits_defaults_and_validation():
    limits = Limits()
    assert limits.memory == 512 * 2**20 and limits.timeout == 30.0 and limits.fuel is None
    assert Limits(memory="1GiB").memory == 2**30
    for bad in [
        {"memory": "1MiB"},
        {"memory": "5GiB"},
        {"timeout": 0},
        {"timeout": -1},
        {"timeout": "10"},
        {"timeout": float("nan")},
        {"fuel": 0},
        {"fuel": 1.5},
        {"plan_cache": 0},
        {"max_model_size": "huge"},
    ]:
        with pytest.raises(wasmhost.InvalidArgument):
            Limits(**bad)
