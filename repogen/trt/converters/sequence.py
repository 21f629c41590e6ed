"""Generated sequences and products: arange (legacy range), linspace, meshgrid, einsum, p_norm."""

from __future__ import annotations

import math

import numpy as np

from repogen.trt.helpers import tensors as H
from repogen.trt.converter_table import converter, refuse


def _is_tensor(v) -> bool:
    return hasattr(v, "dtype")


def _float_dim(ctx, v):
    """A scalar argument as a 1-element FLOAT tensor (for run-time length arithmetic)."""
    if _is_tensor(v):
        return H.reshape(ctx, ctx.cast(v, ctx.trt.DataType.FLOAT), [1])
    return ctx.const(np.asarray([v], dtype=np.float32), dtype=ctx.trt.DataType.FLOAT)


@converter("arange")
def arange(ctx, op):
    want = H.out_dtype(ctx, op)
    start = H.scalar_arg(ctx, op, "start", default=0)
    end = H.scalar_arg(ctx, op, "end")
    step = H.scalar_arg(ctx, op, "step", default=1)
    if end is None:
        raise ctx.fail("missing end")
    np_want = ctx.np_type(want)
    if not any(_is_tensor(v) for v in (start, end, step)):
        return ctx.output(op, ctx.const(np.arange(start, end, step).astype(np_want), dtype=want))
    if np.dtype(np_want).kind == "i":
        # length = ceil((end - start) / step) on INT64 dims
        def dim(v):
            return ctx.cast(H.reshape(ctx, v, [1]), ctx.trt.DataType.INT64) if _is_tensor(v) else int(v)
        n = H.sym_max(ctx, 0, H.sym_ceildiv(ctx, H.sym_sub(ctx, dim(end), dim(start)), dim(step)))
    else:
        span = H.div(ctx, H.sub(ctx, _float_dim(ctx, end), _float_dim(ctx, start)), _float_dim(ctx, step))
        n = ctx.cast(H.unary(ctx, span, "CEIL"), ctx.trt.DataType.INT64)
        n = H.sym_max(ctx, 0, n)
    ctx.output(op, H.iota(ctx, n, want, start, step))


@converter("linspace")
def linspace(ctx, op):
    want = H.out_dtype(ctx, op)
    start = H.scalar_arg(ctx, op, "start")
    stop = H.scalar_arg(ctx, op, "stop")
    num = H.scalar_arg(ctx, op, "number", "num")
    if not any(_is_tensor(v) for v in (start, stop, num)):
        # Paddle's kernel: the first half counts up from start, the second half down from stop
        n = int(num)
        step = (float(stop) - float(start)) / (n - 1) if n > 1 else 0.0
        i = np.arange(n)
        vals = np.where(i < n // 2, float(start) + step * i, float(stop) - step * (n - 1 - i))
        return ctx.output(op, ctx.const(vals.astype(ctx.np_type(want)) if n > 1 else np.asarray([start]), dtype=want))
    s, e = _float_dim(ctx, start), _float_dim(ctx, stop)
    n = ctx.cast(H.reshape(ctx, num, [1]), ctx.trt.DataType.INT64) if _is_tensor(num) else int(num)
    denom = H.maximum(ctx, _float_dim(ctx, H.sym_sub(ctx, n, 1) if _is_tensor(n) else int(num) - 1), 1.0)
    step = H.div(ctx, H.sub(ctx, e, s), denom)
    ctx.output(op, ctx.cast(H.iota(ctx, n, ctx.trt.DataType.FLOAT, s, step), want))


@converter("meshgrid")
def meshgrid(ctx, op):
    xs = ctx.inputs(op, "inputs")
    lengths = [H.dims_of(ctx, x)[0] if H.rank(x) else 1 for x in xs]
    names = op.outputs.get("out") or []
    for k, (x, name) in enumerate(zip(xs, names)):
        view = [1] * len(xs)
        view[k] = lengths[k]
        ctx.set(name, H.broadcast_to(ctx, H.reshape(ctx, x, view), lengths))


@converter("einsum")
def einsum(ctx, op):
    xs = ctx.inputs(op, "x")
    equation = str(ctx.attr(op, "equation"))
    if "..." in equation:
        raise ctx.fail(f"einsum equation {equation!r}: TensorRT's einsum has no ellipsis")
    want = H.out_dtype(ctx, op)
    xs = [ctx.cast(x, want) for x in xs]
    ctx.output(op, ctx.named(ctx.network.add_einsum(xs, equation)).get_output(0))


@converter("p_norm")
def p_norm(ctx, op):
    # (sum |x|^p)^(1/p) over axis (every element with asvector); p = inf / -inf: max / min of |x|;
    # p = 0: count of nonzeros. Sums of powers run in FP32 whatever the precision.
    x = ctx.input(op, "x")
    out_type = x.dtype
    x = ctx.cast(x, ctx.trt.DataType.FLOAT)
    p = float(op.attrs.get("porder", 2.0))
    keep = bool(ctx.attr(op, "keepdim", default=False))
    if ctx.attr(op, "asvector", default=False):
        axes, x = [0], H.reshape(ctx, x, [-1])
    else:
        axes = [H.norm_axis(int(ctx.attr(op, "axis", default=-1)), H.rank(x))]
    a = H.unary(ctx, x, "ABS")
    if math.isinf(p):
        out = H.reduce(ctx, a, "MAX" if p > 0 else "MIN", axes, keep)
    elif p == 0:
        out = H.reduce(ctx, ctx.cast(H.ew(ctx, a, 0.0, "GREATER"), ctx.trt.DataType.FLOAT), "SUM", axes, keep)
    elif p == 2:
        out = H.unary(ctx, H.reduce(ctx, H.mul(ctx, x, x), "SUM", axes, keep), "SQRT")
    elif p == 1:
        out = H.reduce(ctx, a, "SUM", axes, keep)
    else:
        out = H.ew(ctx, H.reduce(ctx, H.ew(ctx, a, p, "POW"), "SUM", axes, keep), 1.0 / p, "POW")
    ctx.output(op, ctx.cast(out, out_type))


# what these converters refuse (repogen ops --refused, docs/refused.md)
refuse(("einsum",), "an equation with an ellipsis (`...`)", "TensorRT's einsum has no ellipsis")
