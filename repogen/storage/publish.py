"""``repogen publish LOCAL_REPO s3://bucket/prefix``: copy a model repository to object storage so that a
Triton polling it never sees a half-written model.

Order, per model (docs/scale-out.md explains why):

1. every check first: the bucket answers with these credentials, local files match the sha256 that
   ``repogen.json`` records, and no version folder that already exists remotely would change (a version is
   immutable; a new version is a new numeric folder). Any problem stops here, nothing written;
2. the files of each new version folder, the model file (``model.*``) last, each verified by reading it
   back and hashing it;
3. the other top-level files, then ``repogen.json`` (with ``objects``: the sha256 of every object of the
   model folder), then ``config.pbtxt`` last;
4. only with ``prune=N``: versions beyond the newest N are deleted, after the new config is in place.

A failure in step 2 deletes the objects this run created in the new version folders, so nothing
half-uploaded stays behind; objects that existed before are never deleted except by ``prune``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from repogen.extras import require
from repogen.storage import client as s3
from repogen.storage.uri import S3URI, StorageError, parse
from repogen.repository.manifest import MANIFEST, sha256

CONFIG = "config.pbtxt"
#: repogen.json key written on the store: relative path -> sha256 for every other object of the model folder
OBJECTS_KEY = "objects"
_SKIP_NAMES = {"__pycache__", ".DS_Store"}


@dataclass
class ModelPublish:
    name: str
    uploaded_versions: list[int] = field(default_factory=list)
    unchanged_versions: list[int] = field(default_factory=list)
    pruned_versions: list[int] = field(default_factory=list)
    objects_written: int = 0
    bytes_written: int = 0
    objects_verified: int = 0


@dataclass
class PublishReport:
    uri: str
    endpoint_url: str | None
    triton_path: str
    models: list[ModelPublish]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"ok": True, "uri": self.uri, "endpoint_url": self.endpoint_url, "triton_path": self.triton_path,
                "seconds": round(self.seconds, 3), "models": [asdict(m) for m in self.models]}


# -- local side ----------------------------------------------------------------------------------------------------

def local_model_dirs(repo: Path, models: list[str] | None = None) -> list[Path]:
    if not repo.is_dir():
        raise StorageError(f"{repo}: model repository folder not found")
    found = sorted(p for p in repo.iterdir() if p.is_dir() and (p / CONFIG).is_file())
    if models:
        missing = sorted(set(models) - {p.name for p in found})
        if missing:
            raise StorageError(f"{repo}: no model folder (with config.pbtxt) named {', '.join(missing)}")
        found = [p for p in found if p.name in models]
    if not found:
        raise StorageError(f"{repo}: no model folders (a model folder holds config.pbtxt)")
    return found


def local_files(model_dir: Path) -> dict[str, Path]:
    """Relative posix path -> file, for every regular file of a model folder (symlinks followed)."""
    out = {}
    for p in sorted(model_dir.rglob("*")):
        if any(part in _SKIP_NAMES for part in p.relative_to(model_dir).parts) or not p.is_file():
            continue
        out[p.relative_to(model_dir).as_posix()] = p
    return out


def _version_of(rel: str) -> int | None:
    head = rel.split("/", 1)[0]
    return int(head) if "/" in rel and head.isdigit() else None


def check_local_sources(model_dir: Path, files: dict[str, Path]) -> dict[str, Any]:
    """repogen.json's recorded sha256 for the Paddle sources copied into version folders must still hold:
    publishing a corrupted copy would make every replica serve it."""
    path = model_dir / MANIFEST
    if not path.is_file():
        return {}
    try:
        manifest = json.loads(path.read_text())
    except ValueError as exc:
        raise StorageError(f"{path}: not valid JSON ({exc})") from exc
    recorded: dict[str, str] = (manifest.get("source") or {}).get("files") or {}
    for rel, p in files.items():
        if _version_of(rel) is not None and p.name in recorded and sha256(p) != recorded[p.name]:
            raise StorageError(f"{p}: sha256 differs from the one {path} records; rebuild the model "
                               "instead of publishing a changed copy")
    return manifest


def _upload_order(rels: list[str]) -> list[str]:
    """Model files (model.py, model.plan, ...) last inside a version folder: a backend that finds its model
    file finds everything it needs beside it."""
    return sorted(rels, key=lambda r: (r.rsplit("/", 1)[-1].startswith("model."), r))


# -- remote side ---------------------------------------------------------------------------------------------------

def _b64(hexdigest: str) -> str:
    return base64.b64encode(bytes.fromhex(hexdigest)).decode()


def _remote_sha256(client: Any, uri: S3URI, key: str) -> str:
    h = hashlib.sha256()
    resp = s3.call(uri, f"reading back {key}", client.get_object, Bucket=uri.bucket, Key=key)
    for chunk in resp["Body"].iter_chunks(1 << 20):
        h.update(chunk)
    return h.hexdigest()


def _put(client: Any, uri: S3URI, key: str, body: bytes | Path, digest: str) -> int:
    """One PUT with the sha256 sent along (the store rejects a body that does not match it), then read the
    object back and hash it: the store holds exactly these bytes."""
    data = body.read_bytes() if isinstance(body, Path) else body
    s3.call(uri, f"uploading {key}", client.put_object, Bucket=uri.bucket, Key=key, Body=data,
            ChecksumSHA256=_b64(digest), Metadata={"sha256": digest})
    got = _remote_sha256(client, uri, key)
    if got != digest:
        raise StorageError(f"{uri}: {key} reads back with sha256 {got}, uploaded {digest}")
    return len(data)


def _remote_manifest_bytes(client: Any, uri: S3URI, model: str) -> bytes | None:
    ClientError = require("botocore.exceptions", extra="s3").ClientError

    key = uri.key(model, MANIFEST)
    try:
        return client.get_object(Bucket=uri.bucket, Key=key)["Body"].read()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise s3.explain(uri, exc, f"reading {key}") from exc


def _json_or_none(body: bytes | None) -> dict[str, Any] | None:
    try:
        return json.loads(body) if body is not None else None
    except ValueError:
        return None


def remote_manifest(client: Any, uri: S3URI, model: str) -> dict[str, Any] | None:
    return _json_or_none(_remote_manifest_bytes(client, uri, model))


def remote_versions(keys: dict[str, dict]) -> set[int]:
    return {v for v in (_version_of(k) for k in keys) if v is not None}


# -- publish -------------------------------------------------------------------------------------------------------

@dataclass
class _Plan:
    name: str
    files: dict[str, Path]
    digests: dict[str, str]
    manifest: dict[str, Any]
    new_versions: list[int]
    same_versions: list[int]
    remote_keys: dict[str, dict]
    remote_objects: dict[str, str]
    remote_manifest_sha: str | None


def _plan_model(client: Any, uri: S3URI, model_dir: Path) -> _Plan:
    name = model_dir.name
    files = local_files(model_dir)
    manifest = check_local_sources(model_dir, files)
    digests = {rel: sha256(p) for rel, p in files.items()}
    remote_keys = s3.list_keys(client, uri, name)
    remote_keys = {k[len(name) + 1:]: v for k, v in remote_keys.items()}
    raw_meta = _remote_manifest_bytes(client, uri, name) if MANIFEST in remote_keys else None
    remote_meta = _json_or_none(raw_meta)
    remote_objects: dict[str, str] = dict((remote_meta or {}).get(OBJECTS_KEY) or {})
    local_versions = sorted({v for v in (_version_of(r) for r in files) if v is not None})
    if not local_versions:
        raise StorageError(f"{model_dir}: no numeric version folder to publish")
    existing = remote_versions(remote_keys)
    new, same = [], []
    for v in local_versions:
        if v not in existing:
            new.append(v)
            continue
        mine = {r: d for r, d in digests.items() if _version_of(r) == v}
        theirs_keys = sorted(k for k in remote_keys if _version_of(k) == v)
        theirs = {k: remote_objects.get(k) or _remote_sha256(client, uri, uri.key(name, k)) for k in theirs_keys}
        if mine != theirs:
            changed = sorted(set(mine) ^ set(theirs) | {k for k in mine if k in theirs and mine[k] != theirs[k]})
            raise StorageError(
                f"{uri.child(name, str(v))}: version {v} of model {name} already exists with different content "
                f"({', '.join(changed[:4])}{' ...' if len(changed) > 4 else ''}); a published version is never "
                f"changed in place (a polling Triton could read a mix): build it as version "
                f"{max(existing | set(local_versions)) + 1} (--version-folder)")
        same.append(v)
    newer = sorted(v for v in existing if v > max(local_versions))
    if newer:
        stale = sorted(r for r in (CONFIG, *(r for r in files if _version_of(r) is None and r != MANIFEST))
                       if r in remote_keys and remote_objects.get(r) != digests[r])
        if stale:
            raise StorageError(
                f"{uri.child(name)}: the store already serves version {newer[-1]}, newer than the newest local one "
                f"({max(local_versions)}); publishing would put the older {', '.join(stale)} over it")
    return _Plan(name, files, digests, manifest, new, same, remote_keys, remote_objects,
                 hashlib.sha256(raw_meta).hexdigest() if raw_meta is not None else None)


def publish(local_repo: str | Path, target: str | S3URI, *, endpoint_url: str | None = None,
            models: list[str] | None = None, prune: int | None = None,
            log: Callable[[str], None] | None = None) -> PublishReport:
    """Copy ``local_repo`` to ``target`` (see the module docstring for the order and the checks)."""
    started = time.monotonic()
    uri = target if isinstance(target, S3URI) else parse(str(target), endpoint_url)
    if prune is not None and prune < 1:
        raise StorageError(f"--prune {prune}: keep at least the newest 1 version")
    say = log or (lambda msg: None)
    model_dirs = local_model_dirs(Path(local_repo), models)
    client = s3.make_client(uri)
    s3.check_bucket(client, uri)
    plans = [_plan_model(client, uri, d) for d in model_dirs]  # every check before the first write

    reports = []
    for plan in plans:
        rep = ModelPublish(plan.name, list(plan.new_versions), list(plan.same_versions))
        _upload_versions(client, uri, plan, rep, say)
        kept = _kept_versions(plan, prune)
        _upload_top_level(client, uri, plan, rep, kept, say)
        if prune is not None:
            rep.pruned_versions = _prune(client, uri, plan, kept, say)
        reports.append(rep)
    return PublishReport(uri.text, uri.endpoint_url, uri.triton_path(), reports, time.monotonic() - started)


def _upload_versions(client: Any, uri: S3URI, plan: _Plan, rep: ModelPublish, say: Callable[[str], None]) -> None:
    created: list[str] = []
    try:
        for v in plan.new_versions:
            for rel in _upload_order([r for r in plan.files if _version_of(r) == v]):
                key = uri.key(plan.name, rel)
                created.append(key)
                rep.bytes_written += _put(client, uri, key, plan.files[rel], plan.digests[rel])
                rep.objects_written += 1
                rep.objects_verified += 1
            say(f"{plan.name}: version {v} uploaded and verified")
    except BaseException:
        # Only objects this run created, in version folders that did not exist before: no user data.
        for key in created:
            try:
                client.delete_object(Bucket=uri.bucket, Key=key)
            except Exception:  # the original error matters more than a failed cleanup
                pass
        raise


def _kept_versions(plan: _Plan, prune: int | None) -> set[int]:
    everything = remote_versions(plan.remote_keys) | set(plan.new_versions) | set(plan.same_versions)
    if prune is None:
        return everything
    return set(sorted(everything)[-prune:])


def _upload_top_level(client: Any, uri: S3URI, plan: _Plan, rep: ModelPublish, kept: set[int],
                      say: Callable[[str], None]) -> None:
    objects = {r: d for r, d in plan.remote_objects.items() if _version_of(r) in kept}
    objects.update({r: d for r, d in plan.digests.items()
                    if r != MANIFEST and (_version_of(r) is None or _version_of(r) in kept)})
    top = [r for r in plan.files if _version_of(r) is None and r not in (CONFIG, MANIFEST)]
    manifest = dict(plan.manifest)
    manifest[OBJECTS_KEY] = dict(sorted(objects.items()))
    manifest_bytes = (json.dumps(manifest, indent=2) + "\n").encode()
    order = [(rel, plan.files[rel], plan.digests[rel]) for rel in sorted(top)]
    order.append((MANIFEST, manifest_bytes, hashlib.sha256(manifest_bytes).hexdigest()))
    order.append((CONFIG, plan.files[CONFIG], plan.digests[CONFIG]))
    for rel, body, digest in order:
        key = uri.key(plan.name, rel)
        known = plan.remote_manifest_sha if rel == MANIFEST else plan.remote_objects.get(rel)
        if rel in plan.remote_keys and known == digest:
            continue  # unchanged: rewriting it would only make a polling Triton reload for nothing
        rep.bytes_written += _put(client, uri, key, body, digest)
        rep.objects_written += 1
        rep.objects_verified += 1
    say(f"{plan.name}: {CONFIG} in place at {uri.child(plan.name).text}")


def _prune(client: Any, uri: S3URI, plan: _Plan, kept: set[int], say: Callable[[str], None]) -> list[int]:
    gone = sorted(remote_versions(plan.remote_keys) - kept)
    for v in gone:
        keys = [k for k in plan.remote_keys if _version_of(k) == v]
        for i in range(0, len(keys), 1000):
            batch = [{"Key": uri.key(plan.name, k)} for k in keys[i:i + 1000]]
            s3.call(uri, f"pruning version {v} of {plan.name}", client.delete_objects, Bucket=uri.bucket,
                    Delete={"Objects": batch, "Quiet": True})
        say(f"{plan.name}: version {v} pruned")
    return gone


def verify(target: str | S3URI, *, endpoint_url: str | None = None) -> dict[str, list[str]]:
    """Re-hash every object listed in each model's remote ``repogen.json``; model -> problems (empty = ok)."""
    uri = target if isinstance(target, S3URI) else parse(str(target), endpoint_url)
    client = s3.make_client(uri)
    s3.check_bucket(client, uri)
    keys = s3.list_keys(client, uri)
    models = sorted({k.split("/", 1)[0] for k in keys if k.endswith("/" + CONFIG) and k.count("/") == 1})
    problems: dict[str, list[str]] = {}
    for name in models:
        meta = remote_manifest(client, uri, name) or {}
        objects = meta.get(OBJECTS_KEY) or {}
        bad = []
        if not objects:
            bad.append(f"{MANIFEST} lists no objects (not published by repogen publish)")
        for rel, digest in sorted(objects.items()):
            if f"{name}/{rel}" not in keys:
                bad.append(f"{rel}: missing")
            elif _remote_sha256(client, uri, uri.key(name, rel)) != digest:
                bad.append(f"{rel}: sha256 differs from {MANIFEST}")
        problems[name] = bad
    return problems
