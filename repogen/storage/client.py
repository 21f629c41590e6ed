"""boto3 clients that fail fast and speak plainly.

Credentials come from boto3's standard chain (environment, shared files, SSO, instance roles); repogen never
takes keys on its command line. Timeouts and retries are short so that an unreachable endpoint or a typo
in its host is one error within seconds, not botocore's default minutes of retries.
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path
from typing import Any, Callable, TypeVar

from repogen.extras import require
from repogen.storage.uri import S3URI, StorageError

CONNECT_TIMEOUT_S = 3
READ_TIMEOUT_S = 30
MAX_ATTEMPTS = 2

T = TypeVar("T")

_CODES = {
    "NoSuchBucket": "bucket '{bucket}' does not exist",
    "404": "bucket '{bucket}' does not exist",
    "NotFound": "bucket '{bucket}' does not exist",
    "InvalidAccessKeyId": "the access key is not known to the store (check AWS_ACCESS_KEY_ID / AWS_PROFILE)",
    "SignatureDoesNotMatch": "the secret key is wrong (signature does not match; check AWS_SECRET_ACCESS_KEY)",
    "AccessDenied": "access denied (the credentials may not read/write bucket '{bucket}')",
    "403": "access denied or wrong credentials for bucket '{bucket}'",
    "Forbidden": "access denied or wrong credentials for bucket '{bucket}'",
    "InvalidBucketName": "'{bucket}' is not a valid bucket name",
    "PermanentRedirect": "bucket '{bucket}' lives in another region (set AWS_DEFAULT_REGION)",
    "301": "bucket '{bucket}' lives in another region (set AWS_DEFAULT_REGION)",
}


def make_client(uri: S3URI) -> Any:
    boto3 = require("boto3", extra="s3")
    Config = require("botocore.config", extra="s3").Config

    config = Config(connect_timeout=CONNECT_TIMEOUT_S, read_timeout=READ_TIMEOUT_S,
                    retries={"max_attempts": MAX_ATTEMPTS, "mode": "standard"},
                    # S3-compatible stores (MinIO, moto, Ceph) are usually addressed by path, not bucket DNS
                    s3={"addressing_style": "path" if uri.endpoint_url else "auto"})
    session = boto3.session.Session()
    return session.client("s3", endpoint_url=uri.endpoint_url, config=config)


def explain(uri: S3URI, exc: BaseException, doing: str) -> StorageError:
    """One plain sentence for any boto3/botocore failure, naming the URI and what was being done."""
    bx = require("botocore.exceptions", extra="s3")

    where = f"{uri}: {doing}"
    if isinstance(exc, bx.NoCredentialsError):
        return StorageError(f"{where}: no AWS credentials found (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
                            "AWS_PROFILE, or run on a machine with an instance role)")
    if isinstance(exc, (bx.EndpointConnectionError, bx.ConnectTimeoutError, bx.ReadTimeoutError,
                        bx.ConnectionClosedError)):
        target = uri.endpoint_url or "the AWS S3 endpoint"
        return StorageError(f"{where}: cannot reach {target} ({type(exc).__name__}); check --endpoint-url / "
                            "AWS_ENDPOINT_URL and the network")
    if isinstance(exc, bx.ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code", ""))
        status = str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
        text = _CODES.get(code) or _CODES.get(status)
        if text:
            return StorageError(f"{where}: {text.format(bucket=uri.bucket)}")
        return StorageError(f"{where}: {code or status} {err.get('Message', '')}".rstrip())
    if isinstance(exc, bx.BotoCoreError):
        return StorageError(f"{where}: {exc}")
    return StorageError(f"{where}: {type(exc).__name__}: {exc}")


def call(uri: S3URI, doing: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run one boto3 call; any failure becomes :func:`explain`'s StorageError."""
    bx = require("botocore.exceptions", extra="s3")

    try:
        return fn(*args, **kwargs)
    except (bx.BotoCoreError, bx.ClientError) as exc:
        raise explain(uri, exc, doing) from exc


def check_bucket(client: Any, uri: S3URI) -> None:
    """Before anything is written: the endpoint answers, the credentials work, the bucket exists and is
    listable. ``head_bucket`` alone cannot tell a wrong secret from a missing bucket on every store, so a
    one-key listing of the prefix follows."""
    call(uri, "checking the bucket", client.head_bucket, Bucket=uri.bucket)
    call(uri, "listing the prefix", client.list_objects_v2, Bucket=uri.bucket, Prefix=uri.key() and uri.key() + "/",
         MaxKeys=1)


