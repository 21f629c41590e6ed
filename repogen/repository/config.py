"""config.pbtxt: render from a Jinja2 template, parse against Triton's ModelConfig, cross-check the engine.

The cross-check takes the engine as plain data (:class:`EngineDesc`: I/O names, numpy dtypes, full shapes
and optimisation profiles), so the rules can be tested without TensorRT, and the paddle target is held to
exactly the same I/O contract as a plan would be.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from repogen.errors import ConfigError
from repogen.repository import profile_use, serving_options, templating
from repogen.repository.warmup import check_warmup, warmup_shapes

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "templates"
TEMPLATES = {"tensorrt": "tensorrt.pbtxt.j2", "paddle": "paddle.pbtxt.j2", "numpy": "numpy.pbtxt.j2"}
MODEL_PY_TEMPLATE = "paddle_model.py.j2"
DEFAULT_MAX_BATCH = 8  # when the batch dim is dynamic and no profile or --max-batch-size says otherwise

TRITON_DTYPES = {
    "bool": "TYPE_BOOL", "uint8": "TYPE_UINT8", "int8": "TYPE_INT8", "int16": "TYPE_INT16",
    "int32": "TYPE_INT32", "int64": "TYPE_INT64", "float16": "TYPE_FP16", "bfloat16": "TYPE_BF16",
    "float32": "TYPE_FP32", "float64": "TYPE_FP64", "bytes": "TYPE_STRING",
}

Shape = tuple[int, ...]
ProfileShapes = Mapping[str, tuple[Sequence[int], Sequence[int], Sequence[int]]]  # name -> (min, opt, max)


@dataclass(frozen=True)
class TensorDesc:
    name: str
    dtype: str  # numpy spelling
    shape: Shape  # full shape, -1 for a dynamic dim


@dataclass
class EngineDesc:
    """What a built engine (or the paddle predictor standing in for it) accepts and returns."""

    inputs: list[TensorDesc]
    outputs: list[TensorDesc]
    profiles: list[ProfileShapes] = field(default_factory=list)

    def input(self, name: str) -> TensorDesc | None:
        return next((t for t in self.inputs if t.name == name), None)

    def output(self, name: str) -> TensorDesc | None:
        return next((t for t in self.outputs if t.name == name), None)


def triton_dtype(dtype: str, where: str) -> str:
    try:
        return TRITON_DTYPES[dtype]
    except KeyError:
        raise ConfigError(f"{where}: dtype {dtype} has no Triton data type") from None


def batch_dynamic(engine: EngineDesc) -> bool:
    """A model can batch when every input and output has a dynamic leading dim."""
    tensors = engine.inputs + engine.outputs
    return bool(tensors) and all(t.shape and t.shape[0] == -1 for t in tensors)


def _batch_inputs(engine: EngineDesc) -> list[str]:
    return [t.name for t in engine.inputs if t.shape and t.shape[0] == -1]


def profile_batch_max(engine: EngineDesc, groups: Sequence[Any] = ()) -> int | None:
    """The engine's max batch as Triton derives it (largest profile max across the profiles in use), taken
    per instance group, and the smallest over the groups: every instance must take every batch the
    dynamic batcher may send it."""
    if not engine.profiles:
        return None
    sets = profile_use.group_profile_sets(groups, len(engine.profiles))
    maxima = [m for s in sets if (m := profile_use.max_batch(engine.profiles, _batch_inputs(engine), s)) is not None]
    return min(maxima) if maxima else None


def derive_max_batch(engine: EngineDesc, requested: int | None, groups: Sequence[Any] = ()) -> int:
    if requested is not None:
        return requested
    if not batch_dynamic(engine):
        return 0
    return profile_batch_max(engine, groups) or DEFAULT_MAX_BATCH


def config_dims(shape: Shape, max_batch_size: int) -> list[int]:
    return list(shape[1:] if max_batch_size > 0 else shape)


def config_context(*, name: str, target: str, engine: EngineDesc, max_batch_size: int, spec: Any,
                   default_kind: str, labels_filename: str | None,
                   cc_model_filenames: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Everything a config template may use. Plain dicts and lists, so user templates stay simple."""

    def tensor(t: TensorDesc, label: str | None = None) -> dict[str, Any]:
        dims = config_dims(t.shape, max_batch_size)
        return {"name": t.name, "data_type": triton_dtype(t.dtype, t.name), "dtype": t.dtype,
                "dims": dims or [1], "reshape": not dims, "label_filename": label}

    outputs = [tensor(t, labels_filename if i == 0 else None) for i, t in enumerate(engine.outputs)]
    groups = [{"count": g.count, "kind": g.kind or default_kind, "gpus": list(g.gpus), "profile": list(g.profile)}
              for g in (spec.instance_groups or [])] or [{"count": 1, "kind": default_kind, "gpus": [], "profile": []}]
    warm = spec.warmup
    return serving_options.context(spec, target, engine, max_batch_size, dict(cc_model_filenames or {})) | {
        "name": name,
        "target": target,
        "max_batch_size": max_batch_size,
        "inputs": [tensor(t) for t in engine.inputs],
        "outputs": outputs,
        "instance_groups": groups,
        "cuda_graphs": bool(spec.cuda_graphs) and target == "tensorrt",
        "warmup": None if warm is None else _warmup_context(warm, engine, max_batch_size, spec, name),
        "profiles": [{k: [list(v) for v in rng] for k, rng in p.items()} for p in engine.profiles],
    }


