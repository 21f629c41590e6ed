"""Partitioned deployment, in one run: what share of each zoo model goes to TensorRT, and the CPU latency of a
partitioned ensemble (TensorRT regions as NumPy stand-ins + Python remainder) vs the same model as one
paddle-target model, both served by the tritonserver bundled in nvidia-pytriton.

    python bench/bench_partition.py [--requests 40] [--models yolo_dense,cumprod_net] [--json out.json]

Op share: repogen.partition.plan.partition_graph on every zoo model's PIR export (2.x export where the model has
no PIR form) at its sample shapes, with a max-shape profile beyond TensorRT's NMS limit for yolo_dense. Latency:
gRPC, batch 1 at the profile's opt shapes, concurrency 1, the harness's windowed timing (at least --requests
samples; p50 / p90 in ms).
Note what the stand-in measures: the NumPy backend on a 2-core CPU, not TensorRT on a GPU.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from tests.support import zoo  # noqa: E402

SHAPES = {  # (min, opt, max) per input, for the latency models
    "yolo_dense": dict(min_shapes=["image:1x3x64x64,im_size:1x2"], opt_shapes=["image:1x3x64x64,im_size:1x2"],
                       max_shapes=["image:2x3x192x192,im_size:2x2"]),
    "cumprod_net": dict(min_shapes=["x:1x3x16x16"], opt_shapes=["x:1x3x16x16"], max_shapes=["x:4x3x32x32"]),
}


def _profile(name: str) -> list[dict]:
    prof = {}
    for spec in zoo.input_specs(name):
        sample = tuple(spec.sample)
        prof[spec.name] = (sample, sample, sample)
    if name == "yolo_dense":
        prof = {"image": ((1, 3, 64, 64), (2, 3, 64, 64), (2, 3, 192, 192)), "im_size": ((1, 2), (2, 2), (2, 2))}
    return [prof]


def op_shares() -> list[dict]:
    from repogen.paddle import load_model
    from repogen.trt.passes import clean_graph
    from repogen.partition.plan import partition_graph

    rows = []
    for name, model in zoo.MODELS.items():
        fmt = "pir" if "pir" in model.formats else model.formats[-1]
        started = time.perf_counter()
        try:
            part = partition_graph(clean_graph(load_model(zoo.get(name, fmt))), _profile(name))
        except Exception as exc:  # a model that cannot be partitioned says why
            rows.append({"model": name, "format": fmt, "error": " ".join(str(exc).split())[:160]})
            continue
        s = part.summary()
        rows.append({"model": name, "format": fmt, "ops": s["ops"], "tensorrt_ops": s["tensorrt_ops"],
                     "op_share": s["tensorrt_op_share"], "parameter_share": s["tensorrt_parameter_share"],
                     "regions": "->".join(r["kind"][:3] for r in s["regions"]) if part.partitioned else "",
                     "outside": sorted({o["op"] for o in s["not_tensorrt"]}),
                     "seconds": round(time.perf_counter() - started, 2)})
    return rows


def latencies(names: list[str], requests: int) -> list[dict]:
    from repogen.harness.model_files import make_cases, read_model_folder
    from repogen.harness.server import launch
    from repogen.harness.speed import measure
    from repogen.build.flow import build_repository
    from repogen.build.spec import ModelSpec

    out = Path(tempfile.mkdtemp(prefix="bench-partition-")) / "repo"
    specs = []
    for name in names:
        src = zoo.get(name, "pir")
        specs += [ModelSpec(source=src, name=f"{name}_ensemble", target="numpy", partition=True, **SHAPES[name]),
                  # the paddle target runs Paddle itself; its NumPy-backend check is not what this compares
                  ModelSpec(source=src, name=f"{name}_paddle", target="paddle", check=False, **SHAPES[name])]
    build_repository(specs, out, progress=False)
    rows = []
    with launch(out, require_models=True) as srv:
        for s in specs:
            model = read_model_folder(out / s.name)
            feeds = make_cases(model)["batch 1"]
            r = measure(srv.grpc_url, model, feeds, 1, requests, "grpc", raw=False)
            rows.append({"model": s.name, "target": "ensemble (numpy regions + python)" if s.partition else "paddle",
                         "requests": r.requests, "p50_ms": round(r.p50_ms, 2), "p90_ms": round(r.p90_ms, 2),
                         "errors": len(r.errors)})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=40)
    ap.add_argument("--models", default="yolo_dense,cumprod_net")
    ap.add_argument("--json")
    args = ap.parse_args()
    shares = op_shares()
    print(f"{'model':<20} {'fmt':<15} {'ops':>4} {'trt':>4} {'op share':>9} {'param share':>11}  regions / outside TensorRT")
    for r in shares:
        if "error" in r:
            print(f"{r['model']:<20} {r['format']:<15} not partitionable: {r['error']}")
            continue
        pshare = "-" if r["parameter_share"] is None else f"{100 * r['parameter_share']:.1f}%"
        print(f"{r['model']:<20} {r['format']:<15} {r['ops']:>4} {r['tensorrt_ops']:>4} {100 * r['op_share']:>8.1f}% "
              f"{pshare:>11}  {r['regions'] or '(not partitioned)'} {', '.join(r['outside'])}")
    lat = latencies([m for m in args.models.split(",") if m], args.requests)
    print(f"\n{'model':<24} {'target':<36} {'requests':>8} {'p50 ms':>8} {'p90 ms':>8} {'errors':>6}")
    for r in lat:
        print(f"{r['model']:<24} {r['target']:<36} {r['requests']:>8} {r['p50_ms']:>8.2f} {r['p90_ms']:>8.2f} "
              f"{r['errors']:>6}")
    if args.json:
        Path(args.json).write_text(json.dumps({"op_shares": shares, "latency": lat}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
