"""Task-level checks: does the converted model give its user the same answer as Paddle?

Element-wise tolerances judge tensors; a user sees boxes, texts, labels and label maps. Where a deploy config says
what the model is for, both the converted model's raw outputs and Paddle's go through the pipeline's own
post-processing (``repogen.pipelines.ops``: the processors the served pipeline runs) and the answers are compared:

* OCR detection (``db_postprocess``): the boxes as sets, each corner within 1 source pixel, box scores within the
  score tolerance; a box whose score lies within that tolerance of ``box_thresh`` may exist on one side only.
* CTC recognition (``ctc_decode``): texts identical, text scores within the text-score tolerance.
* classification (``topk``): the top-k labels in order; a different label at a position counts as a tie when
  Paddle's own scores of the two labels are within the tie tolerance.
* detection (``det_postprocess``): boxes above the score threshold as sets (same label, IoU >= 0.9 or every side
  within 1 px, scores within tolerance); a box near the threshold may be on one side only. For a model that
  selects its boxes by NMS (``nms=True``), two unmatched boxes of one label that overlap (IoU >= 0.4) with scores
  within tolerance are an NMS tie (NMS kept one for Paddle, the other for us). Answers alone cannot tell such a tie
  from a box moved by a wrong conversion, so at most a quarter of Paddle's boxes may be ties (a wrong box
  regression moves most boxes; near-equal NMS candidates are rare).
* segmentation (``seg_postprocess``): label maps equal at the source size outside ties (pixels whose two best class
  scores are within the tie tolerance).
* keypoints (heatmaps [N, K, H, W]): each joint's arg-max position equal, or a tie on Paddle's heatmap; served
  keypoints [K, 3] (answers, no heatmap to find ties on): each joint within 1 source pixel, confidences within
  the score tolerance.

One function per kind (``check_*``) takes raw model outputs and returns a :class:`TaskVerdict`; :func:`task_check`
picks the function from the deploy config and :func:`combine` merges the verdicts of several inputs.
:func:`compare_answers` applies the same rules to post-processed answers (what a served pipeline returns, e.g. the
OCR system's boxes and texts). Pure NumPy/OpenCV (through ``ops``).

The tolerances (repogen.verify.tolerances.TASK_TOLERANCE, in the one table) were measured on the official PP-OCRv4 det/rec and v2 classifier with the
generated inputs of ``repogen.verify.inputs`` (tests/test_verify_tasks.py, NumPy backend): at fp32 box and text
scores differ from Paddle's by <= 2e-6 and corners by 0 px; at fp16 box scores by <= 9e-4 and class scores by
<= 4e-4 (5e-3 allowed), text scores by <= 3.7e-2 (5e-2 allowed), corners by 0 px, texts and labels identical.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np

from repogen.errors import ConfigError
from repogen.verify.tolerances import TASK_TOLERANCE, TaskTolerance, task_tolerance  # noqa: F401 - the task API

if TYPE_CHECKING:
    from repogen.pipelines.deploy_config import DeployConfig
    from repogen.verify.inputs import TaskInput


@dataclass
class TaskVerdict:
    """One task-level judgement: ``summary`` is one line ("texts 8/8 identical, scores 7e-4 max"); ``details``
    holds the counts (summed by :func:`combine`), the ``max_*`` differences (maxed) and ``problems`` (listed)."""

    kind: str
    passed: bool
    summary: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return _plain(asdict(self))


def _plain(x: Any) -> Any:
    """JSON-ready: NumPy scalars and arrays to Python numbers and lists."""
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    return x


def _ops() -> Any:
    """The pipeline's processors, imported on first use: they need OpenCV and pyclipper (the pipelines extra),
    which a model without a deploy config - and so ``repogen check`` on it - never needs."""
    from repogen.pipelines import ops

    return ops


def _verdict(kind: str, details: dict[str, Any]) -> TaskVerdict:
    return TaskVerdict(kind, not details["problems"], SUMMARIES[kind](details), details)


MAX_PROBLEMS = 10  # problems listed per verdict (the counts say how many there were)


def _problem(details: dict[str, Any], text: str) -> None:
    if len(details["problems"]) < MAX_PROBLEMS:
        details["problems"].append(text)
    else:
        details["more_problems"] = details.get("more_problems", 0) + 1


# -- OCR detection -----------------------------------------------------------------------------------------------

def _corner_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[len(a), len(b)]: the largest corner coordinate difference of two sets of [P, 2] polygons (same P)."""
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))
    a = np.stack([np.asarray(x, np.float64) for x in a])
    b = np.stack([np.asarray(x, np.float64) for x in b])
    if a.shape[1:] != b.shape[1:]:  # polygons with different point counts (box_type poly): compare bounds
        a = np.concatenate([a.min(1), a.max(1)], 1)[:, None]
        b = np.concatenate([b.min(1), b.max(1)], 1)[:, None]
    return np.abs(a[:, None] - b[None]).max(axis=(2, 3))


