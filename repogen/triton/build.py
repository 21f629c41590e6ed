"""``repogen build``: Paddle models -> a checked Triton model repository.

Three phases, so that a failure never leaves a half-written repository:

1. prepare every model in memory: read, numeric check, convert/build the plan, render config.pbtxt and
   cross-check it against the engine (any ConfigError stops here, nothing written);
2. write every model folder into a staging folder beside ``--out``;
3. rename the model folders into ``--out`` (see staging.py).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from repogen.errors import ConfigError, RepogenError
from repogen.ir import Graph
from repogen import naming
from repogen.pipelines import build_hook as pipeline_hook
from repogen.triton import ownership, staging
from repogen.triton.onepass import ModelForms, numeric_check
from repogen.triton.progress import BuildProgress
from repogen.triton.config import (DEFAULT_MAX_BATCH, TEMPLATES, EngineDesc, batch_dynamic, config_context,
                                   derive_max_batch, render_and_check)
from repogen.triton.manifest import MANIFEST, dumps, manifest
from repogen.triton.serving_options import paddle_target_notes
from repogen.triton.spec import ModelSpec, specs_from_args
from repogen.triton.targets import (MODEL_PY, PLAN_FILE, TimingCache, build_plan, graph_engine,
                                    render_model_py, source_files, tensorrt_status)

RESERVED = {"config.pbtxt", MANIFEST}


@dataclass
class ModelReport:
    name: str
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


@dataclass
class BuildReport:
    out: str
    models: list[ModelReport]
    warnings: list[str]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"ok": True, "out": self.out, "seconds": round(self.seconds, 3), "warnings": self.warnings,
                "models": [asdict(m) | {"seconds": round(m.seconds, 3)} for m in self.models]}


@dataclass
class _Prepared:
    spec: ModelSpec
    target: str
    precision: str
    graph: Graph
    engine: EngineDesc
    max_batch_size: int
    config_text: str
    plan: bytes | None
    tensorrt: dict[str, Any] | None
    check: dict[str, Any]
    warnings: list[str]
    started: float
    region: Any = None  # --target numpy: what the stand-in runs (repogen.partition.regions.Region)
    paddle_names: dict[str, str] = field(default_factory=dict)  # renamed I/O: Triton name -> Paddle name
    partitioned: Any = None  # repogen.partition.ensemble.PartitionedModel: several folders, one ensemble
    pipelines: list = field(default_factory=list)  # _pre/_post/_pipeline models (repogen.pipelines)
    cleaned: Graph | None = None  # the one pass's cleaned graph, when the check or the plan made it


# -- profiles ------------------------------------------------------------------------------------------------------

def _profiles(graph: Graph, spec: ModelSpec) -> tuple[list[Any], list[dict]]:
    """(Profile objects for the converter, the same as plain {name: (min, opt, max)} dicts)."""
    from repogen.trt.profiles import make_profiles

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

def _resolve_targets(specs: list[ModelSpec], warn: Callable[[str], None]) -> tuple[dict[str, str], Any]:
    wanted = {s.target for s in specs}
    status = tensorrt_status() if wanted & {"tensorrt", "auto"} else None
    if "tensorrt" in wanted and status.module is None:
        names = ", ".join(s.name for s in specs if s.target == "tensorrt")
        raise ConfigError(f"--target tensorrt ({names}): {status.reason}; install TensorRT on a machine with an "
                          "NVIDIA GPU (docker/Dockerfile.build), or use --target paddle for a CPU model")
    fallback = [s.name for s in specs if s.target == "auto" and status.module is None]
    if fallback:
        warn(f"WARNING: TensorRT unavailable ({status.reason}): --target auto builds the paddle target "
             f"(Triton Python backend running Paddle Inference on CPU) for {', '.join(fallback)}", )
    targets = {s.name: (s.target if s.target in ("paddle", "numpy") else "paddle" if s.name in fallback
                        else "tensorrt") for s in specs}
    return targets, (status.module if status else None)


def _auto_target(spec: ModelSpec, graph: Any, warn: Callable[[str], None]) -> str:
    """--target auto with TensorRT at hand: a model with ops TensorRT cannot express still gets served."""
    from repogen.trt.convert import find_unsupported

    missing = sorted({op_type for _, op_type, _ in find_unsupported(graph)})
    if not missing:
        return "tensorrt"
    warn(f"WARNING: {spec.name}: no TensorRT converter for {', '.join(missing)}: --target auto builds the paddle "
         "target (Triton Python backend running Paddle Inference) instead")
    return "paddle"


def _prepare(spec: ModelSpec, target: str, trt: Any, cache: TimingCache,
             stage: Callable[[str], None], warn: Callable[[str], None]) -> _Prepared:
    from repogen.paddle import load_model

    started = time.perf_counter()
    warnings: list[str] = []

    def model_warn(msg: str) -> None:
        warnings.append(msg)
        warn(msg)

    if spec.check and importlib.util.find_spec("paddle") is not None:
        from repogen.reference import prewarm

        prewarm()  # the reference child imports Paddle while this process reads and converts the model
    stage("read")
    graph = load_model(spec.source)
    deploy = pipeline_hook.deploy_config(spec)  # the exporter's inference.yml / infer_cfg.yml / deploy.yaml
    if deploy is not None:
        spec = pipeline_hook.apply_defaults(spec, graph, deploy)
    renames = naming.resolve(spec, graph.inputs, graph.outputs)  # --input-names / --output-names
    if renames and target == "numpy":
        raise ConfigError(f"{spec.name}: renaming inputs/outputs is not available for --target numpy")
    spec = naming.apply_to_spec(spec, renames)  # shape options may use the new names
    from repogen.partition.deploy import prepare_partitioned, wants_partition

    if renames and spec.partition:
        raise ConfigError(f"{spec.name}: renaming inputs/outputs is not available with --partition")
    partition = (target in ("tensorrt", "numpy") and wants_partition(spec) and spec.precision != "int8"
                 and not renames)
    if target == "tensorrt" and spec.target == "auto" and not partition:
        target = _auto_target(spec, graph, model_warn)
    if spec.precision == "int8" and target == "paddle":
        raise ConfigError(f"{spec.name}: the paddle target cannot serve int8 (it runs Paddle Inference in FP32 "
                          "on CPU); build it with --target tensorrt on a machine with TensorRT, or drop --int8")
    stage("profiles")
    profile_objs, profiles = _profiles(graph, spec)
    if partition:
        parted = prepare_partitioned(spec, graph, target=target, trt=trt, profile_objs=profile_objs, profiles=profiles,
                                     cache=cache, stage=stage, warn=model_warn)
        if parted is not None:  # an ensemble of TensorRT regions and Python remainder models
            return _Prepared(spec, "ensemble", spec.precision, graph, parted.engine, parted.max_batch_size,
                             parted.ensemble_text, None, None, parted.check, warnings, started, partitioned=parted,
                             pipelines=pipeline_hook.pipeline_models(spec, deploy, parted.engine, parted.max_batch_size,
                                                                     target))
        if target == "tensorrt" and spec.target == "auto":  # not partitionable: the whole model to paddle
            target = _auto_target(spec, graph, model_warn)
    forms = ModelForms(spec, graph)
    # check what is built: the paddle target serves fp32 whatever --fp16 says
    checked = replace(spec, precision="fp32") if target == "paddle" and spec.precision == "fp16" else spec
    check = numeric_check(checked, target, forms, profile_objs, model_warn, stage)
    precision, plan, trt_info, region = spec.precision, None, None, None
    if target == "tensorrt":
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
            if spec.target != "auto" or precision == "int8":
                raise
            # a builder without kernels for a layer (TensorRT-RTX has none for NMS / NonZero) still leaves the
            # model servable
            reason = str(exc).splitlines()[0]
            if partition:  # the layers a builder typically lacks (NMS, NonZero) to Python, the rest stays TensorRT
                parted = prepare_partitioned(spec, graph, target=target, trt=trt, profile_objs=profile_objs,
                                             profiles=profiles, cache=cache, stage=stage, warn=model_warn,
                                             refused=reason)
                if parted is not None:
                    return _Prepared(spec, "ensemble", spec.precision, graph, parted.engine, parted.max_batch_size,
                                     parted.ensemble_text, None, None, parted.check, warnings, started,
                                     partitioned=parted)
            model_warn(f"WARNING: {spec.name}: the TensorRT builder could not build this model ({reason}): "
                       "--target auto builds the paddle target (Triton Python backend running Paddle Inference) "
                       "instead")
            target = "paddle"
        else:
            engine, plan, trt_info = built.engine, built.plan, built.info
    if target == "numpy":
        from repogen.triton.standin import standin_engine

        engine, region = standin_engine(forms.cleaned(), profile_objs, profiles, precision)  # the one pass's clean
    if target == "paddle":
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
    labels = spec.labels.name if spec.labels else None
    if labels in RESERVED:
        raise ConfigError(f"{spec.name}: labels file may not be called {labels}")
    text = _render_config(spec, target, engine, max_batch, (trt_info or {}).get("cc_model_filenames"))
    prepared = _Prepared(spec, target, precision, graph, engine, max_batch, text, plan, trt_info, check, warnings,
                         started, region,
                         pipelines=pipeline_hook.pipeline_models(spec, deploy, engine, max_batch, target))
    prepared.paddle_names = renames.paddle_names()
    prepared.cleaned = forms.made_cleaned
    return prepared


def _render_config(spec: ModelSpec, target: str, engine: EngineDesc, max_batch: int,
                   cc_model_filenames: dict[str, str] | None) -> str:
    context = config_context(name=spec.name, target=target, engine=engine, max_batch_size=max_batch, spec=spec,
                             default_kind="KIND_GPU" if target == "tensorrt" else "KIND_CPU",
                             labels_filename=spec.labels.name if spec.labels else None,
                             cc_model_filenames=cc_model_filenames)
    text, _ = render_and_check(template=spec.template or TEMPLATES[target], context=context, engine=engine,
                               name=spec.name, target=target, version_folder=spec.version_folder)
    return text


def _destinations(out: Path, specs: list[ModelSpec], force: bool,
                  add_plan: bool = False) -> dict[str, ownership.Existing | None]:
    if add_plan:
        from repogen.triton.multiplan import check_destination

        return {s.name: check_destination(out, s.name, s.version) for s in specs}
    return {s.name: ownership.check_destination(out, s.name, s.version, force) for s in specs}


def _write(p: _Prepared, model_dir: Path, final_dir: Path, existing: ownership.Existing | None) -> list[str]:
    spec = p.spec
    version_dir = model_dir / spec.version_folder
    version_dir.mkdir(parents=True)
    (model_dir / "config.pbtxt").write_text(p.config_text, encoding="utf-8")
    if spec.labels:
        shutil.copyfile(spec.labels, model_dir / spec.labels.name)
    sources = source_files(p.graph)
    if p.target == "tensorrt":
        (version_dir / PLAN_FILE).write_bytes(p.plan)
    elif p.target == "numpy":
        from repogen.triton.standin import write_region_folder

        write_region_folder(version_dir, sources, p.region)
    else:
        for f in sources:
            shutil.copyfile(f, version_dir / f.name)
        staging.pause_point("copy")
        (version_dir / MODEL_PY).write_text(render_model_py(p.graph, p.engine, p.max_batch_size, spec.cpu_threads,
                                                            p.paddle_names), encoding="utf-8")
    data = _manifest_data(p, final_dir, sources)
    if existing is not None:
        ownership.check_compatible(existing, spec.version, data)
    (model_dir / MANIFEST).write_text(dumps(data), encoding="utf-8")
    if existing is not None:
        ownership.carry_over(existing, model_dir)  # other versions (and files) of the model stay
    return sorted(f.relative_to(model_dir).as_posix() for f in model_dir.rglob("*") if f.is_file())


def _manifest_data(p: _Prepared, final_dir: Path, sources: list[Path]) -> dict[str, Any]:
    spec = p.spec
    data = manifest(name=spec.name, version=spec.version, target=p.target, fmt=p.graph.source.format,
                    model_file=p.graph.source.model_file, source_files=sources, model_dir=final_dir,
                    in_version_folder=p.target in ("paddle", "numpy"), precision=p.precision,
                    max_batch_size=p.max_batch_size, engine=p.engine, tensorrt=p.tensorrt)
    if p.paddle_names:
        data["paddle_names"] = p.paddle_names  # the harness feeds the Paddle reference by these
    data.update(pipeline_hook.manifest_fields(p.pipelines))  # deploy-config detectors: box rows, not batch rows
    if p.target in ("tensorrt", "numpy"):
        # NMS rows come in TensorRT's order: the harness compares sets
        if p.cleaned is not None:  # the one pass's cleaned graph: no second clean_graph
            from repogen.trt.check import detection_outputs

            found = detection_outputs(p.cleaned)
            data.update({"detections": found} if found else {})
        else:
            from repogen.triton.standin import detection_fields

            data.update(detection_fields(p.graph))
    return data


def _add_plan(p: _Prepared, staged: Path, final_dir: Path, existing: Any, force: bool) -> list[str]:
    """--add-plan: this build's plan joins the plans already in ``final_dir`` (multiplan.py)."""
    from repogen.triton import multiplan

    if p.target != "tensorrt":
        raise ConfigError(f"{p.spec.name}: --add-plan adds a TensorRT plan, but this build made the {p.target} "
                          "target (--target tensorrt on a machine with TensorRT and a GPU)")
    data = _manifest_data(p, final_dir, source_files(p.graph))
    filename, merged, text = multiplan.merge(
        existing, p.spec.version, data, force=force, engine=p.engine,
        render=lambda cc: _render_config(p.spec, p.target, p.engine, p.max_batch_size, cc))
    return multiplan.write(existing, p.spec.version, staged, filename=filename, plan=p.plan, config_text=text,
                           manifest=merged)


