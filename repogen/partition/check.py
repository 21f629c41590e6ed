"""The numeric check of a partitioned model: the regions as they will run (TensorRT regions on the NumPy
backend, the remainder with Paddle), chained, against Paddle Inference on the whole model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from repogen.partition.plan import Partition, run_regions, sample_feeds

TOLERANCE = {"fp32": 1e-5, "fp16": 1e-2}


def check_partition(part: Partition, source: str | Path, profiles: list[dict], precision: str = "fp32",
                    feeds: dict[str, np.ndarray] | None = None, seed: int = 0) -> dict[str, Any]:
    """{"status": "passed"|"failed", "outputs": {name: {rel_err, tolerance, passed}}, "input_shapes"} at the
    first profile's opt shapes (or ``feeds``). Detection outputs (from an NMS op) compare as sets of rows,
    each Paddle row paired with the closest row of its label."""
    from repogen.trt.check import align_detection_rows, as_detection_set, compare, detection_outputs
    from repogen.zoo import reference_outputs

    g = part.cleaned
    if feeds is None:
        feeds = sample_feeds(g, {n: tuple(rng[1]) for n, rng in profiles[0].items()} if profiles else {}, seed)
    env, _ = run_regions(g, part.regions, feeds)
    reference = reference_outputs(source, {n: feeds[n] for n in g.inputs})
    by_pos = list(reference.values())
    detections = detection_outputs(g)
    tol = TOLERANCE.get(precision, 1e-5)
    outputs, ok = {}, True
    for i, name in enumerate(g.outputs):
        want = reference.get(name, by_pos[i] if len(by_pos) == len(g.outputs) else None)
        got = env[name]
        if name in detections:
            got, want = as_detection_set(got, detections[name]), as_detection_set(want, detections[name])
            if detections[name] == "rows":  # near-equal scores may sort apart: pair rows as check/validate do
                got = align_detection_rows(got, want)
        r = compare(got, want, tol, name)
        outputs[name] = {"rel_err": float(r.rel_err), "tolerance": float(r.tolerance), "passed": bool(r.passed)}
        ok = ok and r.passed
    return {"status": "passed" if ok else "failed", "outputs": outputs,
            "input_shapes": {n: list(np.shape(feeds[n])) for n in g.inputs}}


def run(args: Any) -> int:
    """``repogen check --partition``: what a partitioned build would deploy, against Paddle."""
    import json

    from repogen.errors import ConfigError
    from repogen.paddle import load_model
    from repogen.partition.plan import partition_graph
    from repogen.trt.profiles import make_profiles

    if getattr(args, "int8", False) or args.reference:
        raise ConfigError("--partition checks fp32/fp16 against Paddle itself: --int8 and --reference do not apply")
    graph = load_model(args.model)
    objs = make_profiles(graph.input_values(), shape=list(args.shape or []), min_shapes=list(args.min_shapes or []),
                         opt_shapes=list(args.opt_shapes or []), max_shapes=list(args.max_shapes or []))
    profiles = [{n: tuple(tuple(int(d) for d in s) for s in rng) for n, rng in p.shapes.items()} for p in objs]
    precision = "fp16" if args.fp16 else "fp32"
    part = partition_graph(graph, profiles, precision)
    feeds = None
    if args.inputs:
        from repogen.trt.check import _load_npz

        feeds = _load_npz(args.inputs, "--inputs")
    result = check_partition(part, args.model, profiles, precision, feeds=feeds, seed=args.seed)
    result["partition"] = part.summary()
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _print(args.model, result)
    return 0 if result["status"] == "passed" else 1


def _print(model: str, result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
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
    for col in ("output", "rel err", "tolerance", "result"):
        t.add_column(col)
    for name, o in result["outputs"].items():
        t.add_row(name, f"{o['rel_err']:.3g}", f"{o['tolerance']:g}", "[green]pass[/]" if o["passed"] else "[red]FAIL[/]")
    console.print(t)
