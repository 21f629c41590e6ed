"""``repogen inspect MODEL [--json]``: describe a Paddle inference model without running it."""

from __future__ import annotations

import argparse
import json
from typing import Any

HELP = "describe a Paddle inference model"


def add_parser(sub: Any) -> None:
    p = sub.add_parser("inspect", help=HELP, description=HELP)
    p.add_argument("model", help="model directory, path prefix, or model file")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    from repogen.paddle.inspect import describe
    from repogen.paddle.loader import load_model

    from repogen.trt.registry import has_converter

    info = describe(load_model(args.model))
    info["ops_without_converter"] = sorted(t for t in info["op_histogram"] if not has_converter(t))
    if args.json:
        print(json.dumps(info))
    else:
        _print_rich(info)
    return 0


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
