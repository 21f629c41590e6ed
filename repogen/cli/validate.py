"""``repogen validate``: serve a repository on a real Triton and compare its answers with Paddle's."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from repogen.cli.options import add_container_options, add_store_options, at_least, comma_list
from repogen.errors import ConfigError

HELP = "serve a repository with Triton and validate it against Paddle"


def add_parser(sub: Any) -> None:
    p = sub.add_parser("validate", help=HELP, description=HELP)
    p.add_argument("repo", help="model repository folder (what repogen build --out wrote), or s3://bucket/prefix")
    add_store_options(p, prune=False)  # --endpoint-url for an s3:// repo
    p.add_argument("--models", metavar="NAME[,NAME]", help="comma-separated model names (default: all)")
    p.add_argument("--server", default="local", metavar="local|docker|URL",
                   help="local (the bundled CPU tritonserver), docker, or the HTTP URL of a running server "
                        "(http://HOST:PORT)")
    p.add_argument("--grpc-url", metavar="grpc://HOST:PORT",
                   help="gRPC endpoint of the --server URL (default: its HTTP port + 1, Triton's convention)")
    add_container_options(p)
    p.add_argument("--tritonserver", metavar="PATH", help="tritonserver binary for --server local")
    p.add_argument("--protocol", default="http,grpc", metavar="http,grpc",
                   help="protocols whose answers are compared with Paddle: http, grpc or both (default both)")
    p.add_argument("--inputs", metavar="FILE.npz", help="npz with one array per input name (default: random inputs "
                                                        "of the profile shapes)")
    p.add_argument("--concurrency", default="1,4", metavar="N[,N]",
                   help="comma-separated numbers of concurrent clients for the timing runs (default 1,4)")
    p.add_argument("--requests", type=at_least(1), default=200, metavar="N",
                   help="latency samples the stable windows must hold per concurrency level (default 200)")
    p.add_argument("--window-ms", type=at_least(1), default=500, metavar="MS", help="measurement window (default 500 ms)")
    p.add_argument("--stability-pct", type=float, default=10.0, metavar="PCT",
                   help="the last 3 windows' throughput and p50 must be within this %% of their average")
    p.add_argument("--max-windows", type=at_least(3), default=10, metavar="N",
                   help="give up on stability after this many windows (default 10)")
    p.add_argument("--level-budget-s", type=float, default=60.0, metavar="SECONDS",
                   help="longest the timing of one concurrency level may take; a level whose windows, sized "
                        "from the single-request latency, need longer is reported as too slow to measure "
                        "(default 60)")
    p.add_argument("--shm", action="store_true", help="also time gRPC with system shared memory")
    p.add_argument("--load", action="store_true", help="with --server URL: load the models on that server "
                   "(explicit model control; reloads a model that is already serving). Default: only check "
                   "that they are ready")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")


def _ints(text: str, flag: str) -> tuple[int, ...]:
    try:
        values = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError as exc:
        raise ConfigError(f"{flag} {text}: expected comma-separated integers") from exc
    if not values or min(values) < 1:
        raise ConfigError(f"{flag} {text}: values must be >= 1")
    return values


def run(args: argparse.Namespace) -> int:
    from repogen.cli.validate_report import print_report
    from repogen.harness.validate import validate_repository

    if not 0 < args.stability_pct < 100:
        raise ConfigError(f"--stability-pct {args.stability_pct}: must be between 0 and 100")
    report = validate_repository(
        args.repo, models=comma_list(args.models), server=args.server, image=args.image,
        tritonserver=args.tritonserver, protocols=tuple(comma_list(args.protocol) or ()), inputs=args.inputs,
        concurrency=_ints(args.concurrency, "--concurrency"), requests=args.requests, shm=args.shm,
        grpc_url=args.grpc_url, engine=args.engine, load=args.load,
        timing={"window_ms": args.window_ms, "stability_pct": args.stability_pct, "max_windows": args.max_windows,
                "level_budget_s": args.level_budget_s})
    if args.json:
        json.dump(report.to_dict(), sys.stdout, indent=2, default=float)
        print()
    else:
        print_report(report)
    return 0 if report.ok else 1
