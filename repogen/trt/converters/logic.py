"""Comparisons, where, logical and bitwise ops, isnan.

TensorRT compares with EQUAL / GREATER / LESS only (bool out; int32/int64/fp16/fp32 in) and has AND / OR /
XOR for bool only; the rest is spelled with those so that NaN behaves as in Paddle (``x <= NaN`` is false).
Integer bitwise ops have no TensorRT layer: they work on the bits, taken apart with floor divisions.
"""

from __future__ import annotations

import numpy as np

from repogen.trt.helpers import tensors as H
from repogen.trt.converter_table import converter, refuse


def _comparable(ctx, t):
    # EQUAL/GREATER/LESS do not take bool or 8-bit types
    return t if t.dtype.name in ("FLOAT", "HALF", "INT32", "INT64") else ctx.cast(t, ctx.trt.DataType.INT32)


def _pair(ctx, op):
    return _comparable(ctx, ctx.input(op, "x")), _comparable(ctx, ctx.input(op, "y")), int(ctx.attr(op, "axis", default=-1))


def _bool_ew(ctx, a, b, trt_op: str):
    a, b = H.broadcast_pair(ctx, a, b)
    return ctx.named(ctx.network.add_elementwise(a, b, getattr(ctx.trt.ElementWiseOperation, trt_op))).get_output(0)


#: canonical op -> (TensorRT comparisons OR-ed together, negate)
COMPARISONS = {
    "equal": (("EQUAL",), False), "not_equal": (("EQUAL",), True),
    "less_than": (("LESS",), False), "greater_than": (("GREATER",), False),
    "less_equal": (("LESS", "EQUAL"), False), "greater_equal": (("GREATER", "EQUAL"), False),
}


def _comparison(trt_ops: tuple[str, ...], negate: bool):
    def convert(ctx, op):
        x, y, axis = _pair(ctx, op)
        parts = [H.ew(ctx, x, y, t, axis) for t in trt_ops]
        out = parts[0] if len(parts) == 1 else _bool_ew(ctx, parts[0], parts[1], "OR")
        ctx.output(op, ctx.cast(H.unary(ctx, out, "NOT") if negate else out, H.out_dtype(ctx, op)))
    return convert


for _canon, (_ops, _neg) in COMPARISONS.items():
    converter(_canon)(_comparison(_ops, _neg))


def _as_bool(ctx, t):
    # Paddle's logical ops read any nonzero value as true
    return ctx.cast(t, ctx.trt.DataType.BOOL)


@converter("logical_and", "logical_or", "logical_xor")
def logical_binary(ctx, op):
    trt_op = {"logical_and": "AND", "logical_or": "OR", "logical_xor": "XOR"}[op.type]
    out = _bool_ew(ctx, _as_bool(ctx, ctx.input(op, "x")), _as_bool(ctx, ctx.input(op, "y")), trt_op)
    ctx.output(op, ctx.cast(out, H.out_dtype(ctx, op)))


@converter("logical_not")
def logical_not(ctx, op):
    ctx.output(op, ctx.cast(H.unary(ctx, _as_bool(ctx, ctx.input(op, "x")), "NOT"), H.out_dtype(ctx, op)))


@converter("isnan")
def isnan(ctx, op):
    x = ctx.input(op, "x")
    out = H.unary(ctx, x, "ISNAN") if ctx.is_float(x) else H.fill(ctx, H.dims_of(ctx, x), False, ctx.trt.DataType.BOOL)
    ctx.output(op, out)


@converter("where")
def where(ctx, op):
    cond = _as_bool(ctx, ctx.input(op, "condition"))
    x, y = ctx.input(op, "x"), ctx.input(op, "y")
    if x.dtype != y.dtype:
        want = H.out_dtype(ctx, op)
        x, y = ctx.cast(x, want), ctx.cast(y, want)
    ctx.output(op, H.select(ctx, cond, x, y))


# --- bitwise ---------------------------------------------------------------------------------------------
#: integer type name -> (bits, signed)
_INT_BITS = {"INT8": (8, True), "UINT8": (8, False), "INT32": (32, True), "INT64": (64, True)}


