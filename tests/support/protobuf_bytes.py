"""Protobuf wire bytes for tests that write or mutate ProgramDesc files by hand."""

from __future__ import annotations


def varint(v: int) -> bytes:
    """Base-128 varint; negative numbers as their 64-bit two's complement, as protobuf writes int64."""
    v &= (1 << 64) - 1
    out = bytearray()
    while True:
        out.append((v & 0x7F) | (0x80 if v > 0x7F else 0))
        v >>= 7
        if not v:
            return bytes(out)


def key(num: int, wire: int) -> bytes:
    return varint(num << 3 | wire)
