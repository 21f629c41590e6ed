"""NumPy TensorRT backend: resize, deconvolution, normalization, quantization and the other layers."""

from __future__ import annotations

import numpy as np
import pytest

import repogen.trt.numpy_trt as trt

from test_numpy_trt_core import RNG, const, new_net, rel, run1


# ------------------------------------------------------------ resize


def resize_net(xv, mode, ct, out_shape=None, scales=None, rounding=None, selector=None):
    net = new_net()
    x = net.add_input("x", trt.float32, xv.shape)
    r = net.add_resize(x)
    r.resize_mode = mode
    r.coordinate_transformation = ct
    if rounding is not None:
        r.nearest_rounding = rounding
    if selector is not None:
        r.selector_for_single_pixel = selector
    if out_shape is not None:
        r.shape = out_shape
    if scales is not None:
        r.scales = scales
    return run1(net, {"x": xv}, r.get_output(0)), r


def test_resize_defaults_are_documented_ones():
    net = new_net()
    r = net.add_resize(net.add_input("x", trt.float32, (1, 1, 2, 2)))
    assert r.resize_mode == trt.InterpolationMode.NEAREST
    assert r.coordinate_transformation == trt.ResizeCoordinateTransformation.ASYMMETRIC
    assert r.nearest_rounding == trt.ResizeRoundMode.FLOOR
    assert r.selector_for_single_pixel == trt.ResizeSelector.FORMULA
    assert r.cubic_coeff == -0.75 and r.exclude_outside is False


def test_resize_scales_floor_output_size():
    xv = np.arange(5, dtype=np.float32).reshape(1, 5)
    out, r = resize_net(xv, trt.InterpolationMode.NEAREST, trt.ResizeCoordinateTransformation.ASYMMETRIC,
                        scales=(1.0, 1.5))
    assert r.get_output(0).shape == (1, 7)  # floor(5 * 1.5)
    # asymmetric: x_in = x_out * 5/7, floored
    np.testing.assert_array_equal(out[0], [0, 0, 1, 2, 2, 3, 4])


@pytest.mark.parametrize(
    "rounding,expect",
    [
        (trt.ResizeRoundMode.FLOOR, [0, 0, 1, 2]),
        (trt.ResizeRoundMode.CEIL, [0, 1, 2, 2]),  # 3 is clamped to the last index
        # half_pixel coordinates for 3 -> 4: -0.125, 0.625, 1.375, 2.125
        (trt.ResizeRoundMode.HALF_UP, [0, 1, 1, 2]),
        (trt.ResizeRoundMode.HALF_DOWN, [0, 1, 1, 2]),
    ],
)
def test_resize_nearest_rounding_half_pixel(rounding, expect):
    xv = np.array([[10, 11, 12]], np.float32)
    out, _ = resize_net(xv, trt.InterpolationMode.NEAREST, trt.ResizeCoordinateTransformation.HALF_PIXEL,
                        out_shape=(1, 4), rounding=rounding)
    np.testing.assert_array_equal(out[0], np.array(expect) + 10)


def test_resize_nearest_round_modes_on_exact_halves():
    # asymmetric 2 -> 4: coordinates 0, 0.5, 1, 1.5
    xv = np.array([[1, 2]], np.float32)
    up, _ = resize_net(xv, trt.InterpolationMode.NEAREST, trt.ResizeCoordinateTransformation.ASYMMETRIC,
                       out_shape=(1, 4), rounding=trt.ResizeRoundMode.HALF_UP)
    down, _ = resize_net(xv, trt.InterpolationMode.NEAREST, trt.ResizeCoordinateTransformation.ASYMMETRIC,
                         out_shape=(1, 4), rounding=trt.ResizeRoundMode.HALF_DOWN)
    np.testing.assert_array_equal(up[0], [1, 2, 2, 2])
    np.testing.assert_array_equal(down[0], [1, 1, 2, 2])


