"""NumPy TensorRT backend: core layers, checked against TensorRT's documented semantics and Paddle."""

from __future__ import annotations

import numpy as np
import pytest

import repogen.trt.numpy_trt as trt
from repogen.errors import ConversionError

RNG = np.random.default_rng(0)


def new_net() -> trt.INetworkDefinition:
    builder = trt.Builder(trt.Logger(trt.Logger.WARNING))
    return builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))


def run1(net, feeds, tensor) -> np.ndarray:
    tensor.name = "out"
    net.mark_output(tensor)
    return trt.execute(net, feeds)["out"]


def const(net, a: np.ndarray):
    return net.add_constant(a.shape, a).get_output(0)


def rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a.astype(np.float64) - b) / max(np.linalg.norm(b.astype(np.float64)), 1e-30))


# ------------------------------------------------------------ api surface


def test_datatype_aliases_and_nptype():
    assert trt.float32 == trt.DataType.FLOAT and trt.float16 == trt.DataType.HALF
    assert trt.int64 == trt.DataType.INT64 and trt.bool == trt.DataType.BOOL
    assert trt.nptype(trt.float16) is np.float16 and trt.nptype(trt.int32) is np.int32
    assert str(trt.DataType.FLOAT) == "DataType.FLOAT"


def test_network_bookkeeping_and_default_names():
    net = new_net()
    x = net.add_input("x", trt.float32, (-1, 4))
    assert x.shape == (-1, 4) and x.dtype == trt.float32 and x.is_network_input
    layer = net.add_unary(x, trt.UnaryOperation.EXP)
    assert layer.type == trt.LayerType.UNARY and layer.num_outputs == 1
    assert layer.name == "(Unnamed Layer* 0) [Unary]"
    out = layer.get_output(0)
    net.mark_output(out)
    assert net.num_layers == 1 and net.num_inputs == 1 and net.num_outputs == 1
    assert net.get_layer(0) is layer and net.get_input(0) is x and net.get_output(0) is out
    net.unmark_output(out)
    assert net.num_outputs == 0


def test_build_serialized_network_says_no_engine():
    builder = trt.Builder(trt.Logger())
    net = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    profile = builder.create_optimization_profile()
    profile.set_shape("x", (1, 3), (2, 3), (4, 3))
    config = builder.create_builder_config()
    assert config.add_optimization_profile(profile) == 0
    with pytest.raises(trt.NoEngineError, match="builds no TensorRT engines"):
        builder.build_serialized_network(net, config)


def test_errors_are_conversion_and_value_errors():
    net = new_net()
    a = net.add_input("a", trt.float32, (2, 3))
    b = net.add_input("b", trt.float32, (3,))
    with pytest.raises(ConversionError) as err:
        net.add_elementwise(a, b, trt.ElementWiseOperation.SUM)
    assert isinstance(err.value, ValueError)
    assert "ElementWise" in str(err.value) and "rank" in str(err.value)
    assert net.num_layers == 0  # the rejected layer is not kept


# ------------------------------------------------------------ elementwise / types


def test_elementwise_broadcast_only_where_dim_is_one():
    net = new_net()
    a = net.add_input("a", trt.float32, (2, 1, 4))
    b = net.add_input("b", trt.float32, (1, 3, 4))
    y = net.add_elementwise(a, b, trt.ElementWiseOperation.SUB).get_output(0)
    assert y.shape == (2, 3, 4)
    av, bv = RNG.random((2, 1, 4), np.float32), RNG.random((1, 3, 4), np.float32)
    np.testing.assert_array_equal(run1(net, {"a": av, "b": bv}, y), av - bv)
    net2 = new_net()
    c = net2.add_input("c", trt.float32, (2, 3))
    d = net2.add_input("d", trt.float32, (2, 4))
    with pytest.raises(trt.NetworkError, match="broadcast"):
        net2.add_elementwise(c, d, trt.ElementWiseOperation.SUM)


