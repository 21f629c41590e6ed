"""The one writer of model folders: every folder a build makes (a plan, a Python-backend model, a stand-in, a
partition's parts and ensemble, pipeline stages, an OCR system) is first described as a :class:`ModelFolder`,
then written here, into the build's staging folder, with the one ownership mark (``repogen.json``).

The mark records every file repogen wrote in the folder with its sha256 (``files``), so a later ``--force``
replaces only what repogen wrote (repogen.repository.ownership), and other versions of an existing folder are
carried over into the staged copy (hard-linked, never written in place).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from repogen import __version__
from repogen.errors import ConfigError
from repogen.repository import ownership, staging
from repogen.repository.config import parse_config
from repogen.repository.layout import CONFIG, MANIFEST, ROLES
from repogen.repository.manifest import dumps, sha256_bytes, sha256


@dataclass
class ModelFolder:
    """Everything one model folder holds, decided before anything is written."""

    name: str
    role: str  # layout.ROLES
    config: str  # config.pbtxt, rendered from the templates and checked
    version: int = 1
    files: dict[str, bytes | Path] = field(default_factory=dict)  # path in the folder -> bytes, or a file to copy
    manifest: dict[str, Any] = field(default_factory=dict)  # repogen.json (the writer adds role and files)

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"model folder {self.name}: unknown role {self.role!r}")
        parsed = parse_config(self.config, f"{self.name}/{CONFIG}")  # Triton's own schema, before anything is written
        if parsed.name != self.name:
            raise ConfigError(f"{self.name}/{CONFIG}: names model {parsed.name!r}; Triton needs the folder's name")
        for rel in self.files:
            parts = Path(rel).parts
            if Path(rel).is_absolute() or ".." in parts or rel in (CONFIG, MANIFEST):
                raise ValueError(f"model folder {self.name}: file {rel!r} cannot be written by a build")


def destination(out: Path, folder: ModelFolder, force: bool) -> ownership.Existing | None:
    """Raise ConfigError unless ``folder`` may be written to ``out`` (see ownership.check_destination)."""
    return ownership.check_destination(out, folder.name, folder.version, force)


def write_folder(folder: ModelFolder, stage_dir: Path, out: Path, force: bool) -> list[str]:
    """Write ``folder`` into ``stage_dir/<name>``; the files it holds (relative paths), for the build's report.

    ``out`` is where it will be committed: an existing folder there must be one repogen wrote (checked again
    here, as the repository may have changed since the build started), and its other versions are kept."""
    existing = destination(out, folder, force)
    root = stage_dir / folder.name
    if root.exists():
        raise ConfigError(f"{folder.name}: two model folders of this build have the same name")
    root.mkdir(parents=True)
    (root / str(folder.version)).mkdir()  # Triton wants a version folder, empty for an ensemble
    written = {CONFIG: _write(root / CONFIG, folder.config.encode("utf-8"))}
    for rel, content in sorted(folder.files.items()):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        written[rel] = _write(path, content) if isinstance(content, bytes) else _copy(content, path)
    staging.pause_point("copy")
    manifest = json.loads(json.dumps(folder.manifest))  # plain JSON types, as a later build reads it back
    manifest.setdefault("repogen_version", __version__)
    manifest.update(model_name=folder.name, version=folder.version, role=folder.role)
    if existing is not None:
        ownership.check_compatible(existing, folder.version, manifest)
        carried = ownership.carry_over(existing, root)
        old_files = existing.manifest.get("files") or {}
        for entry in carried:  # the kept versions stay in the mark with the hashes repogen wrote them with
            written.update({rel: h for rel, h in old_files.items() if rel == entry or rel.startswith(entry + "/")})
    manifest["files"] = dict(sorted(written.items()))
    (root / MANIFEST).write_text(dumps(manifest), encoding="utf-8")
    return sorted([*written, MANIFEST])


def _write(path: Path, content: bytes) -> str:
    path.write_bytes(content)
    return sha256_bytes(content)


def _copy(src: Path, dst: Path) -> str:
    shutil.copyfile(src, dst)  # a copy, not a link: the user's model files and the served ones stay apart
    return sha256(dst)
