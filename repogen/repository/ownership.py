"""What a build may replace under ``--out``: only model folders a previous repogen build wrote.

A path ``OUT/NAME`` that already exists is one of:

- a model folder repogen wrote: a real folder holding ``config.pbtxt`` and a ``repogen.json`` mark that names
  the same model and lists every file in the folder with the sha256 repogen wrote it with. A *new* version is
  added beside the versions already there (no ``--force`` needed); rebuilding a version that exists needs
  ``--force`` and replaces that version only;
- anything else (a Paddle model file, a spec file, a symlink, a folder some other tool or a person made, a
  folder holding a file the mark does not list or whose content changed, a copied mark): refused, ``--force``
  or not. Deleting those would destroy a user's files, which a build never does.

Triton serves the versions of one model with one ``config.pbtxt``, so versions kept beside a new one must
have been built for the same target, inputs, outputs and max batch size; and because Triton serves only
the highest version by default, a rebuilt version must be the highest one (otherwise the new build would
not be what clients get, and the manifest would describe a version nobody serves).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repogen.errors import ConfigError
from repogen.repository.layout import CONFIG, MANIFEST
from repogen.repository.manifest import sha256
# manifest keys that must agree between versions sharing one config.pbtxt
_SHARED_KEYS = ("target", "inputs", "outputs", "max_batch_size")


@dataclass
class Existing:
    """A repogen-made model folder that a build writes into."""

    path: Path
    manifest: dict[str, Any]
    versions: list[int]  # numeric version folders present


def _read_manifest(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def owned_model(path: Path, name: str) -> Existing | None:
    """The repogen-made model folder at ``path``; None when ``path`` is anything else."""
    found, _ = examine(path, name)
    return found


def examine(path: Path, name: str) -> tuple[Existing | None, str]:
    """(the repogen-made model folder at ``path`` or None, and why not)."""
    if path.is_symlink():
        return None, "a symlink"
    if not path.is_dir():
        return None, "a file"
    data = _read_manifest(path)
    if not (path / CONFIG).is_file() or data is None or "repogen_version" not in data:
        return None, "a folder repogen did not write (no repogen.json mark)"
    if data.get("model_name") != name:
        return None, f"a folder repogen wrote for model {data.get('model_name')!r}, not {name!r}"
    listed = data.get("files")
    if not isinstance(listed, dict):
        return None, ("a folder an older repogen wrote without recording its files, so what it holds cannot be "
                      "told apart from a user's files; move it away yourself")
    present = sorted(rel for f in path.rglob("*") if (f.is_file() or f.is_symlink())
                     and (rel := f.relative_to(path).as_posix()) != MANIFEST)
    unlisted = [f for f in present if f not in listed]
    if unlisted:
        return None, f"a folder holding files repogen did not write there ({', '.join(unlisted[:3])})"
    for rel in present:
        f = path / rel
        if f.is_symlink() or sha256(f) != listed[rel]:
            return None, f"a folder whose {rel} changed since repogen wrote it"
    versions = sorted(int(p.name) for p in path.iterdir() if p.is_dir() and p.name.isdigit())
    return Existing(path, data, versions), ""


def check_destination(out: Path, name: str, version: int, force: bool) -> Existing | None:
    """Raise ConfigError unless a build of ``name``/``version`` may write ``out/name``.

    Returns the existing model folder whose other versions the build keeps, or None for a new model.
    """
    dest = out / name
    if not (dest.exists() or dest.is_symlink()):
        return None
    existing, what = examine(dest, name)
    if existing is None:
        raise ConfigError(f"{dest}: exists and is {what}; repogen only replaces model folders it built, "
                          "even with --force: choose another --name or --out")
    higher = [v for v in existing.versions if v > version]
    if higher:
        raise ConfigError(f"{dest}: has version {max(higher)} above version {version}; Triton serves only the "
                          f"latest version, so use --version-folder {max(existing.versions) + 1}")
    if version in existing.versions and not force:
        raise ConfigError(f"{dest}: model {name} version {version} already exists; pass --force to replace it "
                          f"(other versions are kept), or --version-folder {max(existing.versions) + 1} to add "
                          "a new version beside it")
    return existing


def check_compatible(existing: Existing, version: int, new_manifest: dict[str, Any]) -> list[int]:
    """Versions of ``existing`` kept beside ``version``; refuses ones the new config.pbtxt could not serve."""
    kept = [v for v in existing.versions if v != version]
    if not kept:
        return kept
    new = json.loads(json.dumps(new_manifest))  # the same plain types the old one was read back as
    differ = [k for k in _SHARED_KEYS if existing.manifest.get(k) != new.get(k)]
    if differ:
        listed = ", ".join(str(v) for v in kept)
        raise ConfigError(f"{existing.path}: version(s) {listed} were built with a different "
                          f"{', '.join(differ)} than version {version}; all versions of a model share one "
                          "config.pbtxt, so build this one under another --name (or remove the old versions)")
    return kept


def _link_or_copy(src: str, dst: str) -> None:
    # Hard links: a kept plan of several GB costs nothing, and files are never written in place.
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def carry_over(existing: Existing, staged: Path) -> list[str]:
    """Put every entry of the old model folder that the new build did not write into ``staged``."""
    carried = []
    for entry in sorted(existing.path.iterdir()):
        if entry.name in (CONFIG, MANIFEST):  # the build writes both anew (never through a link to the old ones)
            continue
        target = staged / entry.name
        if target.exists() or target.is_symlink():
            continue  # written by this build: config.pbtxt, repogen.json, labels, the rebuilt version
        if entry.is_symlink():
            os.symlink(os.readlink(entry), target)
        elif entry.is_dir():
            shutil.copytree(entry, target, symlinks=True, copy_function=_link_or_copy)
        else:
            _link_or_copy(str(entry), str(target))
        carried.append(entry.name)
    return carried
