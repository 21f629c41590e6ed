"""Detection box ops built from standard layers: yolo_box decoding (iou_aware too), box_coder, the prior /
anchor grids of prior_box and anchor_generator (computed from the run-time feature and image sizes), and
roi_align as two matrix products with per-roi bilinear weight rows (fixed or adaptive sampling_ratio).

Formulas follow Paddle's CPU kernels (phi yolo_box, box_coder, prior_box, anchor_generator, roi_align),
including the order of float operations where it is cheap to keep. roi_align differs from Paddle only on
empty aligned rois under adaptive sampling (ceil(bin) <= 0): Paddle divides 0 by 0 (NaN) or loops over a
negative count cast to size_t; here such a roi gives 0.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from repogen.trt.helpers import tensors as H
from repogen.trt.converter_table import converter, refuse


def _channel(ctx, t, axis: int, start: int, size: int = 1):
    """t[..., start:start+size, ...] along axis, dims kept."""
    dims = H.dims_of(ctx, t)
    starts, sizes = [0] * len(dims), list(dims)
    starts[axis], sizes[axis] = start, size
    return H.slice_(ctx, t, starts, sizes)


def _float_dim(ctx, d, rank: int):
    """A dim (int or run-time) as a float tensor of the given rank, for broadcasting."""
    if isinstance(d, (int, np.integer)):
        return ctx.const(np.full((1,) * rank, float(d)))
    return H.reshape(ctx, ctx.cast(H.dim_tensor(ctx, d), ctx.float_type), [1] * rank)


def _sigmoid(ctx, t):
    return H.activation(ctx, t, "SIGMOID")


# --- yolo_box ---------------------------------------------------------------------------------------
@converter("yolo_box")
def yolo_box(ctx, op):
    # x [N, A*(5+C), H, W]; anchor a, cell (row j, column i), s = scale_x_y:
    #   cx = (i + sigmoid(tx) * s - (s - 1) / 2) * img_w / W      w = exp(tw) * anchor_w * img_w / (ratio * W)
    #   box = (cx - w/2, cy - h/2, cx + w/2, cy + h/2), clipped to [0, img - 1] with clip_bbox
    #   conf = sigmoid(tconf); scores = conf * sigmoid(cls); box and scores are 0 where conf < conf_thresh
    # outputs [N, A*H*W, 4] and [N, A*H*W, C], anchor-major as Paddle lays them out
    # iou_aware (PP-YOLO): x is [N, A + A*(5+C), H, W], the A IoU logits first (phi GetIoUIndex /
    # GetEntryIndex), and conf = sigmoid(tconf)^(1 - f) * sigmoid(tiou)^f before the threshold
    iou_aware = bool(ctx.attr(op, "iou_aware", default=False))
    x = ctx.input(op, "x")
    img = ctx.cast(ctx.input(op, "img_size"), ctx.float_type)  # [N, 2] as (h, w)
    anchors = np.asarray(ctx.attr(op, "anchors"), dtype=np.float64).reshape(-1, 2)
    num_anchors, classes = len(anchors), int(ctx.attr(op, "class_num"))
    thresh = float(ctx.attr(op, "conf_thresh", default=0.01))
    ratio = int(ctx.attr(op, "downsample_ratio", default=32))
    s = float(ctx.attr(op, "scale_x_y", default=1.0))
    n, c, h, w = H.dims_of(ctx, x)
    per_anchor = 5 + classes + (1 if iou_aware else 0)
    if isinstance(c, int) and c != num_anchors * per_anchor:
        raise ctx.fail(f"x has {c} channels; {num_anchors} anchors x ({per_anchor - classes} + {classes} classes) "
                       f"need {num_anchors * per_anchor}" + (" with iou_aware" if iou_aware else ""))
    iou = None
    if iou_aware:
        iou = H.reshape(ctx, _channel(ctx, x, 1, 0, num_anchors), [n, num_anchors, 1, h, w])
        x = _channel(ctx, x, 1, num_anchors, num_anchors * (5 + classes))

    t = H.reshape(ctx, x, [n, num_anchors, 5 + classes, h, w])
    tx, ty, tw, th, tconf = (_channel(ctx, t, 2, k) for k in range(5))
    img_h = H.reshape(ctx, _channel(ctx, img, 1, 0), [n, 1, 1, 1, 1])
    img_w = H.reshape(ctx, _channel(ctx, img, 1, 1), [n, 1, 1, 1, 1])
    grid_w, grid_h = _float_dim(ctx, w, 5), _float_dim(ctx, h, 5)
    col = H.reshape(ctx, H.iota(ctx, w, ctx.float_type), [1, 1, 1, 1, w])
    row = H.reshape(ctx, H.iota(ctx, h, ctx.float_type), [1, 1, 1, h, 1])
    bias = -0.5 * (s - 1.0)

    def center(cell, t_off, size, grid):
        return H.div(ctx, H.mul(ctx, H.add(ctx, H.add(ctx, cell, H.mul(ctx, _sigmoid(ctx, t_off), s)), bias), size), grid)

    def half_extent(t_size, anchor, size, grid):
        scaled = ctx.const((anchor / ratio).reshape(1, num_anchors, 1, 1, 1))
        return H.mul(ctx, H.div(ctx, H.mul(ctx, H.mul(ctx, H.unary(ctx, t_size, "EXP"), scaled), size), grid), 0.5)

    cx, cy = center(col, tx, img_w, grid_w), center(row, ty, img_h, grid_h)
    hw, hh = half_extent(tw, anchors[:, 0], img_w, grid_w), half_extent(th, anchors[:, 1], img_h, grid_h)
    x1, y1, x2, y2 = H.sub(ctx, cx, hw), H.sub(ctx, cy, hh), H.add(ctx, cx, hw), H.add(ctx, cy, hh)
    if ctx.attr(op, "clip_bbox", default=True):
        x1, y1 = H.maximum(ctx, x1, 0.0), H.maximum(ctx, y1, 0.0)
        x2, y2 = H.minimum(ctx, x2, H.sub(ctx, img_w, 1.0)), H.minimum(ctx, y2, H.sub(ctx, img_h, 1.0))

    conf = _sigmoid(ctx, tconf)
    if iou is not None:
        f = float(ctx.attr(op, "iou_aware_factor", default=0.5))
        conf = H.mul(ctx, H.ew(ctx, conf, 1.0 - f, "POW"), H.ew(ctx, _sigmoid(ctx, iou), f, "POW"))
    keep = ctx.cast(H.unary(ctx, H.ew(ctx, conf, thresh, "LESS"), "NOT"), ctx.float_type)
    boxes = H.mul(ctx, H.concat(ctx, [x1, y1, x2, y2], 2), keep)
    scores = H.mul(ctx, H.mul(ctx, _sigmoid(ctx, _channel(ctx, t, 2, 5, classes)), conf), keep)

    def rows(v, k):  # [N, A, k, H, W] -> [N, A*H*W, k]
        return H.reshape(ctx, H.transpose(ctx, v, [0, 1, 3, 4, 2]), [n, -1, k])

    ctx.output(op, rows(boxes, 4), slot="boxes")
    ctx.output(op, rows(scores, classes), slot="scores")


# --- box_coder --------------------------------------------------------------------------------------
def _corners(ctx, boxes, axis: int):
    return [_channel(ctx, boxes, axis, k) for k in range(4)]


def _size_center(ctx, corners, plus_one: float):
    """(width, height, center x, center y) of prior boxes as Paddle's box_coder computes them."""
    x1, y1, x2, y2 = corners
    bw, bh = H.add(ctx, H.sub(ctx, x2, x1), plus_one), H.add(ctx, H.sub(ctx, y2, y1), plus_one)
    return bw, bh, H.add(ctx, x1, H.mul(ctx, bw, 0.5)), H.add(ctx, y1, H.mul(ctx, bh, 0.5))


