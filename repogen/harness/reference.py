"""Expected outputs from Paddle Inference (CPU) on the source model a manifest names."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from repogen.errors import ConfigError, ModelFormatError
from repogen.harness.model_files import ModelFolder
from repogen.triton.manifest import sha256

_GRAPH_SUFFIXES = (".json", ".pdmodel")
_NOT_GRAPHS = {"repogen.json", "config.json"}


def _graph_and_params(path: Path) -> tuple[Path, Path | None] | None:
    """(graph file, params file) for a model directory, a graph file, or a path prefix."""
    if path.is_dir():
        graphs = sorted(p for p in path.iterdir() if p.suffix in _GRAPH_SUFFIXES and p.name not in _NOT_GRAPHS)
        # Paddle 3 writes both for some exports; the PIR .json is the one Paddle Inference prefers
        graphs.sort(key=lambda p: (p.suffix != ".json", p.name))
        if not graphs:
            return None
        graph = graphs[0]
    elif path.is_file():
        graph = path
    else:
        graph = next((path.with_name(path.name + s) for s in _GRAPH_SUFFIXES if path.with_name(path.name + s).is_file()), None)
        if graph is None:
            return None
    params = graph.with_suffix(".pdiparams")
    return graph, (params if params.is_file() else None)


def source_files(model: ModelFolder) -> tuple[Path, Path | None]:
    """The manifest's source model when it still matches the recorded hashes, else the copy in the version folder."""
    source = model.manifest.get("source") or {}
    recorded: dict[str, str] = source.get("files") or {}
    candidates: list[Path] = []
    if source.get("path"):
        p = Path(source["path"])
        candidates += [p] if p.is_absolute() else [model.path / p, Path.cwd() / p]
    candidates.append(model.version_dir)
    problems = []
    for cand in candidates:
        found = _graph_and_params(cand)
        if found is None:
            problems.append(f"{cand}: no Paddle model files")
            continue
        changed = [f.name for f in found if f is not None and f.name in recorded and sha256(f) != recorded[f.name]]
        if changed:
            problems.append(f"{cand}: {', '.join(changed)} changed since the build (sha256 differs from repogen.json)")
            continue
        return found
    raise ConfigError(f"{model.path / 'repogen.json'}: no usable Paddle source model for the reference: " + "; ".join(problems))


class PaddleReference:
    """One Paddle Inference predictor per model, fed by name (or by position when Triton renamed tensors)."""

    def __init__(self, model: ModelFolder):
        import paddle.inference as pi

        graph, params = source_files(model)
        cfg = pi.Config(str(graph), str(params)) if params else pi.Config(str(graph))
        cfg.disable_gpu()
        cfg.disable_glog_info()
        cfg.set_cpu_math_library_num_threads(1)
        try:
            self.predictor = pi.create_predictor(cfg)
        except Exception as exc:  # Paddle raises its own untyped errors
            raise ModelFormatError(graph, f"Paddle Inference could not load it: {exc}") from exc
        self.model = model
        self.graph = graph
        self.in_names = self._pair([s.name for s in model.inputs], self.predictor.get_input_names(), "input")
        self.out_names = self._pair([s.name for s in model.outputs], self.predictor.get_output_names(), "output")

    def _pair(self, triton: list[str], paddle: list[str], what: str) -> dict[str, str]:
        if set(triton) <= set(paddle):
            return {t: t for t in triton}
        if len(triton) != len(paddle):
            raise ConfigError(f"{self.graph}: Paddle model has {what}s {paddle}, config.pbtxt has {triton}")
        return dict(zip(triton, paddle))

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        for tname, pname in self.in_names.items():
            handle = self.predictor.get_input_handle(pname)
            handle.reshape(list(feeds[tname].shape))
            handle.copy_from_cpu(np.ascontiguousarray(feeds[tname]))
        self.predictor.run()
        return {t: self.predictor.get_output_handle(p).copy_to_cpu() for t, p in self.out_names.items()}
