"""What one model of a build should become: ``ModelSpec``, read from a ``repogen.toml`` or from CLI options.

Every key of the TOML file is checked here (unknown keys, wrong types, out-of-range values), so the rest
of the build works on values that are already known to be sane. Errors name the spec file, the model and
the key.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from repogen.errors import ConfigError
from repogen.repository import serving_options
from repogen.repository.serving_options import CudaGraphSpec, VersionPolicy
from repogen.build import system_spec
from repogen.build.deploy_configs import default_model_name, paddleocr_dictionary, paddleocr_export
from repogen.pipelines.paddleocr2 import PIPELINE_KINDS
from repogen.naming import check_table, parse_renames, validate_name  # noqa: F401 - validate_name: the spec's API

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

TARGETS = ("tensorrt", "paddle", "numpy", "auto")
PRECISIONS = ("fp32", "fp16", "int8")
CALIB_METHODS = ("max", "percentile", "entropy")
INSTANCE_KINDS = {"cpu": "KIND_CPU", "gpu": "KIND_GPU", "auto": "KIND_AUTO",
                  "kind_cpu": "KIND_CPU", "kind_gpu": "KIND_GPU", "kind_auto": "KIND_AUTO"}
WARMUP_DATA = ("zero", "random")
EXAMPLE_DIR = Path(__file__).resolve().parent.parent / "examples" / "tiny_cnn"
EXAMPLE_SOURCE = "@example"  # spelling of the bundled example in a spec file

_DIMS_RE = re.compile(r"^-?\d+(x-?\d+)*$")


@dataclass
class InstanceGroup:
    count: int = 1
    kind: str = ""  # Triton's spelling (KIND_GPU...); "" lets the target choose
    gpus: list[int] = field(default_factory=list)
    profile: list[int] = field(default_factory=list)  # TensorRT optimisation profiles this group uses


@dataclass
class DynamicBatching:
    preferred_batch_size: list[int] = field(default_factory=list)
    max_queue_delay_microseconds: int = 0
    enabled: bool = True  # False: no dynamic_batching block even though the model can batch


@dataclass
class Warmup:
    batch_size: int = 1
    data: str = "zero"  # "zero" | "random"
    count: int = 1


@dataclass
class ModelSpec:
    """One model of a build. Paths are absolute once a spec has been read."""

    source: Path
    name: str
    version: int = 1
    target: str = "auto"
    precision: str = "fp32"
    # Optimisation profiles in trtexec syntax, one list entry per profile ("image:1x3x32x32,other:...");
    # ``shape`` is the min=opt=max shorthand. This is exactly what repogen.trt.profiles.make_profiles takes.
    shape: list[str] = field(default_factory=list)
    min_shapes: list[str] = field(default_factory=list)
    opt_shapes: list[str] = field(default_factory=list)
    max_shapes: list[str] = field(default_factory=list)
    max_batch_size: int | None = None  # None: derived from the profiles (0 when the batch dim is fixed)
    instance_groups: list[InstanceGroup] = field(default_factory=list)  # empty: one group, target's kind
    dynamic_batching: DynamicBatching | None = None  # None: dynamic_batching {} when the model can batch
    cuda_graphs: bool = False
    cuda_graph_spec: CudaGraphSpec | None = None  # graphs per batch size; None: Triton's default (opt shapes)
    cpu_threads: int | None = None  # paddle target; None: cores // CPU instances, when the instance starts
    execution_context_allocation_strategy: str | None = None  # tensorrt: "static" | "on_profile_change"
    version_policy: VersionPolicy | None = None
    response_cache: bool = False
    warmup: Warmup | None = None
    labels: Path | None = None  # label_filename of the first output
    template: Path | None = None  # custom config.pbtxt template
    workspace_mb: int | None = None
    optimization_level: int | None = None
    check: bool = True
    partition: bool | None = None  # TensorRT regions + Python remainder in an ensemble; None: only under auto
    calib_data: Path | None = None  # precision "int8": calibration samples (repogen.trt.calibrate)
    calib_method: str = "max"
    deploy_config: Path | None = None  # repogen.pipelines: the exporter's config (default: found beside the model)
    pipeline: bool = True  # False: build the model alone, without _pre/_post/_pipeline models
    # a PaddleOCR 2.x export (no deploy config) built with PaddleOCR's defaults: "ocr-det" | "ocr-rec" | "ocr-cls",
    # asked for (spec ``pipeline = "ocr-rec"``, --pipeline) or told by its folder name (*_det_infer, ...)
    pipeline_kind: str | None = None
    char_dict: Path | None = None  # an ocr-rec export's character dictionary (named, or the .txt beside it)
    instance_memory_mb: int | None = None  # pipelines' pixel budget (repogen/build/budget.py); None: derived
    # deploy-config values replacing the model's own (``transforms``, ``post``): what a PaddleX pipeline config
    # runs the model with (repogen.build.paddlex_pipeline)
    deploy_overrides: dict[str, Any] = field(default_factory=dict)
    # renamed inputs/outputs: Paddle name -> Triton name (repogen/naming.py)
    input_names: dict[str, str] = field(default_factory=dict)
    output_names: dict[str, str] = field(default_factory=dict)

    @property
    def version_folder(self) -> str:
        return str(self.version)


class BuildSpecs(list):
    """The models of one build (a list of ModelSpec) plus the spec file's build-wide keys."""

    ocr_system: Any = None  # repogen.build.system_spec.OcrSystemSpec from [ocr_system]; None: automatic