def test_elementwise_mixed_types_rejected_strongly_typed():
    net = new_net()
    a = net.add_input("a", trt.float32, (2,))
    b = net.add_input("b", trt.float16, (2,))
    with pytest.raises(trt.NetworkError, match="different types.*add_cast"):
        net.add_elementwise(a, b, trt.ElementWiseOperation.PROD)


def test_elementwise_comparison_outputs_bool_and_logic_needs_bool():
    net = new_net()
    a = net.add_input("a", trt.int32, (4,))
    b = net.add_input("b", trt.int32, (4,))
    gt = net.add_elementwise(a, b, trt.ElementWiseOperation.GREATER).get_output(0)
    assert gt.dtype == trt.bool
    with pytest.raises(trt.NetworkError, match="AND"):
        net.add_elementwise(a, b, trt.ElementWiseOperation.AND)
    out = run1(net, {"a": np.array([1, 5, 3, 0], np.int32), "b": np.array([2, 4, 3, -1], np.int32)}, gt)
    np.testing.assert_array_equal(out, [False, True, False, True])


def test_integer_div_truncates_and_floor_div_floors():
    net = new_net()
    a = net.add_input("a", trt.int32, (4,))
    b = net.add_input("b", trt.int32, (4,))
    div = net.add_elementwise(a, b, trt.ElementWiseOperation.DIV).get_output(0)
    fdiv = net.add_elementwise(a, b, trt.ElementWiseOperation.FLOOR_DIV).get_output(0)
    div.name, fdiv.name = "div", "fdiv"
    net.mark_output(div)
    net.mark_output(fdiv)
    out = trt.execute(net, {"a": np.array([7, -7, 7, -7], np.int32), "b": np.array([2, 2, -2, -2], np.int32)})
    np.testing.assert_array_equal(out["div"], [3, -3, -3, 3])
    np.testing.assert_array_equal(out["fdiv"], [3, -4, -4, 3])


def test_fp16_elementwise_computes_in_half():
    net = new_net()
    a = net.add_input("a", trt.float16, (1,))
    y = net.add_elementwise(a, a, trt.ElementWiseOperation.SUM).get_output(0)
    assert y.dtype == trt.float16
    out = run1(net, {"a": np.array([65504.0], np.float16)}, y)
    assert out.dtype == np.float16 and np.isinf(out[0])  # overflows as half storage does


def test_cast_float_to_int_truncates():
    net = new_net()
    x = net.add_input("x", trt.float32, (4,))
    y = net.add_cast(x, trt.int32).get_output(0)
    assert y.dtype == trt.int32
    out = run1(net, {"x": np.array([1.2, 5.6, -2.7, 9.99], np.float32)}, y)
    np.testing.assert_array_equal(out, [1, 5, -2, 9])


def test_unary_round_half_to_even_and_types():
    net = new_net()
    x = net.add_input("x", trt.float32, (6,))
    y = net.add_unary(x, trt.UnaryOperation.ROUND).get_output(0)
    out = run1(net, {"x": np.array([0.5, 1.5, 2.5, -0.5, -1.5, 2.4], np.float32)}, y)
    np.testing.assert_array_equal(out, [0, 2, 2, 0, -2, 2])
    i = net.add_input("i", trt.int32, (2,))
    with pytest.raises(trt.NetworkError, match="EXP"):
        net.add_unary(i, trt.UnaryOperation.EXP)
    isnan = net.add_unary(x, trt.UnaryOperation.ISNAN).get_output(0)
    assert isnan.dtype == trt.bool


