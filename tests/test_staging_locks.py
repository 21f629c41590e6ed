"""Staging folders beside ``--out`` are judged by the lock their build holds, never by the pid in their name
(issue 25 item 11), and the labels cache cannot be redirected through a planted symlink (item 12)."""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from repogen.build import pipeline_stages
from repogen.errors import ConfigError
from repogen.locks import LOCK_NAME
from repogen.repository import staging

ROOT = Path(__file__).resolve().parent.parent
HOLD = ("import fcntl, os, sys\n"
        "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "print('locked', flush=True)\n"
        "sys.stdin.read()\n")


def _invisible_pid() -> int:
    """A pid no process here has (above the kernel's pid_max): what a build in another PID namespace shows."""
    pid = int(Path("/proc/sys/kernel/pid_max").read_text()) + 17 if Path("/proc/sys/kernel/pid_max").exists() \
        else 2 ** 30
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the old rule ("pid not alive here: stale") would remove its folder
    return pid


def _staging_dirs(out: Path) -> list[Path]:
    return sorted(p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.repogen-tmp-"))


def _foreign_staging(out: Path, pid: int) -> Path:
    folder = out.parent / f".{out.name}.repogen-tmp-{pid}-0badc0de"
    (folder / "tiny_cnn" / "1").mkdir(parents=True)
    (folder / "tiny_cnn" / "1" / "model.py").write_text("# being written by a live build\n")
    return folder


def _hold_lock(path: Path) -> subprocess.Popen:
    """Another process holding ``path``'s lock, as a live build does."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_live_build_with_an_invisible_pid_is_kept_and_removed_once_dead(tmp_path: Path) -> None:
    out = tmp_path / "repo"
    foreign = _foreign_staging(out, _invisible_pid())
    holder = _hold_lock(foreign / LOCK_NAME)
    try:
        mine = staging.make_staging(out)
        assert foreign.is_dir() and (foreign / "tiny_cnn" / "1" / "model.py").is_file()
        staging.discard(mine)
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    # its owner is gone: the lock is free now, and the next build removes the folder
    mine = staging.make_staging(out)
    assert not foreign.exists()
    assert _staging_dirs(out) == [mine]
    staging.discard(mine)
    assert _staging_dirs(out) == []


def test_a_free_lock_is_stale_whatever_pid_the_name_shows(tmp_path: Path) -> None:
    out = tmp_path / "repo"
    dead = _foreign_staging(out, os.getpid())  # this very process's pid: alive, but its lock is not held
    (dead / LOCK_NAME).touch()
    assert staging.remove_stale(out) == [dead]
    assert not dead.exists()


def test_folders_without_a_usable_lock_file_are_not_judged(tmp_path: Path) -> None:
    out = tmp_path / "repo"
    unlocked = _foreign_staging(out, _invisible_pid())  # no lock file: being created or committed right now
    linked = out.parent / f".{out.name}.repogen-tmp-1-linked"
    linked.mkdir()
    target = tmp_path / "elsewhere.lock"
    target.touch()
    (linked / LOCK_NAME).symlink_to(target)  # a planted link is never opened, so never taken as free
    assert staging.remove_stale(out) == []
    assert unlocked.is_dir() and linked.is_dir() and target.is_file()


def test_the_build_holds_its_lock_until_commit_and_leaves_none_in_the_repository(tmp_path: Path) -> None:
    out = tmp_path / "repo"
    mine = staging.make_staging(out)
    assert (mine / LOCK_NAME).is_file()
    fd = os.open(mine / LOCK_NAME, os.O_RDWR)
    try:
        with pytest.raises(BlockingIOError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held by the build (another open file description)
    finally:
        os.close(fd)
    assert staging.remove_stale(out) == [] and mine.is_dir()
    (mine / "m").mkdir()
    (mine / "m" / "config.pbtxt").write_text('name: "m"\n')
    staging.commit(mine, out, ["m"])  # a new repository: the staging folder itself is renamed into place
    assert sorted(p.name for p in out.iterdir()) == ["m"] and _staging_dirs(out) == []
    again = staging.make_staging(out)
    (again / "m").mkdir()
    (again / "m" / "config.pbtxt").write_text('name: "m"\nmax_batch_size: 2\n')
    staging.commit(again, out, ["m"])  # replacing a model: the staging folder (and its lock file) removed
    assert sorted(p.name for p in out.iterdir()) == ["m"] and _staging_dirs(out) == []
    assert "max_batch_size: 2" in (out / "m" / "config.pbtxt").read_text()


def test_a_filesystem_without_flock_still_builds_and_never_judges(tmp_path: Path, monkeypatch) -> None:
    """Where flock is refused the staging folder is made without a lock file (a free one would read as "owner
    gone" to the next build) and is never removed by another build."""
    from repogen import locks

    monkeypatch.setattr(locks, "try_lock", lambda path, create=False: None)
    out = tmp_path / "repo"
    mine = staging.make_staging(out)
    assert mine.is_dir() and not (mine / LOCK_NAME).exists()
    assert staging.remove_stale(out) == [] and mine.is_dir()
    (mine / "m").mkdir()
    staging.commit(mine, out, ["m"])
    assert sorted(p.name for p in out.iterdir()) == ["m"]


def _unshare() -> list[str]:
    cmd = ["unshare", "--pid", "--fork", "--mount-proc"]
    if shutil.which("unshare") is None or subprocess.run([*cmd, "true"], capture_output=True).returncode != 0:
        pytest.skip("no PID namespace here (unshare --pid needs root or user namespaces)")
    return cmd


def test_a_build_in_another_pid_namespace_survives_a_build_beside_it(tmp_path: Path) -> None:
    """The issue's case: a build in a container (its own PID namespace) sharing the output folder's parent."""
    out = tmp_path / "repo"
    env = {**os.environ, "REPOGEN_TEST_PAUSE_AFTER": "copy"}
    # a few hundred short processes first, so the build's pid there (about 300) is one nobody has here
    burn = 'i=0; while [ $i -lt 300 ]; do /bin/true; i=$((i+1)); done; "$@"'
    other = subprocess.Popen([*_unshare(), "sh", "-c", burn, "sh", sys.executable, "-m", "repogen.cli", "build",
                              "--out", str(out), "--no-check", "--target", "paddle"], cwd=ROOT, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        for line in other.stderr:
            if line.startswith("REPOGEN_TEST_PAUSED copy") or time.monotonic() > deadline:
                break
        (theirs,) = _staging_dirs(out)
        pid_in_name = int(theirs.name.split("repogen-tmp-")[1].split("-")[0])
        try:
            os.kill(pid_in_name, 0)
            pytest.skip(f"pid {pid_in_name} of the other namespace happens to be alive here too")
        except ProcessLookupError:
            pass  # as seen from here the build is dead: the old pid rule removed its folder
        done = subprocess.run([sys.executable, "-m", "repogen.cli", "build", "--out", str(out), "--no-check",
                               "--target", "paddle"], cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert theirs.is_dir() and (theirs / "tiny_cnn" / "1" / "inference.pdmodel").is_file()
        assert (out / "tiny_cnn" / "config.pbtxt").is_file() and not (out / LOCK_NAME).exists()
    finally:
        os.killpg(other.pid, signal.SIGKILL)
        other.wait(timeout=30)
    # the other build is dead now: the next build here removes what it left
    done = subprocess.run([sys.executable, "-m", "repogen.cli", "build", "--out", str(out), "--no-check",
                           "--target", "paddle", "--force"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert _staging_dirs(out) == []


# -- the labels cache (item 12) ------------------------------------------------------------------------------

CFG = SimpleNamespace(labels=["circle", "square", "triangle"])


def _old_labels_file(cfg) -> Path:
    """The cache as it was: a shared folder under the temp directory, opened by name (the issue's case)."""
    import hashlib

    text = "".join(f"{label}\n" for label in cfg.labels)
    folder = Path(tempfile.gettempdir()) / "repogen-labels" / hashlib.sha256(text.encode()).hexdigest()[:16]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "labels.txt"
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        tmp = folder / f".labels.{os.getpid()}"
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    return path


@pytest.fixture
def temp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shared = tmp_path / "shared-tmp"
    shared.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(shared))
    return shared


def _plant_everywhere(shared: Path, victim: Path) -> None:
    """What another user of a shared /tmp can plant before our build runs: links at every name a cache
    could use, for a few guessable file names."""
    import hashlib

    text = "".join(f"{label}\n" for label in CFG.labels)
    digest = hashlib.sha256(text.encode()).hexdigest()
    for folder in (shared / "repogen-labels" / digest[:16], shared / "repogen-labels" / digest[:32]):
        folder.mkdir(parents=True)
        for name in ("labels.txt", f".labels.{os.getpid()}"):
            (folder / name).symlink_to(victim)


def test_old_labels_cache_followed_a_planted_symlink(temp_dir: Path, tmp_path: Path) -> None:
    """The check below can fail: the cache as it was overwrites the link's target."""
    victim = tmp_path / "victim.txt"
    victim.write_text("the user's own file\n")
    _plant_everywhere(temp_dir, victim)
    _old_labels_file(CFG)
    assert victim.read_text() != "the user's own file\n"


def test_labels_cache_never_writes_through_a_planted_symlink(temp_dir: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("the user's own file\n")
    _plant_everywhere(temp_dir, victim)
    path = pipeline_stages._labels_file(CFG)
    assert victim.read_text() == "the user's own file\n"
    assert path.name == "labels.txt" and path.read_text() == "circle\nsquare\ntriangle\n"
    private = temp_dir / f"repogen-{os.getuid()}"
    assert path.is_relative_to(private) and not path.is_symlink()
    assert (private.stat().st_mode & 0o777, (private / "labels").stat().st_mode & 0o777) == (0o700, 0o700)
    # a link at the file's own name inside the private folder (only this user could put it there) is
    # replaced by the rename, not written through
    path.unlink()
    path.symlink_to(victim)
    assert pipeline_stages._labels_file(CFG) == path
    assert victim.read_text() == "the user's own file\n" and not path.is_symlink()
    assert path.read_text() == "circle\nsquare\ntriangle\n"


def test_the_private_cache_writes_each_name_afresh(temp_dir: Path, tmp_path: Path) -> None:
    """The helper itself (any small generated file, not only labels): per content, per user, replaced whole."""
    from repogen.locks import private_cache_file

    victim = tmp_path / "victim.txt"
    victim.write_text("mine\n")
    first = private_cache_file("a: 1\n", "inference.yml", "generated")
    assert first.read_text() == "a: 1\n" and first.name == "inference.yml"
    assert first.parent.parent == temp_dir / f"repogen-{os.getuid()}" / "generated"
    assert (first.parent.stat().st_mode & 0o777) == 0o700
    first.unlink()
    first.symlink_to(victim)
    assert private_cache_file("a: 1\n", "inference.yml", "generated") == first
    assert victim.read_text() == "mine\n" and first.read_text() == "a: 1\n"
    other = private_cache_file("a: 2\n", "inference.yml", "generated")
    assert other != first and other.read_text() == "a: 2\n" and first.read_text() == "a: 1\n"
    assert [p.name for p in first.parent.iterdir()] == ["inference.yml"]  # no temp file left behind


@pytest.mark.parametrize("plant", ["symlink", "open-mode"])
def test_a_planted_private_folder_is_refused(temp_dir: Path, tmp_path: Path, plant: str) -> None:
    """Someone created this user's private folder first: a link to a folder they control, or a folder
    anyone may write to. The build refuses in one line instead of writing there."""
    private = temp_dir / f"repogen-{os.getuid()}"
    theirs = tmp_path / "attacker"
    theirs.mkdir(mode=0o777)
    os.chmod(theirs, 0o777)
    if plant == "symlink":
        private.symlink_to(theirs)
    else:
        private.mkdir()
        os.chmod(private, 0o777)
    with pytest.raises(ConfigError, match=rf"^{private}: expected a folder owned by this user with mode 0700"):
        pipeline_stages._labels_file(CFG)
    assert list(theirs.iterdir()) == []
