"""Shared by the object-storage tests: one local S3 server (moto_server, signed requests) per test module,
and credentials for it in the environment. No tests here."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest

from repogen.storage.local_s3 import LocalS3, local_s3

SAMPLE_REPO = Path(__file__).resolve().parents[1] / "sample_repo"


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
