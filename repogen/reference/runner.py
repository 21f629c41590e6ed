"""Run the Paddle reference in a child process: a timeout, a memory cap, and one error that names the reference.

Paddle can abort the whole process, loop forever on a corrupt program or allocate without bound; none of that
may take repogen down or hang it, and none of it may read as a fault of the model repogen built. One child
serves any number of feeds for one model (``validate`` asks for several cases), so Paddle is imported and the
program loaded once per model; a child that finished cleanly waits for the next model (importing Paddle costs
2-4 s per start, and ``check`` over a model zoo starts one reference per model).
"""

from __future__ import annotations

import atexit
import os
import pickle
import selectors
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from pathlib import Path
from typing import Any, Callable

import numpy as np

from repogen.errors import PaddleReferenceError
from repogen.extras import require_installed
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


class _Child:
    """The process and its pipes; ``send``/``receive`` raise _Broken (with the detail) when the child can't go on."""

    def __init__(self, memory_mb: int):
        self.memory_mb = memory_mb
        fd, self.stderr_path = tempfile.mkstemp(prefix="repogen-reference-", suffix=".log")
        os.close(fd)
        root = str(Path(__file__).resolve().parents[2])  # the folder holding the repogen package
        env = dict(os.environ, GLOG_minloglevel="2",
                   PYTHONPATH=os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p))
        with open(self.stderr_path, "ab") as err:  # append mode: the log can be emptied between models
            self.proc = subprocess.Popen([sys.executable, "-m", "repogen.reference.child", str(memory_mb << 20)],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, env=env,
                                         bufsize=0)
        os.set_blocking(self.proc.stdin.fileno(), False)  # a stuck child must not block us on a full pipe

    def send(self, request: dict, deadline: float, timeout: float, doing: str) -> None:
        data = pickle.dumps(request, protocol=5)
        frame = memoryview(_HEADER.pack(len(data)) + data)
        fd = self.proc.stdin.fileno()
        while frame:
            self._wait(fd, deadline, timeout, doing, write=True)
            try:
                frame = frame[os.write(fd, frame):]
            except BlockingIOError:
                continue
            except BrokenPipeError:
                self._died(doing)

    def receive(self, deadline: float, timeout: float, doing: str) -> dict:
        (size,) = _HEADER.unpack(self._read(_HEADER.size, deadline, timeout, doing))
        return pickle.loads(self._read(size, deadline, timeout, doing))

    def _read(self, n: int, deadline: float, timeout: float, doing: str) -> bytes:
        fd = self.proc.stdout.fileno()
        buf = bytearray()
        while len(buf) < n:
            self._wait(fd, deadline, timeout, doing)
            chunk = os.read(fd, min(n - len(buf), 1 << 22))
            if not chunk:
                self._died(doing)
            buf += chunk
        return bytes(buf)

    def _wait(self, fd: int, deadline: float, timeout: float, doing: str, write: bool = False) -> None:
        left = max(deadline - time.monotonic(), 0)
        # a selector, not select(): select() refuses descriptors >= 1024, which a long-lived process
        # (a test session, a server validating many models) reaches
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_WRITE if write else selectors.EVENT_READ)
            ready = sel.select(left)
        if not ready:
            self.stop(kill=True)  # it may be stuck in Paddle's C++: EOF would not end it
            raise _Broken(f"no answer after {timeout:g} s while {doing} (timeout; REPOGEN_REFERENCE_TIMEOUT "
                          "sets it)")

    def _died(self, doing: str) -> None:
        try:
            code = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            code = None
        how = f"killed by {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit status {code}"
        tail = self.stderr_tail()
        self.stop(kill=True)
        raise _Broken(f"the Paddle process died while {doing} ({how}; memory cap {self.memory_mb} MiB, "
                      "REPOGEN_REFERENCE_MEMORY_MB sets it)" + (f": {tail}" if tail else ""))

    def stderr_tail(self, limit: int = 600) -> str:
        """The last meaningful lines Paddle wrote to stderr, on one line."""
        try:
            with open(self.stderr_path, "rb") as f:
                lines = [ln.strip() for ln in f.read().decode("utf-8", "replace").splitlines()]
        except OSError:
            return ""
        lines = [ln for ln in lines if ln and not set(ln) <= set("-=") and "No ccache found" not in ln
                 and "warnings.warn" not in ln]
        return " ".join(lines[-6:])[-limit:]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, kill: bool = False) -> None:
        if kill and self.alive():
            self.proc.kill()
        for pipe in (self.proc.stdin, self.proc.stdout):
            try:
                pipe.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=5)  # EOF on stdin ends a healthy child
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        try:
            os.unlink(self.stderr_path)
        except OSError:
            pass


class _Broken(Exception):
    pass


_idle: list[_Child] = []  # at most one clean child waiting for the next model
_idle_lock = threading.Lock()


def _take(memory_mb: int) -> _Child:
    with _idle_lock:
        while _idle:
            child = _idle.pop()
            if child.alive() and child.memory_mb == memory_mb:
                return child
            child.stop(kill=True)
    return _Child(memory_mb)


