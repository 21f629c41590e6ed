"""Sorting and indexing: topk, argsort, cumsum, gather_nd, index_select, take_along_axis, flip, roll,
tril/triu, one_hot, set_value."""

from __future__ import annotations

import numpy as np

from repogen.trt.helpers import tensors as H
from repogen.trt.helpers.slicing import slice_axes
from repogen.trt.limits import TOPK_MAX_K
from repogen.trt.converter_table import converter, refuse, RUN_TIME_AXIS


def _axis(ctx, op, x, default=-1):
    axis = H.scalar_arg(ctx, op, "axis", default=default)
    if hasattr(axis, "dtype"):
        raise ctx.fail("an axis computed at run time is not supported")
    return H.norm_axis(int(axis), H.rank(x))


def _topk(ctx, x, k, axis: int, largest: bool):
    """(values, indices as INT64) of TensorRT's TopK; k an int or a run-time dim (0-D for the layer)."""
    trt = ctx.trt
    op = trt.TopKOperation.MAX if largest else trt.TopKOperation.MIN
    layer = ctx.named(ctx.network.add_topk(x, op, int(k) if isinstance(k, (int, np.integer)) else 1, 1 << axis))
    if not isinstance(k, (int, np.integer)):
        layer.set_input(1, H.squeeze(ctx, ctx.cast(H.dim_tensor(ctx, k), trt.DataType.INT32), [0]))
    return layer.get_output(0), ctx.cast(layer.get_output(1), trt.DataType.INT64)


def topk_limit(op, shapes) -> str | None:
    """TensorRT's TopK takes k <= TOPK_MAX_K; argsort is a TopK over the whole sorted axis."""
    name = op.output("out") if op.type == "topk" else op.input("x")
    shape = shapes.get(name) if name else None
    if not shape:
        return None
    k = int(shape[int(op.attrs.get("axis", -1))])
    if k > TOPK_MAX_K:
        return f"layer limit: {op.type} over k = {k} at the profile's max shapes; TensorRT's TopK takes k <= {TOPK_MAX_K}"
    return None


@converter("topk", limit=topk_limit)
def topk(ctx, op):
    # legacy top_k (v1) has no axis / largest: the last axis, largest first
    x = ctx.input(op, "x")
    k = H.int_array(ctx, op, "k")
    if k is None:
        raise ctx.fail("missing k")
    k = k[0] if isinstance(k, list) else k
    values, indices = _topk(ctx, x, k, _axis(ctx, op, x), bool(ctx.attr(op, "largest", default=True)))
    ctx.output(op, values)
    ctx.output(op, ctx.cast(indices, H.out_dtype(ctx, op, "indices")), "indices")


@converter("argsort", limit=topk_limit)
def argsort(ctx, op):
    # a full-length TopK; TensorRT's K limit (3840) bounds the sorted axis
    x = ctx.input(op, "x")
    axis = _axis(ctx, op, x)
    values, indices = _topk(ctx, x, H.dims_of(ctx, x)[axis], axis, bool(ctx.attr(op, "descending", default=False)))
    ctx.output(op, values)
    ctx.output(op, ctx.cast(indices, H.out_dtype(ctx, op, "indices")), "indices")


@converter("cumsum")
def cumsum(ctx, op):
    x = ctx.input(op, "x")
    if ctx.attr(op, "flatten", default=False):
        x = H.reshape(ctx, x, [-1])
    want = H.out_dtype(ctx, op)
    if x.dtype != want:
        x = ctx.cast(x, want)
    axis = ctx.const(np.asarray(_axis(ctx, op, x), dtype=np.int32))
    layer = ctx.network.add_cumulative(x, axis, ctx.trt.CumulativeOperation.SUM,
                                       bool(ctx.attr(op, "exclusive", default=False)),
                                       bool(ctx.attr(op, "reverse", default=False)))
    ctx.output(op, ctx.named(layer).get_output(0))


def _gather(ctx, data, index, axis: int):
    return ctx.named(ctx.network.add_gather(data, index, axis)).get_output(0)


@converter("gather_nd")
def gather_nd(ctx, op):
    # out = x[index[..., 0], index[..., 1], ...]: TensorRT's ND gather without batch dims
    x, index = ctx.input(op, "x"), ctx.input(op, "index")
    layer = ctx.named(ctx.network.add_gather_v2(x, index, ctx.trt.GatherMode.ND))
    layer.num_elementwise_dims = 0
    ctx.output(op, layer.get_output(0))


@converter("index_select")
def index_select(ctx, op):
    x, index = ctx.input(op, "x"), ctx.input(op, "index")
    ctx.output(op, _gather(ctx, x, index, _axis(ctx, op, x, 0)))