def _greedy_pairs(cost: np.ndarray, limit: float, lower_is_better: bool = True) -> list[tuple[int, int]]:
    """Pairs (i, j), each index once, best cost first, while the cost is within ``limit``."""
    if not cost.size:
        return []
    flat = np.argsort(cost, axis=None, kind="stable")
    if not lower_is_better:
        flat = flat[::-1]
    used_i, used_j, pairs = set(), set(), []
    for k in flat:
        i, j = np.unravel_index(k, cost.shape)
        c = cost[i, j]
        if (c > limit) if lower_is_better else (c < limit):
            break
        if i in used_i or j in used_j:
            continue
        used_i.add(i)
        used_j.add(j)
        pairs.append((int(i), int(j)))
    return pairs


def _ocr_det_details() -> dict[str, Any]:
    return {"images": 0, "boxes": 0, "boxes_matched": 0, "near_threshold": 0, "max_px": 0.0, "max_score_diff": 0.0,
            "problems": []}


def _match_ocr_boxes(d: dict[str, Any], gb: Sequence, gs: Sequence, wb: Sequence, ws: Sequence,
                     box_thresh: float | None, tol: TaskTolerance, where: str) -> list[tuple[int, int]]:
    """Pair our boxes with Paddle's (each corner within ``tol.box_px``, scores within ``tol.score`` where given);
    an unpaired box whose score is a tie with ``box_thresh`` may be on one side only. Returns the pairs."""
    d["images"] += 1
    d["boxes"] += len(wb)
    dist = _corner_distance(gb, wb)
    # pair boxes up to a few pixels apart, so a box that moved reads "moved 3 px", not "missing and extra"
    pairs = _greedy_pairs(dist, max(tol.box_px, 8.0))
    good = []
    for i, j in pairs:
        px = float(dist[i, j])
        ds = abs(float(gs[i]) - float(ws[j])) if gs is not None and ws is not None else 0.0
        d["max_px"] = max(d["max_px"], px)
        d["max_score_diff"] = max(d["max_score_diff"], ds)
        if px > tol.box_px:
            _problem(d, f"{where}box at {np.asarray(wb[j]).tolist()} moved {px:g} px (> {tol.box_px:g})")
        elif ds > tol.score:
            _problem(d, f"{where}box score {gs[i]:.6f} != Paddle's {ws[j]:.6f} (> {tol.score:g})")
        else:
            d["boxes_matched"] += 1
            good.append((i, j))
    paired_g, paired_w = {i for i, _ in pairs}, {j for _, j in pairs}
    for side, boxes, scores, paired in (("extra", gb, gs, paired_g), ("missing", wb, ws, paired_w)):
        for k in sorted(set(range(len(boxes))) - paired):
            score = float(scores[k]) if scores is not None else None
            if box_thresh is not None and score is not None and abs(score - box_thresh) <= tol.score:
                d["near_threshold"] += 1  # its score is a tie with box_thresh: either side may keep it
                d["boxes_matched"] += side == "missing"
            else:
                _problem(d, f"{where}{side} box {np.asarray(boxes[k]).tolist()}"
                            + (f" (score {score:.4f})" if score is not None else ""))
    return good


def check_ocr_det(got: np.ndarray, want: np.ndarray, infos: Sequence[np.ndarray], post: Mapping[str, Any],
                  tol: TaskTolerance = TaskTolerance()) -> TaskVerdict:
    """DB probability maps [N, 1, H, W] (converted, Paddle) -> boxes through ``db_postprocess`` with the deploy
    config's ``post`` parameters and each row's ``infos[i]`` ([src_h, src_w, ratio_h, ratio_w])."""
    ops = _ops()
    d = _ocr_det_details()
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:
        _problem(d, f"probability map shape {list(got.shape)} != Paddle's {list(want.shape)}")
        return _verdict("ocr_det", d)
    for row, info in enumerate(infos):
        gb, gs = ops.db_postprocess(np.asarray(got[row], np.float32), info, **post)
        wb, ws = ops.db_postprocess(np.asarray(want[row], np.float32), info, **post)
        _match_ocr_boxes(d, gb, gs, wb, ws, float(post.get("box_thresh", 0.6)), tol, f"image {row}: ")
    return _verdict("ocr_det", d)


def _ocr_det_summary(d: dict[str, Any]) -> str:
    s = (f"boxes {d['boxes_matched']}/{d['boxes']} matched ({d['max_px']:g} px max, scores "
         f"{d['max_score_diff']:.2g} max) on {d['images']} images")
    return s + (f", {d['near_threshold']} near box_thresh" if d["near_threshold"] else "")


# -- CTC recognition ---------------------------------------------------------------------------------------------

def _ocr_rec_details() -> dict[str, Any]:
    return {"texts": 0, "texts_identical": 0, "max_score_diff": 0.0, "problems": []}


