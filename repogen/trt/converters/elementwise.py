"""Binary elementwise ops (legacy ``axis`` broadcasting) and unary math."""

from __future__ import annotations

import math

from repogen.trt.helpers import tensors as H
from repogen.trt.converter_table import converter

#: canonical op -> TensorRT ElementWiseOperation
BINARY = {
    "add": "SUM", "subtract": "SUB", "multiply": "PROD", "divide": "DIV", "elementwise_pow": "POW",
    "maximum": "MAX", "minimum": "MIN", "floor_divide": "FLOOR_DIV",
}


def _binary(trt_op: str):
    def convert(ctx, op):
        x, y = ctx.input(op, "x"), ctx.input(op, "y")
        ctx.output(op, H.ew(ctx, x, y, trt_op, axis=int(ctx.attr(op, "axis", default=-1))))
    return convert


for _canon, _trt_op in BINARY.items():
    converter(_canon)(_binary(_trt_op))


@converter("remainder")
def remainder(ctx, op):
    # Paddle's mod takes the divisor's sign (Python semantics): x - floor(x / y) * y
    axis = int(ctx.attr(op, "axis", default=-1))
    x, y = ctx.input(op, "x"), ctx.input(op, "y")
    q = H.ew(ctx, x, y, "FLOOR_DIV", axis)
    ctx.output(op, H.ew(ctx, x, H.ew(ctx, q, y, "PROD", axis), "SUB"))


#: canonical op -> TensorRT UnaryOperation
UNARY = {
    "exp": "EXP", "log": "LOG", "sqrt": "SQRT", "abs": "ABS", "floor": "FLOOR", "ceil": "CEIL", "sin": "SIN",
    "cos": "COS", "tan": "TAN", "asin": "ASIN", "acos": "ACOS", "atan": "ATAN", "sinh": "SINH", "cosh": "COSH",
    "erf": "ERF", "sign": "SIGN", "reciprocal": "RECIP",
}


def _unary(trt_op: str):
    def convert(ctx, op):
        ctx.output(op, H.unary(ctx, ctx.input(op, "x"), trt_op))
    return convert


for _canon, _trt_op in UNARY.items():
    converter(_canon)(_unary(_trt_op))


@converter("rsqrt")
def rsqrt(ctx, op):
    ctx.output(op, H.unary(ctx, H.unary(ctx, ctx.input(op, "x"), "SQRT"), "RECIP"))


@converter("square")
def square(ctx, op):
    x = ctx.input(op, "x")
    ctx.output(op, H.mul(ctx, x, x))


@converter("round")
def round_(ctx, op):
    # Paddle rounds half away from zero; TensorRT's ROUND is half-to-even: sign(x) * floor(|x| + 0.5)
    x = ctx.input(op, "x")
    if not ctx.is_float(x):
        return ctx.output(op, x)
    decimals = int(ctx.attr(op, "decimals", default=0))
    scale = 10.0 ** decimals
    xs = H.mul(ctx, x, scale) if decimals else x
    r = H.mul(ctx, H.unary(ctx, xs, "SIGN"), H.unary(ctx, H.add(ctx, H.unary(ctx, xs, "ABS"), 0.5), "FLOOR"))
    ctx.output(op, H.div(ctx, r, scale) if decimals else r)


@converter("log2", "log10")
def log_base(ctx, op):
    base = 2.0 if op.type == "log2" else 10.0
    ctx.output(op, H.mul(ctx, H.unary(ctx, ctx.input(op, "x"), "LOG"), 1.0 / math.log(base)))


@converter("log1p")
def log1p(ctx, op):
    ctx.output(op, H.unary(ctx, H.add(ctx, ctx.input(op, "x"), 1.0), "LOG"))


@converter("expm1")
def expm1(ctx, op):
    ctx.output(op, H.sub(ctx, H.unary(ctx, ctx.input(op, "x"), "EXP"), 1.0))


@converter("pow")
def pow_(ctx, op):
    x = ctx.input(op, "x")
    y = H.scalar_arg(ctx, op, "factor_tensor", "y", default=1.0)
    if not hasattr(y, "dtype"):
        if float(y) == 2.0:  # exact and cheap, and pow of a negative base is NaN in some backends
            return ctx.output(op, H.mul(ctx, x, x))
        if float(y) == 1.0:
            return ctx.output(op, x)
    ctx.output(op, H.ew(ctx, x, y, "POW"))


@converter("scale")
def scale(ctx, op):
    # out = x * scale + bias, or (x + bias) * scale when bias_after_scale is false
    x = ctx.input(op, "x")
    s = H.scalar_arg(ctx, op, "scale", default=1.0)
    b = H.scalar_arg(ctx, op, "bias_tensor", "bias", default=0.0)
    if ctx.attr(op, "bias_after_scale", default=True):
        out = x if (not hasattr(s, "dtype") and s == 1.0) else H.mul(ctx, x, _like(ctx, s, x))
        out = out if (not hasattr(b, "dtype") and b == 0.0) else H.add(ctx, out, _like(ctx, b, x))
    else:
        out = x if (not hasattr(b, "dtype") and b == 0.0) else H.add(ctx, x, _like(ctx, b, x))
        out = out if (not hasattr(s, "dtype") and s == 1.0) else H.mul(ctx, out, _like(ctx, s, x))
    ctx.output(op, out)


def _like(ctx, v, x):
    """A scalar argument in x's type (a tensor argument of another type is cast)."""
    if hasattr(v, "dtype"):
        return ctx.cast(v, x.dtype)
    return int(v) if not ctx.is_float(x) else float(v)


@converter("clip")
def clip(ctx, op):
    x = ctx.input(op, "x")
    lo = H.scalar_arg(ctx, op, "min", default=None)
    hi = H.scalar_arg(ctx, op, "max", default=None)
    if lo is not None:
        x = H.maximum(ctx, x, _like(ctx, lo, x))
    if hi is not None:
        x = H.minimum(ctx, x, _like(ctx, hi, x))
    ctx.output(op, x)
