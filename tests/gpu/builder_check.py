"""Build repogen's networks with a real TensorRT-family builder and compare shapes with the NumPy backend.

For every Paddle model under a folder (per-op test programs and zoo models, as saved by
tests/gpu/export_cases.py on a machine with Paddle):

1. the model's inputs are fixed at concrete shapes; the graph is converted once with the NumPy backend and
   once with the real module; every output's build-time shape from the real builder must equal the shape
   the NumPy backend computes for the same inputs (``numpy_trt.infer_shapes``);
2. the graph, with its dynamic dims kept, is converted in FP32 and in FP16 with one optimization profile
   around those shapes (a dynamic batch ranges over 1..2x; a case.json "profile" of min/opt/max shapes per
   input replaces it, e.g. the ranges `repogen build` takes from a model's deploy config), and serialized
   into a plan by the real builder.

Usage (GPU machine): python tests/gpu/builder_check.py CASES_DIR [--module tensorrt_rtx_bindings]
                     [--jobs 8] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from repogen.paddle import load_model  # noqa: E402
from repogen.trt import numpy_trt  # noqa: E402
from repogen.trt.convert import convert_graph  # noqa: E402
from repogen.trt.engine import build_engine, tensorrt_module  # noqa: E402
from repogen.trt.profiles import Profile  # noqa: E402


def model_dirs(root: Path) -> list[Path]:
    """Every folder holding a case.json written by export_cases.py."""
    return sorted(p.parent for p in root.rglob("case.json"))


def _fix_inputs(graph, shapes: dict[str, list[int]]) -> None:
    for name in graph.inputs:
        graph.value(name).shape = tuple(shapes[name])


def _batch_range(declared: tuple[int, ...], concrete: tuple[int, ...]):
    """min/opt/max around the concrete shape: a dynamic batch ranges over 1..2x, other dims stay fixed."""
    if declared and declared[0] == -1:
        return (1, *concrete[1:]), tuple(concrete), (2 * concrete[0], *concrete[1:])
    return tuple(concrete), tuple(concrete), tuple(concrete)


def check_one(model_dir: Path, module_name: str) -> dict:
    trt = tensorrt_module(module_name)
    case = json.loads((model_dir / "case.json").read_text())
    shapes = {k: tuple(v) for k, v in case["shapes"].items()}
    result = {"case": case["name"], "status": "ok", "problems": [], "seconds": 0.0}
    start = time.perf_counter()
    try:
        graph = load_model(model_dir / case["model"])
        _fix_inputs(graph, shapes)
        numpy_conv = convert_graph(graph, numpy_trt)
        expected = numpy_trt.infer_shapes(numpy_conv.network, shapes)
        # a dim that depends on data (NMS, NonZero) is -1 at build time on both sides; infer_shapes runs the
        # network to fill it, the real builder cannot
        built = {name: tuple(shape) for name, _, shape in numpy_conv.outputs}
        real = convert_graph(graph, trt)
        for name, _, shape in real.outputs:
            if any(r != e and not (r == b == -1) for r, e, b in zip(shape, expected[name], built[name])) \
                    or len(shape) != len(expected[name]):
                result["problems"].append(f"output {name}: real builder {tuple(shape)}, numpy {tuple(expected[name])}")
        for precision in ("fp32", "fp16"):
            dyn = load_model(model_dir / case["model"])
            if "profile" in case:  # the ranges `repogen build` would use (e.g. from the model's deploy config)
                ranges = case["profile"]
                prof = Profile({n: (tuple(ranges["min"][n]), tuple(ranges["opt"][n]), tuple(ranges["max"][n]))
                                for n in dyn.inputs})
            else:
                prof = Profile({n: _batch_range(dyn.value(n).shape, shapes[n]) for n in dyn.inputs})
            conv = convert_graph(dyn, trt, precision=precision, profiles=[prof])
            began = time.perf_counter()
            plan, _ = build_engine(conv)
            result[f"{precision}_plan_bytes"] = len(plan)
            result[f"{precision}_build_seconds"] = round(time.perf_counter() - began, 1)
    except Exception as exc:  # a failure is the finding: record it and go on with the next model
        result["status"] = "error"
        result["problems"].append(f"{type(exc).__name__}: {exc}".splitlines()[0][:400])
        result["trace"] = traceback.format_exc()[-1500:]
    if result["problems"] and result["status"] == "ok":
        result["status"] = "shape-mismatch"
    result["seconds"] = round(time.perf_counter() - start, 2)
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("cases", type=Path)
    ap.add_argument("--module", default="tensorrt")
    ap.add_argument("--jobs", type=int, default=8)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    trt = tensorrt_module(args.module)
    if trt is None:
        print(f"no module {args.module}", file=sys.stderr)
        return 2
    dirs = model_dirs(args.cases)
    print(f"{args.module} {getattr(trt, '__version__', '?')}: {len(dirs)} models", flush=True)
    with ProcessPoolExecutor(args.jobs) as pool:
        results = list(pool.map(check_one, dirs, [args.module] * len(dirs)))
    counts: dict[str, int] = {}
    for r in results:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
        if r["status"] != "ok":
            print(f"{r['status']:15s} {r['case']}: {'; '.join(r['problems'])}")
    print("summary", json.dumps(counts))
    if args.json:
        args.json.write_text(json.dumps({"module": args.module, "version": getattr(trt, "__version__", "?"),
                                         "results": results}, indent=1))
    return 0 if set(counts) == {"ok"} else 1


if __name__ == "__main__":
    sys.exit(main())
