"""Shared pytest wiring. Test support code lives in ``tests/support/`` (zoo models, the PaddleX reference, the
per-op case runner, the local S3 server, the harness repositories); the fixtures every S3 test uses are
registered here, so test modules import only the helpers they call."""

from __future__ import annotations

import os

import pytest

from tests.support.s3_fixtures import bucket, mlp_versions, s3_env, s3_server  # noqa: F401 (fixtures)

SLOW = os.environ.get("REPOGEN_SLOW_TESTS") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``slow`` (minutes of their own: fresh venvs per extra) run with REPOGEN_SLOW_TESTS=1, as the
    slow variants inside other tests do; the default run stays within CI's 20 minutes."""
    if SLOW:
        return
    skip = pytest.mark.skip(reason="slow (minutes): set REPOGEN_SLOW_TESTS=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