INT64_MAX = 2**63 - 1  # Triton parses version folder names as int64


def validate_version(version: Any, where: str) -> int:
    """Triton reads version folders as positive integers; "01" or "0" would be skipped or mis-ordered."""
    if isinstance(version, bool) or not isinstance(version, (int, str)):
        raise ConfigError(f"{where}: version must be a positive integer, got {version!r}")
    text = str(version)
    if not re.fullmatch(r"[1-9][0-9]*", text):
        raise ConfigError(f"{where}: version folder {text!r} must be a positive integer not starting with 0")
    if len(text) > 19 or int(text) > INT64_MAX:
        raise ConfigError(f"{where}: version {text} is above {INT64_MAX}, the largest version Triton reads")
    return int(text)


def default_name(source: Path) -> str:
    """tiny_cnn/inference.pdmodel -> tiny_cnn; resnet50.pdmodel -> resnet50; a folder -> its name."""
    p = source
    if p.is_dir():
        return p.name
    stem = p.name.split(".")[0] if p.suffix else p.name
    if stem in ("inference", "model", "__model__", ""):
        return p.parent.resolve().name
    return stem


def model_default_name(source: Path, deploy_config: Path | None = None) -> str:
    """The name a model gets when the user gives none: the exporter's ``Global.model_name`` (PaddleX's
    ``inference.yml``, made Triton-safe) when a deploy config sits beside the model, else :func:`default_name`."""
    return default_model_name(source, deploy_config, default_name(source))


def _check_shapes(values: list[str], where: str) -> list[str]:
    for profile in values:
        for part in profile.split(","):
            name, _, dims = part.rpartition(":")
            if not name or not _DIMS_RE.match(dims.strip()):
                raise ConfigError(f"{where}: {part!r} is not NAME:DIMS (e.g. image:1x3x224x224)")
    return values