def test_activations_match_paddle():
    import paddle
    import paddle.nn.functional as F

    xv = RNG.standard_normal((3, 17)).astype(np.float32) * 3
    cases = [
        (trt.ActivationType.RELU, 0, 0, F.relu),
        (trt.ActivationType.SIGMOID, 0, 0, F.sigmoid),
        (trt.ActivationType.LEAKY_RELU, 0.1, 0, lambda t: F.leaky_relu(t, 0.1)),
        (trt.ActivationType.ELU, 0.7, 0, lambda t: F.elu(t, 0.7)),
        (trt.ActivationType.SELU, 1.6732632, 1.0507010, F.selu),
        (trt.ActivationType.SOFTPLUS, 1, 1, F.softplus),
        (trt.ActivationType.CLIP, -1, 2, lambda t: paddle.clip(t, -1, 2)),
        (trt.ActivationType.HARD_SIGMOID, 1 / 6, 0.5, F.hardsigmoid),
        (trt.ActivationType.GELU_ERF, 0, 0, F.gelu),
        (trt.ActivationType.GELU_TANH, 0, 0, lambda t: F.gelu(t, approximate=True)),
        (trt.ActivationType.SOFTSIGN, 0, 0, F.softsign),
        (trt.ActivationType.THRESHOLDED_RELU, 1.0, 0, lambda t: F.thresholded_relu(t, 1.0)),
    ]
    for kind, alpha, beta, ref in cases:
        net = new_net()
        x = net.add_input("x", trt.float32, xv.shape)
        layer = net.add_activation(x, kind)
        layer.alpha, layer.beta = alpha, beta
        out = run1(net, {"x": xv}, layer.get_output(0))
        expect = ref(paddle.to_tensor(xv)).numpy()
        assert rel(out, expect) <= 1e-5, kind


# ------------------------------------------------------------ shuffle / reduce / softmax / concat


def test_shuffle_transposes_and_zero_placeholder():
    net = new_net()
    x = net.add_input("x", trt.float32, (2, 3, 4))
    s = net.add_shuffle(x)
    s.first_transpose = (2, 0, 1)  # -> (4, 2, 3)
    s.reshape_dims = (0, -1)  # 0 copies dim 0 of the transposed tensor: (4, 6)
    s.second_transpose = (1, 0)  # -> (6, 4)
    assert s.get_output(0).shape == (6, 4)
    xv = RNG.random((2, 3, 4), np.float32)
    out = run1(net, {"x": xv}, s.get_output(0))
    np.testing.assert_array_equal(out, xv.transpose(2, 0, 1).reshape(4, 6).T)


def test_shuffle_zero_is_literal_when_not_placeholder():
    net = new_net()
    x = net.add_input("x", trt.float32, (0, 3))
    s = net.add_shuffle(x)
    s.zero_is_placeholder = False
    s.reshape_dims = (3, 0)
    assert s.get_output(0).shape == (3, 0)
    net2 = new_net()
    y = net2.add_input("y", trt.float32, (2, 3))
    s2 = net2.add_shuffle(y)
    with pytest.raises(trt.NetworkError, match="volume"):
        s2.reshape_dims = (4, 2)
        _ = s2.get_output(0).shape


def test_dynamic_reshape_with_shape_tensor():
    net = new_net()
    x = net.add_input("x", trt.float32, (-1, 3, 4))
    shape = net.add_shape(x).get_output(0)
    assert shape.dtype == trt.int64 and shape.shape == (3,)
    first = net.add_slice(shape, (0,), (1,), (1,)).get_output(0)
    minus1 = const(net, np.array([-1], np.int64))
    target = net.add_concatenation([first, minus1])
    target.axis = 0
    s = net.add_shuffle(x)
    s.set_input(1, target.get_output(0))
    assert s.get_output(0).shape == (-1, -1) and len(s.get_output(0).shape) == 2
    xv = RNG.random((5, 3, 4), np.float32)
    out = run1(net, {"x": xv}, s.get_output(0))
    np.testing.assert_array_equal(out, xv.reshape(5, 12))
    assert trt.infer_shapes(net, {"x": (7, 3, 4)}) == {"out": (7, 12)}


