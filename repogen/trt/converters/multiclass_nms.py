"""multiclass_nms / multiclass_nms2 / multiclass_nms3 through TensorRT's NMS layer; matrix_nms (score decay,
no suppression) from elementwise layers on IoU matrices.

Paddle (phi multiclass_nms3 kernel), per image: every class but ``background_label`` keeps its boxes
scoring above ``score_threshold``, at most ``nms_top_k`` best of them, then greedy suppression at IoU >
``nms_threshold``; the ``keep_top_k`` best detections of the image over all classes survive. Output rows
(label, score, x1, y1, x2, y2) of all images, ``Index`` (image * M + box) and the per-image counts.

Built as: scores of the background class and below each class's nms_top_k-th score pushed to -inf; the NMS
layer (boxes shared by the classes; ``normalized=False`` sizes w + 1 by moving x2, y2 out by one); the
selected (image, class, box) scattered into a [N, C, M] mask; per image a TopK over the C*M masked scores
gives the keep_top_k best; NonZero of the surviving slots and gathers build the rows.

Differences from Paddle, by design: rows of an image come in decreasing score, where Paddle groups them by
class first (the same set: `repogen check` compares detection outputs as sets of rows); ties at the
nms_top_k-th score keep all tied boxes; with ``normalized=False`` two boxes less than one unit apart count
as overlapping (TensorRT has no +1 rule); an image keeps at most 3840 detections (TensorRT's TopK limit)
and at most 5000 (box, class) candidates enter suppression (the NMS layer's limit). ``nms_eta`` < 1
(adaptive threshold) and per-roi boxes (``rois_num``, 2-D scores) are refused.
"""

from __future__ import annotations

import warnings

import numpy as np

from repogen.trt.helpers import tensors as H
from repogen.trt.limits import NMS_MAX_BOXES, TOPK_MAX_K
from repogen.trt.converter_table import converter, refuse

_NEG = -3.0e38  # below any score: a slot that can never be selected


def _scalar_int32(ctx, value):
    """A 0-D INT32 tensor from an int or a 1-element run-time dim."""
    if isinstance(value, (int, np.integer)):
        return ctx.const(np.asarray(int(value), np.int32))
    return H.squeeze(ctx, ctx.cast(H.reshape(ctx, H.dim_tensor(ctx, value), [1]), ctx.trt.DataType.INT32), [0])


def _topk_values(ctx, x, k, axis: int):
    """Values of the k largest along axis (k an int or a run-time dim)."""
    layer = ctx.named(ctx.network.add_topk(x, ctx.trt.TopKOperation.MAX, k if isinstance(k, int) else 1,
                                           1 << axis))
    if not isinstance(k, int):
        layer.set_input(1, _scalar_int32(ctx, k))
    return layer.get_output(0), layer.get_output(1)


def _last(ctx, t, axis: int):
    """t's last element along axis, dim kept."""
    dims = H.dims_of(ctx, t)
    starts = [0] * len(dims)
    starts[axis] = H.sym_sub(ctx, dims[axis], 1)
    sizes = list(dims)
    sizes[axis] = 1
    return H.slice_(ctx, t, starts, sizes)


def _gather_nd(ctx, data, index):
    layer = ctx.named(ctx.network.add_gather_v2(data, index, ctx.trt.GatherMode.ND))
    layer.num_elementwise_dims = 0
    return layer.get_output(0)


def _shape(op, slot: str, shapes):
    name = op.input(slot) if slot in op.inputs else op.output(slot)
    return shapes.get(name) if name else None


def _candidates_per_class(op, scores_shape) -> tuple[int, int]:
    """(real classes, candidates per class) at these scores dims [N, C, M]."""
    classes, boxes = int(scores_shape[1]), int(scores_shape[2])
    top_k = int(op.attrs.get("nms_top_k", -1))
    per_class = boxes if top_k < 0 else min(top_k, boxes)
    background = int(op.attrs.get("background_label", 0))
    return classes - (1 if 0 <= background < classes else 0), per_class


