"""Tensor building blocks shared by converters: broadcasting, axes, int-array arguments and shape-tensor arithmetic.

A *dim* is either a Python int (known while building) or a 1-element INT64 tensor computed at run time;
the ``sym_*`` functions fold ints and emit layers only for tensors, so a static model yields a network
without shape layers while a dynamic one never has an example shape baked in.
"""

from __future__ import annotations

from typing import Any, Sequence, Union

import numpy as np

from repogen.ir import Op
from repogen.trt.context import ConversionContext

Dim = Union[int, Any]


# --- axes -------------------------------------------------------------------------------------------
def norm_axis(axis: int, rank: int) -> int:
    return axis + rank if axis < 0 else axis


def norm_axes(axes: Sequence[int], rank: int) -> list[int]:
    return sorted({norm_axis(int(a), rank) for a in axes})


def axes_mask(axes: Sequence[int]) -> int:
    mask = 0
    for a in axes:
        mask |= 1 << a
    return mask


def rank(t: Any) -> int:
    return len(t.shape)


# --- elementwise ------------------------------------------------------------------------------------
def _as_tensor(ctx: ConversionContext, x: Any, like: Any) -> Any:
    if isinstance(x, (int, float, bool, np.number)):
        # a number becomes a [1, 1, ...] constant of like's rank: no reshape layer to broadcast it
        return ctx.const(np.full((1,) * rank(like), x), dtype=like.dtype)
    if isinstance(x, (np.ndarray, list)):
        return ctx.const(np.asarray(x), dtype=like.dtype)
    return x


def ew(ctx: ConversionContext, a: Any, b: Any, op: str, axis: int = -1) -> Any:
    """``a <op> b`` with Paddle broadcasting (legacy ``axis`` or numpy style); numbers take a's type."""
    trt = ctx.trt
    if not hasattr(a, "dtype"):
        a = _as_tensor(ctx, a, b)
    b = _as_tensor(ctx, b, a)
    if a.dtype != b.dtype:
        # Paddle promotes (int * float -> float); a strongly typed network needs the cast spelled out
        if ctx.is_float(b) and not ctx.is_float(a):
            a = ctx.cast(a, b.dtype)
        else:
            b = ctx.cast(b, a.dtype)
    a, b = broadcast_pair(ctx, a, b, axis)
    return ctx.named(ctx.network.add_elementwise(a, b, getattr(trt.ElementWiseOperation, op))).get_output(0)


def add(ctx, a, b):
    return ew(ctx, a, b, "SUM")


def sub(ctx, a, b):
    return ew(ctx, a, b, "SUB")


def mul(ctx, a, b):
    return ew(ctx, a, b, "PROD")


def div(ctx, a, b):
    return ew(ctx, a, b, "DIV")


def maximum(ctx, a, b):
    return ew(ctx, a, b, "MAX")


def minimum(ctx, a, b):
    return ew(ctx, a, b, "MIN")


def unary(ctx: ConversionContext, x: Any, op: str) -> Any:
    return ctx.named(ctx.network.add_unary(x, getattr(ctx.trt.UnaryOperation, op))).get_output(0)


def activation(ctx: ConversionContext, x: Any, kind: str, alpha: float | None = None,
               beta: float | None = None) -> Any:
    layer = ctx.named(ctx.network.add_activation(x, getattr(ctx.trt.ActivationType, kind)))
    if alpha is not None:
        layer.alpha = float(alpha)
    if beta is not None:
        layer.beta = float(beta)
    return layer.get_output(0)


def select(ctx: ConversionContext, cond: Any, a: Any, b: Any) -> Any:
    a = _as_tensor(ctx, a, b) if not hasattr(a, "dtype") else a
    b = _as_tensor(ctx, b, a)
    r = max(rank(cond), rank(a), rank(b))
    cond, a, b = (expand_rank(ctx, t, r) for t in (cond, a, b))
    return ctx.named(ctx.network.add_select(cond, a, b)).get_output(0)


