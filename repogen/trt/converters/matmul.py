"""Matrix products: matmul (v1 alpha, v2 transposes), mul (num_col_dims flattening), fc, bmm."""

from __future__ import annotations

import numpy as np

from repogen.trt.helpers import tensors as H
from repogen.trt.converter_table import converter


@converter("matmul", "bmm")
def matmul(ctx, op):
    out = H.matmul_tensors(ctx, ctx.input(op, "x"), ctx.input(op, "y"),
                         bool(ctx.attr(op, "transpose_x", default=False)),
                         bool(ctx.attr(op, "transpose_y", default=False)))
    alpha = float(ctx.attr(op, "alpha", default=1.0))  # legacy matmul (v1) only
    ctx.output(op, H.mul(ctx, out, alpha) if alpha != 1.0 else out)


def flatten_to_2d(ctx, t, num_col_dims: int):
    """[d0..dn) -> [prod(d0..d_k), prod(d_k..dn)] as Paddle's mul/fc flatten their inputs."""
    dims = H.dims_of(ctx, t)
    return H.reshape(ctx, t, [H.sym_prod(ctx, dims[:num_col_dims]), H.sym_prod(ctx, dims[num_col_dims:])])


def _with_flatten(ctx, x, w, x_cols: int, y_cols: int):
    """out[x dims[:x_cols] + w dims[y_cols:]] = flat(x) @ flat(w)."""
    x_dims, w_dims = H.dims_of(ctx, x), H.dims_of(ctx, w)
    out = H.matmul_tensors(ctx, flatten_to_2d(ctx, x, x_cols), flatten_to_2d(ctx, w, y_cols))
    target = x_dims[:x_cols] + w_dims[y_cols:]
    return out if len(target) == 2 else H.reshape(ctx, out, target)


@converter("matmul_with_flatten")
def mul(ctx, op):
    ctx.output(op, _with_flatten(ctx, ctx.input(op, "x"), ctx.input(op, "y"),
                                 int(ctx.attr(op, "x_num_col_dims", default=1)),
                                 int(ctx.attr(op, "y_num_col_dims", default=1))))


@converter("fc")
def fc(ctx, op):
    # act(flat(input) @ w + bias)
    x = ctx.input(op, "input")
    out = _with_flatten(ctx, x, ctx.input(op, "w"), int(ctx.attr(op, "in_num_col_dims", default=1)), 1)
    bias_name = op.input("bias")
    if bias_name is not None:
        b = ctx.const_value(bias_name)
        b = ctx.const(np.asarray(b).reshape(-1), dtype=out.dtype) if b is not None else ctx.get(bias_name)
        out = H.add(ctx, out, H.reshape(ctx, b, [-1]) if H.rank(b) != 1 else b)
    act = str(ctx.attr(op, "activation_type", default="") or "")
    if act == "relu":
        out = H.activation(ctx, out, "RELU")
    elif act:
        raise ctx.fail(f"fc activation_type {act!r} is not supported")
    ctx.output(op, out)
