"""Harness overhead: the harness's timing loop vs bare tritonclient calls on one server, in one run.

    python bench/bench_harness.py [REPO] [--model NAME] [--requests 300] [--window-ms 1000] [--concurrency 1,4]

Default repository: sample_repo (paddle target, serves on the CPU with the tritonserver bundled in
nvidia-pytriton). The harness phase and the raw phase are each measured in time windows until the last 3
agree within 10 % (repogen/harness/windows.py), so a ratio of 1.00 means no measurable overhead.
Target: <= 1.05.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from repogen.harness.model_files import list_models, make_cases, read_model_folder  # noqa: E402
from repogen.harness.server import launch  # noqa: E402
from repogen.harness.speed import measure  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("repo", nargs="?", default=str(Path(__file__).resolve().parent.parent / "sample_repo"))
    ap.add_argument("--model")
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--window-ms", type=int, default=1000)
    ap.add_argument("--concurrency", default="1,4")
    args = ap.parse_args()
    repo = Path(args.repo)
    name = args.model or list_models(repo)[0]
    model = read_model_folder(repo / name)
    feeds = make_cases(model)["batch 1" if model.max_batch_size > 0 else "profile opt"]
    worst = 0.0
    with launch(repo, models=[name], require_models=True) as srv:
        print(f"{name} on {srv.grpc_url} (gRPC), windows of {args.window_ms} ms, >= {args.requests} samples")
        print(f"{'conc':>4} {'raw req/s':>10} {'harness req/s':>14} {'ratio raw/harness':>18} {'p50 ms':>7} {'p99 ms':>7}")
        for c in (int(x) for x in args.concurrency.split(",")):
            r = measure(srv.grpc_url, model, feeds, c, args.requests, "grpc", window_ms=args.window_ms)
            worst = max(worst, r.overhead_ratio)
            print(f"{c:>4} {r.raw_throughput_rps:>10.1f} {r.throughput_rps:>14.1f} {r.overhead_ratio:>18.3f} "
                  f"{r.p50_ms:>7.2f} {r.p99_ms:>7.2f}")
    print(f"worst overhead ratio {worst:.3f} ({(worst - 1) * 100:+.1f} %), target <= 1.050")
    return 0


if __name__ == "__main__":
    sys.exit(main())
