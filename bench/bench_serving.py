"""Serving throughput: the old defaults (no dynamic batching, one Paddle thread) vs the new ones, in one run.

    python bench/bench_serving.py [--clients 1,8] [--window-ms 1000] [--max-windows 10] [--json FILE]

Models: the bundled example (repogen/examples/tiny_cnn, 3x32x32) and the zoo's mobilenet_v2 served at
224x224 (Paddle 2.x files, so Paddle Inference runs its oneDNN kernels). Each is built twice with
``repogen build --target paddle`` through the Python API:

- old: ``dynamic_batching = false``, ``cpu_threads = 1`` (what a build gave before issue 19);
- new: the defaults (``dynamic_batching { }``, Paddle threads = usable cores // CPU instances).

Both repositories are served by the bundled tritonserver at once (an idle server costs no CPU) and measured
alternately, ``--rounds`` times with the order flipped each round, so old and new see the same machine
load; each level uses the harness's windows (repogen/harness/windows.py): batch-1 gRPC requests from N
clients, time windows until the last 3 agree within 10 % (bounded; an unstable level is marked).
Reported: throughput, p50/p99, executions per request from the statistics extension, the median
throughput per configuration and the new/old ratio of the medians plus each round's paired ratio.
Target from issue 19: >= 1.8x at 8 clients on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from tests.support import zoo  # noqa: E402
from repogen.harness.model_files import make_cases, read_model_folder  # noqa: E402
from repogen.harness.server import launch  # noqa: E402
from repogen.harness.speed import measure  # noqa: E402
from repogen.build.flow import build_repository  # noqa: E402
from repogen.build.spec import EXAMPLE_DIR, DynamicBatching, ModelSpec  # noqa: E402

MAX_BATCH = 8


def specs(name: str, source: Path, input_name: str, hw: int, old: bool) -> ModelSpec:
    shape = f"{input_name}:{{}}x3x{hw}x{hw}"
    spec = ModelSpec(source=source, name=name, target="paddle", check=False,
                     min_shapes=[shape.format(1)], opt_shapes=[shape.format(MAX_BATCH)],
                     max_shapes=[shape.format(MAX_BATCH)])
    if old:
        spec.dynamic_batching = DynamicBatching(enabled=False)
        spec.cpu_threads = 1
    return spec


def measure_level(srv, model, feeds, clients: int, args) -> dict:
    r = measure(srv.grpc_url, model, feeds, clients, args.min_samples, "grpc", stats_url=srv.grpc_url, raw=False,
                window_ms=args.window_ms, max_windows=args.max_windows)
    batches = {int(k): v for k, v in r.server_batches.items()}
    executions = sum(batches.values())
    return {"clients": clients, "throughput_rps": r.throughput_rps, "p50_ms": r.p50_ms, "p99_ms": r.p99_ms,
            "stable": r.stable, "windows": r.windows, "requests": r.requests,
            "executions_per_request": executions / r.requests if r.requests else None,
            "executed_batch_sizes": batches, "server_queue_us": r.server_queue_us,
            "server_compute_us": r.server_compute_us, "errors": r.errors, "loadavg": os.getloadavg()[0]}


def run_model(name: str, repos: dict[str, Path], clients: list[int], args) -> dict[str, list[dict]]:
    """Both servers up at once (an idle one costs no CPU), measured alternately, so that old and new see the
    same machine load; ``--rounds`` repetitions, the order flipped every round."""
    rows: dict[str, list[dict]] = {"old": [], "new": []}
    model = read_model_folder(repos["old"] / name)
    feeds = make_cases(model)["batch 1"]
    with launch(repos["old"], models=[name], require_models=True) as old_srv, \
            launch(repos["new"], models=[name], require_models=True) as new_srv:
        servers = {"old": old_srv, "new": new_srv}
        for rnd in range(args.rounds):
            for c in clients:
                for label in (("old", "new") if rnd % 2 == 0 else ("new", "old")):
                    row = measure_level(servers[label], model, feeds, c, args) | {"round": rnd}
                    rows[label].append(row)
                    print(f"{name:>12} {label:>3} x{c:<2} round {rnd}: {row['throughput_rps']:8.1f} req/s  "
                          f"p50 {row['p50_ms']:7.2f} ms  p99 {row['p99_ms']:7.2f} ms  "
                          f"exec/req {row['executions_per_request'] or float('nan'):.2f}  "
                          f"{'stable' if row['stable'] else 'UNSTABLE'} ({row['windows']} windows)  "
                          f"load {row['loadavg']:.1f}", flush=True)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", default="1,8")
    ap.add_argument("--window-ms", type=int, default=1000)
    ap.add_argument("--max-windows", type=int, default=10)
    ap.add_argument("--min-samples", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--models", default="tiny_cnn,mobilenet_v2")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    clients = [int(x) for x in args.clients.split(",")]
    sources = {"tiny_cnn": (EXAMPLE_DIR, "image", 32), "mobilenet_v2": (None, "x", 224)}
    results: dict = {"cores": len(os.sched_getaffinity(0)), "loadavg_start": os.getloadavg(),
                     "window_ms": args.window_ms, "models": {}}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        for name in args.models.split(","):
            source, input_name, hw = sources[name]
            if source is None:
                source = zoo.get(name, "paddle2")
            repos = {}
            for label in ("old", "new"):
                repos[label] = Path(tmp) / f"{name}-{label}"
                build_repository([specs(name, source, input_name, hw, label == "old")], repos[label], progress=False)
            results["models"][name] = run_model(name, repos, clients, args)
    results["seconds"] = time.perf_counter() - started
    results["loadavg_end"] = os.getloadavg()
    print(f"\n{'model':>12} {'clients':>7} {'old req/s':>10} {'new req/s':>10} {'new/old':>8}  "
          f"(medians over {args.rounds} alternating rounds; paired ratios per round)")
    summary = {}
    for name, by in results["models"].items():
        for c in clients:
            old = [r for r in by["old"] if r["clients"] == c]
            new = [r for r in by["new"] if r["clients"] == c]
            o, n = statistics.median(r["throughput_rps"] for r in old), statistics.median(r["throughput_rps"] for r in new)
            paired = [b["throughput_rps"] / a["throughput_rps"] for a, b in
                      sorted(zip(sorted(old, key=lambda r: r["round"]), sorted(new, key=lambda r: r["round"])),
                             key=lambda ab: ab[0]["round"]) if a["throughput_rps"]]
            stable = sum(r["stable"] for r in old + new)
            summary[f"{name} x{c}"] = {"old_rps": o, "new_rps": n, "ratio": n / o if o else None,
                                       "paired_ratios": paired, "stable_levels": f"{stable}/{len(old) + len(new)}"}
            print(f"{name:>12} {c:>7} {o:>10.1f} {n:>10.1f} {n / o if o else float('nan'):>7.2f}x  per round "
                  f"{', '.join(f'{x:.2f}' for x in paired)}; {stable}/{len(old) + len(new)} levels stable")
    results["summary"] = summary
    print(f"{results['cores']} cores, load average {results['loadavg_start'][0]:.1f} at start, "
          f"{results['loadavg_end'][0]:.1f} at end, {results['seconds']:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