def test_resize_single_pixel_selector():
    xv = np.array([[1, 2, 3, 4]], np.float32)
    formula, _ = resize_net(xv, trt.InterpolationMode.LINEAR, trt.ResizeCoordinateTransformation.HALF_PIXEL,
                            out_shape=(1, 1))
    upper, _ = resize_net(xv, trt.InterpolationMode.LINEAR, trt.ResizeCoordinateTransformation.HALF_PIXEL,
                          out_shape=(1, 1), selector=trt.ResizeSelector.UPPER)
    assert formula[0, 0] == pytest.approx(2.5)  # (0 + 0.5) * 4 - 0.5 = 1.5 -> between 2 and 3
    assert upper[0, 0] == 1.0


@pytest.mark.parametrize(
    "mode,ct,paddle_kw",
    [
        (trt.InterpolationMode.NEAREST, trt.ResizeCoordinateTransformation.ASYMMETRIC,
         dict(mode="nearest", align_corners=False)),
        (trt.InterpolationMode.LINEAR, trt.ResizeCoordinateTransformation.HALF_PIXEL,
         dict(mode="bilinear", align_corners=False, align_mode=0)),
        (trt.InterpolationMode.LINEAR, trt.ResizeCoordinateTransformation.ASYMMETRIC,
         dict(mode="bilinear", align_corners=False, align_mode=1)),
        (trt.InterpolationMode.LINEAR, trt.ResizeCoordinateTransformation.ALIGN_CORNERS,
         dict(mode="bilinear", align_corners=True)),
        (trt.InterpolationMode.CUBIC, trt.ResizeCoordinateTransformation.HALF_PIXEL,
         dict(mode="bicubic", align_corners=False)),
        (trt.InterpolationMode.CUBIC, trt.ResizeCoordinateTransformation.ALIGN_CORNERS,
         dict(mode="bicubic", align_corners=True)),
    ],
)
@pytest.mark.parametrize("size", [(11, 7), (3, 4)])
def test_resize_matches_paddle_interpolate(mode, ct, paddle_kw, size):
    import paddle
    import paddle.nn.functional as F

    xv = RNG.standard_normal((1, 2, 5, 6)).astype(np.float32)
    out, _ = resize_net(xv, mode, ct, out_shape=(1, 2) + size)
    expect = F.interpolate(paddle.to_tensor(xv), size=list(size), **paddle_kw).numpy()
    assert rel(out, expect) <= 1e-5


def test_resize_dynamic_shape_input():
    net = new_net()
    x = net.add_input("x", trt.float32, (1, 1, -1, -1))
    shape = net.add_shape(x).get_output(0)
    two = const(net, np.array([1, 1, 2, 2], np.int64))
    target = net.add_elementwise(shape, two, trt.ElementWiseOperation.PROD).get_output(0)
    r = net.add_resize(x)
    r.set_input(1, target)
    assert r.get_output(0).shape == (1, 1, -1, -1)
    xv = np.arange(6, dtype=np.float32).reshape(1, 1, 2, 3)
    out = run1(net, {"x": xv}, r.get_output(0))
    np.testing.assert_array_equal(out, xv.repeat(2, axis=2).repeat(2, axis=3))


def test_linear_resize_only_innermost_three_dims():
    net = new_net()
    x = net.add_input("x", trt.float32, (2, 2, 2, 2))
    r = net.add_resize(x)
    r.resize_mode = trt.InterpolationMode.LINEAR
    r.shape = (4, 2, 2, 2)
    r.get_output(0).name = "y"
    net.mark_output(r.get_output(0))
    with pytest.raises(trt.ExecutionError, match="innermost 3"):
        trt.execute(net, {"x": np.zeros((2, 2, 2, 2), np.float32)})



def test_resize_by_unit_scales_keeps_run_time_dims():
    """A scale of 1 keeps a dim (floor(d * 1) = d) even when d is known only at run time, so a LINEAR resize
    by scales (1, 1, 1.5, 1.5) of an (N, C, H, W) input with dynamic N changes only the innermost two."""
    import paddle
    import paddle.nn.functional as F

    net = new_net()
    x = net.add_input("x", trt.float32, (-1, 3, -1, -1))
    r = net.add_resize(x)
    r.resize_mode = trt.InterpolationMode.LINEAR
    r.scales = (1.0, 1.0, 1.5, 1.5)
    assert r.get_output(0).shape == (-1, 3, -1, -1)
    xv = RNG.standard_normal((2, 3, 4, 6)).astype(np.float32)
    out = run1(net, {"x": xv}, r.get_output(0))
    assert out.shape == (2, 3, 6, 9)
    # ASYMMETRIC by the length ratio; Paddle maps a given output size the same way (align_mode=1)
    expect = F.interpolate(paddle.to_tensor(xv), size=[6, 9], mode="bilinear", align_corners=False,
                           align_mode=1).numpy()
    assert rel(out, expect) <= 1e-5