def reduce(ctx: ConversionContext, x: Any, op: str, axes: Sequence[int], keep: bool) -> Any:
    layer = ctx.network.add_reduce(x, getattr(ctx.trt.ReduceOperation, op), axes_mask(axes), bool(keep))
    return ctx.named(layer).get_output(0)


def matmul_tensors(ctx: ConversionContext, x: Any, y: Any, trans_x: bool = False, trans_y: bool = False) -> Any:
    """numpy matmul with optional transposes of the last two dims; batch dims broadcast."""
    M = ctx.trt.MatrixOperation
    if x.dtype != y.dtype:
        y = ctx.cast(y, x.dtype)
    rx, ry = rank(x), rank(y)
    op_x = M.VECTOR if rx == 1 else (M.TRANSPOSE if trans_x else M.NONE)
    op_y = M.VECTOR if ry == 1 else (M.TRANSPOSE if trans_y else M.NONE)
    if rx > 1 and ry > 1 and rx != ry:
        x, y = expand_rank(ctx, x, max(rx, ry)), expand_rank(ctx, y, max(rx, ry))
    return ctx.named(ctx.network.add_matrix_multiply(x, op_x, y, op_y)).get_output(0)


def broadcast_pair(ctx: ConversionContext, a: Any, b: Any, axis: int = -1) -> tuple[Any, Any]:
    """Bring a and b to equal rank: legacy ``axis`` puts b's dims at a[axis:], -1 aligns trailing dims."""
    ra, rb = rank(a), rank(b)
    if ra == rb:
        return a, b
    if axis is None or axis == -1 or ra < rb:
        return expand_rank(ctx, a, max(ra, rb)), expand_rank(ctx, b, max(ra, rb))
    axis = norm_axis(axis, ra)
    # legacy: Y's trailing size-1 dims may be dropped before aligning at axis (Paddle trims them)
    dims = dims_of(ctx, b)
    while len(dims) > 1 and len(dims) + axis > ra and dims[-1] == 1:
        dims.pop()
    target = [1] * axis + dims + [1] * (ra - axis - len(dims))
    return a, reshape(ctx, b, target)


def expand_rank(ctx: ConversionContext, t: Any, r: int) -> Any:
    """Prepend 1-dims (numpy broadcasting) until t has rank r."""
    k = r - rank(t)
    if k <= 0:
        return t
    return reshape(ctx, t, [1] * k + dims_of(ctx, t))


# --- shape arithmetic -------------------------------------------------------------------------------
def shape_of(ctx: ConversionContext, t: Any) -> Any:
    """The run-time shape of t as a 1-D INT64 tensor."""
    s = ctx.named(ctx.network.add_shape(t)).get_output(0)
    return ctx.cast(s, ctx.trt.DataType.INT64)


def dims_of(ctx: ConversionContext, t: Any) -> list[Dim]:
    """t's dims: ints where the network knows them, 1-element shape tensors where it does not."""
    static = [int(d) for d in t.shape]
    if all(d >= 0 for d in static):
        return static
    shp = shape_of(ctx, t)
    return [d if d >= 0 else gather_1d(ctx, shp, [i]) for i, d in enumerate(static)]


def gather_1d(ctx: ConversionContext, t: Any, indices: Sequence[int]) -> Any:
    idx = ctx.const(np.asarray(indices, dtype=np.int64))
    return ctx.named(ctx.network.add_gather(t, idx, 0)).get_output(0)


def is_static(dims: Sequence[Dim]) -> bool:
    return all(isinstance(d, (int, np.integer)) for d in dims)


def dim_tensor(ctx: ConversionContext, d: Dim) -> Any:
    if isinstance(d, (int, np.integer)):
        return ctx.const(np.asarray([int(d)], dtype=np.int64))
    if rank(d) == 0:
        return reshape(ctx, d, [1])
    return ctx.cast(d, ctx.trt.DataType.INT64)


