"""Read the deploy config Paddle exports beside a model into one typed :class:`DeployConfig`.

Three formats, one description:

* PaddleX 3.x ``inference.yml``: ``Global.model_name``, ``PreProcess.transform_ops`` + ``PostProcess`` (OCR),
  ``Preprocess`` + ``label_list`` + ``draw_threshold`` (detection/layout), ``Deploy.transforms``
  (segmentation), ``Hpi.backend_configs.{tensorrt.dynamic_shapes | paddle_infer.trt_dynamic_shapes}``;
* PaddleDetection 2.x ``infer_cfg.yml``: ``arch``, ``Preprocess``, ``label_list``, ``draw_threshold``;
* PaddleSeg ``deploy.yaml``: ``Deploy.model``, ``Deploy.params``, ``Deploy.transforms``.

Transforms are translated into the canonical steps ``repogen.pipelines.ops`` runs, with the parameter
semantics PaddleX's predictors give them (the reference the pipelines are checked against), so that
differences between the formats (``target_size`` is [h, w] for detection, [w, h] for segmentation; integer
vs named interpolation; ``is_scale``) are settled here, once.

Every value goes through the typed schema in :mod:`repogen.pipelines.config_schema` (one class per transform
and post-processor), and the file through :mod:`repogen.pipelines.bounded_yaml` (regular file, size, alias
expansion and nesting caps): a bad config is one ConfigError line, never a traceback or a runaway load.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from repogen.errors import ConfigError
from repogen.extras import MissingExtraError
from repogen.pipelines.bounded_yaml import YamlLimits, load_yaml_file, read_regular_file

try:  # pydantic comes with the pipelines extra: without it, models with no deploy config still build
    from repogen.pipelines import config_schema as schema
    from repogen.pipelines.config_schema import INTERP_CODES, MAX_LIMIT_DET_MODELS, ValidationError  # noqa: F401
except MissingExtraError:
    schema = None  # type: ignore[assignment]

CONFIG_NAMES = ("inference.yml", "infer_cfg.yml", "deploy.yaml", "deploy.yml")
KINDS = ("ocr_det", "ocr_rec", "detection", "segmentation", "classification", "keypoint")
LIMITS = YamlLimits()  # size, node, text and nesting caps on a deploy config file (docs/robustness.md)
LABELS_MAX_BYTES = 8 << 20  # a labels file (100,000 labels of 80 characters)


@dataclass
class DeployConfig:
    path: Path
    fmt: str  # "paddlex" | "paddledet" | "paddleseg"
    kind: str  # one of KINDS
    model_name: str | None
    arch: str | None
    color: str  # channel order the model was trained on: "BGR" or "RGB"
    transforms: list[dict[str, Any]]  # canonical steps for repogen.pipelines.ops.preprocess
    post: dict[str, Any]  # post-processing parameters for the kind
    labels: list[str] | None = None
    characters: list[str] | None = None  # CTC alphabet from character_dict (without blank/space)
    dynamic_shapes: dict[str, list[list[int]]] = field(default_factory=dict)  # input -> [min, opt, max]
    # inputs beside the image that the transforms compute themselves, name -> dtype (PaddleDetection 0.x exports:
    # im_size, im_info, im_shape, scale_factor by arch); None: the roles of input_roles
    size_inputs: dict[str, str] | None = None

    def default_name(self, fallback: str) -> str:
        """A Triton-safe model name: the exporter's ``model_name``, else the folder name."""
        if not self.model_name:
            return fallback  # the folder name, checked like any name the user gives
        # a model name is a folder, a URL segment and a metric label: letters, digits, _ . - and <= 128 chars
        return re.sub(r"[^A-Za-z0-9_.-]", "_", str(self.model_name))[:128].strip("._-") or fallback