# -- public API ----------------------------------------------------------------------------------------------------

def build_repository(specs: list[ModelSpec], out: Path, *, force: bool = False, progress: bool = True,
                     add_plan: bool = False) -> BuildReport:
    """Build every spec into ``out`` (a Triton model repository), all or nothing. ``add_plan``: add each
    model's plan, built on this GPU, to its existing model folder (multiplan.py)."""
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
    ui = BuildProgress(progress)

    def warn(msg: str) -> None:
        warnings.append(msg)
        ui.warn(msg)

    targets, trt = _resolve_targets(specs, warn)
    cache = TimingCache()
    reports: list[ModelReport] = []
    with ui:
        stages = {s.name: ui.task(s.name) for s in specs}
        prepared = [_prepare(s, targets[s.name], trt, cache, stages[s.name], warn) for s in specs]
        try:
            tmp = staging.make_staging(out)
        except OSError as exc:
            raise _os_error(out, exc) from None
        try:
            for p in prepared:
                stages[p.spec.name]("write")
                if add_plan:  # the plan only: pipeline and partition folders do not depend on the GPU
                    files = _add_plan(p, tmp / p.spec.name, out / p.spec.name, existing[p.spec.name], force)
                elif p.partitioned is not None:
                    from repogen.partition.deploy import write_partitioned

                    folders = write_partitioned(p.partitioned, tmp, out, spec=p.spec, graph=p.graph, force=force,
                                                taken=names, warn=warn)
                    files = folders.pop(p.spec.name)
                    names += list(folders)
                else:
                    files = _write(p, tmp / p.spec.name, out / p.spec.name, existing[p.spec.name])
                names += [] if add_plan else pipeline_hook.write_models(p.pipelines, tmp, out, force)
                reports.append(ModelReport(p.spec.name, p.spec.version, p.target, p.precision, p.max_batch_size,
                                           str(out / p.spec.name), files, p.check, 0.0, p.warnings,
                                           p.partitioned.summary() if p.partitioned is not None else None))
            systems = [] if add_plan else pipeline_hook.system_models(prepared, getattr(specs, "ocr_system", None), warn)
            names += pipeline_hook.write_models(systems, tmp, out, force)
            for s in specs:
                stages[s.name]("commit")
            _destinations(out, specs, force, add_plan)  # again: the repository may have changed during the build
            staging.commit(tmp, out, names)
        except OSError as exc:
            staging.discard(tmp)
            raise _os_error(out, exc) from None
        except BaseException:
            staging.discard(tmp)
            raise
        now = time.perf_counter()
        for p, r in zip(prepared, reports):
            r.seconds = now - p.started
            stages[p.spec.name]("done")
    return BuildReport(str(out), reports, warnings, time.perf_counter() - started)


