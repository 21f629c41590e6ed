"""Shared by the object-storage tests: one local S3 server (moto_server, signed requests) per test module,
credentials for it in the environment, and two versions of a small model for the rollout tests. No tests here."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.support.local_s3 import LocalS3, local_s3
from tests.support.harness_repos import MAKE_MLP

SAMPLE_REPO = Path(__file__).resolve().parents[2] / "sample_repo"


@pytest.fixture(scope="module")
def s3_server() -> LocalS3:
    with local_s3() as server:
        yield server


@pytest.fixture
def s3_env(s3_server: LocalS3, monkeypatch: pytest.MonkeyPatch) -> LocalS3:
    """The standard AWS variables point at the local server (AWS_ENDPOINT_URL included)."""
    for k, v in s3_server.credentials_env().items():
        monkeypatch.setenv(k, v)
    for k in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(k, raising=False)
    return s3_server


@pytest.fixture
def bucket(s3_env: LocalS3) -> str:
    name = f"models-{uuid.uuid4().hex[:10]}"
    s3_env.create_bucket(name)
    return name


def sample_copy(dest: Path) -> Path:
    """sample_repo's tiny_cnn (paddle target, sources in the version folder) without the spec file."""
    repo = dest / "repo"
    shutil.copytree(SAMPLE_REPO / "tiny_cnn", repo / "tiny_cnn")
    return repo


def objects(server: LocalS3, bucket: str) -> dict[str, bytes]:
    c = server.client()
    out = {}
    for page in c.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for row in page.get("Contents", []):
            out[row["Key"]] = c.get_object(Bucket=bucket, Key=row["Key"])["Body"].read()
    return out


def _save_mlp(folder: Path, seed: int) -> Path:
    folder.mkdir(parents=True)
    script = folder / "make.py"
    script.write_text(MAKE_MLP.replace("paddle.seed(1)", f"paddle.seed({seed})"))
    subprocess.run([sys.executable, str(script), str(folder / "model")], check=True, capture_output=True,
                   env={**os.environ, "GLOG_minloglevel": "3"})
    return folder


@pytest.fixture(scope="module")
def mlp_versions(tmp_path_factory) -> tuple[Path, Path]:
    """Two local repositories: ``mlp`` version 1 (seed 1) and ``mlp`` version 2 (seed 2), same signature."""
    from repogen.build.flow import build_repository
    from repogen.build.spec import ModelSpec

    root = tmp_path_factory.mktemp("rollout")
    repos = []
    for version, seed in ((1, 1), (2, 2)):
        src = _save_mlp(root / f"src{version}", seed)
        spec = ModelSpec(source=src, name="mlp", target="paddle", version=version, min_shapes=["x:1x6,y:1x4"],
                         opt_shapes=["x:2x6,y:2x4"], max_shapes=["x:4x6,y:4x4"], check=False)
        build_repository([spec], root / f"v{version}", progress=False)
        repos.append(root / f"v{version}")
    return repos[0], repos[1]
