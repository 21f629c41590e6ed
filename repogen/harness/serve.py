"""What ``repogen serve`` needs beyond the launcher: the command that validates the running server."""

from __future__ import annotations

import shlex
from pathlib import Path


def validate_command(repo: str | Path, http_url: str, grpc_url: str) -> str:
    """The ``repogen validate`` line that checks the models of a running ``repogen serve``."""
    return (f"repogen validate {shlex.quote(str(repo))} --server http://{http_url} "
            f"--grpc-url grpc://{grpc_url}")
