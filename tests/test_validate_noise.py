"""validate judges a served fp32 output the way check judges a conversion: within the elementwise bound, or
within 20x the network's own float32 rounding noise (issue 23). A served Paddle (paddle target) or plan differs
from the reference Paddle by its own rounding: on the trained text detector's near-empty DB map that difference
lies above the elementwise bound (1e-5 of the map's largest value) and passed only once the harness gave the
comparison the network's noise floor. A difference far above the floor still fails."""

from __future__ import annotations

import numpy as np

from repogen.harness.validate import compare_output
from repogen.paddle import load_model
from repogen.paddle.loader import detect
from repogen.reference.predictor import paddle_outputs
from repogen.trt import numpy_trt
from repogen.trt.convert import convert_graph
from repogen.trt.passes import clean_graph
from repogen.trt.profiles import Profile
from repogen.verify import rule_for
from repogen.verify.ties import TieScorer
from tests.support import trained_models


def test_a_served_output_within_the_noise_floor_passes_and_one_far_above_fails():
    source = detect(trained_models.official_exports()["det"])
    graph = load_model(source.model_file, source.params_file)
    name_in, name_out = graph.inputs[0], graph.outputs[0]
    feeds = {name_in: np.random.default_rng(0).uniform(-1, 1, (1, 3, 96, 128)).astype(np.float32)}
    want = paddle_outputs(source, feeds)
    want = want.get(name_out, next(iter(want.values())))
    # our own float32 run and the float64 run the floor is measured from: their difference is rounding alone
    conv = convert_graph(clean_graph(graph), numpy_trt, precision="fp32",
                         profiles=[Profile({name_in: ((1, 3, 96, 128),) * 3})], clean=False)
    ours32 = numpy_trt.execute(conv.network, feeds)[conv.outputs[0][0]]
    floor = TieScorer(source, {name_in: name_in}, {name_out: name_out}).floor(name_out, feeds)
    assert floor is not None and floor.rel_l2 > 0
    rounding = ours32.astype(np.float64) - floor.float64
    rule = rule_for("fp32", False)

    near = (want + 10 * rounding).astype(np.float32)  # a served engine rounding 10x worse than our float32 run
    alone = compare_output("grpc", "random", name_out, near, want, rule)
    assert not alone.ok, "the elementwise bound alone should reject this near-empty map's rounding"
    assert compare_output("grpc", "random", name_out, near, want, rule, noise=floor).ok

    far = (want + 200 * rounding).astype(np.float32)  # 10x beyond the allowance
    check = compare_output("grpc", "random", name_out, far, want, rule, noise=floor)
    assert not check.ok, check
