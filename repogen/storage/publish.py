"""``repogen publish LOCAL_REPO s3://bucket/prefix``: copy a model repository to object storage as one
transaction per model that a killed process cannot break (repogen.storage.transaction; docs/scale-out.md).

Per model:

1. leftovers first: a transaction a dead publish left for this model is rolled back (or, past its commit
   point, finished), one line each;
2. every check before the first write: the bucket answers with these credentials, the local files are the
   repository's own (a symlink out of it is refused), they match the sha256 that ``repogen.json`` records,
   and no version folder that already exists remotely would change (a version is immutable; a new version is
   a new numeric folder). Any problem stops here, nothing written;
3. the transaction: everything staged outside what Triton reads, the config pinned to the versions it
   serves, the new version folders copied in (the model file last), the top-level files and
   ``repogen.json`` (with ``objects``: the sha256 of every object of the model folder), ``config.pbtxt``
   last; only with ``prune=N``, versions beyond the newest N are deleted after that.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from repogen.interrupts import terminate_raises
from repogen.extras import require
from repogen.storage import client as s3
from repogen.storage import transaction as tx
from repogen.storage.uri import S3URI, StorageError, parse
from repogen.repository.manifest import MANIFEST, sha256

CONFIG = tx.CONFIG
#: repogen.json key written on the store: relative path -> sha256 for every other object of the model folder
OBJECTS_KEY = "objects"
_SKIP_NAMES = {"__pycache__", ".DS_Store"}
_version_of = tx.version_of


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
    repaired: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": True, "uri": self.uri, "endpoint_url": self.endpoint_url, "triton_path": self.triton_path,
                "seconds": round(self.seconds, 3), "repaired": self.repaired,
                "models": [asdict(m) for m in self.models]}


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


def local_files(model_dir: Path, root: Path | None = None) -> dict[str, Path]:
    """Relative posix path -> real path, for every file of a model folder.

    A symlink is followed only when it resolves inside the repository ``root`` (default: the model folder's
    parent): one pointing anywhere else, a broken one, or anything that is not a regular file or folder
    (a FIFO would block the upload) is an error naming it, raised before anything is uploaded."""
    root_real = Path(os.path.realpath(root if root is not None else model_dir.parent))
    out: dict[str, Path] = {}
    seen: set[Path] = set()

    def inside(p: Path) -> Path:
        real = Path(os.path.realpath(p))
        if real != root_real and root_real not in real.parents:
            raise StorageError(f"{p}: a symlink to {real}, outside the repository {root_real}; publish uploads "
                               "only what lies inside it (copy the file in instead of linking it)")
        return real

    def walk(folder: Path, prefix: str) -> None:
        real_folder = inside(folder)
        if real_folder in seen:
            return  # a symlink loop, or two links to one folder inside the repository
        seen.add(real_folder)
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            if entry.name in _SKIP_NAMES:
                continue
            path, rel = Path(entry.path), prefix + entry.name
            real = inside(path)
            try:
                st = os.stat(real)
            except OSError as exc:
                raise StorageError(f"{path}: cannot read it ({exc.strerror}; a broken symlink?)") from exc
            if stat.S_ISDIR(st.st_mode):
                walk(path, rel + "/")
            elif stat.S_ISREG(st.st_mode):
                out[rel] = real
            else:
                raise StorageError(f"{path}: not a regular file or folder; publish uploads regular files only")

    walk(model_dir, "")
    return out


def check_local_sources(model_dir: Path, files: dict[str, Path]) -> dict[str, Any]:
    """repogen.json's recorded sha256 for the Paddle sources copied into version folders must still hold:
    publishing a corrupted copy would make every replica serve it."""
    path = model_dir / MANIFEST
    if MANIFEST not in files:
        return {}
    try:
        manifest = json.loads(s3.read_no_follow(files[MANIFEST]))
    except (ValueError, UnicodeDecodeError) as exc:
        raise StorageError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(manifest, dict):
        raise StorageError(f"{path}: expected a JSON object")
    recorded = (manifest.get("source") or {}).get("files") or {}
    if not isinstance(recorded, dict):
        raise StorageError(f"{path}: source.files must be an object of file name -> sha256")
    for rel, p in files.items():
        if _version_of(rel) is not None and p.name in recorded and sha256(p) != recorded[p.name]:
            raise StorageError(f"{model_dir / rel}: sha256 differs from the one {path} records; rebuild the model "
                               "instead of publishing a changed copy")
    return manifest


def _upload_order(rels: list[str]) -> list[str]:
    """Model files (model.py, model.plan, ...) last inside a version folder: a backend that finds its model
    file finds everything it needs beside it."""
    return sorted(rels, key=lambda r: (r.rsplit("/", 1)[-1].startswith("model."), r))


# -- remote side ---------------------------------------------------------------------------------------------------

def _get_or_none(client: Any, uri: S3URI, key: str) -> bytes | None:
    ClientError = require("botocore.exceptions", extra="s3").ClientError

    try:
        return client.get_object(Bucket=uri.bucket, Key=key)["Body"].read()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise s3.explain(uri, exc, f"reading {key}") from exc


def _remote_manifest_bytes(client: Any, uri: S3URI, model: str) -> bytes | None:
    return _get_or_none(client, uri, uri.key(model, MANIFEST))


def _json_or_none(body: bytes | None) -> dict[str, Any] | None:
    try:
        data = json.loads(body) if body is not None else None
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def remote_manifest(client: Any, uri: S3URI, model: str) -> dict[str, Any] | None:
    return _json_or_none(_remote_manifest_bytes(client, uri, model))


def remote_versions(keys: dict[str, dict]) -> set[int]:
    return {v for v in (_version_of(k) for k in keys) if v is not None}


def unrecorded_versions(keys: dict[str, dict], objects: dict[str, str]) -> list[int]:
    """Version folders on the store of which the store's repogen.json records no object: what a publish that
    died before this transactional one (or a hand copy) left. Empty when nothing is recorded at all."""
    if not objects:
        return []
    recorded = {_version_of(r) for r in objects}
    return sorted(v for v in remote_versions(keys) if v not in recorded)


# -- publish -------------------------------------------------------------------------------------------------------

@dataclass
class _Plan:
    name: str
    files: dict[str, Path]
    digests: dict[str, str]
    new_versions: list[int]
    same_versions: list[int]
    copies: list[tuple[str, str]]  # (relative path, sha256) to write, config.pbtxt excluded, in order
    manifest_bytes: bytes | None  # the store's new repogen.json, None when unchanged
    config: str | None  # sha256 of the config to write, None when the store's stays
    pinned: bytes | None  # the store's config pinned to the versions it serves now, None when no pin is needed
    original: str | None  # sha256 of the store's config.pbtxt
    prune: list[int]

    @property
    def empty(self) -> bool:
        return not self.copies and self.manifest_bytes is None and self.config is None and not self.prune


@dataclass
class _Local:
    model_dir: Path
    files: dict[str, Path]
    digests: dict[str, str]
    manifest: dict[str, Any]


def _read_local(model_dir: Path, repo: Path) -> _Local:
    files = local_files(model_dir, repo)
    manifest = check_local_sources(model_dir, files)
    return _Local(model_dir, files, {rel: sha256(p) for rel, p in files.items()}, manifest)


def _plan_model(client: Any, uri: S3URI, local: _Local, prune: int | None) -> _Plan:
    model_dir, files, digests, manifest = local.model_dir, local.files, local.digests, local.manifest
    name = model_dir.name
    remote_keys = {k: v for k, v in s3.list_keys(client, uri, name).items()}
    remote_keys = {k[len(name) + 1:]: v for k, v in remote_keys.items() if not tx.is_staging(k[len(name) + 1:])}
    raw_meta = _remote_manifest_bytes(client, uri, name) if MANIFEST in remote_keys else None
    remote_meta = _json_or_none(raw_meta)
    remote_objects: dict[str, str] = dict((remote_meta or {}).get(OBJECTS_KEY) or {})
    local_versions = sorted({v for v in (_version_of(r) for r in files) if v is not None})
    if not local_versions:
        raise StorageError(f"{model_dir}: no numeric version folder to publish")
    existing = remote_versions(remote_keys)
    orphans = unrecorded_versions(remote_keys, remote_objects)
    new, same = [], []
    for v in local_versions:
        if v not in existing:
            new.append(v)
            continue
        mine = {r: d for r, d in digests.items() if _version_of(r) == v}
        theirs_keys = sorted(k for k in remote_keys if _version_of(k) == v)
        theirs = {k: remote_objects.get(k) or s3.remote_sha256(client, uri, uri.key(name, k)) for k in theirs_keys}
        if mine != theirs:
            if v in orphans:
                raise StorageError(
                    f"{uri.child(name, str(v))}: version {v} of model {name} exists on the store but its repogen.json "
                    f"does not record it (left by an interrupted publish?); `repogen publish --repair {uri.text}` "
                    "removes it")
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

    everything = existing | set(new) | set(same)
    kept = everything if prune is None else set(sorted(everything)[-prune:])
    copies = [(r, digests[r]) for v in new for r in _upload_order([r for r in files if _version_of(r) == v])]
    copies += [(r, digests[r]) for r in sorted(files) if _version_of(r) is None and r not in (CONFIG, MANIFEST)
               and not (r in remote_keys and remote_objects.get(r) == digests[r])]
    objects = {r: d for r, d in remote_objects.items() if _version_of(r) in kept}
    objects.update({r: d for r, d in digests.items()
                    if r != MANIFEST and (_version_of(r) is None or _version_of(r) in kept)})
    meta = dict(manifest)
    meta[OBJECTS_KEY] = dict(sorted(objects.items()))
    manifest_bytes: bytes | None = (json.dumps(meta, indent=2) + "\n").encode()
    if raw_meta is not None and hashlib.sha256(manifest_bytes).hexdigest() == hashlib.sha256(raw_meta).hexdigest():
        manifest_bytes = None  # unchanged: rewriting it would only make a polling Triton reload for nothing
    config: str | None = digests[CONFIG]
    if CONFIG in remote_keys and remote_objects.get(CONFIG) == config:
        config = None
    pinned = original = None
    if new and CONFIG in remote_keys:
        # The versions the store's config serves now, written as an explicit list before any new version
        # folder appears: a polling server then cannot pick up a version whose files are still arriving.
        text = _get_or_none(client, uri, uri.key(name, CONFIG)) or b""
        original = hashlib.sha256(text).hexdigest()
        committed = sorted(existing - set(orphans))
        pinned, _ = tx.pinned_config(text.decode("utf-8", "replace"), uri.child(name, CONFIG).text, committed)
        config = digests[CONFIG]  # the flip: written even when unchanged, it replaces the pin
    gone = sorted(existing - kept)
    return _Plan(name, files, digests, new, same, copies, manifest_bytes, config, pinned, original, gone)


def publish(local_repo: str | Path, target: str | S3URI, *, endpoint_url: str | None = None,
            models: list[str] | None = None, prune: int | None = None,
            log: Callable[[str], None] | None = None) -> PublishReport:
    """Copy ``local_repo`` to ``target`` (see the module docstring for the order and the checks)."""
    started = time.monotonic()
    uri = target if isinstance(target, S3URI) else parse(str(target), endpoint_url)
    if prune is not None and prune < 1:
        raise StorageError(f"--prune {prune}: keep at least the newest 1 version")
    say = log or (lambda msg: None)
    # local checks first (a symlink out of the repository, a changed source copy): nothing written on error
    locals_ = [_read_local(d, Path(local_repo)) for d in local_model_dirs(Path(local_repo), models)]
    client = s3.make_client(uri)
    s3.check_bucket(client, uri)
    with terminate_raises():  # SIGTERM: roll back like any other error (SIGKILL: the next run does)
        repaired = _clean_leftovers(client, uri, [loc.model_dir.name for loc in locals_], say)
        plans = [_plan_model(client, uri, loc, prune) for loc in locals_]  # every check before the first write
        reports = []
        for plan in plans:
            rep = ModelPublish(plan.name, list(plan.new_versions), list(plan.same_versions))
            if not plan.empty:
                _run_transaction(client, uri, plan, rep, say)
            reports.append(rep)
    return PublishReport(uri.text, uri.endpoint_url, uri.triton_path(), reports, time.monotonic() - started,
                         repaired)


def _clean_leftovers(client: Any, uri: S3URI, models: list[str], say: Callable[[str], None]) -> list[str]:
    lines = []
    for lo in tx.leftovers(client, uri, models):
        line = tx.clean_leftover(client, uri, lo, say)
        say(line)
        lines.append(line)
    return lines


def _run_transaction(client: Any, uri: S3URI, plan: _Plan, rep: ModelPublish, say: Callable[[str], None]) -> None:
    with tx.Transaction(client, uri, plan.name) as t:
        for rel, _digest in plan.copies:
            t.stage(rel, plan.files[rel], plan.digests[rel])
        copies = list(plan.copies)
        if plan.manifest_bytes is not None:
            digest = hashlib.sha256(plan.manifest_bytes).hexdigest()
            t.stage(MANIFEST, plan.manifest_bytes, digest)
            copies.append((MANIFEST, digest))
        if plan.config is not None:
            t.stage(CONFIG, plan.files[CONFIG], plan.config)
        for v in plan.new_versions:
            say(f"{plan.name}: version {v} staged and verified")
        t.prepare(new_versions=plan.new_versions, copies=copies, config=plan.config, pinned=plan.pinned,
                  original=plan.original, prune=plan.prune)
        rep.pruned_versions = t.commit()
    rep.objects_written, rep.bytes_written, rep.objects_verified = t.objects_written, t.bytes_written, t.objects_written
    say(f"{plan.name}: {CONFIG} in place at {uri.child(plan.name).text}")
    for v in rep.pruned_versions:
        say(f"{plan.name}: version {v} pruned")


def repair(target: str | S3URI, *, endpoint_url: str | None = None, models: list[str] | None = None,
           log: Callable[[str], None] | None = None) -> list[str]:
    """``repogen publish --repair``: finish or undo every transaction a dead publish left under ``target``
    and delete version folders that the store's repogen.json does not record (a pre-transaction publish
    killed midway). Returns one line per thing done (empty: nothing to repair)."""
    uri = target if isinstance(target, S3URI) else parse(str(target), endpoint_url)
    say = log or (lambda msg: None)
    client = s3.make_client(uri)
    s3.check_bucket(client, uri)
    keys = s3.list_keys(client, uri)
    names = sorted({k.split("/", 1)[0] for k in keys if "/" in k} | set(tx.staged_models(client, uri)))
    if models:
        names = [n for n in names if n in models]
    with terminate_raises():
        lines = _clean_leftovers(client, uri, names, say)
        keys = s3.list_keys(client, uri) if lines else keys  # what the rollbacks and roll-forwards left
        for name in names:
            own = {k[len(name) + 1:]: v for k, v in keys.items() if k.startswith(name + "/")}
            objects = (remote_manifest(client, uri, name) or {}).get(OBJECTS_KEY) or {}
            for v in unrecorded_versions(own, objects):
                doomed = [uri.key(name, k) for k in own if _version_of(k) == v]
                s3.delete_keys(client, uri, doomed, f"removing unrecorded version {v} of {name}")
                line = (f"{name}: removed version {v} ({len(doomed)} object(s)): its repogen.json does not record "
                        "it (left by an interrupted publish)")
                say(line)
                lines.append(line)
    return lines


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
            elif s3.remote_sha256(client, uri, uri.key(name, rel)) != digest:
                bad.append(f"{rel}: sha256 differs from {MANIFEST}")
        problems[name] = bad
    return problems