def list_raw(client: Any, uri: S3URI, start: str) -> dict[str, dict]:
    """Every object of the bucket whose key starts with ``start``: full key -> listing row."""
    found: dict[str, dict] = {}
    paginator = client.get_paginator("list_objects_v2")
    try:
        for page in paginator.paginate(Bucket=uri.bucket, Prefix=start):
            for row in page.get("Contents", []):
                found[row["Key"]] = row
    except Exception as exc:  # botocore errors surface lazily, page by page
        raise explain(uri, exc, f"listing {start or '/'}") from exc
    return found


def list_keys(client: Any, uri: S3URI, below: str = "") -> dict[str, dict]:
    """Every object under the prefix (or under ``below`` inside it): relative key -> listing row."""
    base = uri.key(below)
    cut = len(uri.key() + "/") if uri.key() else 0
    return {k[cut:]: row for k, row in list_raw(client, uri, base + "/" if base else "").items()}


def b64(hexdigest: str) -> str:
    return base64.b64encode(bytes.fromhex(hexdigest)).decode()


def remote_sha256(client: Any, uri: S3URI, key: str) -> str:
    h = hashlib.sha256()
    resp = call(uri, f"reading back {key}", client.get_object, Bucket=uri.bucket, Key=key)
    for chunk in resp["Body"].iter_chunks(1 << 20):
        h.update(chunk)
    return h.hexdigest()


def read_no_follow(path: Path) -> bytes:
    """A file's bytes, refusing a symlink in its place (the caller resolved and checked it before)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as f:
        return f.read()


def put_verified(client: Any, uri: S3URI, key: str, body: bytes | Path, digest: str) -> int:
    """One PUT with the sha256 sent along (the store rejects a body that does not match it), then read the
    object back and hash it: the store holds exactly these bytes. Returns the size."""
    data = read_no_follow(body) if isinstance(body, Path) else body
    call(uri, f"uploading {key}", client.put_object, Bucket=uri.bucket, Key=key, Body=data,
         ChecksumSHA256=b64(digest), Metadata={"sha256": digest})
    got = remote_sha256(client, uri, key)
    if got != digest:
        raise StorageError(f"{uri}: {key} reads back with sha256 {got}, uploaded {digest}")
    return len(data)


def copy_verified(client: Any, uri: S3URI, source: str, key: str, digest: str) -> None:
    """Server-side copy (metadata, the sha256 included, goes along); the store computes the copy's sha256
    and returns it. A store that does not is read back instead."""
    resp = call(uri, f"copying {source} to {key}", client.copy_object, Bucket=uri.bucket, Key=key,
                CopySource={"Bucket": uri.bucket, "Key": source}, ChecksumAlgorithm="SHA256")
    got_b64 = (resp.get("CopyObjectResult") or {}).get("ChecksumSHA256")
    if got_b64:
        ok = got_b64 == b64(digest)
    else:
        ok = remote_sha256(client, uri, key) == digest
    if not ok:
        raise StorageError(f"{uri}: {key} (copied from {source}) does not have the sha256 {digest}")


def recorded_sha256(client: Any, uri: S3URI, key: str) -> str | None:
    """The sha256 repogen stored with an object (its metadata), None when the object is missing."""
    ClientError = require("botocore.exceptions", extra="s3").ClientError

    try:
        head = client.head_object(Bucket=uri.bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
            return None
        raise explain(uri, exc, f"reading {key}") from exc
    return (head.get("Metadata") or {}).get("sha256") or ""


def delete_keys(client: Any, uri: S3URI, keys: list[str], doing: str) -> None:
    """Delete full keys, 1000 per request (S3's limit); deleting a missing key is not an error."""
    for i in range(0, len(keys), 1000):
        batch = [{"Key": k} for k in keys[i:i + 1000]]
        resp = call(uri, doing, client.delete_objects, Bucket=uri.bucket, Delete={"Objects": batch, "Quiet": True})
        if resp.get("Errors"):
            e = resp["Errors"][0]
            raise StorageError(f"{uri}: {doing}: {e.get('Key')}: {e.get('Code')} {e.get('Message', '')}".rstrip())
