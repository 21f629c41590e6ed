"""Paddle models -> a checked Triton model repository (what ``repogen build`` runs).

Three phases, so that a failure never leaves a half-written repository:

1. plan every model in memory (repogen.build.plan.ModelPlan): read, choose the target, check, convert or build
   the plan, render every config.pbtxt and cross-check it against the engine, describe every folder (any
   ConfigError stops here, nothing written);
2. write every folder with the one writer (repogen.repository.writer) into a staging folder beside ``--out``;
3. rename the model folders into ``--out`` (repogen.repository.staging).
"""

from __future__ import annotations

import importlib.util
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from repogen import naming
from repogen.build.onepass import ModelForms, numeric_check
from repogen.build.plan import BACKENDS, ModelPlan, TargetChoice
from repogen.build.spec import ModelSpec
from repogen.build.partitioned import partition_folders, prepare_partitioned, wants_partition
from repogen.build.standin import standin_engine
from repogen.build.targets import TimingCache, build_plan, model_py_files, tensorrt_status
from repogen.errors import ConfigError, RepogenError
from repogen.ir import Graph
from repogen.partition.regions import region_files
from repogen.build import pipeline_stages as pipeline_hook
from repogen.repository import multiplan, ownership, staging
from repogen.repository.config import (DEFAULT_MAX_BATCH, TEMPLATES, EngineDesc, batch_dynamic, config_context,
                                       derive_max_batch, render_and_check)
from repogen.repository.engine import graph_engine
from repogen.repository.layout import PLAN_FILE, RESERVED
from repogen.repository.manifest import manifest, source_files
from repogen.repository.serving_options import paddle_target_notes
from repogen.repository.writer import ModelFolder, write_folder
from repogen.verify.detections import detection_outputs
from repogen.verify.tolerances import is_prequantized, rule_for
from repogen.trt.convert import find_unsupported
from repogen.trt.profiles import make_profiles


@dataclass
class ModelReport:
    """One folder the build wrote: the model a user asked for, or a folder built for it (``part_of``)."""

    name: str
    role: str  # repogen.repository.layout.ROLES
    version: int
    target: str
    precision: str
    max_batch_size: int
    path: str
    files: list[str]
    check: dict[str, Any]
    seconds: float
    warnings: list[str] = field(default_factory=list)
    partition: dict[str, Any] | None = None  # partitioned models: ops in TensorRT and why the others are not
    part_of: str | None = None  # the model of the build this folder serves (parts, pipeline stages)
    target_choice: dict[str, Any] | None = None  # what was asked, what was built and why


@dataclass
class BuildReport:
    out: str
    models: list[ModelReport]
    warnings: list[str]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"ok": True, "out": self.out, "seconds": round(self.seconds, 3), "warnings": self.warnings,
                "models": [asdict(m) | {"seconds": round(m.seconds, 3)} for m in self.models]}


# -- profiles ------------------------------------------------------------------------------------------------------

def _profiles(graph: Graph, spec: ModelSpec) -> tuple[list[Any], list[dict]]:
    """(Profile objects for the converter, the same as plain {name: (min, opt, max)} dicts)."""
    values = graph.input_values()
    requested = spec.max_batch_size
    dynamic_batch = bool(values) and all(v.shape and v.shape[0] == -1 for v in values)
    if requested:
        max_batch = requested
    elif requested is None and dynamic_batch:
        max_batch = DEFAULT_MAX_BATCH
    else:
        max_batch = None
    try:
        objs = make_profiles(values, shape=spec.shape, min_shapes=spec.min_shapes, opt_shapes=spec.opt_shapes,
                             max_shapes=spec.max_shapes, max_batch=max_batch)
    except RepogenError as exc:
        raise ConfigError(f"{spec.name}: optimisation profiles: {exc}") from None
    plain = [{name: tuple(tuple(int(d) for d in s) for s in rng) for name, rng in p.shapes.items()} for p in objs]
    return objs, plain


# -- one model -----------------------------------------------------------------------------------------------------

