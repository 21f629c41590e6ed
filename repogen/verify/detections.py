"""Detection outputs compare as sets: the rows an NMS op keeps (label, score, box) and its kept indices come in
an order that is an implementation choice (Paddle groups them by class, TensorRT's NMS sorts by score).

``detection_outputs`` finds them in a graph; ``as_detection_set`` puts rows in a canonical order and
``align_detection_rows`` pairs each of Paddle's rows with the closest unused row of the same label, since
sorting alone pairs the wrong rows where two scores are nearly equal (FP16: 0.4390 vs 0.4391 swap places).
``detection_pair`` does both for one output, ready for repogen.verify.compare.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from repogen.trt.registry import NMS_OPS


def detection_outputs(graph: Any) -> dict[str, str]:
    """Graph outputs that come from an NMS op (through assign): name -> "rows" (label, score, box...) or
    "index" (kept box indices)."""
    producer = {n: op for op in graph.ops for names in op.outputs.values() for n in names}
    found = {}
    for name in graph.outputs:
        source = name
        while source in producer and producer[source].type == "assign":
            source = producer[source].input("x")
        op = producer.get(source)
        if op is not None and op.type in NMS_OPS:
            kind = "rows" if source in (op.outputs.get("out") or []) else \
                "index" if source in (op.outputs.get("index") or []) else None
            if kind:
                found[name] = kind
    return found


def as_detection_set(x: np.ndarray, kind: str) -> np.ndarray:
    """Rows in a canonical order: by label, then decreasing score, then x1 (index values: sorted, flat)."""
    x = np.asarray(x)
    if kind == "index" or x.ndim != 2 or x.shape[1] < 3:
        return np.sort(x.reshape(-1))
    return x[np.lexsort((x[:, 2], -x[:, 1], x[:, 0]))]


def align_detection_rows(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    """got's rows reordered to pair with want's (both as_detection_set'ed): per row of want, the unused row of
    got with the same label closest in score and box (relative to each column's largest |value|)."""
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape or got.ndim != 2 or got.shape[1] < 3 or not len(got):
        return got
    scale = np.maximum(np.abs(want[:, 1:]).max(axis=0), 1e-12)
    used = np.zeros(len(got), bool)
    order = []
    for row in want:
        cand = np.flatnonzero(~used & (got[:, 0] == row[0]))
        if not cand.size:
            cand = np.flatnonzero(~used)
        k = cand[np.argmin(np.abs((got[cand, 1:] - row[1:]) / scale).max(axis=1))]
        used[k] = True
        order.append(k)
    return got[order]


def detection_pair(got: np.ndarray, want: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(got, want) of a detection output of ``kind`` ("rows" or "index") as sets, rows paired; compare them
    elementwise afterwards. A shape mismatch is left for the comparison to report."""
    g, w = as_detection_set(got, kind), as_detection_set(want, kind)
    if kind == "rows":
        g = align_detection_rows(g, w)
    return g, w


__all__ = ["detection_outputs", "as_detection_set", "align_detection_rows", "detection_pair"]
