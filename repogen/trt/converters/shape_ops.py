"""Layout ops: reshape, flatten, (un)squeeze, transpose, concat, split, stack, slice, pad, expand, tile."""

from __future__ import annotations

import numpy as np

from repogen.trt.helpers import tensors as H
from repogen.trt.helpers.slicing import slice_axes
from repogen.trt.converter_table import converter, refuse, RUN_TIME_AXIS


@converter("reshape")
def reshape(ctx, op):
    # Paddle: 0 copies the input dim at that index, -1 is inferred (TensorRT's zero-placeholder rule)
    x = ctx.input(op, "x")
    shape = H.int_array(ctx, op, "shape")
    ctx.output(op, H.reshape(ctx, x, shape, placeholders=True))


@converter("flatten")
def flatten(ctx, op):
    x = ctx.input(op, "x")
    r = H.rank(x)
    if r == 0:
        return ctx.output(op, H.reshape(ctx, x, [1]))
    start = H.norm_axis(int(ctx.attr(op, "start_axis", default=1)), r)
    stop = H.norm_axis(int(ctx.attr(op, "stop_axis", default=-1)), r)
    dims = H.dims_of(ctx, x)
    ctx.output(op, H.reshape(ctx, x, dims[:start] + [H.sym_prod(ctx, dims[start:stop + 1])] + dims[stop + 1:]))


@converter("flatten2")
def flatten2(ctx, op):
    # legacy: 2-D [prod(dims[:axis]), prod(dims[axis:])]
    x = ctx.input(op, "x")
    axis = int(ctx.attr(op, "axis", default=1))
    dims = H.dims_of(ctx, x)
    ctx.output(op, H.reshape(ctx, x, [H.sym_prod(ctx, dims[:axis]), H.sym_prod(ctx, dims[axis:])]))


@converter("squeeze")
def squeeze(ctx, op):
    x = ctx.input(op, "x")
    axes = H.static_int_array(ctx, op, "axis", default=[])
    shape = [int(d) for d in x.shape]
    r = len(shape)
    if not axes:
        axes = [i for i, d in enumerate(shape) if d == 1]
    # Paddle leaves an axis whose size is not 1 in place; a run-time dim named here is taken to be 1
    axes = [a for a in H.norm_axes(axes, r) if shape[a] in (1, -1)]
    ctx.output(op, H.squeeze(ctx, x, axes))


@converter("unsqueeze")
def unsqueeze(ctx, op):
    # axes are inserted one after another, each counted in the rank reached so far
    x = ctx.input(op, "x")
    dims = H.dims_of(ctx, x)
    for a in H.static_int_array(ctx, op, "axis", default=[]):
        a = a + len(dims) + 1 if a < 0 else a
        dims.insert(min(a, len(dims)), 1)
    ctx.output(op, H.reshape(ctx, x, dims))


@converter("transpose")
def transpose(ctx, op):
    x = ctx.input(op, "x")
    ctx.output(op, H.transpose(ctx, x, H.norm_axes_ordered(ctx.attr(op, "perm"), H.rank(x))))


def _same_types(ctx, tensors):
    want = next((t.dtype for t in tensors if ctx.is_float(t)), tensors[0].dtype)
    return [ctx.cast(t, want) for t in tensors]


@converter("concat")
def concat(ctx, op):
    xs = _same_types(ctx, ctx.inputs(op, "x"))
    axis = H.scalar_arg(ctx, op, "axis", default=0)
    if hasattr(axis, "dtype"):
        raise ctx.fail("concat axis computed at run time is not supported")
    ctx.output(op, H.concat(ctx, xs, H.norm_axis(int(axis), H.rank(xs[0]))))


@converter("stack")
def stack(ctx, op):
    xs = _same_types(ctx, ctx.inputs(op, "x"))
    axis = H.norm_axis(int(ctx.attr(op, "axis", default=0)), H.rank(xs[0]) + 1)
    ctx.output(op, H.concat(ctx, [H.unsqueeze(ctx, t, [axis]) for t in xs], axis))


def _split(ctx, op, x, axis: int, sizes: list, squeeze: bool = False):
    """Slices of x along axis with the given sizes (ints or run-time dims), bound to op's outputs."""
    dims = H.dims_of(ctx, x)
    names = op.outputs.get("out") or next(v for v in op.outputs.values() if v)
    start = 0
    for name, size in zip(names, sizes):
        starts = [0] * len(dims)
        starts[axis] = start
        shape = list(dims)
        shape[axis] = size
        piece = H.slice_(ctx, x, starts, shape)
        ctx.set(name, H.squeeze(ctx, piece, [axis]) if squeeze else piece)
        start = H.sym_add(ctx, start, size)