def _tensorrt(specs: list[ModelSpec], warn: Callable[[str], None]) -> tuple[Any, str | None]:
    """(the tensorrt module or None, why it is unavailable), said once for the whole build."""
    wanted = {s.target for s in specs}
    if not wanted & {"tensorrt", "auto"}:
        return None, None
    status = tensorrt_status()
    if status.module is not None:
        return status.module, None
    for s in specs:  # a missing TensorRT for an explicit --target tensorrt fails before any model is read
        TargetChoice.start(s, status.reason, warn)
    fallback = [s.name for s in specs if s.target == "auto"]
    if fallback:
        warn(f"WARNING: TensorRT unavailable ({status.reason}): --target auto builds the paddle target "
             f"(Triton Python backend running Paddle Inference on CPU) for {', '.join(fallback)}")
    return None, status.reason


def plan_model(spec: ModelSpec, trt: Any, tensorrt_reason: str | None, cache: TimingCache,
               stage: Callable[[str], None], warn: Callable[[str], None], out: Path) -> ModelPlan:
    """Everything one model becomes, in memory: ``out`` is where its folders will be committed (manifests record
    source paths relative to it)."""
    from repogen.paddle import load_model

    started = time.perf_counter()
    warnings: list[str] = []

    def model_warn(msg: str) -> None:
        warnings.append(msg)
        warn(msg)

    choice = TargetChoice.start(spec, tensorrt_reason, model_warn)
    if spec.check and importlib.util.find_spec("paddle") is not None:
        from repogen.reference import prewarm

        prewarm()  # the reference child imports Paddle while this process reads and converts the model
    stage("read")
    graph = load_model(spec.source)
    deploy = pipeline_hook.deploy_config(spec, model_warn, graph)  # inference.yml / infer_cfg.yml / deploy.yaml
    if deploy is not None:
        spec = pipeline_hook.apply_defaults(spec, graph, deploy)
    renames = naming.resolve(spec, graph.inputs, graph.outputs)  # --input-names / --output-names
    if renames and choice.target == "numpy":
        raise ConfigError(f"{spec.name}: renaming inputs/outputs is not available for --target numpy")
    spec = naming.apply_to_spec(spec, renames)  # shape options may use the new names
    if renames and spec.partition:
        raise ConfigError(f"{spec.name}: renaming inputs/outputs is not available with --partition")
    forms = ModelForms(spec, graph)  # read, cleaned and calibrated once: every step below sees these forms
    partition = (choice.target in ("tensorrt", "numpy") and wants_partition(spec) and spec.precision != "int8"
                 and not renames)
    def missing() -> list[str]:
        return sorted({t for _, t, _ in find_unsupported(forms.cleaned())})

    if not partition:
        choice.ops_without_converter(spec.name, missing)
    if spec.precision == "int8" and choice.target == "paddle":
        raise ConfigError(f"{spec.name}: the paddle target cannot serve int8 (it runs Paddle Inference in FP32 "
                          "on CPU); build it with --target tensorrt on a machine with TensorRT, or drop --int8")
    stage("profiles")
    try:
        profile_objs, profiles = _profiles(graph, spec)
    except ConfigError as exc:
        if choice.target != "paddle":
            raise  # a plan (or its stand-in) is built for its profiles
        # Paddle runs any shape: the paddle target needs no profile, only validate and warmup need example shapes
        model_warn(f"{spec.name}: no optimisation profile ({' '.join(str(exc).split())}); the paddle target serves "
                   "any shape, but validate and warmup need example shapes: give --shape or --min/--max-shapes")
        profile_objs, profiles = [], []

    def partitioned(refused: str | None = None) -> ModelPlan | None:
        parted = prepare_partitioned(spec, graph, forms.cleaned(), target=choice.target, trt=trt,
                                     profile_objs=profile_objs, profiles=profiles, cache=cache, stage=stage,
                                     warn=model_warn, refused=refused)
        if parted is None:
            return None
        choice.partitioned("TensorRT regions and a Python remainder: " + "; ".join(
            f"#{o['position']} {o['op']} ({o['reason']})" for o in parted.summary()["not_tensorrt"]))
        folders = partition_folders(parted, spec=spec, graph=graph, out=out, warn=model_warn)
        pipelines = pipeline_hook.pipeline_models(spec, deploy, parted.engine, parted.max_batch_size, choice.target)
        return ModelPlan(spec, choice, spec.precision, parted.max_batch_size, profiles,
                         folders + [_pipeline_folder(m, spec.name) for m in pipelines], parted.check, warnings,
                         started, partition=parted.summary(), engine=parted.engine, pipeline_models=pipelines)

    if partition:
        found = partitioned()
        if found is not None:
            return found
        choice.ops_without_converter(spec.name, missing)
    # check what is built: the paddle target serves fp32 whatever --fp16 says
    checked = replace(spec, precision="fp32") if choice.target == "paddle" and spec.precision == "fp16" else spec
    check = numeric_check(checked, choice.target, forms, profile_objs, model_warn, stage,
                          deploy if spec.pipeline else None)
    precision, plan, trt_info, region = spec.precision, None, None, None
    if choice.target == "tensorrt":
        if precision == "int8":
            stage("calibrate")  # done already unless --no-check
        plan_graph = forms.for_plan()
        stage("build plan")
        try:
            built = build_plan(plan_graph, trt, precision=precision, profiles_objs=profile_objs,
                               profiles=renames.profiles(profiles), workspace_mb=spec.workspace_mb,
                               optimization_level=spec.optimization_level, cache=cache, name=spec.name,
                               **({"io_names": renames.all} if renames else {}))
        except RepogenError as exc:
            # a builder without kernels for a layer (TensorRT-RTX has none for NMS / NonZero) still leaves the
            # model servable: its data-dependent layers in Python, or the whole model through the paddle target
            reason = str(exc).splitlines()[0]
            found = partitioned(refused=reason) if partition and choice.requested == "auto" else None
            if found is not None:
                return found
            if not choice.builder_refused(spec.name, reason, precision):
                raise
        else:
            engine, plan, trt_info = built.engine, built.plan, built.info
    if choice.target == "numpy":
        engine, region = standin_engine(forms.cleaned(), profile_objs, profiles, precision)  # the one pass's clean
    if choice.target == "paddle":
        engine = renames.engine(graph_engine(graph, profiles))
        if precision == "fp16":
            model_warn(f"{spec.name}: the paddle target runs Paddle Inference in fp32; fp16 applies to plans only")
            precision = "fp32"
        if spec.cuda_graphs:
            model_warn(f"{spec.name}: cuda_graphs applies to TensorRT plans only; left out of the paddle config")
        for note in paddle_target_notes(spec):
            model_warn(note)
    stage("config")
    max_batch = derive_max_batch(engine, spec.max_batch_size, spec.instance_groups)
    profile_max = max((int(p[t.name][2][0]) for p in engine.profiles for t in engine.inputs
                       if t.name in p and len(p[t.name][2])), default=0) if max_batch > 0 else 0
    if 0 < max_batch < profile_max:
        model_warn(f"WARNING: {spec.name}: max_batch_size {max_batch} is below the optimisation profile's max batch "
                   f"{profile_max}: Triton never sends a batch above {max_batch}, so the profile's larger "
                   "batches go unused")
    if max_batch > 0 and not batch_dynamic(engine):
        raise ConfigError(f"{spec.name}: max_batch_size {max_batch} needs a dynamic leading dim on every input "
                          "and output; this model's shapes are fixed (use max_batch_size 0)")
    if spec.labels and spec.labels.name in RESERVED:
        raise ConfigError(f"{spec.name}: labels file may not be called {spec.labels.name}")
    target = choice.target
    config = render_config(spec, target, engine, max_batch, (trt_info or {}).get("cc_model_filenames"))
    sources = source_files(graph)
    data = manifest(name=spec.name, version=spec.version, target=target, fmt=graph.source.format,
                    model_file=graph.source.model_file, source_files=sources, model_dir=out / spec.name,
                    in_version_folder=target in ("paddle", "numpy"), precision=precision,
                    max_batch_size=max_batch, engine=engine, tensorrt=trt_info,
                    tolerance=rule_for(precision, is_prequantized(graph) and precision != "int8").to_dict())
    data["backend"] = BACKENDS[target]
    data["target_choice"] = choice.to_dict()
    if renames.paddle_names():
        data["paddle_names"] = renames.paddle_names()  # the harness feeds the Paddle reference by these
    pipelines = pipeline_hook.pipeline_models(spec, deploy, engine, max_batch, target)
    data.update(pipeline_hook.manifest_fields(pipelines))  # deploy-config detectors: box rows, not batch rows
    if target in ("tensorrt", "numpy"):
        found = detection_outputs(forms.cleaned())  # NMS rows come in TensorRT's order: the harness compares sets
        data.update({"detections": found} if found else {})
    version = str(spec.version)
    files: dict[str, bytes | Path] = {spec.labels.name: spec.labels} if spec.labels else {}
    if target == "tensorrt":
        files[f"{version}/{PLAN_FILE}"] = plan
    elif target == "numpy":
        files.update(region_files(version, sources, region))
    else:
        files.update(model_py_files(version, graph, sources, engine, max_batch, spec.cpu_threads,
                                    renames.paddle_names()))
    files.update(pipeline_hook.deploy_config_files(spec, deploy))  # beside the model: seen, edited, rebuilt from
    folder = ModelFolder(spec.name, "model", config, spec.version, files, data)
    return ModelPlan(spec, choice, precision, max_batch, profiles,
                     [folder] + [_pipeline_folder(m, spec.name) for m in pipelines], check, warnings, started,
                     engine=engine, plan_bytes=plan, manifest=data, pipeline_models=pipelines)