def _compare_texts(d: dict[str, Any], gt: Sequence[str], gs: Sequence[float], wt: Sequence[str], ws: Sequence[float],
                   tol: TaskTolerance, where: Sequence[str]) -> None:
    d["texts"] += len(wt)
    for i, (a, b) in enumerate(zip(gt, wt)):
        ds = abs(float(gs[i]) - float(ws[i]))
        d["max_score_diff"] = max(d["max_score_diff"], ds)
        if a != b:
            _problem(d, f"{where[i]}: {a!r} != Paddle's {b!r}")
        elif ds > tol.text_score:
            _problem(d, f"{where[i]}: score {gs[i]:.6f} != Paddle's {ws[i]:.6f} (> {tol.text_score:g})")
        else:
            d["texts_identical"] += 1


def check_ocr_rec(got: np.ndarray, want: np.ndarray, characters: Sequence[str], use_space_char: bool = True,
                  tol: TaskTolerance = TaskTolerance()) -> TaskVerdict:
    """CTC probabilities [N, T, C] -> texts through ``ctc_decode``: identical texts, scores within tolerance.
    ``characters``: the deploy config's dictionary (without blank and space, as DeployConfig.characters)."""
    ops = _ops()
    d = _ocr_rec_details()
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:
        _problem(d, f"probabilities shape {list(got.shape)} != Paddle's {list(want.shape)}")
        return _verdict("ocr_rec", d)
    chars = ops.ctc_characters(list(characters), use_space_char)
    gt, gs = ops.ctc_decode(got, chars)
    wt, ws = ops.ctc_decode(want, chars)
    _compare_texts(d, gt, gs, wt, ws, tol, [f"line {i}" for i in range(len(wt))])
    d["paddle_texts"] = list(wt)
    return _verdict("ocr_rec", d)


def _ocr_rec_summary(d: dict[str, Any]) -> str:
    return f"texts {d['texts_identical']}/{d['texts']} identical (scores {d['max_score_diff']:.2g} max)"


# -- classification ----------------------------------------------------------------------------------------------

def _classification_details() -> dict[str, Any]:
    return {"rows": 0, "rows_identical": 0, "ties": 0, "max_score_diff": 0.0, "problems": []}


def _compare_topk(d: dict[str, Any], gi: Sequence[int], gs: Sequence[float], gn: Sequence[str], wi: Sequence[int],
                  ws: Sequence[float], wn: Sequence[str], tol: TaskTolerance, where: str,
                  paddle_score: Callable[[int], float] | None = None, peak: float | None = None) -> None:
    """One row's top-k: the same labels in order; a different label at a position is a tie when Paddle's scores of
    the two labels (``paddle_score(id)``; without it, the two answers' scores at that position) differ by at most
    ``tol.tie`` x ``peak`` (the row's largest score; without it, the larger of the two); matched scores within
    ``tol.score`` (+1e-5: topk rounds to 5 decimals)."""
    d["rows"] += 1
    ok = True
    for pos in range(len(wi)):
        if pos >= len(gi):
            ok = False
            _problem(d, f"{where}: no top-{pos + 1} label (Paddle's: {wn[pos]})")
            continue
        if int(gi[pos]) != int(wi[pos]):
            ours = paddle_score(int(gi[pos])) if paddle_score else float(gs[pos])
            theirs = paddle_score(int(wi[pos])) if paddle_score else float(ws[pos])
            if abs(ours - theirs) <= tol.tie * (peak if peak is not None else max(abs(ours), abs(theirs))):
                d["ties"] += 1
                continue
            ok = False
            _problem(d, f"{where}: top-{pos + 1} {gn[pos]} ({float(gs[pos]):.5f}) != Paddle's {wn[pos]} "
                        f"({float(ws[pos]):.5f})")
            continue
        ds = abs(float(gs[pos]) - float(ws[pos]))
        d["max_score_diff"] = max(d["max_score_diff"], ds)
        if ds > tol.score + 1e-5:
            ok = False
            _problem(d, f"{where}: {wn[pos]} score {float(gs[pos]):.5f} != Paddle's {float(ws[pos]):.5f} "
                        f"(> {tol.score:g})")
    d["rows_identical"] += ok


def check_classification(got: np.ndarray, want: np.ndarray, k: int, labels: Sequence[str] | None = None,
                         tol: TaskTolerance = TaskTolerance()) -> TaskVerdict:
    """Class scores [N, C] -> top-k labels through ``topk``: the same labels in the same order, where a different
    label is a tie when Paddle's scores of the two differ by at most ``tol.tie`` x the row's largest |score|; the
    scores within ``tol.score``."""
    ops = _ops()
    d = _classification_details()
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:
        _problem(d, f"scores shape {list(got.shape)} != Paddle's {list(want.shape)}")
        return _verdict("classification", d)
    got, want = got.reshape(got.shape[0], -1), want.reshape(want.shape[0], -1)
    k = min(int(k), want.shape[1])
    names = list(labels) if labels else None
    for row in range(want.shape[0]):
        _compare_topk(d, *ops.topk(got[row], k, names), *ops.topk(want[row], k, names), tol, f"row {row}",
                      lambda i, row=row: float(want[row, i]), float(np.abs(want[row]).max()))
    return _verdict("classification", d)


def _classification_summary(d: dict[str, Any]) -> str:
    s = f"top-k labels {d['rows_identical']}/{d['rows']} identical (scores {d['max_score_diff']:.2g} max)"
    return s + (f", {d['ties']} ties" if d["ties"] else "")


