"""The object-storage side of ``repogen build --out s3://...`` and of validate/serve on an s3:// repository."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from repogen.interrupts import terminate_raises
from repogen.storage import client as s3
from repogen.locks import locked_tempdir, remove_dead_tempdirs
from repogen.storage.publish import publish
from repogen.storage.uri import S3URI, StorageError, is_remote, parse


def store_uri(out: str, endpoint_url: str | None) -> S3URI | None:
    """The parsed URI when ``--out`` names object storage, else None (a local folder)."""
    return parse(out, endpoint_url) if is_remote(out) else None


def with_endpoint(repo: str, endpoint_url: str) -> str:
    """``s3://bucket/prefix`` plus ``--endpoint-url`` as one URI (Triton's form), for validate/serve."""
    if not is_remote(repo):
        raise StorageError(f"--endpoint-url {endpoint_url}: only applies to an s3:// repository, not {repo}")
    return parse(repo, endpoint_url).triton_path()


BUILD_PREFIX = "repogen-publish-"


def build_to_store(build: Callable[[Path], Any], uri: S3URI, *, prune: int | None = None,
                   log: Callable[[str], None] = lambda msg: None) -> Any:
    """``repogen build --out s3://...``: check the bucket first (a typo fails in seconds, not after a long
    build), build into a local temp folder, publish it, remove the temp folder: also on SIGTERM; one left
    by a SIGKILLed build (its lock no longer held) is removed by the next build."""
    s3.check_bucket(s3.make_client(uri), uri)
    for path, size in remove_dead_tempdirs(BUILD_PREFIX):
        log(f"removed {path} ({size / 1e6:.1f} MB), left by a build that was killed")
    with terminate_raises(), locked_tempdir(BUILD_PREFIX) as staging:
        report = build(staging / "repo")
        published = publish(staging / "repo", uri, prune=prune, log=log)
    report.out = uri.text
    for m in report.models:
        m.path = uri.child(m.name).text
    report.published = published.to_dict()  # type: ignore[attr-defined]
    return report
