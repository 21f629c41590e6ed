"""Convolutions: conv2d / depthwise_conv2d / conv3d and their transposes (NC<spatial> natively, channels-last
through shuffles); TensorRT's convolution and deconvolution layers take 1 to 3 spatial dims alike."""

from __future__ import annotations

import math

import numpy as np

from repogen.trt.helpers import tensors as H
from repogen.trt.helpers.layout import spatial_padding, to_nchw
from repogen.trt.helpers.weights import param_weights
from repogen.trt.converter_table import converter, refuse


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


# what these converters refuse (repogen ops --refused, docs/refused.md)
refuse(("conv2d_transpose", "depthwise_conv2d_transpose"),
       "`output_size` computed at run time, or given with run-time spatial dims",
       "the deconvolution's output padding is a build-time layer parameter")
refuse(("conv2d_transpose", "depthwise_conv2d_transpose", "conv3d_transpose"),
       "`padding_algorithm` SAME with run-time spatial dims",
       "Paddle pads as for the forward convolution, by amounts that depend on the input size; a deconvolution's "
       "padding is a build-time layer parameter (forward conv/pool use TensorRT's SAME_UPPER)")