# -- detection ---------------------------------------------------------------------------------------------------

def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[len(a), len(b)] IoU of x1, y1, x2, y2 boxes."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    union = area(a)[:, None] + area(b)[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def _detection_details() -> dict[str, Any]:
    return {"images": 0, "boxes": 0, "boxes_matched": 0, "near_threshold": 0, "nms_ties": 0, "max_px": 0.0,
            "max_score_diff": 0.0, "problems": []}


def _compare_detections(d: dict[str, Any], g: Mapping[str, Any], w: Mapping[str, Any], threshold: float | None,
                        tol: TaskTolerance, nms: bool, where: str = "") -> None:
    """``det_postprocess`` answers (boxes [n, 4], label_ids, scores, labels) as sets: same label and IoU >=
    ``tol.iou``, scores within ``tol.score``; boxes scored at the threshold and (``nms``) NMS ties may be
    one-sided. Answers of layout analysis models also number the reading order (``orders``): a matched box must
    have the same place in it."""
    gb, wb = np.asarray(g["boxes"], np.float64).reshape(-1, 4), np.asarray(w["boxes"], np.float64).reshape(-1, 4)
    gl, wl = np.asarray(g["label_ids"]).reshape(-1), np.asarray(w["label_ids"]).reshape(-1)
    gsc, wsc = np.asarray(g["scores"], np.float64).reshape(-1), np.asarray(w["scores"], np.float64).reshape(-1)
    gn = list(g.get("labels") or [str(int(i)) for i in gl])
    wn = list(w.get("labels") or [str(int(i)) for i in wl])
    d["images"] += 1
    d["boxes"] += len(wb)
    iou = _iou(gb, wb)
    px = np.abs(gb[:, None] - wb[None]).max(axis=2) if len(gb) and len(wb) else np.zeros((len(gb), len(wb)))
    same = gl[:, None] == wl[None, :]
    # a box within box_px on every side matches whatever its IoU: a few-pixel box loses IoU to rounding alone
    fit = np.where(px <= tol.box_px, np.maximum(iou, tol.iou), iou)
    pairs = _greedy_pairs(np.where(same, fit, -1.0), tol.iou, lower_is_better=False)
    for i, j in pairs:
        ds = abs(gsc[i] - wsc[j])
        d["min_iou"] = min(d.get("min_iou", 1.0), float(iou[i, j]))
        d["max_px"] = max(d["max_px"], float(np.abs(gb[i] - wb[j]).max()))
        d["max_score_diff"] = max(d["max_score_diff"], float(ds))
        if ds > tol.score:
            _problem(d, f"{where}{wn[j]} box {wb[j].round(1).tolist()}: score {gsc[i]:.5f} != Paddle's "
                        f"{wsc[j]:.5f} (> {tol.score:g})")
        else:
            d["boxes_matched"] += 1
    if "orders" in w:  # layout analysis (PP-DocLayoutV2): each region's place in reading order, 0 where none
        go, wo = np.asarray(g.get("orders", []), np.int64).reshape(-1), np.asarray(w["orders"], np.int64).reshape(-1)
        if len(go) != len(gb):
            _problem(d, f"{where}{len(go)} reading-order places for {len(gb)} boxes")
        for i, j in pairs if len(go) == len(gb) else []:
            if go[i] != wo[j]:
                _problem(d, f"{where}{wn[j]} box {wb[j].round(1).tolist()}: reading order {go[i]} != Paddle's {wo[j]}")
    left_g = sorted(set(range(len(gb))) - {i for i, _ in pairs})
    left_w = sorted(set(range(len(wb))) - {j for _, j in pairs})
    # NMS ties: NMS kept A for Paddle and B for us, A and B of one label, overlapping, scores within tolerance
    tie_cost = np.full((len(left_g), len(left_w)), -1.0)
    for a, i in enumerate(left_g):
        for b, j in enumerate(left_w):
            if same[i, j] and iou[i, j] >= tol.nms_iou and abs(gsc[i] - wsc[j]) <= tol.score:
                tie_cost[a, b] = iou[i, j]
    ties = _greedy_pairs(tie_cost, tol.nms_iou, lower_is_better=False) if nms else []
    if len(ties) > max(1, int(tol.nms_tie_share * len(wb))):
        _problem(d, f"{where}{len(ties)} of {len(wb)} boxes differ as NMS ties would (same label, overlapping, same "
                    "score): more than ties explain, the boxes moved")
    d["nms_ties"] += len(ties)
    d["boxes_matched"] += len(ties)
    tied = {("extra", left_g[a]) for a, _ in ties} | {("missing", left_w[b]) for _, b in ties}
    for side, boxes, scores, names, left in (("extra", gb, gsc, gn, left_g), ("missing", wb, wsc, wn, left_w)):
        for k in left:
            if (side, k) in tied:
                continue
            if threshold is not None and abs(scores[k] - threshold) <= tol.score:
                d["near_threshold"] += 1
                d["boxes_matched"] += side == "missing"
            else:
                _problem(d, f"{where}{side} {names[k]} box {boxes[k].round(1).tolist()} (score {scores[k]:.4f})")