def shape_tensor(ctx: ConversionContext, dims: Sequence[Dim]) -> Any:
    """A 1-D INT64 tensor from dims (concatenating run-time pieces and constants)."""
    if is_static(dims):
        return ctx.const(np.asarray([int(d) for d in dims], dtype=np.int64).reshape(len(dims)))
    pieces, run = [], []
    for d in dims:
        if isinstance(d, (int, np.integer)):
            run.append(int(d))
            continue
        if run:
            pieces.append(ctx.const(np.asarray(run, dtype=np.int64)))
            run = []
        pieces.append(dim_tensor(ctx, d))
    if run:
        pieces.append(ctx.const(np.asarray(run, dtype=np.int64)))
    return concat(ctx, pieces, 0)


def split_dims(ctx: ConversionContext, shp: Any) -> list[Dim]:
    """A 1-D shape tensor (or constant array) as a list of dims."""
    if isinstance(shp, (list, tuple, np.ndarray)):
        return [int(v) for v in np.asarray(shp).reshape(-1)]
    n = int(shp.shape[0])
    if n < 0:
        raise ctx.fail("a shape tensor of unknown length cannot be split into dims")
    shp = ctx.cast(shp, ctx.trt.DataType.INT64)
    return [gather_1d(ctx, shp, [i]) for i in range(n)]


def _sym(ctx: ConversionContext, a: Dim, b: Dim, op: str, fold) -> Dim:
    if isinstance(a, (int, np.integer)) and isinstance(b, (int, np.integer)):
        return int(fold(int(a), int(b)))
    return ew(ctx, dim_tensor(ctx, a), dim_tensor(ctx, b), op)


def sym_add(ctx, a, b):
    return _sym(ctx, a, b, "SUM", lambda x, y: x + y)


def sym_sub(ctx, a, b):
    return _sym(ctx, a, b, "SUB", lambda x, y: x - y)


def sym_mul(ctx, a, b):
    return _sym(ctx, a, b, "PROD", lambda x, y: x * y)