def _variances(ctx, op, var, axis: int) -> list:
    """Per-coordinate variances: a [M, 4] tensor (split like the priors), the ``variance`` attr, or none."""
    if var is not None:
        return _corners(ctx, var, axis)
    attr = [float(v) for v in (ctx.attr(op, "variance", default=[]) or [])]
    if attr and len(attr) != 4:
        raise ctx.fail(f"variance must have 4 values, not {len(attr)}")
    return attr or [None] * 4


@converter("box_coder")
def box_coder(ctx, op):
    prior = ctx.input(op, "prior_box")  # [M, 4]
    var = ctx.input(op, "prior_box_var") if op.input("prior_box_var") else None
    target = ctx.input(op, "target_box")
    code = str(ctx.attr(op, "code_type", default="encode_center_size")).lower()
    plus_one = 0.0 if ctx.attr(op, "box_normalized", default=True) else 1.0
    if code == "encode_center_size":
        # target [N, 4] against every prior: out [N, M, 4]
        if H.rank(target) != 2:
            raise ctx.fail(f"encoding takes target_box of rank 2, not {H.rank(target)}")
        pw, ph, pcx, pcy = (H.reshape(ctx, v, [1, -1, 1]) for v in _size_center(ctx, _corners(ctx, prior, 1), plus_one))
        tx1, ty1, tx2, ty2 = (H.unsqueeze(ctx, v, [1]) for v in _corners(ctx, target, 1))  # [N, 1, 1]
        tcx, tcy = H.mul(ctx, H.add(ctx, tx2, tx1), 0.5), H.mul(ctx, H.add(ctx, ty2, ty1), 0.5)
        tw, th = H.add(ctx, H.sub(ctx, tx2, tx1), plus_one), H.add(ctx, H.sub(ctx, ty2, ty1), plus_one)
        out = [H.div(ctx, H.sub(ctx, tcx, pcx), pw), H.div(ctx, H.sub(ctx, tcy, pcy), ph),
               H.unary(ctx, H.unary(ctx, H.div(ctx, tw, pw), "ABS"), "LOG"),
               H.unary(ctx, H.unary(ctx, H.div(ctx, th, ph), "ABS"), "LOG")]
        variances = [v if v is None or isinstance(v, float) else H.reshape(ctx, v, [1, -1, 1])
                     for v in _variances(ctx, op, var, 1)]
        out = [o if v is None else H.div(ctx, o, v) for o, v in zip(out, variances)]
        return ctx.output(op, H.concat(ctx, out, 2))
    if code != "decode_center_size":
        raise ctx.fail(f"code_type {code!r} is not encode_center_size or decode_center_size")
    # target [N, M, 4]; priors [M, 4] pair with dim 1 (axis 0) or [N, 4] with dim 0 (axis 1)
    axis = int(ctx.attr(op, "axis", default=0))
    if H.rank(target) != 3 or axis not in (0, 1):
        raise ctx.fail(f"decoding takes target_box of rank 3 and axis 0 or 1 (rank {H.rank(target)}, axis {axis})")
    view = [1, -1, 1] if axis == 0 else [-1, 1, 1]
    pw, ph, pcx, pcy = (H.reshape(ctx, v, view) for v in _size_center(ctx, _corners(ctx, prior, 1), plus_one))
    variances = [1.0 if v is None else v if isinstance(v, float) else H.reshape(ctx, v, view)
                 for v in _variances(ctx, op, var, 1)]
    t0, t1, t2, t3 = _corners(ctx, target, 2)
    cx = H.add(ctx, H.mul(ctx, H.mul(ctx, t0, variances[0]), pw), pcx)
    cy = H.add(ctx, H.mul(ctx, H.mul(ctx, t1, variances[1]), ph), pcy)
    half_w = H.mul(ctx, H.mul(ctx, H.unary(ctx, H.mul(ctx, t2, variances[2]), "EXP"), pw), 0.5)
    half_h = H.mul(ctx, H.mul(ctx, H.unary(ctx, H.mul(ctx, t3, variances[3]), "EXP"), ph), 0.5)
    out = [H.sub(ctx, cx, half_w), H.sub(ctx, cy, half_h),
           H.sub(ctx, H.add(ctx, cx, half_w), plus_one), H.sub(ctx, H.add(ctx, cy, half_h), plus_one)]
    ctx.output(op, H.concat(ctx, out, 2))