def check_detection(got: np.ndarray, want: np.ndarray, infos: Sequence[np.ndarray], labels: Sequence[str] | None,
                    threshold: float, tol: TaskTolerance = TaskTolerance(), nms: bool = False,
                    post: Mapping[str, Any] | None = None) -> TaskVerdict:
    """PaddleDetection box rows [M, 6] (label, score, x1, y1, x2, y2) of one image -> ``det_postprocess`` above
    ``threshold``; compared as sets (label + IoU), near-threshold boxes (and NMS ties where ``nms``: the model
    selects its boxes by NMS) allowed on one side. ``post``: the deploy config's post-processing where it has
    layout options (``ops.detection_answer``; rows of 7 or 8 columns carry the reading order)."""
    ops = _ops()
    if len(infos) != 1:
        raise ConfigError(f"detection task check: one image per feed (PaddleDetection's [M, 6] rows carry no "
                          f"image index), got {len(infos)}")
    src = (infos[0][0], infos[0][1])
    post = dict(post or {"threshold": threshold})
    cols = int(np.shape(want)[-1]) if np.ndim(want) == 2 else 6
    g = ops.detection_answer(np.asarray(got, np.float32).reshape(-1, cols), src, list(labels or []), post)
    w = ops.detection_answer(np.asarray(want, np.float32).reshape(-1, cols), src, list(labels or []), post)
    d = _detection_details()
    _compare_detections(d, g, w, threshold, tol, nms)
    return _verdict("detection", d)


def _detection_summary(d: dict[str, Any]) -> str:
    s = f"detections {d['boxes_matched']}/{d['boxes']} matched"
    if "min_iou" in d:  # some boxes paired up
        s += f" (IoU {d['min_iou']:.3g} min, {d['max_px']:.2g} px max, scores {d['max_score_diff']:.2g} max)"
    extra = [f"{d['nms_ties']} NMS ties"] * bool(d["nms_ties"]) + [f"{d['near_threshold']} near threshold"] * bool(
        d["near_threshold"])
    return s + (", " + ", ".join(extra) if extra else "")


# -- segmentation ------------------------------------------------------------------------------------------------

def _tie_mask(scores: np.ndarray, a: np.ndarray, b: np.ndarray, tie: float) -> np.ndarray:
    """Where the class picks ``a`` and ``b`` [H, W] differ only by a tie of ``scores`` [C, H, W]: their scores
    within ``tie`` x max |score| over the classes."""
    s = np.asarray(scores, np.float64)
    sa = np.take_along_axis(s, a[None].astype(np.int64), 0)[0]
    sb = np.take_along_axis(s, b[None].astype(np.int64), 0)[0]
    return np.abs(sa - sb) <= tie * np.abs(s).max(axis=0)


def _segmentation_details() -> dict[str, Any]:
    return {"images": 0, "pixels": 0, "pixels_differ": 0, "ties": 0, "problems": []}


def _compare_label_maps(d: dict[str, Any], mg: np.ndarray, mw: np.ndarray, ties: np.ndarray | None,
                        where: str) -> None:
    """Label maps [H, W] equal except where ``ties`` (a bool map: the two best classes were tied) allows."""
    d["images"] += 1
    if mg.shape != mw.shape:
        _problem(d, f"{where}label map {list(mg.shape)} != Paddle's {list(mw.shape)}")
        return
    differ = mg != mw
    bad = differ & ~ties if ties is not None else differ
    d["pixels"] += int(mw.size)
    d["pixels_differ"] += int(bad.sum())
    d["ties"] += int((differ & ~bad).sum())
    if bad.any():
        ys, xs = np.nonzero(bad)
        _problem(d, f"{where}{int(bad.sum())} pixels differ beyond a tie (first at x={xs[0]}, y={ys[0]}: "
                    f"{int(mg[ys[0], xs[0]])} != Paddle's {int(mw[ys[0], xs[0]])})")


def check_segmentation(got: np.ndarray, want: np.ndarray, infos: Sequence[np.ndarray],
                       tol: TaskTolerance = TaskTolerance(), scores: np.ndarray | None = None) -> TaskVerdict:
    """Segmentation outputs -> label maps at the source size (``seg_postprocess``), equal outside ties. Float
    outputs [N, C, H, W] are the class scores (ties from Paddle's); integer label maps compare exactly unless
    ``scores`` (the scores they were arg-maxed from, e.g. repogen.trt.ties.network_scores) is given."""
    ops = _ops()
    d = _segmentation_details()
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:
        _problem(d, f"output shape {list(got.shape)} != Paddle's {list(want.shape)}")
        return _verdict("segmentation", d)
    for row, info in enumerate(infos):
        g, w = got[row], want[row]
        s = w if np.issubdtype(w.dtype, np.floating) and w.ndim == 3 else (
            np.asarray(scores)[row] if scores is not None else None)
        lg = g.argmax(0) if np.issubdtype(g.dtype, np.floating) and g.ndim == 3 else g.reshape(g.shape[-2:])
        lw = w.argmax(0) if np.issubdtype(w.dtype, np.floating) and w.ndim == 3 else w.reshape(w.shape[-2:])
        ties = _tie_mask(s, lg, lw, tol.tie) & (lg != lw) if s is not None else np.zeros(lw.shape, bool)
        src = (info[0], info[1])
        # what the user sees: the label maps resized to the source (nearest), the tie mask with them
        _compare_label_maps(d, ops.seg_postprocess(lg.astype(np.int32), src),
                            ops.seg_postprocess(lw.astype(np.int32), src),
                            ops.seg_postprocess(ties.astype(np.int32), src).astype(bool), f"image {row}: ")
    return _verdict("segmentation", d)


