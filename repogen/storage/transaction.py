"""One model's publish as a transaction on a store that has no rename, so that a killed process (SIGKILL
included) never leaves a version a polling Triton can half-see, and the next run cleans up.

What Triton 2.51 does, checked with the bundled server in poll mode on S3 (docs/scale-out.md):

- it loads numeric version folders only; other names inside a model folder are ignored as versions ("fails
  to convert to integral number"), but any object appearing there makes it reload the model;
- every folder at the repository root is a model: a stray one fails to load (and stops a starting server);
- objects under a sibling prefix (``prod.repogen-staging/`` beside ``prod/``) are never seen;
- a version folder without its model file (``model.py``) stays LOADING forever, and so does the server.

So a transaction, per model:

1. **stage**: a lease object, then every object to write (new version files, changed top-level files,
   ``repogen.json``, ``config.pbtxt``), each verified, under ``<prefix>.repogen-staging/<model>/<txid>/``
   (``<model>/.repogen-staging/<txid>/`` for a repository at the bucket root, the only place there is:
   ignored as a version, at the cost of reloads). Then a server-side copy of the store's current
   ``config.pbtxt`` (for a rollback) and ``transaction.json`` (what to copy where, in order). Nothing the
   server reads has changed; a kill here leaves only staged objects, which the next run deletes.
2. **pin**: when the model already has a config on the store and new versions come, its config is rewritten
   with ``version_policy { specific { versions: [...] } }`` listing the versions it serves now. From here
   a new numeric folder is invisible to the server however few of its objects exist.
3. **copy** the new version files into their numeric folders (server-side copies, checksums compared).
   A kill in steps 2-3 is rolled back by the next run: the copied objects deleted, then the original
   config restored.
4. write ``committing``, copy the top-level files and ``repogen.json``, then **``config.pbtxt`` last**: the
   one write that makes the new versions visible. A kill after ``committing`` is rolled forward by the
   next run (the remaining copies from the staged objects).
5. prune, then delete the staged objects (``transaction.json`` first, the lease last).

Live or dead: the live process holds an ``flock`` on a lock file named after the transaction in a private
temp folder and renews the lease object every ``LEASE_RENEW_S``. Another run on a machine that sees the
lock file asks the kernel (lock free = owner dead); elsewhere it waits until the lease is older than
``LEASE_EXPIRY_S`` by the store's own clock.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import os
import secrets
import signal
import socket
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from google.protobuf import text_format

from repogen.extras import require
from repogen.storage import client as s3
from repogen.locks import private_dir, try_lock
from repogen.storage.uri import S3URI, StorageError
from repogen.repository.config import parse_config
from repogen.repository.multiplan import served_versions
from repogen.repository.staging import pause_point

CONFIG = "config.pbtxt"
STAGE = ".repogen-staging"
LEASE = "lease.json"
RECORD = "transaction.json"
COMMITTING = "committing"
ORIGINAL = "original/" + CONFIG
FILES = "files/"
LEASE_RENEW_S = 10.0
LEASE_EXPIRY_S = 60.0
RECORD_FORMAT = 1

Say = Callable[[str], None]  # one line of progress for the user


def version_of(rel: str) -> int | None:
    head = rel.split("/", 1)[0]
    return int(head) if "/" in rel and head.isdigit() else None


def stage_root(uri: S3URI, model: str) -> str:
    """Key prefix (ending in '/') of a model's transactions."""
    if uri.prefix:
        return f"{uri.prefix}{STAGE}/{model}/"
    return f"{model}/{STAGE}/"


def is_staging(rel: str) -> bool:
    """A model-relative path inside the bucket-root staging folder."""
    return rel.split("/", 1)[0] == STAGE


def pinned_config(text: str, where: str, committed: list[int]) -> tuple[bytes, list[int]]:
    """The config with its version policy replaced by the versions it serves among ``committed``."""
    config = parse_config(text, where)
    keep = served_versions(config, sorted(committed))
    config.ClearField("version_policy")
    config.version_policy.specific.versions.extend(keep)
    return text_format.MessageToString(config).encode(), keep


