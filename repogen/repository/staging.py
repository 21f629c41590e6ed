"""Build beside the repository, then move whole model folders into place with renames.

Everything is written into a hidden staging folder next to ``--out`` (same filesystem, so ``rename`` is
atomic). Nothing under ``--out`` changes until every model has been built and checked. Then each model
folder is renamed in; a model that already exists (``--force``) is swapped with ``renameat2(RENAME_EXCHANGE)``
where the kernel offers it, so at every instant the path holds either the old or the new model, never
neither or a mix. A build killed at any point (even ``kill -9``) leaves at most a stale staging folder,
which the next build beside the same ``--out`` removes.

What is stale is decided by a lock, never by a pid: the build holds an exclusive ``flock`` on the ``.lock``
file inside its staging folder for as long as it runs (repogen.locks), and the kernel drops it when the
process dies, however it died. A staging folder whose lock can be taken is stale; one whose lock is held
belongs to a live build, also one in another PID namespace (a container sharing the folder), whose pid
means nothing here. A folder without a lock file is left alone (a build creating or committing it this
instant, or a folder repogen did not make).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import sys
import time
from pathlib import Path

from repogen.errors import ConfigError
from repogen.locks import LOCK_NAME, LockedDir, make_locked_dir, remove_dead_dirs

_PREFIX = ".{}.repogen-tmp-"
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100
PAUSE_ENV = "REPOGEN_TEST_PAUSE_AFTER"  # test-only: "copy" or "commit"; see pause_point()


def pause_point(stage: str) -> None:
    """Tests kill a build here (``kill -9``) to prove an interrupted build leaves the repository alone."""
    if os.environ.get(PAUSE_ENV) == stage:
        print(f"REPOGEN_TEST_PAUSED {stage}", file=sys.stderr, flush=True)
        time.sleep(3600)


# staging folder -> its held lock; released when the folder is committed or discarded
_held: dict[Path, LockedDir] = {}


def remove_stale(out: Path) -> list[Path]:
    """Staging folders beside ``out`` whose build is gone (their lock is free): removed."""
    if not out.parent.is_dir():
        return []
    return [path for path, _ in remove_dead_dirs(out.parent, _PREFIX.format(out.name))]


def make_staging(out: Path) -> Path:
    """A fresh staging folder beside ``out``, locked for as long as this build runs. The pid in its name
    only tells a person which process made it."""
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(out)
    # a filesystem without flock: the folder has no lock file and is never removed by another build
    owned = make_locked_dir(out.parent, f"{_PREFIX.format(out.name)}{os.getpid()}-", mode=0o777, required=False)
    _held[owned.path] = owned
    return owned.path


def _release(staging: Path) -> None:
    owned = _held.pop(staging, None)
    if owned is not None:
        owned.release()


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
        # A new repository appears all at once. Its lock file goes first (the lock itself stays held on the
        # open descriptor); for that instant the folder has no lock file, which no other build judges stale.
        for entry in staging.iterdir():
            if entry.name not in names and entry.name != LOCK_NAME:
                shutil.rmtree(entry)
        (staging / LOCK_NAME).unlink(missing_ok=True)
        os.rename(staging, out)
        _release(staging)
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
    _release(staging)


def discard(staging: Path) -> None:
    shutil.rmtree(staging, ignore_errors=True)
    _release(staging)
