"""Load time of ResNet-50 (~100 MB of parameters): repogen vs Paddle's loader vs a raw read of the file.

Run: python bench/bench_load.py [--format pir|paddle2] [--repeat N]
Each figure is the best of N runs with a warm page cache (the file is read once before timing).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--format", default="pir", choices=["pir", "paddle2"])
    ap.add_argument("--repeat", type=int, default=10)
    args = ap.parse_args()
    if args.format == "paddle2":
        os.environ["FLAGS_enable_pir_api"] = "0"  # must precede the paddle import

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
    from tests.support import zoo
    from repogen.paddle import load_model

    model_dir = zoo.get("resnet50", args.format)
    params = model_dir / "inference.pdiparams"
    size = params.stat().st_size
    np.fromfile(params, dtype=np.uint8)  # warm the page cache for every contender

    def repogen_load() -> None:
        g = load_model(model_dir)
        # touch every parameter's metadata the way a converter would
        assert sum(a.size for a in g.params.values()) * 4 == sum(a.nbytes for a in g.params.values())

    def raw_read() -> None:
        np.fromfile(params, dtype=np.uint8)

    def repogen_materialize() -> None:
        g = load_model(model_dir)
        for a in g.params.values():  # copy every byte out of the mmap: what building a plan costs
            np.array(a)

    # repogen and the raw read are timed before Paddle is imported: its import starts worker threads
    t_repogen = best(repogen_load, args.repeat)
    t_mat = best(repogen_materialize, args.repeat)
    t_raw = best(raw_read, args.repeat)

    import paddle

    paddle.enable_static()
    exe = paddle.static.Executor(paddle.CPUPlace())

    def paddle_load() -> None:
        scope = paddle.static.Scope()
        with paddle.static.scope_guard(scope):
            prog, _, _ = paddle.static.load_inference_model(str(model_dir / "inference"), exe)
            if paddle.framework.in_pir_mode():
                names = [op.attrs()["parameter_name"] for op in prog.global_block().ops
                         if op.name() == "builtin.parameter"]
            else:
                names = [v.name for v in prog.list_vars() if v.persistable and v.name not in ("feed", "fetch")]
            for n in names:
                np.array(scope.find_var(n).get_tensor())

    t_paddle = best(paddle_load, max(3, args.repeat // 2))
    print(f"ResNet-50 {args.format}: {size / 1e6:.1f} MB of parameters, best of {args.repeat}")
    print(f"  repogen load_model (mmap views)       {t_repogen * 1e3:8.1f} ms")
    print(f"  repogen load_model + copy all params  {t_mat * 1e3:8.1f} ms")
    print(f"  numpy.fromfile of the params file     {t_raw * 1e3:8.1f} ms")
    print(f"  paddle load_inference_model + numpy   {t_paddle * 1e3:8.1f} ms")
    print(f"  paddle / repogen     {t_paddle / t_repogen:6.1f}x   (target >= 10x)")
    print(f"  repogen / raw read   {t_repogen / t_raw:6.2f}x   (target <= 2x)")
    print(f"  repogen+copy / raw   {t_mat / t_raw:6.2f}x")


if __name__ == "__main__":
    main()