@converter("take_along_axis")
def take_along_axis(ctx, op):
    # the reader's graph already broadcast indices against arr (Paddle emits the expand ops)
    arr, indices = ctx.input(op, "arr"), ctx.input(op, "indices")
    layer = ctx.named(ctx.network.add_gather_v2(arr, indices, ctx.trt.GatherMode.ELEMENT))
    layer.axis = _axis(ctx, op, arr, 0)
    ctx.output(op, layer.get_output(0))


@converter("flip")
def flip(ctx, op):
    # a slice from the last element backwards along each flipped axis
    x = ctx.input(op, "x")
    dims = H.dims_of(ctx, x)
    r = len(dims)
    starts, strides = [0] * r, [1] * r
    for a in H.norm_axes(ctx.attr(op, "axis", default=[]), r):
        starts[a], strides[a] = H.sym_sub(ctx, dims[a], 1), -1
    ctx.output(op, H.slice_(ctx, x, starts, dims, strides))


@converter("roll")
def roll(ctx, op):
    # out[i] = x[(i - shift) mod d]: a WRAP slice starting at -shift; no axis rolls the flattened tensor
    x = ctx.input(op, "x")
    shifts = H.int_array(ctx, op, "shifts")
    axes = list(ctx.attr(op, "axis", default=[]) or [])
    flat = not axes
    src = x
    if flat:
        x, axes = H.reshape(ctx, x, [-1]), [0]
    dims = H.dims_of(ctx, x)
    shifts = shifts if isinstance(shifts, list) else H.split_dims(ctx, shifts)
    starts = [0] * len(dims)
    for a, s in zip(H.norm_axes_ordered(axes, len(dims)), shifts):
        starts[a] = H.sym_sub(ctx, starts[a], s)
    out = H.slice_(ctx, x, starts, dims, mode="WRAP")
    ctx.output(op, H.reshape(ctx, out, H.dims_of(ctx, src)) if flat else out)


@converter("tril_triu", "tril", "triu")
def tril_triu(ctx, op):
    # keep x where col - row <= diagonal (tril) or >= diagonal (triu) over the last two dims
    x = ctx.input(op, "x")
    lower = op.type == "tril" if op.type != "tril_triu" else bool(ctx.attr(op, "lower", default=True))
    diagonal = int(ctx.attr(op, "diagonal", default=0))
    dims = H.dims_of(ctx, x)
    i64 = ctx.trt.DataType.INT64
    rows = H.reshape(ctx, H.iota(ctx, dims[-2], i64), [-1, 1])
    cols = H.reshape(ctx, H.iota(ctx, dims[-1], i64), [1, -1])
    offset = H.sub(ctx, cols, rows)
    keep = H.ew(ctx, offset, diagonal + 1, "LESS") if lower else H.ew(ctx, offset, diagonal - 1, "GREATER")
    zero = ctx.const(np.zeros([1] * H.rank(x)), dtype=x.dtype)
    ctx.output(op, H.select(ctx, keep, x, zero))


@converter("one_hot")
def one_hot(ctx, op):
    x = ctx.input(op, "x")
    depth = H.int_array(ctx, op, "num_classes", "depth")
    if depth is None:
        raise ctx.fail("missing num_classes")
    want = H.out_dtype(ctx, op)
    depth = ctx.const(np.asarray(depth[0], dtype=np.int32)) if isinstance(depth, list) else \
        H.squeeze(ctx, ctx.cast(depth, ctx.trt.DataType.INT32), [0])
    values = ctx.const(np.asarray([0, 1]), dtype=want)
    ctx.output(op, ctx.named(ctx.network.add_one_hot(x, values, depth, -1)).get_output(0))


# --- scatters ---------------------------------------------------------------------------------------------
def _scatter(ctx, data, indices, updates, mode: str, axis: int = 0):
    layer = ctx.named(ctx.network.add_scatter(data, indices, ctx.cast(updates, data.dtype),
                                              getattr(ctx.trt.ScatterMode, mode)))
    layer.axis = axis
    return layer.get_output(0)


@converter("put_along_axis")
def put_along_axis(ctx, op):
    # arr with arr[..., indices[...], ...] = values along axis (Paddle has already broadcast values to indices)
    arr, indices, values = ctx.input(op, "arr"), ctx.input(op, "indices"), ctx.input(op, "values")
    if str(ctx.attr(op, "reduce", default="assign")) != "assign":
        raise ctx.fail(f"put_along_axis reduce {ctx.attr(op, 'reduce')!r}: only 'assign' maps to a scatter")
    axis = _axis(ctx, op, arr, 0)
    values = H.broadcast_to(ctx, values, H.dims_of(ctx, indices))
    ctx.output(op, _scatter(ctx, arr, indices, values, "ELEMENT", axis))


