"""`repogen build` end to end with a real TensorRT-family builder (GPU machine, no Paddle there).

For each exported case (tests/gpu/export_cases.py) one model is built into a Triton repository with
``--target tensorrt`` (or ``auto`` with --auto): profiles around the case's shapes (dynamic batch 1..2x), the
plan built by the real builder, config.pbtxt rendered and checked against Triton's ModelConfig schema and the
engine's I/O. The numerical check is off (it needs Paddle). Prints one line per model and a JSON summary.

Usage: python tests/gpu/build_repo_check.py CASES_DIR OUT_DIR [--module tensorrt_rtx_bindings] [--auto]
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from repogen.trt import engine  # noqa: E402


def _profile(case: dict, declared: dict[str, tuple[int, ...]]) -> tuple[str, str, str]:
    def spec(scale: float) -> str:
        parts = []
        for name, dims in case["shapes"].items():
            dims = list(dims)
            if declared[name] and declared[name][0] == -1:
                dims[0] = max(1, int(dims[0] * scale))
            parts.append(f"{name}:{'x'.join(str(d) for d in dims)}")
        return ",".join(parts)
    return spec(0.5), spec(1), spec(2)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("cases", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--module", default="tensorrt")
    ap.add_argument("--auto", action="store_true", help="--target auto instead of tensorrt")
    args = ap.parse_args(argv)
    engine._DEFAULT_MODULES = (args.module,)
    from repogen.paddle import load_model
    from repogen.build.flow import build_repository
    from repogen.build.spec import ModelSpec

    results = []
    for case_file in sorted(args.cases.rglob("case.json")):
        case = json.loads(case_file.read_text())
        folder = case_file.parent
        name = folder.name.replace("__", "-").replace(".", "_")[:60]
        graph = load_model(folder / case["model"])
        declared = {n: tuple(graph.value(n).shape) for n in graph.inputs}
        if "profile" in case:  # the ranges `repogen build` takes from the model's deploy config
            lo, opt, hi = (",".join(f"{n}:{'x'.join(map(str, dims))}" for n, dims in case["profile"][k].items())
                           for k in ("min", "opt", "max"))
        else:
            lo, opt, hi = _profile(case, declared)
        spec = ModelSpec(source=folder / case["model"], name=name, target="auto" if args.auto else "tensorrt",
                         min_shapes=[lo], opt_shapes=[opt], max_shapes=[hi], check=False)
        row = {"case": case["name"]}
        try:
            report = build_repository([spec], args.out / name, progress=False)
            model = report.models[0]
            row.update(status="ok", target=model.target, warnings=report.warnings,
                       files=sorted(p.name for p in (args.out / name / name).rglob("*") if p.is_file()))
        except Exception as exc:  # the failure is the finding
            row.update(status="error", error=f"{type(exc).__name__}: {exc}".splitlines()[0][:300],
                       trace=traceback.format_exc()[-800:])
        results.append(row)
        print(f"{row['status']:6s} {row.get('target', '-'):9s} {case['name']}: "
              f"{row.get('error') or '; '.join(w[:160] for w in row.get('warnings', []))}", flush=True)
    print("summary", json.dumps({s: sum(r["status"] == s for r in results) for s in {r["status"] for r in results}}))
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
