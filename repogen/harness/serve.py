"""``repogen serve``: Triton on a repository until Ctrl-C (or SIGTERM), then a clean stop."""

from __future__ import annotations

import time

from repogen.harness.model_files import list_models
from repogen.harness.server import launch


def run(args) -> int:
    from pathlib import Path

    remote = "://" in args.repo  # s3://...: the models are known once launch() has mirrored the store
    names = None if remote else list_models(Path(args.repo))
    with launch(args.repo, args.server, models=names, image=args.image, tritonserver=args.tritonserver,
                require_models=True) as srv:
        names = list_models(srv.repo) if remote else names
        print(f"serving {len(names)} model(s) from {args.repo}: {', '.join(names)}")
        print(f"  HTTP  http://{srv.http_url}")
        print(f"  gRPC  grpc://{srv.grpc_url}")
        print("press Ctrl-C to stop", flush=True)
        while srv.alive():
            time.sleep(0.5)
        raise srv.error_with_log("tritonserver exited on its own")
    return 0
