"""Data-dependent selection: NMS (INMSLayer, ``network.add_nms``) and NonZero (INonZeroLayer,
``network.add_non_zero``).

From TensorRT's NMS operator page and the INMSLayer reference (10.x):
* inputs Boxes [B, N, 4] (shared by all classes) or [B, N, C, 4], FLOAT or HALF; Scores [B, N, C] of the same
  type; MaxOutputBoxesPerClass a 0-D INT32 shape tensor; optional IoUThreshold (input 3, 0-D FLOAT in
  [0, 1], default 0) and ScoreThreshold (input 4, 0-D FLOAT, default 0), set through ``set_input``;
* ``bounding_box_format`` CORNER_PAIRS (x1, y1, x2, y2: any two diagonal corners, default) or CENTER_SIZES
  (cx, cy, w, h); ``topk_box_limit``: per batch item, (box, class) candidates are sorted by score without
  regard to class and only the first ``limit`` are considered (at most 5000, the default);
* per batch item and class, in decreasing score order, a candidate is selected when its score *exceeds*
  the score threshold and its IoU with every box already selected for that class is <= the IoU threshold;
  at most MaxOutputBoxesPerClass per class;
* outputs SelectedIndices [NumOutputBoxes, 3] INT32 rows (batch, class, box) and NumOutputBoxes (0-D INT32).
Assumptions where the pages say "unspecified": rows come batch by batch, each batch in decreasing score
order (ties: lower box index, then lower class first); a box of zero area has IoU 0 with everything.

From the NonZero operator page and INonZeroLayer reference: input BOOL, INT8, INT32, HALF, FLOAT or BF16;
output [rank, count] of the non-zero positions, columns in row-major (lexical) order, INT32 unless
``indices_type`` is set to INT64.
"""

from __future__ import annotations

import numpy as np

from repogen.trt.limits import NMS_MAX_BOXES
from ._support import require_type
from ._network import ILayer, Info, ITensor, NetworkCore
from ._types import DataType, LayerType, _enum

BoundingBoxFormat = _enum("BoundingBoxFormat", ["CORNER_PAIRS", "CENTER_SIZES"])
MAX_TOPK_BOX_LIMIT = NMS_MAX_BOXES
_BOX_TYPES = frozenset({DataType.FLOAT, DataType.HALF})
_NON_ZERO_TYPES = frozenset({DataType.BOOL, DataType.INT8, DataType.INT32, DataType.HALF, DataType.FLOAT,
                             DataType.BF16})


def _corners(boxes: np.ndarray, fmt: "BoundingBoxFormat") -> np.ndarray:
    """(..., 4) -> (x_lo, y_lo, x_hi, y_hi), in FLOAT like the thresholds (an IoU of exactly 0.9 must
    compare equal to a 0.9 threshold)."""
    b = boxes.astype(np.float32)
    if BoundingBoxFormat(fmt) == BoundingBoxFormat.CENTER_SIZES:
        cx, cy, w, h = np.moveaxis(b, -1, 0)
        x1, y1, x2, y2 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
    else:
        x1, y1, x2, y2 = np.moveaxis(b, -1, 0)
    return np.stack([np.minimum(x1, x2), np.minimum(y1, y2), np.maximum(x1, x2), np.maximum(y1, y2)], -1)


