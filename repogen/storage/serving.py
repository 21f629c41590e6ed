"""Serving a repository that lives on object storage: what the harness needs to start tritonserver on it.

Triton reads the objects itself (``--model-repository=s3://...``, credentials from its environment); the
harness also needs a local, verified copy of the same objects for the Paddle reference and the config
comparison. :class:`RemoteRepository` gives both.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from repogen.extras import require
from repogen.storage import client as s3
from repogen.storage.download import download
from repogen.storage.uri import S3URI, parse

DEFAULT_REGION = "us-east-1"


@dataclass
class RemoteRepository:
    uri: S3URI
    local: Path | None = None  # the verified copy, once mirrored
    names: list[str] = field(default_factory=list)

    @classmethod
    def open(cls, text: str, endpoint_url: str | None = None) -> "RemoteRepository":
        """Parse and check access now, so that a typo or a missing bucket fails before any server starts."""
        uri = parse(text, endpoint_url)
        s3.check_bucket(s3.make_client(uri), uri)
        return cls(uri)

    @property
    def triton_path(self) -> str:
        return self.uri.triton_path()

    def mirror(self, dest: Path, models: list[str] | None = None) -> Path:
        self.names = download(self.uri, dest, models)
        self.local = dest
        return dest

    def server_env(self) -> dict[str, str]:
        """Environment for tritonserver: the credentials boto3 resolved (any source in the standard chain,
        handed over as the variables Triton's S3 client reads) and a region."""
        boto3 = require("boto3", extra="s3")

        env: dict[str, str] = {}
        session = boto3.session.Session()
        creds = session.get_credentials()
        if creds is not None:
            frozen = creds.get_frozen_credentials()
            env["AWS_ACCESS_KEY_ID"] = frozen.access_key
            env["AWS_SECRET_ACCESS_KEY"] = frozen.secret_key
            if frozen.token:
                env["AWS_SESSION_TOKEN"] = frozen.token
        if not (os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION")):
            env["AWS_DEFAULT_REGION"] = session.region_name or DEFAULT_REGION
        return env


@contextlib.contextmanager
def served_from_store(text: str, models: list[str] | None = None) -> Iterator[tuple[Path, str, dict[str, str]]]:
    """(verified local copy, tritonserver ``--model-repository`` value, environment for tritonserver) for
    the block; the copy is removed afterwards. Bucket and credentials are checked before anything starts."""
    remote = RemoteRepository.open(text)
    tmp = Path(tempfile.mkdtemp(prefix="repogen-s3-mirror-"))
    try:
        remote.mirror(tmp / "repo", models)
        yield tmp / "repo", remote.triton_path, remote.server_env()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
