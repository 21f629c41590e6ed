"""NMS and NonZero layers of the NumPy backend, from TensorRT's operator pages (numpy_trt/_nonmax.py)."""

from __future__ import annotations

import numpy as np
import pytest

from repogen.trt import numpy_trt as trt


def _net():
    return trt.Builder(trt.Logger()).create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))


def _scalar(net, value, dtype):
    return net.add_constant((), np.asarray(value, dtype)).get_output(0)


def test_non_zero_matches_the_operator_page_example():
    net = _net()
    x = net.add_input("x", trt.float32, (2, 3))
    nz = net.add_non_zero(x)
    net.mark_output(nz.get_output(0))
    assert tuple(nz.get_output(0).shape) == (2, -1) and nz.get_output(0).dtype == trt.int32
    got = trt.execute(net, {"x": np.array([[-3.0, -2.0, 0], [0.0, 1.0, 2.0]], np.float32)})[nz.get_output(0).name]
    np.testing.assert_array_equal(got, [[0, 0, 1, 1], [0, 1, 1, 2]])


def _nms(boxes, scores, max_per_class, iou=None, score=None, fmt=None, limit=None):
    net = _net()
    b = net.add_input("boxes", trt.float32, boxes.shape)
    s = net.add_input("scores", trt.float32, scores.shape)
    layer = net.add_nms(b, s, _scalar(net, max_per_class, np.int32))
    if iou is not None:
        layer.set_input(3, _scalar(net, iou, np.float32))
    if score is not None:
        layer.set_input(4, _scalar(net, score, np.float32))
    if fmt is not None:
        layer.bounding_box_format = fmt
    if limit is not None:
        layer.topk_box_limit = limit
    for k in range(2):
        net.mark_output(layer.get_output(k))
    out = trt.execute(net, {"boxes": boxes, "scores": scores})
    return out[layer.get_output(0).name], int(out[layer.get_output(1).name])


# box 1 (9 x 10) lies inside box 0 (10 x 10): IoU 90 / 100 = 0.9; box 2 is far away
BOXES = np.array([[[0, 0, 10, 10], [0, 0, 9, 10], [20, 20, 30, 30]]], np.float32)


def test_nms_suppresses_overlaps_within_a_class_only():
    scores = np.array([[[0.9, 0.1], [0.8, 0.7], [0.3, 0.6]]], np.float32)  # [B, N, C]
    rows, count = _nms(BOXES, scores, 10, iou=0.5)
    # class 0: box 0 (0.9) kept, box 1 (IoU 0.9 > 0.5) suppressed, box 2 kept; class 1: box 1, box 2, and box 0
    # (0.1) suppressed by box 1; different classes never suppress each other
    assert count == len(rows) == 4
    assert {tuple(r) for r in rows} == {(0, 0, 0), (0, 0, 2), (0, 1, 1), (0, 1, 2)}


def test_nms_iou_equal_to_the_threshold_is_kept_and_scores_must_exceed_the_threshold():
    scores = np.array([[[0.9], [0.8], [0.5]]], np.float32)
    rows, _ = _nms(BOXES, scores, 10, iou=0.9)  # IoU(box0, box1) = 90 / 100 = 0.9: not above, kept
    assert {r[2] for r in rows} == {0, 1, 2}
    rows, _ = _nms(BOXES, scores, 10, iou=0.9, score=0.5)  # 0.5 does not exceed 0.5
    assert {r[2] for r in rows} == {0, 1}


def test_nms_caps_boxes_per_class_and_orders_by_score():
    scores = np.array([[[0.2], [0.3], [0.9]]], np.float32)
    rows, count = _nms(BOXES, scores, 2, iou=1.0)
    assert count == 2 and [tuple(r) for r in rows] == [(0, 0, 2), (0, 0, 1)]


def test_nms_center_sizes_format_and_topk_limit():
    centers = np.array([[[5, 5, 10, 10], [4.5, 5, 9, 10], [25, 25, 10, 10]]], np.float32)  # same boxes as BOXES
    scores = np.array([[[0.9], [0.8], [0.7]]], np.float32)
    rows, _ = _nms(centers, scores, 10, iou=0.5, fmt=trt.BoundingBoxFormat.CENTER_SIZES)
    assert {r[2] for r in rows} == {0, 2}
    rows, _ = _nms(centers, scores, 10, iou=0.5, fmt=trt.BoundingBoxFormat.CENTER_SIZES, limit=2)
    assert {r[2] for r in rows} == {0}  # only the two best candidates are considered: box 2 never is


def test_nms_batches_are_independent():
    boxes = np.concatenate([BOXES, BOXES[:, ::-1]], 0)
    scores = np.array([[[0.9], [0.8], [0.7]], [[0.9], [0.8], [0.7]]], np.float32)
    rows, count = _nms(boxes, scores, 10, iou=0.5)
    assert count == 4 and {tuple(r) for r in rows} == {(0, 0, 0), (0, 0, 2), (1, 0, 0), (1, 0, 1)}


def test_nms_input_types_are_checked():
    net = _net()
    b = net.add_input("boxes", trt.float32, (1, 3, 4))
    s = net.add_input("scores", trt.float32, (1, 3, 1))
    with pytest.raises(trt.NetworkError, match="MaxOutputBoxesPerClass must be a 0-D INT32"):
        net.add_nms(b, s, _scalar(net, 5, np.int64))
