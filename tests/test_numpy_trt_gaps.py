"""NumPy TensorRT backend, the layer uses behind issue 17's converters, each against the TensorRT
documentation's definition:

- ISliceLayer: "the second, third and fourth inputs ... set the start, size and stride as shape tensors";
  SampleMode.WRAP: "coordinates wrap around periodically" (tile with run-time repeats);
- INonZeroLayer: a [rank, count] tensor of the coordinates of the non-zero elements, count known at run time;
- IScatterLayer ND: data[indices[i]] = updates[i] (NonZero rows + scatter = x[mask] = values);
- ISelectLayer: elementwise ``condition ? then : else`` with broadcasting (x[mask] = broadcast value).
"""

from __future__ import annotations

import numpy as np

import repogen.trt.numpy_trt as trt

from test_numpy_trt_core import const, new_net


def test_wrap_slice_with_runtime_size_tiles():
    net = new_net()
    x = net.add_input("x", trt.float32, (-1, 3))
    reps = const(net, np.array([2, 3], np.int64))
    shape = net.add_cast(net.add_shape(x).get_output(0), trt.int64).get_output(0)
    size = net.add_elementwise(shape, reps, trt.ElementWiseOperation.PROD).get_output(0)
    sl = net.add_slice(x, (0, 0), (1, 1), (1, 1))
    sl.set_input(2, size)
    sl.mode = trt.SampleMode.WRAP
    out = sl.get_output(0)
    assert tuple(out.shape) == (-1, 9)  # the known dim 3 x 3 is folded while building
    out.name = "y"
    net.mark_output(out)
    for rows in (1, 2):
        xv = np.arange(rows * 3, dtype=np.float32).reshape(rows, 3)
        np.testing.assert_array_equal(trt.execute(net, {"x": xv})["y"], np.tile(xv, (2, 3)))


def test_wrap_slice_runtime_start_wraps_negative():
    # start -2 with WRAP reads from the end, then wraps past it (periodic coordinates)
    net = new_net()
    x = net.add_input("x", trt.int32, (-1,))
    sl = net.add_slice(x, (0,), (1,), (1,))
    sl.set_input(1, const(net, np.array([-2], np.int64)))
    sl.set_input(2, const(net, np.array([7], np.int64)))
    sl.mode = trt.SampleMode.WRAP
    out = sl.get_output(0)
    out.name = "y"
    net.mark_output(out)
    np.testing.assert_array_equal(trt.execute(net, {"x": np.arange(5, dtype=np.int32)})["y"], [3, 4, 0, 1, 2, 3, 4])


def test_nonzero_then_nd_scatter_is_masked_assignment():
    net = new_net()
    x = net.add_input("x", trt.float32, (-1, 4))
    m = net.add_input("m", trt.bool, (-1, 4))
    u = net.add_input("u", trt.float32, (-1,))
    nz = net.add_non_zero(m, trt.int64).get_output(0)
    assert tuple(nz.shape) == (2, -1)
    rows = net.add_shuffle(nz)
    rows.first_transpose = (1, 0)
    sc = net.add_scatter(x, rows.get_output(0), u, trt.ScatterMode.ND).get_output(0)
    sc.name = "y"
    net.mark_output(sc)
    xv = np.arange(8, dtype=np.float32).reshape(2, 4)
    mv = np.array([[True, False, False, True], [False, True, False, False]])
    uv = np.array([-1, -2, -3], np.float32)
    want = xv.copy()
    want[mv] = uv  # row-major order of the true elements, as NonZero lists them
    np.testing.assert_array_equal(trt.execute(net, {"x": xv, "m": mv, "u": uv})["y"], want)


def test_select_broadcasts_value_over_mask():
    net = new_net()
    x = net.add_input("x", trt.float32, (-1, 3, 2))
    m = net.add_input("m", trt.bool, (-1, 3, 1))
    v = const(net, np.array([[[5.0, 6.0]]], np.float32))
    s = net.add_select(m, v, x).get_output(0)
    s.name = "y"
    net.mark_output(s)
    xv = np.zeros((2, 3, 2), np.float32)
    mv = np.array([[[True], [False], [True]], [[False], [False], [True]]])
    np.testing.assert_array_equal(trt.execute(net, {"x": xv, "m": mv})["y"], np.where(mv, [[[5.0, 6.0]]], xv))