def _positive(value: Any, where: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{where}: expected an integer >= {minimum}, got {value!r}")
    return value


def _choice(value: Any, choices: tuple[str, ...], where: str) -> str:
    if value not in choices:
        raise ConfigError(f"{where}: {value!r} is not one of {', '.join(choices)}")
    return value


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    return value


def _int_list(value: Any, where: str, minimum: int = 0) -> list[int]:
    if not isinstance(value, list):
        raise ConfigError(f"{where}: expected a list of integers, got {value!r}")
    return [_positive(v, f"{where}[{i}]", minimum) for i, v in enumerate(value)]


def _table(value: Any, where: str, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a table, got {value!r}")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})")
    return value


def _path(value: Any, base: Path, where: str, must_exist: bool = True) -> Path:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: expected a path string, got {value!r}")
    p = Path(value)
    p = p if p.is_absolute() else base / p
    if must_exist and not p.exists():
        raise ConfigError(f"{where}: {p} does not exist")
    return p.resolve()


def _model_source(value: Any, base: Path, where: str) -> Path:
    """A model folder, model file, or path prefix (``dir/inference``, as inspect and check take it);
    a prefix becomes the model file it names."""
    p = _path(value, base, where, must_exist=False)
    if p.exists():
        return p
    from repogen.errors import ModelFormatError
    from repogen.paddle.loader import detect

    try:
        return detect(p).model_file.resolve()
    except ModelFormatError:
        raise ConfigError(f"{where}: {p} does not exist (expected a model folder, a model file, or a path "
                          "prefix such as dir/inference)") from None


def _labels(value: Any, base: Path, where: str) -> Path:
    """A labels file is copied beside config.pbtxt under its own name: it must be a file, and its name must
    not be one the model folder already uses (a version folder, the config, the manifest)."""
    p = _path(value, base, where)
    if not p.is_file():
        raise ConfigError(f"{where}: {p} is not a file")
    if p.name.isdigit() or p.name in ("config.pbtxt", "repogen.json"):
        raise ConfigError(f"{where}: a labels file may not be called {p.name!r} (the model folder uses that "
                          "name for a version folder, the config or the manifest)")
    return p


def _dims(value: Any, where: str) -> str:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where}: expected a non-empty list of dims, got {value!r}")
    for i, d in enumerate(value):
        _positive(d, f"{where}[{i}]", 0)
    return "x".join(str(d) for d in value)


def _profiles(value: Any, where: str) -> tuple[list[str], list[str], list[str]]:
    """``[[model.profile]] image = {min=[..], opt=[..], max=[..]}`` -> trtexec strings, one per profile."""
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where}: expected one or more [[model.profile]] tables")
    mins, opts, maxs = [], [], []
    for i, prof in enumerate(value):
        pw = f"{where}[{i}]"
        if not isinstance(prof, dict) or not prof:
            raise ConfigError(f"{pw}: expected a table of input = {{min, opt, max}}")
        parts: dict[str, list[str]] = {"min": [], "opt": [], "max": []}
        for input_name, ranges in prof.items():
            iw = f"{pw}.{input_name}"
            _table(ranges, iw, {"min", "opt", "max"})
            if "min" not in ranges or "max" not in ranges:
                raise ConfigError(f"{iw}: needs both min and max (opt defaults to max)")
            for key in ("min", "opt", "max"):
                dims = _dims(ranges.get(key, ranges["max"]), f"{iw}.{key}")
                parts[key].append(f"{input_name}:{dims}")
        mins.append(",".join(parts["min"]))
        opts.append(",".join(parts["opt"]))
        maxs.append(",".join(parts["max"]))
    return mins, opts, maxs


_MODEL_KEYS = {
    "source", "name", "version", "target", "precision", "profile", "shape", "max_batch_size",
    "instance_group", "dynamic_batching", "cuda_graphs", "warmup", "labels", "template",
    "workspace_mb", "optimization_level", "check", "calib_data", "calib_method", "input_names", "output_names", "partition",
    "pipeline", "deploy_config", "char_dict",
} | serving_options.KEYS


def _pipeline_value(value: Any, where: str) -> tuple[bool, str | None]:
    """``pipeline``: true / false, or the PaddleOCR 2.x kind of an export without a deploy config."""
    if isinstance(value, str) and value in PIPELINE_KINDS:
        return True, value
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: expected true, false or one of {', '.join(PIPELINE_KINDS)} (a PaddleOCR 2.x "
                          f"export built with PaddleOCR's defaults), got {value!r}")
    return value, None


def resolve_paddleocr(spec: ModelSpec, kind: str | None, char_dict: Path | None, where: str,
                      strict: bool = True) -> None:
    """``spec.pipeline_kind`` and ``spec.char_dict`` for a PaddleOCR 2.x export (asked for, or told by its folder
    name when it has no deploy config); ``strict``: a dictionary for a model that is not such a recognizer is an
    error."""
    spec.pipeline_kind = paddleocr_export(spec.source, kind, spec.deploy_config, spec.pipeline, where)
    spec.char_dict = paddleocr_dictionary(spec.source, spec.pipeline_kind, char_dict, spec.name, where, strict)


