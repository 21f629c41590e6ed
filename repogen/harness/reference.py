"""Expected outputs from Paddle Inference (CPU) on the source model a manifest names (repogen.reference runs it)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from repogen.errors import ConfigError, ModelFormatError
from repogen.harness.model_files import ModelFolder
from repogen.ir import ModelSource
from repogen.paddle.loader import detect
from repogen.reference import ReferenceRunner
from repogen.repository.manifest import sha256


def _files(source: ModelSource) -> list[Path]:
    files = [source.model_file] + ([source.params_file] if source.params_file else [])
    if source.format == "fluid-separate":  # one file per parameter beside __model__
        files += [f for f in source.model_file.parent.iterdir() if f.is_file() and f != source.model_file]
    return files


def source_model(model: ModelFolder) -> ModelSource:
    """The manifest's source model when it still matches the recorded hashes, else the copy in the version folder."""
    source = model.manifest.get("source") or {}
    recorded: dict[str, str] = source.get("files") or {}
    candidates: list[Path] = []
    if source.get("path"):
        p = Path(source["path"])
        # normalised: messages name /a/b/inference.json, not /repo/m/../../a/b/inference.json
        candidates += [p] if p.is_absolute() else [Path(os.path.normpath(model.path / p)),
                                                    Path(os.path.normpath(Path.cwd() / p))]
    candidates.append(model.version_dir)
    problems = []
    for cand in candidates:
        try:
            found = detect(cand)
        except ModelFormatError as exc:
            problems.append(str(exc))
            continue
        changed = [f.name for f in _files(found) if f.name in recorded and sha256(f) != recorded[f.name]]
        if changed:
            problems.append(f"{cand}: {', '.join(sorted(changed))} changed since the build (sha256 differs from "
                            "repogen.json)")
            continue
        return found
    raise ConfigError(f"{model.path / 'repogen.json'}: no usable Paddle source model for the reference: " + "; ".join(problems))


def source_files(model: ModelFolder) -> tuple[Path, Path | None]:
    """(graph file, params file) of ``source_model``."""
    found = source_model(model)
    return found.model_file, found.params_file


class PaddleReference:
    """One reference runner per model (a child process: repogen.reference.runner), fed by name, or by
    position when Triton renamed tensors. Paddle's failures raise PaddleReferenceError."""

    def __init__(self, model: ModelFolder):
        source = source_model(model)
        self.model = model
        self.graph = source.model_file
        self.runner = ReferenceRunner(source)
        self.in_names = self._pair([s.name for s in model.inputs], self.runner.input_names, "input")
        self.out_names = self._pair([s.name for s in model.outputs], self.runner.output_names, "output")

    def _pair(self, triton: list[str], paddle: list[str], what: str) -> dict[str, str]:
        renamed = self.model.manifest.get("paddle_names") or {}  # build --input-names/--output-names
        if renamed and all(renamed.get(t, t) in paddle for t in triton):
            return {t: renamed.get(t, t) for t in triton}
        if set(triton) <= set(paddle):
            return {t: t for t in triton}
        if len(triton) != len(paddle):
            self.runner.close()
            raise ConfigError(f"{self.graph}: Paddle model has {what}s {paddle}, config.pbtxt has {triton}")
        return dict(zip(triton, paddle))

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = self.runner.run({p: feeds[t] for t, p in self.in_names.items()})
        return {t: out[p] for t, p in self.out_names.items()}

    def close(self) -> None:
        self.runner.close()
