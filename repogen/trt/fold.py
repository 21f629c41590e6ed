"""Evaluate one op on known inputs by running its converter on the NumPy backend."""

from __future__ import annotations

from typing import Any

import numpy as np

from repogen.ir import Block, Graph, Op, Value
from repogen.trt.context import ConversionContext
from repogen.trt.registry import converter_for  # the registry loads every converter: folding never depends on import order


def evaluate_op(g: Graph, op: Op, known: dict[str, np.ndarray | None], backend: Any) -> dict[str, np.ndarray] | None:
    if op.type in ("shape", "shape64"):
        v = g.value(op.input("input"))
        out = g.value(op.output("out"))
        return {out.name: np.asarray(v.shape, dtype=out.dtype)}
    conv = converter_for(op.type)
    if conv is None:
        return None
    values = {}
    for n, arr in known.items():
        v = g.value(n)
        values[n] = Value(n, v.dtype, tuple(arr.shape), True, arr)
    for n in op.output_names():
        values[n] = g.value(n)
    mini = Graph(g.source, [Block(0, -1, [op], values)], [], list(op.output_names()), {})
    builder = backend.Builder(backend.Logger())
    network = builder.create_network(1 << int(backend.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    ctx = ConversionContext(mini, backend, network, "fp32")
    ctx.op, ctx.position = op, 0
    conv(ctx, op)
    marked = False
    for n in op.output_names():
        t = ctx.tensors.get(n)
        if t is not None:
            ctx.mark_output(t, n)
            marked = True
    if not marked:
        return None
    return {n: np.asarray(a) for n, a in backend.execute(network, {}).items()}
