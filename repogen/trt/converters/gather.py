"""gather and embedding lookups."""

from __future__ import annotations

import numpy as np

from repogen.trt.helpers import tensors as H
from repogen.trt.converter_table import converter, refuse, RUN_TIME_AXIS


def _gather(ctx, data, index, axis):
    return ctx.named(ctx.network.add_gather(data, index, axis)).get_output(0)


@converter("gather")
def gather(ctx, op):
    x, index = ctx.input(op, "x"), ctx.input(op, "index")
    axis = H.scalar_arg(ctx, op, "axis", default=0)
    if hasattr(axis, "dtype"):
        raise ctx.fail("gather axis computed at run time is not supported")
    ctx.output(op, _gather(ctx, x, index, H.norm_axis(int(axis), H.rank(x))))


@converter("embedding")
def embedding(ctx, op):
    # weight[ids]; the padding_idx row reads as zeros
    ids = ctx.input(op, "x")
    w_name = op.input("weight")
    w = ctx.const_value(w_name)
    pad = int(ctx.attr(op, "padding_idx", default=-1) if ctx.attr(op, "padding_idx") is not None else -1)
    if w is not None:
        w = np.array(w)
        if pad != -1 and ctx.attr(op, "padding_idx") is not None:
            w[pad if pad >= 0 else pad + w.shape[0]] = 0
        table = ctx.const(w)
    else:
        table = ctx.get(w_name)
    ctx.output(op, _gather(ctx, table, ids, 0))


# what these converters refuse (repogen ops --refused, docs/refused.md)
refuse(("gather",), "`axis` computed at run time", RUN_TIME_AXIS)
