"""Reductions, arg max/min and softmax (the FP16 policy keeps sum/mean/prod/softmax in FP32)."""

from __future__ import annotations

from repogen.trt.helpers import tensors as H
from repogen.trt.converter_table import converter, refuse, RUN_TIME_AXIS

#: canonical op -> TensorRT ReduceOperation
REDUCTIONS = {"sum": "SUM", "mean": "AVG", "max": "MAX", "min": "MIN", "prod": "PROD"}


def _reduce_axes(ctx, op, x):
    axes = H.static_int_array(ctx, op, "axis", default=[])
    if ctx.attr(op, "reduce_all", default=False) or not axes:
        return list(range(H.rank(x)))
    return H.norm_axes(axes, H.rank(x))


def _reduction(trt_op: str):
    def convert(ctx, op):
        x = ctx.input(op, "x")
        want = H.out_dtype(ctx, op)
        if x.dtype == ctx.trt.DataType.BOOL or (trt_op in ("SUM", "PROD") and want != x.dtype and not ctx.is_float(x)):
            x = ctx.cast(x, want)  # sum of bool / int32 accumulating into int64, as Paddle's dtype says
        if H.rank(x) == 0:
            return ctx.output(op, x)
        y = H.reduce(ctx, x, trt_op, _reduce_axes(ctx, op, x), bool(ctx.attr(op, "keepdim", default=False)))
        ctx.output(op, ctx.cast(y, want))
    return convert


for _canon, _trt_op in REDUCTIONS.items():
    converter(_canon)(_reduction(_trt_op))


def _arg(kind: str):
    def convert(ctx, op):
        x = ctx.input(op, "x")
        if ctx.attr(op, "flatten", default=False):
            x = H.reshape(ctx, x, [-1])
        axis = H.scalar_arg(ctx, op, "axis", default=0)
        if hasattr(axis, "dtype"):
            raise ctx.fail("axis computed at run time is not supported")
        axis = H.norm_axis(int(axis), H.rank(x))
        layer = ctx.named(ctx.network.add_topk(x, getattr(ctx.trt.TopKOperation, kind), 1, 1 << axis))
        idx = layer.get_output(1)
        if not ctx.attr(op, "keepdims", "keepdim", default=False):
            idx = H.squeeze(ctx, idx, [axis])
        ctx.output(op, ctx.cast(idx, H.out_dtype(ctx, op)))
    return convert


converter("argmax")(_arg("MAX"))
converter("argmin")(_arg("MIN"))


@converter("softmax")
def softmax(ctx, op):
    x = ctx.input(op, "x")
    layer = ctx.named(ctx.network.add_softmax(x))
    layer.axes = 1 << H.norm_axis(int(ctx.attr(op, "axis", default=-1)), H.rank(x))
    ctx.output(op, layer.get_output(0))


@converter("log_softmax")
def log_softmax(ctx, op):
    # (x - max) - log(sum(exp(x - max))), stable where log(softmax(x)) would underflow
    x = ctx.input(op, "x")
    axis = H.norm_axis(int(ctx.attr(op, "axis", default=-1)), H.rank(x))
    d = H.sub(ctx, x, H.reduce(ctx, x, "MAX", [axis], True))
    ctx.output(op, H.sub(ctx, d, H.unary(ctx, H.reduce(ctx, H.unary(ctx, d, "EXP"), "SUM", [axis], True), "LOG")))


@converter("logsumexp")
def logsumexp(ctx, op):
    x = ctx.input(op, "x")
    axes = _reduce_axes(ctx, op, x)
    keep = bool(ctx.attr(op, "keepdim", default=False))
    m = H.reduce(ctx, x, "MAX", axes, True)
    s = H.unary(ctx, H.reduce(ctx, H.unary(ctx, H.sub(ctx, x, m), "EXP"), "SUM", axes, True), "LOG")
    out = H.add(ctx, s, m)
    ctx.output(op, out if keep else H.squeeze(ctx, out, axes))


def _logical_reduction(trt_op: str):
    # TensorRT reduces no BOOL: all == min, any == max over 0/1 integers
    def convert(ctx, op):
        x = ctx.cast(ctx.input(op, "x"), ctx.trt.DataType.INT32)
        if H.rank(x) > 0:
            x = H.reduce(ctx, x, trt_op, _reduce_axes(ctx, op, x), bool(ctx.attr(op, "keepdim", default=False)))
        ctx.output(op, ctx.cast(x, ctx.trt.DataType.BOOL))
    return convert


converter("all")(_logical_reduction("MIN"))
converter("any")(_logical_reduction("MAX"))


# what these converters refuse (repogen ops --refused, docs/refused.md)
refuse(("argmax", "argmin", "sum", "mean", "max", "min", "prod", "any", "all"), "`axis` computed at run time",
       RUN_TIME_AXIS)
