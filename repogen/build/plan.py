"""One build plan per model: what the model becomes, decided once, with the reasons; every later step (the
writer, the summary, ``repogen.json``, ``validate``, ``manifests``) reads this record instead of deciding again.

The target is chosen in one place, :class:`TargetChoice`: what the user asked for, what this machine and the
model allow (TensorRT installed, every op converts, the model partitions), and what a builder said when it was
asked to build. Each change is recorded with its reason, and the warnings a person sees are made here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from repogen.build.spec import ModelSpec
from repogen.errors import ConfigError
from repogen.repository.writer import ModelFolder

#: what the folders of each target need to be served (manifests and the container harness pick the image)
BACKENDS = {"tensorrt": "tensorrt", "paddle": "python", "numpy": "python", "python": "python",
            "ensemble": "ensemble"}

_PADDLE = "the paddle target (Triton Python backend running Paddle Inference)"


@dataclass
class TargetChoice:
    """The target of one model and why; the one place that changes it."""

    requested: str  # what the spec asked: tensorrt | paddle | numpy | auto
    target: str  # what is built: tensorrt | paddle | numpy | ensemble
    why: str
    warn: Callable[[str], None] = field(default=lambda msg: None, repr=False)
    history: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, spec: ModelSpec, tensorrt_reason: str | None, warn: Callable[[str], None]) -> "TargetChoice":
        """``tensorrt_reason``: why TensorRT is unavailable on this machine, None when it is available."""
        if spec.target in ("paddle", "numpy"):
            return cls(spec.target, spec.target, f"--target {spec.target}", warn)
        if spec.target == "tensorrt":
            if tensorrt_reason is not None:
                raise ConfigError(f"--target tensorrt ({spec.name}): {tensorrt_reason}; install TensorRT on a machine "
                                  "with an NVIDIA GPU (docker/Dockerfile.build), or use --target paddle for a CPU "
                                  "model")
            return cls("tensorrt", "tensorrt", "--target tensorrt", warn)
        if tensorrt_reason is not None:  # the build announced it once for every such model
            return cls("auto", "paddle", f"TensorRT unavailable ({tensorrt_reason})", warn)
        return cls("auto", "tensorrt", "TensorRT available", warn)

    def _change(self, target: str, why: str, message: str | None) -> None:
        self.history.append(f"{self.target}: {self.why}")
        self.target, self.why = target, why
        if message:
            self.warn(message)

    def ops_without_converter(self, name: str, find_missing: Callable[[], list[str]]) -> None:
        """--target auto with TensorRT at hand and no partitioning: a model with ops TensorRT cannot express is
        still served, whole, by the paddle target. ``find_missing`` runs only when it can change the target."""
        if self.requested != "auto" or self.target != "tensorrt":
            return
        missing = find_missing()
        if missing:
            self._change("paddle", f"no TensorRT converter for {', '.join(missing)}",
                         f"WARNING: {name}: no TensorRT converter for {', '.join(missing)}: --target auto builds "
                         f"{_PADDLE} instead")

    def partitioned(self, why: str) -> None:
        self._change("ensemble", why, None)

    def builder_refused(self, name: str, reason: str, precision: str) -> bool:
        """The TensorRT builder refused the whole model: under auto the paddle target serves it (not int8).
        False when nothing can take its place (the caller raises the builder's error)."""
        if self.requested != "auto" or precision == "int8":
            return False
        self._change("paddle", f"the TensorRT builder could not build it ({reason})",
                     f"WARNING: {name}: the TensorRT builder could not build this model ({reason}): --target auto "
                     f"builds {_PADDLE} instead")
        return True

    def to_dict(self) -> dict[str, Any]:
        return {"requested": self.requested, "target": self.target, "why": self.why, "earlier": list(self.history)}


@dataclass
class ModelPlan:
    """What one model of a build becomes: its target and why, precision, profiles, the folders to write (the
    model, a partition's parts, pipeline stages) and the numeric check, decided before anything is written."""

    spec: ModelSpec
    choice: TargetChoice
    precision: str
    max_batch_size: int
    profiles: list[dict]
    folders: list[ModelFolder]  # the model's own folder first
    check: dict[str, Any]
    warnings: list[str]
    started: float
    partition: dict[str, Any] | None = None  # partitioned models: ops in TensorRT and why the others are not
    engine: Any = None  # repogen.repository.config.EngineDesc of the model's own folder
    plan_bytes: bytes | None = None  # --add-plan: the plan, merged into the existing folder instead
    manifest: dict[str, Any] | None = None
    pipeline_models: list[Any] = field(default_factory=list)  # repogen.pipelines GeneratedModels (an OCR system)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def target(self) -> str:
        return self.choice.target
