"""Detection box ops against Paddle: yolo_box, box_coder, prior_box, anchor_generator, roi_align
(converters/boxes.py).

Cases are saved by Paddle as PIR (dynamic dims), 2.x ProgramDesc and static PIR (tests/support/opcases.py) and must
match Paddle Inference within 1e-5 relative (1e-2 at fp16) at two run shapes.
"""

from __future__ import annotations

from tests.support.opcases import Case, Inp, emit_legacy, standard_tests

B = -1
YOLO_ANCHORS = [10, 13, 16, 30]  # two anchors
YOLO_CLASSES = 3


def _runs(*runs):
    return tuple(runs)


CASES: dict[str, Case] = {
    "yolo_box": Case((Inp("x", (B, 2 * (5 + YOLO_CLASSES), -1, -1), low=-3.0, high=3.0),
                      Inp("img_size", (B, 2), "int32", 40, 120)),
                     _runs({"x": (2, 16, 4, 5), "img_size": (2, 2)}, {"x": (3, 16, 6, 3), "img_size": (3, 2)}),
                     fp16=True),
    # PP-YOLO's IoU-aware head: 2 IoU channels first, then 2 x (5 + 3)
    "yolo_box_iou_aware": Case((Inp("x", (B, 2 * (6 + YOLO_CLASSES), -1, -1), low=-3.0, high=3.0),
                                Inp("img_size", (B, 2), "int32", 40, 120)),
                               _runs({"x": (2, 18, 4, 5), "img_size": (2, 2)}, {"x": (1, 18, 3, 6), "img_size": (1, 2)}),
                               fp16=True),
    "box_coder_encode": Case((Inp("p", (-1, 4)), Inp("t", (B, 4)), Inp("v", (-1, 4), low=0.1, high=0.4)),
                             _runs({"p": (5, 4), "t": (3, 4), "v": (5, 4)}, {"p": (7, 4), "t": (2, 4), "v": (7, 4)}),
                             fp16=True),
    "box_coder_decode": Case((Inp("p", (-1, 4)), Inp("t", (B, -1, 4)), Inp("v", (-1, 4), low=0.1, high=0.4)),
                             _runs({"p": (5, 4), "t": (3, 5, 4), "v": (5, 4)}, {"p": (6, 4), "t": (2, 6, 4), "v": (6, 4)}),
                             fp16=True),
    "box_coder_decode_axis1": Case((Inp("p", (B, 4)), Inp("t", (B, -1, 4))),
                                   _runs({"p": (3, 4), "t": (3, 5, 4)}, {"p": (2, 4), "t": (2, 4, 4)}), fp16=True),
    "prior_box": Case((Inp("f", (B, 4, -1, -1)), Inp("img", (B, 3, -1, -1))),
                      _runs({"f": (2, 4, 4, 5), "img": (2, 3, 32, 40)}, {"f": (1, 4, 3, 3), "img": (1, 3, 30, 27)}),
                      fp16=True),
    "anchor_generator": Case((Inp("f", (B, 4, -1, -1)),), _runs({"f": (2, 4, 3, 5)}, {"f": (1, 4, 4, 2)}), fp16=True),
    # two images, 2 + 3 rois (counts built in the program: the random feeds cannot keep a sum)
    "roi_align": Case((Inp("x", (2, 3, -1, -1)), Inp("r", (5, 4))),
                      _runs({"x": (2, 3, 8, 10), "r": (5, 4)}, {"x": (2, 3, 12, 7), "r": (5, 4)}), fp16=True),
    # a run-time roi count, split between the two images in the program (R // 2 and the rest). Scales are
    # picked so no sample point lies within 0.018 of Paddle's -1 / size cut-offs: at fp16 the rois are computed
    # in half precision (error up to ~0.007 here), and a point crossing a cut-off flips a whole sample (scale 0.6
    # put one 0.0005 past the edge: fp16 off by 16 %)
    "roi_align_dynamic_rois": Case((Inp("x", (2, 3, -1, -1)), Inp("r", (-1, 4))),
                                   _runs({"x": (2, 3, 9, 8), "r": (5, 4)}, {"x": (2, 3, 6, 11), "r": (8, 4)}),
                                   fp16=True),
    # adaptive sampling (sampling_ratio <= 0: ceil(bin) points per bin, 1 to 18 here, differing per roi and
    # axis), rois up to ~25 px, some far past the image edges. Scales keep every sample point >= 0.03 from the
    # -1 / size cut-offs and every bin size >= 0.03 from a whole number (where ceil() jumps), for fp16's sake
    "roi_align_adaptive": Case((Inp("x", (2, 2, -1, -1)), Inp("r", (-1, 4))),
                               _runs({"x": (2, 2, 10, 9), "r": (6, 4)}, {"x": (2, 2, 7, 12), "r": (9, 4)}),
                               fp16=True),
}


