"""Noise floors (repogen.verify.noise) and the NumPy backend's float64 execution they rest on.

* ``numpy_trt.execute(..., float64=True)`` computes every FLOAT tensor in float64: a matmul, a normalization
  and a constant equal NumPy's own float64 results to the last bit, while the float32 run does not;
* on a Paddle-saved zoo network the float64 run is as close to Paddle's fp32 outputs as fp32 allows, so it is
  the same function;
* a converter's mistake does not inflate the floor (the floor is the converted network's own rounding): the
  bias-sign mutation of the trained classifier keeps its floor within 3x of the unmutated one's, while its error
  against Paddle grows 10^4-fold.
"""

from __future__ import annotations

import numpy as np

import repogen.trt.numpy_trt as trt
from repogen.verify import compare, graph_noise_floors, noise_floors, rule_for
from repogen.verify.noise import distance


def _network():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(64, 32)).astype(np.float32)
    net = trt.Builder(trt.Logger()).create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    x = net.add_input("x", trt.float32, (-1, 64))
    wt = net.add_constant((64, 32), w).get_output(0)
    y = net.add_matrix_multiply(x, trt.MatrixOperation.NONE, wt, trt.MatrixOperation.NONE).get_output(0)
    scale = net.add_constant((1, 32), np.full((1, 32), 1.5, np.float32)).get_output(0)
    bias = net.add_constant((1, 32), np.full((1, 32), 0.25, np.float32)).get_output(0)
    norm = net.add_normalization(y, scale, bias, 1 << 1)
    norm.epsilon = 1e-5
    out = norm.get_output(0)
    out.name = "out"
    net.mark_output(out)
    y.name = "mm"
    net.mark_output(y)
    return net, w


def test_float64_execution_is_float64():
    net, w = _network()
    x = np.random.default_rng(1).normal(size=(4, 64)).astype(np.float32)
    f64 = trt.execute(net, {"x": x}, float64=True)
    f32 = trt.execute(net, {"x": x})
    mm = x.astype(np.float64) @ w.astype(np.float64)
    assert f64["mm"].dtype == np.float64 and f32["mm"].dtype == np.float32
    assert np.array_equal(f64["mm"], mm)  # computed in float64 from the same float32 weights
    assert not np.array_equal(f32["mm"].astype(np.float64), mm)
    mean = mm.mean(axis=1, keepdims=True)
    var = ((mm - mean) ** 2).mean(axis=1, keepdims=True)
    expect = (mm - mean) / np.sqrt(var + np.float64(np.float32(1e-5))) * 1.5 + 0.25
    assert np.allclose(f64["out"], expect, rtol=1e-14, atol=1e-14)
    # and the float32 storage is back afterwards
    assert trt.execute(net, {"x": x})["out"].dtype == np.float32


def test_float64_run_of_a_zoo_network_is_paddles_function():
    from tests.support import zoo
    from repogen.paddle import load_model
    from repogen.reference import reference_outputs
    from repogen.trt.passes import clean_graph

    path = zoo.get("convnet", "pir")
    feeds = zoo.sample_feeds("convnet")
    graph = clean_graph(load_model(path))
    floors = graph_noise_floors(graph, feeds)
    paddle = reference_outputs(path, feeds)
    assert set(floors) == set(graph.outputs)
    for name, want in zip(graph.outputs, paddle.values()):
        f = floors[name]
        assert 0 < f.rel_l2 < 1e-5, (name, f)  # float32 rounding, no more
        assert distance(want, f.float64)[0] < 1e-5  # Paddle fp32 is within fp32 noise of it too


def test_a_wrong_converter_does_not_inflate_the_floor():
    from tests.support.mutations import MUTATIONS, judge
    from tests.support.trained_models import official_exports

    model = official_exports()["cls"]
    feeds = {"x": np.random.default_rng(0).uniform(-1, 1, (2, 3, 48, 192)).astype(np.float32)}
    right = judge(model, feeds, "fp32").verdicts[0]
    wrong = judge(model, feeds, "fp32", MUTATIONS["bias_sign"]).verdicts[0]
    assert right.passed and not wrong.passed
    assert wrong.noise_rel_l2 < 3 * max(right.noise_rel_l2, 1e-7)
    assert wrong.rel_l2 > 1e4 * max(right.rel_l2, wrong.noise_rel_l2)
    # Paddle's own distance from the (wrong) float64 run is the mistake itself: why it cannot be the floor
    assert wrong.paddle_to_float64 > 1e3 * wrong.noise_rel_l2


def test_noise_floors_reuse_the_callers_fp32_run():
    net, _ = _network()
    x = np.random.default_rng(2).normal(size=(4, 64)).astype(np.float32)
    fp32 = trt.execute(net, {"x": x})
    given, computed = noise_floors(net, {"x": x}, fp32), noise_floors(net, {"x": x})
    assert set(given) == set(computed) == {"out", "mm"}
    assert all(given[k].rel_l2 == computed[k].rel_l2 > 0 for k in given)
    f64 = trt.execute(net, {"x": x}, float64=True)
    assert given["mm"].rel_l2 == distance(fp32["mm"], f64["mm"])[0]
    v = compare(fp32["out"], f64["out"].astype(np.float32), rule_for("fp32"), noise=given["out"])
    assert v.passed and v.noise_rel_l2 == given["out"].rel_l2