def _segmentation_summary(d: dict[str, Any]) -> str:
    return (f"label maps: {d['pixels_differ']} of {d['pixels']} pixels differ outside ties ({d['ties']} ties) "
            f"on {d['images']} images")


# -- keypoints ---------------------------------------------------------------------------------------------------

def check_keypoints(got: np.ndarray, want: np.ndarray, tol: TaskTolerance = TaskTolerance()) -> TaskVerdict:
    """Heatmaps [N, K, H, W]: each joint at the same arg-max position, or at a tie on Paddle's heatmap (its value
    at our position within ``tol.tie`` x its peak); the peak values (confidences) within ``tol.score``."""
    d: dict[str, Any] = {"joints": 0, "joints_identical": 0, "ties": 0, "max_score_diff": 0.0, "problems": []}
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    if got.shape != want.shape or want.ndim != 4:
        _problem(d, f"heatmaps shape {list(got.shape)} vs Paddle's {list(want.shape)} (expected [N, K, H, W])")
        return _verdict("keypoint", d)
    n, k, h, w = want.shape
    gf, wf = got.reshape(n, k, -1), want.reshape(n, k, -1)
    gp, wp = gf.argmax(-1), wf.argmax(-1)
    peak_w = np.take_along_axis(wf, wp[..., None], -1)[..., 0]
    at_ours = np.take_along_axis(wf, gp[..., None], -1)[..., 0]
    peak_g = np.take_along_axis(gf, gp[..., None], -1)[..., 0]
    scale = np.abs(wf).max(-1)
    d["joints"] = n * k
    d["max_score_diff"] = float(np.abs(peak_g - peak_w).max(initial=0))
    for i in range(n):
        for j in range(k):
            if gp[i, j] != wp[i, j]:
                if abs(peak_w[i, j] - at_ours[i, j]) <= tol.tie * scale[i, j]:
                    d["ties"] += 1
                else:
                    _problem(d, f"person {i} joint {j}: at (x={gp[i, j] % w}, y={gp[i, j] // w}) != Paddle's "
                                f"(x={wp[i, j] % w}, y={wp[i, j] // w})")
                    continue
            if abs(peak_g[i, j] - peak_w[i, j]) > tol.score:
                _problem(d, f"person {i} joint {j}: confidence {peak_g[i, j]:.5f} != Paddle's {peak_w[i, j]:.5f}")
                continue
            d["joints_identical"] += gp[i, j] == wp[i, j]
    return _verdict("keypoint", d)


def _keypoint_summary(d: dict[str, Any]) -> str:
    s = f"keypoints {d['joints_identical'] + d['ties']}/{d['joints']} at Paddle's positions"
    s += f" ({d['ties']} ties)" if d["ties"] else ""
    s += f" ({d['max_px']:.2g} px max)" if "max_px" in d else ""
    return s + f", confidences {d['max_score_diff']:.2g} max"


def _compare_keypoints(d: dict[str, Any], got: Mapping[str, Any], want: Mapping[str, Any], tol: TaskTolerance) -> None:
    """Served keypoints [K, 3] (x, y in source pixels, confidence) and ``kpt_score``: every joint within
    ``tol.box_px`` of Paddle's on both axes and its confidence within ``tol.score``. Answers carry no heatmap, so
    a joint moved to another peak cannot be told from a tie: none is allowed (a swapped x/y or a missing sub-pixel
    step moves joints while keeping their confidences)."""
    g = np.asarray(got["keypoints"], np.float64).reshape(-1, 3)
    w = np.asarray(want["keypoints"], np.float64).reshape(-1, 3)
    d["joints"] += len(w)
    if g.shape != w.shape:
        _problem(d, f"{len(g)} keypoints, Paddle's answer has {len(w)}")
        return
    px = np.abs(g[:, :2] - w[:, :2]).max(axis=1) if len(w) else np.zeros(0)
    conf = np.abs(g[:, 2] - w[:, 2])
    d["max_px"] = max(d["max_px"], float(np.nan_to_num(px, nan=np.inf).max(initial=0)))
    d["max_score_diff"] = max(d["max_score_diff"], float(np.nan_to_num(conf, nan=np.inf).max(initial=0)))
    for j in range(len(w)):
        if not px[j] <= tol.box_px:  # NaN fails too
            _problem(d, f"joint {j}: at ({g[j, 0]:.2f}, {g[j, 1]:.2f}) != Paddle's ({w[j, 0]:.2f}, {w[j, 1]:.2f})")
        elif not conf[j] <= tol.score:
            _problem(d, f"joint {j}: confidence {g[j, 2]:.5f} != Paddle's {w[j, 2]:.5f}")
        else:
            d["joints_identical"] += 1
    if "kpt_score" in want:
        diff = abs(float(np.asarray(got.get("kpt_score", np.nan)).reshape(-1)[0])
                   - float(np.asarray(want["kpt_score"]).reshape(-1)[0]))
        d["max_score_diff"] = max(d["max_score_diff"], diff if diff == diff else np.inf)
        if not diff <= tol.score:
            _problem(d, f"kpt_score differs by {diff:.3g} (> {tol.score:g})")