def nms_limit(op, shapes) -> str | None:
    """The NMS layer takes at most NMS_MAX_BOXES candidates into its TopK, and an image keeps at most TOPK_MAX_K."""
    s = _shape(op, "scores", shapes)
    if s is None or len(s) != 3:
        return None
    real, per_class = _candidates_per_class(op, s)
    if int(op.attrs.get("nms_top_k", -1)) >= 0 and per_class > TOPK_MAX_K:  # the nms_top_k cut is a TopK
        return (f"layer limit: {per_class} candidates per class at the profile's max shapes; TensorRT's TopK takes "
                f"k <= {TOPK_MAX_K}")
    if real * per_class > NMS_MAX_BOXES:
        return (f"layer limit: {real} classes x {per_class} candidates = {real * per_class} boxes at the profile's "
                f"max shapes; TensorRT's NMS layer takes at most {NMS_MAX_BOXES} into its TopK")
    keep = int(op.attrs.get("keep_top_k", -1))
    k = real * per_class if keep < 0 else min(keep, real * per_class)
    if k > TOPK_MAX_K:
        return f"layer limit: keeps up to {k} detections per image; TensorRT's TopK takes k <= {TOPK_MAX_K}"
    return None


def matrix_nms_limit(op, shapes) -> str | None:
    """Each class's candidates are sorted by one TopK (k <= TOPK_MAX_K), and so are the kept detections."""
    s = _shape(op, "scores", shapes)
    if s is None or len(s) != 3:
        return None
    real, per_class = _candidates_per_class(op, s)
    if per_class > TOPK_MAX_K:
        return (f"layer limit: {per_class} candidates per class at the profile's max shapes; TensorRT's TopK takes "
                f"k <= {TOPK_MAX_K}")
    keep = int(op.attrs.get("keep_top_k", -1))
    k = real * per_class if keep < 0 else min(keep, real * per_class)
    if k > TOPK_MAX_K:
        return f"layer limit: keeps up to {k} detections per image; TensorRT's TopK takes k <= {TOPK_MAX_K}"
    return None



@converter("multiclass_nms", "multiclass_nms2", "multiclass_nms3", limit=nms_limit, layers=("NMS", "NonZero"))
def multiclass_nms(ctx, op):
    f32 = ctx.trt.DataType.FLOAT  # suppression and ranking in FP32 under --fp16 too
    boxes, scores = ctx.cast(ctx.input(op, "bboxes"), f32), ctx.cast(ctx.input(op, "scores"), f32)
    if op.input("rois_num") or H.rank(boxes) != 3 or H.rank(scores) != 3:
        raise ctx.fail("only boxes [N, M, 4] shared by the classes with scores [N, C, M] are supported "
                       "(per-roi boxes with rois_num / LoD scores are not)")
    if float(ctx.attr(op, "nms_eta", default=1.0)) < 1.0:
        raise ctx.fail("nms_eta < 1 (an IoU threshold that shrinks as boxes are kept) has no TensorRT form")
    n, c, m = H.dims_of(ctx, scores)
    if not isinstance(c, int):
        raise ctx.fail("the number of classes (scores dim 1) must be static")
    background = int(ctx.attr(op, "background_label", default=0))
    nms_top_k = int(ctx.attr(op, "nms_top_k", default=-1))
    keep_top_k = int(ctx.attr(op, "keep_top_k", default=-1))

    # candidates: not background, among the nms_top_k best of their class
    if 0 <= background < c:
        keep_class = np.ones((1, c, 1), bool)
        keep_class[0, background, 0] = False
        scores_in = H.select(ctx, ctx.const(keep_class), scores, _NEG)
    else:
        scores_in = scores
    per_class = m if nms_top_k < 0 else H.sym_min(ctx, nms_top_k, m)
    if nms_top_k >= 0:
        if isinstance(per_class, int) and per_class > TOPK_MAX_K:
            raise ctx.fail(f"nms_top_k {nms_top_k} is above TensorRT's TopK limit {TOPK_MAX_K}")
        kth = _last(ctx, _topk_values(ctx, scores_in, per_class, 2)[0], 2)  # [N, C, 1]
        scores_in = H.select(ctx, H.unary(ctx, H.ew(ctx, scores_in, kth, "LESS"), "NOT"), scores_in, _NEG)

    nms_boxes = boxes
    if not ctx.attr(op, "normalized", default=True):
        nms_boxes = H.add(ctx, boxes, ctx.const(np.asarray([[[0.0, 0.0, 1.0, 1.0]]])))
    nms = ctx.named(ctx.network.add_nms(nms_boxes, H.transpose(ctx, scores_in, [0, 2, 1]), _scalar_int32(ctx, per_class)))
    nms.set_input(3, ctx.const(np.asarray(float(ctx.attr(op, "nms_threshold", default=0.3)), np.float32), dtype=f32))
    nms.set_input(4, ctx.const(np.asarray(float(ctx.attr(op, "score_threshold")), np.float32), dtype=f32))
    nms.topk_box_limit = NMS_MAX_BOXES
    if isinstance(per_class, int) and c * per_class > NMS_MAX_BOXES:
        warnings.warn(f"{op.type} #{ctx.position}: {c} classes x {per_class} candidates exceed the NMS layer's "
                      f"{NMS_MAX_BOXES}: lower-scoring candidates are never considered")
    selected = nms.get_output(0)  # [K, 3] (image, class, box)

    # the keep_top_k best selected slots of each image
    hits = ctx.named(ctx.network.add_scatter(
        H.fill(ctx, [n, c, m], 0.0, f32), selected,
        H.fill(ctx, [H.dims_of(ctx, selected)[0]], 1.0, f32), ctx.trt.ScatterMode.ND)).get_output(0)
    kept = H.select(ctx, H.ew(ctx, hits, 0.5, "GREATER"), scores, _NEG)
    emit_detections(ctx, op, kept, None, boxes, keep_top_k, count_slot="nms_rois_num")


