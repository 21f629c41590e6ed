"""A real ``repogen publish`` / ``repogen build --out s3://`` process killed mid-way (SIGKILL and SIGTERM), at
each phase of the transaction: the repository a server reads never shows a partial version, the next publish
(or ``publish --repair``) cleans up without manual deletion, saying what it removed in one line.

The processes pause deterministically at a named point (``REPOGEN_TEST_PAUSE_AFTER``, repogen.repository.staging's
``pause_point``): after the Nth staged upload, after the Nth copy into a version folder, after the Nth top-level
file past the commit marker. Against a local S3 server (moto_server, signed requests) on 127.0.0.1."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from repogen.cli import main
from repogen.storage import publish as pub
from repogen.storage import transaction as tx
from repogen.storage.download import download
from repogen.locks import private_dir
from repogen.storage.uri import StorageError, parse
from tests.support.s3_fixtures import objects, sample_copy

pytestmark = pytest.mark.timeout(180)
PAUSED = "REPOGEN_TEST_PAUSED"


def _with_v2(repo: Path, dest: Path) -> Path:
    """A copy of ``repo`` whose tiny_cnn also has a version 2 (model.py differs, so the versions do too)."""
    shutil.copytree(repo, dest)
    shutil.copytree(dest / "tiny_cnn" / "1", dest / "tiny_cnn" / "2")
    with open(dest / "tiny_cnn" / "2" / "model.py", "a") as f:
        f.write("\n# version 2\n")
    return dest


def _paused(argv: list[str], stage: str, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start ``repogen ARGV`` and return once it sits at ``stage``."""
    full_env = {**os.environ, "REPOGEN_TEST_PAUSE_AFTER": stage, "PYTHONUNBUFFERED": "1", **(env or {})}
    with open(log, "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "repogen.cli", *argv], stdout=err, stderr=subprocess.STDOUT,
                                env=full_env)
    deadline = time.monotonic() + 90
    while f"{PAUSED} {stage}" not in log.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"never paused at {stage} (rc {proc.poll()}):\n{log.read_text()}")
        time.sleep(0.05)
    return proc


def _kill(proc: subprocess.Popen, sig: int) -> int:
    proc.send_signal(sig)
    return proc.wait(timeout=60)


def _view(server, bucket: str, prefix: str = "prod/") -> dict[str, bytes]:
    """What a server reading s3://bucket/prod can see."""
    return {k: v for k, v in objects(server, bucket).items() if k.startswith(prefix)}


def _staged(server, bucket: str) -> list[str]:
    return sorted(k for k in objects(server, bucket) if tx.STAGE in k)


def _policy(config_bytes: bytes) -> model_config_pb2.ModelVersionPolicy:
    config = model_config_pb2.ModelConfig()
    text_format.Parse(config_bytes.decode(), config)
    return config.version_policy


@pytest.fixture
def published(tmp_path, s3_env, bucket):
    """Version 1 on the store at s3://BUCKET/prod; returns (uri, local repository with versions 1 and 2)."""
    repo = sample_copy(tmp_path)
    uri = f"s3://{bucket}/prod"
    pub.publish(repo, uri)
    return uri, _with_v2(repo, tmp_path / "repo2")


# -- SIGKILL at each phase ---------------------------------------------------------------------------------------

def test_sigkill_while_staging_changes_nothing_and_next_publish_cleans(published, s3_env, bucket, tmp_path, capsys):
    uri, repo2 = published
    before = _view(s3_env, bucket)
    proc = _paused(["publish", str(repo2), uri], "publish-upload-2", tmp_path / "p.log")
    assert _kill(proc, signal.SIGKILL) == -signal.SIGKILL
    assert _view(s3_env, bucket) == before  # the repository is untouched...
    staged = _staged(s3_env, bucket)
    assert staged and all(k.startswith("prod.repogen-staging/tiny_cnn/") for k in staged)  # ...it was mid-upload

    assert main(["publish", str(repo2), uri]) == 0  # no manual deletion needed
    out = capsys.readouterr().out
    cleaned = [line for line in out.splitlines() if "removed" in line]
    assert cleaned == [f"tiny_cnn: removed {len(staged)} staged object(s) of an upload that had not changed the "
                       "repository"], out
    assert _staged(s3_env, bucket) == []
    assert f"prod/tiny_cnn/2/model.py" in _view(s3_env, bucket)
    assert pub.verify(uri) == {"tiny_cnn": []}