def spec_from_table(table: Any, base: Path, where: str, resolve: bool = True) -> ModelSpec:
    """One ``[[model]]`` table -> ModelSpec. ``base`` resolves relative paths (the spec file's folder).
    ``resolve``: settle the PaddleOCR 2.x kind here (the command line does it once its options are applied)."""
    if isinstance(table, dict) and isinstance(table.get("name"), str):
        where = f"{where} ({table['name']})"
    if isinstance(table, dict) and "ocr_system" in table:  # TOML files a key written after [[model]] under it
        raise ConfigError(f"{where}: ocr_system is a top-level key: write it before the first [[model]] (or as an "
                          "[ocr_system] table)")
    t = _table(table, where, _MODEL_KEYS)
    src_value = t.get("source", EXAMPLE_SOURCE)
    if src_value == EXAMPLE_SOURCE:
        source = EXAMPLE_DIR
        labels_default: Path | None = EXAMPLE_DIR / "labels.txt"
    else:
        source = _model_source(src_value, base, f"{where}.source")
        labels_default = None
    deploy_config = _path(t["deploy_config"], base, f"{where}.deploy_config") if "deploy_config" in t else None
    name = t["name"] if "name" in t else model_default_name(source, deploy_config)
    spec = ModelSpec(source=source, name=validate_name(name, f"{where}.name"))
    spec.deploy_config = deploy_config
    kind = None
    if "pipeline" in t:
        spec.pipeline, kind = _pipeline_value(t["pipeline"], f"{where}.pipeline")
    char_dict = _path(t["char_dict"], base, f"{where}.char_dict") if "char_dict" in t else None
    if resolve:
        resolve_paddleocr(spec, kind, char_dict, where)
    if "version" in t:
        spec.version = validate_version(t["version"], f"{where}.version")
    if "target" in t:
        spec.target = _choice(t["target"], TARGETS, f"{where}.target")
    if "precision" in t:
        spec.precision = _choice(t["precision"], PRECISIONS, f"{where}.precision")
    if "profile" in t:
        spec.min_shapes, spec.opt_shapes, spec.max_shapes = _profiles(t["profile"], f"{where}.profile")
    if "shape" in t:
        if "profile" in t:
            raise ConfigError(f"{where}.shape: give either shape or [[model.profile]], not both")
        shape = t["shape"]
        if not isinstance(shape, dict) or not shape:
            raise ConfigError(f"{where}.shape: expected a table input = [dims]")
        spec.shape = [",".join(f"{k}:{_dims(v, f'{where}.shape.{k}')}" for k, v in shape.items())]
    if "max_batch_size" in t:
        spec.max_batch_size = _positive(t["max_batch_size"], f"{where}.max_batch_size", 0)
    if "instance_group" in t:
        groups = t["instance_group"]
        if not isinstance(groups, list):
            raise ConfigError(f"{where}.instance_group: expected [[model.instance_group]] tables")
        for i, g in enumerate(groups):
            gw = f"{where}.instance_group[{i}]"
            _table(g, gw, {"count", "kind", "gpus", "profile"})
            kind = g.get("kind", "")  # "": the target's natural kind (GPU for plans, CPU for paddle)
            if not isinstance(kind, str) or (kind and kind.lower() not in INSTANCE_KINDS):
                raise ConfigError(f"{gw}.kind: {kind!r} is not one of cpu, gpu, auto")
            spec.instance_groups.append(InstanceGroup(
                count=_positive(g.get("count", 1), f"{gw}.count"),
                kind=INSTANCE_KINDS[kind.lower()] if kind else "",
                gpus=_int_list(g.get("gpus", []), f"{gw}.gpus"),
                profile=_int_list(g.get("profile", []), f"{gw}.profile"),
            ))
    if t.get("dynamic_batching") is False:
        spec.dynamic_batching = DynamicBatching(enabled=False)
    elif "dynamic_batching" in t:
        db = t["dynamic_batching"]
        if db is True:
            db = {}
        dw = f"{where}.dynamic_batching"
        _table(db, dw, {"preferred_batch_size", "max_queue_delay_microseconds"})
        spec.dynamic_batching = DynamicBatching(
            preferred_batch_size=_int_list(db.get("preferred_batch_size", []), f"{dw}.preferred_batch_size", 1),
            max_queue_delay_microseconds=_positive(db.get("max_queue_delay_microseconds", 0),
                                                   f"{dw}.max_queue_delay_microseconds", 0),
        )
    if "cuda_graphs" in t:
        spec.cuda_graphs, spec.cuda_graph_spec = serving_options.parse_cuda_graphs(t["cuda_graphs"],
                                                                                   f"{where}.cuda_graphs")
    serving_options.apply_table(spec, t, where)
    if "warmup" in t:
        w = t["warmup"]
        if w is True:
            w = {}
        ww = f"{where}.warmup"
        _table(w, ww, {"batch_size", "data", "count"})
        spec.warmup = Warmup(batch_size=_positive(w.get("batch_size", 1), f"{ww}.batch_size"),
                             data=_choice(w.get("data", "zero"), WARMUP_DATA, f"{ww}.data"),
                             count=_positive(w.get("count", 1), f"{ww}.count"))
    if "labels" in t:
        spec.labels = _labels(t["labels"], base, f"{where}.labels") if t["labels"] else None
    else:
        spec.labels = labels_default
    if "template" in t:
        spec.template = _path(t["template"], base, f"{where}.template")
    if "workspace_mb" in t:
        spec.workspace_mb = _positive(t["workspace_mb"], f"{where}.workspace_mb")
    if "optimization_level" in t:
        level = t["optimization_level"]
        if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= 5:
            raise ConfigError(f"{where}.optimization_level: expected 0..5, got {level!r}")
        spec.optimization_level = level
    if "check" in t:
        spec.check = _bool(t["check"], f"{where}.check")
    if "partition" in t:
        spec.partition = _bool(t["partition"], f"{where}.partition")
    if "calib_data" in t:
        spec.calib_data = _path(t["calib_data"], base, f"{where}.calib_data")
    if "calib_method" in t:
        spec.calib_method = _choice(t["calib_method"], CALIB_METHODS, f"{where}.calib_method")
    for key in ("input_names", "output_names"):
        if key in t:
            setattr(spec, key, check_table(t[key], f"{where}.{key}"))
    _check_int8(spec, where)
    return spec


