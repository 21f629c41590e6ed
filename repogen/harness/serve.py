"""``repogen serve``: Triton on a repository until Ctrl-C (or SIGTERM), then a clean stop."""

from __future__ import annotations

import shlex
import time
from pathlib import Path

from repogen.harness.model_files import list_models
from repogen.harness.server import launch


def validate_command(repo: str | Path, http_url: str, grpc_url: str) -> str:
    """The ``repogen validate`` line that checks the models of a running ``repogen serve``."""
    return (f"repogen validate {shlex.quote(str(repo))} --server http://{http_url} "
            f"--grpc-url grpc://{grpc_url}")



def run(args) -> int:
    remote = "://" in args.repo  # s3://...: the models are known once launch() has mirrored the store
    names = None if remote else list_models(Path(args.repo))
    with launch(args.repo, args.server, models=names, image=args.image, tritonserver=args.tritonserver,
                http_port=getattr(args, "http_port", None), grpc_port=getattr(args, "grpc_port", None),
                require_models=True, engine=getattr(args, "engine", None)) as srv:
        names = list_models(srv.repo) if remote else names
        print(f"serving {len(names)} model(s) from {args.repo}: {', '.join(names)}")
        print(f"  HTTP  http://{srv.http_url}")
        print(f"  gRPC  grpc://{srv.grpc_url}")
        print(f"validate it from another shell:\n  {validate_command(args.repo, srv.http_url, srv.grpc_url)}")
        print("press Ctrl-C to stop", flush=True)
        while srv.alive():
            time.sleep(0.5)
        raise srv.error_with_log("tritonserver exited on its own")
    return 0