@dataclass
class Record:
    """``transaction.json``: everything a later run needs to finish or undo the transaction."""
    txid: str
    model: str
    host: str
    pid: int
    started: str
    new_versions: list[int]
    copies: list[list[str]]  # [model-relative path, sha256], in commit order, config.pbtxt excluded
    config: str | None  # sha256 of the final config.pbtxt (staged), None when it stays as it is
    pinned: str | None  # sha256 of the pinned config written before the copies, None when none
    original: str | None  # sha256 of the store's config.pbtxt before (staged as original/config.pbtxt)
    prune: list[int] = field(default_factory=list)
    format: int = RECORD_FORMAT

    def owner(self) -> str:
        return f"pid {self.pid} on {self.host}, started {self.started}"


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _lock_path(txid: str) -> Path:
    return private_dir("publish-locks") / f"{txid}.lock"


class Transaction:
    """The live side: ``with Transaction(...) as tx: tx.stage(...); tx.prepare(...); tx.commit()``.

    Leaving the block with an exception (SIGTERM turned into SystemExit included) before ``committing``
    rolls back; after it, the staged objects stay for the next run to roll forward."""

    def __init__(self, client: Any, uri: S3URI, model: str) -> None:
        self.client, self.uri, self.model = client, uri, model
        self.txid = secrets.token_hex(8)
        self.base = stage_root(uri, model) + self.txid + "/"
        self.record: Record | None = None
        self.committing = False
        self.done = False
        self.staged = 0
        self.bytes_written = 0  # uploaded (staged); the copies into place are server-side
        self.objects_written = 0  # written where Triton reads
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock_fd: int | None = None
        self._pinned_bytes: bytes | None = None

    # -- lifetime ------------------------------------------------------------------------------------------
    def __enter__(self) -> "Transaction":
        self._lock_fd = try_lock(_lock_path(self.txid), create=True)
        if self._lock_fd is None:
            raise StorageError(f"{_lock_path(self.txid)}: cannot create and lock the publish lock file")
        try:
            self._write_lease(self.client)
        except BaseException:
            os.close(self._lock_fd)
            self._unlink_lock()
            raise
        self._thread = threading.Thread(target=self._renew, name=f"repogen-lease-{self.txid}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        ignore = _ignore_sigterm()  # a second SIGTERM must not cut the rollback short
        try:
            self._stop_lease()
            if exc_type is None or self.done:
                return
            if not self.committing:
                try:
                    recover(self.client, self.uri, self.model, self.base, live_record=self.record)
                except Exception:  # the original error matters more; the next run repairs what is left
                    return
                self._unlink_lock()
        finally:
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None
            ignore()

    def _stop_lease(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=LEASE_RENEW_S)

    def _unlink_lock(self) -> None:
        try:
            os.unlink(_lock_path(self.txid))
        except OSError:
            pass

    def _write_lease(self, client: Any) -> None:
        body = json.dumps({"txid": self.txid, "host": socket.gethostname(), "pid": os.getpid(),
                           "renewed": _now_iso()}).encode()
        s3.call(self.uri, f"writing {self.base}{LEASE}", client.put_object, Bucket=self.uri.bucket,
                Key=self.base + LEASE, Body=body)

    def _renew(self) -> None:
        client = s3.make_client(self.uri)  # its own connection pool, not shared with the uploads
        while not self._stop.wait(LEASE_RENEW_S):
            try:
                self._write_lease(client)
            except Exception:  # the uploads notice a dead store themselves
                pass

    # -- 1. stage ------------------------------------------------------------------------------------------
    def stage(self, rel: str, body: bytes | Path, digest: str) -> None:
        self.bytes_written += s3.put_verified(self.client, self.uri, self.base + FILES + rel, body, digest)
        self.staged += 1
        pause_point(f"publish-upload-{self.staged}")

    def prepare(self, *, new_versions: list[int], copies: list[tuple[str, str]], config: str | None,
                pinned: bytes | None, original: str | None, prune: list[int]) -> None:
        if pinned is not None and original is not None:
            s3.copy_verified(self.client, self.uri, self.uri.key(self.model, CONFIG), self.base + ORIGINAL, original)
        self._pinned_bytes = pinned
        self.record = Record(self.txid, self.model, socket.gethostname(), os.getpid(), _now_iso(),
                             sorted(new_versions), [[r, d] for r, d in copies], config,
                             hashlib.sha256(pinned).hexdigest() if pinned is not None else None,
                             original, sorted(prune))
        body = (json.dumps(asdict(self.record), indent=1) + "\n").encode()
        s3.put_verified(self.client, self.uri, self.base + RECORD, body, hashlib.sha256(body).hexdigest())

    # -- 2.-5. commit ----------------------------------------------------------------------------------------
    def commit(self) -> list[int]:
        """Pin, copy, flip, prune, clean; returns the pruned versions."""
        rec = self.record
        assert rec is not None, "prepare() first"
        if self._pinned_bytes is not None:
            s3.put_verified(self.client, self.uri, self.uri.key(self.model, CONFIG), self._pinned_bytes,
                            rec.pinned or "")
            self.objects_written += 1
        n = 0
        for rel, digest in rec.copies:
            if version_of(rel) in rec.new_versions:
                _copy_in(self.client, self.uri, self.base, self.model, rel, digest)
                self.objects_written += 1
                n += 1
                pause_point(f"publish-copy-{n}")
        self.committing = True
        _put_marker(self.client, self.uri, self.base + COMMITTING)
        pause_point("publish-committing")
        n = 0
        for rel, digest in rec.copies:
            if version_of(rel) not in rec.new_versions:
                _copy_in(self.client, self.uri, self.base, self.model, rel, digest)
                self.objects_written += 1
                n += 1
                pause_point(f"publish-top-{n}")
        if rec.config is not None:
            _copy_in(self.client, self.uri, self.base, self.model, CONFIG, rec.config)
            self.objects_written += 1
        _prune(self.client, self.uri, self.model, rec.prune)
        self._stop_lease()  # before the lease is deleted: a renewal after it would leave it behind
        _delete_staging(self.client, self.uri, self.base)
        self.done = True
        self._unlink_lock()
        return rec.prune


def _ignore_sigterm() -> Callable[[], None]:
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    return lambda: signal.signal(signal.SIGTERM, previous)


def _put_marker(client: Any, uri: S3URI, key: str) -> None:
    s3.call(uri, f"writing {key}", client.put_object, Bucket=uri.bucket, Key=key, Body=b"")


def _copy_in(client: Any, uri: S3URI, base: str, model: str, rel: str, digest: str) -> None:
    s3.copy_verified(client, uri, base + FILES + rel, uri.key(model, rel), digest)


def _prune(client: Any, uri: S3URI, model: str, versions: list[int]) -> None:
    for v in versions:
        keys = sorted(s3.list_raw(client, uri, uri.key(model, str(v)) + "/"))
        s3.delete_keys(client, uri, keys, f"pruning version {v} of {model}")


def _delete_staging(client: Any, uri: S3URI, base: str) -> int:
    """Delete a transaction's staged objects: the record first (a half-deleted staging area without it is
    plain garbage to the next run), the lease last (its presence marks the area)."""
    keys = sorted(s3.list_raw(client, uri, base))
    first = [k for k in keys if k == base + RECORD]
    last = [k for k in keys if k == base + LEASE]
    for group in (first, [k for k in keys if k not in first and k not in last], last):
        if group:
            s3.delete_keys(client, uri, group, f"removing {base}")
    return len(keys)


# -- the other side: what a dead transaction left ------------------------------------------------------------

def _read_record(client: Any, uri: S3URI, base: str) -> Record:
    """The staged transaction.json. A PUT is atomic, so it is whole or absent; one this version of repogen
    cannot read must not be guessed at (the config may be pinned, a version half copied)."""
    resp = s3.call(uri, f"reading {base}{RECORD}", client.get_object, Bucket=uri.bucket, Key=base + RECORD)
    body = resp["Body"].read()
    try:
        data = json.loads(body)
        if data.get("format") != RECORD_FORMAT:
            raise ValueError(f"format {data.get('format')!r}, this repogen reads {RECORD_FORMAT}")
        return Record(**data)
    except (ValueError, TypeError, AttributeError) as exc:
        raise StorageError(f"s3://{uri.bucket}/{base}{RECORD}: cannot read this unfinished transaction ({exc}); "
                           "repair it with the repogen that wrote it") from exc


def recover(client: Any, uri: S3URI, model: str, base: str, live_record: Record | None = None) -> str:
    """Finish or undo the transaction staged under ``base``; returns what was done, in words."""
    keys = s3.list_raw(client, uri, base)
    rec = live_record if live_record is not None else (_read_record(client, uri, base) if base + RECORD in keys
                                                        else None)  # no record: nothing outside was touched
    if rec is None:
        n = _delete_staging(client, uri, base)
        return f"removed {n} staged object(s) of an upload that had not changed the repository"
    if base + COMMITTING not in keys:
        # Undo: the new versions' objects first (the pinned config hides them meanwhile), then the config.
        doomed = sorted(uri.key(model, r) for r, _ in rec.copies if version_of(r) in rec.new_versions)
        present = [k for k in doomed if s3.recorded_sha256(client, uri, k) is not None]
        s3.delete_keys(client, uri, present, f"rolling back version(s) {rec.new_versions} of {model}")
        restored = ""
        if rec.pinned and s3.recorded_sha256(client, uri, uri.key(model, CONFIG)) == rec.pinned:
            if rec.original and base + ORIGINAL in keys:
                s3.copy_verified(client, uri, base + ORIGINAL, uri.key(model, CONFIG), rec.original)
                restored = f", {CONFIG} restored"
        n = _delete_staging(client, uri, base)
        versions = ", ".join(str(v) for v in rec.new_versions) or "-"
        return (f"rolled back an unfinished publish of version {versions} ({rec.owner()}): removed "
                f"{len(present)} copied object(s){restored} and {n} staged object(s)")
    # Roll forward: everything is staged, the store may already hold part of it.
    copied = 0
    for rel, digest in [*rec.copies, *([[CONFIG, rec.config]] if rec.config else [])]:
        if s3.recorded_sha256(client, uri, uri.key(model, rel)) != digest:
            if base + FILES + rel not in keys:
                raise StorageError(f"{uri}: cannot finish transaction {rec.txid} of {model}: {rel} is neither in "
                                   f"place nor staged; delete {base} by hand and publish again")
            _copy_in(client, uri, base, model, rel, digest)
            copied += 1
    _prune(client, uri, model, rec.prune)
    n = _delete_staging(client, uri, base)
    versions = ", ".join(str(v) for v in rec.new_versions) or "-"
    return (f"completed a publish of version {versions} that had passed its commit point ({rec.owner()}): "
            f"copied {copied} object(s), removed {n} staged object(s)")


@dataclass
class Leftover:
    model: str
    txid: str
    base: str
    rows: dict[str, dict]


def leftovers(client: Any, uri: S3URI, models: list[str]) -> list[Leftover]:
    """Transactions staged for ``models`` that are not this process's."""
    found = []
    if uri.prefix:
        start = f"{uri.prefix}{STAGE}/"
        rows = s3.list_raw(client, uri, start)
        groups: dict[tuple[str, str], dict[str, dict]] = {}
        for key, row in rows.items():
            parts = key[len(start):].split("/", 2)
            if len(parts) >= 2 and parts[0] in models:
                groups.setdefault((parts[0], parts[1]), {})[key] = row
        for (model, txid), g in sorted(groups.items()):
            found.append(Leftover(model, txid, f"{start}{model}/{txid}/", g))
        return found
    for model in models:
        start = stage_root(uri, model)
        groups = {}
        for key, row in s3.list_raw(client, uri, start).items():
            txid = key[len(start):].split("/", 1)[0]
            groups.setdefault(txid, {})[key] = row
        found.extend(Leftover(model, t, f"{start}{t}/", g) for t, g in sorted(groups.items()))
    return found


def pinned_digests(client: Any, uri: S3URI, model: str) -> set[str]:
    """sha256 of the configs that unfinished transactions of ``model`` pinned: such a config is the store's
    legitimate state until the transaction is finished or undone, though repogen.json does not record it."""
    found = set()
    for lo in leftovers(client, uri, [model]):
        if lo.base + RECORD in lo.rows:
            try:
                rec = _read_record(client, uri, lo.base)
            except StorageError:
                continue
            if rec.pinned:
                found.add(rec.pinned)
    return found


def staged_models(client: Any, uri: S3URI) -> list[str]:
    """Models with staged transactions under a prefixed repository (a bucket-root one keeps them inside the
    model folders, which the caller lists anyway)."""
    if not uri.prefix:
        return []
    start = f"{uri.prefix}{STAGE}/"
    return sorted({k[len(start):].split("/", 1)[0] for k in s3.list_raw(client, uri, start)})


def _server_age(client: Any, uri: S3URI, key: str) -> tuple[Any, float] | None:
    """(LastModified, age in seconds by the store's clock) of an object, None when missing."""
    ClientError = require("botocore.exceptions", extra="s3").ClientError

    try:
        head = client.head_object(Bucket=uri.bucket, Key=key)
    except ClientError:
        return None
    modified = head["LastModified"]
    date = (head.get("ResponseMetadata", {}).get("HTTPHeaders") or {}).get("date")
    now = email.utils.parsedate_to_datetime(date).timestamp() if date else time.time()
    return modified, max(0.0, now - modified.timestamp())


def _lease_owner(client: Any, uri: S3URI, lo: Leftover) -> str:
    ClientError = require("botocore.exceptions", extra="s3").ClientError

    try:
        data = json.loads(client.get_object(Bucket=uri.bucket, Key=lo.base + LEASE)["Body"].read())
        return f"pid {data.get('pid')} on {data.get('host')}"
    except (ClientError, ValueError, AttributeError):
        return "an unknown process"


def clean_leftover(client: Any, uri: S3URI, lo: Leftover, say: Say) -> str:
    """Decide whether the transaction's owner is dead (waiting out its lease when it runs elsewhere), then
    :func:`recover` it; returns one line naming what was done. A live owner is an error."""
    where = f"{uri.child(lo.model).text}"
    fd = try_lock(_lock_path(lo.txid)) if os.path.lexists(_lock_path(lo.txid)) else None
    if os.path.lexists(_lock_path(lo.txid)) and fd is None:
        raise StorageError(f"{where}: another repogen publish on this machine is writing this model "
                           f"(transaction {lo.txid}); wait for it to finish")
    try:
        if fd is None:
            _wait_for_lease(client, uri, lo, say)
        line = recover(client, uri, lo.model, lo.base)
        try:
            os.unlink(_lock_path(lo.txid))
        except OSError:
            pass
        return f"{lo.model}: {line}"
    finally:
        if fd is not None:
            os.close(fd)


def _wait_for_lease(client: Any, uri: S3URI, lo: Leftover, say: Say) -> None:
    first = _server_age(client, uri, lo.base + LEASE)
    if first is None:  # no lease: a staging area half-deleted by a cleanup that was itself killed
        return
    modified, age = first
    if age > LEASE_EXPIRY_S:
        return
    owner = _lease_owner(client, uri, lo)
    wait = LEASE_EXPIRY_S - age + 1.0
    say(f"{lo.model}: transaction {lo.txid} ({owner}) renewed its lease {age:.0f} s ago; waiting up to "
        f"{wait:.0f} s for it to expire")
    time.sleep(wait)
    again = _server_age(client, uri, lo.base + LEASE)
    if again is not None and again[0] != modified:
        raise StorageError(f"{uri.child(lo.model).text}: another repogen publish ({owner}) is writing this model "
                           f"(transaction {lo.txid}, lease renewed); wait for it to finish")
