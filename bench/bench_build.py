"""`repogen build` of ResNet-50: today's one-pass build against the real previous two-pass build, in one run.

The previous flow is the code of the commit just before the one-pass change (issue 13, commit adc00bb "build in
one pass"), i.e. ``adc00bb^`` = 9406858 (its build was repogen/triton/build.py + repogen/trt/check.py; the same
two-pass flow as b6f9717, which an earlier version of this script re-created by patching today's code). The
script checks that commit out as a detached git worktree in a temporary folder (``git worktree add --detach``;
removed again at the end, also on failure or Ctrl-C) and runs both CLIs the same way:

    cd CHECKOUT && PYTHONPATH=CHECKOUT python -m repogen.cli build MODEL --out TMP --target T --min-shapes ...

(``python -m repogen.cli`` is the entry point at both commits; pyproject's ``repogen`` script is
``repogen.cli:main`` in both). Each measurement is the wall-clock time of one such process, seen from this
script: interpreter start, imports (Paddle's included), read, check against Paddle, plan/model and config
writing, exit, as a user's ``repogen build`` is. Flows alternate (old first in even rounds, new first in odd
ones), ``--rounds`` each, same model (the zoo's resnet50 from today's tests/support/zoo.py), same shapes,
same target, same interpreter (this one), a fresh output folder per build. A build that exits non-zero, or
writes no plan (tensorrt) / model.py (paddle), fails the benchmark (both builds run their numeric check
against Paddle). Only whole-process times are reported: the calls of the two flows are not counted here
(tests/test_build_onepass.py counts today's).

Targets:
- ``paddle``: the real CPU build of this machine (read, check, copy the model, render the config);
- ``tensorrt``: the NumPy backend stands in for the ``tensorrt`` module, so the plan's network is really
  converted; only TensorRT's own engine build (GPU) is skipped. The stand-in is applied to both checkouts
  identically and from outside their code: a ``sitecustomize.py`` on PYTHONPATH patches
  ``repogen.trt.engine`` when it is imported (``tensorrt_module`` returns ``repogen.trt.numpy_trt``,
  ``build_engine`` returns a fixed b"PLAN"; that file is the same at both commits), and an ``nvidia-smi``
  script on PATH answers a compute capability of 8.9 so that both builds' GPU probe passes.

    python bench/bench_build.py [--target paddle|tensorrt|both] [--rounds 3] [--format pir|paddle2] [--int8]
                                [--old-commit adc00bb^]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.support.zoo from a checkout

ROOT = Path(__file__).resolve().parents[1]
ONE_PASS_COMMIT = "adc00bb"  # "build in one pass" (issue 13); its parent holds the two-pass build
SHAPES = ["--min-shapes", "x:1x3x224x224", "--opt-shapes", "x:1x3x224x224", "--max-shapes", "x:4x3x224x224"]
INT8_SHAPES = ["--min-shapes", "x:1x3x64x64", "--opt-shapes", "x:1x3x64x64", "--max-shapes", "x:4x3x64x64"]

# Loaded by both checkouts' interpreters for the tensorrt target (PYTHONPATH puts it first); it touches no
# repogen code until repogen.trt.engine is imported, and then changes the same two functions in both.
STAND_IN_SITECUSTOMIZE = '''\
import importlib.machinery
import sys


class _TensorRTStandIn:
    def find_spec(self, name, path=None, target=None):
        if name != "repogen.trt.engine":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None:
            return None
        original = spec.loader.exec_module

        def exec_module(module):
            original(module)
            from repogen.trt import numpy_trt

            module.tensorrt_module = lambda name=None: numpy_trt
            module.build_engine = lambda conversion, **kw: (b"PLAN", b"")

        spec.loader.exec_module = exec_module
        return spec


sys.meta_path.insert(0, _TensorRTStandIn())
'''


def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], check=True, capture_output=True, text=True).stdout.strip()


def _build_command(model: str, out: Path, target: str, int8: bool, calib: str | None) -> list[str]:
    cmd = [sys.executable, "-m", "repogen.cli", "build", model, "--out", str(out), "--name", "resnet50",
           "--target", target, *(INT8_SHAPES if int8 else SHAPES)]
    if int8:
        cmd += ["--int8", "--calib-data", str(calib)]
    return cmd


def _one(checkout: Path, cmd: list[str], env: dict[str, str], out: Path) -> float:
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=checkout, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"build from {checkout} failed (exit {proc.returncode}):\n"
                         f"{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    # the target really built: a plan for tensorrt (no fallback to paddle), a Python-backend model for paddle
    expected = "model.plan" if "tensorrt" in cmd else "model.py"
    if not (out / "resnet50" / "config.pbtxt").is_file() or not any(out.rglob(expected)):
        raise SystemExit(f"build from {checkout} wrote no resnet50/config.pbtxt and {expected} under {out}")
    shutil.rmtree(out, ignore_errors=True)
    return seconds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", default="both", choices=["paddle", "tensorrt", "both"])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--format", default="pir", choices=["pir", "paddle2"])
    ap.add_argument("--int8", action="store_true", help="tensorrt target at int8 (64x64 inputs, 12 samples)")
    ap.add_argument("--old-commit", default=f"{ONE_PASS_COMMIT}^",
                    help="the previous flow's commit (default: the parent of the one-pass change)")
    args = ap.parse_args()

    from tests.support import zoo
    model = str(zoo.get("resnet50", args.format))
    old_commit = _git("rev-parse", "--verify", f"{args.old_commit}^{{commit}}")
    new_commit = _git("rev-parse", "HEAD")
    dirty = " (with uncommitted changes)" if _git("status", "--porcelain", "--untracked-files=no") else ""

    from repogen.interrupts import terminate_raises

    tmp = Path(tempfile.mkdtemp(prefix="repogen-bench-build-"))
    old_tree = tmp / "old"
    worktree_added = False
    with terminate_raises():  # SIGTERM too runs the finally that removes the worktree
        try:
            worktree_added = True  # before the add: a failed add may still have registered the worktree
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(old_tree), old_commit],
                           check=True, capture_output=True, text=True)
            calib = None
            if args.int8:
                import numpy as np

                calib = str(tmp / "calib.npz")
                np.savez(calib, x=np.random.default_rng(0).uniform(-1, 1, (12, 3, 64, 64)).astype(np.float32))
            hook = tmp / "standin"
            hook.mkdir()
            (hook / "sitecustomize.py").write_text(STAND_IN_SITECUSTOMIZE)
            (hook / "nvidia-smi").write_text("#!/bin/sh\necho 8.9\n")
            (hook / "nvidia-smi").chmod(0o755)

            checkouts = {"old": old_tree, "new": ROOT}
            runs = ["tensorrt"] if args.int8 else ["paddle", "tensorrt"] if args.target == "both" else [args.target]
            print(f"repogen build of zoo resnet50 ({args.format}), {'int8 64x64' if args.int8 else 'fp32 224x224'}, "
                  f"{args.rounds} rounds, one `python -m repogen.cli build` process per build\n"
                  f"  old: {old_commit[:10]} (detached worktree)   new: {new_commit[:10]}{dirty} ({ROOT})")
            for target in runs:
                times: dict[str, list[float]] = {"old": [], "new": []}
                for r in range(args.rounds):
                    for flow in ("old", "new") if r % 2 == 0 else ("new", "old"):
                        checkout = checkouts[flow]
                        path = [str(checkout)]
                        env = {**os.environ, "GLOG_minloglevel": "3"}
                        if target == "tensorrt":
                            path.insert(0, str(hook))
                            env["PATH"] = f"{hook}{os.pathsep}{env.get('PATH', '')}"
                        env["PYTHONPATH"] = os.pathsep.join(path)
                        out = tmp / f"repo-{flow}"
                        cmd = _build_command(model, out, target, args.int8, calib)
                        times[flow].append(_one(checkout, cmd, env, out))
                old, new = statistics.median(times["old"]), statistics.median(times["new"])
                print(f"\ntarget {target}{' (int8)' if args.int8 else ''}"
                      f"{' (NumPy stand-in for tensorrt, engine build skipped)' if target == 'tensorrt' else ''}:")
                for flow in ("old", "new"):
                    print(f"  {flow:3s} flow: median {statistics.median(times[flow]):6.2f} s  "
                          f"(runs {', '.join(f'{t:.2f}' for t in times[flow])})")
                print(f"  old / new = {old / new:.2f}x  (saved {old - new:.2f} s per build)")
        finally:
            if worktree_added:
                removed = subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old_tree)],
                                         capture_output=True, text=True)
                if removed.returncode != 0 and old_tree.exists():
                    print(f"could not remove the worktree {old_tree}: {removed.stderr.strip()}", file=sys.stderr)
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