def emit_detections(ctx, op, kept, box_of, boxes, keep_top_k: int, count_slot: str) -> None:
    """Outputs from per-class candidates: kept [N, C, K] scores (_NEG where not kept), box_of [N, C, K] the
    box index of each candidate (None: candidate k is box k), boxes [N, M, 4]. Per image the keep_top_k best
    become rows (label, score, x1, y1, x2, y2), Index (image * M + box) and the count."""
    f32 = ctx.trt.DataType.FLOAT
    n, c, k_per_class = H.dims_of(ctx, kept)
    m = H.dims_of(ctx, boxes)[1]
    slots = H.sym_mul(ctx, c, k_per_class)
    k = slots if keep_top_k < 0 else H.sym_min(ctx, keep_top_k, slots)
    top_scores, top_slots = _topk_values(ctx, H.reshape(ctx, kept, [n, -1]), H.sym_min(ctx, k, TOPK_MAX_K), 1)
    valid = H.ew(ctx, top_scores, _NEG / 2, "GREATER")  # [N, k]
    counts = ctx.cast(H.reduce(ctx, ctx.cast(valid, f32), "SUM", [1], keep=False), ctx.trt.DataType.INT32)

    where = H.transpose(ctx, ctx.named(ctx.network.add_non_zero(valid)).get_output(0), [1, 0])  # [T, 2]
    image = H.reshape(ctx, H.slice_(ctx, where, [0, 0], [H.dims_of(ctx, where)[0], 1]), [-1])  # [T]
    slot = _gather_nd(ctx, top_slots, where)  # [T]
    score = _gather_nd(ctx, top_scores, where)
    per_class = _int32_dim(ctx, k_per_class)
    label = H.ew(ctx, slot, per_class, "FLOOR_DIV")
    box = H.sub(ctx, slot, H.mul(ctx, label, per_class))
    if box_of is not None:
        box = _gather_nd(ctx, box_of, H.concat(ctx, [H.unsqueeze(ctx, t, [1]) for t in (image, label, box)], 1))
    coords = _gather_nd(ctx, boxes, H.concat(ctx, [H.unsqueeze(ctx, image, [1]), H.unsqueeze(ctx, box, [1])], 1))
    rows = H.concat(ctx, [H.unsqueeze(ctx, ctx.cast(label, f32), [1]), H.unsqueeze(ctx, score, [1]), coords], 1)
    ctx.output(op, ctx.cast(rows, H.out_dtype(ctx, op)))
    if op.outputs.get("index"):
        ctx.output(op, H.unsqueeze(ctx, H.add(ctx, H.mul(ctx, image, _int32_dim(ctx, m)), box), [1]), slot="index")
    if op.outputs.get(count_slot):
        ctx.output(op, counts, slot=count_slot)


