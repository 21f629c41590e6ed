"""multiclass_nms3 (PIR and 2.x), the legacy multiclass_nms / multiclass_nms2 and matrix_nms against Paddle
(converters/multiclass_nms.py).

Detections compare as sets, since the row order is an implementation choice: per image, every Paddle row
must match one repogen row of the same label with IoU >= 0.99 and a score within 1e-5 relative (1e-2 at
fp16), and the per-image counts must be equal.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.opcases import Case, Inp, emit_legacy, feeds, saved_programs

B = -1
M, C = 12, 3

CASES: dict[str, Case] = {
    # clusters of heavily overlapping boxes; scores cut by score_threshold, nms_top_k and keep_top_k
    "nms3": Case((Inp("b", (B, M, 4)), Inp("s", (B, C, M))), ({"b": (2, M, 4), "s": (2, C, M)},
                                                            {"b": (3, M, 4), "s": (3, C, M)})),
    # class 0 is background; pixel boxes (normalized=False: sizes w + 1); nothing cut by top-k limits
    "nms3_background_pixels": Case((Inp("b", (B, M, 4)), Inp("s", (B, C, M))),
                                   ({"b": (2, M, 4), "s": (2, C, M)}, {"b": (1, M, 4), "s": (1, C, M)})),
    # matrix_nms: linear decay, gaussian decay with background 0 and pixel boxes
    "matrix_linear": Case((Inp("b", (B, M, 4)), Inp("s", (B, C, M))), ({"b": (2, M, 4), "s": (2, C, M)},
                                                                     {"b": (3, M, 4), "s": (3, C, M)})),
    "matrix_gaussian_pixels": Case((Inp("b", (B, M, 4)), Inp("s", (B, C, M))),
                                   ({"b": (2, M, 4), "s": (2, C, M)}, {"b": (1, M, 4), "s": (1, C, M)})),
}

ATTRS = {
    "nms3": dict(score_threshold=0.3, nms_top_k=4, keep_top_k=9, nms_threshold=0.45, normalized=True,
                 background_label=-1),
    "nms3_background_pixels": dict(score_threshold=0.2, nms_top_k=-1, keep_top_k=-1, nms_threshold=0.52,
                                   normalized=False, background_label=0),
    "matrix_linear": dict(score_threshold=0.2, post_threshold=0.3, nms_top_k=8, keep_top_k=20, use_gaussian=False,
                          gaussian_sigma=2.0, background_label=-1, normalized=True),
    "matrix_gaussian_pixels": dict(score_threshold=0.1, post_threshold=0.25, nms_top_k=-1, keep_top_k=-1,
                                   use_gaussian=True, gaussian_sigma=2.0, background_label=0, normalized=False),
}
BOX_LAYOUT = {"nms3": "clusters", "nms3_background_pixels": "pixel pairs", "matrix_linear": "chains",
              "matrix_gaussian_pixels": "chains in pixels"}


def build_cases(mode: str) -> dict:
    import paddle
    import paddle.nn.functional as F
    from paddle import _C_ops
    from paddle.vision import ops

    def boxes_from(b, name):
        if BOX_LAYOUT[name] == "clusters":  # six clusters of two heavily overlapping boxes, clusters far apart
            centers = np.repeat([[0.2, 0.2], [0.5, 0.2], [0.8, 0.2], [0.2, 0.7], [0.5, 0.7], [0.8, 0.7]], 2, axis=0)
        if BOX_LAYOUT[name].startswith("chains"):
            # four chains of three boxes 0.06 apart along x: neighbours overlap (IoU ~0.45), ends barely, so a
            # box's decay can come from a neighbour that was itself decayed (matrix NMS's compensation)
            chain = np.array([[0.0, 0.0], [0.06, 0.0], [0.12, 0.0]])
            centers = (np.array([[0.2, 0.2], [0.6, 0.2], [0.2, 0.7], [0.6, 0.7]])[:, None, :] + chain).reshape(-1, 2)
        if BOX_LAYOUT[name] != "pixel pairs":
            jitter = 0.01 if BOX_LAYOUT[name].startswith("chains") else 0.03
            c = paddle.to_tensor(centers.astype("float32")) + b[..., :2] * jitter
            half = 0.08 + paddle.abs(b[..., 2:]) * 0.02
            scale = 40.0 if BOX_LAYOUT[name] == "chains in pixels" else 1.0
            return paddle.concat([c - half, c + half], axis=-1) * scale
        # pixel boxes in pairs [20k, 0, 20k + 9, 9] and [20k + 3, 0, 20k + 12, 9]: IoU 0.5 as plain areas, 0.538
        # with Paddle's +1 sizes, around the threshold 0.52 (nudged by at most 0.01)
        k = np.arange(M // 2, dtype=np.float32) * 20
        base = np.stack([np.stack([k, 0 * k, k + 9, 0 * k + 9], -1), np.stack([k + 3, 0 * k, k + 12, 0 * k + 9], -1)], 1)
        return paddle.to_tensor(base.reshape(M, 4)) + b * 0.01

    def nms(b, s, name, version="nms3"):
        a = ATTRS[name]
        boxes, scores = boxes_from(b, name), F.sigmoid(s * 3.0)
        if mode != "legacy":
            out, index, count = _C_ops.multiclass_nms3(boxes, scores, None, a["score_threshold"], a["nms_top_k"],
                                                       a["keep_top_k"], a["nms_threshold"], a["normalized"], 1.0,
                                                       a["background_label"])
            return out, index, count
        attrs = dict(a, nms_eta=1.0)
        if version == "nms3":
            return emit_legacy("multiclass_nms3", {"BBoxes": [boxes], "Scores": [scores]}, attrs,
                               outs=("Out", "Index", "NmsRoisNum"), out_dtypes=("float32", "int32", "int32"))
        return emit_legacy("multiclass_nms", {"BBoxes": [boxes], "Scores": [scores]}, attrs, outs=("Out",))

    def matrix(b, s, name):
        a = ATTRS[name]
        out, count, index = ops.matrix_nms(boxes_from(b, name), F.sigmoid(s * 3.0), a["score_threshold"],
                                           a["post_threshold"], a["nms_top_k"], a["keep_top_k"], a["use_gaussian"],
                                           a["gaussian_sigma"], a["background_label"], a["normalized"],
                                           return_index=True, return_rois_num=True)
        return out, index, count

    def nms3_and_legacy(b, s):
        out, index, count = nms(b, s, "nms3")
        if mode != "legacy":
            return out, index, count
        # fluid's multiclass_nms (rows only) with the same attributes; multiclass_nms2 is no longer registered
        # in Paddle 3.3.1, so it cannot be saved or run here
        return out, index, count, nms(b, s, "nms3", "nms")

    return {"nms3": nms3_and_legacy,
            "nms3_background_pixels": lambda b, s: nms(b, s, "nms3_background_pixels"),
            "matrix_linear": lambda b, s: matrix(b, s, "matrix_linear"),
            "matrix_gaussian_pixels": lambda b, s: matrix(b, s, "matrix_gaussian_pixels")}


@pytest.fixture(scope="module")
def programs():
    return saved_programs(__file__, "ops_nms")


def _iou(a: np.ndarray, b: np.ndarray, plus_one: float) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]) + plus_one)
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]) + plus_one)
    inter = iw * ih
    area = lambda x: (x[2] - x[0] + plus_one) * (x[3] - x[1] + plus_one)  # noqa: E731
    return inter / (area(a) + area(b) - inter)


def match_detections(got: np.ndarray, want: np.ndarray, got_counts, want_counts, score_tol: float,
                     plus_one: float = 0.0) -> list[str]:
    """Per image, each wanted row matched to a distinct got row: same label, IoU >= 0.99, close score."""
    problems = []
    if list(got_counts) != list(want_counts):
        return [f"per-image counts {list(got_counts)} != Paddle's {list(want_counts)}"]
    g0 = w0 = 0
    for image, (gn, wn) in enumerate(zip(got_counts, want_counts)):
        g_rows, w_rows = list(got[g0:g0 + gn]), want[w0:w0 + wn]
        g0, w0 = g0 + gn, w0 + wn
        for row in w_rows:
            hit = next((k for k, r in enumerate(g_rows) if r[0] == row[0]
                        and abs(r[1] - row[1]) <= score_tol * abs(row[1])
                        and _iou(r[2:], row[2:], plus_one) >= 0.99), None)
            if hit is None:
                problems.append(f"image {image}: Paddle's {np.round(row, 4).tolist()} has no match")
            else:
                g_rows.pop(hit)
    return problems


def _run(model, case: Case, precision: str) -> list[str]:
    from repogen.paddle import load_model
    from repogen.trt import numpy_trt
    from repogen.trt.convert import convert_graph
    from repogen.trt.profiles import make_profiles
    from tests.support.zoo import reference_outputs

    graph = load_model(model)
    spans = {n: [r[n] for r in case.runs] for n in case.runs[0]}
    fmt = lambda pick: ",".join(f"{n}:{'x'.join(str(pick(s[k] for s in v)) for k in range(len(v[0])))}"  # noqa: E731
                                for n, v in spans.items())
    profiles = make_profiles(graph.input_values(), min_shapes=[fmt(min)], max_shapes=[fmt(max)])
    conv = convert_graph(graph, numpy_trt, precision=precision, profiles=profiles)
    problems = []
    for run in range(len(case.runs)):
        fd = feeds(case, run)
        got = numpy_trt.execute(conv.network, fd)
        got = [got[name] for name, _, _ in conv.outputs]
        want = list(reference_outputs(model, fd).values())
        n = fd["b"].shape[0]
        # outputs: rows, index, counts (PIR and legacy multiclass_nms3 alike)
        assert got[2].dtype == want[2].dtype == np.int32 and got[2].shape == (n,)
        assert got[0].shape[1] == 6 and got[1].shape == (got[0].shape[0], 1)
        name = model.name
        plus_one = 0.0 if ATTRS[name]["normalized"] else 1.0
        tol = 1e-5 if precision == "fp32" else 1e-2
        problems += match_detections(got[0], want[0], got[2], want[2], tol, plus_one)
        # Index: image * M + box, the same set as Paddle's
        if sorted(got[1].ravel().tolist()) != sorted(want[1].ravel().tolist()):
            problems.append(f"run {run}: Index {sorted(got[1].ravel().tolist())} != {sorted(want[1].ravel().tolist())}")
        if len(want) > 3:  # legacy multiclass_nms: rows only, the same detections as Paddle's
            problems += match_detections(got[3], want[3], got[2], want[2], tol, plus_one)
        if run == 0:
            assert want[0].shape[0] > 0, "the case should keep some detections"
    return problems


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("mode", ["pir", "legacy"])
def test_multiclass_nms3_matches_paddle(programs, case, mode):
    problems = _run(programs[mode] / case, CASES[case], "fp32")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("case", list(CASES))
def test_multiclass_nms3_fp16(programs, case):
    problems = _run(programs["pir"] / case, CASES[case], "fp16")
    assert not problems, "\n".join(problems)


def test_cuts_really_cut(programs):
    # the attributes of case nms3 must each remove something, or the test above proves little
    from tests.support.zoo import reference_outputs

    fd = feeds(CASES["nms3"], 0)
    out, _, counts = reference_outputs(programs["pir"] / "nms3", fd).values()
    assert all(c == ATTRS["nms3"]["keep_top_k"] for c in counts)  # keep_top_k binds on every image
    assert out.shape[0] < 2 * C * M


def test_matcher_rejects_a_wrong_answer():
    want = np.array([[1, 0.9, 0, 0, 1, 1], [2, 0.8, 0, 0, 1, 1]], np.float32)
    assert not match_detections(want[::-1], want, [2], [2], 1e-5)
    wrong = want.copy()
    wrong[1, 0] = 1  # a label changed
    assert match_detections(wrong, want, [2], [2], 1e-5)
    assert match_detections(want, want, [1, 1], [2, 0], 1e-5)