def _bits(ctx, t, nbits: int, signed: bool):
    """t (INT64) -> (value bits [..., nbits - signed] as 0/1 INT64, sign bit as 0/1 INT64 or None).

    bit k = floor(t / 2^k) mod 2 holds for two's complement negatives too (floor division is an arithmetic
    shift); the sign bit weighs -2^(n-1), which 2^k with k = n - 1 cannot express in int64.
    """
    low = nbits - 1 if signed else nbits
    pow2 = ctx.const(np.asarray([1 << k for k in range(low)], dtype=np.int64))
    q = H.ew(ctx, H.unsqueeze(ctx, t, [H.rank(t)]), pow2, "FLOOR_DIV")
    bits = H.sub(ctx, q, H.mul(ctx, H.ew(ctx, q, 2, "FLOOR_DIV"), 2))
    sign = ctx.cast(H.ew(ctx, t, 0, "LESS"), ctx.trt.DataType.INT64) if signed else None
    return bits, sign, pow2


def _from_bits(ctx, bits, sign, pow2, nbits: int):
    low = H.reduce(ctx, H.mul(ctx, bits, pow2), "SUM", [H.rank(bits) - 1], False)
    if sign is None:
        return low
    return H.add(ctx, low, H.mul(ctx, sign, -(1 << (nbits - 1))))


def _bit_op(ctx, a, b, kind: str):
    """and: a*b, or: max(a, b), xor: |a - b| on 0/1 tensors."""
    if kind == "and":
        return H.mul(ctx, a, b)
    if kind == "or":
        return H.maximum(ctx, a, b)
    return H.unary(ctx, H.sub(ctx, a, b), "ABS")


@converter("bitwise_and", "bitwise_or", "bitwise_xor")
def bitwise_binary(ctx, op):
    kind = op.type.split("_")[1]
    x, y = ctx.input(op, "x"), ctx.input(op, "y")
    want = H.out_dtype(ctx, op)
    if want == ctx.trt.DataType.BOOL:
        trt_op = {"and": "AND", "or": "OR", "xor": "XOR"}[kind]
        return ctx.output(op, _bool_ew(ctx, _as_bool(ctx, x), _as_bool(ctx, y), trt_op))
    if want.name not in _INT_BITS:
        raise ctx.fail(f"bitwise ops on {want.name} are not supported")
    nbits, signed = _INT_BITS[want.name]
    i64 = ctx.trt.DataType.INT64
    x, y = H.broadcast_pair(ctx, ctx.cast(x, i64), ctx.cast(y, i64))
    bx, sx, pow2 = _bits(ctx, x, nbits, signed)
    by, sy, _ = _bits(ctx, y, nbits, signed)
    sign = _bit_op(ctx, sx, sy, kind) if signed else None
    ctx.output(op, ctx.cast(_from_bits(ctx, _bit_op(ctx, bx, by, kind), sign, pow2, nbits), want))


@converter("bitwise_not")
def bitwise_not(ctx, op):
    x = ctx.input(op, "x")
    want = H.out_dtype(ctx, op)
    if want == ctx.trt.DataType.BOOL:
        return ctx.output(op, H.unary(ctx, _as_bool(ctx, x), "NOT"))
    if want.name not in _INT_BITS:
        raise ctx.fail(f"bitwise_not on {want.name} is not supported")
    nbits, signed = _INT_BITS[want.name]
    if signed:  # two's complement: ~x == -x - 1
        ctx.output(op, ctx.cast(H.sub(ctx, H.mul(ctx, x, -1), 1), want))
    else:  # unsigned n bits: ~x == 2^n - 1 - x
        ctx.output(op, ctx.cast(H.sub(ctx, (1 << nbits) - 1, ctx.cast(x, ctx.trt.DataType.INT64)), want))


# what these converters refuse (repogen ops --refused, docs/refused.md)
refuse(("bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_not"), "on a type other than bool / int32 / int64",
       "TensorRT has no such bitwise type")
