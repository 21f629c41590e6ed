"""Tie-aware comparison of index outputs (repogen/verify/ties.py) in `repogen check` and validate's comparison.

The model's two class scores are x and x * 1.0001: Paddle (FP32) picks class 1 wherever x > 0, but under
--fp16 both scores round to one HALF value and the network picks class 0: a tie within the 1e-2 tolerance,
not an error. The same holds for top-k indices. A real mismatch (scores far apart) must still fail.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.opcases import Case, Inp, saved_programs

B = -1
CASES = {"label_map": Case((Inp("x", (B, 1, 4, 5)),), ({"x": (2, 1, 4, 5)},))}


def build_cases(mode: str) -> dict:
    import paddle

    def label_map(x):
        s = paddle.concat([x, x * 1.0001, x * 0.5 - 2.0], axis=1)  # [B, 3, H, W] class scores
        labels = paddle.argmax(s, axis=1)
        top = paddle.topk(s, 2, axis=1)[1]
        return labels, top, paddle.argmax(s, axis=1, keepdim=True).astype("int32")

    return {"label_map": label_map}


@pytest.fixture(scope="module")
def programs():
    return saved_programs(__file__, "ties", modes=("pir", "legacy"))


def _feeds():
    rng = np.random.default_rng(3)
    return {"x": rng.uniform(-1, 1, (2, 1, 4, 5)).astype(np.float32)}


def test_compare_ties_unit():
    from repogen.verify.ties import TieSource, compare_ties

    s = np.array([[0.5, 0.5 + 1e-7, 0.1], [0.9, 0.2, 0.1]], np.float32)
    src = TieSource("arg", "s", 1)
    assert compare_ties(np.array([0, 0]), np.array([1, 0]), s, src, 1e-5) == (True, 1, "")
    ok, ties, problem = compare_ties(np.array([0, 1]), np.array([1, 0]), s, src, 1e-5)
    assert not ok and ties == 1 and "1 index(es) differ beyond a tie" in problem
    assert compare_ties(np.array([0, 0]), np.array([0, 0]), s, src, 1e-5) == (True, 0, "")
    assert not compare_ties(np.array([0, 3]), np.array([0, 0]), s, src, 1e-5)[0]  # index outside the axis
    # top-k: swapped order of two tied scores is accepted, a different third element is not
    topk = TieSource("topk", "s", 1, True)
    assert compare_ties(np.array([[0, 1]]), np.array([[1, 0]]), s[:1], topk, 1e-5) == (True, 2, "")
    assert not compare_ties(np.array([[0, 2]]), np.array([[1, 0]]), s[:1], topk, 1e-5)[0]
    # flattened argmax: one index over all scores
    flat = TieSource("arg", "s", None)
    assert compare_ties(np.array(0), np.array(1), s[:1], flat, 1e-5)[:2] == (True, 1)


@pytest.mark.parametrize("mode", ["pir", "legacy"])
def test_check_accepts_fp16_ties_and_counts_them(programs, mode):
    from repogen.paddle import load_model
    from repogen.verify.conversion import check_graph

    graph = load_model(programs[mode] / "label_map")
    fp32 = check_graph(graph, precision="fp32", inputs=_feeds())
    assert fp32.passed and all(not o.ties for o in fp32.outputs)
    fp16 = check_graph(graph, precision="fp16", inputs=_feeds())
    assert fp16.passed, [(o.name, o.ties, o.max_abs) for o in fp16.outputs]
    x = _feeds()["x"]
    positives = int((x > 0).sum())  # where Paddle picks class 1 and FP16 sees a tie
    labels, top, kept = fp16.outputs
    assert labels.ties == positives and kept.ties == positives and top.ties == 2 * positives
    assert labels.max_abs == 1  # the outputs really differ: only the tie rule passes them


def test_check_still_fails_real_index_errors(programs, monkeypatch):
    # the same model with a wrong argmax converter (argmin) must fail even with ties allowed
    from repogen.paddle import load_model
    from repogen.trt import converter_table
    from repogen.verify.conversion import check_graph
    from repogen.trt.registry import load_converters

    load_converters()
    monkeypatch.setitem(converter_table.CONVERTERS, "argmax", converter_table.CONVERTERS["argmin"])
    report = check_graph(load_model(programs["pir"] / "label_map"), precision="fp16", inputs=_feeds())
    assert not report.passed and not report.outputs[0].passed


def test_validate_scorer_uses_source_scores(programs):
    # validate's TieScorer: scores recomputed from the source model for the served outputs (Triton names)
    from repogen.paddle import load_model
    from repogen.trt import numpy_trt
    from repogen.trt.convert import convert_graph
    from repogen.verify.ties import TieScorer
    from tests.support.zoo import reference_outputs

    model = programs["pir"] / "label_map"
    graph = load_model(model)
    feeds = _feeds()
    want = list(reference_outputs(model, feeds).values())
    conv = convert_graph(graph, numpy_trt, precision="fp16")
    got = numpy_trt.execute(conv.network, feeds)
    served = {f"out{i}": got[name] for i, (name, _, _) in enumerate(conv.outputs)}
    scorer = TieScorer(graph.source, {"x": "x"}, {f"out{i}": n for i, n in enumerate(graph.outputs)})
    ok, ties, _ = scorer.check("out0", feeds, served["out0"], want[0], 1e-2)
    assert ok and ties == int((feeds["x"] > 0).sum())
    assert scorer.check("out0", feeds, served["out0"], want[0], 1e-6)[0] is False  # tolerance matters
