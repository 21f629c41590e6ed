"""boto3 clients that fail fast and speak plainly.

Credentials come from boto3's standard chain (environment, shared files, SSO, instance roles); repogen never
takes keys on its command line. Timeouts and retries are short so that an unreachable endpoint or a typo
in its host is one error within seconds, not botocore's default minutes of retries.
"""

from __future__ import annotations

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


def list_keys(client: Any, uri: S3URI, below: str = "") -> dict[str, dict]:
    """Every object under the prefix (or under ``below`` inside it): relative key -> listing row."""
    base = uri.key(below)
    start = base + "/" if base else ""
    found: dict[str, dict] = {}
    paginator = client.get_paginator("list_objects_v2")
    try:
        for page in paginator.paginate(Bucket=uri.bucket, Prefix=start):
            for row in page.get("Contents", []):
                rel = row["Key"][len(uri.key() + "/") if uri.key() else 0:]
                found[rel] = row
    except Exception as exc:  # botocore errors surface lazily, page by page
        raise explain(uri, exc, f"listing {start or '/'}") from exc
    return found
