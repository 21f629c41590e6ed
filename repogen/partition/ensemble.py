"""A partitioned model as Triton folders: one composing model per region, one ensemble under the model's name.

The composing models batch like the original (same max_batch_size, the spec's dynamic batching); a
TensorRT region is a plan (``--target tensorrt``) or its NumPy stand-in (``--target numpy``); a Python
region runs its ops with Paddle (repogen.partition.runtime). Every composing config goes through the same
render-and-check as a single model; the ensemble is rendered, parsed against Triton's schema and checked
for its wiring (every step input produced before, every output produced once, dtypes and dims agree).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from repogen.errors import ConfigError, RepogenError
from repogen.ir import Graph
from repogen.partition.plan import Partition, partition_graph
from repogen.partition.regions import Region, cut, region_files
from repogen.partition.runtime import NetworkRunner
from repogen.repository.config import (EngineDesc, TensorDesc, batch_dynamic, config_context, config_dims,
                                       derive_max_batch, parse_config, render_and_check, stage_config)
from repogen.repository.engine import conversion_engine
from repogen.repository.layout import PLAN_FILE
from repogen.repository.manifest import manifest, source_files
from repogen.repository.writer import ModelFolder
from repogen.verify.detections import detection_outputs
from repogen.verify.tolerances import rule_for

TEMPLATES = {"tensorrt": "tensorrt.pbtxt.j2", "numpy": "numpy.pbtxt.j2", "python": "python.pbtxt.j2"}


@dataclass
class Part:
    name: str
    target: str  # tensorrt | numpy | python
    region: Region
    engine: EngineDesc
    config_text: str
    plan: bytes | None = None
    tensorrt: dict[str, Any] | None = None


@dataclass
class PartitionedModel:
    name: str
    partition: Partition
    parts: list[Part]
    engine: EngineDesc  # the original model's contract
    max_batch_size: int
    ensemble_text: str
    check: dict[str, Any] = field(default_factory=dict)

    @property
    def folder_names(self) -> list[str]:
        return [p.name for p in self.parts]

    def summary(self) -> dict[str, Any]:
        s = self.partition.summary()
        for r, p in zip(s["regions"], self.parts):
            r["model"] = p.name
            r["target"] = p.target
        return s


def part_name(model: str, index: int, kind: str) -> str:
    return f"{model}_{index}_{'tensorrt' if kind == 'tensorrt' else 'python'}"


def standin_io(cleaned: Graph, region: Region) -> EngineDesc:
    """What the region's engine reports: its conversion on the NumPy backend."""
    return conversion_engine(NetworkRunner(cleaned, region).conversion, list(region.profiles))


def specialise(region: Region, engine: Any) -> Region:
    """The region with each dim the engine fixes taken from the engine (by position; names are the region's)."""
    def merge(ours, theirs, kind):
        if theirs is None or len(ours) != len(theirs):
            raise ConfigError(f"region {region.op_types[:3]}...: the engine has {len(theirs or [])} {kind}s, the "
                              f"region {len(ours)}")
        out = []
        for (n, d, s), t in zip(ours, theirs):
            if len(t.shape) != len(s):
                raise ConfigError(f"{kind} {n}: the engine's rank {len(t.shape)} differs from the graph's {len(s)}")
            out.append((n, d, tuple(e if e >= 0 else x for x, e in zip(s, t.shape))))
        return out
    return dataclasses.replace(region, inputs=merge(region.inputs, getattr(engine, "inputs", None), "input"),
                               outputs=merge(region.outputs, getattr(engine, "outputs", None), "output"))


def region_engine(region: Region) -> EngineDesc:
    return EngineDesc([TensorDesc(n, d, s) for n, d, s in region.inputs],
                      [TensorDesc(n, d, s) for n, d, s in region.outputs], list(region.profiles))