def test_sigkill_while_copying_is_hidden_by_the_pin_and_repair_rolls_back(published, s3_env, bucket, tmp_path, capsys):
    uri, repo2 = published
    before = _view(s3_env, bucket)
    assert _policy(before["prod/tiny_cnn/config.pbtxt"]).WhichOneof("policy_choice") is None  # latest 1, implied
    proc = _paused(["publish", str(repo2), uri], "publish-copy-2", tmp_path / "p.log")
    assert _kill(proc, signal.SIGKILL) == -signal.SIGKILL
    now = _view(s3_env, bucket)
    # a partial version 2 exists (two of its three files, the model file missing)...
    assert sorted(k for k in now if k.startswith("prod/tiny_cnn/2/")) == [
        "prod/tiny_cnn/2/inference.pdiparams", "prod/tiny_cnn/2/inference.pdmodel"]
    # ...and the config Triton reads names the versions it served before, which excludes it
    assert list(_policy(now["prod/tiny_cnn/config.pbtxt"]).specific.versions) == [1]
    # what serve/validate mirror leaves it out too (their Paddle reference reads that copy)
    assert download(parse(uri), tmp_path / "copy") == ["tiny_cnn"]
    assert sorted(p.name for p in (tmp_path / "copy" / "tiny_cnn").iterdir()) == ["1", "config.pbtxt", "labels.txt",
                                                                                 "repogen.json"]

    assert main(["publish", "--repair", uri]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("tiny_cnn: rolled back an unfinished publish of version 2 (pid "), out
    assert "removed 2 copied object(s), config.pbtxt restored and " in out[0]
    assert _view(s3_env, bucket) == before  # byte for byte, the config included
    assert _staged(s3_env, bucket) == []
    assert main(["publish", "--repair", uri]) == 0
    assert capsys.readouterr().out.strip() == f"{uri}: nothing to repair"


def test_sigkill_after_the_commit_point_is_rolled_forward(published, s3_env, bucket, tmp_path, capsys):
    uri, repo2 = published
    with open(repo2 / "tiny_cnn" / "labels.txt", "a") as f:
        f.write("an eleventh label\n")
    proc = _paused(["publish", str(repo2), uri], "publish-top-1", tmp_path / "p.log")
    assert _kill(proc, signal.SIGKILL) == -signal.SIGKILL
    now = _view(s3_env, bucket)
    # every file of version 2 and the new labels.txt are in place, repogen.json is not, the config still pinned
    assert now["prod/tiny_cnn/labels.txt"] == (repo2 / "tiny_cnn" / "labels.txt").read_bytes()
    assert list(_policy(now["prod/tiny_cnn/config.pbtxt"]).specific.versions) == [1]
    # serve says what is wrong and what to run, before starting any server
    assert main(["serve", uri]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "tiny_cnn/labels.txt: sha256" in err, err
    assert "a publish of tiny_cnn did not finish" in err and f"repogen publish --repair {uri}" in err

    assert main(["publish", str(repo2), uri, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    (line,) = report["repaired"]
    assert line.startswith("tiny_cnn: completed a publish of version 2 that had passed its commit point"), line
    assert "copied 2 object(s)" in line  # repogen.json and config.pbtxt
    assert report["models"][0]["unchanged_versions"] == [1, 2] and report["models"][0]["objects_written"] == 0
    stored = _view(s3_env, bucket)
    assert stored["prod/tiny_cnn/config.pbtxt"] == (repo2 / "tiny_cnn" / "config.pbtxt").read_bytes()
    assert stored["prod/tiny_cnn/2/model.py"] == (repo2 / "tiny_cnn" / "2" / "model.py").read_bytes()
    assert _staged(s3_env, bucket) == [] and pub.verify(uri) == {"tiny_cnn": []}


# -- SIGTERM: the process cleans up itself ------------------------------------------------------------------------

@pytest.mark.parametrize("stage", ["publish-upload-2", "publish-copy-2"])
def test_sigterm_rolls_back_itself(published, s3_env, bucket, tmp_path, stage):
    uri, repo2 = published
    before = _view(s3_env, bucket)
    proc = _paused(["publish", str(repo2), uri], stage, tmp_path / "p.log")
    txid = _staged(s3_env, bucket)[0].split("/")[2]
    assert (private_dir("publish-locks") / f"{txid}.lock").is_file()
    assert _kill(proc, signal.SIGTERM) == 128 + signal.SIGTERM
    assert _view(s3_env, bucket) == before
    assert _staged(s3_env, bucket) == []
    assert not (private_dir("publish-locks") / f"{txid}.lock").exists()


# -- who is alive --------------------------------------------------------------------------------------------------

def test_a_live_publish_on_this_machine_is_never_cleaned(published, s3_env, bucket, tmp_path):
    uri, repo2 = published
    proc = _paused(["publish", str(repo2), uri], "publish-upload-2", tmp_path / "p.log")
    try:
        staged = _staged(s3_env, bucket)
        with pytest.raises(StorageError, match=r"another repogen publish on this machine is writing this model"):
            pub.publish(repo2, uri)
        assert _staged(s3_env, bucket) == staged
    finally:
        _kill(proc, signal.SIGKILL)
    assert pub.repair(uri)  # dead now: cleaned (its lock file too)


def test_a_transaction_from_another_machine_is_cleaned_once_its_lease_expires(published, s3_env, bucket, tmp_path,
                                                                             monkeypatch):
    uri, repo2 = published
    proc = _paused(["publish", str(repo2), uri], "publish-upload-2", tmp_path / "p.log")
    _kill(proc, signal.SIGKILL)
    txid = _staged(s3_env, bucket)[0].split("/")[2]
    (private_dir("publish-locks") / f"{txid}.lock").unlink()  # as seen from a machine without its lock file
    monkeypatch.setattr(tx, "LEASE_EXPIRY_S", 6.0)
    # the other machine's last renewal just now: a loaded test machine may take longer than the expiry between
    # the kill and the publish, and a lease already expired is (rightly) cleaned without waiting
    lease = next(k for k in _staged(s3_env, bucket) if k.endswith("/" + tx.LEASE))
    c = s3_env.client()
    c.put_object(Bucket=bucket, Key=lease, Body=c.get_object(Bucket=bucket, Key=lease)["Body"].read())
    said: list[str] = []
    t = time.monotonic()
    report = pub.publish(repo2, uri, log=said.append)
    assert any(f"transaction {txid} (pid {proc.pid} on " in s and "waiting up to" in s for s in said), said
    assert report.repaired and report.models[0].uploaded_versions == [2]
    assert time.monotonic() - t < 40 and _staged(s3_env, bucket) == []


def test_a_lease_renewed_elsewhere_is_a_live_publish(published, s3_env, bucket, tmp_path, monkeypatch):
    """No lock file here, and the lease keeps moving (another machine's publish renewing it): refused."""
    uri, repo2 = published
    proc = _paused(["publish", str(repo2), uri], "publish-upload-2", tmp_path / "p.log")
    _kill(proc, signal.SIGKILL)
    lease = next(k for k in _staged(s3_env, bucket) if k.endswith("/" + tx.LEASE))
    (private_dir("publish-locks") / f"{lease.split('/')[2]}.lock").unlink()
    monkeypatch.setattr(tx, "LEASE_EXPIRY_S", 3.0)
    stop = threading.Event()

    def renew() -> None:
        c = s3_env.client()
        body = c.get_object(Bucket=bucket, Key=lease)["Body"].read()
        while not stop.wait(1.0):
            c.put_object(Bucket=bucket, Key=lease, Body=body)

    renewer = threading.Thread(target=renew, daemon=True)
    renewer.start()
    staged = _staged(s3_env, bucket)
    try:
        with pytest.raises(StorageError, match=rf"another repogen publish \(pid {proc.pid} on .*lease renewed"):
            pub.publish(repo2, uri)
    finally:
        stop.set()
        renewer.join()
    assert _staged(s3_env, bucket) == staged


def test_bucket_root_repository_stages_inside_the_model_folder(tmp_path, s3_env, bucket, capsys):
    repo = sample_copy(tmp_path)
    uri = f"s3://{bucket}"
    pub.publish(repo, uri)
    repo2 = _with_v2(repo, tmp_path / "repo2")
    before = objects(s3_env, bucket)
    proc = _paused(["publish", str(repo2), uri], "publish-upload-2", tmp_path / "p.log")
    _kill(proc, signal.SIGKILL)
    staged = _staged(s3_env, bucket)
    # a non-numeric folder: Triton does not take it for a version (nor the model for a new one)
    assert staged and all(k.startswith("tiny_cnn/.repogen-staging/") for k in staged)
    assert {k: v for k, v in objects(s3_env, bucket).items() if k not in staged} == before
    assert main(["publish", "--repair", uri]) == 0
    assert "tiny_cnn: removed " in capsys.readouterr().out
    assert objects(s3_env, bucket) == before


# -- symlinks ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["file", "folder"])
def test_symlink_out_of_the_repository_is_refused(tmp_path, s3_env, bucket, capsys, kind):
    repo = sample_copy(tmp_path)
    secret = tmp_path / "outside"
    secret.mkdir()
    (secret / "credentials").write_text("aws_secret_access_key = do-not-upload\n")
    link = repo / "tiny_cnn" / "1" / ("extra.txt" if kind == "file" else "extra")
    link.symlink_to(secret / "credentials" if kind == "file" else secret)
    assert main(["publish", str(repo), f"s3://{bucket}/p"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{link}: a symlink to " in err and "outside the repository" in err, err
    assert objects(s3_env, bucket) == {}


def test_symlink_inside_the_repository_is_uploaded_as_its_content(tmp_path, s3_env, bucket):
    repo = sample_copy(tmp_path)
    (repo / "tiny_cnn" / "labels-link.txt").symlink_to(repo / "tiny_cnn" / "labels.txt")
    pub.publish(repo, f"s3://{bucket}/p")
    stored = objects(s3_env, bucket)
    assert stored["p/tiny_cnn/labels-link.txt"] == (repo / "tiny_cnn" / "labels.txt").read_bytes()


# -- build --out s3:// temp folders -----------------------------------------------------------------------------

def _build_dirs(tmpdir: Path) -> list[Path]:
    return sorted(tmpdir.glob("repogen-publish-*"))


def test_build_temp_folder_removed_on_sigterm_and_after_sigkill(tmp_path, s3_env, bucket):
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    env = {"TMPDIR": str(tmpdir)}
    argv = ["build", "--out", f"s3://{bucket}/built", "--target", "paddle", "--no-check"]
    # SIGTERM: the build removes its own temp folder
    proc = _paused(argv, "publish-upload-2", tmp_path / "b1.log", env)
    assert len(_build_dirs(tmpdir)) == 1
    assert _kill(proc, signal.SIGTERM) == 128 + signal.SIGTERM
    assert _build_dirs(tmpdir) == []
    # SIGKILL: the folder stays, the next build finds it dead (its lock free) and removes it
    proc = _paused(argv, "publish-upload-2", tmp_path / "b2.log", env)
    (left,) = _build_dirs(tmpdir)
    assert _kill(proc, signal.SIGKILL) == -signal.SIGKILL
    assert left.is_dir() and (left / "repo" / "tiny_cnn" / "config.pbtxt").is_file()
    done = subprocess.run([sys.executable, "-m", "repogen.cli", *argv], capture_output=True, text=True, timeout=150,
                          env={**os.environ, **env})
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"removed {left} (" in done.stdout and "left by a build that was killed" in done.stdout, done.stdout
    assert _build_dirs(tmpdir) == []


# -- serving a store an interrupted publish left -------------------------------------------------------------------

def test_serve_fails_fast_on_a_partial_version_from_an_older_publish(published, s3_env, bucket, capsys):
    """A version folder without its model file that no pin hides (an older repogen, a hand copy): Triton would
    sit in LOADING forever; ``serve`` says so before starting it, and ``--repair`` removes the folder."""
    uri, repo2 = published
    before = _view(s3_env, bucket)
    s3_env.client().put_object(Bucket=bucket, Key="prod/tiny_cnn/2/inference.pdiparams",
                               Body=(repo2 / "tiny_cnn" / "2" / "inference.pdiparams").read_bytes())
    t = time.monotonic()
    assert main(["serve", uri]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{uri}/tiny_cnn/2: version 2 has no model.py" in err, err
    assert f"repogen publish --repair {uri}" in err and time.monotonic() - t < 15
    # publishing a version 2 over it says what to do, then --repair removes it
    assert main(["publish", str(repo2), uri]) == 2
    assert "does not record it" in capsys.readouterr().err
    assert main(["publish", "--repair", uri]) == 0
    assert capsys.readouterr().out.strip() == ("tiny_cnn: removed version 2 (1 object(s)): its repogen.json does not "
                                               "record it (left by an interrupted publish)")
    assert _view(s3_env, bucket) == before


@pytest.mark.e2e
@pytest.mark.timeout(300)
def test_polling_triton_never_sees_the_partial_version(published, s3_env, bucket, tmp_path):
    """tritonserver in poll mode (1 s) on the store while a publish dies between two copies into version 2:
    Triton keeps serving version 1 and never starts loading 2; the next publish rolls back, publishes, and
    Triton moves to version 2."""
    from repogen.deploy.rollout import wait_for_version
    from repogen.harness.server import http_request, launch

    uri, repo2 = published
    with launch(uri, models=[], extra_args=["--model-control-mode=poll", "--repository-poll-secs=1"]) as srv:
        assert wait_for_version(srv.http_url, "tiny_cnn", 1) == [1]
        proc = _paused(["publish", str(repo2), uri], "publish-copy-2", tmp_path / "p.log")
        _kill(proc, signal.SIGKILL)
        assert "prod/tiny_cnn/2/inference.pdmodel" in _view(s3_env, bucket)
        seen = set()
        for _ in range(20):  # 5 s: several polls
            status, text = http_request(srv.http_url, "POST", "/v2/repository/index", {}, 5)
            assert status == 200
            seen |= {(r["name"], r["version"], r["state"]) for r in json.loads(text)}
            time.sleep(0.25)
        assert seen == {("tiny_cnn", "1", "READY")}, seen
        assert main(["publish", str(repo2), uri]) == 0
        assert wait_for_version(srv.http_url, "tiny_cnn", 2) == [2]