def _check_int8(spec: ModelSpec, where: str) -> None:
    if spec.precision == "int8" and spec.calib_data is None:
        raise ConfigError(f"{where}: precision int8 needs calib_data (--calib-data DIR|FILE.npz)")


def load_spec_file(path: str | Path) -> BuildSpecs:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: spec file not found") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a TOML spec file: byte {exc.start} is not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the spec file: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except RecursionError:
        # tomllib parses nested arrays/tables recursively; a hostile file exhausts the stack
        raise ConfigError(f"{path}: not a usable spec file: arrays or tables nested too deeply") from None
    unknown = sorted(set(data) - {"model", "ocr_system"})
    if unknown:
        raise ConfigError(f"{path}: unknown top-level key {unknown[0]!r} (expected [[model]] tables and "
                          "optionally [ocr_system])")
    models = data.get("model")
    if not isinstance(models, list) or not models:
        raise ConfigError(f"{path}: no [[model]] tables")
    base = path.resolve().parent
    specs = BuildSpecs(spec_from_table(m, base, f"{path}: model[{i}]") for i, m in enumerate(models))
    check_unique(specs, str(path))
    if "ocr_system" in data:
        specs.ocr_system = system_spec.parse(data["ocr_system"], specs, str(path))
    return specs


def check_unique(specs: list[ModelSpec], where: str) -> None:
    seen: dict[str, ModelSpec] = {}
    for s in specs:
        if s.name in seen:
            raise ConfigError(f"{where}: model name {s.name!r} appears twice ({seen[s.name].source} and {s.source}; "
                              "without a `name`, a model is named by its deploy config's Global.model_name, else by "
                              "its folder): give one of them a different `name` in a spec file")
        seen[s.name] = s


