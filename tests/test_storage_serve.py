"""Serving from object storage: build the bundled example to S3, validate it from S3 over HTTP and gRPC
(tritonserver reads the store, the Paddle reference reads a verified copy of the same objects)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from repogen.cli import main
from tests.support.s3_fixtures import SAMPLE_REPO

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def test_build_to_s3_then_validate_from_s3(s3_env, bucket, capsys):
    uri = f"s3://{bucket}/prod"
    assert main(["build", "--out", uri, "--target", "paddle", "--no-check", "--json"]) == 0
    capsys.readouterr()
    assert main(["validate", uri, "--protocol", "http,grpc", "--concurrency", "1", "--requests", "5", "--window-ms", "50",
                 "--max-windows", "3", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["repo"] == uri
    (model,) = report["models"]
    assert model["model"] == "tiny_cnn" and model["ok"] and not model["config_diffs"]
    protocols = {c["protocol"] for c in model["checks"]}
    assert protocols == {"http", "grpc"}
    assert all(c["ok"] and c["rel_err"] is not None and c["rel_err"] <= 1e-5 for c in model["checks"])


def test_validate_missing_model_prefix_is_one_error(s3_env, bucket, capsys, monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL")  # the endpoint from the command line instead
    t = time.monotonic()
    assert main(["validate", f"s3://{bucket}/empty", "--endpoint-url", s3_env.endpoint_url]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"s3://{bucket}/empty" in err and "no model folders" in err
    assert time.monotonic() - t < 10


def test_serve_from_s3(s3_env, bucket, tmp_path, capsys):
    """``repogen serve s3://...`` serves the published model until SIGINT, then stops cleanly."""
    uri = f"s3://{bucket}/serve"
    assert main(["publish", str(SAMPLE_REPO), uri]) == 0
    capsys.readouterr()
    log = tmp_path / "serve.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "repogen.cli", "serve", uri], stdout=out,
                                stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 120
        while "press Ctrl-C" not in log.read_text():
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        text = log.read_text()
        assert f"serving 1 model(s) from {uri}: tiny_cnn" in text
        http = text.split("HTTP  http://", 1)[1].split()[0]
        with urllib.request.urlopen(f"http://{http}/v2/models/tiny_cnn/ready", timeout=5) as r:
            assert r.status == 200
    finally:
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=60)
    assert rc == 130, log.read_text()
