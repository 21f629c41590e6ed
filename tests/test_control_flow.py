"""Control-flow zoo models (ifnet: `if` / conditional_block + select_input, whilenet: `while`) converted into
TensorRT conditionals and loops, compared with Paddle Inference on inputs that take each branch."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support import zoo
from repogen.paddle import load_model
from repogen.trt import numpy_trt
from tests.support.judging import judge
from repogen.trt.convert import convert_graph
from repogen.trt.profiles import make_profiles

FORMATS = ["pir", "paddle2"]


def _convert(model: str, fmt: str, precision: str = "fp32"):
    path = zoo.get(model, fmt)
    graph = load_model(path)
    profiles = make_profiles(graph.input_values(), min_shapes=["x:1x4"], max_shapes=["x:5x4"])
    return path, graph, convert_graph(graph, numpy_trt, precision=precision, profiles=profiles)


def _layer_types(network) -> set[str]:
    return {type(network.get_layer(i)).__name__ for i in range(network.num_layers)}


def _check(path, graph, conv, x: np.ndarray, tol: float) -> np.ndarray:
    got = numpy_trt.execute(conv.network, {"x": x})[conv.outputs[0][0]]  # 2.x whilenet fetches its feed var x
    ref = list(zoo.reference_outputs(path, {"x": x}).values())[0]
    r = judge(got, ref, "fp32" if tol <= 1e-5 else "fp16", graph.outputs[0])
    assert r.passed and got.shape == ref.shape, str(r)
    return ref


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_ifnet_takes_both_branches(fmt, precision):
    path, graph, conv = _convert("ifnet", fmt, precision)
    assert {"IConditionLayer", "IIfConditionalOutputLayer"} <= _layer_types(conv.network)
    tol = 1e-5 if precision == "fp32" else 1e-2
    base = np.abs(np.random.default_rng(0).standard_normal((3, 4))).astype(np.float32) + 0.1
    pos = _check(path, graph, conv, base, tol)
    neg = _check(path, graph, conv, -base[:2], tol)
    np.testing.assert_allclose(pos, base * 2.0, rtol=1e-6)       # mean > 0: x * 2
    np.testing.assert_allclose(neg, -base[:2] - 1.0, rtol=1e-6)  # otherwise: x - 1


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_whilenet_runs_the_loop(fmt, precision):
    path, graph, conv = _convert("whilenet", fmt, precision)
    assert {"ITripLimitLayer", "IRecurrenceLayer", "ILoopOutputLayer"} <= _layer_types(conv.network)
    tol = 1e-5 if precision == "fp32" else 1e-2
    for batch in (2, 5):
        x = np.random.default_rng(batch).standard_normal((batch, 4)).astype(np.float32)
        ref = _check(path, graph, conv, x, tol)
        np.testing.assert_allclose(ref, ((x * 2 + 1) * 2 + 1) * 2 + 1, rtol=1e-5)  # three trips of y*2+1


def test_repogen_check_passes_on_control_flow_models(capsys):
    from repogen.cli import main

    for model in ("ifnet", "whilenet"):
        for fmt in FORMATS:
            rc = main(["check", str(zoo.get(model, fmt)), "--shape", "x:2x4"])
            assert rc == 0, (model, fmt, capsys.readouterr())


def test_output_sharing_the_input_name_gets_its_own_engine_name():
    # legacy whilenet updates its feed variable x in place and fetches it: an engine's tensor names are
    # unique (TensorRT refuses the rename), so the output is x_out
    _, graph, conv = _convert("whilenet", "paddle2", "fp32")
    assert graph.inputs == ["x"] and graph.outputs == ["x"]
    assert [n for n, _, _ in conv.inputs] == ["x"] and [n for n, _, _ in conv.outputs] == ["x_out"]
    with pytest.raises(numpy_trt.NetworkError, match="already in use"):
        conv.network.get_output(0).name = "x"