def _pipeline_folder(model: Any, part_of: str) -> ModelFolder:
    """A pipeline stage (repogen.pipelines GeneratedModel) as a folder for the writer."""
    # the ensembles and the Python protocol models (``_paddlex``) are both role "pipeline": the config tells them apart
    backend = "ensemble" if 'platform: "ensemble"' in model.config else "python"
    return ModelFolder(model.name, model.role, model.config, 1, dict(model.files),
                       {"part_of": part_of, "backend": backend, "target": backend})


def render_config(spec: ModelSpec, target: str, engine: EngineDesc, max_batch: int,
                  cc_model_filenames: dict[str, str] | None) -> str:
    context = config_context(name=spec.name, target=target, engine=engine, max_batch_size=max_batch, spec=spec,
                             default_kind="KIND_GPU" if target == "tensorrt" else "KIND_CPU",
                             labels_filename=spec.labels.name if spec.labels else None,
                             cc_model_filenames=cc_model_filenames)
    text, _ = render_and_check(template=spec.template or TEMPLATES[target], context=context, engine=engine,
                               name=spec.name, target=target, version_folder=spec.version_folder)
    return text


def _add_plan(p: ModelPlan, staged: Path, existing: Any, force: bool) -> list[str]:
    """--add-plan: this build's plan joins the plans already in the existing folder (multiplan.py)."""
    if p.target != "tensorrt":
        raise ConfigError(f"{p.name}: --add-plan adds a TensorRT plan, but this build made the {p.target} "
                          "target (--target tensorrt on a machine with TensorRT and a GPU)")
    filename, merged, text = multiplan.merge(
        existing, p.spec.version, p.manifest, force=force, engine=p.engine,
        render=lambda cc: render_config(p.spec, p.target, p.engine, p.max_batch_size, cc))
    return multiplan.write(existing, p.spec.version, staged, filename=filename, plan=p.plan_bytes, config_text=text,
                           manifest=merged)