# --- prior / anchor grids ---------------------------------------------------------------------------
def _grid_boxes(ctx, fh, fw, cx, cy, lo: Sequence[np.ndarray], hi: Sequence[np.ndarray], scale=(None, None)):
    """[H, W, P, 4] boxes (cx - lo_x, cy - lo_y, cx + hi_x, cy + hi_y), each divided by scale (x, y).

    cx [1, W, 1] and cy [H, 1, 1] are the cell centers; lo/hi hold one offset per prior (numpy arrays)."""
    p = len(lo[0])
    dims = [fh, fw, p]

    def coord(center, offset, sign, divisor):
        v = H.add(ctx, center, ctx.const((sign * np.asarray(offset, np.float64)).reshape(1, 1, p)))
        v = v if divisor is None else H.div(ctx, v, divisor)
        return H.unsqueeze(ctx, H.broadcast_to(ctx, v, dims), [3])

    return H.concat(ctx, [coord(cx, lo[0], -1, scale[0]), coord(cy, lo[1], -1, scale[1]),
                          coord(cx, hi[0], 1, scale[0]), coord(cy, hi[1], 1, scale[1])], 3)


def _centers(ctx, fh, fw, step_w, step_h, offset_w: float, offset_h: float):
    """cx [1, W, 1] = col * step_w + offset_w-term and cy [H, 1, 1], as the kernels compute them."""
    cx = H.mul(ctx, H.add(ctx, H.iota(ctx, fw, ctx.float_type), offset_w), step_w)
    cy = H.mul(ctx, H.add(ctx, H.iota(ctx, fh, ctx.float_type), offset_h), step_h)
    return H.reshape(ctx, cx, [1, fw, 1]), H.reshape(ctx, cy, [fh, 1, 1])


