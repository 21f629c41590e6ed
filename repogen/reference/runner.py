"""Run the Paddle reference in a child process: a timeout, a memory cap, and one error that names the reference.

Paddle can abort the whole process, loop forever on a corrupt program or allocate without bound; none of that
may take repogen down or hang it, and none of it may read as a fault of the model repogen built. One child
serves any number of feeds for one model (``validate`` asks for several cases), so Paddle is imported and the
program loaded once per model.
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import tempfile
import time
import weakref
from pathlib import Path
from typing import Any

import numpy as np

from repogen.errors import PaddleReferenceError
from repogen.ir import ModelSource
from repogen.reference.predictor import source_of

DEFAULT_TIMEOUT_S = 600.0  # per step (start-up with the program load, or one run); REPOGEN_REFERENCE_TIMEOUT
_HEADER = struct.Struct(">Q")
# how running out of the address space the cap allows shows in Paddle's errors
_MEMORY_HINTS = ("MemoryError", "bad_alloc", "failed to map segment", "Cannot allocate memory", "ResourceExhausted",
                 "out of memory")


def default_memory_mb() -> int:
    """REPOGEN_REFERENCE_MEMORY_MB, else three quarters of this machine's memory."""
    env = os.environ.get("REPOGEN_REFERENCE_MEMORY_MB")
    if env:
        return int(env)
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * 3 / 4) >> 20


def default_timeout() -> float:
    env = os.environ.get("REPOGEN_REFERENCE_TIMEOUT")
    return float(env) if env else DEFAULT_TIMEOUT_S


class ReferenceRunner:
    """One child process running Paddle Inference on one model; ``run`` may be called any number of times.

    Every failure (Paddle's error, the child dying, a timeout, the memory cap) raises PaddleReferenceError
    naming the model file; after a timeout or a death the runner is closed.
    """

    def __init__(self, model: str | Path | ModelSource, *, timeout: float | None = None,
                 memory_mb: int | None = None):
        self.source = source_of(model)
        self.timeout = default_timeout() if timeout is None else float(timeout)
        self.memory_mb = default_memory_mb() if memory_mb is None else int(memory_mb)
        self._stderr = tempfile.TemporaryFile()
        root = str(Path(__file__).resolve().parents[2])  # the folder holding the repogen package
        env = dict(os.environ, GLOG_minloglevel="2",
                   PYTHONPATH=os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p))
        self.proc = subprocess.Popen([sys.executable, "-m", "repogen.reference.child"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self._stderr, env=env, bufsize=0)
        self._finalizer = weakref.finalize(self, _stop, self.proc, self._stderr)
        src = self.source
        self._send({"format": src.format, "model_file": str(src.model_file),
                    "params_file": str(src.params_file) if src.params_file else None,
                    "memory_bytes": self.memory_mb << 20}, "starting")
        ready = self._receive("loading the model")
        self.input_names: list[str] = ready["inputs"]
        self.output_names: list[str] = ready["outputs"]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Paddle's outputs by its output names, in fetch order; ``feeds`` keyed by its input names."""
        missing = [n for n in self.input_names if n not in feeds]
        if missing:
            self._fail(f"no feed for input(s) {', '.join(missing)} (given: {', '.join(feeds)})", close=False)
        self._send({n: np.ascontiguousarray(feeds[n]) for n in self.input_names}, "sending the inputs")
        return self._receive("running the model")["outputs"]

    def close(self) -> None:
        self._finalizer()

    def __enter__(self) -> "ReferenceRunner":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- the pipe ------------------------------------------------------------------------------------------------

    def _fail(self, detail: str, close: bool = True, kill: bool = False) -> None:
        if kill and self.proc.poll() is None:
            self.proc.kill()  # a timed-out child may be stuck in Paddle's C++: EOF would not end it
        if close:
            self.close()
        raise PaddleReferenceError(self.source.model_file, detail)

    def _send(self, obj: Any, doing: str) -> None:
        data = pickle.dumps(obj, protocol=5)
        frame = memoryview(_HEADER.pack(len(data)) + data)
        fd = self.proc.stdin.fileno()
        os.set_blocking(fd, False)  # a stuck child must not block us on a full pipe
        deadline = time.monotonic() + self.timeout
        while frame:
            self._wait(fd, deadline, doing, write=True)
            try:
                frame = frame[os.write(fd, frame):]
            except BlockingIOError:
                continue
            except BrokenPipeError:
                self._died(doing)

    def _receive(self, doing: str) -> dict:
        deadline = time.monotonic() + self.timeout
        (size,) = _HEADER.unpack(self._read(_HEADER.size, deadline, doing))
        reply = pickle.loads(self._read(size, deadline, doing))
        if reply.get("error"):
            detail = reply["error"]
            if any(h in detail for h in _MEMORY_HINTS):
                detail += f" (memory cap {self.memory_mb} MiB; REPOGEN_REFERENCE_MEMORY_MB sets it)"
            self._fail(detail, close=reply.get("fatal", False))
        return reply

    def _read(self, n: int, deadline: float, doing: str) -> bytes:
        fd = self.proc.stdout.fileno()
        buf = bytearray()
        while len(buf) < n:
            self._wait(fd, deadline, doing)
            chunk = os.read(fd, min(n - len(buf), 1 << 22))
            if not chunk:
                self._died(doing)
            buf += chunk
        return bytes(buf)

    def _wait(self, fd: int, deadline: float, doing: str, write: bool = False) -> None:
        left = deadline - time.monotonic()
        ready = select.select([], [fd], [], max(left, 0))[1] if write else select.select([fd], [], [], max(left, 0))[0]
        if not ready:
            self._fail(f"no answer after {self.timeout:g} s while {doing} (timeout; REPOGEN_REFERENCE_TIMEOUT "
                       "sets it)", kill=True)

    def _died(self, doing: str) -> None:
        try:
            code = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            code = None
        how = (f"killed by {signal.Signals(-code).name}" if code is not None and code < 0
               else f"exit status {code}")
        tail = _tail(self._stderr)
        self._fail(f"the Paddle process died while {doing} ({how}; memory cap {self.memory_mb} MiB, "
                   f"REPOGEN_REFERENCE_MEMORY_MB sets it)" + (f": {tail}" if tail else ""))


def _tail(f: Any, limit: int = 600) -> str:
    """The last meaningful lines Paddle wrote to stderr, on one line."""
    try:
        f.seek(0)
        lines = [ln.strip() for ln in f.read().decode("utf-8", "replace").splitlines()]
    except (OSError, ValueError):
        return ""
    lines = [ln for ln in lines if ln and not set(ln) <= set("-=") and "No ccache found" not in ln
             and "warnings.warn" not in ln]
    return " ".join(lines[-6:])[-limit:]


def _stop(proc: subprocess.Popen, stderr: Any) -> None:
    for pipe in (proc.stdin, proc.stdout):
        try:
            pipe.close()
        except OSError:
            pass
    try:
        proc.wait(timeout=5)  # EOF on stdin ends a healthy child
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    stderr.close()


def reference_outputs(model: str | Path | ModelSource, feeds: dict[str, np.ndarray], *,
                      timeout: float | None = None) -> dict[str, np.ndarray]:
    """One run in a fresh child: Paddle's outputs by its output names, in fetch order."""
    with ReferenceRunner(model, timeout=timeout) as runner:
        return runner.run(feeds)
