"""SIGTERM as an exception, so that the ``finally`` blocks and context managers that clean up (a server's
teardown, a publish's roll-back, a temp folder's removal) run when a process is asked to stop."""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator


@contextlib.contextmanager
def terminate_raises() -> Iterator[None]:
    """Turn SIGTERM into SystemExit(143) inside the block (main thread only: handlers live there)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):  # noqa: ARG001
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
