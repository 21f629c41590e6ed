"""Several tritonservers on one machine, all reading the same repository (an s3:// URI or a folder): what a
Deployment with N replicas behind a Service does, in miniature, for tests and demos."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path
from typing import Iterator

from repogen.deploy.loadtest import Replica
from repogen.harness.server import TritonServer, launch


@contextlib.contextmanager
def launch_replicas(repo: str | Path, count: int, *, extra_args: list[str] | None = None,
                    models: list[str] | None = None, tritonserver: str | None = None) -> Iterator[list[TritonServer]]:
    """``count`` local servers on ``repo``, each on its own loopback ports; all stopped when the block ends."""
    if count < 1:
        raise ValueError("count must be >= 1")
    with contextlib.ExitStack() as stack:
        servers = [stack.enter_context(launch(repo, "local", models=models, extra_args=extra_args,
                                              tritonserver=tritonserver)) for _ in range(count)]
        yield servers


def replicas_of(servers: list[TritonServer]) -> list[Replica]:
    return [Replica(s.http_url, s.grpc_url) for s in servers]


def crash(server: TritonServer) -> None:
    """SIGKILL the server's whole process group: a node lost, not a graceful shutdown."""
    if server.proc is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.proc.pid, signal.SIGKILL)
        server.proc.wait(timeout=30)