def prepare(spec: Any, cleaned: Graph, *, target: str, profiles: list[dict], engine: EngineDesc,
            build_region: Callable[[Graph, Region], tuple[bytes, dict, Any]] | None = None,
            stage: Callable[[str], None] = lambda s: None,
            forced: dict[int, str] | None = None) -> PartitionedModel | None:
    """None when every op goes to TensorRT (nothing to partition). ``target`` is the TensorRT regions' target:
    "tensorrt" (``build_region`` builds a plan from a region's sub-graph, raising RepogenError when the
    builder refuses it) or "numpy" (the stand-in)."""
    forced = dict(forced or {})
    for _ in range(8):  # each builder refusal moves one region to Python
        stage("partition")
        part = partition_graph(cleaned, profiles, spec.precision, forced, stage)
        if not part.partitioned:
            return None
        if not any(r.kind == "tensorrt" for r in part.regions):
            raise ConfigError(f"{spec.name}: no op of this model can go to TensorRT, so there is nothing to "
                              "partition; build it with --target paddle")
        plans: dict[int, tuple[bytes, dict, Any]] = {}
        refused = False
        if target == "tensorrt" and build_region is not None:
            for i, region in enumerate(part.regions):
                if region.kind != "tensorrt":
                    continue
                stage(f"build plan {i}")
                try:
                    plans[i] = build_region(cut(part.cleaned, region), region)
                except RepogenError as exc:
                    why = f"the TensorRT builder refused its region: {str(exc).splitlines()[0]}"
                    forced.update({pos: why for pos in region.ops if part.placements[pos].place == "tensorrt"})
                    refused = True
                    break
        if not refused:
            break
    else:  # pragma: no cover - bounded by the number of regions
        raise ConfigError(f"{spec.name}: the TensorRT builder kept refusing regions")
    # a TensorRT region's I/O dims as its engine reports them (static where the engine knows them), so the
    # config matches the plan (or what the plan would be, for the NumPy stand-in)
    for i, region in enumerate(part.regions):
        if region.kind == "tensorrt":
            built_engine = plans[i][2] if i in plans else None
            part.regions[i] = specialise(region, built_engine or standin_io(part.cleaned, region))
    max_batch = derive_max_batch(engine, spec.max_batch_size, spec.instance_groups)
    parts = []
    for i, region in enumerate(part.regions):
        kind = target if region.kind == "tensorrt" else "python"
        name = part_name(spec.name, i, region.kind)
        eng = region_engine(region)
        if max_batch > 0 and not batch_dynamic(eng):
            fixed = [t.name for t in eng.inputs + eng.outputs if not t.shape or t.shape[0] != -1]
            raise ConfigError(f"{spec.name}: partition boundary tensor(s) {', '.join(fixed)} have no batch (leading "
                              f"-1) dim, so the parts cannot batch; build with max_batch_size 0, or --no-partition")
        part_spec = spec if kind != "python" else dataclasses.replace(spec, instance_groups=[], warmup=None)
        context = config_context(name=name, target=kind, engine=eng, max_batch_size=max_batch, spec=part_spec,
                                 default_kind="KIND_GPU" if kind == "tensorrt" else "KIND_CPU", labels_filename=None)
        check_eng = eng
        if kind == "python" and max_batch > 0:
            # A batch-only output ([N]) is dims [1] + reshape [] in a single model. Triton infers ensemble tensor
            # shapes from a step's dims, so the step declares dims [1] without the reshape (the array it returns
            # is still [N], which is what a client of the single model receives).
            outs = {t.name for t in engine.outputs}
            for t in context["outputs"]:
                if t["reshape"] and t["name"] in outs:
                    t["reshape"] = False
            check_eng = EngineDesc(eng.inputs, [TensorDesc(t.name, t.dtype, (-1, 1)) if len(t.shape) == 1 and t.name in outs
                                                else t for t in eng.outputs], eng.profiles)
        elif max_batch > 0:
            flat = [t.name for t in eng.inputs + eng.outputs if len(t.shape) == 1 and t.name in
                    {x.name for x in engine.inputs + engine.outputs}]
            if flat:
                raise ConfigError(f"{spec.name}: {', '.join(flat)} (shape [batch]) would need a reshape in {name}, and "
                                  "Triton's ensembles infer shapes without it; build with max_batch_size 0 or --no-partition")
        text, _ = render_and_check(template=TEMPLATES[kind], context=context, engine=check_eng, name=name,
                                   target=kind, version_folder=spec.version_folder)
        plan, info, _ = plans.get(i, (None, None, None))
        parts.append(Part(name, kind, region, eng, text, plan, info))
    ensemble = render_ensemble(spec.name, engine, max_batch, parts)
    return PartitionedModel(spec.name, part, parts, engine, max_batch, ensemble)


def render_ensemble(name: str, engine: EngineDesc, max_batch: int, parts: list[Part]) -> str:
    def tensor(t: TensorDesc) -> dict[str, Any]:
        # a batch-only tensor is dims [1] + reshape [] in its step's config; Triton infers the ensemble tensor's shape
        # from the step's dims, so the ensemble declares dims [1] without the reshape (same shape to clients)
        return {"name": t.name, "dtype": t.dtype, "dims": config_dims(t.shape, max_batch) or [1]}
    steps = [{"model": p.name, "inputs": [(n, n) for n, _, _ in p.region.inputs],
              "outputs": [(n, n) for n, _, _ in p.region.outputs]} for p in parts]
    text = stage_config(name=name, description="a partitioned model. The TensorRT regions and the Python remainder "
                        "run as the steps below; clients see exactly the original model's inputs and outputs.",
                        inputs=[tensor(t) for t in engine.inputs], outputs=[tensor(t) for t in engine.outputs],
                        max_batch_size=max_batch, steps=steps)
    check_ensemble(parse_config(text, f"ensemble config of {name}"), engine, parts, name)
    return text