def _iou(a: np.ndarray, b: np.ndarray) -> np.float32:
    zero = np.float32(0)
    iw = max(zero, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(zero, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else zero


class INMSLayer(ILayer):
    _TYPE = LayerType.NMS
    _TYPE_NAME = "NMS"

    def __init__(self, network: NetworkCore, boxes: ITensor, scores: ITensor, max_per_class: ITensor):
        super().__init__(network, [boxes, scores, max_per_class], 2)
        self.bounding_box_format = BoundingBoxFormat.CORNER_PAIRS
        self.topk_box_limit = MAX_TOPK_BOX_LIMIT

    def _required_inputs(self) -> range:
        return range(3)

    def _max_inputs(self) -> int:
        return 5

    def _infer(self, ins: list[Info | None]) -> list[Info]:
        boxes, scores, limit = ins[:3]
        require_type(self, boxes, _BOX_TYPES, "Boxes")
        if scores.dtype != boxes.dtype:
            raise self._fail(f"Scores are {scores.dtype.name}, Boxes {boxes.dtype.name}: they must match")
        if boxes.rank not in (3, 4) or boxes.shape[-1] not in (4, -1) or scores.rank != 3:
            raise self._fail(f"Boxes {boxes.shape} must be [B, N, 4] or [B, N, C, 4] and Scores {scores.shape} [B, N, C]")
        if limit.dtype != DataType.INT32 or limit.rank != 0:
            raise self._fail(f"MaxOutputBoxesPerClass must be a 0-D INT32 tensor, not {limit.dtype.name}{limit.shape}")
        for k, what in ((3, "IoUThreshold"), (4, "ScoreThreshold")):
            if len(ins) > k and ins[k] is not None and (ins[k].dtype != DataType.FLOAT or ins[k].rank != 0):
                raise self._fail(f"{what} must be a 0-D FLOAT tensor, not {ins[k].dtype.name}{ins[k].shape}")
        if not 0 < int(self.topk_box_limit) <= MAX_TOPK_BOX_LIMIT:
            self._late(f"topk_box_limit {self.topk_box_limit} is outside 1..{MAX_TOPK_BOX_LIMIT}")
        return [Info(DataType.INT32, (-1, 3)), Info(DataType.INT32, ())]

    def _run(self, xs: list[np.ndarray | None]) -> list[np.ndarray]:
        boxes, scores, limit = xs[:3]
        iou_t = np.float32(xs[3]) if len(xs) > 3 and xs[3] is not None else np.float32(0)
        score_t = np.float32(xs[4]) if len(xs) > 4 and xs[4] is not None else np.float32(0)
        if not 0.0 <= iou_t <= 1.0:
            raise self._fail(f"IoUThreshold {iou_t} is outside [0, 1]")
        per_class_boxes = boxes.ndim == 4
        corners = _corners(boxes, self.bounding_box_format)
        rows: list[tuple[int, int, int]] = []
        for b in range(scores.shape[0]):
            s = scores[b].astype(np.float32)  # [N, C]
            n, c = s.shape
            order = sorted(((-s[i, k], i, k) for i in range(n) for k in range(c)))[:int(self.topk_box_limit)]
            kept: dict[int, list[np.ndarray]] = {}
            for neg, i, k in order:
                if -neg <= score_t or len(kept.get(k, ())) >= int(limit):
                    continue
                box = corners[b, i, k] if per_class_boxes else corners[b, i]
                if all(_iou(box, other) <= iou_t for other in kept.get(k, ())):
                    kept.setdefault(k, []).append(box)
                    rows.append((b, k, i))
        out = np.asarray(rows, np.int32).reshape(-1, 3)
        return [out, np.asarray(len(rows), np.int32)]


class INonZeroLayer(ILayer):
    _TYPE = LayerType.NON_ZERO
    _TYPE_NAME = "NonZero"

    def __init__(self, network: NetworkCore, x: ITensor, indices_type: DataType = DataType.INT32):
        super().__init__(network, [x])
        self.indices_type = DataType(indices_type)

    def _infer(self, ins: list[Info | None]) -> list[Info]:
        require_type(self, ins[0], _NON_ZERO_TYPES, "input")
        if DataType(self.indices_type) not in (DataType.INT32, DataType.INT64):
            raise self._fail("indices_type must be INT32 or INT64")
        return [Info(DataType(self.indices_type), (ins[0].rank, -1))]

    def _run(self, xs: list[np.ndarray | None]) -> list[np.ndarray]:
        idx = np.stack(np.nonzero(xs[0])) if xs[0].ndim else np.zeros((0, int(xs[0] != 0)), np.int64)
        dtype = np.int64 if DataType(self.indices_type) == DataType.INT64 else np.int32
        return [idx.astype(dtype).reshape(xs[0].ndim, -1)]


__all__ = ["BoundingBoxFormat", "INMSLayer", "INonZeroLayer"]
