"""numpy_trt loops and conditionals, checked against TensorRT's documented semantics ("Working with Loops",
"Working with Conditionals", the If operator page, ILoop / ILoopOutputLayer API references); expected values
are computed here from those definitions with plain NumPy."""

from __future__ import annotations

import numpy as np
import pytest

import repogen.trt.numpy_trt as trt

F32 = trt.DataType.FLOAT


def _net():
    return trt.Builder(trt.Logger()).create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))


def _c(n, value, dtype=None):
    a = np.asarray(value, dtype=dtype)
    return n.add_constant(a.shape, a).get_output(0)


def _ew(n, a, b, op):
    return n.add_elementwise(a, b, getattr(trt.ElementWiseOperation, op)).get_output(0)


def _scan_sum(n, x, count, reverse=False, axis=0):
    """Running sum over `axis` of x: recurrence + iterator, all three loop output kinds."""
    loop = n.add_loop()
    loop.add_trip_limit(count, trt.TripLimit.COUNT)
    it = loop.add_iterator(x, axis, reverse)
    zero_shape = tuple(d for k, d in enumerate(x.shape) if k != axis)
    rec = loop.add_recurrence(_c(n, np.zeros(zero_shape, np.float32)))
    acc = _ew(n, rec.get_output(0), it.get_output(0), "SUM")
    rec.set_input(1, acc)
    last = loop.add_loop_output(rec.get_output(0), trt.LoopOutput.LAST_VALUE)
    cat = loop.add_loop_output(acc, trt.LoopOutput.CONCATENATE, axis)
    cat.set_input(1, count)
    rev = loop.add_loop_output(acc, trt.LoopOutput.REVERSE, axis)
    rev.set_input(1, count)
    return last.get_output(0), cat.get_output(0), rev.get_output(0)


def test_counted_loop_scans_an_iterator_into_all_three_output_kinds():
    n = _net()
    x = n.add_input("x", F32, (4, 3))
    last, cat, rev = _scan_sum(n, x, _c(n, 4, np.int32))
    for t, name in ((last, "last"), (cat, "cat"), (rev, "rev")):
        t.name = name
        n.mark_output(t)
    assert tuple(last.shape) == (3,) and tuple(cat.shape) == (4, 3) and tuple(rev.shape) == (4, 3)
    xv = np.arange(12, dtype=np.float32).reshape(4, 3)
    out = trt.execute(n, {"x": xv})
    running = np.cumsum(xv, axis=0)
    np.testing.assert_array_equal(out["cat"], running)           # values in forward order
    np.testing.assert_array_equal(out["rev"], running[::-1])     # the same values, reverse order
    np.testing.assert_array_equal(out["last"], xv.sum(0))        # recurrence after the last iteration


def test_reverse_iterator_reads_m_minus_1_minus_i_and_axis_1():
    n = _net()
    x = n.add_input("x", F32, (2, 5))
    with pytest.raises(trt.NetworkError, match="INT32"):  # the guide's trip count is a 0-D INT32
        n.add_loop().add_trip_limit(_c(n, 5, np.int64), trt.TripLimit.COUNT)
    _, cat, _ = _scan_sum(n, x, _c(n, 5, np.int32), reverse=True, axis=1)
    cat.name = "cat"
    n.mark_output(cat)
    assert tuple(cat.shape) == (2, 5)
    xv = np.random.default_rng(0).standard_normal((2, 5)).astype(np.float32)
    got = trt.execute(n, {"x": xv})["cat"]
    np.testing.assert_allclose(got, np.cumsum(xv[:, ::-1], axis=1), rtol=1e-6)


def test_while_loop_counts_to_three_as_in_the_guide():
    # for (i = 0; i < 3; i++) with a WHILE trip limit computed from the recurrence
    n = _net()
    loop = n.add_loop()
    rec = loop.add_recurrence(_c(n, 0, np.int32))
    i = rec.get_output(0)
    loop.add_trip_limit(_ew(n, i, _c(n, 3, np.int32), "LESS"), trt.TripLimit.WHILE)
    rec.set_input(1, _ew(n, i, _c(n, 1, np.int32), "SUM"))
    out = loop.add_loop_output(i, trt.LoopOutput.LAST_VALUE).get_output(0)
    out.name = "i"
    n.mark_output(out)
    got = trt.execute(n, {})["i"]
    assert got.dtype == np.int32 and got.shape == () and int(got) == 3


