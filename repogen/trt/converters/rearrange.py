"""Ops that only move elements: shuffle_channel / channel_shuffle, pixel_shuffle / pixel_unshuffle (reshape +
transpose + reshape) and temporal_shift (slices that read one segment earlier or later, zero-filled at the
clip ends, concatenated along channels).

Channel counts and factors must be known at build time; batch and spatial dims may be run-time.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from repogen.trt.helpers import tensors as H
from repogen.trt.helpers.layout import to_nchw
from repogen.trt.converter_table import converter


def _channels_last(ctx, op) -> bool:
    return str(ctx.attr(op, "data_format", default="NCHW")) in ("NHWC", "NDHWC", "NLC")


def _static_dim(ctx, dims: Sequence[H.Dim], axis: int, what: str) -> int:
    d = dims[axis]
    if not isinstance(d, (int, np.integer)):
        raise ctx.fail(f"the {what} dim (axis {axis}) must be static")
    return int(d)


def _regroup(ctx, x: Any, split: Sequence[H.Dim], perm: Sequence[int], merged: Sequence[H.Dim]) -> Any:
    """Reshape to ``split``, transpose by ``perm``, reshape to ``merged``."""
    return H.reshape(ctx, H.transpose(ctx, H.reshape(ctx, x, list(split)), perm), list(merged))


@converter("shuffle_channel", "channel_shuffle")
def channel_shuffle(ctx, op):
    # [.., C, ..] -> [.., g, C/g, ..] -> swap the two -> [.., C, ..] (ShuffleNet's channel shuffle)
    x = ctx.input(op, "x")
    groups = int(ctx.attr(op, "groups", "group", default=1))
    dims = H.dims_of(ctx, x)
    axis = H.rank(x) - 1 if _channels_last(ctx, op) else 1
    c = _static_dim(ctx, dims, axis, "channel")
    if groups < 1 or c % groups:
        raise ctx.fail(f"groups {groups} does not divide the {c} channels")
    split = dims[:axis] + [groups, c // groups] + dims[axis + 1:]
    perm = list(range(len(split)))
    perm[axis], perm[axis + 1] = perm[axis + 1], perm[axis]
    ctx.output(op, _regroup(ctx, x, split, perm, dims))


def _image_dims(ctx, op, x):
    """(channels last?, N, H, W, static C) of a rank-4 image in the op's data_format."""
    if H.rank(x) != 4:
        raise ctx.fail(f"input must have rank 4, not {H.rank(x)}")
    last = _channels_last(ctx, op)
    dims = H.dims_of(ctx, x)
    h, w = (dims[1], dims[2]) if last else (dims[2], dims[3])
    return last, dims[0], h, w, _static_dim(ctx, dims, 3 if last else 1, "channel")


@converter("pixel_shuffle")
def pixel_shuffle(ctx, op):
    # NCHW: [N, c*r*r, H, W] -> [N, c, r, r, H, W] -> [N, c, H, r, W, r] -> [N, c, H*r, W*r]
    # NHWC: [N, H, W, c*r*r] -> [N, H, W, c, r, r] -> [N, H, r, W, r, c] -> [N, H*r, W*r, c]
    x = ctx.input(op, "x")
    r = int(ctx.attr(op, "upscale_factor", default=1))
    last, n, h, w, c = _image_dims(ctx, op, x)
    if r < 1 or c % (r * r):
        raise ctx.fail(f"upscale_factor {r}: {c} channels are not a multiple of {r * r}")
    oc, hr, wr = c // (r * r), H.sym_mul(ctx, h, r), H.sym_mul(ctx, w, r)
    if last:
        y = _regroup(ctx, x, [n, h, w, oc, r, r], [0, 1, 4, 2, 5, 3], [n, hr, wr, oc])
    else:
        y = _regroup(ctx, x, [n, oc, r, r, h, w], [0, 1, 4, 2, 5, 3], [n, oc, hr, wr])
    ctx.output(op, y)


@converter("pixel_unshuffle")
def pixel_unshuffle(ctx, op):
    # NCHW: [N, C, H, W] -> [N, C, H/d, d, W/d, d] -> [N, C, d, d, H/d, W/d] -> [N, C*d*d, H/d, W/d]
    # NHWC: [N, H, W, C] -> [N, H/d, d, W/d, d, C] -> [N, H/d, W/d, C, d, d] -> [N, H/d, W/d, C*d*d]
    x = ctx.input(op, "x")
    d = int(ctx.attr(op, "downscale_factor", default=1))
    if d < 1:
        raise ctx.fail(f"downscale_factor must be >= 1, not {d}")
    last, n, h, w, c = _image_dims(ctx, op, x)
    hd, wd = H.sym_floordiv(ctx, h, d), H.sym_floordiv(ctx, w, d)
    if last:
        y = _regroup(ctx, x, [n, hd, d, wd, d, c], [0, 1, 3, 5, 2, 4], [n, hd, wd, c * d * d])
    else:
        y = _regroup(ctx, x, [n, c, hd, d, wd, d], [0, 1, 3, 5, 2, 4], [n, c * d * d, hd, wd])
    ctx.output(op, y)


@converter("temporal_shift")
def temporal_shift(ctx, op):
    """TSM's shift: x [N*T, C, H, W] viewed as [N, T, C, H, W]; channels [0, c1) take the previous segment,
    [c1, c2) the next one, the rest stay; the segment before the first and after the last read zeros.

    c1 = int(C * shift_ratio) and c2 = int(2 * C * shift_ratio), in float32 as Paddle's kernel computes them.
    Each shifted part is one FILL-mode slice starting one segment early (or late), which is where the zeros
    come from; the parts are concatenated along channels and the [N*T, ...] shape restored. NHWC goes through
    NCHW (helpers.layout.to_nchw), so channels are always axis 2 of the 5-D view.
    """
    x, restore = to_nchw(ctx, op, ctx.input(op, "x"))
    t = int(ctx.attr(op, "seg_num", default=1))
    ratio = np.float32(ctx.attr(op, "shift_ratio", default=0.25))
    if H.rank(x) != 4 or t < 1:
        raise ctx.fail(f"input must have rank 4 (got {H.rank(x)}) and seg_num >= 1 (got {t})")
    dims = H.dims_of(ctx, x)
    c = _static_dim(ctx, dims, 1, "channel")
    c1 = int(np.float32(c) * ratio)
    c2 = int(np.float32(2 * c) * ratio)
    five = [H.sym_floordiv(ctx, dims[0], t), t] + dims[1:]
    x5 = H.reshape(ctx, x, five)
    parts = []
    for lo, hi, shift in ((0, c1, -1), (c1, c2, 1), (c2, c, 0)):
        hi = min(hi, c)
        if hi <= lo:
            continue
        sizes = list(five)
        sizes[2] = hi - lo
        parts.append(H.slice_(ctx, x5, [0, shift, lo, 0, 0], sizes, mode="FILL" if shift else None))
    ctx.output(op, restore(H.reshape(ctx, H.concat(ctx, parts, 2), dims)))
