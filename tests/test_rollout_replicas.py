"""Three replicas on one S3 repository behind a client-side round robin: a published version reaches every
replica, and a replica killed mid-run costs retries, not failed requests."""

from __future__ import annotations

import time

import numpy as np
import pytest

from repogen.deploy.loadtest import LoadTest
from repogen.deploy.replicas import crash, launch_replicas, replicas_of
from repogen.deploy.rollout import wait_for_version
from repogen.harness.model_files import read_model_folder
from repogen.harness.reference import PaddleReference
from repogen.storage.publish import publish
from test_rollout import POLL, _feeds, _rel, _wait_answers

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(400)]


def test_replicas_publish_reaches_all_and_a_crash_is_retried(s3_env, bucket, mlp_versions):
    v1, v2 = mlp_versions
    uri = f"s3://{bucket}/replicas"
    publish(v1, uri)
    with launch_replicas(uri, 3, models=[], extra_args=POLL) as servers:
        for s in servers:
            wait_for_version(s.http_url, "mlp", 1)
        feeds = _feeds()
        load = LoadTest(replicas_of(servers), read_model_folder(v1 / "mlp"), feeds, retries=1,
                        max_requests=20000, max_seconds=300).start()
        try:
            _wait_answers(load, "1", 30)
            publish(v2, uri)
            for s in servers:  # every replica picks the new version up from the store by itself
                assert wait_for_version(s.http_url, "mlp", 2, only=True) == [2]
            _wait_answers(load, "2", 30)
            before_crash = load.result.sent
            crash(servers[2])
            deadline = time.monotonic() + 60
            while load.result.sent < before_crash + 90 and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            result = load.stop()
    summary = result.summary()
    print("replicas:", summary)
    assert result.failed == 0, summary  # each request the dead replica dropped was answered by the next one
    assert result.retried > 0 and any("replica 2" in e for e in result.errors), summary
    assert all(result.per_replica[i] > 0 for i in range(3)), summary
    assert result.sent == result.ok + result.failed
    want = PaddleReference(read_model_folder(v2 / "mlp")).run(feeds)
    tail = result.answers[-30:]
    assert all(a.version == "2" and a.replica != 2 for a in tail)
    for a in tail:
        for name, got in a.outputs.items():
            assert _rel(got, want[name]) <= 1e-5
