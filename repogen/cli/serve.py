"""``repogen serve``: Triton on a repository until Ctrl-C (or SIGTERM), then a clean stop."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from repogen.cli.options import add_container_options, add_store_options, port

HELP = "start Triton on a repository until Ctrl-C"


def add_parser(sub: Any) -> None:
    p = sub.add_parser("serve", help=HELP, description=HELP)
    p.add_argument("repo", help="model repository folder (what repogen build --out wrote), or s3://bucket/prefix")
    add_store_options(p, prune=False)  # --endpoint-url for an s3:// repo
    p.add_argument("--server", default="local", choices=["docker", "local"],
                   help="local: the tritonserver bundled with nvidia-pytriton (CPU; pip install "
                        "\"repogen[serve]\"); docker: a Triton container (docs/docker.md)")
    add_container_options(p)
    p.add_argument("--tritonserver", metavar="PATH",
                   help="tritonserver binary for --server local (default: the bundled one)")
    p.add_argument("--http-port", type=port, metavar="PORT", help="HTTP port on 127.0.0.1 (default: a free one)")
    p.add_argument("--grpc-port", type=port, metavar="PORT", help="gRPC port on 127.0.0.1 (default: a free one)")
    p.add_argument("--no-strict-readiness", action="store_true",
                   help="let /v2/health/ready answer 200 as soon as the server responds (default: only once every "
                        "model is loaded, as probes and scripts that wait for readiness expect)")


def run(args: argparse.Namespace) -> int:
    from repogen.harness.model_files import list_models
    from repogen.harness.serve import validate_command
    from repogen.harness.server import launch

    remote = "://" in args.repo  # s3://...: the models are known once launch() has mirrored the store
    names = None if remote else list_models(Path(args.repo))
    with launch(args.repo, args.server, models=names, image=args.image, tritonserver=args.tritonserver,
                http_port=args.http_port, grpc_port=args.grpc_port, require_models=True, engine=args.engine,
                strict_readiness=not args.no_strict_readiness) as srv:
        names = list_models(srv.repo) if remote else names
        for note in srv.notes:
            print(f"note: {note}", file=sys.stderr)
        print(f"serving {len(names)} model(s) from {args.repo}: {', '.join(names)}")
        print(f"  HTTP  http://{srv.http_url}")
        print(f"  gRPC  grpc://{srv.grpc_url}")
        print(f"validate it from another shell:\n  {validate_command(args.repo, srv.http_url, srv.grpc_url)}")
        print("press Ctrl-C to stop", flush=True)
        while srv.alive():
            time.sleep(0.5)
        raise srv.error_with_log("tritonserver exited on its own")
    return 0
