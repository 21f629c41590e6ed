"""cast, shape, constants (full, full_like, full_batch_size_like, full_int_array, assign_value), dropout."""

from __future__ import annotations

import numpy as np

from repogen.trt.helpers import tensors as H
from repogen.trt.converter_table import converter


@converter("cast")
def cast(ctx, op):
    ctx.output(op, ctx.cast(ctx.input(op, "x"), H.out_dtype(ctx, op)))


@converter("shape", "shape64")
def shape(ctx, op):
    ctx.output(op, ctx.cast(H.shape_of(ctx, ctx.input(op, "input", "x")), H.out_dtype(ctx, op)))


def _known_output(ctx, op):
    name = op.output("out")
    return ctx.const_value(name)


def _fill_value(ctx, op, dtype):
    value = H.scalar_arg(ctx, op, "value", default=0.0)
    if hasattr(value, "dtype"):
        return ctx.cast(value, dtype)
    if isinstance(value, str):
        value = float(value)
    return value


def _filled(ctx, dims, value, dtype):
    if hasattr(value, "dtype"):  # a run-time fill value: broadcast the scalar tensor
        return H.broadcast_to(ctx, H.reshape(ctx, value, [1] * len(dims)), dims)
    return H.fill(ctx, dims, value, dtype)


@converter("full")
def full(ctx, op):
    known = _known_output(ctx, op)
    dtype = H.out_dtype(ctx, op)
    if known is not None:
        return ctx.output(op, ctx.const(known, dtype=dtype))
    shape = H.int_array(ctx, op, "shape", default=[])
    dims = shape if isinstance(shape, list) else H.split_dims(ctx, shape)
    ctx.output(op, _filled(ctx, dims, _fill_value(ctx, op, dtype), dtype))


@converter("full_with_tensor")
def full_with_tensor(ctx, op):
    # full(shape, value) with both computed at run time: a 1-D shape tensor and a one-element value tensor
    dtype = H.out_dtype(ctx, op)
    shape = ctx.input(op, "shape")
    if H.rank(shape) != 1 or shape.shape[0] < 0:
        raise ctx.fail(f"shape must be a 1-D tensor of known length, not {list(shape.shape)}")
    value = ctx.cast(ctx.input(op, "value"), dtype)
    ctx.output(op, _filled(ctx, H.split_dims(ctx, ctx.cast(shape, ctx.trt.int64)), value, dtype))


@converter("full_int_array", "assign_value")
def constant_value(ctx, op):
    known = _known_output(ctx, op)
    dtype = H.out_dtype(ctx, op)
    if known is None:
        values = ctx.attr(op, "value", "values")
        if values is None:
            raise ctx.fail("constant has neither Value.const nor a value attribute")
        shape = ctx.attr(op, "shape", default=None)
        known = np.asarray(values).reshape(shape if shape else np.asarray(values).shape)
    ctx.output(op, ctx.const(known, dtype=dtype))


@converter("full_like")
def full_like(ctx, op):
    x = ctx.input(op, "x")
    dtype = H.out_dtype(ctx, op)
    ctx.output(op, _filled(ctx, H.dims_of(ctx, x), _fill_value(ctx, op, dtype), dtype))


@converter("full_batch_size_like")
def full_batch_size_like(ctx, op):
    # shape with shape[output_dim_idx] replaced by input.shape[input_dim_idx]
    x = ctx.input(op, "input")
    dtype = H.out_dtype(ctx, op)
    dims: list = [int(d) for d in ctx.attr(op, "shape")]
    dims[int(ctx.attr(op, "output_dim_idx", default=0))] = H.dims_of(ctx, x)[int(ctx.attr(op, "input_dim_idx", default=0))]
    ctx.output(op, _filled(ctx, dims, _fill_value(ctx, op, dtype), dtype))


@converter("dropout")
def dropout(ctx, op):
    # normally removed by passes.remove_dropout; inference semantics again for graphs converted uncleaned
    x = ctx.input(op, "x")
    mode = str(ctx.attr(op, "mode", "dropout_implementation", default="downgrade_in_infer"))
    p = H.scalar_arg(ctx, op, "p", default=0.5)
    ctx.output(op, x if mode == "upscale_in_train" else H.mul(ctx, x, 1.0 - float(p)))
