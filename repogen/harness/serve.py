"""``repogen serve``: Triton on a repository until Ctrl-C (or SIGTERM), then a clean stop."""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path

from repogen.harness.model_files import list_models
from repogen.harness.server import launch


def running_program(argv0: str | None = None, main_module: str | None = None) -> list[str]:
    """The command that runs this repogen, so a printed command works without an activated venv: the
    console script by its resolved path (``.venv/bin/repogen``), or ``python -m MODULE`` with this
    interpreter's path when started that way. ``argv0`` / ``main_module`` default to this process's."""
    argv0 = sys.argv[0] if argv0 is None else argv0
    if main_module is None:
        spec = getattr(sys.modules.get("__main__"), "__spec__", None)
        main_module = spec.name if spec is not None else ""  # None: a script, such as the console script
    if main_module.split(".")[0] == "repogen":  # python -m repogen.cli (a package's __main__ stands for it)
        return [sys.executable, "-m", main_module.removesuffix(".__main__")]
    if argv0 and Path(argv0).name.startswith("repogen") and Path(argv0).is_file():
        return [str(Path(argv0).resolve())]
    beside = Path(sys.executable).parent / "repogen"  # the venv's console script
    return [str(beside)] if beside.is_file() else ["repogen"]


def validate_command(repo: str | Path, http_url: str, grpc_url: str, program: list[str] | None = None) -> str:
    """The ``repogen validate`` line that checks the models of a running ``repogen serve``, spelled with the
    program that is running (``running_program``) unless ``program`` is given."""
    words = [*(program or running_program()), "validate", str(repo), "--server", f"http://{http_url}",
             "--grpc-url", f"grpc://{grpc_url}"]
    return shlex.join(words)



def run(args) -> int:
    remote = "://" in args.repo  # s3://...: the models are known once launch() has mirrored the store
    names = None if remote else list_models(Path(args.repo))
    with launch(args.repo, args.server, models=names, image=args.image, tritonserver=args.tritonserver,
                http_port=getattr(args, "http_port", None), grpc_port=getattr(args, "grpc_port", None),
                require_models=True, engine=getattr(args, "engine", None),
                strict_readiness=not getattr(args, "no_strict_readiness", False)) as srv:
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