def find_deploy_config(model: Path | str) -> Path | None:
    """The deploy config beside a model (directory, path prefix or model file), or None.

    Only a file inside the model folder counts: a config that is a symlink to a file elsewhere is refused
    unread (the model folder may come from someone else; what it points at is the user's own)."""
    p = Path(model)
    folder = p if p.is_dir() else p.parent
    for name in CONFIG_NAMES:
        candidate = folder / name
        if candidate.is_symlink():
            try:
                target = candidate.resolve(strict=True)
            except (OSError, RuntimeError):
                continue  # dangling or looping: there is no config to read
            if not target.is_relative_to(folder.resolve()):
                raise ConfigError(f"{candidate}: a symlink to a file outside the model folder; the deploy config "
                                  "must be a file inside the folder (copy it in, or name it with --deploy-config)")
        if candidate.is_file():
            return candidate
    return None


def _normalize(scale: float, mean: Any, std: Any, where: str) -> dict:
    """The normalize step for ``scale``, ``mean`` and ``std`` (each a number or 3 numbers)."""
    try:
        checked = schema.NormalizeImage(scale=scale, mean=mean, std=std)
    except ValidationError as exc:
        raise schema.schema_error(where, exc) from None
    return schema.normalize_step(checked.scale, checked.mean, checked.std)


def is_unsupported(exc: BaseException) -> bool:
    """Whether a read failed only because repogen has no pipeline for a well-formed config (the model alone
    can still be served), rather than on a bad value."""
    return schema is not None and isinstance(exc, schema.UnsupportedConfigError)


def _load(path: Path) -> dict:
    if schema is None:
        raise MissingExtraError("pydantic", "pipelines", f"{path}: reading a deploy config")
    data = load_yaml_file(path, "deploy config", LIMITS)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a deploy config is a YAML mapping, got {type(data).__name__}")
    return data


def _identity(data: dict, path: Path) -> tuple[schema.Identity, str]:
    """The checked ``Global.model_name`` / ``arch`` / ``Hpi`` of a loaded deploy config and its format."""
    ident = schema.validate(schema.Identity, data, path)
    fmt = "paddlex" if ("Global" in data or "Hpi" in data) else "paddleseg" if "Deploy" in data else "paddledet"
    return ident, fmt


def _section(data: dict, key: str) -> Any:
    """``data[key]``: a missing or null section is an empty one."""
    value = data.get(key)
    return {} if value is None else value


