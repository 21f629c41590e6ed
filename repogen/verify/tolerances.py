"""The one tolerance table: how close a converted network's outputs must be to Paddle's, per precision.

Every number below was measured with ``python -m tests.support.mutations`` (NumPy backend against Paddle Inference 3.3.1
on CPU, the official trained PP-OCRv4 det/rec and v2 cls exports and the zoo networks, inputs uniform in
[-1, 1)); docs/precision.md ("One verification core") gives the tables. ``atol`` is a fraction of the
output's largest reference magnitude (``atol * max|ref|``), so a DB probability map whose values are all below
5e-3 and a detector's pixel boxes are judged on the same terms; ``rtol`` is numpy.allclose's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from repogen.errors import ConfigError

_QUANTIZE_OPS = ("quantize_linear", "fake_quantize", "fake_channel_wise_quantize")


@dataclass(frozen=True)
class Rule:
    """The pass rule for one output at one precision (repogen.verify.compare applies it).

    A float output passes when ANY enabled criterion holds:
    - elementwise (``outside_share`` not None): at most ``outside_share`` of the elements lie outside
      ``atol * max|ref| + rtol * |ref|`` (numpy.allclose semantics with a scaled atol, as Polygraphy's
      comparator counts them) and, where ``rel_l2_cap`` is set, ``||a - b|| / ||b|| <= rel_l2_cap`` (the few
      elements a share allows must not carry the whole signal: a DB map on random inputs has < 400 pixels
      of response in 409600);
    - noise (``noise_factor`` not None, a noise floor given): the error against Paddle, in relative L2 and in
      max abs, is at most ``noise_factor`` times the network's own float32-vs-float64 distance
      (repogen.verify.noise), a floor at most ``max_noise`` (relative L2);
    - whole tensor (``max_rel_l2`` not None): ``||a - b|| / ||b|| <= max_rel_l2``;
    and, where ``min_top1`` is set, [N, C] outputs also need that share of rows with Paddle's argmax.
    Integer and bool outputs are exact, except index outputs picked by score, where candidates whose scores
    lie within ``tie_tol * max|score|`` of each other are ties (repogen.verify.ties).
    """

    precision: str
    prequantized: bool
    atol: float
    rtol: float
    outside_share: float | None
    noise_factor: float | None
    tie_tol: float
    max_rel_l2: float | None = None
    min_top1: float | None = None
    max_noise: float = 1e-3
    rel_l2_cap: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


# fp32 elementwise: Polygraphy's defaults (atol = rtol = 1e-5), atol scaled by the output's peak; no element may
#   lie outside. Measured worst on correct conversions: 4.7e-6 * peak (det map, max abs 2.3e-8 of a 4.9e-3
#   peak). fp32 noise: error within 20x the network's own float32-vs-float64 distance, in relative L2 and in
#   max abs. Correct conversions measured at most 6.0x (relative L2) and 7.2x (max abs) on 16 outputs of 10
#   models (zoo convnet, where Paddle's kernels round more than NumPy's); the 54 seeded mistakes at least
#   900x (PP-OCR rec, epsilon 1e-3 in 5 layer norms): docs/precision.md.
# fp16: elementwise only (a noise floor at fp16 would absorb precision-specific mistakes), with relative L2
#   at most 0.1, and the fp32 twin (compare's ``twin``) must pass. Measured on the trained det (640x640,
#   uniform inputs): 1.2e-5 of the map's elements outside 1e-2 * peak + 1e-2 * |ref| (fp16 rounding through
#   60 layers moves logits by up to 3e-2), relative L2 3.2e-2; rec and cls: none outside. outside_share 1e-3
#   leaves a margin of ~80x while an off-by-one border (one row of a 160x160 map is 6e-3) still fails.
# prequantized: a 1e-7 float difference before a quantize op moves single elements by one int8 step (1/127 of
#   the scale). Large outputs: few elements, far apart, within the allowed share; small ones (zoo
#   convnet_paddle_ptq's [2, 4] output: 2 of 8 elements, one step, rel L2 3.4e-5) keep the earlier whole-tensor
#   bounds (relative L2 1e-3 at fp32, 3e-2 at fp16; measured 3.4e-5 and 1.3e-2) as an alternative criterion.
# int8 (post-training quantization): the calibrate.py bound, carried over unchanged (not re-measured here):
#   relative L2 <= 0.1 and top-1 agreement >= 0.9 on held-out samples.
TOLERANCES: dict[tuple[str, bool], Rule] = {
    ("fp32", False): Rule("fp32", False, atol=1e-5, rtol=1e-5, outside_share=0.0, noise_factor=20.0, tie_tol=1e-5),
    ("fp16", False): Rule("fp16", False, atol=1e-2, rtol=1e-2, outside_share=1e-3, noise_factor=None, tie_tol=1e-2,
                          rel_l2_cap=0.1),
    ("fp32", True): Rule("fp32", True, atol=1e-5, rtol=1e-5, outside_share=1e-2, noise_factor=20.0, tie_tol=1e-5,
                         max_rel_l2=1e-3),
    ("fp16", True): Rule("fp16", True, atol=1e-2, rtol=1e-2, outside_share=3e-2, noise_factor=None, tie_tol=1e-2,
                         rel_l2_cap=0.1, max_rel_l2=3e-2),
    ("int8", False): Rule("int8", False, atol=0.0, rtol=0.0, outside_share=None, noise_factor=None, tie_tol=1e-1,
                          max_rel_l2=0.1, min_top1=0.9),
}
TOLERANCES[("int8", True)] = TOLERANCES[("int8", False)]

PRECISIONS = ("fp32", "fp16", "int8")


def rule_for(precision: str, prequantized: bool = False) -> Rule:
    """The rule for a conversion at ``precision`` ("fp32", "fp16" or "int8"); ``prequantized``: the model
    quantizes activations itself (Q/DQ or fake-quant ops, repogen.verify.is_prequantized)."""
    try:
        return TOLERANCES[(precision, bool(prequantized))]
    except KeyError:
        raise ConfigError(f"precision {precision!r}: expected one of {', '.join(PRECISIONS)}") from None


def is_prequantized(graph: Any) -> bool:
    """Whether a model (repogen.ir.Graph) quantizes activations itself; observer-only pairs are identities and
    do not count."""
    return any(op.type.startswith(_QUANTIZE_OPS) and not op.attrs.get("only_observer")
               for block in graph.blocks for op in block.ops)


__all__ = ["Rule", "TOLERANCES", "PRECISIONS", "rule_for", "is_prequantized"]


# -- task-level rules: the answers a user sees (repogen.verify.tasks) ----------------------------------------------

@dataclass(frozen=True)
class TaskTolerance:
    box_px: float = 1.0  # OCR box corners, in source-image pixels (the boxes are whole pixels after rescaling)
    score: float = 1e-4  # box, class and detection scores (absolute; they are probabilities)
    text_score: float = 1e-4  # CTC text scores: the mean of the kept steps' maxima
    tie: float = 1e-5  # two candidates whose scores differ by at most tie x max|score| are a tie: either pick is right
    iou: float = 0.9  # a detection box matches one of the same label at least this IoU
    nms_iou: float = 0.4  # two unmatched boxes of one label that overlap this much can be an NMS tie
    nms_tie_share: float = 0.25  # at most this share of Paddle's boxes (at least one) may be NMS ties


# fp16 text scores get more room than box scores: on the official PP-OCRv4 recognizer one step's top probability
# moved by up to 0.2 under FP16 (the argmax kept), so a text's mean moved by up to 3.7e-2 (36 lines; median 2e-4)
# ``tie`` is the verification core's tie tolerance per precision (relative to the largest score among the
# candidates, as its index ties are), so a label counts as a tie here exactly when an index would there.
# int8: not measured at the task level (no calibrated trained model in the tests); ten times fp16's scores.
TASK_TOLERANCE = {"fp32": TaskTolerance(), "fp16": TaskTolerance(score=5e-3, text_score=5e-2, tie=1e-2),
                  "int8": TaskTolerance(score=5e-2, text_score=1e-1, tie=1e-1, iou=0.8)}


def task_tolerance(precision: str) -> TaskTolerance:
    if precision not in TASK_TOLERANCE:
        raise ConfigError(f"precision {precision!r}: task checks know {', '.join(TASK_TOLERANCE)}")
    return TASK_TOLERANCE[precision]