def test_shape_arithmetic_is_known_at_build_time_when_static():
    net = new_net()
    x = net.add_input("x", trt.float32, (2, 3, 4))
    shape = net.add_shape(x).get_output(0)
    two = const(net, np.array([2], np.int64))
    tail = net.add_slice(shape, (1,), (2,), (1,)).get_output(0)
    prod = net.add_reduce(tail, trt.ReduceOperation.PROD, 1, True).get_output(0)
    half = net.add_elementwise(prod, two, trt.ElementWiseOperation.DIV).get_output(0)
    target = net.add_concatenation([two, half, net.add_slice(shape, (0,), (1,), (1,)).get_output(0)])
    s = net.add_shuffle(x)
    s.set_input(1, target.get_output(0))
    assert s.get_output(0).shape == (2, 6, 2)


def test_reduce_bitmask_and_keep_dims():
    net = new_net()
    x = net.add_input("x", trt.float32, (2, 3, 4, 5))
    keep = net.add_reduce(x, trt.ReduceOperation.AVG, 0b1010, True).get_output(0)
    drop = net.add_reduce(x, trt.ReduceOperation.MAX, 0b0101, False).get_output(0)
    assert keep.shape == (2, 1, 4, 1) and drop.shape == (3, 5)
    keep.name, drop.name = "keep", "drop"
    net.mark_output(keep)
    net.mark_output(drop)
    xv = RNG.random((2, 3, 4, 5), np.float32)
    out = trt.execute(net, {"x": xv})
    np.testing.assert_allclose(out["keep"], xv.mean(axis=(1, 3), keepdims=True), rtol=1e-6)
    np.testing.assert_array_equal(out["drop"], xv.max(axis=(0, 2)))
    with pytest.raises(trt.NetworkError, match="beyond rank"):
        net.add_reduce(x, trt.ReduceOperation.SUM, 1 << 4, True)


def test_softmax_default_axis_is_rank_minus_three():
    net = new_net()
    x = net.add_input("x", trt.float32, (2, 3, 4, 5))
    sm = net.add_softmax(x)
    assert sm.axes == 1 << 1
    xv = RNG.standard_normal((2, 3, 4, 5)).astype(np.float32)
    out = run1(net, {"x": xv}, sm.get_output(0))
    e = np.exp(xv - xv.max(axis=1, keepdims=True))
    np.testing.assert_allclose(out, e / e.sum(axis=1, keepdims=True), rtol=1e-5)
    net2 = new_net()
    assert net2.add_softmax(net2.add_input("v", trt.float32, (7, 3))).axes == 1


def test_concat_default_axis_and_mismatch():
    net = new_net()
    a = net.add_input("a", trt.float32, (2, 3, 4, 4))
    b = net.add_input("b", trt.float32, (2, 5, 4, 4))
    c = net.add_concatenation([a, b])
    assert c.axis == 1 and c.get_output(0).shape == (2, 8, 4, 4)
    d = net.add_input("d", trt.float32, (2, 5, 4, 3))
    bad = net.add_concatenation([a, d])  # refused at the next inference: setting axis could still fix it
    with pytest.raises(trt.NetworkError, match="differ outside"):
        bad.get_output(0).shape


def test_topk_values_and_int32_indices():
    net = new_net()
    x = net.add_input("x", trt.float32, (2, 6))
    tk = net.add_topk(x, trt.TopKOperation.MAX, 3, 1 << 1)
    v, i = tk.get_output(0), tk.get_output(1)
    assert v.shape == (2, 3) and i.dtype == trt.int32
    v.name, i.name = "v", "i"
    net.mark_output(v)
    net.mark_output(i)
    xv = np.array([[1, 9, 3, 9, 0, 5], [6, 5, 4, 3, 2, 1]], np.float32)
    out = trt.execute(net, {"x": xv})
    np.testing.assert_array_equal(out["v"], [[9, 9, 5], [6, 5, 4]])
    np.testing.assert_array_equal(out["i"], [[1, 3, 5], [0, 1, 2]])
    # argmin as a converter writes it: TopK MIN with k=1
    am = net.add_topk(x, trt.TopKOperation.MIN, 1, 1 << 1).get_output(1)
    am.name = "am"
    net.mark_output(am)
    np.testing.assert_array_equal(trt.execute(net, {"x": xv})["am"], [[4], [5]])