# -- public API ----------------------------------------------------------------------------------------------------

class SilentProgress:
    """What a build tells the person waiting, told to no one. The command line passes an object with the same
    methods that shows it (repogen.cli.progress.BuildProgress)."""

    def __enter__(self) -> "SilentProgress":
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def task(self, name: str) -> Callable[[str], None]:
        return lambda stage: None

    def warn(self, msg: str) -> None:
        return None


def _destinations(out: Path, specs: list[ModelSpec], force: bool, add_plan: bool) -> dict[str, Any]:
    """Fail before any work when a model's own folder may not be written (parts and stages: when written)."""
    if add_plan:
        return {s.name: multiplan.check_destination(out, s.name, s.version) for s in specs}
    return {s.name: ownership.check_destination(out, s.name, s.version, force) for s in specs}


def build_repository(specs: list[ModelSpec], out: Path, *, force: bool = False, progress: Any = None,
                     add_plan: bool = False) -> BuildReport:
    """Build every spec into ``out`` (a Triton model repository), all or nothing. ``add_plan``: add each
    model's plan, built on this GPU, to its existing model folder (multiplan.py). ``progress``: an object like
    SilentProgress (the default) that is told each model's stage and every warning."""
    out = Path(out).absolute()
    if not specs:
        raise ConfigError("nothing to build: no models given")
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ConfigError(f"model names repeat: {', '.join(names)}")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: exists and is not a folder")
    existing = _destinations(out, specs, force, add_plan)
    started = time.perf_counter()
    warnings: list[str] = []
    ui = progress or SilentProgress()

    def warn(msg: str) -> None:
        warnings.append(msg)
        ui.warn(msg)

    trt, tensorrt_reason = _tensorrt(specs, warn)
    cache = TimingCache()
    with ui:
        stages = {s.name: ui.task(s.name) for s in specs}
        plans = [plan_model(s, trt, tensorrt_reason, cache, stages[s.name], warn, out) for s in specs]
        systems = [] if add_plan else [_pipeline_folder(m, "") for m in
                                       pipeline_hook.system_models(plans, getattr(specs, "ocr_system", None), warn)]
        folders = [] if add_plan else [f for p in plans for f in p.folders] + systems
        taken = [f.name for f in folders]
        clash = sorted({n for n in taken if taken.count(n) > 1})
        if clash:
            raise ConfigError(f"{', '.join(clash)}: this build would write it twice (a model's partitioned parts or "
                              "pipeline stages take a name another model of this build uses); rename one of the models")
        try:
            tmp = staging.make_staging(out)
        except OSError as exc:
            raise _os_error(out, exc) from None
        reports: list[ModelReport] = []
        try:
            for p in plans:
                stages[p.name]("write")
                if add_plan:  # the plan only: pipeline and partition folders do not depend on the GPU
                    files = _add_plan(p, tmp / p.name, existing[p.name], force)
                    reports.append(_report(p, p.folders[0], out, files))
                    continue
                for folder in p.folders:
                    reports.append(_report(p, folder, out, write_folder(folder, tmp, out, force)))
            for folder in systems:
                reports.append(_report(None, folder, out, write_folder(folder, tmp, out, force)))
            for s in specs:
                stages[s.name]("commit")
            _destinations(out, specs, force, add_plan)  # again: the repository may have changed during the build
            staging.commit(tmp, out, [r.name for r in reports])
        except OSError as exc:
            staging.discard(tmp)
            raise _os_error(out, exc) from None
        except BaseException:
            staging.discard(tmp)
            raise
        now = time.perf_counter()
        for r in reports:
            owner = next((p for p in plans if p.name == (r.part_of or r.name)), None)
            r.seconds = now - owner.started if owner is not None else 0.0
        for p in plans:
            stages[p.name]("done")
    return BuildReport(str(out), reports, warnings, time.perf_counter() - started)


def _report(p: ModelPlan | None, folder: ModelFolder, out: Path, files: list[str]) -> ModelReport:
    """One written folder as the summary and --json show it."""
    own = p is not None and folder.name == p.name
    m = folder.manifest
    return ModelReport(
        name=folder.name, role=folder.role, version=folder.version,
        target=p.target if own else str(m.get("target") or "python"),
        precision=p.precision if own else str(m.get("precision") or "fp32"),
        max_batch_size=p.max_batch_size if own else int(m.get("max_batch_size") or 0),
        path=str(out / folder.name), files=files,
        check=p.check if own else {"status": "n/a", "reason": f"checked as part of {m.get('part_of') or 'the build'}"},
        seconds=0.0, warnings=list(p.warnings) if own else [], partition=p.partition if own else None,
        part_of=None if own else (m.get("part_of") or None), target_choice=p.choice.to_dict() if own else None)


def _os_error(out: Path, exc: OSError) -> ConfigError:
    """A read-only --out, a full disk...: one line naming the path, nothing left behind."""
    where = exc.filename or out
    return ConfigError(f"--out {out}: cannot write the repository: {where}: {exc.strerror or exc}")
