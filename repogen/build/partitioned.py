"""A partitioned model in a build: prepared in memory (its TensorRT regions built, or stood in for), checked
against Paddle, then described as folders for the repository writer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from repogen.build import targets
from repogen.errors import RepogenError
from repogen.ir import Graph
from repogen.partition.check import check_partition
from repogen.partition.ensemble import PartitionedModel, folders, prepare
from repogen.repository.engine import graph_engine
from repogen.repository.layout import MANIFEST
from repogen.repository.writer import ModelFolder
from repogen.trt.profiles import Profile
from repogen.trt.registry import needs_data_dependent_layers


def wants_partition(spec: Any) -> bool:
    """``partition`` true/false in the spec (--partition / --no-partition); by default only --target auto."""
    return spec.partition if spec.partition is not None else spec.target == "auto"


def prepare_partitioned(spec: Any, graph: Graph, cleaned: Graph, *, target: str, trt: Any, profile_objs: list[Any],
                        profiles: list[dict], cache: Any, stage: Callable[[str], None],
                        warn: Callable[[str], None], refused: str | None = None) -> PartitionedModel | None:
    """None when the whole model goes to TensorRT. Raises when the partitioned model fails its check.
    ``graph``: the model as read (its I/O is the ensemble's contract); ``cleaned``: the build's one cleaned form.

    ``refused``: the builder's reason for refusing the whole model; the ops whose layers some builders lack
    (NMS, NonZero: the registry's data-dependent layers) then start in Python, and each remaining region is
    built on its own."""
    def build_region(sub: Graph, region: Any) -> tuple[bytes, dict, Any]:
        objs = [Profile({n: tuple(tuple(int(d) for d in s) for s in rng) for n, rng in p.items()})
                for p in region.profiles]
        built = targets.build_plan(sub, trt, precision=spec.precision, profiles_objs=objs, profiles=region.profiles,
                           workspace_mb=spec.workspace_mb, optimization_level=spec.optimization_level, cache=cache,
                           name=spec.name)
        return built.plan, built.info, built.engine

    engine = graph_engine(graph, profiles)
    try:
        forced = None
        if refused:
            why = f"the TensorRT builder refused the whole model ({refused}); its data-dependent layer runs in Python"
            forced = {pos: why for pos, op in enumerate(cleaned.ops) if needs_data_dependent_layers(op.type)}
            if not forced:
                return None
        model = prepare(spec, cleaned, target=target, profiles=profiles, engine=engine,
                        build_region=build_region if target == "tensorrt" else None, stage=stage, forced=forced)
    except RepogenError as exc:
        if spec.target != "auto":
            raise
        # --target auto still serves the model: whole, through the paddle target (the caller decides)
        warn(f"WARNING: {spec.name}: cannot partition ({' '.join(str(exc).split())[:300]})")
        return None
    if model is None:
        return None
    s = model.summary()
    warn(f"{spec.name}: partitioned: {s['tensorrt_ops']}/{s['ops']} ops ({100 * s['tensorrt_op_share']:.0f} %) and "
         f"{100 * (s['tensorrt_parameter_share'] or 0):.0f} % of the parameters in TensorRT; in Python: "
         + "; ".join(f"#{o['position']} {o['op']} ({o['reason']})" for o in s["not_tensorrt"]))
    if not spec.check:
        model.check = {"status": "skipped", "reason": "--no-check"}
        return model
    stage("check")
    model.check = check_partition(model.partition, spec.source, profiles, spec.precision)
    if model.check["status"] != "passed":
        bad = [f"  {n}: {o['reason']}" for n, o in model.check["outputs"].items()
               if not o["passed"]]
        raise RepogenError(f"{spec.name}: numerical check of the partitioned model against Paddle failed; "
                           "--no-check skips it:\n" + "\n".join(bad))
    return model


def partition_folders(model: PartitionedModel, *, spec: Any, graph: Graph, out: Path,
                      warn: Callable[[str], None] = lambda m: None) -> list[ModelFolder]:
    """The partitioned model's folders. Parts an earlier build of this model left behind are named in a warning,
    never deleted."""
    if out.is_dir():
        for folder in sorted(out.iterdir()):
            try:
                owner = json.loads((folder / MANIFEST).read_text()).get("part_of")
            except (OSError, ValueError, AttributeError):
                continue
            if owner == model.name and folder.name not in model.folder_names:
                warn(f"WARNING: {folder}: a part of an earlier partitioned build of {model.name}, unused now; "
                     "remove it (repogen does not delete folders)")
    return folders(model, spec=spec, graph=graph, out=out)
