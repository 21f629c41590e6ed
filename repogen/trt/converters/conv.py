"""Convolutions: conv2d / depthwise_conv2d / conv3d and their transposes (NC<spatial> natively, channels-last
through shuffles); TensorRT's convolution and deconvolution layers take 1 to 3 spatial dims alike."""

from __future__ import annotations

import math

import numpy as np

from repogen.trt import helpers as H
from repogen.trt.registry import converter


def spatial_padding(ctx, op, in_dims, kernel, strides, dilations):
    """(pre, post, dilations, same_mode) from Paddle's paddings / padding_algorithm.

    Paddle accepts [p_h, p_w] or [top, bottom, left, right]; SAME pads like TensorRT's SAME_UPPER (extra
    at the end) and resets dilation to 1; VALID means no padding.
    """
    n = len(kernel)
    algo = str(ctx.attr(op, "padding_algorithm", default="EXPLICIT")).upper()
    pads = [int(p) for p in ctx.attr(op, "paddings", default=[0] * n)]
    if algo == "VALID":
        return [0] * n, [0] * n, dilations, False
    if algo == "SAME":
        dilations = [1] * n
        if not all(isinstance(d, int) and d >= 0 for d in in_dims):
            return [0] * n, [0] * n, dilations, True
        pre, post = [], []
        for size, k, s in zip(in_dims, kernel, strides):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pre.append(total // 2)
            post.append(total - total // 2)
        return pre, post, dilations, False
    if len(pads) == n:
        return pads, pads, dilations, False
    if len(pads) == 2 * n:
        return pads[0::2], pads[1::2], dilations, False
    raise ctx.fail(f"paddings {pads} fit neither {n} nor {2 * n} spatial values")


def to_nchw(ctx, op, x):
    """NHWC inputs are transposed to NCHW; returns (x, function undoing it on the result)."""
    fmt = str(ctx.attr(op, "data_format", default="NCHW"))
    if fmt in ("NHWC", "NDHWC", "NLC", "NWC") and H.rank(x) >= 3:
        r = H.rank(x)
        to = [0, r - 1] + list(range(1, r - 1))
        back = [0] + list(range(2, r)) + [1]
        return H.transpose(ctx, x, to), lambda t: H.transpose(ctx, t, back)
    return x, lambda t: t


def param_weights(ctx, op, slot: str, dtype) -> np.ndarray:
    """A constant input (filter, bias) as a C-ordered array of the TensorRT float type, kept alive for the build."""
    arr = ctx.const_value(op.input(slot))
    if arr is None:
        raise ctx.fail(f"{slot} must be a constant (a parameter) for TensorRT")
    arr = np.array(arr, dtype=ctx.np_type(dtype), order="C")
    ctx._keep_alive.append(arr)
    return arr


def filter_weights(ctx, op, dtype):
    """The filter as (array giving its shape, run-time tensor or None). A quantized model's filter is a
    Dequantize output: it goes in as the layer's input 1 with empty Weights, which is how TensorRT takes
    INT8 (de)convolution kernels, so the array is then only zeros of the right shape."""
    if ctx.const_value(op.input("filter")) is not None:
        return param_weights(ctx, op, "filter", dtype), None
    w_t = ctx.get(op.input("filter"))
    return np.zeros(tuple(w_t.shape), np.float32), ctx.cast(w_t, dtype)


def _set_kernel(ctx, layer, w_t) -> None:
    if w_t is not None:
        layer.set_input(1, w_t)


def _bias(ctx, op, dtype):
    if op.input("bias") is None:
        return None
    return param_weights(ctx, op, "bias", dtype).reshape(-1)


@converter("conv2d", "depthwise_conv2d", "conv3d")
def conv(ctx, op):
    x, restore = to_nchw(ctx, op, ctx.input(op, "input", "x"))
    w, w_t = filter_weights(ctx, op, x.dtype)
    kernel = list(w.shape[2:])
    strides = [int(s) for s in ctx.attr(op, "strides", default=[1] * len(kernel))]
    dilations = [int(d) for d in ctx.attr(op, "dilations", default=[1] * len(kernel))]
    pre, post, dilations, same = spatial_padding(ctx, op, list(x.shape[2:]), kernel, strides, dilations)
    groups = int(ctx.attr(op, "groups", default=1))
    bias = _bias(ctx, op, x.dtype)
    kernel_w = w if w_t is None else ctx.trt.Weights()
    args = (x, int(w.shape[0]), tuple(kernel), kernel_w) + ((bias,) if bias is not None else ())
    layer = ctx.named(ctx.network.add_convolution_nd(*args))
    layer.stride_nd = tuple(strides)
    layer.dilation_nd = tuple(dilations)
    layer.num_groups = groups
    _set_kernel(ctx, layer, w_t)
    if same:
        layer.padding_mode = ctx.trt.PaddingMode.SAME_UPPER
    else:
        layer.pre_padding = tuple(pre)
        layer.post_padding = tuple(post)
    ctx.output(op, restore(layer.get_output(0)))


@converter("conv2d_transpose", "depthwise_conv2d_transpose", "conv3d_transpose")
def conv_transpose(ctx, op):
    # out = (in - 1) * s - pad_before - pad_after + d * (k - 1) + 1 + output_padding
    x, restore = to_nchw(ctx, op, ctx.input(op, "x", "input"))
    w, w_t = filter_weights(ctx, op, x.dtype)  # [C_in, C_out / groups, kh, kw], TensorRT's layout too
    kernel = list(w.shape[2:])
    n = len(kernel)
    groups = int(ctx.attr(op, "groups", default=1))
    strides = [int(s) for s in ctx.attr(op, "strides", default=[1] * n)]
    dilations = [int(d) for d in ctx.attr(op, "dilations", default=[1] * n)]
    in_dims = list(x.shape[2:])
    algo = str(ctx.attr(op, "padding_algorithm", default="EXPLICIT")).upper()
    if algo == "SAME":
        if not all(d >= 0 for d in in_dims):
            raise ctx.fail("padding_algorithm SAME needs static spatial dims")
        pre, post = [], []
        for size, k, s in zip(in_dims, kernel, strides):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)  # Paddle pads as for the forward conv
            pre.append(total // 2)
            post.append(total - total // 2)
        dilations = [1] * n
    else:
        pre, post, dilations, _ = spatial_padding(ctx, op, in_dims, kernel, strides, dilations)
    out_pad = [int(p) for p in (ctx.attr(op, "output_padding", default=[]) or [])] or [0] * n
    out_size = H.int_array(ctx, op, "output_size", default=[]) or []
    if isinstance(out_size, list) and out_size:
        if not all(d >= 0 for d in in_dims):
            raise ctx.fail("output_size with dynamic spatial dims is not supported")
        out_pad = [o - ((i - 1) * s - a - b + d * (k - 1) + 1)
                   for o, i, s, a, b, d, k in zip(out_size, in_dims, strides, pre, post, dilations, kernel)]
    elif not isinstance(out_size, list):
        raise ctx.fail("output_size computed at run time is not supported")
    # output_padding extends the end: first by cropping less, then (beyond the full output) with zeros
    post_eff = [p - o for p, o in zip(post, out_pad)]
    extra = [max(-p, 0) for p in post_eff]
    post_eff = [max(p, 0) for p in post_eff]
    bias = _bias(ctx, op, x.dtype)
    args = (x, int(w.shape[1]) * groups, tuple(kernel), w if w_t is None else ctx.trt.Weights()) + \
        ((bias,) if bias is not None else ())
    layer = ctx.named(ctx.network.add_deconvolution_nd(*args))
    _set_kernel(ctx, layer, w_t)
    layer.stride_nd = tuple(strides)
    layer.dilation_nd = tuple(dilations)
    layer.num_groups = groups
    layer.pre_padding = tuple(pre)
    layer.post_padding = tuple(post_eff)
    y = layer.get_output(0)
    if any(extra):
        dims = H.dims_of(ctx, y)
        sizes = dims[:2] + [H.sym_add(ctx, d, e) for d, e in zip(dims[2:], extra)]
        y = H.slice_(ctx, y, [0] * H.rank(y), sizes, mode="FILL")  # FILL without a value pads zeros
    ctx.output(op, restore(y))
