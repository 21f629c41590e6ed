"""Copy a published repository (or some of its models) from object storage into a local folder, checking
every object against the sha256 that the store's ``repogen.json`` lists. The validation harness uses it so
that the Paddle reference reads exactly the objects Triton serves."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from repogen.storage import client as s3
from repogen.storage.publish import CONFIG, OBJECTS_KEY, remote_manifest, unrecorded_versions
from repogen.storage.transaction import is_staging, leftovers, pinned_digests, version_of
from repogen.storage.uri import S3URI, StorageError


def remote_models(client: Any, uri: S3URI, keys: dict[str, dict] | None = None) -> list[str]:
    keys = s3.list_keys(client, uri) if keys is None else keys
    return sorted(k.split("/", 1)[0] for k in keys if k.count("/") == 1 and k.endswith("/" + CONFIG))


def download(uri: S3URI, dest: Path, models: list[str] | None = None) -> list[str]:
    """Download ``models`` (default: every folder holding config.pbtxt) to ``dest/<model>/``; returns the
    model names. An object whose bytes do not match repogen.json's ``objects`` is an error; version folders
    of which repogen.json records nothing (an unfinished publish) and staged objects are left out."""
    client = s3.make_client(uri)
    s3.check_bucket(client, uri)
    keys = s3.list_keys(client, uri)
    names = remote_models(client, uri, keys)
    if not names:
        raise StorageError(f"{uri}: no model folders (no <model>/config.pbtxt under this prefix)")
    if models:
        missing = sorted(set(models) - set(names))
        if missing:
            raise StorageError(f"{uri}: no model named {', '.join(missing)} (found {', '.join(names)})")
        names = [n for n in names if n in models]
    for name in names:
        recorded = (remote_manifest(client, uri, name) or {}).get(OBJECTS_KEY) or {}
        own = {k[len(name) + 1:]: row for k, row in keys.items() if k.startswith(name + "/")}
        # what an unfinished publish left is not part of the repository (a pinned config hides it from Triton)
        unfinished = set(unrecorded_versions(own, recorded))
        for rel in sorted(own):
            if rel.endswith("/") or is_staging(rel) or version_of(rel) in unfinished:
                continue  # "folder" marker objects some tools create, staged objects, unfinished versions
            target = dest / name / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            resp = s3.call(uri, f"downloading {name}/{rel}", client.get_object, Bucket=uri.bucket,
                           Key=uri.key(name, rel))
            h = hashlib.sha256()
            with open(target, "wb") as f:
                for chunk in resp["Body"].iter_chunks(1 << 20):
                    h.update(chunk)
                    f.write(chunk)
            if rel in recorded and h.hexdigest() != recorded[rel] and not (
                    rel == CONFIG and h.hexdigest() in pinned_digests(client, uri, name)):
                pending = leftovers(client, uri, [name])
                why = (f"; a publish of {name} did not finish (transaction {pending[0].txid}): `repogen publish "
                       f"--repair {uri.text}` finishes or undoes it") if pending else ""
                raise StorageError(f"{uri.child(name, rel).text}: sha256 {h.hexdigest()} differs from the "
                                   f"{recorded[rel]} that {name}/repogen.json records{why}")
    return names
