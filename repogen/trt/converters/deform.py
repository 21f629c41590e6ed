"""deformable_conv (DCN v2 with ``mask``, v1 without: legacy ``deformable_conv_v1`` or a null PIR operand) by
decomposition into standard TensorRT layers: one GridSample, an elementwise product, one 1x1 convolution.

Paddle's rule (phi ModulatedDeformableIm2col / DmcnIm2colBilinear): for output (ho, wo), kernel tap
k = i * kw + j and deformable group g, the sample point is
    h = ho * stride_h - pad_h + i * dil_h + offset[n, g, k, 0, ho, wo]
    w = wo * stride_w - pad_w + j * dil_w + offset[n, g, k, 1, ho, wo]
(offset [N, dg * K * 2, Ho, Wo] read as [N, dg, K, (h, w), Ho, Wo]); the value is 0 unless -1 < h < H and
-1 < w < W, and inside that band it is bilinear over the four neighbours with each neighbour outside the
image read as 0. The band test changes nothing: a point with h <= -1 or h >= H has both neighbour rows
outside (or a zero weight on the one inside, at h == -1), so the rule is exactly zero-padded bilinear
everywhere. The tap value is multiplied by mask[n, g * K + k, ho, wo] (v2), and the output is the
convolution of those columns with the filter [M, C / groups, kh, kw].

Decomposition (TensorRT pages used: GridSample operator - input [N, C, H, W], grid [N, Ho, Wo, 2] holding
(x, y), LINEAR interpolation, sample mode FILL reads 0 outside, align_corners False maps a grid value g to
the pixel coordinate ((g + 1) * size - 1) / 2 as in ONNX GridSample; Convolution operator - num_groups):
1. grid: g_y = (2 h + 1) / H - 1 and g_x = (2 w + 1) / W - 1, the inverse of the align_corners=False
   mapping (defined for H or W = 1, unlike align_corners=True's (size - 1) divisor). The base positions and
   the scale fold into ``offset * S + B`` (one constant B when Ho, Wo, H, W are static); the (h, w) pair is
   reversed into (x, y) by a stride -1 slice, and the K taps are stacked along the grid's height:
   grid [N * dg, K * Ho, Wo, 2].
2. GridSample(LINEAR, FILL, align_corners=False) of x viewed as [N * dg, C / dg, H, W] (each deformable
   group of channels sampled with its own offsets) -> [N * dg, C / dg, K, Ho, Wo].
3. times mask viewed as [N * dg, 1, K, Ho, Wo] (v2 only).
4. viewed as [N, C * K, Ho, Wo] (channel c * K + k), a 1x1 convolution with the filter reshaped to
   [M, C / groups * K, 1, 1] and num_groups = groups is the final sum over channels and taps.

Precision: under FP16 steps 1-3 stay FP32 (sample positions reach H and W in magnitude; FP16's 11-bit
significand would put them up to 1/32 pixel off at 64) and the columns are cast to HALF for step 4.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from repogen.trt.helpers import tensors as H
from repogen.trt.helpers.weights import param_weights
from repogen.trt.converter_table import converter


def _pair(ctx, op, name: str, default: int) -> tuple[int, int]:
    v = [int(a) for a in (ctx.attr(op, name, default=[default, default]) or [default, default])]
    if len(v) == 4 and name == "paddings":  # [top, bottom, left, right]: sampling only sees the leading pads
        v = v[0::2]
    if len(v) != 2:
        raise ctx.fail(f"{name} {v} must have 2 entries")
    return v[0], v[1]


def _scale(ctx, size: H.Dim, f32: Any) -> Any:
    """2 / size as a number, or as a [1] FLOAT tensor for a run-time size."""
    if isinstance(size, (int, np.integer)):
        return 2.0 / int(size)
    return H.div(ctx, ctx.const(np.asarray([2.0], np.float32), dtype=f32), ctx.cast(H.dim_tensor(ctx, size), f32))


def _base(ctx, kh: int, kw: int, ho: H.Dim, wo: H.Dim, stride, pad, dil, f32: Any) -> Any:
    """Undeformed sample positions [K, 2, Ho, Wo] as (h, w) pairs: an array if Ho, Wo are static."""
    ii, jj = np.divmod(np.arange(kh * kw), kw)
    tap = np.stack([ii * dil[0] - pad[0], jj * dil[1] - pad[1]], 1).reshape(-1, 2, 1, 1).astype(np.float64)
    step_h = np.asarray([stride[0], 0.0]).reshape(1, 2, 1, 1)
    step_w = np.asarray([0.0, stride[1]]).reshape(1, 2, 1, 1)
    if H.is_static([ho, wo]):
        return tap + step_h * np.arange(int(ho)).reshape(1, 1, -1, 1) + step_w * np.arange(int(wo)).reshape(1, 1, 1, -1)
    rows = H.reshape(ctx, H.iota(ctx, ho, f32), [1, 1, ho, 1])
    cols = H.reshape(ctx, H.iota(ctx, wo, f32), [1, 1, 1, wo])
    return H.add(ctx, H.add(ctx, H.mul(ctx, rows, step_h), H.mul(ctx, cols, step_w)), tap)


@converter("deformable_conv")
def deformable_conv(ctx, op):
    trt = ctx.trt
    f32 = trt.DataType.FLOAT
    x_in = ctx.input(op, "x")
    if H.rank(x_in) != 4:
        raise ctx.fail(f"input must be [N, C, H, W], got rank {H.rank(x_in)}")
    x = ctx.cast(x_in, f32)
    offset = ctx.cast(ctx.input(op, "offset"), f32)
    mask_in = ctx.input(op, "mask", required=False)
    w = param_weights(ctx, op, "filter", ctx.float_type)  # [M, C / groups, kh, kw]
    m_out, c_per_group, kh, kw = (int(d) for d in w.shape)
    k = kh * kw
    groups = int(ctx.attr(op, "groups", default=1))
    dg = int(ctx.attr(op, "deformable_groups", default=1))
    stride, pad, dil = _pair(ctx, op, "strides", 1), _pair(ctx, op, "paddings", 0), _pair(ctx, op, "dilations", 1)
    n, c, h, wd = H.dims_of(ctx, x)
    if not isinstance(c, int) or c != c_per_group * groups or c % dg or m_out % groups:
        raise ctx.fail(f"input channels {c}, filter {list(w.shape)}, groups {groups}, deformable_groups {dg} "
                       "do not fit")
    odims = H.dims_of(ctx, offset)
    if odims[1] != 2 * dg * k:
        raise ctx.fail(f"offset has {odims[1]} channels, expected 2 * {dg} * {k}")
    ho, wo = odims[2], odims[3]
    ndg = H.sym_mul(ctx, n, dg)

    # 1. grid [N * dg, K * Ho, Wo, 2] of (x, y) in GridSample's align_corners=False coordinates
    sh, sw = _scale(ctx, h, f32), _scale(ctx, wd, f32)
    if isinstance(sh, float) and isinstance(sw, float):
        scale: Any = np.asarray([sh, sw]).reshape(2, 1, 1)
        shift: Any = scale / 2 - 1
    else:
        pieces = [ctx.const(np.asarray([s], np.float32), dtype=f32) if isinstance(s, float) else s for s in (sh, sw)]
        scale = H.reshape(ctx, H.concat(ctx, pieces, 0), [2, 1, 1])
        shift = H.sub(ctx, H.mul(ctx, scale, 0.5), 1.0)
    base = _base(ctx, kh, kw, ho, wo, stride, pad, dil, f32)
    if isinstance(base, np.ndarray) and isinstance(scale, np.ndarray):
        bias: Any = base * scale + shift
    else:
        if isinstance(base, np.ndarray):
            base = ctx.const(base, dtype=f32)
        bias = H.add(ctx, H.mul(ctx, base, scale), shift)
    pos = H.reshape(ctx, offset, [ndg, k, 2, ho, wo])
    grid = H.add(ctx, H.mul(ctx, pos, scale), bias)
    grid = H.slice_(ctx, grid, [0, 0, 1, 0, 0], [ndg, k, 2, ho, wo], [1, 1, -1, 1, 1])  # (h, w) -> (x, y)
    grid = H.reshape(ctx, H.transpose(ctx, grid, [0, 1, 3, 4, 2]), [ndg, H.sym_mul(ctx, k, ho), wo, 2])

    # 2. one GridSample for every tap and deformable group
    layer = ctx.named(ctx.network.add_grid_sample(H.reshape(ctx, x, [ndg, c // dg, h, wd]), grid))
    layer.interpolation_mode = trt.InterpolationMode.LINEAR
    layer.sample_mode = trt.SampleMode.FILL
    layer.align_corners = False
    cols = H.reshape(ctx, layer.get_output(0), [ndg, c // dg, k, ho, wo])

    # 3. modulation (v2)
    if mask_in is not None:
        cols = H.mul(ctx, cols, H.reshape(ctx, ctx.cast(mask_in, f32), [ndg, 1, k, ho, wo]))

    # 4. sum over channels and taps: a grouped 1x1 convolution by the filter as [M, C / groups * K, 1, 1]
    cols = ctx.cast(H.reshape(ctx, cols, [n, c * k, ho, wo]), ctx.float_type)
    w1 = np.ascontiguousarray(w.reshape(m_out, c_per_group * k, 1, 1))
    ctx.keep_alive(w1)
    conv = ctx.named(ctx.network.add_convolution_nd(cols, m_out, (1, 1), w1))
    conv.num_groups = groups
    ctx.output(op, conv.get_output(0))
