"""The two things a model folder can hold: a TensorRT plan, or a Paddle Inference Python-backend model.

Both produce an :class:`EngineDesc` (names, dtypes, full shapes, profiles) so that the config template and
the cross-check see the same contract whichever target runs.
"""

from __future__ import annotations

import importlib
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from repogen import __version__
from repogen.errors import ConfigError, RepogenError
from repogen.ir import Graph, Value
from repogen.repository.config import MODEL_PY_TEMPLATE, EngineDesc, render_template
from repogen.repository.engine import conversion_engine
from repogen.repository.layout import MODEL_PY, PLAN_FILE


@dataclass
class TensorRTStatus:
    module: Any | None  # the imported tensorrt module, or None
    reason: str  # why it is unavailable ("" when available)


def tensorrt_status() -> TensorRTStatus:
    """TensorRT through the converters' own probe (``repogen.trt.engine.tensorrt_module``)."""
    try:
        engine_mod = importlib.import_module("repogen.trt.engine")
    except ImportError as exc:
        return TensorRTStatus(None, f"repogen's TensorRT engine builder is not importable ({exc})")
    try:
        trt = engine_mod.tensorrt_module()
    except Exception as exc:  # a broken install is "not available", with its reason
        return TensorRTStatus(None, f"TensorRT failed to load: {exc}")
    if trt is None:
        return TensorRTStatus(None, "the tensorrt package is not installed")
    if compute_capability() is None:
        return TensorRTStatus(None, f"tensorrt {getattr(trt, '__version__', '')} is installed but nvidia-smi "
                                    "reports no NVIDIA GPU")
    return TensorRTStatus(trt, "")


def compute_capability() -> str | None:
    """"8.9" for the first GPU, from nvidia-smi (the one tool every driver install has)."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return None
    try:
        out = subprocess.run([exe, "--query-gpu=compute_cap", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=20, check=True).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return None
    return out[0] if out else None


@dataclass
class PlanBuild:
    engine: EngineDesc
    plan: bytes
    info: dict[str, Any]


@dataclass
class TimingCache:
    """One cache shared by every model of a build, so kernels timed for one are not re-timed for the next."""

    data: bytes | None = None
    models: list[str] = field(default_factory=list)


def build_plan(graph: Graph, trt: Any, *, precision: str, profiles_objs: list[Any], profiles: list[dict],
               workspace_mb: int | None, optimization_level: int | None, cache: TimingCache,
               name: str, io_names: dict[str, str] | None = None) -> PlanBuild:
    """``io_names``: graph I/O name -> the plan's tensor name (repogen/naming.py); ``profiles`` (plain dicts,
    for the EngineDesc) already carry the plan's names, ``profiles_objs`` the graph's."""
    from repogen.trt.convert import convert_graph
    from repogen.trt.engine import build_engine

    # ``graph`` comes cleaned (and for int8 calibrated) from build's one pass: no second clean_graph here
    conversion = convert_graph(graph, trt, precision=precision, profiles=profiles_objs, clean=False,
                               io_names=io_names)
    plan, cache_bytes = build_engine(conversion, workspace_bytes=None if workspace_mb is None else workspace_mb << 20,
                                     optimization_level=optimization_level, timing_cache=cache.data)
    if not plan:
        raise RepogenError(f"{name}: TensorRT returned an empty plan")
    cache.data = cache_bytes or cache.data
    cache.models.append(name)
    cc = compute_capability()
    version = str(getattr(trt, "__version__", "unknown"))
    # "plans": each plan file of the version folder; --add-plan (multiplan.py) adds the other GPUs' plans
    info = {"version": version, "compute_capability": cc, "cc_model_filenames": {cc: PLAN_FILE} if cc else {},
            "plans": {PLAN_FILE: {"compute_capability": cc, "version": version}} if cc else {}}
    return PlanBuild(conversion_engine(conversion, profiles), bytes(plan), info)


def model_py_files(version: str, graph: Graph, sources: list[Path], engine: EngineDesc, max_batch_size: int,
                   cpu_threads: int | None = None, paddle_names: dict[str, str] | None = None) -> dict[str, Any]:
    """The paddle target's version folder: the model files (Paddle Inference reads them) and model.py."""
    files: dict[str, Any] = {f"{version}/{f.name}": f for f in sources}
    files[f"{version}/{MODEL_PY}"] = render_model_py(graph, engine, max_batch_size, cpu_threads,
                                                     paddle_names).encode("utf-8")
    return files


def render_model_py(graph: Graph, engine: EngineDesc, max_batch_size: int, cpu_threads: int | None = None,
                    paddle_names: dict[str, str] | None = None) -> str:
    """model.py for the paddle target; ``cpu_threads`` None: model.py picks cores // CPU instances;
    ``paddle_names``: Triton name -> Paddle feed/fetch name for renamed tensors."""
    src = graph.source
    return render_template(MODEL_PY_TEMPLATE, {
        "repogen_version": __version__,
        "model_file": src.model_file.name,
        "params_file": src.params_file.name if src.params_file is not None else None,
        "inputs_py": [(t.name, t.dtype) for t in engine.inputs],
        "outputs_py": [(t.name, t.dtype) for t in engine.outputs],
        "max_batch_size": max_batch_size,
        "paddle_names": dict(paddle_names or {}),
        "cpu_threads": cpu_threads,
        "use_onednn": src.format != "pir",
    })
