"""Build beside the repository, then move whole model folders into place with renames.

Everything is written into a hidden staging folder next to ``--out`` (same filesystem, so ``rename`` is
atomic). Nothing under ``--out`` changes until every model has been built and checked. Then each model
folder is renamed in; a model that already exists (``--force``) is swapped with ``renameat2(RENAME_EXCHANGE)``
where the kernel offers it, so at every instant the path holds either the old or the new model, never
neither or a mix. A build killed at any point (even ``kill -9``) leaves at most a stale staging folder,
which the next build beside the same ``--out`` removes.
"""

from __future__ import annotations

import ctypes
import os
import secrets
import shutil
import sys
import time
from pathlib import Path

from repogen.errors import ConfigError

_PREFIX = ".{}.repogen-tmp-"
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100
PAUSE_ENV = "REPOGEN_TEST_PAUSE_AFTER"  # test-only: "copy" or "commit"; see pause_point()


def pause_point(stage: str) -> None:
    """Tests kill a build here (``kill -9``) to prove an interrupted build leaves the repository alone."""
    if os.environ.get(PAUSE_ENV) == stage:
        print(f"REPOGEN_TEST_PAUSED {stage}", file=sys.stderr, flush=True)
        time.sleep(3600)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale(out: Path) -> list[Path]:
    """Staging folders left by builds that were killed (their pid is gone)."""
    removed = []
    prefix = _PREFIX.format(out.name)
    if not out.parent.is_dir():
        return removed
    for p in out.parent.iterdir():
        if not p.name.startswith(prefix):
            continue
        pid_text = p.name[len(prefix):].split("-")[0]
        if pid_text.isdigit() and not _pid_alive(int(pid_text)):
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
    return removed


def make_staging(out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(out)
    path = out.parent / f"{_PREFIX.format(out.name)}{os.getpid()}-{secrets.token_hex(4)}"
    path.mkdir()
    return path


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux >= 3.15). False where the call is unavailable."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    rc = fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc != 0:
        err = ctypes.get_errno()
        if err in (38, 22, 95):  # ENOSYS, EINVAL (filesystem without exchange), EOPNOTSUPP
            return False
        raise OSError(err, os.strerror(err), str(b))
    return True


def commit(staging: Path, out: Path, names: list[str]) -> None:
    """Move ``staging/<name>`` folders into ``out``; remove the staging folder (and replaced models).

    The caller has checked that every existing ``out/<name>`` may be replaced (ownership.py)."""
    if not out.exists():
        # A new repository appears all at once.
        for entry in staging.iterdir():
            if entry.name not in names:
                shutil.rmtree(entry)
        os.rename(staging, out)
        pause_point("commit")
        return
    if not out.is_dir():
        raise ConfigError(f"{out}: exists and is not a folder")
    replaced = staging / ".replaced"
    for name in names:
        new, dest = staging / name, out / name
        if dest.exists() or dest.is_symlink():
            if not _exchange(new, dest):
                # Fallback: two renames; a kill between them leaves the old model in the staging folder.
                replaced.mkdir(exist_ok=True)
                os.rename(dest, replaced / name)
                os.rename(new, dest)
        else:
            os.rename(new, dest)
        pause_point("commit")
    shutil.rmtree(staging)


def discard(staging: Path) -> None:
    shutil.rmtree(staging, ignore_errors=True)
