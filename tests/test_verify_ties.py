"""Tie-aware selection in repogen.verify.ties, through repogen.verify.compare, against Paddle's own outputs.

Two Paddle-saved models:
* ``rtdetr_post``: RT-DETR's post-processing: sigmoid scores of [B, Q, C] query-class pairs, top-K over the
  flattened Q*C, labels ``idx % C``, boxes gathered by ``idx // C`` (take_along_axis), the top-K scores;
* ``keypoints``: an argmax over a heatmap reshaped to [B, K, H*W], the flat index and its (x, y) coordinates.
The inputs hold near-ties (scores 1e-4 apart): under --fp16 they round to one HALF value, so the converted
network selects a different but equally valid set than Paddle's FP32 run. That must pass (ties counted); a
wrong row or index must still fail.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.opcases import Case, Inp, saved_programs

B = -1
Q, C, K = 30, 4, 12
KP, H, W = 3, 6, 8
CASES = {
    "rtdetr_post": Case((Inp("logits", (B, Q, C)), Inp("boxes", (B, Q, 4))), ({"logits": (2, Q, C), "boxes": (2, Q, 4)},)),
    "keypoints": Case((Inp("heat", (B, KP, H, W)),), ({"heat": (2, KP, H, W)},)),
}


def build_cases(mode: str) -> dict:
    import paddle
    import paddle.nn.functional as F

    def rtdetr_post(logits, boxes):
        scores = F.sigmoid(logits).flatten(1)  # [B, Q*C]
        top, idx = paddle.topk(scores, K, axis=1)
        labels = idx % C
        query = (idx // C).unsqueeze(-1).expand([-1, -1, 4])
        return labels, paddle.take_along_axis(boxes, query, axis=1), top

    def keypoints(heat):
        flat = heat.reshape([0, KP, H * W])
        idx = paddle.argmax(flat, axis=-1)
        coords = paddle.stack([idx % W, idx // W], axis=-1).astype("float32")
        return idx, coords

    return {"rtdetr_post": rtdetr_post, "keypoints": keypoints}


@pytest.fixture(scope="module")
def programs():
    return saved_programs(__file__, "verify-ties", modes=("pir",))["pir"]


def _rtdetr_feeds() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(5)
    logits = rng.uniform(-4, -1, (2, Q, C))
    # 20 query-class pairs at 0.2 + k * 2e-5: K=12 of them are selected, 1e-4 apart at most around the cut
    flat = logits.reshape(2, -1)
    for b in range(2):
        pick = rng.choice(Q * C, 20, replace=False)
        flat[b, pick] = 0.2 + np.arange(20) * 2e-5
    boxes = rng.uniform(0, 640, (2, Q, 4))
    return {"logits": logits.astype(np.float32), "boxes": boxes.astype(np.float32)}


def _keypoint_feeds() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(6)
    heat = rng.uniform(0, 0.3, (2, KP, H, W))
    heat[:, :, 1, 2] = 0.5  # two peaks 1e-4 apart: HALF (step 2^-11 at 0.5) makes them one value
    heat[:, :, 4, 5] = 0.5001
    heat[1, 2, 3, 3] = 0.9  # and a clear winner
    return {"heat": heat.astype(np.float32)}


def _judge(model, feeds, precision):
    from tests.support.mutations import judge

    return judge(model, feeds, precision)


def test_compare_ties_unit():
    from repogen.verify.ties import TieSource, compare_ties

    s = np.array([[0.5, 0.5 + 1e-7, 0.1], [0.9, 0.2, 0.1]], np.float32)
    src = TieSource("arg", "s", 1)
    assert compare_ties(np.array([0, 0]), np.array([1, 0]), s, src, 1e-5) == (True, 1, "")
    ok, ties, problem = compare_ties(np.array([0, 1]), np.array([1, 0]), s, src, 1e-5)
    assert not ok and ties == 1 and "1 index(es) differ beyond a tie" in problem
    assert not compare_ties(np.array([0, 3]), np.array([0, 0]), s, src, 1e-5)[0]  # index outside the axis
    topk = TieSource("topk", "s", 1, True)
    assert compare_ties(np.array([[0, 1]]), np.array([[1, 0]]), s[:1], topk, 1e-5) == (True, 2, "")
    assert not compare_ties(np.array([[0, 2]]), np.array([[1, 0]]), s[:1], topk, 1e-5)[0]
    flat = TieSource("arg", "s", None)
    assert compare_ties(np.array(0), np.array(1), s[:1], flat, 1e-5)[:2] == (True, 1)


def test_gathered_rows_unit():
    # 6 candidates, top-3 selected; candidates 2 and 3 tie at the cut: either set is valid, a wrong box is not
    from repogen.verify import TieEvidence, TieSource, compare, rule_for

    boxes = np.arange(24, dtype=np.float32).reshape(1, 6, 4) * 10
    scores = np.array([[0.9, 0.8, 0.5, 0.5 + 1e-7, 0.1, 0.0]], np.float32)
    src = TieSource("gather", "scores", 1, True, "top")
    want = boxes[:, [0, 1, 3]]  # Paddle took candidate 3
    got = boxes[:, [1, 0, 2]]  # we took 2, and listed the first two in the other order
    ev = TieEvidence(src, scores, values=np.array([[0.8, 0.9, 0.5]], np.float32), candidates=boxes)
    v = compare(got, want, rule_for("fp32"), tie=ev)
    assert v.passed and v.ties == 1 and v.criterion == "ties", v
    assert not compare(got, want, rule_for("fp32")).passed  # without the evidence the rows differ
    wrong = got.copy()
    wrong[0, 0, 1] += 50  # a box that is not Paddle's: its score 0.8 is far from the cut 0.5
    v = compare(wrong, want, rule_for("fp32"), tie=ev)
    assert not v.passed and v.ties == 1 and "not ties at the cut" in v.reason
    # Paddle's own selected scores, where known, are held to the cut too
    ev_far = TieEvidence(src, scores, ev.values, want_values=np.array([[0.9, 0.8, 0.2]], np.float32))
    assert not compare(got, want, rule_for("fp32"), tie=ev_far).passed


def test_tie_sources_find_gathered_and_derived(programs):
    from repogen.paddle import load_model
    from repogen.trt.passes import clean_graph
    from repogen.verify import tie_sources

    g = clean_graph(load_model(programs / "rtdetr_post"))
    kinds = {n: s.kind for n, s in tie_sources(g).items()}
    labels, boxes, top = g.outputs
    assert kinds == {labels: "derived", boxes: "gather"}, kinds
    g = clean_graph(load_model(programs / "keypoints"))
    kinds = {n: (s.kind, s.axis) for n, s in tie_sources(g).items()}
    assert kinds == {g.outputs[0]: ("arg", -1), g.outputs[1]: ("derived", -1)}, kinds


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_rtdetr_post_selection_passes_with_ties(programs, precision):
    j = _judge(programs / "rtdetr_post", _rtdetr_feeds(), precision)
    assert j.passed, [(v.name, v.reason) for v in j.verdicts]
    if precision == "fp16":
        labels, boxes, _ = j.verdicts
        # HALF makes the near-tied scores equal: another selection/order than Paddle's, accepted as ties
        assert boxes.ties and labels.ties, (boxes, labels)
        assert not j.old_pass  # the old whole-tensor rule failed this valid selection


def test_rtdetr_post_wrong_box_fails(programs):
    from repogen.verify import TieEvidence, compare, rule_for
    from tests.support.mutations import convert, paddle_reference
    from repogen.trt import numpy_trt

    feeds = _rtdetr_feeds()
    g, conv, _, sources = convert(programs / "rtdetr_post", feeds, "fp16")
    out = numpy_trt.execute(conv.network, feeds)
    ours = {v: out[conv.outputs[i][0]] for i, v in enumerate(g.outputs)}
    want = paddle_reference(programs / "rtdetr_post", feeds)
    name = g.outputs[1]
    ev = TieEvidence.from_arrays(sources[name], ours)
    assert compare(ours[name], want[1], rule_for("fp16"), tie=ev).passed
    wrong = ours[name].copy()
    wrong[0, 0] += 50.0  # the best-scored box moved by 50 px (fp16 allows 1e-2 of the 640 px peak)
    v = compare(wrong, want[1], rule_for("fp16"), tie=ev)
    assert not v.passed and "not ties at the cut" in v.reason
    # within the tied cluster too: a swapped row must be one of the candidates, not a new box
    wrong = ours[name].copy()
    wrong[0, -1] += 50.0
    assert not compare(wrong, want[1], rule_for("fp16"), tie=ev).passed


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_keypoint_argmax_over_reshaped_map(programs, precision):
    j = _judge(programs / "keypoints", _keypoint_feeds(), precision)
    assert j.passed, [(v.name, v.reason) for v in j.verdicts]
    if precision == "fp16":
        idx, coords = j.verdicts
        assert idx.ties == 5 and coords.ties == 10, (idx.ties, coords.ties)  # 5 tied maps, x and y each
        assert not j.old_pass


def test_keypoint_wrong_position_fails(programs):
    from repogen.trt import numpy_trt
    from repogen.verify import TieEvidence, compare, rule_for
    from tests.support.mutations import convert, paddle_reference

    feeds = _keypoint_feeds()
    g, conv, _, sources = convert(programs / "keypoints", feeds, "fp16")
    out = numpy_trt.execute(conv.network, feeds)
    ours = {v: out[conv.outputs[i][0]] for i, v in enumerate(g.outputs)}
    want = paddle_reference(programs / "keypoints", feeds)
    for i, name in enumerate(g.outputs[:len(want)]):
        ev = TieEvidence.from_arrays(sources[name], ours)
        wrong = ours[name].copy()
        wrong[1, 2] = wrong[1, 2] + 1  # the clear winner's position moved: no tie there
        v = compare(wrong, want[i], rule_for("fp16"), tie=ev)
        assert not v.passed and ("no tie" in v.reason or "beyond a tie" in v.reason), v.reason
