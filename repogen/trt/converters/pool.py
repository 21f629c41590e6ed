"""pool2d / pool3d (and max_pool{2,3}d_with_index): max/avg, global, adaptive, ceil_mode, exclusive, SAME/VALID.

TensorRT's pooling layer takes 1 to 3 spatial dims, so one converter serves both ranks. Paddle's average
divisor (exclusive=False) is the window clipped to input + explicit padding, which is what TensorRT counts with
``average_count_excludes_padding`` off: the cells EXPLICIT_ROUND_UP adds to fit the last window are not
padding (checked against Paddle in tests/test_ops_tier3.py, ``avg_pool3d_ceil_inclusive``).
"""

from __future__ import annotations

from repogen.trt.helpers import tensors as H
from repogen.trt.helpers.layout import spatial_padding, to_nchw
from repogen.trt.converter_table import converter, refuse


def _adaptive_1d(ctx, x, axis: int, out: int, op_name: str):
    """Paddle's adaptive cells along one axis: [floor(i * n / out), ceil((i + 1) * n / out)), n may be run-time."""
    dims = H.dims_of(ctx, x)
    n = dims[axis]
    cells = []
    for i in range(out):
        lo = H.sym_floordiv(ctx, H.sym_mul(ctx, n, i), out)
        hi = H.sym_ceildiv(ctx, H.sym_mul(ctx, n, i + 1), out)
        starts = [0] * len(dims)
        starts[axis] = lo
        sizes = list(dims)
        sizes[axis] = H.sym_sub(ctx, hi, lo)
        cells.append(H.reduce(ctx, H.slice_(ctx, x, starts, sizes), op_name, [axis], True))
    return H.concat(ctx, cells, axis)


@converter("pool2d", "pool3d", "max_pool2d_with_index", "max_pool3d_with_index")
def pool(ctx, op):
    with_index = op.type.endswith("_with_index")
    if with_index and any(op.outputs.get("mask") or []):
        _reject_used_mask(ctx, op)
    x, restore = to_nchw(ctx, op, ctx.input(op, "x"))
    kind = "max" if with_index else str(ctx.attr(op, "pooling_type", default="max")).lower()
    reduce_op, pool_type = ("MAX", "MAX") if kind == "max" else ("AVG", "AVERAGE")
    ksize = H.static_int_array(ctx, op, "kernel_size", "ksize")
    nsp = H.rank(x) - 2
    if len(ksize) != nsp:
        raise ctx.fail(f"kernel_size {ksize} does not have one entry per spatial dim of a rank-{H.rank(x)} input")
    spatial = list(range(2, 2 + nsp))
    in_sp = [int(d) for d in x.shape[2:]]
    adaptive = bool(ctx.attr(op, "adaptive", default=False))
    if ctx.attr(op, "global_pooling", default=False) or (adaptive and list(ksize) == [1] * nsp):
        return ctx.output(op, restore(H.reduce(ctx, x, reduce_op, spatial, True)))
    if adaptive:
        if all(n >= 0 and n % o == 0 for n, o in zip(in_sp, ksize)):
            kernel = strides = [n // o for n, o in zip(in_sp, ksize)]
            pre = post = [0] * nsp
            ceil_mode, exclusive, same = False, True, False
        else:
            # average and max over a box are separable: pool one axis after the other
            y = x
            for axis, out in zip(spatial, ksize):
                y = _adaptive_1d(ctx, y, axis, out, reduce_op)
            return ctx.output(op, restore(y))
    else:
        kernel = list(ksize)
        strides = [int(s) for s in ctx.attr(op, "strides", default=[1] * nsp)]
        pre, post, _, same = spatial_padding(ctx, op, in_sp, kernel, strides, [1] * nsp)
        ceil_mode = bool(ctx.attr(op, "ceil_mode", default=False))
        exclusive = bool(ctx.attr(op, "exclusive", default=True))
    layer = ctx.named(ctx.network.add_pooling_nd(x, getattr(ctx.trt.PoolingType, pool_type), tuple(kernel)))
    layer.stride_nd = tuple(strides)
    if same:
        layer.padding_mode = ctx.trt.PaddingMode.SAME_UPPER
    else:
        layer.pre_padding = tuple(pre)
        layer.post_padding = tuple(post)
        if ceil_mode:
            layer.padding_mode = ctx.trt.PaddingMode.EXPLICIT_ROUND_UP
    if pool_type == "AVERAGE":
        layer.average_count_excludes_padding = exclusive
    ctx.output(op, restore(layer.get_output(0)))


def _reject_used_mask(ctx, op):
    mask = op.outputs["mask"][0]
    for other in ctx.graph.ops:
        if mask in list(other.input_names()) or mask in ctx.graph.outputs:
            raise ctx.fail(f"the argmax mask of {op.type} has no TensorRT equivalent")


# what these converters refuse (repogen ops --refused, docs/refused.md)
refuse(("max_pool2d_with_index", "max_pool3d_with_index"), "the `mask` (argmax) output used",
       "TensorRT pooling does not return argmax positions")