def check_ensemble(config: Any, engine: EngineDesc, parts: list[Part], name: str) -> None:
    """Triton's ensemble rules plus ours: the original contract, and wiring that type-checks."""
    problems = []
    add = problems.append
    if config.platform != "ensemble" or config.instance_group or config.HasField("dynamic_batching"):
        add("an ensemble has platform \"ensemble\" and no instance_group or dynamic_batching")
    if [i.name for i in config.input] != [t.name for t in engine.inputs]:
        add(f"inputs {[i.name for i in config.input]} differ from the model's {[t.name for t in engine.inputs]}")
    if [o.name for o in config.output] != [t.name for t in engine.outputs]:
        add(f"outputs {[o.name for o in config.output]} differ from the model's {[t.name for t in engine.outputs]}")
    by_part = {p.name: p for p in parts}
    available = {t.name: (t.dtype, t.shape) for t in engine.inputs}
    for step in config.ensemble_scheduling.step:
        p = by_part.get(step.model_name)
        if p is None:
            add(f"step model {step.model_name} is not one of the parts")
            continue
        for n, dtype, shape in p.region.inputs:
            src = step.input_map.get(n)
            if src is None:
                add(f"step {p.name}: input {n} is not mapped")
            elif src not in available:
                add(f"step {p.name}: input {n} reads {src}, which no earlier step produces")
            elif available[src][0] != dtype:
                add(f"step {p.name}: input {n} is {dtype} but {src} is {available[src][0]}")
            elif len(available[src][1]) != len(shape) or any(a >= 0 and b >= 0 and a != b
                                                             for a, b in zip(available[src][1], shape)):
                add(f"step {p.name}: input {n} {list(shape)} does not fit {src} {list(available[src][1])}")
        for n, dtype, shape in p.region.outputs:
            dst = step.output_map.get(n)
            if dst is None:
                add(f"step {p.name}: output {n} is not mapped")
            elif dst in available:
                add(f"step {p.name}: output {dst} is produced twice")
            else:
                available[dst] = (dtype, shape)
    for t in engine.outputs:
        if t.name not in available:
            add(f"output {t.name} is produced by no step")
        elif available[t.name][0] != t.dtype:
            add(f"output {t.name} is {available[t.name][0]} in its step but {t.dtype} in the model")
    if problems:
        raise ConfigError(f"ensemble {name}: " + "; ".join(problems))


def folders(model: PartitionedModel, *, spec: Any, graph: Graph, out: Path) -> list[ModelFolder]:
    """Every folder of the partitioned model, for the repository writer: the ensemble under the model's name
    first, then its parts. ``out`` is where they will be committed (manifests record source paths from it)."""
    sources = source_files(graph)
    version = spec.version_folder
    parts, copy_of = [], None
    for p in model.parts:
        if p.target == "tensorrt":
            files: dict[str, Any] = {f"{version}/{PLAN_FILE}": p.plan}
        else:
            files = region_files(version, sources, p.region)
            copy_of = copy_of or (out / p.name / version / sources[0].name)
        data = manifest(name=p.name, version=spec.version, target=p.target, fmt=graph.source.format,
                        model_file=graph.source.model_file, source_files=sources, model_dir=out / p.name,
                        in_version_folder=p.target != "tensorrt",
                        precision=spec.precision if p.target != "python" else "fp32",
                        max_batch_size=model.max_batch_size, engine=p.engine, tensorrt=p.tensorrt,
                        tolerance=rule_for(spec.precision if p.target != "python" else "fp32").to_dict())
        data["part_of"] = model.name  # the harness validates the ensemble, not its parts alone
        data["backend"] = "tensorrt" if p.target == "tensorrt" else "python"
        parts.append(ModelFolder(p.name, "part", p.config_text, spec.version, files, data))
    data = manifest(name=model.name, version=spec.version, target="ensemble", fmt=graph.source.format,
                    model_file=graph.source.model_file, source_files=sources, model_dir=out / model.name,
                    in_version_folder=False, precision=spec.precision, max_batch_size=model.max_batch_size,
                    engine=model.engine, tensorrt=None, tolerance=rule_for(spec.precision).to_dict())
    if copy_of is not None:  # the reference model travels with the repository, in the Python part's folder
        data["source"]["path"] = Path(os.path.relpath(copy_of, out / model.name)).as_posix()
    data["partition"] = model.summary()
    data["backend"] = "ensemble"
    # outputs of an NMS op: row order is an implementation choice, so the harness compares them as sets
    data["detections"] = detection_outputs(model.partition.cleaned)
    return [ModelFolder(model.name, "model", model.ensemble_text, spec.version, {}, data)] + parts