def _int32_dim(ctx, d):
    """A dim as a [1] INT32 tensor."""
    if isinstance(d, (int, np.integer)):
        return ctx.const(np.asarray([int(d)], np.int32))
    return ctx.cast(H.reshape(ctx, H.dim_tensor(ctx, d), [1]), ctx.trt.DataType.INT32)


# --- matrix_nms ---------------------------------------------------------------------------------------
def _pairwise_iou(ctx, b, plus_one: float):
    """IoU [..., K, K] of boxes b [..., K, 4] (corner pairs), Paddle's JaccardOverlap (+1 sizes when not
    normalized; boxes apart give 0)."""
    r = H.rank(b)
    lo = [_coord(ctx, b, k) for k in range(4)]  # each [..., K]
    rows = [H.unsqueeze(ctx, v, [r - 1]) for v in lo]  # [..., K, 1]
    cols = [H.unsqueeze(ctx, v, [r - 2]) for v in lo]  # [..., 1, K]
    iw = H.maximum(ctx, H.add(ctx, H.sub(ctx, H.minimum(ctx, rows[2], cols[2]), H.maximum(ctx, rows[0], cols[0])),
                              plus_one), 0.0)
    ih = H.maximum(ctx, H.add(ctx, H.sub(ctx, H.minimum(ctx, rows[3], cols[3]), H.maximum(ctx, rows[1], cols[1])),
                              plus_one), 0.0)
    inter = H.mul(ctx, iw, ih)
    area = H.mul(ctx, H.add(ctx, H.sub(ctx, lo[2], lo[0]), plus_one), H.add(ctx, H.sub(ctx, lo[3], lo[1]), plus_one))
    union = H.sub(ctx, H.add(ctx, H.unsqueeze(ctx, area, [r - 1]), H.unsqueeze(ctx, area, [r - 2])), inter)
    return H.div(ctx, inter, union)


def _coord(ctx, b, k: int):
    dims = H.dims_of(ctx, b)
    starts = [0] * len(dims)
    starts[-1] = k
    return H.reshape(ctx, H.slice_(ctx, b, starts, dims[:-1] + [1]), dims[:-1])


