"""A WebAssembly module's binary format (the core spec's chapter 5) at the level of its
sections: enough to read a module's imports, memories, globals, exports and data segments,
and to write a module back with some of those sections replaced, every other section (the
code, above all) copied byte for byte.

No library on PyPI writes modules and is kept up (wasm-tools' Python package only reads),
and a snapshot needs only this much. What it writes is checked by wasmtime when compiled,
and by `wasm-tools validate` in the tests.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from ..errors import GuestProtocolError

MAGIC = b"\0asm\x01\0\0\0"

CUSTOM, TYPE, IMPORT, FUNCTION, TABLE, MEMORY, GLOBAL, EXPORT = range(8)
START, ELEMENT, CODE, DATA, DATACOUNT = range(8, 13)
#: Where each known section goes, by the spec's order (custom sections go anywhere).
_ORDER = {
    TYPE: 1,
    IMPORT: 2,
    FUNCTION: 3,
    TABLE: 4,
    MEMORY: 5,
    13: 6,  # tag
    GLOBAL: 7,
    EXPORT: 8,
    START: 9,
    ELEMENT: 10,
    DATACOUNT: 11,
    CODE: 12,
    DATA: 13,
}

# External kinds, in imports and exports.
FUNC_KIND, TABLE_KIND, MEMORY_KIND, GLOBAL_KIND, TAG_KIND = range(5)

I32, I64, F32, F64 = 0x7F, 0x7E, 0x7D, 0x7C

# Constant-expression opcodes.
_END = 0x0B
_CONST_IMMEDIATE = {0x41: "s", 0x42: "s", 0x43: 4, 0x44: 8, 0x23: "u", 0xD2: "u", 0xD0: 1}
_CONST_ARITH = {0x6A, 0x6B, 0x6C, 0x7C, 0x7D, 0x7E}


class WasmFormatError(GuestProtocolError):
    """The module is not well-formed WebAssembly, or uses what this reader does not know."""


@dataclass
class Section:
    id: int
    payload: bytes


@dataclass(frozen=True)
class Limits:
    """A memory's or a table's size limits, in pages or elements."""

    min: int
    max: int | None
    flags: int = 0

    @property
    def shared(self) -> bool:
        return bool(self.flags & 0x02)

    @property
    def is64(self) -> bool:
        return bool(self.flags & 0x04)


@dataclass(frozen=True)
class Global:
    valtype: int
    mutable: bool
    init: bytes  # the constant expression, `end` included


@dataclass(frozen=True)
class Export:
    name: str
    kind: int
    index: int


@dataclass
class Module:
    """A module's sections, and what was read from the ones a snapshot rewrites."""

    sections: list[Section]
    imported: dict[int, int] = field(default_factory=dict)  # kind -> how many imported
    memories: list[Limits] = field(default_factory=list)
    tables: int = 0
    globals: list[Global] = field(default_factory=list)
    exports: list[Export] = field(default_factory=list)
    #: Each data segment's mode: "active" (memory 0, constant offset) or "passive".
    data_modes: list[str] = field(default_factory=list)

    def section(self, id: int) -> Section | None:
        return next((s for s in self.sections if s.id == id), None)


# --- reading ------------------------------------------------------------------------


class Reader:
    def __init__(self, data: bytes, what: str = "module") -> None:
        self.data = memoryview(data)
        self.pos = 0
        self.what = what

    def done(self) -> bool:
        return self.pos >= len(self.data)

    def fail(self, why: str) -> WasmFormatError:
        return WasmFormatError(f"malformed WebAssembly ({self.what}, byte {self.pos}): {why}")

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise self.fail("unexpected end")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise self.fail("unexpected end")
        out = bytes(self.data[self.pos : self.pos + n])
        self.pos += n
        return out

    def u32(self) -> int:
        result = shift = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            if b < 0x80:
                break
            shift += 7
            if shift > 28:
                raise self.fail("LEB128 integer too long")
        if result >= 1 << 32:
            raise self.fail("u32 out of range")
        return result

    def sleb(self, bits: int) -> int:
        result = shift = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                break
            if shift >= bits + 7:
                raise self.fail("LEB128 integer too long")
        if b & 0x40:
            result -= 1 << shift
        return result

    def name(self) -> str:
        try:
            return self.take(self.u32()).decode()
        except UnicodeDecodeError:
            raise self.fail("a name is not UTF-8") from None

    def limits(self) -> Limits:
        flags = self.byte()
        if flags & ~0x07:
            raise self.fail(f"unknown limits flags {flags:#x}")
        wide = bool(flags & 0x04)
        minimum = self._size(wide)
        maximum = self._size(wide) if flags & 0x01 else None
        return Limits(minimum, maximum, flags)

    def _size(self, wide: bool) -> int:
        if not wide:
            return self.u32()
        return self.sleb(64) & ((1 << 64) - 1)

    def const_expr(self) -> bytes:
        """A constant expression, `end` included, as its bytes."""
        start = self.pos
        while True:
            op = self.byte()
            if op == _END:
                return bytes(self.data[start : self.pos])
            immediate = _CONST_IMMEDIATE.get(op)
            if immediate == "s":
                self.sleb(64)
            elif immediate == "u":
                self.u32()
            elif isinstance(immediate, int):
                self.take(immediate)
            elif op == 0xFD and self.u32() == 12:  # v128.const
                self.take(16)
            elif op not in _CONST_ARITH:
                raise self.fail(f"opcode {op:#x} in a constant expression")


def sections(wasm: bytes) -> list[Section]:
    """The module's sections, in order.

    Raises:
        WasmFormatError: not a WebAssembly 1.0 binary module.
    """
    if wasm[:8] != MAGIC:
        raise WasmFormatError("not a WebAssembly module (bad magic or version)")
    r = Reader(wasm)
    r.pos = 8
    found = []
    while not r.done():
        sid = r.byte()
        found.append(Section(sid, r.take(r.u32())))
    return found


