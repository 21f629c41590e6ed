"""Rolling updates under load: publish version 2 of a model to the S3 repository a tritonserver is
serving, in poll mode and in explicit mode, while a bounded loopback load test (HTTP and gRPC alternating)
runs throughout. No request may fail, and traffic must end on version 2's answers, which differ from
version 1's (two differently initialised networks), each compared with Paddle."""

from __future__ import annotations

import time

import numpy as np
import pytest

from repogen.cli import main
from repogen.deploy.loadtest import LoadTest, Replica
from repogen.deploy.rollout import ready_versions, wait_for_version
from repogen.harness.model_files import read_model_folder
from repogen.harness.reference import PaddleReference
from repogen.harness.server import launch
from repogen.storage.publish import publish

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
POLL = ["--model-control-mode=poll", "--repository-poll-secs=1"]


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


def test_rollout_poll_mode(s3_env, bucket, mlp_versions):
    v1, v2 = mlp_versions
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


def test_rollout_explicit_mode(s3_env, bucket, mlp_versions, capsys):
    v1, v2 = mlp_versions
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