def test_while_and_count_limits_exit_when_either_says_so():
    n = _net()
    limit = n.add_input("limit", trt.int32, ())
    loop = n.add_loop()
    loop.add_trip_limit(_c(n, 5, np.int32), trt.TripLimit.COUNT)
    rec = loop.add_recurrence(_c(n, 0, np.int32))
    i = rec.get_output(0)
    loop.add_trip_limit(_ew(n, i, limit, "LESS"), trt.TripLimit.WHILE)
    rec.set_input(1, _ew(n, i, _c(n, 1, np.int32), "SUM"))
    out = loop.add_loop_output(i, trt.LoopOutput.LAST_VALUE).get_output(0)
    out.name = "i"
    n.mark_output(out)
    assert int(trt.execute(n, {"limit": np.int32(2)})["i"]) == 2     # the WHILE condition ends it
    assert int(trt.execute(n, {"limit": np.int32(9)})["i"]) == 5     # the COUNT ends it
    assert int(trt.execute(n, {"limit": np.int32(0)})["i"]) == 0     # no iteration: the initial value


def test_concatenate_pads_after_the_values_and_refuses_a_short_length():
    n = _net()
    x = n.add_input("x", F32, (-1, 2))
    count = n.add_input("count", trt.int32, ())
    loop = n.add_loop()
    loop.add_trip_limit(count, trt.TripLimit.COUNT)
    it = loop.add_iterator(x)
    cat = loop.add_loop_output(it.get_output(0), trt.LoopOutput.CONCATENATE)
    cat.set_input(1, _c(n, 4, np.int32))
    cat.get_output(0).name = "cat"
    n.mark_output(cat.get_output(0))
    assert tuple(cat.get_output(0).shape) == (4, 2)  # the length is a build-time constant here
    xv = np.arange(6, dtype=np.float32).reshape(3, 2) + 1
    got = trt.execute(n, {"x": xv, "count": np.int32(3)})["cat"]
    np.testing.assert_array_equal(got, np.concatenate([xv, np.zeros((1, 2), np.float32)]))
    with pytest.raises(trt.ExecutionError, match="length"):
        trt.execute(n, {"x": np.ones((5, 2), np.float32), "count": np.int32(5)})
    with pytest.raises(trt.ExecutionError, match="past"):  # COUNT beyond the iterated extent
        trt.execute(n, {"x": np.ones((2, 2), np.float32), "count": np.int32(3)})


def test_loop_invariants_are_used_directly_and_dynamic_dims_run():
    # h_{t+1} = tanh(x_t @ W + h_t), W defined outside the loop; dynamic batch and sequence length
    n = _net()
    x = n.add_input("x", F32, (-1, -1, 3))  # [T, B, 3]
    W = np.random.default_rng(1).standard_normal((3, 3)).astype(np.float32)
    w = _c(n, W)
    t_len = n.add_shuffle(n.add_slice(n.add_shape(x).get_output(0), (0,), (1,), (1,)).get_output(0))
    t_len.reshape_dims = ()
    t_len = n.add_cast(t_len.get_output(0), trt.int32)
    loop = n.add_loop()
    loop.add_trip_limit(t_len.get_output(0), trt.TripLimit.COUNT)
    xt = loop.add_iterator(x).get_output(0)
    rec = loop.add_recurrence(_c(n, np.zeros((1, 3), np.float32)))
    mm = n.add_matrix_multiply(xt, trt.MatrixOperation.NONE, w, trt.MatrixOperation.NONE).get_output(0)
    pre = _ew(n, mm, rec.get_output(0), "SUM")  # [B, 3]
    h = n.add_activation(pre, trt.ActivationType.TANH).get_output(0)
    last_row = n.add_reduce(h, trt.ReduceOperation.SUM, 1, True).get_output(0)  # [1, 3]
    rec.set_input(1, last_row)
    ys = loop.add_loop_output(h, trt.LoopOutput.CONCATENATE)
    ys.set_input(1, t_len.get_output(0))
    ys.get_output(0).name = "ys"
    n.mark_output(ys.get_output(0))
    for T, B in ((3, 2), (5, 1)):
        xv = np.random.default_rng(T).standard_normal((T, B, 3)).astype(np.float32)
        state = np.zeros((1, 3), np.float32)
        want = []
        for t in range(T):
            ht = np.tanh(xv[t] @ W + state)
            want.append(ht)
            state = ht.sum(0, keepdims=True)
        got = trt.execute(n, {"x": xv})["ys"]
        np.testing.assert_allclose(got, np.stack(want), rtol=1e-5, atol=1e-6)