def _variance_grid(ctx, op, boxes, name: str):
    var = np.asarray([float(v) for v in ctx.attr(op, name, default=[0.1, 0.1, 0.2, 0.2])], np.float64)
    return H.broadcast_to(ctx, ctx.const(var.reshape(1, 1, 1, 4)), H.dims_of(ctx, boxes))


def _aspect_ratios(ratios: Sequence[float], flip: bool) -> list[float]:
    # Paddle's ExpandAspectRatios: 1 first, then each new ratio (and its inverse with flip)
    out = [1.0]
    for r in ratios:
        if all(abs(r - o) >= 1e-6 for o in out):
            out.append(r)
            if flip:
                out.append(1.0 / r)
    return out


def _prior_half_sizes(op, ctx) -> tuple[np.ndarray, np.ndarray]:
    mins = [float(v) for v in ctx.attr(op, "min_sizes")]
    maxs = [float(v) for v in (ctx.attr(op, "max_sizes", default=[]) or [])]
    if maxs and len(maxs) != len(mins):
        raise ctx.fail(f"max_sizes has {len(maxs)} values for {len(mins)} min_sizes")
    ratios = _aspect_ratios([float(r) for r in ctx.attr(op, "aspect_ratios", default=[1.0])],
                            bool(ctx.attr(op, "flip", default=False)))
    minmax_first = bool(ctx.attr(op, "min_max_aspect_ratios_order", default=False))
    half_w: list[float] = []
    half_h: list[float] = []
    f32 = np.float32  # the kernel works in float

    def put(w: float, h: float) -> None:
        half_w.append(float(f32(w)))
        half_h.append(float(f32(h)))

    for k, m in enumerate(mins):
        def by_ratio(skip_one: bool) -> None:
            for r in ratios:
                if skip_one and abs(r - 1.0) < 1e-6:
                    continue
                put(m * math.sqrt(f32(r)) / 2.0, m / math.sqrt(f32(r)) / 2.0)

        if minmax_first:
            put(m / 2.0, m / 2.0)
            if maxs:
                put(math.sqrt(m * maxs[k]) / 2.0, math.sqrt(m * maxs[k]) / 2.0)
            by_ratio(skip_one=True)
        else:
            by_ratio(skip_one=False)
            if maxs:
                put(math.sqrt(m * maxs[k]) / 2.0, math.sqrt(m * maxs[k]) / 2.0)
    return np.asarray(half_w), np.asarray(half_h)


