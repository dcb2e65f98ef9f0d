"""The host against small guests (WAT) that implement ABI v1 badly or maliciously.

Each must end in a precise wasmhost error: never a segfault, a hang, an
unbounded allocation or another exception.
"""

from __future__ import annotations

import struct

import msgpack
import numpy as np
import pytest
from guests import LOAD_AT, LOAD_OK, RUN_AT, RUN_OK, guest, wat_bytes
from guests import guest_bytes as _ref

import wasmhost
from wasmhost.runtime.isolate import Isolate

X = {"x": np.ones(2, np.float32)}


def _run_with_data(data: object) -> bytes:
    return msgpack.packb({"outputs": [{**RUN_OK["outputs"][0], "data": data}]})


def test_a_well_behaved_fake_guest_works(use_guest):
    sess = use_guest(guest())
    assert [i.name for i in sess.get_inputs()] == ["x"]
    (y,) = sess.run(None, X)
    np.testing.assert_array_equal(y, np.zeros(2, np.float32))


def test_outputs_left_in_guest_memory_are_read_there(use_guest):
    # The run response's own bytes, read as two float32s, from where the guest keeps them.
    run = _run_with_data(_ref(RUN_AT, 8))
    (y,) = use_guest(guest(run=run)).run(None, X)
    np.testing.assert_array_equal(y, np.frombuffer(run[:8], np.float32))


@pytest.mark.parametrize(
    ("ptr", "length"),
    [
        ("i32.const 131000", "i32.const 4096"),  # runs past the end of memory
        ("i32.const -1", "i32.const 16"),  # 0xffffffff
        ("i32.const 0", "i32.const -1"),  # a 4 GiB length
        ("i32.const 200000", "i32.const 0"),  # outside memory, even if empty
    ],
)
def test_result_out_of_bounds(use_guest, ptr, length):
    with pytest.raises(wasmhost.GuestProtocolError, match="past its memory"):
        use_guest(guest(result_ptr=ptr, result_len=length))


@pytest.mark.parametrize(
    ("load", "run", "message"),
    [
        (b"\xc1\xc1\xc1", None, "malformed"),
        (msgpack.packb({"inputs": "x", "outputs": []}), None, "not a list"),
        (msgpack.packb([1, 2]), None, "not a map"),
        (None, msgpack.packb({"outputs": [{**RUN_OK["outputs"][0], "shape": [3]}]}), "needs 12"),
        (None, msgpack.packb({"outputs": [{**RUN_OK["outputs"][0], "dtype": "obj"}]}), "dtype"),
        (None, msgpack.packb({"outputs": []}), "0 outputs returned"),
        (None, b"\xdd\xff\xff\xff\xff", "malformed"),
        (None, _run_with_data(_ref(131070, 8)), "past its memory"),
        (None, _run_with_data(_ref(0xFFFFFFFF, 8)), "past its memory"),
        (None, _run_with_data(_ref(0, 4)), "needs 8 bytes, has 4"),
        (None, _run_with_data(msgpack.ExtType(1, bytes(9))), "ext type 1 of 9 bytes"),
        (None, _run_with_data(msgpack.ExtType(7, bytes(8))), "ext type 7"),
    ],
)
def test_malformed_responses(use_guest, load, run, message):
    with pytest.raises(wasmhost.GuestProtocolError, match=message):
        use_guest(guest(load, run)).run(None, X)


def test_error_status_without_error_map(use_guest):
    with pytest.raises(wasmhost.GuestProtocolError, match="error map"):
        use_guest(guest(load_status=1))


def test_error_codes_map_to_classes(use_guest):
    for code, cls in [
        ("invalid_model", wasmhost.InvalidModel),
        ("unsupported_model", wasmhost.UnsupportedModel),
        ("weird", wasmhost.GuestProtocolError),
    ]:
        err = msgpack.packb({"error": {"code": code, "message": "why"}})
        with pytest.raises(cls, match="why"):
            use_guest(guest(err, load_status=1))


def test_endless_alloc_times_out(use_guest):
    wat = guest(alloc="(loop $l (br $l)) i32.const 0")
    with pytest.raises(wasmhost.TimeoutExceeded):
        use_guest(wat, wasmhost.Limits(timeout=0.1))


def test_trap_in_initialize(use_guest):
    with pytest.raises(wasmhost.GuestCrash, match="initializing"):
        use_guest(guest(initialize="unreachable"))


@pytest.mark.parametrize("missing", ["wh_run", "wh_result_len", "memory"])
def test_missing_exports(use_guest, missing):
    with pytest.raises(wasmhost.GuestProtocolError, match="lacks ABI"):
        use_guest(guest(omit=missing))


def test_wrong_abi_version(use_guest):
    with pytest.raises(wasmhost.GuestProtocolError, match="ABI 2"):
        use_guest(guest(abi=2))


