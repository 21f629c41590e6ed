"""Converter machinery: profiles, registry, clean-up passes, FP16 typing, dynamic shapes never baked in."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.support import zoo
from repogen.errors import ConfigError, UnsupportedOpError
from repogen.ir import Value
from repogen.paddle import load_model
from repogen.trt import numpy_trt
from repogen.trt.convert import convert_graph, find_unsupported
from repogen.trt.passes import clean_graph
from repogen.trt.profiles import make_profiles
from repogen.trt.registry import has_converter, supported_op_names


def _img(shape=(-1, 3, -1, -1)):
    return [Value("x", "float32", shape)]


def test_profiles_defaults_and_errors():
    (p,) = make_profiles([Value("x", "float32", (-1, 3, 32, 32))])
    assert p.shapes["x"] == ((1, 3, 32, 32), (8, 3, 32, 32), (8, 3, 32, 32))
    with pytest.raises(ConfigError, match="dim 2 is dynamic"):
        make_profiles(_img())
    (p,) = make_profiles(_img(), shape=["x:2x3x64x48"])
    assert p.shapes["x"] == ((2, 3, 64, 48),) * 3
    with pytest.raises(ConfigError, match="fixed at 3"):
        make_profiles(_img(), shape=["x:1x4x8x8"])
    with pytest.raises(ConfigError, match="not a model input"):
        make_profiles(_img(), shape=["y:1x3x8x8"])


def test_profiles_several():
    profs = make_profiles(_img(), min_shapes=["x:1x3x32x32", "x:1x3x128x128"],
                          opt_shapes=["x:4x3x64x64", "x:2x3x256x256"], max_shapes=["x:8x3x64x64", "x:4x3x512x512"],
                          max_batch=16)
    assert [p.shapes["x"] for p in profs] == [((1, 3, 32, 32), (4, 3, 64, 64), (8, 3, 64, 64)),
                                               ((1, 3, 128, 128), (2, 3, 256, 256), (4, 3, 512, 512))]
    with pytest.raises(ConfigError, match="min <= opt <= max"):
        make_profiles(_img(), min_shapes=["x:1x3x64x64"], max_shapes=["x:8x3x32x32"])
    with pytest.raises(ConfigError, match="given 1 times but 2"):
        make_profiles(_img(), min_shapes=["x:1x3x8x8", "x:1x3x9x9"], max_shapes=["x:2x3x8x8"])


def test_registry_spellings():
    names = supported_op_names()
    for n in ("conv2d", "pd_op.conv2d", "elementwise_add", "add", "pd_op.add", "reshape2", "matmul_v2",
              "flatten_contiguous_range", "nearest_interp_v2", "lookup_table_v2", "fill_constant_batch_size_like"):
        assert n in names and has_converter(n), n
    assert not has_converter("sequence_conv")
    # every Tier 1 op in the readers' vocabulary has a converter
    from repogen.paddle import opdefs
    assert [t for t, d in opdefs.OPS.items() if d.tier == 1 and not has_converter(t)] == []


def test_ops_command_json(capsys):
    from repogen.cli import main
    assert main(["ops", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert "elementwise_mul" in out["ops"] and "pd_op.multiply" in out["ops"] and out["count"] == len(out["ops"])


@pytest.mark.parametrize("fmt", ["pir", "paddle2"])
def test_clean_folds_batch_norm_and_dropout(fmt):
    g = load_model(zoo.get("resnet18", fmt))
    assert sum(op.type == "batch_norm" for op in g.ops) > 0
    cleaned = clean_graph(g)
    assert not any(op.type == "batch_norm" for op in cleaned.ops)
    assert any(op.type == "batch_norm" for op in g.ops)  # the reader's graph is untouched
    t = clean_graph(load_model(zoo.get("tensors", "paddle2")))
    assert not any(op.type == "dropout" for op in t.ops)


def test_unsupported_ops_listed():
    from repogen.ir import Block, Graph, ModelSource, Op

    values = {n: Value(n, "float32", (-1, 4)) for n in ("x", "a", "b", "c")}
    ops = [Op("relu", "relu", {"x": ["x"]}, {"out": ["a"]}),
           Op("sequence_pool", "sequence_pool", {"x": ["a"]}, {"out": ["b"]}),  # LoD: never expressible
           Op("relu", "relu", {"x": ["b"]}, {"out": ["c"]})]
    g = Graph(ModelSource("pir", "m.json", None), [Block(0, -1, ops, values)], ["x"], ["c"], {})
    assert find_unsupported(g) == [(1, "sequence_pool", ["b"])]
    with pytest.raises(UnsupportedOpError, match="#1 sequence_pool -> b"):
        convert_graph(g, numpy_trt, profiles=make_profiles(g.input_values()))


@pytest.mark.parametrize("fmt", ["pir", "paddle2"])
def test_dynamic_shapes_not_baked_in(fmt):
    """One network, run at two batch sizes and two spatial sizes, matches Paddle at both."""
    path = zoo.get("mobilenet_v3_small", fmt)
    g = load_model(path)
    conv = convert_graph(g, numpy_trt, profiles=make_profiles(g.input_values(), min_shapes=["x:1x3x32x32"],
                                                              max_shapes=["x:8x3x64x64"]))
    assert conv.inputs[0][2] == (-1, 3, -1, -1)
    for i, shape in enumerate([(1, 3, 32, 32), (3, 3, 48, 40)]):
        x = np.random.default_rng(i).uniform(-1, 1, shape).astype("float32")
        got = numpy_trt.execute(conv.network, {"x": x})[g.outputs[0]]
        ref = list(zoo.reference_outputs(path, {"x": x}).values())[0]
        assert got.shape == ref.shape
        assert np.linalg.norm(got - ref) / np.linalg.norm(ref) <= 1e-5


def test_fp16_network_types():
    g = load_model(zoo.get("transformer", "pir"))
    conv = convert_graph(g, numpy_trt, precision="fp16",
                         profiles=make_profiles(g.input_values(), shape=["x:2x5x32"]))
    T = numpy_trt.DataType
    # I/O keep the model's dtype; inside, weights are HALF and shape tensors stay integer
    assert conv.inputs[0][1] == T.FLOAT and conv.outputs[0][1] == T.FLOAT
    kinds = {layer.type.name: set() for layer in conv.network}
    for layer in conv.network:
        for i in range(layer.num_outputs):
            kinds[layer.type.name].add(layer.get_output(i).dtype)
    assert T.HALF in kinds["MATRIX_MULTIPLY"] and T.FLOAT not in kinds["MATRIX_MULTIPLY"]
    assert kinds.get("SHAPE", set()) <= {T.INT64, T.INT32}
    assert T.FLOAT in kinds.get("REDUCE", set())  # layer_norm statistics computed in FP32


def test_clean_folds_static_shape_arithmetic():
    from repogen.ir import Block, Graph, ModelSource, Op

    values = {"x": Value("x", "float32", (2, 3, 4)), "w": Value("w", "float32", (12,)),
              "s": Value("s", "int64", (3,)), "s1": Value("s1", "int64", (2,)),
              "y": Value("y", "float32", (3, 4)), "z": Value("z", "float32", (3, 4))}
    ops = [Op("shape64", "shape64", {"input": ["x"]}, {"out": ["s"]}),
           Op("slice", "slice", {"input": ["s"]}, {"out": ["s1"]},
              {"axes": [0], "starts": [1], "ends": [3], "decrease_axis": []}),
           Op("reshape", "reshape", {"x": ["w"], "shape": ["s1"]}, {"out": ["y"]}),  # w.reshape(x.shape[1:3])
           Op("relu", "relu", {"x": ["y"]}, {"out": ["z"]})]
    g = Graph(ModelSource("pir", "m.json", None), [Block(0, -1, ops, values)], ["x", "w"], ["z"], {})
    cleaned = clean_graph(g)
    # x's shape is static, so the reshape target [3, 4] becomes a constant and the shape ops disappear
    assert [op.type for op in cleaned.ops] == ["reshape", "relu"]
    assert list(cleaned.value("s1").const) == [3, 4]
    assert g.value("s1").const is None  # the reader's graph is untouched
    conv = convert_graph(cleaned, numpy_trt, profiles=make_profiles(cleaned.input_values()), clean=False)
    w = np.arange(-6, 6, dtype="float32")
    out = numpy_trt.execute(conv.network, {"x": np.zeros((2, 3, 4), "float32"), "w": w})["z"]
    np.testing.assert_array_equal(out, np.maximum(w, 0).reshape(3, 4))


def test_clean_folds_conv_bias_add():
    from test_ops import ensure_saved

    g = load_model(ensure_saved(__import__("test_ops").__file__, "test_ops")["pir"] / "conv2d_groups_bias")
    assert [op.type for op in g.ops].count("add") == 1
    cleaned = clean_graph(g)
    assert [op.type for op in cleaned.ops] == ["conv2d"] and cleaned.ops[0].input("bias") is not None