def _ocr_system_summary(d: dict[str, Any]) -> str:
    return (f"boxes {d['boxes_matched']}/{d['boxes']} matched ({d['max_px']:g} px max), texts "
            f"{d['texts_identical']}/{d['texts']} identical (scores {d['max_score_diff']:.2g} max)")


# -- answers: what a served pipeline returns -------------------------------------------------------------------------

def compare_answers(kind: str, got: Mapping[str, Any], want: Mapping[str, Any], *, precision: str = "fp32",
                    tolerance: TaskTolerance | None = None, box_thresh: float | None = None,
                    threshold: float | None = None, tie_mask: np.ndarray | None = None, nms: bool = False
                    ) -> TaskVerdict:
    """Two post-processed answers for one image, in the terms ``repogen.harness.pipelines`` builds them
    (``boxes``, ``scores``, ``texts``, ``labels``, ``label_ids``/``class_ids``, ``label_map``), by the same rules as
    the raw-output checks. ``kind``: ocr_det, ocr_rec, classification, detection, segmentation or ocr_system
    (boxes matched within 1 px, then the texts of matched boxes identical). ``box_thresh`` / ``threshold`` allow a
    box scored at that threshold on one side only; ``tie_mask`` marks label-map pixels that are ties; ``nms``: the
    detector selects by NMS (NMS ties allowed). ``kind`` keypoint: ``keypoints`` [K, 3] and ``kpt_score``, each
    joint within ``box_px`` (no ties: answers carry no heatmap)."""
    tol = tolerance or task_tolerance(precision)
    if kind == "ocr_det":
        d = _ocr_det_details()
        _match_ocr_boxes(d, list(np.asarray(got["boxes"])), got["scores"], list(np.asarray(want["boxes"])),
                         want["scores"], box_thresh, tol, "")
    elif kind == "ocr_rec":
        d = _ocr_rec_details()
        _compare_texts(d, list(got["texts"]), got["scores"], list(want["texts"]), want["scores"], tol,
                       [f"line {i}" for i in range(len(want["texts"]))])
        if len(got["texts"]) != len(want["texts"]):
            _problem(d, f"{len(got['texts'])} texts, Paddle's answer has {len(want['texts'])}")
    elif kind == "classification":
        d = _classification_details()
        ids = lambda a: np.asarray(a.get("label_ids", a.get("class_ids"))).reshape(-1)  # noqa: E731
        gi, wi = ids(got), ids(want)
        gn = list(got.get("labels") or [str(int(i)) for i in gi])
        wn = list(want.get("labels") or [str(int(i)) for i in wi])
        _compare_topk(d, gi, np.asarray(got["scores"]).reshape(-1), gn, wi, np.asarray(want["scores"]).reshape(-1), wn,
                      tol, "answer")
    elif kind == "detection":
        d = _detection_details()
        _compare_detections(d, {**got, "label_ids": got.get("label_ids", got.get("class_ids"))}, want, threshold, tol,
                            nms)
    elif kind == "segmentation":
        d = _segmentation_details()
        _compare_label_maps(d, np.asarray(got["label_map"]), np.asarray(want["label_map"]), tie_mask, "")
    elif kind == "ocr_system":
        d = {**_ocr_det_details(), **_ocr_rec_details()}
        pairs = _match_ocr_boxes(d, list(np.asarray(got["boxes"])), None, list(np.asarray(want["boxes"])), None,
                                 None, tol, "")
        _compare_texts(d, [got["texts"][i] for i, _ in pairs], [got["scores"][i] for i, _ in pairs],
                       [want["texts"][j] for _, j in pairs], [want["scores"][j] for _, j in pairs], tol,
                       [f"box {np.asarray(want['boxes'][j]).astype(int).tolist()}" for _, j in pairs])
        d["texts"] += len(want["texts"]) - len(pairs)  # texts of unmatched boxes count as not identical
    elif kind == "keypoint":
        d = {"joints": 0, "joints_identical": 0, "ties": 0, "max_px": 0.0, "max_score_diff": 0.0, "problems": []}
        _compare_keypoints(d, got, want, tol)
    else:
        raise ConfigError(f"no answer comparison for a {kind!r} pipeline (known: ocr_det, ocr_rec, classification, "
                          "detection, segmentation, ocr_system, keypoint)")
    return _verdict(kind, d)