def _axis_arg(ctx, op, x):
    axis = H.scalar_arg(ctx, op, "axis", default=0)
    if hasattr(axis, "dtype"):
        raise ctx.fail("split axis computed at run time is not supported")
    return H.norm_axis(int(axis), H.rank(x))


@converter("split")
def split(ctx, op):
    x = ctx.input(op, "x")
    axis = _axis_arg(ctx, op, x)
    sections = H.int_array(ctx, op, "sections")
    if sections is None:
        raise ctx.fail("missing argument 'sections'")
    if not isinstance(sections, list):
        sections = _runtime_sections(ctx, sections, H.dims_of(ctx, x)[axis])
    elif -1 in sections:  # the one -1 section takes what the others leave
        rest = H.sym_sub(ctx, H.dims_of(ctx, x)[axis], sum(s for s in sections if s != -1))
        sections = [rest if s == -1 else s for s in sections]
    _split(ctx, op, x, axis, sections)


def _runtime_sections(ctx, sections, dim):
    """Section sizes computed at run time (a 1-D INT64 tensor), the one -1 taking what the others leave:
    with m = (s == -1), the others sum to sum(s) + count(m), so s' = s + m * (dim - sum(s) - count(m) + 1)."""
    i64 = ctx.trt.DataType.INT64
    m = ctx.cast(H.ew(ctx, sections, -1, "EQUAL"), i64)
    total = H.add(ctx, H.reduce(ctx, sections, "SUM", [0], True), H.reduce(ctx, m, "SUM", [0], True))
    fill = H.add(ctx, H.sub(ctx, H.dim_tensor(ctx, dim), total), 1)
    return H.split_dims(ctx, H.add(ctx, sections, H.mul(ctx, m, fill)))


@converter("split_with_num")
def split_with_num(ctx, op):
    x = ctx.input(op, "x")
    axis = _axis_arg(ctx, op, x)
    num = int(ctx.attr(op, "num"))
    size = H.sym_floordiv(ctx, H.dims_of(ctx, x)[axis], num)
    _split(ctx, op, x, axis, [size] * num)


@converter("unstack", "unbind")
def unstack(ctx, op):
    x = ctx.input(op, "x", "input")
    axis = H.norm_axis(int(ctx.attr(op, "axis", default=0)), H.rank(x))
    count = len(op.outputs.get("out") or next(v for v in op.outputs.values() if v))
    _split(ctx, op, x, axis, [1] * count, squeeze=True)


# --- slicing -----------------------------------------------------------------------------------------
def _per_axis(ctx, v, n):
    return v if isinstance(v, list) else H.split_dims(ctx, v)


def _axes_starts_ends(ctx, op):
    """slice / strided_slice: the axes and one start and end per axis (static ints or 0-D tensors)."""
    axes = [int(a) for a in ctx.attr(op, "axes")]
    starts = _per_axis(ctx, H.int_array(ctx, op, "starts"), len(axes))
    ends = _per_axis(ctx, H.int_array(ctx, op, "ends"), len(axes))
    return axes, starts, ends


@converter("slice")
def slice_(ctx, op):
    x = ctx.input(op, "input", "x")
    y = slice_axes(ctx, x, *_axes_starts_ends(ctx, op))
    decrease = [H.norm_axis(int(a), H.rank(x)) for a in (ctx.attr(op, "decrease_axis", default=[]) or [])]
    ctx.output(op, H.squeeze(ctx, y, decrease) if decrease else y)


@converter("strided_slice")
def strided_slice(ctx, op):
    x = ctx.input(op, "x", "input")
    axes, starts, ends = _axes_starts_ends(ctx, op)
    strides = _per_axis(ctx, H.int_array(ctx, op, "strides", default=[1] * len(axes)), len(axes))
    ctx.output(op, slice_axes(ctx, x, axes, starts, ends, strides))


# --- padding -----------------------------------------------------------------------------------------
def pad_tensor(ctx, x, before, after, mode="FILL", value=0.0):
    """Pad (negative: crop) each dim; a slice starting before 0 reads the fill / reflect / clamp value."""
    dims = H.dims_of(ctx, x)
    sizes = [H.sym_add(ctx, H.sym_add(ctx, d, b), a) for d, b, a in zip(dims, before, after)]
    fill = None
    if mode == "FILL" and value != 0.0:
        fill = ctx.const(np.asarray(value), dtype=x.dtype)
    return H.slice_(ctx, x, [H.sym_sub(ctx, 0, b) for b in before], sizes, mode=mode, fill=fill)


