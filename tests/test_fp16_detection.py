"""FP16 policy for detection (docs/precision.md): box decoding, score computation and NMS run in FP32 under
--fp16, so FP16 detections match Paddle's FP32 ones as sets.

The case is built so that FP16 arithmetic on the score path changes the detections: two overlapping pixel
boxes near x = 4096 (FP16 steps by 4 there, as 4097 and 4098 both become 4096) whose scores 0.70012 and
0.70024 collapse to one FP16 value (a tie NMS breaks the other way), and a score 0.50018 that FP16 rounds
below the 0.5001 threshold. The same test with the detection rule switched off must fail (it does: every
image loses the threshold box, 2 detections instead of Paddle's 3).
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.opcases import Case, Inp, emit_legacy, saved_programs
from tests.test_ops_nms import match_detections

B = -1
M = 4
CASES = {"decode_nms": Case((Inp("b", (B, M, 4)), Inp("s", (B, 1, M))),
                            ({"b": (2, M, 4), "s": (2, 1, M)}, {"b": (1, M, 4), "s": (1, 1, M)}))}
NMS = dict(score_threshold=0.5001, nms_top_k=-1, keep_top_k=-1, nms_threshold=0.5, normalized=False,
           background_label=-1)


def build_cases(mode: str) -> dict:
    import paddle
    import paddle.nn.functional as F
    from paddle import _C_ops

    def decode_nms(b, s):
        # xywh -> xyxy pixel boxes; logits -> scores; multiclass NMS
        boxes = paddle.concat([b[..., :2], b[..., :2] + b[..., 2:]], axis=-1)
        scores = F.sigmoid(s)
        if mode != "legacy":
            return _C_ops.multiclass_nms3(boxes, scores, None, NMS["score_threshold"], NMS["nms_top_k"],
                                          NMS["keep_top_k"], NMS["nms_threshold"], NMS["normalized"], 1.0,
                                          NMS["background_label"])
        return emit_legacy("multiclass_nms3", {"BBoxes": [boxes], "Scores": [scores]}, dict(NMS, nms_eta=1.0),
                           outs=("Out", "Index", "NmsRoisNum"), out_dtypes=("float32", "int32", "int32"))

    return {"decode_nms": decode_nms}


def _logit(p: float) -> float:
    return float(np.log(p / (1 - p)))


def _feeds(n: int) -> dict[str, np.ndarray]:
    one_b = np.array([[4097, 100, 97, 80],    # A: x 4097..4194
                      [4101, 101, 97, 80],    # A': overlaps A (IoU ~0.9), slightly higher score
                      [4400, 300, 61, 45],    # scored just above the threshold
                      [3000, 900, 50, 50]],   # clear winner, far away
                     np.float32)
    one_s = np.array([[_logit(0.70012), _logit(0.70024), _logit(0.50018), _logit(0.9)]], np.float32)
    return {"b": np.stack([one_b + 8 * k for k in range(n)]), "s": np.stack([one_s] * n)}


@pytest.fixture(scope="module")
def programs():
    return saved_programs(__file__, "fp16_detection", modes=("pir", "legacy"))


def _problems(model, precision: str) -> list[str]:
    from repogen.paddle import load_model
    from repogen.trt import numpy_trt
    from repogen.trt.convert import convert_graph
    from repogen.trt.profiles import make_profiles
    from tests.support.zoo import reference_outputs

    graph = load_model(model)
    profiles = make_profiles(graph.input_values(), min_shapes=[f"b:1x{M}x4,s:1x1x{M}"],
                             max_shapes=[f"b:2x{M}x4,s:2x1x{M}"])
    conv = convert_graph(graph, numpy_trt, precision=precision, profiles=profiles)
    problems = []
    for n in (2, 1):
        fd = _feeds(n)
        got = numpy_trt.execute(conv.network, fd)
        got = [got[name] for name, _, _ in conv.outputs]
        want = list(reference_outputs(model, fd).values())
        assert all(c == 3 for c in want[2]), f"Paddle FP32 keeps A', the threshold box and the winner: {want[2]}"
        tol = 1e-5 if precision == "fp32" else 1e-2
        problems += match_detections(got[0], want[0], got[2], want[2], tol, plus_one=1.0)
    return problems


@pytest.mark.parametrize("mode", ["pir", "legacy"])
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_fp16_detections_match_fp32_paddle_as_sets(programs, mode, precision):
    problems = _problems(programs[mode] / "decode_nms", precision)
    assert not problems, "\n".join(problems)


def test_fp16_score_path_would_change_the_detections(programs, monkeypatch):
    # the same network with the detection rule off (scores and boxes in HALF) loses A' and the threshold box
    import repogen.trt.context as context

    monkeypatch.setattr(context, "detection_fp32_ops", lambda graph: set())
    problems = _problems(programs["pir"] / "decode_nms", "fp16")
    assert problems, "FP16 scores should have collapsed the tie / crossed the threshold"


def test_detection_rule_marks_the_score_path(programs):
    from repogen.paddle import load_model
    from repogen.trt.passes import clean_graph
    from repogen.trt.precision import detection_fp32_ops

    g = clean_graph(load_model(programs["pir"] / "decode_nms"))
    kept = {op.type for op in g.ops if id(op) in detection_fp32_ops(g)}
    assert {"sigmoid", "concat", "add", "multiclass_nms3"} <= kept
