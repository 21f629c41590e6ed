"""A bounds-checked protobuf wire-format decoder, just enough for Paddle's framework.proto messages.

Every length is checked against the bytes that remain before it is used, so a corrupt file ends in a
ModelFormatError carrying the byte offset, never in an over-sized allocation or a hang.
"""

from __future__ import annotations

import struct
from typing import Iterator

from repogen.errors import ModelFormatError
from repogen.paddle.framework_schema import ENUMS, FIELDS, REQUIRED

VARINT, FIXED64, LEN, FIXED32 = 0, 1, 2, 5
WIRE_NAMES = {VARINT: "varint", FIXED64: "fixed64", LEN: "length-delimited", 3: "group start", 4: "group end",
              FIXED32: "fixed32"}

_F32 = struct.Struct("<f")
_F64 = struct.Struct("<d")
_U64_MASK = (1 << 64) - 1


def decode_varint(data: bytes | memoryview, pos: int, end: int) -> tuple[int, int]:
    """The one varint decoder: (value, position after it); ValueError when truncated or over 10 bytes."""
    if pos < end:
        b = data[pos]
        if b < 0x80:  # one-byte varints are the norm (small ints, lengths, keys)
            return b, pos + 1
    result = 0
    shift = 0
    while pos < end:
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result & _U64_MASK, pos  # bits beyond 64 are dropped, as protobuf's parsers do
        shift += 7
        if shift >= 70:
            raise ValueError("varint longer than 10 bytes")
    raise ValueError("truncated varint")