# ------------------------------------------------------------ deconvolution


@pytest.mark.parametrize("groups,stride,pad,dil", [(1, 2, 1, 1), (2, 2, 0, 2), (4, 3, 2, 1)])
def test_deconvolution_matches_paddle_conv2d_transpose(groups, stride, pad, dil):
    import paddle
    import paddle.nn.functional as F

    x = RNG.standard_normal((2, 4, 5, 6)).astype(np.float32)
    w = RNG.standard_normal((4, 8 // groups, 3, 3)).astype(np.float32)
    b = RNG.standard_normal(8).astype(np.float32)
    net = new_net()
    t = net.add_input("x", trt.float32, x.shape)
    dc = net.add_deconvolution_nd(t, 8, (3, 3), w, b)
    dc.stride_nd = (stride, stride)
    dc.padding_nd = (pad, pad)
    dc.dilation_nd = (dil, dil)
    dc.num_groups = groups
    out = run1(net, {"x": x}, dc.get_output(0))
    expect = F.conv2d_transpose(paddle.to_tensor(x), paddle.to_tensor(w), paddle.to_tensor(b), stride=stride,
                                padding=pad, dilation=dil, groups=groups).numpy()
    # O = (I - 1) * S + DK - (B + A)
    dk = 1 + dil * 2
    assert dc.get_output(0).shape == (2, 8, (5 - 1) * stride + dk - 2 * pad, (6 - 1) * stride + dk - 2 * pad)
    assert rel(out, expect) <= 1e-5


def test_deconvolution_same_upper_size():
    net = new_net()
    t = net.add_input("x", trt.float32, (1, 2, 5, 5))
    dc = net.add_deconvolution_nd(t, 3, (4, 4), np.ones((2, 3, 4, 4), np.float32))
    dc.stride_nd = (2, 2)
    dc.padding_mode = trt.PaddingMode.SAME_UPPER
    assert dc.get_output(0).shape == (1, 3, 10, 10)  # O = min(I*S, (I-1)*S + DK)
    dc.stride_nd = (5, 5)
    assert dc.get_output(0).shape == (1, 3, 24, 24)  # DK < S: (I-1)*S + DK


def test_conv_kernel_from_tensor_input():
    import paddle
    import paddle.nn.functional as F

    x = RNG.standard_normal((1, 3, 6, 6)).astype(np.float32)
    w = RNG.standard_normal((2, 3, 3, 3)).astype(np.float32)
    net = new_net()
    t = net.add_input("x", trt.float32, x.shape)
    conv = net.add_convolution_nd(t, 2, (3, 3), trt.Weights())
    conv.set_input(1, const(net, w))
    out = run1(net, {"x": x}, conv.get_output(0))
    assert rel(out, F.conv2d(paddle.to_tensor(x), paddle.to_tensor(w)).numpy()) <= 1e-5


def test_pooling_same_lower_and_blend():
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    net = new_net()
    t = net.add_input("x", trt.float32, x.shape)
    p = net.add_pooling_nd(t, trt.PoolingType.MAX_AVERAGE_BLEND, (2, 2))
    p.stride_nd = (2, 2)
    p.blend_factor = 0.25
    out = run1(net, {"x": x}, p.get_output(0))
    mx = np.array([[5, 7], [13, 15]], np.float32)
    avg = np.array([[2.5, 4.5], [10.5, 12.5]], np.float32)
    np.testing.assert_allclose(out[0, 0], 0.75 * mx + 0.25 * avg)
    net = new_net()
    t = net.add_input("x", trt.float32, (1, 1, 5, 5))
    p = net.add_pooling_nd(t, trt.PoolingType.MAX, (2, 2))
    p.padding_mode = trt.PaddingMode.SAME_LOWER
    assert p.get_output(0).shape == (1, 1, 5, 5)
    xv = np.arange(25, dtype=np.float32).reshape(1, 1, 5, 5)
    out = run1(net, {"x": xv}, p.get_output(0))
    # P = 1 goes before the data (SAME_LOWER): window (i-1, i) -> max is element i
    np.testing.assert_array_equal(out, xv)


# ------------------------------------------------------------ normalization / scale / padding


def test_layer_and_group_normalization_match_paddle():
    import paddle
    import paddle.nn.functional as F

    x = RNG.standard_normal((2, 6, 4, 5)).astype(np.float32)
    s = RNG.standard_normal((1, 1, 1, 5)).astype(np.float32)
    b = RNG.standard_normal((1, 1, 1, 5)).astype(np.float32)
    net = new_net()
    t = net.add_input("x", trt.float32, x.shape)
    ln = net.add_normalization(t, const(net, s), const(net, b), 1 << 3)
    assert ln.epsilon == pytest.approx(1e-5) and ln.num_groups == 1
    out = run1(net, {"x": x}, ln.get_output(0))
    expect = F.layer_norm(paddle.to_tensor(x), [5], paddle.to_tensor(s.reshape(5)), paddle.to_tensor(b.reshape(5)))
    assert rel(out, expect.numpy()) <= 1e-5

    gs = RNG.standard_normal((1, 6, 1, 1)).astype(np.float32)
    gb = RNG.standard_normal((1, 6, 1, 1)).astype(np.float32)
    net = new_net()
    t = net.add_input("x", trt.float32, x.shape)
    gn = net.add_normalization(t, const(net, gs), const(net, gb), 0b1100)
    gn.num_groups = 3
    out = run1(net, {"x": x}, gn.get_output(0))
    expect = F.group_norm(paddle.to_tensor(x), 3, weight=paddle.to_tensor(gs.reshape(6)),
                          bias=paddle.to_tensor(gb.reshape(6)), epsilon=1e-5)
    assert rel(out, expect.numpy()) <= 1e-5


def test_normalization_types_must_agree():
    net = new_net()
    t = net.add_input("x", trt.float16, (2, 4))
    s = const(net, np.ones((1, 4), np.float32))
    with pytest.raises(trt.NetworkError, match="different types"):
        net.add_normalization(t, s, s, 1 << 1)


def test_scale_channel_mode():
    x = RNG.standard_normal((2, 3, 2, 2)).astype(np.float32)
    sc, sh, pw = (np.array([1, 2, 3], np.float32), np.array([0.5, 0, -1], np.float32),
                  np.array([2, 2, 2], np.float32))
    net = new_net()
    t = net.add_input("x", trt.float32, x.shape)
    layer = net.add_scale(t, trt.ScaleMode.CHANNEL, sh, sc, pw)
    out = run1(net, {"x": x}, layer.get_output(0))
    expect = (x * sc.reshape(1, 3, 1, 1) + sh.reshape(1, 3, 1, 1)) ** 2
    np.testing.assert_allclose(out, expect, rtol=1e-6)
    with pytest.raises(trt.NetworkError, match="needs 3"):
        net.add_scale(t, trt.ScaleMode.CHANNEL, np.zeros(2, np.float32), None, None)


def test_padding_nd_pads_and_crops():
    net = new_net()
    t = net.add_input("x", trt.float32, (1, 1, 3, 3))
    p = net.add_padding_nd(t, (1, -1), (0, 2))
    assert p.get_output(0).shape == (1, 1, 4, 4)
    xv = np.arange(9, dtype=np.float32).reshape(1, 1, 3, 3)
    out = run1(net, {"x": xv}, p.get_output(0))
    expect = np.zeros((4, 4), np.float32)
    expect[1:, :2] = xv[0, 0, :, 1:]
    np.testing.assert_array_equal(out[0, 0], expect)


# ------------------------------------------------------------ quantize


def test_quantize_rounds_half_to_even_and_saturates():
    net = new_net()
    t = net.add_input("x", trt.float32, (7,))
    s = const(net, np.array(0.5, np.float32))
    q = net.add_quantize(t, s)
    assert q.get_output(0).dtype == trt.int8
    dq = net.add_dequantize(q.get_output(0), s)
    q.get_output(0).name, dq.get_output(0).name = "q", "dq"
    net.mark_output(q.get_output(0))
    net.mark_output(dq.get_output(0))
    xv = np.array([0.25, 0.75, 1.25, -0.25, -1.25, 100.0, -100.0], np.float32)
    out = trt.execute(net, {"x": xv})
    np.testing.assert_array_equal(out["q"], [0, 2, 2, 0, -2, 127, -128])
    np.testing.assert_array_equal(out["dq"], [0, 1, 1, 0, -1, 63.5, -64])


def test_quantize_per_channel_axis():
    net = new_net()
    t = net.add_input("x", trt.float32, (2, 3))
    q = net.add_quantize(t, const(net, np.array([1, 2, 4], np.float32)))
    q.axis = 1
    out = run1(net, {"x": np.array([[4, 4, 4], [-8, 8, 1]], np.float32)}, q.get_output(0))
    np.testing.assert_array_equal(out, [[4, 2, 1], [-8, 4, 0]])


# ------------------------------------------------------------ select / fill / misc


def test_select_fill_linspace_onehot_cumulative_einsum():
    import paddle

    net = new_net()
    c = net.add_input("c", trt.bool, (2, 3))
    a = net.add_input("a", trt.float32, (2, 3))
    b = net.add_input("b", trt.float32, (1, 3))
    sel = net.add_select(c, a, b).get_output(0)
    fill = net.add_fill((2, 3), trt.FillOperation.LINSPACE, trt.float32)
    fill.alpha = 1.0
    fill.beta = (10.0, 2.0)
    ind = net.add_input("i", trt.int32, (3,))
    oh = net.add_one_hot(ind, const(net, np.array([0, 5], np.float32)), const(net, np.array(4, np.int32)), -1)
    cs = net.add_cumulative(a, const(net, np.array(1, np.int32)), trt.CumulativeOperation.SUM, True, False)
    es = net.add_einsum([a, net.add_input("m", trt.float32, (3, 4))], "ij,jk->ik")
    outs = {"sel": sel, "fill": fill.get_output(0), "oh": oh.get_output(0), "cs": cs.get_output(0),
            "es": es.get_output(0)}
    for name, tensor in outs.items():
        tensor.name = name
        net.mark_output(tensor)
    cv = np.array([[True, False, True], [False, True, False]])
    av = RNG.standard_normal((2, 3)).astype(np.float32)
    bv = RNG.standard_normal((1, 3)).astype(np.float32)
    mv = RNG.standard_normal((3, 4)).astype(np.float32)
    res = trt.execute(net, {"c": cv, "a": av, "b": bv, "i": np.array([0, 3, -1], np.int32), "m": mv})
    np.testing.assert_array_equal(res["sel"], np.where(cv, av, bv))
    np.testing.assert_array_equal(res["fill"], [[1, 3, 5], [11, 13, 15]])
    np.testing.assert_array_equal(res["oh"], [[5, 0, 0, 0], [0, 0, 0, 5], [0, 0, 0, 5]])
    expect_cs = paddle.cumsum(paddle.to_tensor(av), axis=1).numpy() - av
    np.testing.assert_allclose(res["cs"], expect_cs, rtol=1e-6, atol=1e-7)
    assert rel(res["es"], paddle.einsum("ij,jk->ik", paddle.to_tensor(av), paddle.to_tensor(mv)).numpy()) <= 1e-6


def test_scatter_element_and_nd():
    net = new_net()
    d = net.add_input("d", trt.float32, (3, 3))
    sc = net.add_scatter(d, const(net, np.array([[1, 0, 2]], np.int32)), const(net, np.ones((1, 3), np.float32)),
                         trt.ScatterMode.ELEMENT)
    out = run1(net, {"d": np.zeros((3, 3), np.float32)}, sc.get_output(0))
    np.testing.assert_array_equal(out, [[0, 1, 0], [1, 0, 0], [0, 0, 1]])
    net = new_net()
    d = net.add_input("d", trt.float32, (3, 2))
    sc = net.add_scatter(d, const(net, np.array([[2], [0]], np.int32)),
                         const(net, np.array([[7, 8], [5, 6]], np.float32)), trt.ScatterMode.ND)
    out = run1(net, {"d": np.zeros((3, 2), np.float32)}, sc.get_output(0))
    np.testing.assert_array_equal(out, [[5, 6], [0, 0], [7, 8]])


def test_assertion_fires_at_run_time():
    net = new_net()
    a = net.add_input("a", trt.int32, (2,))
    ok = net.add_elementwise(a, const(net, np.array([0, 0], np.int32)), trt.ElementWiseOperation.GREATER)
    net.add_assertion(ok.get_output(0), "a must be positive")
    y = net.add_identity(a).get_output(0)
    y.name = "y"
    net.mark_output(y)
    np.testing.assert_array_equal(trt.execute(net, {"a": np.array([1, 2], np.int32)})["y"], [1, 2])
    with pytest.raises(trt.ExecutionError, match="a must be positive"):
        trt.execute(net, {"a": np.array([1, -2], np.int32)})


# ------------------------------------------------------------ rank-0 tensors


def test_shuffle_of_a_shape_element_to_rank_0():
    """paddle.shape(x)[1]: a one-element slice of a shape tensor reshaped to rank 0 stays 0-D at run time."""
    net = new_net()
    x = net.add_input("x", trt.float32, (-1, 4, 16))
    s = net.add_shape(x).get_output(0)
    sl = net.add_slice(s, (1,), (1,), (1,)).get_output(0)
    sh = net.add_shuffle(sl)
    sh.reshape_dims = ()
    assert sh.get_output(0).shape == ()
    out = run1(net, {"x": np.zeros((2, 4, 16), np.float32)}, sh.get_output(0))
    assert out.shape == () and out.dtype == np.int64 and int(out) == 4


def test_shuffle_of_a_rank_0_constant_follows_reshape_dims_set_after_add():
    net = new_net()
    c = net.add_constant((), np.array(-1, dtype=np.int64)).get_output(0)
    sh = net.add_shuffle(c)
    sh.reshape_dims = (1,)
    assert sh.get_output(0).shape == (1,)
    x = net.add_input("x", trt.float32, (2, 3))
    flat = net.add_shuffle(x)
    flat.set_input(1, sh.get_output(0))  # reshape to [-1]
    out = run1(net, {"x": np.arange(6, dtype=np.float32).reshape(2, 3)}, flat.get_output(0))
    np.testing.assert_array_equal(out, np.arange(6, dtype=np.float32))


def test_rank_0_network_input_stays_0_d():
    net = new_net()
    x = net.add_input("x", trt.float32, ())
    y = net.add_unary(x, trt.UnaryOperation.NEG).get_output(0)
    out = run1(net, {"x": np.float32(3.0)}, y)
    assert out.shape == () and float(out) == -3.0


def test_concatenation_axis_set_after_add_may_resolve_a_mismatch():
    # TensorRT checks the inputs against `axis` when the network is built, not when the layer is added
    import numpy as np
    from repogen.trt import numpy_trt as trt

    net = trt.Builder(trt.Logger()).create_network(0)
    a = net.add_input("a", trt.float32, (2, 2))
    b = net.add_input("b", trt.float32, (2, 3))
    cat = net.add_concatenation([a, b])
    cat.axis = 1
    assert tuple(cat.get_output(0).shape) == (2, 5)
    net.mark_output(cat.get_output(0))
    x, y = np.ones((2, 2), np.float32), np.zeros((2, 3), np.float32)
    assert np.array_equal(trt.execute(net, {"a": x, "b": y})[cat.get_output(0).name], np.concatenate([x, y], 1))


def test_linspace_fill_refuses_half_output():
    # the real builder (TensorRT-RTX 1.7, docs/gpu-validation.md) refuses a HALF LINSPACE fill
    import pytest
    from repogen.trt import numpy_trt as trt

    net = trt.Builder(trt.Logger()).create_network(0)
    fill = net.add_fill((4,), trt.FillOperation.LINSPACE, trt.float16)
    fill.alpha, fill.beta = 0.0, 1.0
    with pytest.raises(trt.NetworkError, match="LINSPACE fill produces INT32, INT64 or FLOAT"):
        fill.get_output(0).shape
