"""Load + convert ResNet-50 with repogen (NumPy backend network) vs paddle2onnx exporting the same model.

One run each, wall-clock, printed with the ratio. paddle2onnx is a bench-only dependency
(`pip install paddle2onnx`); it runs in a subprocess so its import time is part of its cost, as it is
for a user running `paddle2onnx` on the command line. repogen is timed in-process after its imports
(pass --cold to time a fresh `python -c` for repogen as well).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.support.zoo from a checkout

def _repogen_inprocess(model: Path) -> float:
    from repogen.paddle import load_model
    from repogen.trt import numpy_trt
    from repogen.trt.convert import convert_graph
    from repogen.trt.profiles import make_profiles

    t = time.perf_counter()
    g = load_model(model)
    convert_graph(g, numpy_trt, profiles=make_profiles(g.input_values(), shape=["x:1x3x224x224"]))
    return time.perf_counter() - t


def _repogen_cold(model: Path) -> float:
    code = ("from repogen.paddle import load_model; from repogen.trt import numpy_trt; "
            "from repogen.trt.convert import convert_graph; from repogen.trt.profiles import make_profiles; "
            f"g = load_model({str(model)!r}); "
            "convert_graph(g, numpy_trt, profiles=make_profiles(g.input_values(), shape=['x:1x3x224x224']))")
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - t


def _paddle2onnx(model: Path, out: Path) -> float:
    model_file = next(p for p in (model / "inference.json", model / "inference.pdmodel") if p.exists())
    cmd = [sys.executable, "-m", "paddle2onnx.command", "--model_dir", str(model), "--model_filename", model_file.name,
           "--params_filename", "inference.pdiparams", "--save_file", str(out), "--opset_version", "17"]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    elapsed = time.perf_counter() - t
    if proc.returncode != 0 or not out.exists():
        raise SystemExit(f"paddle2onnx failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--format", default="paddle2", choices=["pir", "paddle2"])
    ap.add_argument("--cold", action="store_true", help="time repogen in a fresh interpreter too")
    args = ap.parse_args()
    from tests.support import zoo
    model = zoo.get("resnet50", args.format)
    rg = _repogen_cold(model) if args.cold else _repogen_inprocess(model)
    with tempfile.TemporaryDirectory() as tmp:
        p2o = _paddle2onnx(model, Path(tmp) / "model.onnx")
    mode = "cold process" if args.cold else "in-process"
    print(f"ResNet-50 ({args.format}): repogen load+convert {rg:.3f} s ({mode}), paddle2onnx export {p2o:.3f} s, "
          f"ratio {p2o / rg:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
