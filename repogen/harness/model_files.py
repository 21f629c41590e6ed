"""What a generated model folder promises: its config.pbtxt, its repogen.json manifest, its test inputs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from repogen.errors import ConfigError
from repogen.reference.runner import default_memory_mb
from repogen.verify.inputs import random_array
from repogen.verify.tolerances import Rule, rule_for

# Triton data types -> (numpy dtype, tritonclient datatype string)
TRITON_DTYPES: dict[str, tuple[type, str]] = {
    "TYPE_FP32": (np.float32, "FP32"), "TYPE_FP16": (np.float16, "FP16"), "TYPE_FP64": (np.float64, "FP64"),
    "TYPE_INT8": (np.int8, "INT8"), "TYPE_INT16": (np.int16, "INT16"), "TYPE_INT32": (np.int32, "INT32"),
    "TYPE_INT64": (np.int64, "INT64"), "TYPE_UINT8": (np.uint8, "UINT8"), "TYPE_BOOL": (np.bool_, "BOOL"),
}


@dataclass
class TensorSpec:
    name: str
    dtype: type
    datatype: str  # tritonclient's spelling, e.g. "FP32"
    dims: list[int]  # without the batch dimension when the model batches


@dataclass
class ModelFolder:
    name: str
    path: Path
    config: model_config_pb2.ModelConfig
    manifest: dict
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]

    @property
    def max_batch_size(self) -> int:
        return int(self.config.max_batch_size)

    @property
    def rule(self) -> Rule:
        """How close this model's answers must be to Paddle's: the manifest's precision in the one tolerance
        table (repogen.verify.tolerances); a python-backend part runs Paddle itself (fp32)."""
        tolerance = self.manifest.get("tolerance") or {}
        precision = str(tolerance.get("precision") or self.manifest.get("precision") or "fp32")
        return rule_for(precision if precision in ("fp32", "fp16", "int8") else "fp32",
                        bool(tolerance.get("prequantized", False)) and precision != "int8")

    @property
    def version_dir(self) -> Path:
        version = self.manifest.get("version")
        if version is not None and (self.path / str(version)).is_dir():
            return self.path / str(version)
        numeric = sorted((p for p in self.path.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))
        if not numeric:
            raise ConfigError(f"{self.path}: no numeric version folder")
        return numeric[-1]


def parse_config(path: Path) -> model_config_pb2.ModelConfig:
    cfg = model_config_pb2.ModelConfig()
    try:
        text_format.Parse(path.read_text(), cfg)
    except (text_format.ParseError, OSError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    return cfg


def _specs(path: Path, tensors) -> list[TensorSpec]:
    out = []
    for t in tensors:
        type_name = model_config_pb2.DataType.Name(t.data_type)
        if type_name not in TRITON_DTYPES:
            raise ConfigError(f"{path}: tensor {t.name}: data_type {type_name} not supported by the harness")
        dtype, datatype = TRITON_DTYPES[type_name]
        out.append(TensorSpec(t.name, dtype, datatype, list(t.dims)))
    return out


def read_model_folder(path: Path) -> ModelFolder:
    cfg_path, man_path = path / "config.pbtxt", path / "repogen.json"
    if not cfg_path.is_file():
        raise ConfigError(f"{cfg_path}: missing")
    cfg = parse_config(cfg_path)
    try:
        manifest = json.loads(man_path.read_text()) if man_path.is_file() else {}
    except ValueError as exc:
        raise ConfigError(f"{man_path}: not JSON: {exc}") from exc
    name = cfg.name or path.name
    return ModelFolder(name, path, cfg, manifest, _specs(cfg_path, cfg.input), _specs(cfg_path, cfg.output))


def folder_role(folder: Path) -> str | None:
    """What repogen wrote the folder as (repogen.json "role": model, part, pre, post, pipeline, system), or None."""
    try:
        return json.loads((folder / "repogen.json").read_text()).get("role")
    except (OSError, ValueError, AttributeError):
        return None


def list_models(repo: Path, only: list[str] | None = None) -> list[str]:
    if not repo.is_dir():
        raise ConfigError(f"{repo}: model repository folder not found")
    found = sorted(p.name for p in repo.iterdir() if (p / "config.pbtxt").is_file())
    if not only:  # the parts of a partitioned model are validated through its ensemble, which loads them
        found = [n for n in found if folder_role(repo / n) != "part"]
    if only:
        missing = [m for m in only if m not in found]
        if missing:
            raise ConfigError(f"{repo}: no model folder for {', '.join(missing)} (found: {', '.join(found) or 'none'})")
        return list(only)
    if not found:
        raise ConfigError(f"{repo}: no model folders with a config.pbtxt")
    return found


# -- test inputs ---------------------------------------------------------------------------------------------------

def _profile_for(model: ModelFolder, name: str) -> dict | None:
    for prof in model.manifest.get("profiles") or []:
        if name in prof:
            return prof[name]
    return None


def _strip_batch(model: ModelFolder, spec: TensorSpec, shape: list[int]) -> list[int]:
    if model.max_batch_size > 0 and len(shape) == len(spec.dims) + 1:
        return list(shape[1:])
    return list(shape)


def sample_shape(model: ModelFolder, spec: TensorSpec, which: str) -> list[int]:
    """Non-batch shape (full shape when the model does not batch) for ``which`` in min/opt/max."""
    prof = _profile_for(model, spec.name)
    chosen = _strip_batch(model, spec, prof[which]) if prof and which in prof else None
    shape = []
    for i, d in enumerate(spec.dims):
        if d >= 0:
            shape.append(d)
        elif chosen is not None and i < len(chosen) and chosen[i] > 0:
            shape.append(int(chosen[i]))
        else:
            shape.append(1)
    return shape


def largest_batch(model: ModelFolder) -> int:
    """max_batch_size, capped by every input's profile maximum for the batch dimension."""
    mbs = model.max_batch_size
    if mbs <= 0:
        return 0
    for spec in model.inputs:
        prof = _profile_for(model, spec.name)
        if prof and "max" in prof and len(prof["max"]) == len(spec.dims) + 1 and prof["max"][0] > 0:
            mbs = min(mbs, int(prof["max"][0]))
    return mbs


