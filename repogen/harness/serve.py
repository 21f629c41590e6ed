"""What ``repogen serve`` needs beyond the launcher: the command that validates the running server, spelled with
the program that is running."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path


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
