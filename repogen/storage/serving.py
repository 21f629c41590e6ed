"""Serving a repository that lives on object storage: what the harness needs to start tritonserver on it.

Triton reads the objects itself (``--model-repository=s3://...``, credentials from its environment); the
harness also needs a local, verified copy of the same objects for the Paddle reference and the config
comparison. :class:`RemoteRepository` gives both.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from repogen.extras import require
from repogen.storage import client as s3
from repogen.storage.download import download
from repogen.locks import locked_tempdir, remove_dead_tempdirs
from repogen.storage.publish import remote_versions
from repogen.storage.transaction import is_staging
from repogen.storage.uri import S3URI, StorageError, parse
from repogen.repository.config import parse_config
from repogen.repository.multiplan import served_versions

DEFAULT_REGION = "us-east-1"
MIRROR_PREFIX = "repogen-s3-mirror-"
# The file a backend loads from a version folder when the config names none (Triton's defaults)
_MODEL_FILES = {"python": "model.py", "tensorrt": "model.plan", "tensorrt_plan": "model.plan",
                "onnxruntime": "model.onnx", "onnxruntime_onnx": "model.onnx", "pytorch": "model.pt",
                "pytorch_libtorch": "model.pt", "openvino": "model.xml"}


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
        check_loadable(self.uri, dest, self.names)
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


def check_loadable(uri: S3URI, copy: Path, names: list[str]) -> None:
    """Every version folder the store's config makes Triton load holds its model file. One that does not (a
    publish that died before publishing was a transaction) would keep Triton loading forever: say so now."""
    client = s3.make_client(uri)
    for name in names:
        rels = {k[len(name) + 1:] for k in s3.list_keys(client, uri, name)}
        config_path = copy / name / "config.pbtxt"
        config = parse_config(config_path.read_text(encoding="utf-8", errors="replace"),
                              uri.child(name, "config.pbtxt").text)
        if config.cc_model_filenames:
            continue  # per-GPU file names: the TensorRT backend says which one is missing, and fails fast
        filename = config.default_model_filename or _MODEL_FILES.get(config.backend or config.platform)
        if not filename:
            continue
        versions = sorted(remote_versions({r: {} for r in rels if not is_staging(r)}))
        for v in served_versions(config, versions):
            if f"{v}/{filename}" not in rels and not any(r.startswith(f"{v}/{filename}/") for r in rels):
                raise StorageError(f"{uri.child(name, str(v)).text}: version {v} has no {filename}, and the "
                                   f"version_policy of {name} serves it: Triton would wait on it forever (left by an interrupted "
                                   f"publish?); `repogen publish --repair {uri.text}` removes it")


@contextlib.contextmanager
def served_from_store(text: str, models: list[str] | None = None) -> Iterator[tuple[Path, str, dict[str, str]]]:
    """(verified local copy, tritonserver ``--model-repository`` value, environment for tritonserver) for
    the block; the copy is removed afterwards. Bucket and credentials are checked before anything starts."""
    remote = RemoteRepository.open(text)
    remove_dead_tempdirs(MIRROR_PREFIX)  # copies left by runs that were SIGKILLed
    with locked_tempdir(MIRROR_PREFIX) as tmp:
        remote.mirror(tmp / "repo", models)
        yield tmp / "repo", remote.triton_path, remote.server_env()