@dataclass
class BuildOptions:
    """What ``repogen build`` was given on its command line, typed; None or empty: not given."""

    models: list[str] = field(default_factory=list)
    spec_file: str | None = None
    name: str | None = None
    version: int | None = None
    target: str | None = None
    fp16: bool = False
    int8: bool = False
    calib_data: str | None = None
    calib_method: str | None = None
    shape: list[str] = field(default_factory=list)
    min_shapes: list[str] = field(default_factory=list)
    opt_shapes: list[str] = field(default_factory=list)
    max_shapes: list[str] = field(default_factory=list)
    max_batch_size: int | None = None
    instances: int | None = None
    template: str | None = None
    serving: dict[str, Any] = field(default_factory=dict)  # serving option dest -> value (serving_options.CLI_DESTS)
    input_names: str | None = None
    output_names: str | None = None
    check: bool = True
    partition: bool | None = None
    deploy_config: str | None = None
    pipeline: bool = True
    pipeline_kind: str | None = None  # --pipeline ocr-det|ocr-rec|ocr-cls
    char_dict: str | None = None  # --char-dict FILE: the recognizer's dictionary
    paddlex_pipeline: str | None = None  # a PaddleX pipeline config (OCR.yaml...) naming the models


_SHAPE_OPTIONS = ("shape", "min_shapes", "opt_shapes", "max_shapes")


def _int8_options(spec: ModelSpec, o: BuildOptions, where: str) -> None:
    """--int8 / --calib-data / --calib-method onto a spec."""
    if o.int8:
        if o.fp16:
            raise ConfigError("--int8 and --fp16 exclude each other")
        spec.precision = "int8"
    if o.calib_data:
        spec.calib_data = _path(o.calib_data, Path.cwd(), "--calib-data")
    if o.calib_method and (o.int8 or spec.precision == "int8"):
        spec.calib_method = _choice(o.calib_method, CALIB_METHODS, "--calib-method")
    _check_int8(spec, where)


def specs_from_options(o: BuildOptions) -> BuildSpecs:
    """The ``repogen build`` options -> specs. With a spec file the file is authoritative; the per-model
    options that would silently lose against it are refused."""
    if o.spec_file:
        clashing = [opt for opt, val in (("MODEL", o.models), ("--paddlex-pipeline", o.paddlex_pipeline), ("--name", o.name is not None),
                                         ("--version-folder", o.version), ("--max-batch-size", o.max_batch_size),
                                         ("--instances", o.instances), ("--template", o.template),
                                         *((opt, True) for opt in serving_options.given_cli_options(o.serving)),
                                         ("--input-names", o.input_names), ("--output-names", o.output_names),
                                         ("--pipeline", o.pipeline_kind), ("--char-dict", o.char_dict),
                                         *((f"--{s.replace('_', '-')}", getattr(o, s)) for s in _SHAPE_OPTIONS))
                    if val]
        if clashing:
            raise ConfigError(f"{clashing[0]} cannot be combined with --spec (put it in the spec file)")
        specs = load_spec_file(o.spec_file)
        for s in specs:
            if o.target:
                s.target = o.target
            if o.fp16:
                s.precision = "fp16"
            _int8_options(s, o, str(o.spec_file))
            if not o.check:
                s.check = False
            if o.partition is not None:
                s.partition = o.partition
        return specs

    pipeline = None
    if o.paddlex_pipeline:  # the config names the models, their names and what they run with
        clashing = [opt for opt, val in (("MODEL", o.models), ("--name", o.name is not None),
                                         ("--deploy-config", o.deploy_config), ("--no-pipeline", not o.pipeline))
                    if val]
        if clashing:
            raise ConfigError(f"{clashing[0]} cannot be combined with --paddlex-pipeline (the pipeline config names "
                              "the models and their settings)")
        # imported here: its schema needs pydantic (the pipelines extra), which builds without this option do not
        from repogen.build.paddlex_pipeline import read_paddlex_pipeline

        pipeline = read_paddlex_pipeline(o.paddlex_pipeline)
    sources = [m.source for m in pipeline.models] if pipeline else \
        [_model_source(m, Path.cwd(), f"model {m}") for m in o.models]
    if o.name is not None and len(sources) > 1:
        raise ConfigError("--name needs exactly one MODEL")
    table: dict[str, Any] = {}
    if not sources:
        table["source"] = EXAMPLE_SOURCE
    specs = BuildSpecs()
    for src in sources or [None]:
        t = dict(table)
        if src is not None:
            t["source"] = str(src)
        if o.name is not None:
            t["name"] = o.name
        specs.append(spec_from_table(t, Path.cwd(), "command line", resolve=False))
    for s in specs:
        if o.version is not None:
            s.version = validate_version(o.version, "--version-folder")
        s.target = o.target or "auto"
        s.precision = "fp16" if o.fp16 else "fp32"
        _int8_options(s, o, "command line")
        for opt in _SHAPE_OPTIONS:
            setattr(s, opt, _check_shapes(list(getattr(o, opt) or []), f"--{opt.replace('_', '-')}"))
        if o.max_batch_size is not None:
            s.max_batch_size = _positive(o.max_batch_size, "--max-batch-size", 0)
        if o.instances is not None:
            s.instance_groups = [InstanceGroup(count=_positive(o.instances, "--instances"), kind="")]
        if o.template:
            s.template = _path(o.template, Path.cwd(), "--template")
        serving_options.apply_cli(s, o.serving, DynamicBatching)
        s.input_names = parse_renames(o.input_names, "--input-names")
        s.output_names = parse_renames(o.output_names, "--output-names")
        s.check = o.check
        s.partition = o.partition
        if o.deploy_config:
            s.deploy_config = _path(o.deploy_config, Path.cwd(), "--deploy-config")
            if o.name is None:  # the named config, not one beside the model, gives the default name
                s.name = validate_name(model_default_name(s.source, s.deploy_config), "--deploy-config")
        s.pipeline = o.pipeline
    if o.deploy_config and len(specs) > 1:
        raise ConfigError("--deploy-config needs exactly one MODEL")
    _paddleocr_options(specs, o)
    if pipeline is not None:
        _apply_paddlex_pipeline(specs, pipeline)
    check_unique(specs, "command line")
    return specs


