"""One filler at a time for the test caches under the temp folder (trained exports, OpenCV 4.10's wheel): the
suite runs in several pytest-xdist workers, and two of them may find the same cache empty at once."""

from __future__ import annotations

import contextlib
import fcntl
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def cache_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``folder/.fill.lock`` (blocking); the kernel drops it if the holder dies."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".fill.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