def build_cases(mode: str) -> dict:
    import paddle
    from paddle import _C_ops
    from paddle.vision import ops

    legacy = mode == "legacy"

    def box(p):  # valid corner boxes from free numbers: (x1, y1) and a positive extent
        return paddle.concat([p[:, :2] * 4.0, p[:, :2] * 4.0 + paddle.abs(p[:, 2:]) * 3.0 + 0.5], axis=1)

    def yolo_box(x, img_size):
        common = dict(anchors=YOLO_ANCHORS, class_num=YOLO_CLASSES, downsample_ratio=8)
        b1, s1 = ops.yolo_box(x, img_size, conf_thresh=0.5, clip_bbox=True, **common)
        b2, s2 = ops.yolo_box(x, img_size, conf_thresh=0.3, clip_bbox=False, scale_x_y=1.2, **common)
        return b1, s1, b2, s2

    def yolo_box_iou_aware(x, img_size):
        common = dict(anchors=YOLO_ANCHORS, class_num=YOLO_CLASSES, downsample_ratio=16, iou_aware=True)
        b1, s1 = ops.yolo_box(x, img_size, conf_thresh=0.4, clip_bbox=True, iou_aware_factor=0.3, **common)
        b2, s2 = ops.yolo_box(x, img_size, conf_thresh=0.2, clip_bbox=False, scale_x_y=1.05, **common)
        return b1, s1, b2, s2

    def coder(prior, target, var, code, normalized, axis=0):
        if legacy:
            inputs = {"PriorBox": [prior], "TargetBox": [target]}
            attrs = {"code_type": code, "box_normalized": normalized, "axis": axis}
            if isinstance(var, list):
                attrs["variance"] = var
            else:
                inputs["PriorBoxVar"] = [var]
            return emit_legacy("box_coder", inputs, attrs, outs=("OutputBox",))
        return ops.box_coder(prior, var, target, code, normalized, axis)

    def encode(p, t, v):
        return (coder(box(p), box(t), v, "encode_center_size", True),
                coder(box(p), box(t), [0.1, 0.1, 0.2, 0.2], "encode_center_size", False))

    def decode(p, t, v):
        return (coder(box(p), t, v, "decode_center_size", True),
                coder(box(p), t, [0.1, 0.2, 0.3, 0.4], "decode_center_size", False))

    def decode_axis1(p, t):
        return coder(box(p), t, [0.1, 0.1, 0.2, 0.2], "decode_center_size", True, axis=1)

    def prior(f, img):
        b1, v1 = ops.prior_box(f, img, min_sizes=[4.0, 8.0], max_sizes=[6.0, 12.0], aspect_ratios=[2.0, 3.0],
                               flip=True, clip=True)
        b2, v2 = ops.prior_box(f, img, min_sizes=[5.0], aspect_ratios=[1.0, 0.5], variance=[0.1, 0.2, 0.3, 0.4],
                               steps=[8.0, 6.0], offset=0.3, min_max_aspect_ratios_order=True)
        b3, _ = ops.prior_box(f, img, min_sizes=[5.0], max_sizes=[9.0], aspect_ratios=[2.0],
                              min_max_aspect_ratios_order=True)
        return b1, v1, b2, v2, b3

    def anchors(f):
        attrs = dict(anchor_sizes=[16.0, 32.0], aspect_ratios=[0.5, 1.0, 2.0], variances=[0.1, 0.1, 0.2, 0.2],
                     stride=[8.0, 8.0], offset=0.5)
        attrs2 = dict(anchor_sizes=[24.0], aspect_ratios=[1.5], variances=[1.0, 1.0, 1.0, 1.0],
                      stride=[16.0, 12.0], offset=0.3)
        if legacy:
            return [v for a in (attrs, attrs2)
                    for v in emit_legacy("anchor_generator", {"Input": [f]}, a, outs=("Anchors", "Variances"))]
        return [v for a in (attrs, attrs2) for v in _C_ops.anchor_generator(f, *a.values())]

    def roi_align(x, r, num=None, variants=(((2, 3), 1.0, 2, True), ((3, 2), 0.5, 1, False), (2, 0.8, 3, True), (1, 0.5, -1, False)),
                  spread=5.0, shift=3.0, extent=6.0):
        # boxes reaching a little outside the image (the -1 / size edges of Paddle's sampling rule)
        corner = r[:, :2] * spread + shift
        rois = paddle.concat([corner, corner + paddle.abs(r[:, 2:]) * extent + 0.3], axis=1)
        if num is None:
            num = paddle.full([2], 2, "int32") + paddle.to_tensor([0, 1], "int32")
        outs = []
        for size, scale, ratio, aligned in variants:
            if legacy:
                ph, pw = size if isinstance(size, tuple) else (size, size)
                outs.append(emit_legacy("roi_align", {"X": [x], "ROIs": [rois], "RoisNum": [num]},
                                        {"pooled_height": ph, "pooled_width": pw, "spatial_scale": scale,
                                         "sampling_ratio": ratio, "aligned": aligned}))
            else:
                outs.append(ops.roi_align(x, rois, num, size, scale, ratio, aligned))
        return tuple(outs)

    def split_count(r):  # R // 2 rois for the first image, the rest for the second
        count = paddle.shape(r)[0:1].astype("int32")
        first = count // 2
        return paddle.concat([first, count - first])

    def roi_align_dynamic_rois(x, r):
        return roi_align(x, r, split_count(r), (((3, 2), 0.55, 2, False), (1, 1.0, 4, True), ((2, 4), 0.7, 3, False)))

    def roi_align_adaptive(x, r):
        return roi_align(x, r, split_count(r),
                         (((2, 3), 0.97, -1, True), ((3, 2), 0.8, 0, False), (1, 1.03, -1, False), ((4, 1), 1.24, 0, True)),
                         spread=9.0, shift=2.0, extent=14.0)

    return {"roi_align": roi_align, "roi_align_dynamic_rois": roi_align_dynamic_rois, "roi_align_adaptive": roi_align_adaptive,
            "yolo_box_iou_aware": yolo_box_iou_aware, "yolo_box": yolo_box, "box_coder_encode": encode, "box_coder_decode": decode,
            "box_coder_decode_axis1": decode_axis1, "prior_box": prior, "anchor_generator": anchors}


programs, test_fp32_dynamic, test_fp32_static, test_fp16 = standard_tests(__file__, "ops_detection", CASES)


def test_roi_align_without_boxes_num_is_refused(programs):
    # LoD rois (no RoisNum) carry their image split in the LoD, which has no TensorRT form
    import pytest

    from repogen.errors import ConversionError
    from repogen.paddle import load_model
    from repogen.trt import numpy_trt
    from repogen.trt.convert import convert_graph
    from repogen.trt.profiles import make_profiles

    graph = load_model(programs["pir"] / "roi_align")
    next(op for op in graph.ops if op.type == "roi_align").inputs.pop("boxes_num")
    profiles = make_profiles(graph.input_values(), shape=["x:2x3x8x10,r:5x4"])
    with pytest.raises(ConversionError, match="roi_align.*boxes_num"):
        convert_graph(graph, numpy_trt, profiles=profiles)
