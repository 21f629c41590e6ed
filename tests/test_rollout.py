"""Rolling updates under load: publish version 2 of a model to the S3 repository a tritonserver is
serving, in poll mode and in explicit mode, while a bounded loopback load test (HTTP and gRPC alternating)
runs throughout. No request may fail, and traffic must end on version 2's answers, which differ from
version 1's (two differently initialised networks), each compared with Paddle."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from repogen.cli import main
from repogen.deploy.loadtest import LoadTest, Replica
from repogen.deploy.rollout import ready_versions, wait_for_version
from repogen.harness.model_files import read_model_folder
from repogen.harness.reference import PaddleReference
from repogen.harness.server import launch
from repogen.storage.publish import publish
from s3_support import bucket, s3_env, s3_server  # noqa: F401 (fixtures)
from test_harness_support import MAKE_MLP

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
POLL = ["--model-control-mode=poll", "--repository-poll-secs=1"]


def _save_mlp(folder: Path, seed: int) -> Path:
    folder.mkdir(parents=True)
    script = folder / "make.py"
    script.write_text(MAKE_MLP.replace("paddle.seed(1)", f"paddle.seed({seed})"))
    subprocess.run([sys.executable, str(script), str(folder / "model")], check=True, capture_output=True,
                   env={**os.environ, "GLOG_minloglevel": "3"})
    return folder


@pytest.fixture(scope="module")
def versions(tmp_path_factory) -> tuple[Path, Path]:
    """Two local repositories: ``mlp`` version 1 (seed 1) and ``mlp`` version 2 (seed 2), same signature."""
    from repogen.triton.build import build_repository
    from repogen.triton.spec import ModelSpec

    root = tmp_path_factory.mktemp("rollout")
    repos = []
    for version, seed in ((1, 1), (2, 2)):
        src = _save_mlp(root / f"src{version}", seed)
        spec = ModelSpec(source=src, name="mlp", target="paddle", version=version, min_shapes=["x:1x6,y:1x4"],
                         opt_shapes=["x:2x6,y:2x4"], max_shapes=["x:4x6,y:4x4"], check=False)
        build_repository([spec], root / f"v{version}", progress=False)
        repos.append(root / f"v{version}")
    return repos[0], repos[1]


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a.astype(np.float64) - b) / np.linalg.norm(b))


def _wait_answers(load: LoadTest, version: str, count: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tail = load.latest(count)
        if len(tail) == count and all(a.version == version for a in tail):
            return
        time.sleep(0.1)
    raise AssertionError(f"no {count} answers in a row from version {version}: {load.result.summary()}")


def _check(load: LoadTest, v1: Path, v2: Path, feeds: dict) -> dict:
    result = load.stop()
    summary = result.summary()
    assert result.failed == 0 and result.retried == 0, summary
    assert result.versions["1"] > 0 and result.versions["2"] > 0, summary
    # once version 2 answered, version 1 never did again (over the last answers the load test keeps)
    seq = [a.version for a in result.answers]
    assert seq[seq.index("2"):] == ["2"] * (len(seq) - seq.index("2")), seq
    want = {v: PaddleReference(read_model_folder(repo / "mlp")).run(feeds) for v, repo in (("1", v1), ("2", v2))}
    assert all(_rel(want["1"][k], want["2"][k]) > 0.05 for k in want["1"]), "the versions must answer differently"
    for a in result.answers:
        for name, got in a.outputs.items():
            assert _rel(got, want[a.version][name]) <= 1e-5, (a.version, name)
    assert result.answers[-1].version == "2"
    return summary


def _feeds() -> dict:
    rng = np.random.default_rng(0)
    return {"x": rng.standard_normal((2, 6)).astype(np.float32), "y": rng.standard_normal((2, 4)).astype(np.float32)}


def test_rollout_poll_mode(s3_env, bucket, versions):
    v1, v2 = versions
    uri = f"s3://{bucket}/poll"
    publish(v1, uri)
    with launch(uri, models=[], extra_args=POLL) as srv:
        wait_for_version(srv.http_url, "mlp", 1)
        feeds = _feeds()
        load = LoadTest([Replica(srv.http_url, srv.grpc_url)], read_model_folder(v1 / "mlp"), feeds,
                        max_requests=20000, max_seconds=200).start()
        try:
            _wait_answers(load, "1", 20)
            publish(v2, uri)  # poll mode: publishing is the whole rollout
            assert wait_for_version(srv.http_url, "mlp", 2, only=True) == [2]
            _wait_answers(load, "2", 30)
        finally:
            summary = _check(load, v1, v2, feeds)
    print("poll rollout:", summary)


def test_rollout_explicit_mode(s3_env, bucket, versions, capsys):
    v1, v2 = versions
    uri = f"s3://{bucket}/explicit"
    publish(v1, uri)
    with launch(uri) as srv:
        assert ready_versions(srv.http_url, "mlp") == [1]
        feeds = _feeds()
        load = LoadTest([Replica(srv.http_url, srv.grpc_url)], read_model_folder(v1 / "mlp"), feeds,
                        max_requests=20000, max_seconds=200).start()
        try:
            _wait_answers(load, "1", 20)
            capsys.readouterr()
            assert main(["publish", str(v2), uri, "--rollout", srv.http_url]) == 0
            out = capsys.readouterr().out
            assert f"{srv.http_url}: mlp served versions [1] -> [1, 2] -> [2]" in out, out
            assert ready_versions(srv.http_url, "mlp") == [2]
            _wait_answers(load, "2", 30)
        finally:
            summary = _check(load, v1, v2, feeds)
    print("explicit rollout:", summary)