def _warmup_context(warm: Any, engine: EngineDesc, max_batch_size: int, spec: Any, name: str) -> dict[str, Any]:
    batch = warm.batch_size if max_batch_size > 0 else 1
    shapes = warmup_shapes(engine, max_batch_size, spec.instance_groups or [], batch, f"{name}: warmup")
    return {"batch_size": batch, "count": warm.count, "data": warm.data,
            "inputs": [{"name": t.name, "data_type": triton_dtype(t.dtype, t.name),
                        "dims": config_dims(tuple(shapes[t.name]), max_batch_size) or [1]} for t in engine.inputs]}


def template_job(template: str | Path, context: Mapping[str, Any]) -> tuple[templating.Job, bool]:
    """The render of ``template`` (a bundled template name, tensorrt.pbtxt.j2, or the path of a user template)
    and whether it is the user's. A user template is read here; it may import the bundled macros
    (``_io.pbtxt.j2``) and nothing else."""
    path = Path(template)
    if path.is_absolute() or path.parent != Path("."):
        sources = {str(template): templating.read_template(path)} | templating.bundled_macros(TEMPLATE_DIR)
        return templating.Job(str(template), str(template), sources, context), True
    sources = templating.bundled_sources(TEMPLATE_DIR)
    if str(template) not in sources:
        raise ConfigError(f"{template}: no such bundled template (bundled: {', '.join(sorted(sources))})")
    return templating.Job(str(template), str(template), sources, context), False


def render_template(template: str | Path, context: Mapping[str, Any]) -> str:
    """``template`` rendered (repository.templating): a user's in a child process with a memory and CPU cap,
    repogen's own here; any failure is one ConfigError line naming the template and line."""
    job, users = template_job(template, context)
    return templating.render(job, isolated=users)


