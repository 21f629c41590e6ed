"""Local temp folders and lock files that tell a live process from a dead one by ``flock``, never by a pid.

A process that owns a temp folder holds an exclusive ``flock`` on a ``.lock`` file inside it for as long as
it lives; the kernel drops the lock when the process dies, whatever killed it (SIGKILL included). A later
run that can take the lock knows the owner is gone and removes the folder. Pids say nothing across PID
namespaces (containers) and are reused; a lock held on the file itself does not have those problems.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Iterator

from repogen.errors import ConfigError

LOCK_NAME = ".lock"


def try_lock(path: Path, create: bool = False) -> int | None:
    """An open descriptor holding an exclusive ``flock`` on ``path``, or None when another process holds it
    (or the file is missing, or is not a regular file: a planted symlink is never followed)."""
    flags = os.O_RDWR | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0) | (os.O_CREAT if create else 0)
    try:
        fd = os.open(path, flags, 0o600)
    except OSError:
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def private_dir(name: str) -> Path:
    """``$TMPDIR/repogen-<uid>/<name>``, created 0700 and checked to be this user's own real folder, so that
    another user cannot plant a symlink or read the lock files in it."""
    base = Path(tempfile.gettempdir()) / f"repogen-{os.getuid()}"
    for d in (base, base / name):
        try:
            os.mkdir(d, 0o700)
        except FileExistsError:
            pass
        st = os.lstat(d)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
            raise ConfigError(f"{d}: expected a folder owned by this user with mode 0700 (remove it and retry)")
    return base / name


@contextlib.contextmanager
def locked_tempdir(prefix: str) -> Iterator[Path]:
    """A fresh folder under the temp directory, marked live by a held lock; removed when the block ends
    (exceptions and SIGTERM-turned-SystemExit included). After SIGKILL :func:`remove_dead_tempdirs` finds it."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    fd = try_lock(path / LOCK_NAME, create=True)
    if fd is None:  # a fresh private folder: only a broken filesystem refuses the lock
        shutil.rmtree(path, ignore_errors=True)
        raise ConfigError(f"{path}: cannot lock {LOCK_NAME} (does this filesystem support flock?)")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        os.close(fd)


def remove_dead_tempdirs(prefix: str) -> list[tuple[Path, int]]:
    """Folders made by :func:`locked_tempdir` whose owner is gone: removed; returns (folder, bytes freed).

    Only this user's own real folders with a lock file are considered: a folder without one is either
    being created this very moment or was not made here."""
    removed = []
    root = Path(tempfile.gettempdir())
    try:
        candidates = sorted(p for p in root.iterdir() if p.name.startswith(prefix))
    except OSError:
        return removed
    for p in candidates:
        try:
            st = os.lstat(p)
        except OSError:
            continue
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
            continue
        fd = try_lock(p / LOCK_NAME)
        if fd is None:
            continue  # live (lock held) or not ours to judge
        try:
            size = sum(f.stat(follow_symlinks=False).st_size for f in _walk_files(p))
            shutil.rmtree(p, ignore_errors=True)
            removed.append((p, size))
        finally:
            os.close(fd)
    return removed


def _walk_files(root: Path) -> Iterator[os.DirEntry]:
    stack = [root]
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                for e in it:
                    if e.is_dir(follow_symlinks=False):
                        stack.append(Path(e.path))
                    else:
                        yield e
        except OSError:
            continue