def random_tensor(rng: np.random.Generator, dtype: type, shape: list[int]) -> np.ndarray:
    """One test tensor from the one generator (repogen.verify.inputs.random_array)."""
    return random_array(rng, dtype, shape)


IMAGE_SIZE_INPUTS = ("im_shape", "im_size")  # PaddleDetection's [h, w] of each image
SCALE_INPUTS = ("scale_factor",)  # PaddleDetection's [h, w] resize ratio of each image


def as_client_feeds(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """PaddleDetection-style size inputs set as a real client sets them: ``im_shape``/``im_size`` the image
    input's own H and W on every batch row, ``scale_factor`` ones (the image is not resized), dtypes kept.
    Random sizes such as (1, 7) clip every box of a 64x64 image to a few pixels, where NMS keeps near-tied
    boxes: a correct detector then differs from Paddle (relative error 0.4-0.6 on zoo yolo_head) for
    reasons no client meets. Left as they are when there is not exactly one 4-D (NCHW) image input."""
    images = [v for k, v in feeds.items() if v.ndim == 4 and k.lower() not in IMAGE_SIZE_INPUTS + SCALE_INPUTS]
    if len(images) != 1:
        return feeds
    image = images[0]
    out = dict(feeds)
    for name, v in feeds.items():
        if v.ndim != 2 or v.shape[-1] != 2 or v.shape[0] != image.shape[0]:
            continue
        if name.lower() in IMAGE_SIZE_INPUTS:
            out[name] = np.broadcast_to(np.asarray(image.shape[-2:]), v.shape).astype(v.dtype)
        elif name.lower() in SCALE_INPUTS:
            out[name] = np.ones(v.shape, v.dtype)
    return out


# the share of the reference's memory cap (a limit on its address space) a validation batch may bring it to
CAP_USE = 0.9
# what a reference child's address space holds beyond its resident memory before any run (Paddle's libraries and
# arenas: 1.47 GB for 0.32 GB resident with a small segmenter loaded, measured), where no probe measured it
ADDRESS_SPACE_MB = 1200


def pipeline_cost_mb(model: ModelFolder) -> tuple[float, float] | None:
    """(base MiB, MiB per input pixel) that ``repogen build`` measured for this model's pipeline (the pixel
    budget in its ``_pre`` stage's pipeline.json: repogen/pipelines/budget.py), or None."""
    pre = model.path.parent / f"{model.name}_pre"
    for data in sorted(pre.glob("[0-9]*/pipeline.json"), key=lambda p: -int(p.parent.name)):
        try:
            budget = json.loads(data.read_text()).get("budget") or {}
            return float(budget["base_mb"]), float(budget["bytes_per_pixel"]) / (1 << 20)
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue
    return None


def _pixels(shapes: dict[str, list[int]]) -> int:
    """Pixels of one sample's image: the last two dims of its largest 3-D input (C, H, W)."""
    images = [s for s in shapes.values() if len(s) == 3]
    return max((int(s[-1]) * int(s[-2]) for s in images), default=0)


def fitting_batch(largest: int, base_mb: float, per_sample_mb: float, memory_mb: int) -> int:
    """The largest batch up to ``largest`` whose reference run stays within ``CAP_USE`` of the memory cap: the
    address space it starts from (``base_mb``) + batch x per sample (at least 1: a single sample that does not
    fit is the reference's own memory error)."""
    room = memory_mb * CAP_USE - base_mb
    return max(1, min(largest, int(room // max(per_sample_mb, 1e-3))))


def _sample_cost_mb(model: ModelFolder, shapes: dict[str, list[int]], one: dict[str, np.ndarray],
                    probe: Callable[[dict[str, np.ndarray]], tuple[int, int] | None] | None
                    ) -> tuple[float, float] | None:
    """(address space MiB the reference starts from, MiB per sample) for this model, or None when nothing tells:
    the per-sample cost the build measured for the pipeline (a fresh process: nothing cached reads as free) where
    there is one, else the probe's resident growth for one sample; the start from the probe (the child as it is)."""
    found = probe(one) if probe is not None else None
    measured = pipeline_cost_mb(model) if _pixels(shapes) else None
    if found is None and measured is None:
        return None
    base = float(found[0]) if found is not None else measured[0] + ADDRESS_SPACE_MB
    sample_mb = sum(v.nbytes for v in one.values()) / (1 << 20)  # at least the sample itself
    per_sample = measured[1] * _pixels(shapes) if measured is not None else float(found[1])
    return base, max(per_sample, sample_mb)


def make_cases(model: ModelFolder, npz: dict[str, np.ndarray] | None = None, seed: int = 0, *,
               probe: Callable[[dict[str, np.ndarray]], tuple[int, int] | None] | None = None,
               memory_mb: int | None = None) -> dict[str, dict[str, np.ndarray]]:
    """Named input sets: batch 1 and the largest batch (or the profile's opt and max for non-batching models).

    The largest batch is the one the Paddle reference can run within its memory cap (``memory_mb``, default the
    reference's, which follows the machine's available memory): the model's cost per sample is the pipeline's
    measured memory per input pixel where the build measured one, else ``probe``'s (resident MiB, peak growth
    MiB) for one sample (ReferenceRunner.measure_run_mb). A batch cut for memory is named so, with the numbers."""
    rng = np.random.default_rng(seed)
    mbs = largest_batch(model)
    if npz is not None:
        missing = [s.name for s in model.inputs if s.name not in npz]
        if missing:
            raise ConfigError(f"--inputs: no array for input(s) {', '.join(missing)} of model {model.name}")
        given = {s.name: np.asarray(npz[s.name]).astype(s.dtype) for s in model.inputs}
        cases = {"given": given}
        n = next(iter(given.values())).shape[0] if given and mbs > 0 else 0
        if mbs > n > 0:
            reps = -(-mbs // n)
            cases[f"batch {mbs}"] = {k: np.concatenate([v] * reps)[:mbs] for k, v in given.items()}
        return cases
    if mbs > 0:
        shapes = {s.name: sample_shape(model, s, "opt") for s in model.inputs}
        big = as_client_feeds({s.name: random_tensor(rng, s.dtype, [mbs] + shapes[s.name]) for s in model.inputs})
        one = {k: v[:1].copy() for k, v in big.items()}
        cases = {"batch 1": one}
        if mbs > 1:
            cost = _sample_cost_mb(model, shapes, one, probe)
            name = f"batch {mbs}"
            if cost is not None:
                cap = default_memory_mb() if memory_mb is None else memory_mb
                fits = fitting_batch(mbs, *cost, cap)
                if fits < mbs:
                    need = cost[0] + mbs * cost[1]
                    name = (f"batch {fits} (batch {mbs} would need ~{need:.0f} MiB in the Paddle reference; its cap is "
                            f"{cap} MiB: REPOGEN_REFERENCE_MEMORY_MB)")
                    big = {k: v[:fits] for k, v in big.items()}
            if next(iter(big.values())).shape[0] > 1:
                cases[name] = big
        return cases
    cases, seen = {}, set()
    for which in ("opt", "max"):
        shapes = {s.name: sample_shape(model, s, which) for s in model.inputs}
        key = repr(shapes)
        if key not in seen:
            seen.add(key)
            cases[f"profile {which}"] = as_client_feeds({s.name: random_tensor(rng, s.dtype, shapes[s.name])
                                                         for s in model.inputs})
    return cases
