"""Normalizations. batch_norm (inference) is a per-channel affine; the others normalize at run time."""

from __future__ import annotations

import numpy as np

from repogen.trt.helpers import tensors as H
from repogen.trt.helpers.weights import batch_norm_coefficients
from repogen.trt.converter_table import converter, refuse


def _channel_shape(rank: int, channels: int, fmt: str) -> list[int]:
    shape = [1] * rank
    shape[rank - 1 if fmt.startswith("N") and fmt.endswith("C") and rank > 2 else 1] = channels
    return shape


def _param(ctx, op, slot):
    name = op.input(slot)
    if name is None:
        return None
    arr = ctx.const_value(name)
    if arr is None:
        raise ctx.fail(f"{slot} must be a constant (a parameter)")
    return np.asarray(arr, dtype=np.float64)


def _affine(ctx, x, scale, shift, fmt):
    """x * scale + shift with per-channel numpy vectors."""
    shape = _channel_shape(H.rank(x), scale.size, fmt)
    y = H.mul(ctx, x, ctx.const(scale.reshape(shape), dtype=x.dtype))
    return H.add(ctx, y, ctx.const(shift.reshape(shape), dtype=x.dtype))


@converter("batch_norm")
def batch_norm(ctx, op):
    x = ctx.input(op, "x")
    eps = float(ctx.attr(op, "epsilon", default=1e-5))
    c = _param(ctx, op, "mean").size
    scale = _param(ctx, op, "scale")
    bias = _param(ctx, op, "bias")
    a, b = batch_norm_coefficients(_param(ctx, op, "mean"), _param(ctx, op, "variance"),
                                   np.ones(c) if scale is None else scale, np.zeros(c) if bias is None else bias, eps)
    ctx.output(op, _affine(ctx, x, a, b, str(ctx.attr(op, "data_format", default="NCHW"))))


@converter("affine_channel")
def affine_channel(ctx, op):
    x = ctx.input(op, "x")
    ctx.output(op, _affine(ctx, x, _param(ctx, op, "scale"), _param(ctx, op, "bias"),
                           str(ctx.attr(op, "data_format", default="NCHW"))))


def normalize(ctx, x, axes, eps):
    """(x - mean) / sqrt(var + eps) over axes, the variance biased as Paddle computes it."""
    mean = H.reduce(ctx, x, "AVG", axes, True)
    d = H.sub(ctx, x, mean)
    var = H.reduce(ctx, H.mul(ctx, d, d), "AVG", axes, True)
    return H.div(ctx, d, H.unary(ctx, H.add(ctx, var, eps), "SQRT"))


def _scale_bias(ctx, op, y, shape):
    for slot, fn in (("scale", H.mul), ("bias", H.add)):
        p = _param(ctx, op, slot)
        if p is not None:
            y = fn(ctx, y, ctx.const(p.reshape(shape), dtype=y.dtype))
    return y


@converter("layer_norm")
def layer_norm(ctx, op):
    x = ctx.input(op, "x")
    r = H.rank(x)
    begin = H.norm_axis(int(ctx.attr(op, "begin_norm_axis", default=1)), r)
    y = normalize(ctx, x, list(range(begin, r)), float(ctx.attr(op, "epsilon", default=1e-5)))
    norm_shape = [int(d) for d in x.shape[begin:]]
    if any(d < 0 for d in norm_shape):
        # scale/bias are flat over the normalized dims; with run-time dims only 1 normalized dim is legal
        norm_shape = [-1] if len(norm_shape) == 1 else None
        if norm_shape is None:
            raise ctx.fail("layer_norm over several dims needs them static")
    ctx.output(op, _scale_bias(ctx, op, y, [1] * begin + norm_shape))


@converter("instance_norm")
def instance_norm(ctx, op):
    x = ctx.input(op, "x")
    r = H.rank(x)
    y = normalize(ctx, x, list(range(2, r)), float(ctx.attr(op, "epsilon", default=1e-5)))
    ctx.output(op, _scale_bias(ctx, op, y, [1, -1] + [1] * (r - 2)), slot="y")


@converter("group_norm")
def group_norm(ctx, op):
    # normalize each of `groups` channel groups over (channels in group, spatial), then per-channel affine
    x = ctx.input(op, "x")
    fmt = str(ctx.attr(op, "data_format", default="NCHW"))
    r = H.rank(x)
    if fmt != "NCHW" and fmt.endswith("C"):
        x = H.transpose(ctx, x, [0, r - 1] + list(range(1, r - 1)))
    groups = int(ctx.attr(op, "groups", default=1))
    dims = H.dims_of(ctx, x)
    grouped = H.reshape(ctx, x, [dims[0], groups, -1])
    y = H.reshape(ctx, normalize(ctx, grouped, [2], float(ctx.attr(op, "epsilon", default=1e-5))), dims)
    y = _scale_bias(ctx, op, y, [1, -1] + [1] * (r - 2))
    if fmt != "NCHW" and fmt.endswith("C"):
        y = H.transpose(ctx, y, [0] + list(range(2, r)) + [1])
    ctx.output(op, y, slot="y")


# what these converters refuse (repogen ops --refused, docs/refused.md)
refuse(("layer_norm",), "normalized over several dims of which one is known only at run time",
       "the normalization's scale/bias shape is fixed when building")
