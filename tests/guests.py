"""Small guests written in WAT that implement ABI v1 (or break it) piece by piece."""

from __future__ import annotations

import struct

import msgpack

LOAD_OK = {
    "inputs": [{"name": "x", "dtype": "float32", "shape": [2]}],
    "outputs": [{"name": "y", "dtype": "float32", "shape": [2]}],
    "meta": {},
}
RUN_OK = {"outputs": [{"name": "y", "dtype": "float32", "shape": [2], "data": b"\0" * 8}]}
LOAD_AT, RUN_AT = 1024, 16384


def guest_bytes(address: int, length: int) -> msgpack.ExtType:
    """An output payload left in guest memory: ABI v1's ext type 1 (spelled out here, not
    taken from the host's abi.py, so that the tests pin the ABI down), address, length."""
    return msgpack.ExtType(1, struct.pack("<II", address, length))


def wat_bytes(data: bytes) -> str:
    return "".join(f"\\{b:02x}" for b in data)


def guest(
    load: bytes | None = None,
    run: bytes | None = None,
    *,
    result_ptr: str | None = None,
    result_len: str | None = None,
    alloc: str = "i32.const 4096",
    initialize: str = "",
    abi: int = 1,
    load_status: int = 0,
    run_status: int = 0,
    extra: str = "",
    omit: str = "",
) -> str:
    """A guest whose responses and behaviour are given piece by piece."""
    load = msgpack.packb(LOAD_OK) if load is None else load
    run = msgpack.packb(RUN_OK) if run is None else run
    ptr = result_ptr or f"(select (i32.const {RUN_AT}) (i32.const {LOAD_AT}) (global.get $mode))"
    length = result_len or (
        f"(select (i32.const {len(run)}) (i32.const {len(load)}) (global.get $mode))"
    )
    funcs = {
        "_initialize": f'(func (export "_initialize") {initialize})',
        "wh_abi_version": f'(func (export "wh_abi_version") (result i32) i32.const {abi})',
        "wh_alloc": f'(func (export "wh_alloc") (param i32) (result i32) {alloc})',
        "wh_free": '(func (export "wh_free") (param i32 i32))',
        "wh_load": f'(func (export "wh_load") (param i32 i32) (result i32) '
        f"(global.set $mode (i32.const 0)) i32.const {load_status})",
        "wh_run": f'(func (export "wh_run") (param i32 i32) (result i32) '
        f"(global.set $mode (i32.const 1)) i32.const {run_status})",
        "wh_result_ptr": f'(func (export "wh_result_ptr") (result i32) {ptr})',
        "wh_result_len": f'(func (export "wh_result_len") (result i32) {length})',
    }
    body = "\n".join(f for name, f in funcs.items() if name != omit)
    memory = "(memory 2)" if omit == "memory" else '(memory (export "memory") 2)'
    return f"""(module
      (import "wasi_snapshot_preview1" "fd_write"
        (func $fd_write (param i32 i32 i32 i32) (result i32)))
      {memory}
      (global $mode (mut i32) (i32.const 0))
      (data (i32.const {LOAD_AT}) "{wat_bytes(load)}")
      (data (i32.const {RUN_AT}) "{wat_bytes(run)}")
      {body}
      {extra})"""