def _os_error(out: Path, exc: OSError) -> ConfigError:
    """A read-only --out, a full disk...: one line naming the path, nothing left behind."""
    where = exc.filename or out
    return ConfigError(f"--out {out}: cannot write the repository: {where}: {exc.strerror or exc}")


def _summary(report: BuildReport) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Triton model repository {report.out}")
    for col in ("model", "ver", "target", "precision", "batch", "check (rel err)", "files", "s"):
        table.add_column(col, no_wrap=True)
    for m in report.models:
        check = m.check["status"]
        if m.check.get("outputs"):
            check += f" {max(o['rel_err'] for o in m.check['outputs'].values()):.1e}"
        table.add_row(m.name, str(m.version), m.target, m.precision, str(m.max_batch_size), check,
                      str(len(m.files)), f"{m.seconds:.2f}")
    # piped or redirected: full rows (rich would squeeze the table into 80 columns and cut names)
    Console(width=None if sys.stdout.isatty() else 1000).print(table)


def run(args: Any) -> int:
    """The ``repogen build`` subcommand."""
    add_plan = bool(getattr(args, "add_plan", False))
    try:
        specs = specs_from_args(args)
        from repogen.storage.commands import build_to_store, store_uri
        uri = store_uri(args.out, getattr(args, "endpoint_url", None))
        if uri is not None and add_plan:
            raise ConfigError(f"--add-plan works on a local repository folder, not {args.out}: add the plan "
                              "locally, then repogen publish it")
        if uri is not None:  # object storage: build into a local staging folder, then publish
            report = build_to_store(lambda out: build_repository(specs, out, force=args.force, progress=not args.json,
                                                                     add_plan=add_plan),
                                    uri, prune=getattr(args, "prune", None), quiet=args.json)
        else:
            report = build_repository(specs, Path(args.out), force=args.force, progress=not args.json,
                                      add_plan=add_plan)
    except RepogenError as exc:
        if args.json:
            print(json.dumps({"ok": False, "error": str(exc), "kind": type(exc).__name__}))
            print(f"repogen build: error: {exc}", file=sys.stderr)
            return 2
        raise
    if args.json:
        print(json.dumps(report.to_dict()))
    else:
        _summary(report)
    return 0
