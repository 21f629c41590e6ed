"""``repogen check``: convert a model with the NumPy TensorRT backend and compare it with Paddle."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from repogen.cli.options import add_int8_options, add_shape_options, at_least
from repogen.errors import ConfigError

HELP = "convert with the NumPy TensorRT backend and compare with Paddle"


def add_parser(sub: Any) -> None:
    p = sub.add_parser("check", help=HELP, description=HELP)
    p.add_argument("model", help="model directory, path prefix (dir/inference), or model file")
    add_shape_options(p)
    p.add_argument("--inputs", metavar="FILE.npz", help="npz with one array per input name (default: random inputs)")
    p.add_argument("--reference", metavar="FILE.npz",
                   help="npz with one array per output name (default: run Paddle Inference)")
    p.add_argument("--fp16", action="store_true", help="convert with FP16 layers and compare at fp16 tolerance")
    p.add_argument("--deploy-config", metavar="FILE",
                   help="PaddleX inference.yml / PaddleDetection infer_cfg.yml / PaddleSeg deploy.yaml (default: the "
                        "one beside the model): the model is checked on generated images of its task, and the "
                        "answers its pipeline reads (boxes, texts, labels) are compared too")
    p.add_argument("--pipeline", dest="pipeline_kind", choices=["ocr-det", "ocr-rec", "ocr-cls"], default=None,
                   help="a PaddleOCR 2.x export with no deploy config: judge it on its task with PaddleOCR's defaults "
                        "(as build applies them; *_det_infer, *_rec_infer, *_cls_infer folders are recognised)")
    p.add_argument("--char-dict", metavar="FILE",
                   help="a PaddleOCR 2.x recognizer's character dictionary (default: the .txt file beside the model)")
    p.add_argument("--random-inputs", action="store_true",
                   help="random tensors even where a deploy config exists (at --shape, or the model's own shapes)")
    add_int8_options(p)
    p.add_argument("--seed", type=at_least(0), default=0, metavar="N", help="seed of the random inputs (default 0)")
    p.add_argument("--partition", action="store_true",
                   help="check what a partitioned build deploys: TensorRT regions (NumPy backend) and the Python "
                        "remainder, chained, at the first profile's opt shapes; layer limits use its max shapes")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _npz(path: str | None, option: str) -> dict | None:
    from repogen.npz import load_npz

    return load_npz(path, option) if path else None


def run(args: argparse.Namespace) -> int:
    if args.partition:
        return _run_partitioned(args)
    from repogen.build.deploy_configs import task_config
    from repogen.verify.conversion import check_model

    cfg = None
    if not args.random_inputs:
        cfg, _ = task_config(Path(args.model), Path(args.deploy_config) if args.deploy_config else None,
                             args.pipeline_kind, Path(args.char_dict) if args.char_dict else None)
    report = check_model(args.model, inputs=_npz(args.inputs, "--inputs"), reference=_npz(args.reference, "--reference"),
                         fp16=args.fp16, shapes=list(args.shape or []), seed=args.seed, int8=args.int8,
                         calib_data=args.calib_data, calib_method=args.calib_method, deploy_config=cfg)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        _print_report(report)
    return 0 if report.passed else 1


def _run_partitioned(args: argparse.Namespace) -> int:
    from repogen.partition.check import check_partitioned_model

    if args.int8 or args.reference:
        raise ConfigError("--partition checks fp32/fp16 against Paddle itself: --int8 and --reference do not apply")
    result = check_partitioned_model(args.model, shape=args.shape, min_shapes=args.min_shapes,
                                     opt_shapes=args.opt_shapes, max_shapes=args.max_shapes,
                                     precision="fp16" if args.fp16 else "fp32", feeds=_npz(args.inputs, "--inputs"),
                                     seed=args.seed)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _print_partitioned(args.model, result)
    return 0 if result["status"] == "passed" else 1


def _print_report(report: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    from repogen.trt.registry import why_unsupported

    console = Console(width=None if sys.stdout.isatty() else 200)
    if report.unsupported:
        t = Table(title=f"{report.model}: ops without a converter")
        for col in ("position", "op", "outputs", "why"):
            t.add_column(col)
        for pos, op_type, outs in report.unsupported:
            t.add_row(str(pos), op_type, ", ".join(outs), why_unsupported(op_type) or "no converter yet")
        console.print(t)
        return
    t = Table(title=f"{report.model} ({report.precision}, inputs {report.input_shapes})")
    for col in ("output", "shape", "max abs err", "rel L2", "outside", "noise floor", "result"):
        t.add_column(col)
    for o in report.outputs:
        noise = "-" if o.noise_rel_l2 is None else f"{o.noise_rel_l2:.2g}"
        if o.passed:
            result = f"[green]pass[/] ({o.criterion}" + (f", {o.ties} ties" if o.ties else "") + ")"
        elif report.passed:  # over the elementwise bound, but the answers and the fp32 twin decide (below)
            result = f"[yellow]over bound[/] {o.reason}; the answers decide"
        else:
            result = f"[red]FAIL[/] {o.reason}"
        t.add_row(o.name, "x".join(map(str, o.shape)), f"{o.max_abs:.3g}", f"{o.rel_l2:.3g}",
                  f"{o.outside_share:.2g}", noise, result)
    console.print(t)
    for task in report.tasks:  # what the user's task reads from these outputs (the deploy config's post-processing)
        console.print(("[green]pass[/]" if task.passed else "[red]FAIL[/]") + f" {task.kind}: {task.summary}",
                      highlight=False)
    if report.passed and not all(o.passed for o in report.outputs):
        console.print(f"[green]passed[/]: at {report.precision} the answers above decide where elementwise bounds do "
                      "not fit, and every output's fp32 twin (the converters themselves) passed", highlight=False)
    elif not report.passed:
        console.print("[red]FAILED[/]", highlight=False)


def _print_partitioned(model: str, result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 200)
    s = result["partition"]
    console.print(f"{model}: {s['tensorrt_ops']}/{s['ops']} ops ({100 * s['tensorrt_op_share']:.0f} %), "
                  f"{100 * (s['tensorrt_parameter_share'] or 0):.0f} % of the parameters in TensorRT; regions: "
                  + " -> ".join(r["kind"] for r in s["regions"]), markup=False, highlight=False)
    if s["not_tensorrt"]:
        t = Table(title="ops outside TensorRT")
        for col in ("position", "op", "why"):
            t.add_column(col)
        for o in s["not_tensorrt"]:
            t.add_row(str(o["position"]), o["op"], o["reason"])
        console.print(t)
    t = Table(title=f"partitioned model vs Paddle (inputs {result['input_shapes']})")
    for col in ("output", "rel L2", "max abs err", "result"):
        t.add_column(col)
    for name, o in result["outputs"].items():
        t.add_row(name, f"{o['rel_l2']:.3g}", f"{o['max_abs']:.3g}",
                  f"[green]pass[/] ({o['criterion']})" if o["passed"] else f"[red]FAIL[/] {o['reason']}")
    console.print(t)