def read_deploy_config(path: Path | str) -> DeployConfig:
    """Parse one deploy config file; every problem is a ConfigError naming the file, the key path and what was
    expected (an :class:`UnsupportedConfigError` when it is well formed but has no repogen pipeline)."""
    path = Path(path)
    data = _load(path)
    ident, fmt = _identity(data, path)
    model_name, arch, shapes = ident.name(), ident.arch, ident.dynamic_shapes()

    def config(kind: str, ctx: schema.StepContext, transforms: list, post: dict, **extra: Any) -> DeployConfig:
        return DeployConfig(path, fmt, kind, model_name, arch, ctx.color, transforms, post, dynamic_shapes=shapes,
                            **extra)

    if "PreProcess" in data and "PostProcess" in data:
        pre = schema.validate(schema.PreProcessSection, _section(data, "PreProcess"), path, ("PreProcess",))
        post = _section(data, "PostProcess")
        head = schema.validate(schema.PostProcessHead, post, path, ("PostProcess",))
        ctx = schema.StepContext(model_name)
        ops = schema.parse_transforms(pre.transform_ops, schema.OCR_TRANSFORMS, path, ("PreProcess", "transform_ops"),
                                      "one_key")
        transforms = [step for op in ops for step in op.steps(ctx)]
        if head.name == "DBPostProcess":
            db = schema.validate(schema.DBPostProcess, post, path, ("PostProcess",))
            if not any(t["op"] == "det_resize" for t in transforms):
                raise schema.UnsupportedConfigError(f"{path}: a DBPostProcess model needs DetResizeForTest in its "
                                             "transform_ops")
            return config("ocr_det", ctx, transforms, db.model_dump())
        if head.name == "CTCLabelDecode":
            ctc = schema.validate(schema.CTCLabelDecode, post, path, ("PostProcess",))
            if not any(t["op"] == "rec_resize" for t in transforms):
                raise schema.UnsupportedConfigError(f"{path}: a CTCLabelDecode model needs RecResizeImg in its "
                                             "transform_ops")
            chars = list(ctc.character_dict)
            if chars[0] == "blank":
                chars = chars[1:]
            return config("ocr_rec", ctx, transforms, {"use_space_char": ctc.use_space_char}, characters=chars)
        if head.name == "ClsPostProcess":  # PaddleOCR's v2 direction classifier (PaddleOCR's own export form)
            cls = schema.validate(schema.ClsPostProcess, post, path, ("PostProcess",))
            if not any(t["op"] == "cls_resize" for t in transforms):
                raise schema.UnsupportedConfigError(f"{path}: a ClsPostProcess model needs ClsResizeImg in its "
                                                    "transform_ops")
            return config("classification", ctx, transforms, {"topk": 1, "cls_thresh": cls.cls_thresh},
                          labels=list(cls.label_list))
        if head.name is None and head.Topk is not None:
            topk = schema.validate(schema.Topk, head.Topk, path, ("PostProcess", "Topk"))
            return config("classification", ctx, transforms, {"topk": topk.topk},
                          labels=None if topk.label_list is None else list(topk.label_list))
        raise schema.UnsupportedConfigError(schema.one_line(
            f"{path}: PostProcess.name {head.name!r} has no repogen implementation (known: DBPostProcess, "
            "CTCLabelDecode, ClsPostProcess, Topk); build with --no-pipeline to serve the model alone"))
    if "Preprocess" in data and is_fluid(data):
        return _fluid_detection(data, path, config)
    if "Preprocess" in data:
        det = schema.validate(schema.DetectionSection, data, path)
        pre = data["Preprocess"]
        if pre is not None and not isinstance(pre, list):
            raise schema.fail(path, ("Preprocess",), f"expected a list of transforms, got {type(pre).__name__}")
        ctx = schema.StepContext(model_name)
        ops = schema.parse_transforms(pre, schema.DET_TRANSFORMS, path, ("Preprocess",), "type_key")
        labels = None if det.label_list is None else list(det.label_list)
        steps = [step for op in ops for step in op.steps(ctx)]
        if any(step["op"] == "topdown_affine" for step in steps):
            return _keypoint_config(path, steps, config, ctx, labels)
        return config("detection", ctx, steps, det.layout_post(model_name), labels=labels)
    if "Deploy" in data:
        deploy = schema.validate(schema.DeploySection, _section(data, "Deploy"), path, ("Deploy",))
        ctx = schema.StepContext(model_name)
        ops = schema.parse_transforms(deploy.transforms, schema.SEG_TRANSFORMS, path, ("Deploy", "transforms"),
                                      "type_key")
        # PaddleX's segmentation predictor always runs Resize, Normalize, ToCHW in that order
        resize = schema.SegResize().steps(ctx)[0]
        norm = schema.SegNormalize().steps(ctx)[0]
        for step in (step for op in ops for step in op.steps(ctx)):
            resize, norm = (step, norm) if step["op"] == "resize" else (resize, step)
        return config("segmentation", ctx, [resize, norm, {"op": "to_chw"}], {})
    raise schema.UnsupportedConfigError(f"{path}: not a deploy config repogen knows: expected PreProcess/PostProcess "
                                 "(PaddleX OCR), Preprocess (PaddleX / PaddleDetection detection) or "
                                 "Deploy.transforms (PaddleSeg)")


def is_fluid(data: dict) -> bool:
    """A PaddleDetection 0.x export: its exporter writes ``mode: fluid`` (2.x writes ``mode: paddle``), and
    ``use_python_inference``, which only 0.x has."""
    mode = data.get("mode")
    return mode == "fluid" or (mode is None and "use_python_inference" in data)


