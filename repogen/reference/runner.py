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


# The cap is on the child's address space (RLIMIT_AS), which runs ahead of the memory it really uses: Paddle's
# import and a small CNN took 1.07 GB of address space for 0.42 GB resident (measured, tiny_cnn at batch 8).
CAP_SHARE = 0.8  # of the memory available when the child starts: whatever else runs keeps the rest
CAP_STEP_MB = 512  # caps are rounded down to this, so a waiting child still fits the next model's cap


def _meminfo_mb(key: str) -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) >> 10
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_left_mb() -> int | None:
    """What this process's cgroup (a container's memory limit) still allows, where one is set."""
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            limit = Path(limit_file).read_text().strip()
            usage = int(Path(usage_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit.isdigit() and int(limit) < 1 << 60:  # "max" or a huge number: no limit
            return max(int(limit) - usage, 0) >> 20
    return None


def physical_memory_mb() -> int:
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")) >> 20


def available_memory_mb() -> int:
    """Memory a new process can have now without the kernel reclaiming from others or its OOM killer stepping in:
    Linux's MemAvailable, within what a cgroup limit leaves; three quarters of physical memory where neither
    can be read."""
    known = [v for v in (_meminfo_mb("MemAvailable"), _cgroup_left_mb()) if v is not None]
    return min(known) if known else physical_memory_mb() * 3 // 4


def default_memory_mb() -> int:
    """The reference child's memory cap: REPOGEN_REFERENCE_MEMORY_MB, else 80 % of the memory available now
    (never above three quarters of physical memory), rounded down to 512 MiB. A fixed cap above what the machine
    has free lets Paddle grow until the kernel's OOM killer ends it (a segmentation model at batch 8 x 640 x 640
    reached 17.3 GB that way); under this one Paddle fails with a memory error naming the cap first. (Paddle's
    import and a small model need about 1.5 GB of address space: on a machine with less free, the reference
    says so rather than starting.)"""
    env = os.environ.get("REPOGEN_REFERENCE_MEMORY_MB")
    if env:
        return int(env)
    cap = min(int(available_memory_mb() * CAP_SHARE), physical_memory_mb() * 3 // 4)
    return cap // CAP_STEP_MB * CAP_STEP_MB if cap >= CAP_STEP_MB else max(cap, 64)


def default_timeout() -> float:
    env = os.environ.get("REPOGEN_REFERENCE_TIMEOUT")
    return float(env) if env else DEFAULT_TIMEOUT_S


class _Child:
    """The process and its pipes; ``send``/``receive`` raise _Broken (with the detail) when the child can't go on."""

    def __init__(self, memory_mb: int, default_cap: bool = False):
        self.memory_mb = memory_mb
        self.default_cap = default_cap  # the cap followed the available memory (no cap asked for)
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


def _fits(child: _Child, memory_mb: int, default_cap: bool) -> bool:
    """Whether a waiting child's cap serves a new model: the same cap; or, when both followed the available
    memory, caps a step apart (the free memory moves between models; a new child costs Paddle's import)."""
    if child.memory_mb == memory_mb:
        return True
    return default_cap and child.default_cap and abs(child.memory_mb - memory_mb) <= CAP_STEP_MB


def _take(memory_mb: int, default_cap: bool = False) -> _Child:
    with _idle_lock:
        while _idle:
            child = _idle.pop()
            if child.alive() and _fits(child, memory_mb, default_cap):
                return child
            child.stop(kill=True)
    return _Child(memory_mb, default_cap)


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
    default_cap = memory_mb is None
    memory_mb = default_memory_mb() if default_cap else int(memory_mb)
    with _idle_lock:
        if any(c.alive() and _fits(c, memory_mb, default_cap) for c in _idle):
            return
    _give_back(_Child(memory_mb, default_cap))


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
        self._child: _Child | None = _take(default_memory_mb() if memory_mb is None else int(memory_mb),
                                           default_cap=memory_mb is None)
        self.memory_mb = self._child.memory_mb  # the cap of the child that runs the model
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

    def memory_mb_used(self) -> dict[str, int] | None:
        """The child's ``resident`` memory now, its ``peak`` resident memory and its ``address_space`` (what the cap
        limits), in MiB from /proc; None where that cannot be read."""
        try:
            fields = dict(line.split(":", 1) for line in
                          Path(f"/proc/{self.pid}/status").read_text().splitlines() if ":" in line)
            return {key: int(fields[name].split()[0]) >> 10
                    for key, name in (("resident", "VmRSS"), ("peak", "VmHWM"), ("address_space", "VmSize"))}
        except (OSError, KeyError, ValueError, IndexError, TypeError):
            return None

    def measure_run_mb(self, feeds: dict[str, np.ndarray], run: Callable[[dict], Any] | None = None
                       ) -> tuple[int, int] | None:
        """(address space MiB before, MiB the resident peak rose by) for one run of ``feeds`` through ``run``
        (default :meth:`run`; the child's peak is reset first through /proc/PID/clear_refs), or None where Linux's
        /proc cannot tell. Memory a previous model left in Paddle's allocator may be reused and read as free: a
        lower bound, which the memory cap backs up."""
        self._ready()
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")  # 5: reset the peak resident size
        except OSError:
            return None
        before = self.memory_mb_used()
        (run or self.run)(feeds)
        after = self.memory_mb_used()
        if before is None or after is None:
            return None
        return before["address_space"], max(after["peak"] - before["resident"], 0)

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
