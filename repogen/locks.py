"""Folders and lock files that tell a live process from a dead one by ``flock``, never by a pid.

A process that owns a temp folder holds an exclusive ``flock`` on a ``.lock`` file inside it for as long as
it lives; the kernel drops the lock when the process dies, whatever killed it (SIGKILL included). A later
run that can take the lock knows the owner is gone and removes the folder. Pids say nothing across PID
namespaces (containers) and are reused; a lock held on the file itself does not have those problems.

Used by the build's staging folders beside ``--out`` (repogen.repository.staging), the temp folders of
``build --out s3://`` and ``serve s3://`` and the publish transaction's lock files (repogen.storage), and the
per-user private folder of small cached files (:func:`private_cache_file`: the labels file a deploy config's
``label_list`` becomes).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import secrets
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


def private_cache_file(text: str, filename: str, folder: str) -> Path:
    """``text`` as ``filename`` in a per-content folder of this user's private cache,
    ``private_dir(folder)/<sha256>/filename``: written to a fresh temp file there (``O_EXCL``, 0600) and renamed
    over the name, so it is never opened through an existing path (a planted link is replaced, not followed)
    and a parallel build never reads a half-written file."""
    where = private_dir(folder) / hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
    try:
        os.mkdir(where, 0o700)
    except FileExistsError:
        pass
    fd, tmp = tempfile.mkstemp(prefix=f".{filename}-", dir=where)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, where / filename)
    except BaseException:
        os.unlink(tmp)
        raise
    return where / filename


class LockedDir:
    """A folder this process owns: ``path``, and the descriptor holding the lock on ``path / LOCK_NAME``.

    ``release()`` drops the lock (the folder stays: the caller removes or renames it first)."""

    def __init__(self, path: Path, fd: int | None) -> None:
        self.path, self._fd = path, fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def make_locked_dir(parent: Path, prefix: str, mode: int = 0o700, required: bool = True) -> LockedDir:
    """A fresh folder ``parent/<prefix><random>``, marked live by a held lock on the ``.lock`` file inside it.

    ``mode`` (less the umask): 0700 for private temp folders; a staging folder that becomes the repository
    itself takes the mode any new folder would have. Where the filesystem refuses ``flock`` the folder is
    refused (``required``) or made without a lock file, so that nobody ever judges it stale."""
    while True:
        path = parent / f"{prefix}{secrets.token_hex(4)}"
        try:
            os.mkdir(path, mode)
            break
        except FileExistsError:
            continue
    fd = try_lock(path / LOCK_NAME, create=True)
    if fd is None and required:  # a fresh folder of ours: only a filesystem without flock refuses the lock
        shutil.rmtree(path, ignore_errors=True)
        raise ConfigError(f"{path}: cannot lock {LOCK_NAME} (does this filesystem support flock?)")
    if fd is None:
        (path / LOCK_NAME).unlink(missing_ok=True)  # a free lock file would read as "owner gone"
    return LockedDir(path, fd)


@contextlib.contextmanager
def locked_tempdir(prefix: str) -> Iterator[Path]:
    """A fresh folder under the temp directory, marked live by a held lock; removed when the block ends
    (exceptions and SIGTERM-turned-SystemExit included). After SIGKILL :func:`remove_dead_tempdirs` finds it."""
    owned = make_locked_dir(Path(tempfile.gettempdir()), prefix)
    try:
        yield owned.path
    finally:
        shutil.rmtree(owned.path, ignore_errors=True)
        owned.release()


def remove_dead_dirs(parent: Path, prefix: str) -> list[tuple[Path, int]]:
    """Folders ``parent/<prefix>*`` made by :func:`make_locked_dir` whose owner is gone: removed; returns
    (folder, bytes freed).

    Only this user's own real folders with a lock file are considered: a folder without one is either
    being created this very moment, being renamed into place by its owner, or was not made here."""
    removed = []
    try:
        candidates = sorted(p for p in parent.iterdir() if p.name.startswith(prefix))
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


def remove_dead_tempdirs(prefix: str) -> list[tuple[Path, int]]:
    """:func:`remove_dead_dirs` under the temp directory (folders made by :func:`locked_tempdir`)."""
    return remove_dead_dirs(Path(tempfile.gettempdir()), prefix)


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