@converter("matrix_nms", limit=matrix_nms_limit, layers=("NonZero",))
def matrix_nms(ctx, op):
    # SOLOv2's Matrix NMS (Paddle's matrix_nms kernel), per image and class: the nms_top_k best candidates
    # above score_threshold in decreasing score; candidate i decays to score_i * min(1, min_{j<i} f(iou_ij,
    # max_iou_j)) with max_iou_j = max_{l<j} iou_jl and f linear (1 - iou) / (1 - max_iou) or gaussian
    # exp((max_iou^2 - iou^2) * sigma); kept when the decayed score exceeds post_threshold. Built on the
    # [N, C, K, K] IoU matrix of each class's sorted candidates, with strictly-lower-triangular masks.
    f32 = ctx.trt.DataType.FLOAT
    boxes, scores = ctx.cast(ctx.input(op, "bboxes"), f32), ctx.cast(ctx.input(op, "scores"), f32)
    if H.rank(boxes) != 3 or H.rank(scores) != 3:
        raise ctx.fail("only boxes [N, M, 4] with scores [N, C, M] are supported")
    n, c, m = H.dims_of(ctx, scores)
    if not isinstance(c, int):
        raise ctx.fail("the number of classes (scores dim 1) must be static")
    score_threshold = float(ctx.attr(op, "score_threshold"))
    post_threshold = float(ctx.attr(op, "post_threshold", default=0.0))
    nms_top_k = int(ctx.attr(op, "nms_top_k", default=-1))
    background = int(ctx.attr(op, "background_label", default=0))
    plus_one = 0.0 if ctx.attr(op, "normalized", default=True) else 1.0

    if 0 <= background < c:
        keep_class = np.ones((1, c, 1), bool)
        keep_class[0, background, 0] = False
        scores = H.select(ctx, ctx.const(keep_class), scores, _NEG)
    k = m if nms_top_k < 0 else H.sym_min(ctx, nms_top_k, m)
    if isinstance(k, int) and k > TOPK_MAX_K:
        raise ctx.fail(f"{k} candidates per class exceed TensorRT's TopK limit {TOPK_MAX_K}")
    sorted_scores, order = _topk_values(ctx, scores, k, 2)  # [N, C, K], decreasing
    valid = H.ew(ctx, sorted_scores, score_threshold, "GREATER")
    # candidate boxes [N, C, K, 4]: boxes[image, order]
    image = H.broadcast_to(ctx, H.reshape(ctx, H.iota(ctx, n, ctx.trt.DataType.INT32), [-1, 1, 1]), H.dims_of(ctx, order))
    cand = _gather_nd(ctx, boxes, H.concat(ctx, [H.unsqueeze(ctx, image, [3]), H.unsqueeze(ctx, order, [3])], 3))

    iou = _pairwise_iou(ctx, cand, plus_one)  # [N, C, K, K], row i against column j
    kk = H.dims_of(ctx, order)[2]
    idx = H.iota(ctx, kk, ctx.trt.DataType.INT32)
    earlier = H.ew(ctx, H.reshape(ctx, idx, [1, 1, 1, -1]), H.reshape(ctx, idx, [1, 1, -1, 1]), "LESS")  # j < i
    # every candidate before a valid one is valid too (sorted by score), so j < i is the whole mask
    pairs = earlier
    lower = H.select(ctx, pairs, iou, 0.0)
    max_iou = H.reduce(ctx, lower, "MAX", [3], keep=False)  # [N, C, K]: each candidate vs those before it
    max_iou_j = H.unsqueeze(ctx, max_iou, [2])  # indexed by column j
    if ctx.attr(op, "use_gaussian", default=False):
        sigma = float(ctx.attr(op, "gaussian_sigma", default=2.0))
        decay = H.unary(ctx, H.mul(ctx, H.sub(ctx, H.mul(ctx, max_iou_j, max_iou_j), H.mul(ctx, lower, lower)), sigma),
                        "EXP")
    else:
        decay = H.div(ctx, H.sub(ctx, 1.0, lower), H.sub(ctx, 1.0, max_iou_j))
    decay = H.select(ctx, pairs, decay, 1.0)
    decayed = H.mul(ctx, sorted_scores, H.minimum(ctx, H.reduce(ctx, decay, "MIN", [3], keep=False), 1.0))
    keep = H.ew(ctx, valid, H.ew(ctx, decayed, post_threshold, "GREATER"), "AND")
    emit_detections(ctx, op, H.select(ctx, keep, decayed, _NEG), order, boxes,
                    int(ctx.attr(op, "keep_top_k", default=-1)), count_slot="roisnum")


# what these converters refuse (repogen ops --refused, docs/refused.md)
refuse(("multiclass_nms", "multiclass_nms2", "multiclass_nms3"), "`nms_eta` < 1",
       "an IoU threshold that shrinks as boxes are kept has no TensorRT NMS form")
refuse(("multiclass_nms", "multiclass_nms2", "multiclass_nms3", "matrix_nms"),
       "per-class boxes [N, M, C, 4], LoD boxes, or a class count (scores dim 1) known only at run time",
       "TensorRT's NMS takes boxes shared by the classes and a build-time class count")
refuse(("multiclass_nms", "multiclass_nms2", "multiclass_nms3", "matrix_nms"),
       f"`nms_top_k` (or candidates per class) above {TOPK_MAX_K}",
       "TensorRT's TopK limit; a partitioned build (--partition) runs such an NMS in Paddle")
