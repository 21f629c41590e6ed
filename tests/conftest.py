"""Shared pytest wiring. Test support code lives in ``tests/support/`` (zoo models, the PaddleX reference, the
per-op case runner, the local S3 server, the harness repositories); the fixtures every S3 test uses are
registered here, so test modules import only the helpers they call."""

from __future__ import annotations

from tests.support.s3_fixtures import bucket, mlp_versions, s3_env, s3_server  # noqa: F401 (fixtures)