@converter("index_put", layers=("NonZero",))
def index_put(ctx, op):
    # x[i0, i1, ...] = value with integer index tensors for the leading dims: an ND scatter
    x = ctx.input(op, "x")
    idx = ctx.inputs(op, "indices")
    if ctx.attr(op, "accumulate", default=False):
        raise ctx.fail("index_put with accumulate=True has no TensorRT scatter (duplicate indices would race)")
    if any(t.dtype == ctx.trt.DataType.BOOL for t in idx):
        return ctx.output(op, _masked_put(ctx, x, idx, ctx.input(op, "value")))
    i64 = ctx.trt.DataType.INT64
    r = max(H.rank(t) for t in idx)
    idx = [H.expand_rank(ctx, ctx.cast(t, i64), r) for t in idx]
    shape = H.dims_of(ctx, idx[0])
    for t in idx[1:]:
        shape = [H.sym_max(ctx, a, b) for a, b in zip(shape, H.dims_of(ctx, t))]
    stacked = H.concat(ctx, [H.unsqueeze(ctx, H.broadcast_to(ctx, t, shape), [r]) for t in idx], r)
    updates = H.broadcast_to(ctx, ctx.input(op, "value"), shape + H.dims_of(ctx, x)[len(idx):])
    ctx.output(op, _scatter(ctx, x, stacked, updates, "ND"))


def _nonzero_rows(ctx, mask):
    """[count, rank(mask)] INT64 coordinates of the true elements of mask (NonZero, transposed)."""
    nz = ctx.named(ctx.network.add_non_zero(mask, ctx.trt.DataType.INT64)).get_output(0)
    return H.transpose(ctx, nz, [1, 0])


def _masked_put(ctx, x, idx, value):
    """x[mask] = value for one bool mask over x's leading dims.

    Values that broadcast over the masked positions (shape [1] or the trailing dims) make a select between
    x and the broadcast value: no data-dependent shape. Values with one row per true element (their count
    known only at run time) go through NonZero + an ND scatter."""
    if len(idx) != 1:
        raise ctx.fail("index_put with a bool mask mixed with other index tensors is not supported")
    mask = idx[0]
    mr, r = H.rank(mask), H.rank(x)
    trailing = r - mr
    v = ctx.cast(value, x.dtype)
    vr = H.rank(v)
    if vr <= trailing or (vr == trailing + 1 and int(v.shape[0]) == 1):
        if vr == trailing + 1:
            v = H.squeeze(ctx, v, [0]) if vr > 1 else v
        m = H.reshape(ctx, mask, H.dims_of(ctx, mask) + [1] * trailing) if trailing else mask
        return H.select(ctx, m, H.broadcast_to(ctx, v, H.dims_of(ctx, x)), x)
    if vr != trailing + 1:
        raise ctx.fail(f"index_put value of rank {vr} for a rank-{mr} mask over a rank-{r} tensor")
    return _scatter(ctx, x, _nonzero_rows(ctx, mask), v, "ND")


@converter("masked_select", layers=("NonZero",))
def masked_select(ctx, op):
    # x[mask] flattened: a mask smaller than x broadcasts first (Paddle's rule), then NonZero + GatherND
    x, mask = ctx.input(op, "x"), ctx.input(op, "mask")
    r = max(H.rank(x), H.rank(mask))
    x, mask = H.expand_rank(ctx, x, r), H.expand_rank(ctx, mask, r)
    dims = [H.sym_max(ctx, a, b) for a, b in zip(H.dims_of(ctx, x), H.dims_of(ctx, mask))]
    x, mask = H.broadcast_to(ctx, x, dims), H.broadcast_to(ctx, mask, dims)
    layer = ctx.named(ctx.network.add_gather_v2(x, _nonzero_rows(ctx, mask), ctx.trt.GatherMode.ND))
    ctx.output(op, layer.get_output(0))


