"""Data layouts and spatial attributes shared by the convolution, pooling, interpolation and rearrangement
converters: NHWC inputs transposed to NCHW and back, Paddle's paddings / padding_algorithm as per-dim pads."""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

from repogen.ir import Op
from repogen.trt.context import ConversionContext
from repogen.trt.helpers import tensors as H


def spatial_padding(ctx: ConversionContext, op: Op, in_dims: Sequence[H.Dim], kernel: Sequence[int],
                    strides: Sequence[int], dilations: Sequence[int]) -> tuple[list, list, list, bool]:
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


def to_nchw(ctx: ConversionContext, op: Op, x: Any) -> tuple[Any, Callable[[Any], Any]]:
    """NHWC inputs are transposed to NCHW; returns (x, function undoing it on the result)."""
    fmt = str(ctx.attr(op, "data_format", default="NCHW"))
    if fmt in ("NHWC", "NDHWC", "NLC", "NWC") and H.rank(x) >= 3:
        r = H.rank(x)
        to = [0, r - 1] + list(range(1, r - 1))
        back = [0] + list(range(2, r)) + [1]
        return H.transpose(ctx, x, to), lambda t: H.transpose(ctx, t, back)
    return x, lambda t: t