@converter("prior_box")
def prior_box(ctx, op):
    # SSD priors: for cell (h, w) with center ((w + offset) * step_w, (h + offset) * step_h), one box per
    # (min size, ratio) [+ max size], normalised by the image size; step = image / feature unless given
    fh, fw = H.dims_of(ctx, ctx.input(op, "input"))[2:]
    ih, iw = H.dims_of(ctx, ctx.input(op, "image"))[2:]
    img_w, img_h = _float_dim(ctx, iw, 3), _float_dim(ctx, ih, 3)
    step_w, step_h = float(ctx.attr(op, "step_w", default=0.0)), float(ctx.attr(op, "step_h", default=0.0))
    if step_w == 0.0 or step_h == 0.0:
        step_w, step_h = H.div(ctx, _float_dim(ctx, iw, 1), _float_dim(ctx, fw, 1)), \
            H.div(ctx, _float_dim(ctx, ih, 1), _float_dim(ctx, fh, 1))
    offset = float(ctx.attr(op, "offset", default=0.5))
    cx, cy = _centers(ctx, fh, fw, step_w, step_h, offset, offset)
    half_w, half_h = _prior_half_sizes(op, ctx)
    boxes = _grid_boxes(ctx, fh, fw, cx, cy, (half_w, half_h), (half_w, half_h), (img_w, img_h))
    if ctx.attr(op, "clip", default=False):
        boxes = H.minimum(ctx, H.maximum(ctx, boxes, 0.0), 1.0)
    ctx.output(op, boxes, slot="out")
    ctx.output(op, _variance_grid(ctx, op, boxes, "variances"), slot="var")


def _round_half_up(v: float) -> float:
    return math.floor(v + 0.5)  # std::round of a positive value (numpy rounds halves to even)


@converter("anchor_generator")
def anchor_generator(ctx, op):
    # Faster R-CNN anchors in pixels: center (w * stride_w + offset * (stride_w - 1), ...); per (ratio, size)
    # base_w = round(sqrt(stride_w * stride_h / ratio)), base_h = round(base_w * ratio), scaled by
    # size / stride; corners center -+ (extent - 1) / 2
    fh, fw = H.dims_of(ctx, ctx.input(op, "input"))[2:]
    stride_w, stride_h = (float(v) for v in ctx.attr(op, "stride", default=[16.0, 16.0]))
    offset = float(ctx.attr(op, "offset", default=0.5))
    widths, heights = [], []
    for ratio in (float(r) for r in ctx.attr(op, "aspect_ratios")):
        for size in (float(s) for s in ctx.attr(op, "anchor_sizes")):
            base_w = _round_half_up(math.sqrt(stride_w * stride_h / ratio))
            base_h = _round_half_up(base_w * ratio)
            widths.append(size / stride_w * base_w)
            heights.append(size / stride_h * base_h)
    half_w = 0.5 * (np.asarray(widths) - 1)
    half_h = 0.5 * (np.asarray(heights) - 1)
    cx, cy = _centers(ctx, fh, fw, stride_w, stride_h, offset * (stride_w - 1) / stride_w,
                      offset * (stride_h - 1) / stride_h)
    anchors = _grid_boxes(ctx, fh, fw, cx, cy, (half_w, half_h), (half_w, half_h))
    ctx.output(op, anchors, slot="anchors")
    ctx.output(op, _variance_grid(ctx, op, anchors, "variances"), slot="variances")


# --- roi_align --------------------------------------------------------------------------------------
def _roi_batch_index(ctx, boxes_num, rois):
    """Image of each roi from the per-image counts: roi r belongs to image #{b : cumsum(counts)[b] <= r}."""
    # in FLOAT: counts are small whole numbers, exact there, and every layer below takes FLOAT
    ends = ctx.cast(H.reshape(ctx, boxes_num, [1, -1]), ctx.trt.DataType.FLOAT)
    layer = ctx.named(ctx.network.add_cumulative(ends, ctx.const(np.asarray(1, np.int32)),
                                                 ctx.trt.CumulativeOperation.SUM, False, False))
    ends = layer.get_output(0)  # [1, N]
    r = H.reshape(ctx, H.iota(ctx, rois, ctx.trt.DataType.FLOAT), [-1, 1])  # [R, 1]
    passed = ctx.cast(H.unary(ctx, H.ew(ctx, r, ends, "LESS"), "NOT"), ctx.trt.DataType.FLOAT)
    return ctx.cast(H.reduce(ctx, passed, "SUM", [1], keep=False), ctx.trt.DataType.INT32)  # [R]