def _fluid_detection(data: dict, path: Path, config: Any) -> DeployConfig:
    """PaddleDetection 0.x ``infer_cfg.yml``: its transforms with 0.x's semantics, then the size inputs its deploy
    feeds (``fluid_feeds``), the labels aligned with the model's class ids."""
    det = schema.validate(schema.FluidDetectionSection, data, path)
    pre = data["Preprocess"]
    if pre is not None and not isinstance(pre, list):
        raise schema.fail(path, ("Preprocess",), f"expected a list of transforms, got {type(pre).__name__}")
    ctx = schema.StepContext(None, arch=det.arch)
    ops = schema.parse_transforms(pre, schema.FLUID_DET_TRANSFORMS, path, ("Preprocess",), "type_key")
    steps = schema.transform_steps(ops, schema.FLUID_DET_TRANSFORMS, ctx, path, ("Preprocess",))
    feeds = schema.fluid_feeds_step(det.arch, ctx, path)
    labels = schema.fluid_labels(None if det.label_list is None else list(det.label_list), det.with_background)
    return config("detection", ctx, steps + [feeds], {"threshold": det.draw_threshold}, labels=labels,
                  size_inputs={name: dtype for name, (_, dtype) in feeds["feeds"].items()})


def check_size_inputs(cfg: DeployConfig, inputs: list[Any], where: str) -> None:
    """The model's inputs (``.name``, ``.dtype``) against what the pre-processing feeds: FP32 images, and the size
    inputs a PaddleDetection 0.x export takes by name and dtype (0.x's deploy feeds them by name)."""
    roles = input_roles([t.name for t in inputs], where)
    sizes = cfg.size_inputs
    for t in inputs:
        if sizes is not None and roles[t.name] != "image":
            if t.name not in sizes:
                raise ConfigError(f"{where}: input {t.name} is not one PaddleDetection 0.x feeds a {cfg.arch} export "
                                  f"(it feeds image{''.join(', ' + n for n in sizes)}; {cfg.path.name})")
            if t.dtype != sizes[t.name]:
                raise ConfigError(f"{where}: input {t.name} is {t.dtype}; PaddleDetection 0.x feeds it as "
                                  f"{sizes[t.name]} ({cfg.path.name})")
        elif t.dtype != "float32":
            raise ConfigError(f"{where}: pipeline pre-processing produces FP32 inputs; input {t.name} is {t.dtype}")
        elif roles[t.name] == "im_info":
            raise ConfigError(f"{where}: input {t.name} is fed only to PaddleDetection 0.x exports; {cfg.path.name} "
                              "is not a 0.x infer_cfg.yml (mode: fluid)")


def _keypoint_config(path: Path, steps: list[dict[str, Any]], config: Callable[..., DeployConfig], ctx: Any,
                     labels: list[str] | None) -> DeployConfig:
    """A top-down keypoint export (PaddleDetection ``TopDownEvalAffine``: HRNet, PP-TinyPose): the crop is the
    only sizing step, so the model always gets ``trainsize`` and its heatmaps map back through the crop alone;
    they are decoded as PaddleX's keypoint predictor does (DARK, always on there)."""
    sizing = [s["op"] for s in steps if s["op"] in ("resize", "resize_short", "center_crop", "pad_stride",
                                                     "topdown_affine")]
    if sizing != ["topdown_affine"]:
        raise schema.UnsupportedConfigError(schema.one_line(
            f"{path}: Preprocess: TopDownEvalAffine must be the only sizing transform of a top-down keypoint model "
            f"(got {sizing}); build with --no-pipeline to serve the model alone"))
    return config("keypoint", ctx, steps, {"use_dark": True}, labels=labels)