def parse(wasm: bytes) -> Module:
    """The module, with what a snapshot needs read from its sections.

    Raises:
        WasmFormatError: malformed, or a section this reader cannot read.
    """
    module = Module(sections(wasm))
    for s in module.sections:
        r = Reader(s.payload, f"section {s.id}")
        if s.id == IMPORT:
            for _ in range(r.u32()):
                r.name()
                r.name()
                kind = r.byte()
                module.imported[kind] = module.imported.get(kind, 0) + 1
                if kind == FUNC_KIND:
                    r.u32()
                elif kind == TABLE_KIND:
                    r.byte()
                    r.limits()
                elif kind == MEMORY_KIND:
                    r.limits()
                elif kind == GLOBAL_KIND:
                    r.take(2)
                elif kind == TAG_KIND:
                    r.take(1)
                    r.u32()
                else:
                    raise r.fail(f"unknown import kind {kind}")
        elif s.id == TABLE:
            module.tables = r.u32()
            for _ in range(module.tables):
                if r.byte() == 0x40:  # a table with an initial value: 0x40 0x00 rt lim expr
                    r.take(2)
                    r.limits()
                    r.const_expr()
                else:
                    r.limits()
        elif s.id == MEMORY:
            module.memories = [r.limits() for _ in range(r.u32())]
        elif s.id == GLOBAL:
            for _ in range(r.u32()):
                valtype = r.byte()
                if valtype in (0x63, 0x64):  # (ref null? ht): a heap type follows
                    r.sleb(33)
                mutable = r.byte()
                if mutable not in (0, 1):
                    raise r.fail(f"bad mutability {mutable}")
                module.globals.append(Global(valtype, bool(mutable), r.const_expr()))
        elif s.id == EXPORT:
            for _ in range(r.u32()):
                module.exports.append(Export(r.name(), r.byte(), r.u32()))
        elif s.id == DATA:
            for _ in range(r.u32()):
                mode = r.u32()
                if mode == 1:
                    module.data_modes.append("passive")
                elif mode in (0, 2):
                    if mode == 2 and r.u32() != 0:
                        raise r.fail("a data segment for a memory other than the first")
                    r.const_expr()
                    module.data_modes.append("active")
                else:
                    raise r.fail(f"unknown data segment mode {mode}")
                r.take(r.u32())
        if s.id in (IMPORT, TABLE, MEMORY, GLOBAL, EXPORT, DATA) and not r.done():
            raise r.fail("bytes left over at the end of the section")
    return module


# --- writing ------------------------------------------------------------------------


def u32(n: int) -> bytes:
    if not 0 <= n < 1 << 32:
        raise ValueError(f"u32 out of range: {n}")
    return uleb(n)


def uleb(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def sleb(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if (n == 0 and not b & 0x40) or (n == -1 and b & 0x40):
            out.append(b)
            return bytes(out)
        out.append(b | 0x80)


def name(text: str) -> bytes:
    data = text.encode()
    return u32(len(data)) + data


def vector(items: list[bytes]) -> bytes:
    return u32(len(items)) + b"".join(items)


def encode_limits(limits: Limits) -> bytes:
    if limits.is64:
        raise ValueError("64-bit limits are not written here")
    flags = limits.flags & ~0x01 | (0x01 if limits.max is not None else 0)
    out = bytes([flags]) + u32(limits.min)
    return out + (u32(limits.max) if limits.max is not None else b"")


def encode_global(g: Global) -> bytes:
    return bytes([g.valtype, int(g.mutable)]) + g.init


def const_init(valtype: int, value: int) -> bytes:
    """`T.const value; end` for an integer global of type `valtype` (i32 or i64)."""
    if valtype == I32:
        value = struct.unpack("<i", struct.pack("<I", value & 0xFFFFFFFF))[0]
        return b"\x41" + sleb(value) + bytes([_END])
    if valtype == I64:
        value = struct.unpack("<q", struct.pack("<Q", value & (1 << 64) - 1))[0]
        return b"\x42" + sleb(value) + bytes([_END])
    raise ValueError(f"no integer constant of value type {valtype:#x}")


def encode_export(e: Export) -> bytes:
    return name(e.name) + bytes([e.kind]) + u32(e.index)


def active_segment(offset: int, data: bytes | memoryview) -> bytes:
    """An active data segment of memory 0 at constant (i32) `offset`."""
    return (
        b"\x00"
        + const_init(I32, offset)
        + u32(len(data))
        + (data if isinstance(data, bytes) else bytes(data))
    )


def build(sections: list[Section]) -> bytes:
    """The module made of `sections`, which must be in the spec's order."""
    out = [MAGIC]
    for s in sections:
        out += [bytes([s.id]), u32(len(s.payload)), s.payload]
    return b"".join(out)


def replace(sections: list[Section], new: Section | None, id: int) -> list[Section]:
    """`sections` with section `id` replaced by `new` (inserted in order if it had none;
    removed if `new` is None)."""
    out = [s for s in sections if s.id != id]
    if new is None:
        return out
    at = next((i for i, s in enumerate(sections) if s.id == id), None)
    if at is not None:
        return [*sections[:at], new, *sections[at + 1 :]]
    rank = _ORDER[id]
    for i, s in enumerate(out):
        if s.id != CUSTOM and _ORDER.get(s.id, 0) > rank:
            return [*out[:i], new, *out[i:]]
    # After the last known section, before trailing custom sections (the name section).
    last = max((i for i, s in enumerate(out) if s.id != CUSTOM), default=-1)
    return [*out[: last + 1], new, *out[last + 1 :]]