class Wire:
    """A view on one protobuf-encoded buffer; offsets are absolute within it."""

    def __init__(self, data: bytes | memoryview, path: object):
        self.data = data
        self.path = path

    def fail(self, detail: str, offset: int) -> ModelFormatError:
        return ModelFormatError(self.path, detail, offset)

    def varint(self, pos: int, end: int) -> tuple[int, int]:
        try:
            return decode_varint(self.data, pos, end)
        except ValueError as exc:
            raise self.fail(str(exc), pos) from None

    def fields(self, start: int, end: int, msg: str) -> Iterator[tuple[int, int, int, int]]:
        """Yield (field number, wire type, value, value end) for each field of message msg in [start, end).

        value is the integer for VARINT/FIXED32/FIXED64 (raw bits for the fixed ones) and the start offset of
        the payload for LEN (the payload spans [value, value end)). A field framework.proto declares must
        have the wire type it gives (as Google protobuf and Paddle require); fields it does not declare are
        skipped, as protobuf keeps them as unknown fields.
        """
        schema = FIELDS[msg]
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
                raise self.fail(f"{msg}: field number 0", key_pos)
            known = schema.get(number)
            if known is not None and not (known[0] >> wtype) & 1:
                want = " or ".join(WIRE_NAMES[t] for t in range(6) if (known[0] >> t) & 1)
                raise self.fail(f"{msg} field {number} has wire type {WIRE_NAMES.get(wtype, wtype)}, "
                                f"framework.proto gives {want}", key_pos)
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
                    raise self.fail(f"{msg} field {number} length {length} exceeds the {end - pos} bytes left",
                                    key_pos)
                yield number, wtype, pos, pos + length
                pos += length
            elif wtype == FIXED32:
                if pos + 4 > end:
                    raise self.fail(f"{msg}: truncated fixed32 field {number}", key_pos)
                yield number, wtype, int.from_bytes(data[pos:pos + 4], "little"), pos + 4
                pos += 4
            elif wtype == FIXED64:
                if pos + 8 > end:
                    raise self.fail(f"{msg}: truncated fixed64 field {number}", key_pos)
                yield number, wtype, int.from_bytes(data[pos:pos + 8], "little"), pos + 8
                pos += 8
            else:
                raise self.fail(f"{msg}: unsupported wire type {wtype} for field {number}", key_pos)

    def check_message(self, msg: str, start: int, end: int, depth: int = 0) -> None:
        """Validate a message the reader does not use: wire types, nested messages, required fields."""
        if self._skim(msg, start, end):
            return
        if depth > 16:  # framework.proto has no recursive message; this only bounds a corrupt schema
            raise self.fail(f"{msg} nested too deeply", start)
        seen = set()
        enums = ENUMS.get(msg, {})
        for num, wt, val, vend in self.fields(start, end, msg):
            seen.add(num)
            if wt == LEN:
                self.check_payload(msg, num, val, vend, depth)
            elif num in enums:
                self.check_enum(msg, num, val, start)
        missing = REQUIRED[msg] - seen
        if missing:
            raise self.fail(f"{msg} lacks required field {min(missing)}", start)

    def _skim(self, msg: str, start: int, end: int) -> bool:
        """True when [start, end) is a valid msg made only of one-byte keys of string and scalar fields (what
        Paddle writes for the attributes the reader skips); False leaves the decision to check_message."""
        simple = _SIMPLE_KEYS[msg]
        enums = _ENUM_KEYS[msg]
        required = REQUIRED[msg]
        data = self.data
        pos = start
        seen = set()
        try:
            while pos < end:
                key = data[pos]
                wire = simple.get(key)
                if wire is None:
                    return False
                if required:
                    seen.add(key >> 3)
                pos += 1
                if wire == LEN:
                    n = data[pos]
                    if n >= 0x80:
                        n, pos = decode_varint(data, pos, end)
                    else:
                        pos += 1
                    pos += n
                elif wire == VARINT:
                    value = data[pos]
                    if value >= 0x80:
                        value, pos = decode_varint(data, pos, end)
                    else:
                        pos += 1
                    if key in enums and value not in enums[key]:
                        return False
                else:
                    pos += 4 if wire == FIXED32 else 8
        except (IndexError, ValueError):
            return False
        return pos == end and required <= seen

    def check_enum(self, msg: str, num: int, value: int, pos: int) -> None:
        """proto2 enums are closed: a value the enum does not declare is not that field (protobuf then finds a
        required one missing)."""
        if value not in ENUMS[msg][num]:
            raise self.fail(f"{msg} field {num}: {signed(value)} is not a value of its enum", pos)

    def check_payload(self, msg: str, num: int, start: int, end: int, depth: int = 0) -> None:
        """Validate the LEN payload of field num of msg when the reader skips it."""
        known = FIELDS[msg].get(num)
        kind = known[1] if known else None
        if kind is None:
            return  # a string, bytes, or an unknown field: any bytes are valid
        if kind == "varint":
            pos = start
            while pos < end:
                value, pos = self.varint(pos, end)
                if num in ENUMS.get(msg, {}):
                    self.check_enum(msg, num, value, start)
        elif kind in ("fixed32", "fixed64"):
            size = 4 if kind == "fixed32" else 8
            if (end - start) % size:
                raise self.fail(f"{msg} field {num}: packed run of {end - start} bytes is not a multiple of {size}",
                                start)
        else:
            self.check_message(kind, start, end, depth + 1)

    # --- typed accessors -------------------------------------------------------------------------------

    def string(self, start: int, end: int) -> str:
        try:
            return str(self.data[start:end], "utf-8")
        except UnicodeDecodeError as exc:
            raise self.fail(f"invalid UTF-8 string ({exc.reason})", start + exc.start) from None

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


def _simple_keys(fields: dict[int, tuple[int, str | None]]) -> dict[int, int]:
    """One-byte keys (field numbers 1-15) of a message's non-message fields in their scalar wire type."""
    keys = {}
    for num, (mask, kind) in fields.items():
        if num < 16 and kind not in FIELDS:
            for wire in (VARINT, FIXED64, FIXED32, LEN):
                if (mask >> wire) & 1 and not (wire == LEN and kind is not None):  # no packed runs
                    keys[num << 3 | wire] = wire
    return keys


_SIMPLE_KEYS = {msg: _simple_keys(fields) for msg, fields in FIELDS.items()}
_ENUM_KEYS = {msg: {num << 3 | VARINT: values for num, values in ENUMS.get(msg, {}).items() if num < 16}
              for msg in FIELDS}


def _signed(v: int) -> int:
    """Protobuf int32/int64 are two's complement 64-bit varints."""
    return v - (1 << 64) if v >= 1 << 63 else v


def f32(bits: int) -> float:
    return _F32.unpack(bits.to_bytes(4, "little"))[0]


def f64(bits: int) -> float:
    return _F64.unpack(bits.to_bytes(8, "little"))[0]


signed = _signed