SUMMARIES = {"ocr_det": _ocr_det_summary, "ocr_rec": _ocr_rec_summary, "classification": _classification_summary,
             "detection": _detection_summary, "segmentation": _segmentation_summary, "keypoint": _keypoint_summary,
             "ocr_system": _ocr_system_summary}


# -- from a deploy config --------------------------------------------------------------------------------------------

def _pick(outputs: Mapping[str, np.ndarray], name: str, side: str) -> np.ndarray:
    if name not in outputs:
        raise ConfigError(f"task check: the {side} outputs lack {name!r} (have: {', '.join(outputs)})")
    return np.asarray(outputs[name])


#: the deploy-config kinds a task-level check exists for
TASK_KINDS = ("ocr_det", "ocr_rec", "classification", "detection", "segmentation", "keypoint")


def task_check(deploy_config: DeployConfig, feeds_info: TaskInput, got_outputs: Mapping[str, np.ndarray],
               want_outputs: Mapping[str, np.ndarray], *, precision: str = "fp32",
               tolerance: TaskTolerance | None = None, tie_scores: np.ndarray | None = None,
               nms: bool = False) -> TaskVerdict:
    """The task-level check the deploy config calls for, on one input of ``repogen.verify.inputs.task_inputs``.

    ``got_outputs`` (the converted model's) and ``want_outputs`` (Paddle's) are keyed by the same output names,
    in graph order: the model's answer is its first output (for detectors, the float [M, 6] box rows).
    ``tie_scores``: for a segmenter that outputs an integer label map, the class scores it was arg-maxed from.
    ``nms``: the detector selects its boxes by NMS (``repogen.verify.detections.detection_outputs`` finds the op), so
    NMS ties are allowed."""
    cfg = deploy_config
    tol = tolerance or task_tolerance(precision)
    if not want_outputs:
        raise ConfigError("task check: no Paddle outputs to compare with")
    first = next(iter(want_outputs))
    if cfg.kind == "ocr_det":
        return check_ocr_det(_pick(got_outputs, first, "converted"), want_outputs[first], feeds_info.infos,
                             cfg.post, tol)
    if cfg.kind == "ocr_rec":
        return check_ocr_rec(_pick(got_outputs, first, "converted"), want_outputs[first], cfg.characters or [],
                             bool(cfg.post.get("use_space_char", True)), tol)
    if cfg.kind == "classification":
        return check_classification(_pick(got_outputs, first, "converted"), want_outputs[first],
                                    int(cfg.post.get("topk", 5)), cfg.labels, tol)
    if cfg.kind == "detection":
        # [M, 6] rows, or a layout model's [M, 7] / [M, 8] with reading-order columns (six preferred)
        rows = sorted((n for n, v in want_outputs.items() if np.asarray(v).ndim == 2
                       and np.asarray(v).shape[-1] in (6, 7, 8) and np.asarray(v).dtype.kind == "f"),
                      key=lambda n: np.asarray(want_outputs[n]).shape[-1])
        if not rows:
            raise ConfigError(f"{cfg.path}: a detection model outputs [M, 6] box rows (label, score, x1, y1, x2, "
                              f"y2), or [M, 7] / [M, 8] with reading order; its outputs are "
                              f"{[(n, list(np.shape(v))) for n, v in want_outputs.items()]}")
        return check_detection(_pick(got_outputs, rows[0], "converted"), want_outputs[rows[0]], feeds_info.infos,
                               cfg.labels, float(cfg.post.get("threshold", 0.5)), tol, nms, cfg.post)
    if cfg.kind == "segmentation":
        return check_segmentation(_pick(got_outputs, first, "converted"), want_outputs[first], feeds_info.infos,
                                  tol, tie_scores)
    if cfg.kind == "keypoint":
        return check_keypoints(_pick(got_outputs, first, "converted"), want_outputs[first], tol)
    raise ConfigError(f"{cfg.path}: no task-level check for a {cfg.kind!r} model")


def combine(verdicts: Sequence[TaskVerdict]) -> TaskVerdict:
    """One verdict for several inputs of one model: counts summed, ``max_*`` maxed, ``min_*`` minimised,
    problems listed (each prefixed with its input's index)."""
    if not verdicts:
        raise ValueError("combine: no verdicts")
    kind = verdicts[0].kind
    if any(v.kind != kind for v in verdicts):
        raise ValueError(f"combine: verdicts of different kinds {sorted({v.kind for v in verdicts})}")
    d: dict[str, Any] = {"problems": []}
    for n, v in enumerate(verdicts):
        for key, value in v.details.items():
            if key == "problems":
                for p in value:
                    _problem(d, f"input {n}: {p}")
            elif key.startswith("max_"):
                d[key] = max(d.get(key, value), value)
            elif key.startswith("min_"):
                d[key] = min(d.get(key, value), value)
            elif isinstance(value, list):
                d[key] = d.get(key, []) + value
            elif isinstance(value, (int, float, np.integer, np.floating)):
                d[key] = d.get(key, 0) + value
    return _verdict(kind, d)