def _give_back(child: _Child) -> None:
    if not child.alive():
        child.stop()
        return
    with _idle_lock:
        _idle.append(child)
        extra = _idle[:-1]
        del _idle[:-1]
    for c in extra:
        c.stop(kill=True)


def prewarm(memory_mb: int | None = None) -> None:
    """Start a child now if none is waiting: Paddle's import then overlaps the caller's own work (reading,
    cleaning, converting) instead of following it."""
    memory_mb = default_memory_mb() if memory_mb is None else int(memory_mb)
    with _idle_lock:
        if any(c.alive() and c.memory_mb == memory_mb for c in _idle):
            return
    _give_back(_Child(memory_mb))


@atexit.register
def _stop_idle() -> None:
    with _idle_lock:
        children = list(_idle)
        _idle.clear()
    for c in children:
        c.stop()


class ReferenceRunner:
    """Paddle Inference on one model in a child process; ``run`` may be called any number of times.

    The model loads in the background: construct the runner early and do other work (the check converts and
    runs the NumPy network meanwhile); the first ``run`` or name lookup waits for it. Every failure (Paddle's
    error, the child dying, a timeout, the memory cap) raises PaddleReferenceError naming the model file; after
    a timeout or a death the runner is closed. ``close`` (or the end of a with block, or garbage collection)
    hands a healthy child back for the next model.
    """

    def __init__(self, model: str | Path | ModelSource, *, timeout: float | None = None,
                 memory_mb: int | None = None):
        require_installed("paddle", extra="paddle", for_what="comparing with Paddle Inference (the reference)")
        self.source = source_of(model)
        self.timeout = default_timeout() if timeout is None else float(timeout)
        self.memory_mb = default_memory_mb() if memory_mb is None else int(memory_mb)
        self._child: _Child | None = _take(self.memory_mb)
        self._finalizer = weakref.finalize(self, _give_back, self._child)
        self._names: tuple[list[str], list[str]] | None = None
        src = self.source
        self._loading = time.monotonic() + self.timeout  # the deadline of the load in flight
        self._guard(self._child.send, {"load": {"format": src.format, "model_file": str(src.model_file),
                                                "params_file": str(src.params_file) if src.params_file else None}},
                    self._loading, self.timeout, "loading the model")

    @property
    def input_names(self) -> list[str]:
        return self._ready()[0]

    @property
    def output_names(self) -> list[str]:
        return self._ready()[1]

    @property
    def pid(self) -> int | None:
        return self._child.proc.pid if self._child else None

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Paddle's outputs by its output names, in fetch order; ``feeds`` keyed by its input names."""
        inputs = self._ready()[0]
        missing = [n for n in inputs if n not in feeds]
        if missing:
            raise PaddleReferenceError(self.source.model_file, f"no feed for input(s) {', '.join(missing)} "
                                                               f"(given: {', '.join(feeds)})")
        deadline = time.monotonic() + self.timeout
        self._guard(self._child.send, {"run": {n: np.ascontiguousarray(feeds[n]) for n in inputs}}, deadline,
                    self.timeout, "sending the inputs")
        return self._reply(deadline, "running the model")["outputs"]

    def close(self) -> None:
        if self._names is None and self._child is not None:
            try:  # the load still in flight: its answer must be read before the child serves another model
                self._ready()
            except PaddleReferenceError:
                pass
        self._finalizer()
        self._child = None

    def __enter__(self) -> "ReferenceRunner":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _ready(self) -> tuple[list[str], list[str]]:
        if self._names is None:
            reply = self._reply(self._loading, "loading the model")
            self._names = (reply["inputs"], reply["outputs"])
        return self._names

    def _guard(self, step: Callable[..., Any], *args: Any) -> Any:
        if self._child is None:
            raise PaddleReferenceError(self.source.model_file, "the reference runner is closed")
        try:
            return step(*args)
        except _Broken as exc:
            self._finalizer.detach()
            self._child = None
            raise PaddleReferenceError(self.source.model_file, str(exc)) from None

    def _reply(self, deadline: float, doing: str) -> dict:
        reply = self._guard(self._child.receive, deadline, self.timeout, doing)
        if reply.get("error"):
            detail = reply["error"]
            if any(h in detail for h in _MEMORY_HINTS):
                detail += f" (memory cap {self.memory_mb} MiB; REPOGEN_REFERENCE_MEMORY_MB sets it)"
            if reply.get("fatal"):  # a failed load may leave Paddle half-imported: no next model in this child
                self._finalizer.detach()
                self._child.stop(kill=True)
                self._child = None
                self._names = ([], [])
            raise PaddleReferenceError(self.source.model_file, detail)
        return reply


def reference_outputs(model: str | Path | ModelSource, feeds: dict[str, np.ndarray], *,
                      timeout: float | None = None) -> dict[str, np.ndarray]:
    """One run: Paddle's outputs by its output names, in fetch order."""
    with ReferenceRunner(model, timeout=timeout) as runner:
        return runner.run(feeds)
