"""Activations: TensorRT activation layers where one matches Paddle's formula, otherwise the formula."""

from __future__ import annotations

import math

import numpy as np

from repogen.trt.helpers import tensors as H
from repogen.trt.converter_table import converter

#: canonical op -> (ActivationType, (attr, default) for alpha, (attr, default) for beta)
ACTIVATIONS = {
    "relu": ("RELU", None, None),
    "sigmoid": ("SIGMOID", None, None),
    "tanh": ("TANH", None, None),
    "relu6": ("CLIP", ("__", 0.0), ("threshold", 6.0)),  # min(max(x, 0), 6)
    "hardtanh": ("CLIP", ("t_min", -1.0), ("t_max", 1.0)),
    "leaky_relu": ("LEAKY_RELU", ("negative_slope", 0.02), None),  # x >= 0 ? x : a * x
    "elu": ("ELU", ("alpha", 1.0), None),  # x >= 0 ? x : a * (exp(x) - 1)
    "selu": ("SELU", ("alpha", 1.6732632423543772), ("scale", 1.0507009873554805)),
    "hardsigmoid": ("HARD_SIGMOID", ("slope", 0.2), ("offset", 0.5)),  # max(0, min(1, a * x + b))
    "thresholded_relu": ("THRESHOLDED_RELU", ("threshold", 1.0), None),  # x > a ? x : 0
}


def _activation(kind: str, alpha, beta):
    def convert(ctx, op):
        a = None if alpha is None else float(ctx.attr(op, alpha[0], default=alpha[1]))
        b = None if beta is None else float(ctx.attr(op, beta[0], default=beta[1]))
        ctx.output(op, H.activation(ctx, ctx.input(op, "x"), kind, a, b))
    return convert


for _canon, (_kind, _alpha, _beta) in ACTIVATIONS.items():
    converter(_canon)(_activation(_kind, _alpha, _beta))


@converter("silu", "swish")
def silu(ctx, op):
    # x * sigmoid(x) (phi's swish has beta fixed at 1)
    x = ctx.input(op, "x")
    ctx.output(op, H.mul(ctx, x, H.activation(ctx, x, "SIGMOID")))


@converter("hardswish")
def hardswish(ctx, op):
    # x * min(max(x + 3, 0), 6) / 6
    x = ctx.input(op, "x")
    gate = H.activation(ctx, H.add(ctx, x, 3.0), "CLIP", 0.0, 6.0)
    ctx.output(op, H.mul(ctx, x, H.mul(ctx, gate, 1.0 / 6.0)))


@converter("gelu")
def gelu(ctx, op):
    x = ctx.input(op, "x")
    if ctx.attr(op, "approximate", default=False) in (True, "tanh"):
        # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
        inner = H.mul(ctx, H.add(ctx, x, H.mul(ctx, H.mul(ctx, H.mul(ctx, x, x), x), 0.044715)),
                      math.sqrt(2.0 / math.pi))
        gate = H.add(ctx, H.activation(ctx, inner, "TANH"), 1.0)
    else:
        # 0.5 x (1 + erf(x / sqrt(2)))
        gate = H.add(ctx, H.unary(ctx, H.mul(ctx, x, 1.0 / math.sqrt(2.0)), "ERF"), 1.0)
    ctx.output(op, H.mul(ctx, H.mul(ctx, x, gate), 0.5))


def _softplus(ctx, x, beta: float, threshold: float):
    # log(1 + exp(beta x)) / beta written stably as (max(bx, 0) + log(1 + exp(-|bx|))) / beta; past
    # Paddle's threshold (bx > 20) the two differ by < exp(-20) relative, so no branch is needed
    bx = H.mul(ctx, x, beta) if beta != 1.0 else x
    tail = H.unary(ctx, H.add(ctx, H.unary(ctx, H.mul(ctx, H.unary(ctx, bx, "ABS"), -1.0), "EXP"), 1.0), "LOG")
    soft = H.add(ctx, H.activation(ctx, bx, "RELU"), tail)
    return H.mul(ctx, soft, 1.0 / beta) if beta != 1.0 else soft


@converter("softplus")
def softplus(ctx, op):
    beta = float(ctx.attr(op, "beta", default=1.0))
    threshold = float(ctx.attr(op, "threshold", default=20.0))
    ctx.output(op, _softplus(ctx, ctx.input(op, "x"), beta, threshold))


@converter("mish")
def mish(ctx, op):
    # x * tanh(softplus(x))
    x = ctx.input(op, "x")
    sp = _softplus(ctx, x, 1.0, float(ctx.attr(op, "lambda", "threshold", default=20.0)))
    ctx.output(op, H.mul(ctx, x, H.activation(ctx, sp, "TANH")))


@converter("softsign")
def softsign(ctx, op):
    # x / (1 + |x|)
    x = ctx.input(op, "x")
    ctx.output(op, H.div(ctx, x, H.add(ctx, H.unary(ctx, x, "ABS"), 1.0)))


@converter("logsigmoid")
def logsigmoid(ctx, op):
    # log(sigmoid(x)) = -softplus(-x), stable for large |x|
    x = ctx.input(op, "x")
    ctx.output(op, H.mul(ctx, _softplus(ctx, H.mul(ctx, x, -1.0), 1.0, 20.0), -1.0))


@converter("hardshrink")
def hardshrink(ctx, op):
    x = ctx.input(op, "x")
    t = float(ctx.attr(op, "threshold", default=0.5))
    keep = ctx.cast(H.ew(ctx, H.unary(ctx, x, "ABS"), t, "GREATER"), x.dtype)
    ctx.output(op, H.mul(ctx, x, keep))


@converter("prelu")
def prelu(ctx, op):
    # max(0, x) + alpha * min(0, x); alpha is one value, one per channel, or one per element
    x = ctx.input(op, "x")
    alpha_name = op.input("alpha")
    arr = ctx.const_value(alpha_name)
    mode = ctx.attr(op, "mode", default="all")
    r = H.rank(x)
    if arr is not None:
        arr = np.asarray(arr)
        if mode == "channel":
            c = arr.size
            shape = [1] * r
            shape[1 if ctx.attr(op, "data_format", default="NCHW") == "NCHW" else r - 1] = c
            arr = arr.reshape(shape)
        elif mode == "element":
            arr = arr.reshape((1,) + tuple(arr.shape[-(r - 1):]) if arr.ndim >= r - 1 else arr.shape)
            arr = arr.reshape((1,) * (r - arr.ndim) + arr.shape)
        else:
            arr = arr.reshape((1,) * r)
        alpha = ctx.const(arr, dtype=x.dtype)
    else:
        alpha = ctx.cast(ctx.get(alpha_name), x.dtype)
    pos = H.activation(ctx, x, "RELU")
    neg = H.minimum(ctx, x, 0.0)
    ctx.output(op, H.add(ctx, pos, H.mul(ctx, neg, alpha)))
