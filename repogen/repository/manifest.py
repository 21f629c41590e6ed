"""``repogen.json``: what a model folder was built from, so the validation harness can find the reference.

Schema (docs/triton.md has the prose)::

    {"repogen_version", "model_name", "version", "target": "tensorrt"|"paddle",
     "format": "fluid-separate"|"fluid-combined"|"paddle2"|"pir",
     "source": {"path": <model file, relative to this model folder>, "files": {filename: sha256},
                "in_version_folder": bool},
     "precision": "fp32"|"fp16"|"int8", "tolerance": <repogen.verify.tolerances.Rule.to_dict()>, "max_batch_size",
     "inputs"/"outputs": [{"name", "dtype", "shape"}]  (numpy dtypes, full shapes, -1 dynamic),
     "profiles": [{input: {"min", "opt", "max"}}],
     "tensorrt": null | {"version", "compute_capability", "cc_model_filenames": {cc: file}}}

The source path is relative to the model folder so that a repository and its sources moved together (a
checkout, sample_repo/) keep a valid, machine-independent manifest; no timestamps, so rebuilding gives
identical bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from repogen import __version__
from repogen.repository.config import EngineDesc
from repogen.repository.layout import MANIFEST  # noqa: F401 - the file this module describes



def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def source_files(graph: Any) -> list[Path]:
    """The files Paddle Inference needs: model + combined params, or model + one file per parameter."""
    src = graph.source
    files = [src.model_file]
    if src.params_file is not None:
        files.append(src.params_file)
    else:
        files += sorted(src.model_file.parent / n for n in graph.params if (src.model_file.parent / n).is_file())
    return files


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def manifest(*, name: str, version: int, target: str, fmt: str, model_file: Path, source_files: list[Path],
             model_dir: Path, in_version_folder: bool, precision: str, max_batch_size: int,
             engine: EngineDesc, tensorrt: dict[str, Any] | None, tolerance: dict[str, Any]) -> dict[str, Any]:
    """``model_dir`` is the model folder's *final* location (relative source paths are computed from it);
    ``tolerance``: the rule the model's answers are judged by (repogen.verify.tolerances.Rule.to_dict())."""
    return {
        "repogen_version": __version__,
        "model_name": name,
        "version": version,
        "target": target,
        "format": fmt,
        "source": {
            "path": Path(os.path.relpath(model_file.resolve(), model_dir.resolve())).as_posix(),
            "files": {p.name: sha256(p) for p in source_files},
            "in_version_folder": in_version_folder,
        },
        "precision": precision,
        "tolerance": tolerance,
        "max_batch_size": max_batch_size,
        "inputs": [{"name": t.name, "dtype": t.dtype, "shape": list(t.shape)} for t in engine.inputs],
        "outputs": [{"name": t.name, "dtype": t.dtype, "shape": list(t.shape)} for t in engine.outputs],
        "profiles": [{k: {"min": list(v[0]), "opt": list(v[1]), "max": list(v[2])} for k, v in p.items()}
                     for p in engine.profiles],
        "tensorrt": tensorrt,
    }


def dumps(data: dict[str, Any]) -> str:
    """Indented JSON with shapes kept on one line ([-1, 3, 32, 32]) so a manifest reads at a glance."""
    text = json.dumps(data, indent=2)
    return re.sub(r"\[\s*(-?\d+(?:,\s*-?\d+)*)\s*\]", lambda m: "[" + ", ".join(m.group(1).split()).replace(",,", ",") + "]",
                  text) + "\n"