def write_stderr(text: bytes, at: int = 40000) -> tuple[str, str]:
    """WAT that writes `text` to stderr (fd 2) through WASI fd_write, and its data."""
    data = f'(data (i32.const {at}) "{wat_bytes(text)}")'
    iovec = (
        f"(i32.store (i32.const 39000) (i32.const {at}))"
        f"(i32.store (i32.const 39004) (i32.const {len(text)}))"
    )
    write = "(call $fd_write (i32.const 2) (i32.const 39000) (i32.const 1) (i32.const 39008))"
    return f"{iovec} (drop {write})", data


def test_panic_message_reaches_the_caller(use_guest):
    call, data = write_stderr(
        b"\nthread '<unnamed>' panicked at src/ops/x.rs:12:5:\nindex out of bounds: 9 > 4\n"
    )
    wat = guest(extra=data, initialize=f"{call} unreachable")
    with pytest.raises(wasmhost.GuestCrash) as crash:
        use_guest(wat)
    assert crash.value.panic == "index out of bounds: 9 > 4 (at src/ops/x.rs:12:5)"


def test_allocation_failure_is_memory_limit(use_guest):
    call, data = write_stderr(b"memory allocation of 1073741824 bytes failed\n")
    with pytest.raises(wasmhost.MemoryLimitExceeded, match="1 GiB"):
        use_guest(guest(extra=data, initialize=f"{call} unreachable"))


def test_stdio_flood_is_bounded(use_guest):
    call, data = write_stderr(b"x" * 1000)
    # 30,000 writes of 1 KB while the host asks for a request buffer: 30 MB offered.
    count = "(local.set $i (i32.add (local.get $i) (i32.const 1)))"
    again = "(br_if $l (i32.lt_u (local.get $i) (i32.const 30000)))"
    flood = f"(local $i i32) (loop $l {call} {count} {again})"
    wat = guest(extra=data, alloc=f"{flood} i32.const 4096")
    limits = wasmhost.Limits(max_stdio="4KiB")
    use_guest(wat, limits)
    isolate = Isolate(b"any model", limits)
    assert isolate.stderr.total == 30_000_000
    assert isolate.stderr.buf == b"x" * 4096


@pytest.mark.parametrize(
    ("omit", "extra", "message"),
    [
        (
            "wh_run",
            '(func (export "wh_run") (param i64 i32) (result i32) i32.const 0)',
            r"`wh_run` is \(i64, i32\) -> \(i32\); ABI v1 wants \(i32, i32\) -> \(i32\)",
        ),
        (
            "wh_result_len",
            '(func (export "wh_result_len") (result f32) f32.const 1)',
            r"`wh_result_len` is \(\) -> \(f32\)",
        ),
        ("memory", '(global (export "memory") i32 (i32.const 0))', "`memory` is not a memory"),
    ],
)
def test_exports_with_the_wrong_types(use_guest, omit, extra, message):
    with pytest.raises(wasmhost.GuestProtocolError, match=message):
        use_guest(guest(omit=omit, extra=extra))


def test_the_checked_call_path_gives_the_same_results(use_guest, monkeypatch):
    """Should wasmtime-py lack the unchecked entry point, calls go through Func.__call__."""
    from wasmhost.runtime import fastcall

    monkeypatch.setattr(fastcall, "_UNCHECKED", False)
    sess = use_guest(guest())
    (y,) = sess.run(None, X)
    np.testing.assert_array_equal(y, np.zeros(2, np.float32))
    with pytest.raises(wasmhost.GuestCrash):
        use_guest(guest(initialize="unreachable"))


def _cell(address: str, data: str = "") -> str:
    return f'(func (export "wh_result_cell") (result i32) {address}) {data}'


def test_a_result_cell_is_where_the_host_finds_responses(use_guest):
    # The cell, a static (address, length) that the host reads instead of calling
    # wh_result_ptr and wh_result_len: here it always names the load response.
    load = msgpack.packb(LOAD_OK)
    cell = struct.pack("<II", LOAD_AT, len(load))
    wat = guest(
        result_ptr="unreachable",
        result_len="unreachable",
        extra=_cell("i32.const 512", f'(data (i32.const 512) "{wat_bytes(cell)}")'),
    )
    sess = use_guest(wat)
    assert [i.name for i in sess.get_inputs()] == ["x"]


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        (_cell("i32.const 131068"), "past its memory"),  # the cell itself runs off the end
        (_cell("i32.const -8"), "past its memory"),
        (
            _cell(
                "i32.const 512",
                f'(data (i32.const 512) "{wat_bytes(struct.pack("<II", 131000, 100))}")',
            ),
            "past its memory",
        ),
        ('(func (export "wh_result_cell") (param i32) (result i32) i32.const 0)', "wh_result_cell"),
    ],
)
def test_bad_result_cells(use_guest, cell, message):
    with pytest.raises(wasmhost.GuestProtocolError, match=message):
        use_guest(guest(extra=cell))