def test_nested_loops():
    # outer i in 0..2, inner j in 0..3: total = sum over i, j of (i + 1)
    n = _net()
    outer = n.add_loop()
    outer.add_trip_limit(_c(n, 3, np.int32), trt.TripLimit.COUNT)
    i_rec = outer.add_recurrence(_c(n, 1.0, np.float32))
    tot_rec = outer.add_recurrence(_c(n, 0.0, np.float32))
    inner = n.add_loop()
    inner.add_trip_limit(_c(n, 4, np.int32), trt.TripLimit.COUNT)
    acc = inner.add_recurrence(tot_rec.get_output(0))
    acc.set_input(1, _ew(n, acc.get_output(0), i_rec.get_output(0), "SUM"))
    inner_out = inner.add_loop_output(acc.get_output(0), trt.LoopOutput.LAST_VALUE).get_output(0)
    tot_rec.set_input(1, inner_out)
    i_rec.set_input(1, _ew(n, i_rec.get_output(0), _c(n, 1.0, np.float32), "SUM"))
    out = outer.add_loop_output(tot_rec.get_output(0), trt.LoopOutput.LAST_VALUE).get_output(0)
    out.name = "total"
    n.mark_output(out)
    assert float(trt.execute(n, {})["total"]) == 4 * (1 + 2 + 3)


def test_loop_rules_from_the_api_reference():
    n = _net()
    x = n.add_input("x", F32, (3, 2))
    loop = n.add_loop()
    loop.add_trip_limit(_c(n, 3, np.int32), trt.TripLimit.COUNT)
    with pytest.raises(trt.NetworkError, match="at most one COUNT"):
        loop.add_trip_limit(_c(n, 2, np.int32), trt.TripLimit.COUNT)
    with pytest.raises(trt.NetworkError, match="0-D"):
        loop.add_trip_limit(_c(n, [True]), trt.TripLimit.WHILE)
    it = loop.add_iterator(x).get_output(0)
    with pytest.raises(trt.NetworkError, match="IRecurrenceLayer"):  # LAST_VALUE only of a recurrence
        loop.add_loop_output(it, trt.LoopOutput.LAST_VALUE)
    rec = loop.add_recurrence(_c(n, np.zeros(2, np.float32)))
    last = loop.add_loop_output(rec.get_output(0), trt.LoopOutput.LAST_VALUE)
    with pytest.raises(trt.NetworkError, match="out of range"):  # LAST_VALUE takes no length input
        last.set_input(1, _c(n, 3, np.int32))
    last.get_output(0).name = "last"
    n.mark_output(last.get_output(0))
    with pytest.raises(trt.NetworkError, match="input 1"):  # the next value was never set
        trt.execute(n, {"x": np.ones((3, 2), np.float32)})
    step = _ew(n, rec.get_output(0), it, "SUM")
    rec.set_input(1, step)
    leak = n.add_identity(step).get_output(0)  # reads a loop-body tensor from outside
    leak.name = "leak"
    n.mark_output(leak)
    with pytest.raises(trt.NetworkError, match="inside"):
        trt.execute(n, {"x": np.ones((3, 2), np.float32)})


def test_recurrence_must_keep_its_type():
    n = _net()
    loop = n.add_loop()
    loop.add_trip_limit(_c(n, 2, np.int32), trt.TripLimit.COUNT)
    rec = loop.add_recurrence(_c(n, np.zeros(2, np.float32)))
    rec.set_input(1, n.add_cast(rec.get_output(0), trt.int32).get_output(0))
    out = loop.add_loop_output(rec.get_output(0), trt.LoopOutput.LAST_VALUE).get_output(0)
    n.mark_output(out)
    with pytest.raises(trt.NetworkError, match="does not match"):
        trt.execute(n, {})


def test_if_operator_page_example():
    n = _net()
    condition = n.add_input("condition", trt.bool, ())
    true_inp = n.add_input("true_input", F32, (1, 1))
    false_inp = n.add_input("false_input", F32, (1, 1))
    conditional = n.add_if_conditional()
    conditional.set_condition(condition)
    t = conditional.add_input(true_inp)
    f = conditional.add_input(false_inp)
    output = conditional.add_output(t.get_output(0), f.get_output(0)).get_output(0)
    n.mark_output(output)
    feeds = {"true_input": np.full((1, 1), 5.0, np.float32), "false_input": np.zeros((1, 1), np.float32)}
    assert trt.execute(n, dict(feeds, condition=np.array(True)))[output.name].tolist() == [[5.0]]
    assert trt.execute(n, dict(feeds, condition=np.array(False)))[output.name].tolist() == [[0.0]]