@converter("pad")
def pad(ctx, op):
    x = ctx.input(op, "x")
    p = [int(v) for v in ctx.attr(op, "paddings")]
    value = H.scalar_arg(ctx, op, "pad_value", default=0.0)
    ctx.output(op, pad_tensor(ctx, x, p[0::2], p[1::2], "FILL", float(value)))


_PAD_MODES = {"constant": "FILL", "reflect": "REFLECT", "replicate": "CLAMP", "circular": "WRAP"}


@converter("pad3d")
def pad3d(ctx, op):
    # paddings = [left, right, top, bottom, front, back] on (W, H, D)
    # paddings computed at run time (from a shape) become run-time slice starts and sizes
    x = ctx.input(op, "x")
    p = H.int_array(ctx, op, "paddings")
    if p is None:
        raise ctx.fail("missing argument 'paddings'")
    p = p if isinstance(p, list) else H.split_dims(ctx, p)
    r = H.rank(x)
    fmt = str(ctx.attr(op, "data_format", default="NCDHW"))
    spatial = [r - 2, r - 3, r - 4] if fmt == "NDHWC" else [r - 1, r - 2, r - 3]  # W, H, D
    before, after = [0] * r, [0] * r
    for i, axis in enumerate(spatial):
        before[axis], after[axis] = p[2 * i], p[2 * i + 1]
    mode = _PAD_MODES.get(str(ctx.attr(op, "mode", default="constant")))
    if mode is None:
        raise ctx.fail(f"pad3d mode {ctx.attr(op, 'mode')!r} is not supported")
    ctx.output(op, pad_tensor(ctx, x, before, after, mode, float(ctx.attr(op, "pad_value", default=0.0))))


# --- broadcasting copies -----------------------------------------------------------------------------
@converter("expand")
def expand(ctx, op):
    # target[i] = shape[i], or x's dim where shape[i] == -1: max(shape, x dims) covers both (x dims are 1 or equal)
    x = ctx.input(op, "x")
    shape = H.int_array(ctx, op, "shape")
    n = len(shape) if isinstance(shape, list) else int(shape.shape[0])
    x = H.expand_rank(ctx, x, n)
    dims = H.dims_of(ctx, x)
    target = [H.sym_max(ctx, s, d) for s, d in zip(H.split_dims(ctx, shape), dims)] if not isinstance(shape, list) \
        else [d if s == -1 else s for s, d in zip(shape, dims)]
    ctx.output(op, H.broadcast_to(ctx, x, target))


@converter("expand_as")
def expand_as(ctx, op):
    x = ctx.input(op, "x")
    y_name = op.input("y")
    target = ctx.attr(op, "target_shape", default=None)
    if y_name is not None:
        target = H.dims_of(ctx, ctx.get(y_name))
    if not target:
        raise ctx.fail("expand_as needs y or target_shape")
    ctx.output(op, H.broadcast_to(ctx, x, [int(d) if isinstance(d, (int, np.integer)) else d for d in target]))


@converter("tile")
def tile(ctx, op):
    # a WRAP slice reading dims * repeats elements repeats x
    # repeat_times may be known only at run time (computed from a shape): the WRAP slice then takes its size
    # as a shape tensor, dims * repeats, and TensorRT wraps around the input as often as that asks
    x = ctx.input(op, "x")
    reps = H.int_array(ctx, op, "repeat_times", "RepeatTimes", default=None)
    if reps is None:
        raise ctx.fail("missing argument 'repeat_times'")
    if not isinstance(reps, list):
        reps = H.split_dims(ctx, reps)
    r = max(len(reps), H.rank(x))
    reps = [1] * (r - len(reps)) + list(reps)
    x = H.expand_rank(ctx, x, r)
    sizes = [H.sym_mul(ctx, d, k) for d, k in zip(H.dims_of(ctx, x), reps)]
    ctx.output(op, H.slice_(ctx, x, [0] * r, sizes, mode="WRAP"))


@converter("assign")
def assign(ctx, op):
    ctx.output(op, ctx.input(op, "x"))


# what these converters refuse (repogen ops --refused, docs/refused.md)
refuse(("concat", "split", "split_with_num"), "`axis` computed at run time", RUN_TIME_AXIS)
refuse(("squeeze", "unsqueeze"), "`axis` / `axes` computed at run time",
       "they decide the output's rank, which TensorRT fixes when building")