def read_model_facts(path: Path | str) -> DeployConfig:
    """What serving the model alone takes from a deploy config, whatever its transforms and post-processors:
    ``Global.model_name``, the Hpi dynamic shapes, and whether it is a PaddleDetection-style detector (whose
    [M, 6] box block must not be batched across requests). ``kind`` is "model" unless it is such a detector;
    no transforms, so profiles come from the dynamic shapes or from the user. Used by --no-pipeline builds and
    for default names, so a config repogen cannot make a pipeline of never blocks the model itself; a bad
    value in what it reads is still an error."""
    path = Path(path)
    data = _load(path)
    ident, fmt = _identity(data, path)
    kind = "detection" if "Preprocess" in data and not _top_down(data["Preprocess"]) else "model"
    return DeployConfig(path, fmt, kind, ident.name(), ident.arch, "BGR", [], {},
                        dynamic_shapes=ident.dynamic_shapes())


def _top_down(preprocess: Any) -> bool:
    """A keypoint model's transforms: its heatmaps are split by batch row, so it batches like any model."""
    return isinstance(preprocess, list) and any(isinstance(t, dict) and t.get("type") == "TopDownEvalAffine"
                                                for t in preprocess)


def output_classes(engine: Any, max_batch_size: int) -> tuple[str, int] | None:
    """(name, class count) of the first output, the one Triton's ``label_filename`` and a Topk pipeline read,
    when its per-request shape is fully known; None otherwise (a detector's [M, 6] rows, dynamic dims)."""
    if not getattr(engine, "outputs", None):
        return None
    out = engine.outputs[0]
    dims = [int(d) for d in out.shape]
    if max_batch_size > 0:
        dims = dims[1:]  # the batch dim
    if not dims or any(d <= 0 for d in dims):
        return None
    return out.name, math.prod(dims)


def _label_lines(path: Path) -> int:
    """Labels in a ``label_filename`` file as Triton counts them: one a line, a final newline ends the last."""
    text = read_regular_file(path, LABELS_MAX_BYTES, "labels file").decode("utf-8", errors="replace")
    return len(text.split("\n")) - (1 if text.endswith("\n") else 0) if text else 0


def check_labels(spec: Any, cfg: DeployConfig | None, engine: Any, max_batch_size: int) -> None:
    """Labels name the classes of the first output: as many as it has, or every answer is mislabelled (and a
    recognizer's class beyond its dictionary fails the request that meets it)."""
    if cfg is not None and cfg.kind == "ocr_rec" and cfg.characters is not None and getattr(engine, "outputs", None):
        out = engine.outputs[0]
        # PaddleX's CTCLabelDecode: blank + the dictionary (+ " " with use_space_char) over the last axis
        expected = len(cfg.characters) + 1 + int(bool(cfg.post.get("use_space_char")))
        if len(out.shape) >= 2 and int(out.shape[-1]) > 0 and int(out.shape[-1]) != expected:
            raise ConfigError(f"{cfg.path}: PostProcess.character_dict has {len(cfg.characters)} characters (+ blank"
                              f"{' + space' if cfg.post.get('use_space_char') else ''} = {expected} classes) but "
                              f"the model's output {out.name} has {out.shape[-1]} classes")
    known = output_classes(engine, max_batch_size)
    if known is None:
        return
    name, classes = known
    if cfg is not None and cfg.kind == "classification" and cfg.labels is not None and len(cfg.labels) != classes:
        raise ConfigError(f"{cfg.path}: PostProcess.Topk.label_list has {len(cfg.labels)} labels but the model's "
                          f"output {name} has {classes} classes")
    labels = getattr(spec, "labels", None)
    if labels is not None:
        count = _label_lines(Path(labels))
        if count != classes:
            raise ConfigError(f"{spec.name}: labels file {labels} has {count} labels but the model's output {name} "
                              f"has {classes} classes")


def input_roles(input_names: list[str], where: str) -> dict[str, str]:
    """Which model input takes the image and which take PaddleDetection's ``im_shape`` / ``scale_factor``."""
    roles = {}
    for n in input_names:
        low = n.lower()
        roles[n] = "im_shape" if low in ("im_shape", "im_size") else "scale_factor" if low == "scale_factor" \
            else "im_info" if low == "im_info" else "image"
    if list(roles.values()).count("image") != 1:
        raise ConfigError(f"{where}: cannot tell which input takes the image among {input_names}")
    return roles