# ------------------------------------------------------------ slice / gather


def test_slice_strict_bounds_and_negative_stride():
    net = new_net()
    x = net.add_input("x", trt.float32, (5, 4))
    s = net.add_slice(x, (4, 1), (3, 2), (-2, 2))
    xv = RNG.random((5, 4), np.float32)
    out = run1(net, {"x": xv}, s.get_output(0))
    np.testing.assert_array_equal(out, xv[4::-2, 1::2])
    bad = net.add_slice(x, (3, 0), (3, 4), (1, 1)).get_output(0)
    bad.name = "bad"
    net.mark_output(bad)
    with pytest.raises(trt.ExecutionError, match="STRICT_BOUNDS"):
        trt.execute(net, {"x": xv})


@pytest.mark.parametrize(
    "mode,expect",
    [
        (trt.SampleMode.WRAP, [3, 4, 0, 1, 2, 3, 4, 0]),
        (trt.SampleMode.CLAMP, [0, 0, 0, 1, 2, 3, 4, 4]),
        (trt.SampleMode.FILL, [-9, -9, 0, 1, 2, 3, 4, -9]),
        (trt.SampleMode.REFLECT, [2, 1, 0, 1, 2, 3, 4, 3]),
    ],
)
def test_slice_sample_modes(mode, expect):
    net = new_net()
    x = net.add_input("x", trt.int32, (5,))
    s = net.add_slice(x, (-2,), (8,), (1,))
    s.mode = mode
    if mode == trt.SampleMode.FILL:
        s.set_input(4, const(net, np.array(-9, np.int32)))
    out = run1(net, {"x": np.arange(5, dtype=np.int32)}, s.get_output(0))
    np.testing.assert_array_equal(out, expect)


def test_gather_modes():
    data = RNG.random((3, 4, 5), np.float32)
    net = new_net()
    x = net.add_input("x", trt.float32, data.shape)
    idx = const(net, np.array([[2, 0], [1, -1]], np.int32))
    g = net.add_gather(x, idx, 1).get_output(0)
    assert g.shape == (3, 2, 2, 5)
    np.testing.assert_array_equal(run1(net, {"x": data}, g), np.take(data, [[2, 0], [1, 3]], axis=1))

    net = new_net()
    x = net.add_input("x", trt.float32, data.shape)
    ind = RNG.integers(0, 4, (3, 2, 5)).astype(np.int64)
    layer = net.add_gather_v2(x, const(net, ind), trt.GatherMode.ELEMENT)
    layer.axis = 1
    np.testing.assert_array_equal(run1(net, {"x": data}, layer.get_output(0)), np.take_along_axis(data, ind, 1))

    net = new_net()
    x = net.add_input("x", trt.float32, data.shape)
    ind = np.array([[[1], [3]], [[0], [2]], [[3], [3]]], np.int32)  # batch 3, 2 lookups of depth 1
    layer = net.add_gather_v2(x, const(net, ind), trt.GatherMode.ND)
    layer.num_elementwise_dims = 1
    out = run1(net, {"x": data}, layer.get_output(0))
    expect = np.stack([data[b][ind[b, :, 0]] for b in range(3)])
    assert layer.get_output(0).shape == (3, 2, 5)
    np.testing.assert_array_equal(out, expect)


# ------------------------------------------------------------ matmul