def _paddleocr_options(specs: list[ModelSpec], o: BuildOptions) -> None:
    """--pipeline (one MODEL: the PaddleOCR 2.x kind of an export without a deploy config) and --char-dict (the
    dictionary of the build's PaddleOCR 2.x recognizer), after the other options settled each spec."""
    if o.pipeline_kind is not None:
        if len(specs) > 1:
            raise ConfigError("--pipeline needs exactly one MODEL (several PaddleOCR 2.x exports are told apart by "
                              "their folder names: *_det_infer, *_rec_infer, *_cls_infer)")
        if not o.pipeline:
            raise ConfigError(f"--pipeline {o.pipeline_kind} and --no-pipeline exclude each other")
        _choice(o.pipeline_kind, PIPELINE_KINDS, "--pipeline")
    char_dict = _path(o.char_dict, Path.cwd(), "--char-dict") if o.char_dict else None
    for s in specs:
        resolve_paddleocr(s, o.pipeline_kind, char_dict, "command line", strict=False)
    if char_dict is not None and not any(s.pipeline_kind == "ocr-rec" for s in specs):
        raise ConfigError(f"--char-dict {o.char_dict}: none of the models is a PaddleOCR 2.x text recognizer (a "
                          "*_rec_infer folder without a deploy config, or --pipeline ocr-rec)")


def _apply_paddlex_pipeline(specs: BuildSpecs, pipeline: Any) -> None:
    """Names, deploy-config values and the OCR system a PaddleX pipeline config gives its models."""
    where = f"{pipeline.path}: SubModules"
    for s, m in zip(specs, pipeline.models):
        s.name = validate_name(m.name, f"{where}.{m.key}.model_name")
        s.deploy_overrides = m.overrides
    check_unique(specs, str(pipeline.path))
    if pipeline.ocr_system is not None:
        chosen = pipeline.ocr_system
        system = system_spec.parse({"detector": chosen.detector, "recognizer": chosen.recognizer,
                                    "classifier": chosen.classifier or False}, specs, str(pipeline.path))
        system.rec_batch_size, system.cls_batch_size = chosen.rec_batch_size, chosen.cls_batch_size
        system.rec_score_thresh = chosen.rec_score_thresh
        specs.ocr_system = system