# Adaptive sampling (sampling_ratio <= 0) uses G = ceil(bin) points per bin, so a bin of more than one pixel has
# points spaced bin / G > 1/2 apart; a pixel only takes weight from points in [p - 1, p + 1], hence from at most
# 4 consecutive points. A window of this many candidates (from a floor() estimate of the first one, which may be
# off by one either way from rounding) covers them; the rest are masked by Paddle's own tests.
_ADAPTIVE_WINDOW = 7


def _roi_axis_weights(ctx, lo, extent, bins: int, size, g: int):
    """[R, bins, size] weight of each pixel row (column) in each bin's average, as Paddle's CPU roi_align
    samples: point y = lo + bin * (i + (k + 0.5) / G) for k < G; 0 outside [-1, size], else clamped into
    [0, size - 1] and split between floor(y) (weight high - y) and the next pixel; the bin averages its G points.

    lo and extent are [R, 1] FP32; G = g, or ceil(bin) per roi when g <= 0."""
    ft = ctx.trt.DataType.FLOAT
    bin_size = H.div(ctx, extent, float(bins))  # [R, 1]
    size_f = ctx.cast(H.reshape(ctx, H.dim_tensor(ctx, size), [1, 1, 1, 1]), ft) if not isinstance(size, int) \
        else ctx.const(np.full((1, 1, 1, 1), float(size)), dtype=ft)
    pixels = H.iota(ctx, size, ft)
    cells = ctx.const(np.arange(bins, dtype=np.float32).reshape(1, bins, 1, 1), dtype=ft)
    lo4, bin4 = H.reshape(ctx, lo, [-1, 1, 1, 1]), H.reshape(ctx, bin_size, [-1, 1, 1, 1])
    if g > 0:
        # every point of every bin: [R, bins, G, 1] against pixels [1, 1, 1, size]
        frac = ((np.arange(g, dtype=np.float32) + np.float32(0.5)) / np.float32(g)).reshape(1, 1, g, 1)
        y = H.add(ctx, lo4, H.mul(ctx, bin4, H.add(ctx, cells, ctx.const(frac, dtype=ft))))
        pix, taken, count, sample_axis = H.reshape(ctx, pixels, [1, 1, 1, size]), None, float(g), 2
    else:
        # per pixel [1, 1, size, 1], the window of points that can reach it: [R, bins, size, window]
        count = H.unary(ctx, bin4, "CEIL")  # [R, 1, 1, 1]; <= 0 (an empty aligned roi) samples nothing
        safe_count = H.maximum(ctx, count, 1.0)
        pix = H.reshape(ctx, pixels, [1, 1, size, 1])
        # first k with y_k >= p - 1, estimated; bin >= 1e-6 keeps it finite (G = 1 there, and a smaller
        # divisor only moves the estimate down, still covering k = 0)
        first = H.sub(ctx, H.mul(ctx, safe_count, H.sub(ctx, H.div(ctx, H.sub(ctx, H.sub(ctx, pix, 1.0), lo4),
                                                                   H.maximum(ctx, bin4, 1e-6)), cells)), 0.5)
        first = H.maximum(ctx, H.sub(ctx, H.unary(ctx, first, "FLOOR"), 1.0), 0.0)
        k = H.add(ctx, first, ctx.const(np.arange(_ADAPTIVE_WINDOW, dtype=np.float32).reshape(1, 1, 1, -1), dtype=ft))
        taken = ctx.cast(H.ew(ctx, k, count, "LESS"), ft)
        frac = H.div(ctx, H.add(ctx, k, 0.5), safe_count)
        y = H.add(ctx, lo4, H.mul(ctx, bin4, H.add(ctx, cells, frac)))
        count, sample_axis = H.reshape(ctx, safe_count, [-1, 1, 1]), 3
    inside = H.unary(ctx, H.ew(ctx, H.ew(ctx, y, -1.0, "LESS"), H.ew(ctx, y, size_f, "GREATER"), "OR"), "NOT")
    last = H.sub(ctx, size_f, 1.0)
    y = H.minimum(ctx, H.maximum(ctx, y, 0.0), last)  # at or past the last pixel: y = low = high = last
    low = H.unary(ctx, y, "FLOOR")
    high = H.minimum(ctx, H.add(ctx, low, 1.0), last)
    w_low = H.sub(ctx, high, y)
    weight = H.add(ctx, H.mul(ctx, ctx.cast(H.ew(ctx, pix, low, "EQUAL"), ft), w_low),
                   H.mul(ctx, ctx.cast(H.ew(ctx, pix, high, "EQUAL"), ft), H.sub(ctx, 1.0, w_low)))
    weight = H.mul(ctx, weight, ctx.cast(inside, ft))
    if taken is not None:
        weight = H.mul(ctx, weight, taken)
    return H.div(ctx, H.reduce(ctx, weight, "SUM", [sample_axis], keep=False), count)


