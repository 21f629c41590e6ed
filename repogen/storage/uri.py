"""Repository URIs: a local folder, or ``s3://bucket/prefix`` on AWS or an S3-compatible store.

Triton names an S3-compatible endpoint inside the path (``s3://http://host:port/bucket/prefix``); repogen
takes either that form or ``s3://bucket/prefix`` plus ``--endpoint-url`` / ``AWS_ENDPOINT_URL``, and
renders the Triton form itself (:meth:`S3URI.triton_path`) so users never assemble it by hand.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from repogen.errors import ConfigError

ENDPOINT_ENV = "AWS_ENDPOINT_URL"
# S3 bucket naming rules (the strict, DNS-compatible form that every S3-compatible store accepts and
# that Triton requires: lowercase).
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_SCHEMES = ("s3",)


class StorageError(ConfigError):
    """A repository URI is malformed, or its store cannot be reached, read or written."""


@dataclass(frozen=True)
class S3URI:
    bucket: str
    prefix: str  # no leading or trailing slash; "" for the bucket root
    endpoint_url: str | None = None  # scheme://host:port of an S3-compatible store; None = AWS

    @property
    def text(self) -> str:
        """How repogen prints it: the plain ``s3://bucket/prefix`` (the endpoint is said separately)."""
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    def __str__(self) -> str:
        return self.text + (f" (endpoint {self.endpoint_url})" if self.endpoint_url else "")

    def key(self, *parts: str) -> str:
        """Object key for a path below the prefix."""
        return "/".join(p.strip("/") for p in (self.prefix, *parts) if p and p.strip("/"))

    def child(self, *parts: str) -> "S3URI":
        return S3URI(self.bucket, self.key(*parts), self.endpoint_url)

    def triton_path(self) -> str:
        """``--model-repository`` value for tritonserver: the endpoint goes inside the path, port required."""
        if not self.endpoint_url:
            return self.text
        u = urlsplit(self.endpoint_url)
        port = u.port or (443 if u.scheme == "https" else 80)
        return f"s3://{u.scheme}://{u.hostname}:{port}/{self.bucket}/{self.prefix}".rstrip("/")


def is_remote(target: str | os.PathLike) -> bool:
    """True for anything with a URI scheme (s3://, gs://, ...); local paths never contain '://'."""
    return "://" in str(target)


def parse(text: str, endpoint_url: str | None = None) -> S3URI:
    """``s3://bucket/prefix`` or Triton's ``s3://http://host:port/bucket/prefix``; every mistake is one
    StorageError naming the URI (a typo must never become a different bucket)."""
    raw = str(text).strip()
    scheme, sep, rest = raw.partition("://")
    if not sep:
        raise StorageError(f"{raw}: not a repository URI (expected s3://bucket/prefix)")
    if scheme.lower() not in _SCHEMES:
        near = " (did you mean s3://?)" if scheme.lower() in ("s3a", "s3n", "s", "s33", "3s") else ""
        raise StorageError(f"{raw}: unsupported scheme {scheme}://{near}; repogen reads and writes s3:// "
                           "(AWS S3 and S3-compatible stores via --endpoint-url)")
    if scheme != "s3":
        raise StorageError(f"{raw}: write the scheme in lowercase (s3://)")
    embedded = None
    if rest.startswith(("http://", "https://")):
        # Triton's form: the endpoint sits inside the path and must carry a port
        ep_scheme, _, after = rest.partition("://")
        hostport, slash, rest = after.partition("/")
        if not slash or ":" not in hostport:
            raise StorageError(f"{raw}: expected s3://{ep_scheme}://HOST:PORT/bucket/prefix (the port is required)")
        embedded = f"{ep_scheme}://{hostport}"
    bucket, _, prefix = rest.partition("/")
    if "//" in prefix or prefix.startswith("/"):
        raise StorageError(f"{raw}: empty path segment ('//') in the prefix")
    prefix = prefix.strip("/")
    if not _BUCKET.match(bucket) or ".." in bucket:
        raise StorageError(f"{raw}: '{bucket}' is not a valid bucket name (3-63 characters: lowercase letters, "
                           "digits, '.', '-'; starting and ending with a letter or digit)")
    if any(part in (".", "..") for part in prefix.split("/")):
        raise StorageError(f"{raw}: '.' and '..' are not allowed in an object prefix")
    endpoint = endpoint_url or embedded or os.environ.get(ENDPOINT_ENV) or None
    if endpoint_url and embedded and endpoint_url.rstrip("/") != embedded:
        raise StorageError(f"{raw}: names endpoint {embedded} but --endpoint-url is {endpoint_url}")
    if endpoint:
        u = urlsplit(endpoint)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise StorageError(f"endpoint {endpoint} for {raw}: expected http(s)://host[:port]")
        endpoint = f"{u.scheme}://{u.netloc}"
    return S3URI(bucket, prefix, endpoint)


def local_or_remote(target: str | os.PathLike, endpoint_url: str | None = None) -> Path | S3URI:
    return parse(str(target), endpoint_url) if is_remote(target) else Path(target)
