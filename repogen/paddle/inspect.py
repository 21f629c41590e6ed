"""``repogen inspect MODEL [--json]``: describe a Paddle inference model without running it."""

from __future__ import annotations

import argparse
import importlib
import json
from collections import Counter
from typing import Any

from repogen.ir import Graph, Value
from repogen.paddle.loader import load_model


def _value_dict(v: Value) -> dict[str, Any]:
    return {"name": v.name, "dtype": v.dtype, "shape": None if v.shape is None else list(v.shape)}


def _converter_check() -> Any:
    """registry.has_converter when the converters exist yet; None otherwise."""
    try:
        registry = importlib.import_module("repogen.trt.registry")
    except ImportError:
        return None
    return getattr(registry, "has_converter", None)


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
    has_converter = _converter_check()
    if has_converter is not None:
        info["ops_without_converter"] = sorted(t for t in histogram if not has_converter(t))
    return info


def _shape(shape: list[int] | None) -> str:
    return "?" if shape is None else "[" + ", ".join("?" if d < 0 else str(d) for d in shape) + "]"


def _print_rich(info: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    fmt = info["format"] + (f" (PIR version {info['pir_version']})" if info["pir_version"] is not None else "")
    console.print(f"[bold]{info['model']}[/bold]")
    console.print(f"format: {fmt}   params: {info['params_file'] or '-'}")
    for title, key in (("Inputs (feed order)", "inputs"), ("Outputs (fetch order)", "outputs")):
        table = Table(title=title, title_justify="left")
        for col in ("#", "name", "dtype", "shape"):
            table.add_column(col)
        for i, v in enumerate(info[key]):
            table.add_row(str(i), v["name"], v["dtype"], _shape(v["shape"]))
        console.print(table)
    p = info["parameters"]
    console.print(f"parameters: {p['tensors']} tensors, {p['count']:,} values, {p['bytes']:,} bytes")
    table = Table(title=f"Ops ({info['ops']} in the main block; counts over all blocks)", title_justify="left")
    table.add_column("op")
    table.add_column("count", justify="right")
    for op_type, count in info["op_histogram"].items():
        table.add_row(op_type, str(count))
    console.print(table)
    if info["sub_blocks"]:
        table = Table(title="Sub-blocks", title_justify="left")
        for col in ("block", "parent", "owner op", "ops"):
            table.add_column(col)
        for b in info["sub_blocks"]:
            table.add_row(str(b["index"]), str(b["parent"]), b["owner"] or "?", str(b["ops"]))
        console.print(table)
    if "ops_without_converter" in info:
        missing = info["ops_without_converter"]
        console.print("ops without a converter: " + (", ".join(missing) if missing else "none"))


def run(args: argparse.Namespace) -> int:
    graph = load_model(args.model)
    info = describe(graph)
    if getattr(args, "json", False):
        print(json.dumps(info))
    else:
        _print_rich(info)
    return 0
