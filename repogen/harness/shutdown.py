"""Stopping a Triton server so that models are unloaded properly.

Triton handles SIGTERM by refusing new requests, waiting up to ``--exit-timeout-secs`` for in-flight ones
and unloading every model; the Python backend then calls each model's ``finalize()`` in its stub process
before the stub exits. Signalling the whole process group at once kills the stubs first ("FatalError:
Termination signal") and ``finalize()`` never runs. So the server process is signalled alone; only what
is still alive after a grace period (a wedged stub) gets the group SIGTERM and then SIGKILL.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

EXIT_TIMEOUT_S = 15  # --exit-timeout-secs: how long Triton waits for in-flight requests while unloading
STOP_GRACE_S = 10.0  # beyond the exit timeout, before the group is ended by force


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of group ``pgid``, from /proc (no psutil)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # the command name sits in parentheses and may contain spaces: fields follow the last ')'
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            found.append(int(entry))
    return found


def group_alive(pgid: int) -> bool:
    return bool(group_members(pgid))


def _wait(proc: subprocess.Popen, pgid: int, seconds: float, whole_group: bool) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None and not (whole_group and group_alive(pgid)):
            return True
        time.sleep(0.05)
    return False


def kill_process_group(proc: subprocess.Popen, grace: float = STOP_GRACE_S) -> None:
    """SIGTERM the whole group, SIGKILL what is left after ``grace`` seconds, reap the leader."""
    pgid = proc.pid  # start_new_session=True made the leader's pid the group id
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    _wait(proc, pgid, grace, whole_group=True)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def stop_server_process(proc: subprocess.Popen, exit_timeout: float = EXIT_TIMEOUT_S,
                        grace: float = STOP_GRACE_S) -> bool:
    """SIGTERM the server alone and give it ``exit_timeout + grace`` seconds to unload its models and exit;
    then end what is left of its group (stubs) by force. True when the server exited on its own."""
    pgid = proc.pid
    clean = True
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        clean = _wait(proc, pgid, exit_timeout + grace, whole_group=False)
    # stubs normally exit with the server; give stragglers a moment, then the group treatment
    if not _wait(proc, pgid, 2.0 if clean else 0.0, whole_group=True):
        kill_process_group(proc, grace=2.0)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)
    return clean

