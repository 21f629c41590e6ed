"""Describe a Paddle inference model without running it (what ``repogen inspect`` reports)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from repogen.ir import Graph, Value


def _value_dict(v: Value) -> dict[str, Any]:
    return {"name": v.name, "dtype": v.dtype, "shape": None if v.shape is None else list(v.shape)}


def describe(graph: Graph) -> dict[str, Any]:
    """Everything ``inspect`` reports, as plain JSON-able data."""
    histogram = Counter(op.type for block in graph.blocks for op in block.ops)
    n_params = sum(int(a.size) for a in graph.params.values())
    n_bytes = sum(int(a.nbytes) for a in graph.params.values())
    info: dict[str, Any] = {
        "model": str(graph.source.model_file),
        "params_file": None if graph.source.params_file is None else str(graph.source.params_file),
        "format": graph.source.format,
        "pir_version": graph.source.pir_version,
        "inputs": [_value_dict(v) for v in graph.input_values()],
        "outputs": [_value_dict(v) for v in graph.output_values()],
        "ops": len(graph.ops),
        "op_histogram": dict(sorted(histogram.items(), key=lambda kv: (-kv[1], kv[0]))),
        "parameters": {"tensors": len(graph.params), "count": n_params, "bytes": n_bytes},
        "sub_blocks": [
            {"index": b.index, "parent": b.parent, "ops": len(b.ops),
             "owner": next((op.type for blk in graph.blocks for op in blk.ops if b.index in op.blocks), None)}
            for b in graph.sub_blocks
        ],
    }
    return info