@converter("roi_align")
def roi_align(ctx, op):
    # Per roi (x1, y1, x2, y2) * spatial_scale (- 0.5 when aligned), extents at least 1 unless aligned, bin =
    # extent / pooled. Bilinear sampling is separable and so is Paddle's out-of-range rule, so each output is
    # Wy[r, i, :] . image[b_r] . Wx[r, j, :] with per-axis weight rows (_roi_axis_weights); rois are sent to
    # their image by zeroing the other images' blocks of Wy, so two matrix products do it all, without a per-roi
    # copy of the feature map. Weights in FP32; the products in the feature map's type.
    x = ctx.input(op, "x")
    boxes = ctx.input(op, "boxes")
    if not op.input("boxes_num"):
        raise ctx.fail("boxes_num (RoisNum) is required: LoD rois have no TensorRT form")
    ph, pw = int(ctx.attr(op, "pooled_height", default=1)), int(ctx.attr(op, "pooled_width", default=1))
    g = int(ctx.attr(op, "sampling_ratio", default=-1))
    scale = float(ctx.attr(op, "spatial_scale", default=1.0))
    aligned = bool(ctx.attr(op, "aligned", default=False))
    ft = ctx.trt.DataType.FLOAT
    rois = H.dims_of(ctx, boxes)[0]
    n, c, h, w = H.dims_of(ctx, x)
    b = ctx.cast(boxes, ft)

    def axis_weights(k_lo, k_hi, bins, size):
        lo = H.sub(ctx, H.mul(ctx, _channel(ctx, b, 1, k_lo), scale), 0.5 if aligned else 0.0)
        extent = H.sub(ctx, H.sub(ctx, H.mul(ctx, _channel(ctx, b, 1, k_hi), scale), 0.5 if aligned else 0.0), lo)
        if not aligned:
            extent = H.maximum(ctx, extent, 1.0)
        return _roi_axis_weights(ctx, lo, extent, bins, size, g)

    wy, wx = axis_weights(1, 3, ph, h), axis_weights(0, 2, pw, w)  # [R, PH, H], [R, PW, W]
    image = ctx.cast(H.reshape(ctx, _roi_batch_index(ctx, ctx.input(op, "boxes_num"), rois), [-1, 1, 1, 1]), ft)
    own = ctx.cast(H.ew(ctx, image, H.reshape(ctx, H.iota(ctx, n, ft), [1, 1, n, 1]), "EQUAL"), ft)  # [R, 1, N, 1]
    a = H.reshape(ctx, H.mul(ctx, H.unsqueeze(ctx, wy, [2]), own), [-1, H.sym_mul(ctx, n, h)])  # [R*PH, N*H]
    dt = x.dtype
    feats = H.reshape(ctx, H.transpose(ctx, x, [0, 2, 1, 3]), [H.sym_mul(ctx, n, h), -1])  # [N*H, C*W]
    rows = H.matmul_tensors(ctx, ctx.cast(a, dt), feats)  # [R*PH, C*W]
    rows = H.transpose(ctx, H.reshape(ctx, rows, [rois, ph, c, w]), [0, 2, 1, 3])  # [R, C, PH, W]
    out = H.matmul_tensors(ctx, rows, ctx.cast(H.unsqueeze(ctx, wx, [1]), dt), trans_y=True)  # [R, C, PH, PW]
    ctx.output(op, out)


# what these converters refuse (repogen ops --refused, docs/refused.md)
refuse(("roi_align",), "no `boxes_num` (LoD rois)", "LoD tensors have no TensorRT form")