def sym_floordiv(ctx, a, b):
    return _sym(ctx, a, b, "FLOOR_DIV", lambda x, y: x // y)


def sym_min(ctx, a, b):
    return _sym(ctx, a, b, "MIN", min)


def sym_max(ctx, a, b):
    return _sym(ctx, a, b, "MAX", max)


def sym_prod(ctx, dims: Sequence[Dim]) -> Dim:
    out: Dim = 1
    for d in dims:
        out = sym_mul(ctx, out, d)
    return out


def sym_ceildiv(ctx, a: Dim, b: Dim) -> Dim:
    # ceil(a / b) == -((-a) // b), valid for either sign of b
    return sym_sub(ctx, 0, sym_floordiv(ctx, sym_sub(ctx, 0, a), b))


# --- shuffles and slices -----------------------------------------------------------------------------
def reshape(ctx: ConversionContext, t: Any, dims: Sequence[Dim] | Any, placeholders: bool = False) -> Any:
    """Reshape to dims (ints and run-time dims); with ``placeholders`` 0 copies the input dim (Paddle)."""
    layer = ctx.named(ctx.network.add_shuffle(t))
    if isinstance(dims, (list, tuple)) and is_static(dims):
        layer.reshape_dims = tuple(int(d) for d in dims)
    else:
        layer.set_input(1, dims if not isinstance(dims, (list, tuple)) else shape_tensor(ctx, dims))
    layer.zero_is_placeholder = bool(placeholders)
    return layer.get_output(0)


def transpose(ctx: ConversionContext, t: Any, perm: Sequence[int]) -> Any:
    if list(perm) == list(range(len(perm))):
        return t
    layer = ctx.named(ctx.network.add_shuffle(t))
    layer.first_transpose = tuple(int(p) for p in perm)
    return layer.get_output(0)


def unsqueeze(ctx: ConversionContext, t: Any, axes: Sequence[int]) -> Any:
    out_rank = rank(t) + len(axes)
    axes = norm_axes(axes, out_rank)
    src = iter(dims_of(ctx, t))
    return reshape(ctx, t, [1 if i in axes else next(src) for i in range(out_rank)])


def squeeze(ctx: ConversionContext, t: Any, axes: Sequence[int]) -> Any:
    axes = norm_axes(axes, rank(t))
    if rank(t) == 1 and axes == [0]:
        # vector -> scalar as a gather with a 0-D index (the NumPy backend mis-executes a rank-0 reshape)
        idx = ctx.const(np.asarray(0, dtype=np.int64))
        return ctx.named(ctx.network.add_gather(t, idx, 0)).get_output(0)
    return reshape(ctx, t, [d for i, d in enumerate(dims_of(ctx, t)) if i not in axes])


def concat(ctx: ConversionContext, tensors: Sequence[Any], axis: int) -> Any:
    if len(tensors) == 1:
        return tensors[0]
    layer = ctx.named(ctx.network.add_concatenation(list(tensors)))
    layer.axis = int(axis)
    return layer.get_output(0)


def slice_(ctx: ConversionContext, t: Any, starts: Sequence[Dim], sizes: Sequence[Dim],
           strides: Sequence[Dim] | None = None, mode: str | None = None, fill: Any = None) -> Any:
    """A slice layer; run-time starts/sizes/strides go in as shape tensors."""
    r = rank(t)
    strides = list(strides) if strides is not None else [1] * r
    static = is_static(starts) and is_static(sizes) and is_static(strides)
    layer = ctx.named(ctx.network.add_slice(
        t, tuple(int(s) for s in starts) if is_static(starts) else (0,) * r,
        tuple(int(s) for s in sizes) if is_static(sizes) else (1,) * r,
        tuple(int(s) for s in strides) if is_static(strides) else (1,) * r))
    if not static:
        if not is_static(starts):
            layer.set_input(1, shape_tensor(ctx, starts))
        if not is_static(sizes):
            layer.set_input(2, shape_tensor(ctx, sizes))
        if not is_static(strides):
            layer.set_input(3, shape_tensor(ctx, strides))
    if mode is not None:
        layer.mode = getattr(ctx.trt.SampleMode, mode)
    if fill is not None:
        layer.set_input(4, fill)
    return layer.get_output(0)


def broadcast_to(ctx: ConversionContext, t: Any, dims: Sequence[Dim]) -> Any:
    """Expand size-1 dims of t to dims (a stride-0 slice: TensorRT's broadcast)."""
    t = expand_rank(ctx, t, len(dims))
    src = dims_of(ctx, t)
    if is_static(src) and is_static(dims) and list(src) == [int(d) for d in dims]:
        return t
    strides: list[Dim] = []
    for s, d in zip(src, dims):
        if isinstance(s, (int, np.integer)):
            strides.append(0 if s == 1 else 1)
        else:  # a run-time dim is 1 or the target itself: stride = min(s - 1, 1)
            strides.append(sym_min(ctx, sym_sub(ctx, s, 1), 1))
    return slice_(ctx, t, [0] * len(dims), list(dims), strides)


def fill(ctx: ConversionContext, dims: Sequence[Dim], value: float, dtype: Any) -> Any:
    """A tensor of shape dims filled with value (a broadcast constant, so shapes may be run-time)."""
    scalar = ctx.const(np.full([1] * len(dims), value), dtype=dtype)
    if is_static(dims):
        return ctx.const(np.full([int(d) for d in dims], value), dtype=dtype)
    return broadcast_to(ctx, scalar, dims)



def iota(ctx: ConversionContext, n: Dim, dtype: Any, start: Any = 0, step: Any = 1) -> Any:
    """1-D [start, start + step, ...] of length n (an int or a run-time dim): a LINSPACE fill.

    start/step are numbers or tensors (any shape of one element), taken in dtype.
    """
    if dtype not in (ctx.trt.DataType.INT32, ctx.trt.DataType.INT64, ctx.trt.DataType.FLOAT):
        # a LINSPACE fill only produces INT32, INT64 or FLOAT (the real builder refuses HALF)
        return ctx.cast(iota(ctx, n, ctx.trt.DataType.FLOAT, start, step), dtype)
    layer = ctx.named(ctx.network.add_fill((int(n),) if isinstance(n, (int, np.integer)) else (1,),
                                           ctx.trt.FillOperation.LINSPACE, dtype))
    if not isinstance(n, (int, np.integer)):
        layer.set_input(0, shape_tensor(ctx, [n]))
    if hasattr(start, "dtype") or hasattr(step, "dtype"):
        # TensorRT takes either both as attributes or both as tensors: alpha 0-D, beta 1-D
        a = ctx.cast(start, dtype) if hasattr(start, "dtype") else ctx.const(np.asarray(start), dtype=dtype)
        b = ctx.cast(step, dtype) if hasattr(step, "dtype") else ctx.const(np.asarray([step]), dtype=dtype)
        layer.set_input(1, squeeze(ctx, a, list(range(rank(a)))) if rank(a) else a)
        layer.set_input(2, reshape(ctx, b, [1]) if rank(b) != 1 else b)
    else:
        layer.alpha, layer.beta = start, step
    return layer.get_output(0)

# --- op arguments -------------------------------------------------------------------------------------
def int_array(ctx: ConversionContext, op: Op, name: str, *aliases: str, default: Any = None) -> Any:
    """An IntArray argument as a list of ints when known now, else a 1-D INT64 shape tensor.

    It may arrive as attribute ``name``, as 1-D tensor input ``name`` or as the scalar tensors of input
    ``name_tensor_list`` (see repogen.ir); legacy spellings are passed as aliases.
    """
    for n in (name,) + aliases:
        lst = op.inputs.get(n + "_tensor_list") or op.inputs.get(n.capitalize() + "TensorList")
        if lst:
            consts = [ctx.const_value(v) for v in lst]
            if all(c is not None for c in consts):
                return [int(np.asarray(c).reshape(-1)[0]) for c in consts]
            return shape_tensor(ctx, [int(np.asarray(c).reshape(-1)[0]) if c is not None
                                      else reshape(ctx, ctx.cast(ctx.get(v), ctx.trt.DataType.INT64), [1])
                                      for c, v in zip(consts, lst)])
        src = op.input(n)
        if src is not None:
            c = ctx.const_value(src)
            if c is not None:
                return [int(v) for v in np.asarray(c).reshape(-1)]
            t = ctx.cast(ctx.get(src), ctx.trt.DataType.INT64)
            return reshape(ctx, t, [1]) if rank(t) == 0 else t
    for n in (name,) + aliases:
        if n in op.attrs and op.attrs[n] is not None:
            v = op.attrs[n]
            return [int(x) for x in (v if isinstance(v, (list, tuple, np.ndarray)) else [v])]
    return default


def static_int_array(ctx: ConversionContext, op: Op, name: str, *aliases: str, default: Any = None) -> list[int]:
    v = int_array(ctx, op, name, *aliases, default=default)
    if v is None:
        raise ctx.fail(f"missing argument {name!r}")
    if not isinstance(v, list):
        raise ctx.fail(f"argument {name!r} is computed at run time; this op needs it at build time")
    return v


def scalar_arg(ctx: ConversionContext, op: Op, name: str, *aliases: str, default: Any = None) -> Any:
    """A Scalar argument: a float when known now, else a tensor."""
    for n in (name,) + aliases:
        src = op.input(n) or (op.inputs.get(n + "_tensor") or [None])[0]
        if src is not None:
            c = ctx.const_value(src)
            if c is not None:
                return np.asarray(c).reshape(-1)[0].item()
            return ctx.get(src)
    for n in (name,) + aliases:
        if n in op.attrs and op.attrs[n] is not None:
            v = op.attrs[n]
            if isinstance(v, (list, tuple)) and len(v) == 1:
                v = v[0]
            return v
    return default


def out_dtype(ctx: ConversionContext, op: Op, slot: str = "out") -> Any:
    """The TensorRT type of an op's output as the graph declares it."""
    name = op.output(slot) or next(op.output_names())
    return ctx.trt_type(ctx.value(name).dtype)


def norm_axes_ordered(axes, rank_: int) -> list[int]:
    """Negative axes made positive, order kept (permutations)."""
    return [norm_axis(int(a), rank_) for a in axes]