# --- set_value -------------------------------------------------------------------------------------------
def _region_mask(ctx, x, axes, starts, ends, steps):
    """bool mask of x's shape, true inside the strided slice, and per axis the slice position of each index."""
    dims = H.dims_of(ctx, x)
    r = len(dims)
    i64 = ctx.trt.DataType.INT64
    mask, positions = None, {}
    for a, s, e, k in zip(axes, starts, ends, steps):
        a = H.norm_axis(int(a), r)
        # the first index the slice reads, via the slice layer's own clamping (helpers.slicing.slice_axes)
        probe = H.iota(ctx, dims[a], i64)
        first = H.slice_(ctx, slice_axes(ctx, probe, [0], [s], [e], [k]), [0], [1])
        count = H.dims_of(ctx, slice_axes(ctx, probe, [0], [s], [e], [k]))[0]
        delta = H.sub(ctx, probe, first) if k > 0 else H.sub(ctx, first, probe)
        pos = H.ew(ctx, delta, abs(k), "FLOOR_DIV")
        inside = H.ew(ctx, H.ew(ctx, delta, H.mul(ctx, pos, abs(k)), "EQUAL"),
                      H.ew(ctx, H.ew(ctx, pos, -1, "GREATER"), H.ew(ctx, pos, H.dim_tensor(ctx, count), "LESS"), "AND"),
                      "AND")
        view = [1] * r
        view[a] = -1
        inside = H.reshape(ctx, inside, view)
        mask = inside if mask is None else H.ew(ctx, mask, inside, "AND")
        positions[a] = H.maximum(ctx, H.minimum(ctx, pos, H.sym_sub(ctx, count, 1)), 0)
    return mask, positions


@converter("set_value", "set_value_with_tensor")
def set_value(ctx, op):
    # out = x with x[slices] = value: a select between x and the value spread over x's shape
    x = ctx.input(op, "x")
    axes = [int(a) for a in ctx.attr(op, "axes", default=[])]
    starts = H.static_int_array(ctx, op, "starts")
    ends = H.static_int_array(ctx, op, "ends")
    steps = H.static_int_array(ctx, op, "steps", default=[1] * len(axes))
    if ctx.attr(op, "none_axes", default=[]):
        raise ctx.fail("set_value with None axes is not supported")
    if any(k == 0 for k in steps):
        raise ctx.fail("set_value step 0")
    r = H.rank(x)
    if not axes:
        # no slice at all (x[mask] = v is index_put followed by this whole-tensor copy): out = values spread
        if op.type == "set_value":
            values = np.asarray(ctx.attr(op, "values", default=[0.0]))
            if values.size != 1:
                raise ctx.fail(f"set_value with {values.size} attribute values is not supported")
            return ctx.output(op, H.broadcast_to(ctx, ctx.const(values.reshape([1] * r), dtype=x.dtype),
                                                 H.dims_of(ctx, x)))
        v = ctx.cast(ctx.input(op, "values"), x.dtype)
        return ctx.output(op, H.broadcast_to(ctx, v, H.dims_of(ctx, x)))
    mask, positions = _region_mask(ctx, x, axes, starts, ends, steps)
    if op.type == "set_value":
        values = np.asarray(ctx.attr(op, "values", default=[0.0]))
        if values.size != 1:
            raise ctx.fail(f"set_value with {values.size} attribute values is not supported")
        return ctx.output(op, H.select(ctx, mask, ctx.const(values.reshape([1] * r), dtype=x.dtype), x))
    v = ctx.cast(ctx.input(op, "values"), x.dtype)
    # values are shaped like the slice with the decreased axes dropped: put them back, then broadcast
    dec = sorted(H.norm_axis(int(a), r) for a in (ctx.attr(op, "decrease_axes", default=[]) or []))
    kept = [a for a in range(r) if a not in dec]
    v = H.expand_rank(ctx, v, len(kept))
    vd = H.dims_of(ctx, v)
    v = H.reshape(ctx, v, [1 if a in dec else vd[kept.index(a)] for a in range(r)])
    for a, pos in positions.items():
        d = H.dims_of(ctx, v)[a]
        # a size-1 axis broadcasts: every position reads its one element
        idx = pos if not (isinstance(d, int) and d == 1) else H.mul(ctx, pos, 0)
        v = _gather(ctx, v, idx, a)
    ctx.output(op, H.select(ctx, mask, H.broadcast_to(ctx, v, H.dims_of(ctx, x)), x))


# what these converters refuse (repogen ops --refused, docs/refused.md)
refuse(("topk", "cumsum"), "`axis` computed at run time", RUN_TIME_AXIS)
refuse(("set_value", "set_value_with_tensor"), "`starts` / `ends` / `steps` computed at run time; `none_axes`",
       "the region mask is built from build-time bounds (slice/strided_slice take run-time bounds and steps)")
refuse(("set_value",), "`values` attribute with more than one value",
       "only a scalar attribute value is spread over the region (a tensor value converts)")
refuse(("index_put",), "`accumulate=True`", "TensorRT's scatter has no accumulate mode: duplicate indices would race")
refuse(("index_put",), "a bool mask together with integer index tensors",
       "a bool mask alone converts (select or NonZero + scatter); mixed indexing has no single scatter")
refuse(("put_along_axis",), "`reduce` other than 'assign'", "TensorRT's scatter only assigns")