def stage_config(*, name: str, description: str, inputs: Sequence[Mapping[str, Any]],
                 outputs: Sequence[Mapping[str, Any]], max_batch_size: int, cpu_instances: int = 0,
                 steps: Sequence[Mapping[str, Any]] | None = None,
                 parameters: Mapping[str, str] | None = None) -> str:
    """config.pbtxt of a model repogen composes around a converted one (a Python-backend stage, or an ensemble
    when ``steps`` are given), from the same bundled templates as every other config. Tensors are
    ``{name, dtype (numpy spelling or "bytes"), dims (without the batch dim), optional}``; steps are
    ``{model, inputs: [(step tensor, ensemble tensor)], outputs: [...]}``; ``parameters``: the config's
    string parameters (a Python stage's, e.g. the PaddleX route a protocol model answers)."""
    def tensor(t: Mapping[str, Any]) -> dict[str, Any]:
        return {"name": t["name"], "data_type": triton_dtype(t["dtype"], f"{name}: {t['name']}"),
                "dims": list(t["dims"]), "reshape": False, "label_filename": None, "optional": t.get("optional")}
    context = {"name": name, "description": description, "max_batch_size": max_batch_size,
               "inputs": [tensor(t) for t in inputs], "outputs": [tensor(t) for t in outputs],
               "instance_groups": [{"count": cpu_instances, "kind": "KIND_CPU", "gpus": [], "profile": []}]
               if cpu_instances else [],
               "dynamic_batching": None, "warmup": None, "steps": list(steps or []),
               "parameters": dict(parameters or {})}
    text = render_template("ensemble.pbtxt.j2" if steps else "python.pbtxt.j2", context)
    text = re.sub(r"\n{3,}", "\n\n", text).rstrip() + "\n"
    parse_config(text, f"{name}/config.pbtxt")
    return text


def parse_config(text: str, where: str) -> model_config_pb2.ModelConfig:
    """Triton's own schema: unknown fields and enum values are errors, as they are for the server."""
    config = model_config_pb2.ModelConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as exc:
        raise ConfigError(f"{where}: not a valid Triton ModelConfig: {exc}") from None
    return config


def _dtype_name(value: int) -> str:
    return model_config_pb2.DataType.Name(value)


def cross_check(config: model_config_pb2.ModelConfig, engine: EngineDesc, *, name: str, target: str,
                version_folder: str, where: str = "config.pbtxt") -> None:
    """Raise one ConfigError listing every way ``config`` disagrees with ``engine`` or with Triton's rules."""
    problems: list[str] = []
    add = problems.append

    if config.name and config.name != name:
        add(f"name {config.name!r} differs from the model folder {name!r}")
    if not re.fullmatch(r"[1-9][0-9]*", version_folder):
        add(f"version folder {version_folder!r} must be a positive integer not starting with 0")
    if target == "tensorrt":
        if config.backend == "tensorrt_plan":
            add('backend: "tensorrt_plan" is not a Triton backend; write platform: "tensorrt_plan"')
        elif not (config.platform == "tensorrt_plan" or config.backend == "tensorrt"):
            add(f'a plan needs platform: "tensorrt_plan" (got platform {config.platform!r}, '
                f'backend {config.backend!r})')
    elif target in ("paddle", "numpy", "python") and config.backend != "python":
        add(f'the {target} target is a Python-backend model: backend must be "python", got {config.backend!r}')

    mbs = config.max_batch_size
    if mbs < 0:
        add(f"max_batch_size {mbs} is negative")
    if mbs > 0:
        fixed = [t.name for t in engine.inputs + engine.outputs if not t.shape or t.shape[0] != -1]
        if fixed:
            add(f"max_batch_size {mbs} > 0 but {', '.join(fixed)} has no dynamic leading (batch) dim; "
                "use max_batch_size: 0")
        groups = list(config.instance_group)
        sets = profile_use.group_profile_sets(groups, len(engine.profiles))
        for gi, indices in enumerate(sets if engine.profiles else []):
            which = f"instance_group[{gi}]" if groups else "the model's instances"
            limit = profile_use.max_batch(engine.profiles, _batch_inputs(engine), indices)
            if limit is not None and mbs > limit:
                add(f"max_batch_size {mbs} exceeds the engine's max batch {limit} (largest profile max of the "
                    f"batch dim across profiles {indices}, which {which} uses); Triton would refuse to load it")
                continue
            gaps = profile_use.uncovered_batches(engine.profiles, _batch_inputs(engine), indices, mbs)
            if gaps:
                add(f"batch sizes {profile_use.compress(gaps)} (of 1..{mbs}) fit no profile {indices} that {which} "
                    "uses; the dynamic batcher may form them and the instance would fail those requests")

    for kind, declared, actual in (("input", config.input, engine.inputs), ("output", config.output,
                                                                              engine.outputs)):
        by_name = {t.name: t for t in actual}
        seen = set()
        for io in declared:
            seen.add(io.name)
            t = by_name.get(io.name)
            if t is None:
                add(f"{kind} {io.name!r} is not an engine {kind} (engine has: {', '.join(by_name) or 'none'})")
                continue
            want = TRITON_DTYPES.get(t.dtype)
            if io.data_type != model_config_pb2.DataType.Value(want or "TYPE_INVALID"):
                add(f"{kind} {io.name}: data_type {_dtype_name(io.data_type)} but the engine has {t.dtype} "
                    f"({want})")
            _check_dims(io, t, mbs, engine.profiles if kind == "input" else [], kind, add)
        for missing in [n for n in by_name if n not in seen]:
            add(f"engine {kind} {missing!r} is missing from the config")

    profile_names = {str(i) for i in range(len(engine.profiles))}
    for gi, group in enumerate(config.instance_group):
        for p in group.profile:
            if p not in profile_names:
                add(f"instance_group[{gi}] profile {p!r} does not exist (engine has {len(engine.profiles)})")
    if config.HasField("dynamic_batching"):
        if mbs == 0:
            add("dynamic_batching needs max_batch_size > 0")
        for size in config.dynamic_batching.preferred_batch_size:
            if mbs > 0 and not 1 <= size <= mbs:
                add(f"dynamic_batching preferred_batch_size {size} is outside 1..{mbs}")
    if target != "tensorrt" and config.optimization.cuda.graphs:
        add("optimization.cuda.graphs only applies to TensorRT plans")
    check_warmup(config, engine, add)
    serving_options.check(config, engine, target, version_folder, add)

    if problems:
        raise ConfigError(f"{where}: " + ("\n  " if len(problems) > 1 else "") + "\n  ".join(problems))


