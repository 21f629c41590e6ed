"""Python-style slicing (negative indices, clamping to the extent, negative strides) with static or run-time
bounds, as Paddle's slice / strided_slice and set_value take them."""

from __future__ import annotations

from typing import Any, Sequence

from repogen.trt.context import ConversionContext
from repogen.trt.helpers import tensors as H


def _clamped_index(ctx, i, d, lo, hi_offset):
    """Python-style index normalization: i < 0 counts from the end, then clamp to [lo, d + hi_offset]."""
    if isinstance(i, int) and isinstance(d, int):
        i = i + d if i < 0 else i
        return max(lo, min(i, d + hi_offset))
    if isinstance(i, int) and i >= 0:
        return H.sym_min(ctx, i, H.sym_add(ctx, d, hi_offset))
    if isinstance(i, int):
        return H.sym_max(ctx, lo, H.sym_add(ctx, d, i))
    it, dt = H.dim_tensor(ctx, i), H.dim_tensor(ctx, d)
    negative = ctx.cast(H.ew(ctx, it, 0, "LESS"), ctx.trt.DataType.INT64)
    it = H.add(ctx, it, H.mul(ctx, negative, dt))
    return H.sym_max(ctx, lo, H.sym_min(ctx, it, H.sym_add(ctx, dt, hi_offset)))


def _runtime_step_bounds(ctx, s, e, d, k):
    """start, end and element count for a step known only at run time, whose sign is unknown while building.

    Both Python rules in one formula: ``neg`` = 1 for a negative step; indices below 0 count from the end, then
    clamp to [-neg, d - neg]; count = max(0, ceil((e - s) / k)) (ceil division holds for either sign)."""
    i64 = ctx.trt.DataType.INT64
    kt, dt = H.dim_tensor(ctx, k), H.dim_tensor(ctx, d)
    neg = ctx.cast(H.ew(ctx, kt, 0, "LESS"), i64)

    def clamp(i):
        it = H.dim_tensor(ctx, i)
        below = ctx.cast(H.ew(ctx, it, 0, "LESS"), i64)
        it = H.add(ctx, it, H.mul(ctx, below, dt))
        return H.maximum(ctx, H.mul(ctx, neg, -1),
                         H.minimum(ctx, it, H.sub(ctx, dt, neg)))

    s, e = clamp(s), clamp(e)
    size = H.sym_max(ctx, 0, H.sym_ceildiv(ctx, H.sym_sub(ctx, e, s), kt))
    return s, e, size


def slice_axes(ctx: ConversionContext, x: Any, axes: Sequence[int], starts: Sequence[H.Dim], ends: Sequence[H.Dim],
               strides: Sequence[int] | None = None) -> Any:
    """x[starts:ends:strides] along axes, Python style (see _clamped_index); strides are ints or run-time dims."""
    dims = H.dims_of(ctx, x)
    r = len(dims)
    st, sz, sd = [0] * r, list(dims), [1] * r
    strides = strides or [1] * len(axes)
    for a, s, e, k in zip(axes, starts, ends, strides):
        a = H.norm_axis(int(a), r)
        d = dims[a]
        if isinstance(k, int) and k < 0:
            s = _clamped_index(ctx, s, d, -1, -1)
            e = _clamped_index(ctx, e, d, -1, -1)
            size = H.sym_max(ctx, 0, H.sym_ceildiv(ctx, H.sym_sub(ctx, s, e), -k))
        elif not isinstance(k, int):
            s, e, size = _runtime_step_bounds(ctx, s, e, d, k)
        else:
            s = _clamped_index(ctx, s, d, 0, 0)
            e = _clamped_index(ctx, e, d, 0, 0)
            size = H.sym_max(ctx, 0, H.sym_ceildiv(ctx, H.sym_sub(ctx, e, s), k))
        st[a], sz[a], sd[a] = s, size, k
    return H.slice_(ctx, x, st, sz, sd)
