"""The object-storage side of ``repogen build --out s3://...`` and of validate/serve on an s3:// repository."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

from repogen.storage.uri import S3URI, is_remote, parse


def store_uri(out: str, endpoint_url: str | None) -> S3URI | None:
    """The parsed URI when ``--out`` names object storage, else None (a local folder)."""
    return parse(out, endpoint_url) if is_remote(out) else None


def with_endpoint(repo: str, endpoint_url: str) -> str:
    """``s3://bucket/prefix`` plus ``--endpoint-url`` as one URI (Triton's form), for validate/serve."""
    if not is_remote(repo):
        from repogen.storage.uri import StorageError

        raise StorageError(f"--endpoint-url {endpoint_url}: only applies to an s3:// repository, not {repo}")
    return parse(repo, endpoint_url).triton_path()


def build_to_store(build: Callable[[Path], Any], uri: S3URI, *, prune: int | None = None,
                   log: Callable[[str], None] = lambda msg: None) -> Any:
    """``repogen build --out s3://...``: check the bucket first (a typo fails in seconds, not after a long
    build), build into a local staging folder, publish it, remove the staging folder."""
    from repogen.storage import client as s3
    from repogen.storage.publish import publish

    s3.check_bucket(s3.make_client(uri), uri)
    staging = Path(tempfile.mkdtemp(prefix="repogen-publish-"))
    try:
        report = build(staging / "repo")
        published = publish(staging / "repo", uri, prune=prune, log=log)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    report.out = uri.text
    for m in report.models:
        m.path = uri.child(m.name).text
    report.published = published.to_dict()  # type: ignore[attr-defined]
    return report
