"""`repogen build` of ResNet-50: the one-pass flow against the previous two-pass flow, in the same run.

The previous flow (before issue 13) is re-created here, and only here, by replacing two steps of today's build:
its numeric check turned the profiles back into a ``--shape`` string and called ``check_model`` with the model
*path* (reading, cleaning and, for int8, calibrating the model again, with the Paddle reference run in-process
with the zoo's settings), and its plan builder converted the raw graph with ``clean=True`` (a second
``clean_graph``) after calibrating a second time for int8. Everything else (profiles, config, writing) is
today's code in both flows.

Each measurement is one fresh interpreter (as a user's ``repogen build`` is, Paddle's import included), flows
alternating, ``--rounds`` each. Targets:
- ``paddle``: the real CPU build of this machine (read, check, copy the model, render the config);
- ``tensorrt``: the NumPy backend stands in for the tensorrt module, so the plan's network is really converted;
  only TensorRT's own engine build (GPU) is skipped, in both flows alike.

    python bench/bench_build.py [--target paddle|tensorrt|both] [--rounds 3] [--int8]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.support.zoo from a checkout

ROOT = Path(__file__).resolve().parents[1]
SHAPES = {"min_shapes": ["x:1x3x224x224"], "opt_shapes": ["x:1x3x224x224"], "max_shapes": ["x:4x3x224x224"]}
INT8_SHAPES = {"min_shapes": ["x:1x3x64x64"], "opt_shapes": ["x:1x3x64x64"], "max_shapes": ["x:4x3x64x64"]}


# -- the previous flow, faithfully (repogen at b6f9717: trt/check.py check_model, triton/build.py) --------------

def _old_check_model(model_path: Any, *, fp16: bool, shapes: list[str], int8: bool, calib_data: Any,
                     calib_method: str) -> Any:
    import numpy as np

    from repogen.paddle import load_model
    from repogen.reference.predictor import paddle_outputs  # the zoo's in-process reference, same settings
    from repogen.trt import numpy_trt
    from repogen.trt.check import (PREQUANTIZED_TOLERANCE, TOLERANCE, CheckReport, _compare_int8, as_detection_set,
                                   compare, detection_outputs, is_prequantized, random_inputs)
    from repogen.trt.convert import convert_graph, find_unsupported
    from repogen.trt.passes import clean_graph
    from repogen.trt.profiles import Profile, parse_shapes

    precision = "int8" if int8 else ("fp16" if fp16 else "fp32")
    graph = load_model(model_path)
    report = CheckReport(str(model_path), precision)
    cleaned = clean_graph(graph)
    report.unsupported = find_unsupported(cleaned)
    if report.unsupported:
        return report
    given: dict = {}
    for spec in shapes:
        given.update(parse_shapes(spec, "--shape"))
    quantized, inputs, reference = None, None, None
    if int8:
        from repogen.trt.calibrate import quantize_model

        quantized = quantize_model(cleaned, calib_data, calib_method)
        report.int8 = quantized.summary()
        cleaned, inputs = quantized.graph, quantized.heldout
    feeds = dict(inputs) if inputs is not None else random_inputs(graph, given, 0)
    report.input_shapes = {n: list(np.shape(feeds[n])) for n in graph.inputs}
    profile = Profile({n: (tuple(np.shape(a)),) * 3 for n, a in feeds.items() if n in graph.inputs})
    conv = convert_graph(cleaned, numpy_trt, precision=precision, profiles=[profile], clean=False)
    actual = numpy_trt.execute(conv.network, {n: feeds[n] for n in graph.inputs})
    reference = paddle_outputs(model_path, {n: feeds[n] for n in graph.inputs})
    ref_by_pos = list(reference.values())
    detections = detection_outputs(cleaned)
    for i, name in enumerate(graph.outputs):
        expected = reference.get(name)
        if expected is None and len(ref_by_pos) == len(graph.outputs):
            expected = ref_by_pos[i]
        if quantized is not None:
            report.outputs.append(_compare_int8(actual[conv.outputs[i][0]], expected, name))
        else:
            tol = PREQUANTIZED_TOLERANCE[precision] if is_prequantized(cleaned) else TOLERANCE[precision]
            got = actual[conv.outputs[i][0]]
            if name in detections:
                got, expected = as_detection_set(got, detections[name]), as_detection_set(expected, detections[name])
            report.outputs.append(compare(got, expected, tol, name))
    return report


def _install_old_flow() -> None:
    from repogen.build import flow as build_mod
    def old_numeric_check(spec: Any, target: str, forms: Any, profile_objs: list, warn: Callable,
                          stage: Callable) -> dict:
        if not spec.check:
            return {"status": "skipped", "reason": "--no-check"}
        stage("check")
        profiles = [{n: tuple(tuple(int(d) for d in s) for s in rng) for n, rng in p.shapes.items()}
                    for p in profile_objs]
        # the profiles back to a --shape string, and the model by its path: read and cleaned again
        shapes = [",".join(f"{n}:{'x'.join(str(d) for d in rng[1])}" for n, rng in profiles[0].items())]
        report = _old_check_model(spec.source, fp16=spec.precision == "fp16", shapes=shapes,
                                  int8=spec.precision == "int8", calib_data=spec.calib_data,
                                  calib_method=spec.calib_method)
        if not report.passed:
            raise SystemExit(f"old flow: check failed: {report}")
        return {"status": "passed", "outputs": {o.name: {"rel_err": o.rel_err} for o in report.outputs}}

    def old_for_plan(self: Any) -> Any:
        from repogen.trt.calibrate import quantize_model
        from repogen.trt.passes import clean_graph

        # kept as the cleaned graph, so that what today's build adds after the plan (the manifest's NMS
        # detections) costs both flows the same
        self._cleaned = clean_graph(self.graph)  # what convert_graph(clean=True) did inside the old build_plan
        if self.spec.precision == "int8":  # calibrated a second time
            return quantize_model(self._cleaned, self.spec.calib_data, self.spec.calib_method).graph
        return self._cleaned

    build_mod._numeric_check = old_numeric_check
    build_mod._Forms.for_plan = old_for_plan


# -- one measurement (a fresh interpreter) ----------------------------------------------------------------------

def _count_calls() -> Counter:
    import repogen.paddle
    from repogen.trt import calibrate, convert, passes

    seen: Counter = Counter()

    def counting(key: str, fn: Any) -> Any:
        def wrapper(*a: Any, **kw: Any) -> Any:
            if key != "convert_graph" or sys._getframe(1).f_globals["__name__"] != "repogen.trt.calibrate":
                seen[key] += 1  # conversions inside calibration count as calibration
            return fn(*a, **kw)
        return wrapper

    repogen.paddle.load_model = counting("load_model", repogen.paddle.load_model)
    passes.clean_graph = counting("clean_graph", passes.clean_graph)
    calibrate.quantize_model = counting("quantize_model", calibrate.quantize_model)
    convert.convert_graph = counting("convert_graph", convert.convert_graph)
    return seen


def _one(flow: str, target: str, model: str, int8: bool, calib: str | None) -> dict:
    started = time.perf_counter()
    from repogen.build import flow as build_mod
    from repogen.build.spec import ModelSpec

    if flow == "old":
        _install_old_flow()
    if target == "tensorrt":
        from repogen.trt import engine, numpy_trt
        from repogen.build import targets
        build_mod.tensorrt_status = lambda: targets.TensorRTStatus(numpy_trt, "")
        engine.build_engine = lambda conversion, **kw: (b"PLAN", b"")
    calls = _count_calls()
    spec = ModelSpec(source=Path(model), name="resnet50", target=target, precision="int8" if int8 else "fp32",
                     calib_data=Path(calib) if calib else None, **(INT8_SHAPES if int8 else SHAPES))
    with tempfile.TemporaryDirectory() as tmp:
        report = build_mod.build_repository([spec], Path(tmp) / "repo", progress=False)
    check = report.models[0].check
    assert check["status"] == "passed", check
    return {"seconds": time.perf_counter() - started, "calls": dict(calls)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", default="both", choices=["paddle", "tensorrt", "both"])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--format", default="pir", choices=["pir", "paddle2"])
    ap.add_argument("--int8", action="store_true", help="tensorrt target at int8 (64x64 inputs, 12 samples)")
    ap.add_argument("--_one", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._one:
        flow, target, model, int8, calib = args._one
        print(json.dumps(_one(flow, target, model, int8 == "1", calib if calib != "-" else None)))
        return 0

    from tests.support import zoo
    model = str(zoo.get("resnet50", args.format))
    calib = "-"
    if args.int8:
        import numpy as np

        calib = str(Path(tempfile.mkdtemp()) / "calib.npz")
        np.savez(calib, x=np.random.default_rng(0).uniform(-1, 1, (12, 3, 64, 64)).astype(np.float32))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GLOG_minloglevel": "3"}
    runs = ["tensorrt"] if args.int8 else ["paddle", "tensorrt"] if args.target == "both" else [args.target]
    print(f"repogen build of zoo resnet50 ({args.format}), {'int8 64x64' if args.int8 else 'fp32 224x224'}, "
          f"{args.rounds} rounds, one fresh interpreter per build")
    for target in runs:
        times: dict[str, list[float]] = {"old": [], "new": []}
        calls: dict[str, dict] = {}
        for r in range(args.rounds):
            for flow in ("old", "new") if r % 2 == 0 else ("new", "old"):
                proc = subprocess.run([sys.executable, __file__, "--_one", flow, target, model,
                                       "1" if args.int8 else "0", calib], capture_output=True, text=True, env=env)
                if proc.returncode != 0:
                    raise SystemExit(f"{flow} flow failed:\n{proc.stderr[-3000:]}")
                result = json.loads(proc.stdout.strip().splitlines()[-1])
                times[flow].append(result["seconds"])
                calls[flow] = result["calls"]
        old, new = statistics.median(times["old"]), statistics.median(times["new"])
        print(f"\ntarget {target}{' (int8)' if args.int8 else ''}:")
        for flow in ("old", "new"):
            c = calls[flow]
            print(f"  {flow:3s} flow: median {statistics.median(times[flow]):6.2f} s  "
                  f"(runs {', '.join(f'{t:.2f}' for t in times[flow])})  load_model x{c.get('load_model', 0)}, "
                  f"clean_graph x{c.get('clean_graph', 0)}, convert_graph x{c.get('convert_graph', 0)}, "
                  f"quantize_model x{c.get('quantize_model', 0)}")
        print(f"  old / new = {old / new:.2f}x  (saved {old - new:.2f} s per build)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