def _check_dims(io: Any, t: TensorDesc, mbs: int, profiles: list[ProfileShapes], kind: str, add) -> None:
    dims = list(io.reshape.shape) if io.HasField("reshape") else list(io.dims)
    shape = list(t.shape)
    if mbs > 0:
        if len(dims) == len(shape) and len(shape) > 0:
            add(f"{kind} {io.name}: dims {list(io.dims)} include the batch dim; with max_batch_size > 0 "
                f"leave it out (engine shape {shape} -> dims {shape[1:]})")
            return
        shape = shape[1:]
    if len(dims) != len(shape):
        add(f"{kind} {io.name}: dims {list(io.dims)} have rank {len(dims)} but the engine's "
            f"{'non-batch ' if mbs > 0 else ''}shape {shape} has rank {len(shape)}")
        return
    offset = 1 if mbs > 0 else 0
    for axis, (d, e) in enumerate(zip(dims, shape)):
        if e >= 0:
            if d != e:
                add(f"{kind} {io.name}: dim {axis + offset} is {d} in the config but {e} in the engine")
            continue
        if d == -1:
            continue
        for pi, prof in enumerate(profiles):
            if io.name in prof:
                lo, _, hi = prof[io.name]
                if not lo[axis + offset] <= d <= hi[axis + offset]:
                    add(f"{kind} {io.name}: dim {axis + offset} = {d} is outside profile {pi}'s range "
                        f"[{lo[axis + offset]}, {hi[axis + offset]}]")


def render_and_check(*, template: str | Path, context: Mapping[str, Any], engine: EngineDesc, name: str,
                     target: str, version_folder: str) -> tuple[str, model_config_pb2.ModelConfig]:
    text = re.sub(r"\n{3,}", "\n\n", render_template(template, context)).rstrip() + "\n"
    where = f"config.pbtxt of {name} (from {template})"
    config = parse_config(text, where)
    cross_check(config, engine, name=name, target=target, version_folder=version_folder, where=where)
    return text, config
