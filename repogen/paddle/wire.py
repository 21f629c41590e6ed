"""A bounds-checked protobuf wire-format decoder, just enough for Paddle's framework.proto messages.

Every length is checked against the bytes that remain before it is used, so a corrupt file ends in a
ModelFormatError carrying the byte offset, never in an over-sized allocation or a hang.
"""

from __future__ import annotations

import struct
from typing import Iterator

from repogen.errors import ModelFormatError

VARINT, FIXED64, LEN, FIXED32 = 0, 1, 2, 5

_F32 = struct.Struct("<f")
_F64 = struct.Struct("<d")


class Wire:
    """A view on one protobuf-encoded buffer; offsets are absolute within it."""

    def __init__(self, data: bytes | memoryview, path: object):
        self.data = data
        self.path = path

    def fail(self, detail: str, offset: int) -> ModelFormatError:
        return ModelFormatError(self.path, detail, offset)

    def varint(self, pos: int, end: int) -> tuple[int, int]:
        data = self.data
        result = 0
        shift = 0
        start = pos
        while True:
            if pos >= end:
                raise self.fail("truncated varint", start)
            b = data[pos]
            pos += 1
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result, pos
            shift += 7
            if shift >= 70:
                raise self.fail("varint longer than 10 bytes", start)

    def fields(self, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
        """Yield (field number, wire type, value, value end) for each field of the message in [start, end).

        value is the integer for VARINT/FIXED32/FIXED64 (raw bits for the fixed ones) and the start offset of
        the payload for LEN (the payload spans [value, value end)).
        """
        data = self.data
        pos = start
        varint = self.varint
        while pos < end:
            key_pos = pos
            key = data[pos]
            if key < 0x80:  # one-byte keys are the norm (field numbers < 16)
                pos += 1
            else:
                key, pos = varint(pos, end)
            number, wtype = key >> 3, key & 7
            if number == 0:
                raise self.fail("field number 0", key_pos)
            if wtype == VARINT:
                if pos < end and data[pos] < 0x80:
                    value = data[pos]
                    pos += 1
                else:
                    value, pos = varint(pos, end)
                yield number, wtype, value, pos
            elif wtype == LEN:
                if pos < end and data[pos] < 0x80:
                    length = data[pos]
                    pos += 1
                else:
                    length, pos = varint(pos, end)
                if length > end - pos:
                    raise self.fail(f"field {number} length {length} exceeds the {end - pos} bytes left", key_pos)
                yield number, wtype, pos, pos + length
                pos += length
            elif wtype == FIXED32:
                if pos + 4 > end:
                    raise self.fail(f"truncated fixed32 field {number}", key_pos)
                yield number, wtype, int.from_bytes(data[pos:pos + 4], "little"), pos + 4
                pos += 4
            elif wtype == FIXED64:
                if pos + 8 > end:
                    raise self.fail(f"truncated fixed64 field {number}", key_pos)
                yield number, wtype, int.from_bytes(data[pos:pos + 8], "little"), pos + 8
                pos += 8
            else:
                raise self.fail(f"unsupported wire type {wtype} for field {number}", key_pos)

    # --- typed accessors -------------------------------------------------------------------------------

    def string(self, start: int, end: int) -> str:
        try:
            return str(self.data[start:end], "utf-8")
        except UnicodeDecodeError as exc:
            raise self.fail(f"invalid UTF-8 string ({exc.reason})", start + exc.start) from None

    def expect(self, wtype: int, want: int, number: int, pos: int) -> None:
        if wtype != want:
            raise self.fail(f"field {number} has wire type {wtype}, expected {want}", pos)

    def append_ints(self, out: list[int], wtype: int, value: int, end: int, signed: bool = True) -> None:
        """Append one unpacked varint or a whole packed run to out (proto2 writers use either)."""
        if wtype == VARINT:
            out.append(_signed(value) if signed else value)
        elif wtype == LEN:
            pos = value
            while pos < end:
                v, pos = self.varint(pos, end)
                out.append(_signed(v) if signed else v)
        else:
            raise self.fail(f"integer field has wire type {wtype}", value)

    def append_floats(self, out: list[float], wtype: int, value: int, end: int, double: bool) -> None:
        size, codec, want = (8, _F64, FIXED64) if double else (4, _F32, FIXED32)
        if wtype == want:
            out.append(codec.unpack(value.to_bytes(size, "little"))[0])
        elif wtype == LEN:
            if (end - value) % size:
                raise self.fail(f"packed float run of {end - value} bytes is not a multiple of {size}", value)
            out.extend(x[0] for x in codec.iter_unpack(bytes(self.data[value:end])))
        else:
            raise self.fail(f"float field has wire type {wtype}", value)


def _signed(v: int) -> int:
    """Protobuf int32/int64 are two's complement 64-bit varints."""
    return v - (1 << 64) if v >= 1 << 63 else v


def f32(bits: int) -> float:
    return _F32.unpack(bits.to_bytes(4, "little"))[0]


def f64(bits: int) -> float:
    return _F64.unpack(bits.to_bytes(8, "little"))[0]


signed = _signed