def test_if_runs_only_the_chosen_branch():
    # the false branch reads 5 rows with a STRICT_BOUNDS slice, an error whenever it runs on fewer rows
    # (conditional execution: the branch not taken does not run)
    n = _net()
    cond = n.add_input("c", trt.bool, ())
    x = n.add_input("x", F32, (-1, 3))
    ifc = n.add_if_conditional()
    ifc.set_condition(cond)
    xin = ifc.add_input(x).get_output(0)
    doubled = _ew(n, xin, xin, "SUM")
    five_rows = n.add_slice(xin, (0, 0), (5, 3), (1, 1)).get_output(0)
    out = ifc.add_output(doubled, five_rows).get_output(0)
    out.name = "y"
    n.mark_output(out)
    assert tuple(out.shape) == (-1, 3)
    xv = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(trt.execute(n, {"c": np.array(True), "x": xv})["y"], 2 * xv)
    with pytest.raises(trt.ExecutionError):
        trt.execute(n, {"c": np.array(False), "x": xv})
    big = np.arange(21, dtype=np.float32).reshape(7, 3)
    np.testing.assert_array_equal(trt.execute(n, {"c": np.array(False), "x": big})["y"], big[:5])


def test_if_rules():
    n = _net()
    cond = n.add_input("c", trt.bool, ())
    x = n.add_input("x", F32, (2, 3))
    ifc = n.add_if_conditional()
    with pytest.raises(trt.NetworkError, match="0-D BOOL"):
        ifc.set_condition(x)
    ifc.set_condition(cond)
    xin = ifc.add_input(x).get_output(0)
    flat = n.add_shuffle(xin)
    flat.reshape_dims = (6,)
    with pytest.raises(trt.NetworkError, match="ranks"):
        ifc.add_output(xin, flat.get_output(0))
    i64 = n.add_cast(xin, trt.int64).get_output(0)
    with pytest.raises(trt.NetworkError, match="INT64"):
        ifc.add_output(i64, i64)
    with pytest.raises(trt.NetworkError, match="different types"):
        ifc.add_output(xin, n.add_cast(xin, trt.int32).get_output(0))


def test_if_with_a_constant_condition_may_pair_different_ranks():
    n = _net()
    x = n.add_input("x", F32, (2, 3))
    ifc = n.add_if_conditional()
    ifc.set_condition(_c(n, False))
    xin = ifc.add_input(x).get_output(0)
    flat = n.add_shuffle(xin)
    flat.reshape_dims = (6,)
    out = ifc.add_output(xin, flat.get_output(0)).get_output(0)
    n.mark_output(out)
    assert tuple(out.shape) == (6,)
    xv = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(trt.execute(n, {"x": xv})[out.name], xv.reshape(6))


def test_if_inside_a_loop():
    # running sum that adds x_t when it is positive and subtracts it otherwise: sum of |x_t|
    n = _net()
    x = n.add_input("x", F32, (5,))
    loop = n.add_loop()
    loop.add_trip_limit(_c(n, 5, np.int32), trt.TripLimit.COUNT)
    xt = loop.add_iterator(x).get_output(0)
    rec = loop.add_recurrence(_c(n, 0.0, np.float32))
    ifc = n.add_if_conditional()
    ifc.set_condition(_ew(n, xt, _c(n, 0.0, np.float32), "GREATER"))
    v = ifc.add_input(xt).get_output(0)
    picked = ifc.add_output(v, n.add_unary(v, trt.UnaryOperation.NEG).get_output(0)).get_output(0)
    rec.set_input(1, _ew(n, rec.get_output(0), picked, "SUM"))
    out = loop.add_loop_output(rec.get_output(0), trt.LoopOutput.LAST_VALUE).get_output(0)
    out.name = "s"
    n.mark_output(out)
    xv = np.array([1.5, -2.0, 3.0, -0.25, 0.0], np.float32)
    assert float(trt.execute(n, {"x": xv})["s"]) == pytest.approx(float(np.abs(xv).sum()))


def test_infer_shapes_through_a_loop():
    n = _net()
    x = n.add_input("x", F32, (-1, 3))
    t_len = n.add_shuffle(n.add_slice(n.add_shape(x).get_output(0), (0,), (1,), (1,)).get_output(0))
    t_len.reshape_dims = ()
    count = n.add_cast(t_len.get_output(0), trt.int32).get_output(0)
    _, cat, _ = _scan_sum(n, x, count)
    cat.name = "cat"
    n.mark_output(cat)
    assert trt.infer_shapes(n, {"x": (7, 3)}) == {"cat": (7, 3)}