def test_matrix_multiply_ops_and_batch_broadcast():
    a = RNG.random((2, 1, 3, 4), np.float32)
    b = RNG.random((1, 5, 3, 6), np.float32)
    net = new_net()
    x = net.add_input("a", trt.float32, a.shape)
    y = net.add_input("b", trt.float32, b.shape)
    mm = net.add_matrix_multiply(x, trt.MatrixOperation.TRANSPOSE, y, trt.MatrixOperation.NONE).get_output(0)
    assert mm.shape == (2, 5, 4, 6)
    np.testing.assert_allclose(run1(net, {"a": a, "b": b}, mm), np.swapaxes(a, -1, -2) @ b, rtol=1e-5)

    net = new_net()
    m = net.add_input("m", trt.float32, (3, 4))
    v = net.add_input("v", trt.float32, (4,))
    mv = net.add_matrix_multiply(m, trt.MatrixOperation.NONE, v, trt.MatrixOperation.VECTOR).get_output(0)
    assert mv.shape == (3,)
    mvals, vvals = RNG.random((3, 4), np.float32), RNG.random(4, np.float32)
    np.testing.assert_allclose(run1(net, {"m": mvals, "v": vvals}, mv), mvals @ vvals, rtol=1e-5)

    net = new_net()
    p = net.add_input("p", trt.float32, (2, 3, 4))
    q = net.add_input("q", trt.float32, (4, 5))
    with pytest.raises(trt.NetworkError, match="ranks"):
        net.add_matrix_multiply(p, trt.MatrixOperation.NONE, q, trt.MatrixOperation.NONE)
    r = net.add_input("r", trt.float16, (2, 4, 5))
    with pytest.raises(trt.NetworkError, match="different types"):
        net.add_matrix_multiply(p, trt.MatrixOperation.NONE, r, trt.MatrixOperation.NONE)


# ------------------------------------------------------------ conv / pool


def conv_reference(x, w, b, stride, pre, post, dil, groups):
    """Direct loops, no tricks: the definition of a grouped, dilated correlation."""
    n, c, h, wd = x.shape
    k, cg, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pre[0], post[0]), (pre[1], post[1])))
    oh = (xp.shape[2] - (dil[0] * (kh - 1) + 1)) // stride[0] + 1
    ow = (xp.shape[3] - (dil[1] * (kw - 1) + 1)) // stride[1] + 1
    out = np.zeros((n, k, oh, ow), np.float64)
    kg = k // groups
    for o in range(k):
        g = o // kg
        for i in range(oh):
            for j in range(ow):
                patch = xp[:, g * cg:(g + 1) * cg, i * stride[0]:i * stride[0] + dil[0] * (kh - 1) + 1:dil[0],
                           j * stride[1]:j * stride[1] + dil[1] * (kw - 1) + 1:dil[1]]
                out[:, o, i, j] = (patch * w[o]).sum(axis=(1, 2, 3)) + b[o]
    return out


@pytest.mark.parametrize("groups,stride,dil,pre,post", [(1, (1, 1), (1, 1), (1, 1), (1, 1)),
                                                        (2, (2, 1), (1, 2), (0, 1), (2, 0)),
                                                        (4, (2, 2), (2, 1), (1, 0), (1, 1))])
