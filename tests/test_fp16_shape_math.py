"""FP16 policy for dimension arithmetic (docs/precision.md): values computed from a tensor's shape stay FLOAT
under --fp16 (repogen.trt.precision.shape_fp32_ops).

HALF holds integers exactly only up to 2048: a width of 1024 turned into the scale 2 * 1024 + 1 = 2049 reads
2048 in HALF, 6001 reads 6000. The same check with the rule off must fail. A builder also refused the HALF
form: TensorRT-RTX 1.7's FP16 build of an interpolation whose scale is ``paddle.shape(y).astype("float32")``
failed inside Myelin (a HALF cast of the shape meeting FLOAT coordinate math); with the rule it builds
(docs/gpu-validation.md, 2026-12-02).
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.opcases import Case, Inp, saved_programs

B = -1
CASES = {"dims_to_float": Case((Inp("x", (B, B)),), ({"x": (1, 1024)}, {"x": (2, 3000)}))}


def build_cases(mode: str) -> dict:
    import paddle

    def dims_to_float(x):
        s = paddle.shape(x).astype("float32")
        return s * 2.0 + 1.0, x * 0.5

    return {"dims_to_float": dims_to_float}


@pytest.fixture(scope="module")
def programs():
    return saved_programs(__file__, "fp16_shape_math", modes=("pir", "legacy"))


def _worst(model) -> float:
    from repogen.paddle import load_model
    from repogen.trt import numpy_trt
    from repogen.trt.convert import convert_graph
    from repogen.trt.profiles import make_profiles
    from tests.support.zoo import reference_outputs

    graph = load_model(model)
    profiles = make_profiles(graph.input_values(), min_shapes=["x:1x1"], max_shapes=["x:4x4096"])
    conv = convert_graph(graph, numpy_trt, precision="fp16", profiles=profiles)
    worst = 0.0
    for shape in ((1, 1024), (2, 3000)):
        feed = {"x": np.ones(shape, np.float32)}
        got = numpy_trt.execute(conv.network, feed)[conv.outputs[0][0]]
        want = list(reference_outputs(model, feed).values())[0]
        assert want.tolist() == [2 * shape[0] + 1, 2 * shape[1] + 1]
        worst = max(worst, float(np.max(np.abs(got.astype(np.float64) - want))))
    return worst


@pytest.mark.parametrize("mode", ["pir", "legacy"])
def test_fp16_keeps_dimension_arithmetic_exact(programs, mode):
    assert _worst(programs[mode] / "dims_to_float") == 0.0


def test_half_dimension_arithmetic_would_round(programs, monkeypatch):
    import repogen.trt.context as context

    monkeypatch.setattr(context, "shape_fp32_ops", lambda graph: set())
    assert _worst(programs["pir"] / "dims_to_float") >= 1.0  # 2049 -> 2048, 6001 -> 6000


def test_rule_marks_only_dimension_math(programs):
    from repogen.paddle import load_model
    from repogen.trt.passes import clean_graph
    from repogen.trt.precision import shape_fp32_ops

    g = clean_graph(load_model(programs["pir"] / "dims_to_float"))
    kept = [op for op in g.ops if id(op) in shape_fp32_ops(g)]
    assert {op.type for op in kept} >= {"cast"}
    assert all("x" not in op.input_names() for op in kept), "an op reading the activation must stay HALF"