def test_convolution_against_direct_loops(groups, stride, dil, pre, post):
    x = RNG.standard_normal((2, 4, 7, 6)).astype(np.float32)
    w = RNG.standard_normal((8, 4 // groups, 3, 2)).astype(np.float32)
    b = RNG.standard_normal(8).astype(np.float32)
    net = new_net()
    t = net.add_input("x", trt.float32, (-1, 4, 7, 6))
    conv = net.add_convolution_nd(t, 8, (3, 2), trt.Weights(w), trt.Weights(b))
    conv.num_groups = groups
    conv.stride_nd = stride
    conv.dilation_nd = dil
    conv.pre_padding = pre
    conv.post_padding = post
    out = run1(net, {"x": x}, conv.get_output(0))
    expect = conv_reference(x, w, b, stride, pre, post, dil, groups)
    assert out.shape == expect.shape
    assert rel(out, expect) <= 1e-5


def test_convolution_same_padding_matches_paddle():
    import paddle
    import paddle.nn.functional as F

    x = RNG.standard_normal((1, 3, 9, 8)).astype(np.float32)
    w = RNG.standard_normal((5, 3, 3, 3)).astype(np.float32)
    net = new_net()
    t = net.add_input("x", trt.float32, x.shape)
    conv = net.add_convolution_nd(t, 5, (3, 3), w)
    conv.stride_nd = (2, 2)
    conv.padding_mode = trt.PaddingMode.SAME_UPPER
    assert conv.get_output(0).shape == (1, 5, 5, 4)
    out = run1(net, {"x": x}, conv.get_output(0))
    expect = F.conv2d(paddle.to_tensor(x), paddle.to_tensor(w), stride=2, padding="SAME").numpy()
    assert rel(out, expect) <= 1e-5


def test_convolution_weights_type_must_match_input():
    net = new_net()
    t = net.add_input("x", trt.float16, (1, 3, 8, 8))
    with pytest.raises(trt.NetworkError, match="kernel weights are FLOAT"):
        net.add_convolution_nd(t, 4, (3, 3), np.zeros((4, 3, 3, 3), np.float32))


def test_pooling_average_count_and_round_up():
    import paddle
    import paddle.nn.functional as F

    x = RNG.standard_normal((1, 2, 7, 7)).astype(np.float32)
    for exclude in (True, False):
        net = new_net()
        t = net.add_input("x", trt.float32, x.shape)
        pool = net.add_pooling_nd(t, trt.PoolingType.AVERAGE, (3, 3))
        pool.stride_nd = (2, 2)
        pool.padding_nd = (1, 1)
        pool.average_count_excludes_padding = exclude
        pool.padding_mode = trt.PaddingMode.EXPLICIT_ROUND_UP
        assert pool.get_output(0).shape == (1, 2, 4, 4)
        out = run1(net, {"x": x}, pool.get_output(0))
        expect = F.avg_pool2d(paddle.to_tensor(x), 3, 2, 1, ceil_mode=True, exclusive=exclude).numpy()
        assert rel(out, expect) <= 1e-5, exclude
    net = new_net()
    t = net.add_input("x", trt.float32, x.shape)
    pool = net.add_pooling_nd(t, trt.PoolingType.MAX, (2, 2))
    pool.stride_nd = (2, 2)
    assert pool.get_output(0).shape == (1, 2, 3, 3)
    out = run1(net, {"x": x}, pool.get_output(0))
    np.testing.assert_array_equal(out, F.max_pool2d(paddle.to_tensor(x), 2, 2).numpy())


def test_infer_shapes_and_execute_all():
    net = new_net()
    x = net.add_input("x", trt.float32, (-1, 3, -1, -1))
    w = RNG.standard_normal((4, 3, 3, 3)).astype(np.float32)
    conv = net.add_convolution_nd(x, 4, (3, 3), w)
    conv.stride_nd = (2, 2)
    conv.name = "conv"
    conv.get_output(0).name = "c"
    relu = net.add_activation(conv.get_output(0), trt.ActivationType.RELU)
    relu.get_output(0).name = "y"
    net.mark_output(relu.get_output(0))
    assert conv.get_output(0).shape == (-1, 4, -1, -1)
    assert trt.infer_shapes(net, {"x": (2, 3, 11, 9)}) == {"y": (2, 4, 5, 4)}
    xv = RNG.standard_normal((1, 3, 5, 5)).astype(np.float32)
    everything = trt.execute_all(net, {"x": xv})
    assert set(everything) == {"x", "c", "y"}
    np.testing.assert_array_equal(everything["y"], np.maximum(everything["c"], 0))
    with pytest.raises(trt.ExecutionError, match="shape"):
        trt.execute(net, {"x": np.zeros((1, 4, 5, 5), np.float32)})


def test_attribute_problems_wait_for_the_next_use():
    w = np.zeros((4, 2, 3, 3), np.float32)  # only valid once num_groups = 2
    net = new_net()
    x = net.add_input("x", trt.float32, (1, 4, 5, 5))
    conv = net.add_convolution_nd(x, 4, (3, 3), w)
    conv.num_groups = 2
    assert conv.get_output(0).shape == (1, 4, 3, 3)
    net2 = new_net()
    x2 = net2.add_input("x", trt.float32, (1, 4, 5, 5))
    conv2 = net2.add_convolution_nd(x2, 4, (3, 3), w)  # never fixed
    with pytest.raises(trt.NetworkError, match=r"Convolution.*kernel has 72 values"):
        net2.add_activation(conv2.get_output(0), trt.ActivationType.RELU)


def test_fp16_convolution_output_is_half_and_close_to_fp32():
    x = RNG.standard_normal((1, 8, 6, 6)).astype(np.float32)
    w = RNG.standard_normal((4, 8, 3, 3)).astype(np.float32)
    outs = {}
    for dtype in (trt.float32, trt.float16):
        npdt = trt.nptype(dtype)
        net = new_net()
        t = net.add_input("x", dtype, x.shape)
        conv = net.add_convolution_nd(t, 4, (3, 3), w.astype(npdt))
        outs[dtype] = run1(net, {"x": x.astype(npdt)}, conv.get_output(0))
    assert outs[trt.float16].dtype == np.float16
    err = rel(outs[trt.float16], outs[trt.float32])
    assert 0 < err <= 1e-2  # half storage rounds, so it is not exactly the fp32 result


def test_set_input_may_point_at_a_later_layer():
    """TensorRT lets set_input wire a layer to a tensor made after it; execution follows the data, not the
    order of add_* calls, and a loop through set_input is an error."""
    net = new_net()
    x = net.add_input("x", trt.float32, (2, 3))
    early = net.add_unary(x, trt.UnaryOperation.ABS)  # to be rewired to read `late`
    late = net.add_elementwise(x, x, trt.ElementWiseOperation.SUM)
    early.set_input(0, late.get_output(0))
    net.mark_output(early.get_output(0))
    xs = np.array([[-1.0, 2.0, -3.0], [4.0, -5.0, 6.0]], np.float32)
    out = trt.execute(net, {"x": xs})
    np.testing.assert_array_equal(next(iter(out.values())), np.abs(xs + xs))
    late.set_input(0, early.get_output(0))
    with pytest.raises(trt.NetworkError, match="cycle"):
        trt.execute(net, {"x": xs})


def test_a_layer_reading_its_own_output_is_a_cycle():
    net = new_net()
    x = net.add_input("x", trt.float32, (2, 3))
    a = net.add_unary(x, trt.UnaryOperation.ABS)
    a.set_input(0, a.get_output(0))
    with pytest.raises(trt.NetworkError, match="cycle"):
        _ = a.get_output(0).shape


def test_building_infers_each_layer_a_bounded_number_of_times(monkeypatch):
    """Adding a layer or changing one re-infers that layer and what reads it, not the whole network, also
    once set_input has pointed a layer at a later one (ResNet-50's flatten does): building stays linear."""
    from repogen.trt.numpy_trt import _network

    calls = []
    real = _network.layer_infer
    monkeypatch.setattr(_network, "layer_infer", lambda layer, infos: calls.append(layer) or real(layer, infos))
    net = new_net()
    x = net.add_input("x", trt.float32, (-1, 4))
    early = net.add_shuffle(x)
    n = 300
    t = x
    for i in range(n):
        act = net.add_activation(t, trt.ActivationType.CLIP)
        act.alpha, act.beta = -3.0, 3.0  # attributes set after add_*: re-infer this layer only
        t = act.get_output(0)
        assert t.shape == (-1, 4)
        if i == 0:
            early.set_input(1, net.add_shape(t).get_output(0))  # forward reference
    net.mark_output(t)
    net.mark_output(early.get_output(0))
    assert len(calls) <= 3 * (n + 3)
    xs = np.array([[-2.0, 1.0, -4.0, 8.0]], np.float32)
    out = trt.execute(net, {"x": xs})
    np.testing.assert_array_equal(out[t.name], np.clip(xs, -3.0, 3.0))
    np.testing.assert_array_equal(out[early.get_output(0).name], xs)
