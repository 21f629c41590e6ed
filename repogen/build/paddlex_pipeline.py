"""A PaddleX pipeline config (``OCR.yaml``, ``object_detection.yaml``, ``semantic_segmentation.yaml``,
``image_classification.yaml``) as a build's input: ``repogen build --paddlex-pipeline OCR.yaml --out REPO``.

PaddleX users run ``paddlex.create_pipeline(config)``: the config's ``SubModules`` name each model's folder
(``model_dir``) and override what the model's own ``inference.yml`` says, with the pipeline's defaults where the
config is silent. This module reads the config (the bounded YAML loader, a pydantic schema: one error line naming
the file and key path), checks each ``model_dir`` as PaddleX does (its ``Global.model_name`` must be the
``model_name`` the config gives) and returns, per model, the deploy-config values PaddleX's pipeline would run it
with, so the generated pipelines answer as ``create_pipeline(config)`` does:

* ``OCR`` (``text_type: general``): the detector's ``limit_side_len`` (960) / ``limit_type`` (max) /
  ``max_side_limit`` (4000) / ``input_shape``, ``thresh`` (0.3) / ``box_thresh`` (0.6) / ``unclip_ratio`` (2.0) --
  the OCR pipeline's defaults, not the model's, when the key is absent; a zero or null value keeps the model's
  (PaddleX's ``value or model_value``); ``use_textline_orientation`` (the classifier joins the system or not);
  ``TextRecognition.score_thresh`` (lines scored below it are dropped) and ``batch_size`` (crops recognised
  together, padded to the widest: it changes scores); the OCR system (``ocr_system``) is built from these.
* ``object_detection``: ``threshold`` (else the model's ``draw_threshold``).
* ``image_classification``: ``topk`` (5 when absent, as the pipeline passes it).
* ``semantic_segmentation``: the model as exported (PaddleX reads ``target_size`` but its ``predict`` does not
  apply it unless a caller passes one).

What repogen cannot build as PaddleX would run it is refused with the key that asks for it: the document
pre-processor sub-pipeline (``use_doc_preprocessor: true``), seal text (``text_type: seal``), word boxes, per-class
thresholds, ``img_size``, layout NMS/unclip/merge settings, a recogniser ``input_shape``, a missing ``model_dir``
(PaddleX would download the model; repogen builds local exports).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from repogen.build.system_spec import OcrSystemSpec
from repogen.errors import ConfigError
from repogen.pipelines.bounded_yaml import YamlLimits, load_yaml_file
from repogen.pipelines.config_schema import (BeforeValidator, Count, Field, Name, Schema, Side, Unit,
                                             UnsupportedConfigError, _not_bool, fail, validate)
from repogen.pipelines.deploy_config import DeployConfig, find_deploy_config, read_deploy_config
from repogen.pipelines.members import member_kind

LIMITS = YamlLimits(max_bytes=1 << 20, max_nodes=20_000)  # a pipeline config is a few dozen keys

Ratio = Annotated[float, BeforeValidator(_not_bool), Field(gt=0.0, le=100.0, allow_inf_nan=False)]
Chw = Annotated[list[Side], Field(min_length=3, max_length=3)]


class SubModule(Schema):
    """One ``SubModules`` entry: the model PaddleX's ``create_model`` makes from it."""

    module_name: Name | None = None
    model_name: Name
    model_dir: Name | None = None
    batch_size: Count = 1  # create_model's default


class TextDetection(SubModule):
    limit_side_len: Side | None = 960  # the OCR pipeline's defaults (text_type general)
    limit_type: Literal["max", "min", "resize_long"] | None = "max"
    max_side_limit: Side | None = 4000
    thresh: Unit | None = 0.3
    box_thresh: Unit | None = 0.6
    unclip_ratio: Ratio | None = 2.0
    input_shape: Chw | None = None


class TextRecognition(SubModule):
    score_thresh: Annotated[float, BeforeValidator(_not_bool), Field(ge=0.0, le=1.0, allow_inf_nan=False)] | None = 0.0
    return_word_box: bool = False
    input_shape: Chw | None = None


class OcrSubModules(Schema):
    TextDetection: TextDetection
    TextRecognition: TextRecognition
    TextLineOrientation: SubModule | None = None


class OcrPipeline(Schema):
    pipeline_name: Literal["OCR"]
    text_type: Literal["general", "seal"]  # PaddleX's OCR pipeline requires it
    use_doc_preprocessor: bool = True  # PaddleX's defaults
    use_textline_orientation: bool = True
    SubModules: OcrSubModules


class ObjectDetection(SubModule):
    threshold: Unit | dict | None = None
    img_size: Any = None
    layout_nms: Any = None
    layout_unclip_ratio: Any = None
    layout_merge_bboxes_mode: Any = None


class DetectionPipeline(Schema):
    pipeline_name: Literal["object_detection"]
    SubModules: dict[Literal["ObjectDetection"], ObjectDetection]


class ImageClassification(SubModule):
    topk: Count | None = None


class ClassificationPipeline(Schema):
    pipeline_name: Literal["image_classification"]
    SubModules: dict[Literal["ImageClassification"], ImageClassification]


class SegmentationPipeline(Schema):
    pipeline_name: Literal["semantic_segmentation"]
    SubModules: dict[Literal["SemanticSegmentation"], SubModule]


class Head(Schema):
    pipeline_name: Name


PIPELINES = {"OCR": OcrPipeline, "object_detection": DetectionPipeline, "image_classification": ClassificationPipeline,
             "semantic_segmentation": SegmentationPipeline}
KINDS = {("OCR", "TextDetection"): "ocr_det", ("OCR", "TextRecognition"): "ocr_rec",
         ("OCR", "TextLineOrientation"): "textline", ("object_detection", "ObjectDetection"): "detection",
         ("image_classification", "ImageClassification"): "classification",
         ("semantic_segmentation", "SemanticSegmentation"): "segmentation"}


@dataclass
class PipelineModel:
    """One model of the pipeline: its folder, its name (the config's ``model_name``) and the deploy-config
    values the pipeline runs it with (``transforms`` / ``post`` replacing the model's own)."""

    key: str  # SubModules.<key>
    source: Path
    name: str
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass
class PaddlexPipeline:
    path: Path
    name: str  # pipeline_name
    models: list[PipelineModel]
    ocr_system: OcrSystemSpec | None = None  # OCR: the system's members and the recognition settings


def _model(path: Path, pipeline: str, key: str, sub: SubModule) -> tuple[PipelineModel, DeployConfig]:
    """The SubModule's model folder, checked as PaddleX checks it, and its deploy config."""
    loc = ("SubModules", key)
    if sub.model_dir is None:
        raise fail(path, loc + ("model_dir",), f"is null: PaddleX would download {sub.model_name}; repogen builds "
                   "from a local export: set model_dir to the exported model's folder")
    folder = Path(sub.model_dir).expanduser()  # relative to the working directory, as PaddleX reads it
    if not folder.is_dir():
        raise fail(path, loc + ("model_dir",), f"{folder} is not a folder (expected the exported model's folder)")
    found = find_deploy_config(folder)
    if found is None or found.name != "inference.yml":
        raise fail(path, loc + ("model_dir",), f"{folder} has no inference.yml (PaddleX reads a model's settings "
                   "from it)")
    cfg = read_deploy_config(found)
    if cfg.model_name and cfg.model_name != sub.model_name:  # PaddleX: "Model name mismatch"
        raise fail(path, loc + ("model_name",), f"{sub.model_name!r} but {found} names the model "
                   f"{cfg.model_name!r} (Global.model_name); PaddleX refuses the mismatch too")
    want = KINDS[(pipeline, key)]
    if member_kind(cfg) != want:
        raise fail(path, loc + ("model_dir",), f"{folder} is a {member_kind(cfg)} model (its inference.yml), not "
                   f"the {want} model SubModules.{key} takes")
    return PipelineModel(key, folder.resolve(), sub.model_name), cfg


def _or(value: Any, model_value: Any) -> Any:
    """PaddleX's predictors take ``value or model_value``: zero or null falls back to the model's own."""
    return value if value else model_value


def _detector_overrides(det: TextDetection, cfg: DeployConfig) -> dict[str, Any]:
    transforms = []
    for step in cfg.transforms:
        if step["op"] == "det_resize":
            if det.input_shape is not None:  # PaddleX: input_shape wins over the model's resize settings
                step = {"op": "det_resize", "input_shape": list(det.input_shape)}
            elif "limit_side_len" in step:  # the model resizes by limit (no fixed image_shape of its own)
                step = dict(step, limit_side_len=_or(det.limit_side_len, step["limit_side_len"]),
                            limit_type=_or(det.limit_type, step["limit_type"]),
                            max_side_limit=det.max_side_limit if det.max_side_limit is not None
                            else step.get("max_side_limit", 4000))
        transforms.append(step)
    post = dict(cfg.post, thresh=_or(det.thresh, cfg.post["thresh"]),
                box_thresh=_or(det.box_thresh, cfg.post["box_thresh"]),
                unclip_ratio=_or(det.unclip_ratio, cfg.post["unclip_ratio"]))
    return {"transforms": transforms, "post": post}


def _ocr(path: Path, cfg: OcrPipeline) -> PaddlexPipeline:
    if cfg.text_type != "general":
        raise fail(path, ("text_type",), "seal (polygon text, the seal pipeline's settings) is not built by repogen; "
                   "general is", unsupported=True)
    if cfg.use_doc_preprocessor:
        raise fail(path, ("use_doc_preprocessor",), "true needs the document pre-processing sub-pipeline "
                   "(orientation classifier, UVDoc unwarping), which repogen does not build; set it to false",
                   unsupported=True)
    subs = cfg.SubModules
    rec = subs.TextRecognition
    if rec.return_word_box:
        raise fail(path, ("SubModules", "TextRecognition", "return_word_box"), "true (word boxes) is not built by "
                   "repogen; set it to false", unsupported=True)
    if rec.input_shape is not None:
        raise fail(path, ("SubModules", "TextRecognition", "input_shape"), "is not built by repogen (the "
                   "recogniser's inference.yml gives its input shape); remove it", unsupported=True)
    det_model, det_cfg = _model(path, "OCR", "TextDetection", subs.TextDetection)
    det_model.overrides = _detector_overrides(subs.TextDetection, det_cfg)
    rec_model, _ = _model(path, "OCR", "TextRecognition", rec)
    models = [det_model, rec_model]
    cls_model = None
    if cfg.use_textline_orientation:
        if subs.TextLineOrientation is None:
            raise fail(path, ("SubModules", "TextLineOrientation"), "is required when use_textline_orientation is "
                       "true (PaddleX: config error for textline_orientation_model)")
        cls_model, _ = _model(path, "OCR", "TextLineOrientation", subs.TextLineOrientation)
        models.append(cls_model)
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        raise fail(path, ("SubModules",), f"two SubModules name the same model ({', '.join(names)})")
    system = OcrSystemSpec(detector=det_model.name, recognizer=rec_model.name,
                           classifier=cls_model.name if cls_model else None)
    system.rec_batch_size, system.rec_score_thresh = rec.batch_size, float(rec.score_thresh or 0.0)
    system.cls_batch_size = subs.TextLineOrientation.batch_size if cls_model else None
    return PaddlexPipeline(path, "OCR", models, system)


def _single(path: Path, name: str, key: str, sub: SubModule) -> PaddlexPipeline:
    model, cfg = _model(path, name, key, sub)
    loc = ("SubModules", key)
    if isinstance(sub, ObjectDetection):
        for unsupported in ("img_size", "layout_nms", "layout_unclip_ratio", "layout_merge_bboxes_mode"):
            if getattr(sub, unsupported) is not None:
                raise fail(path, loc + (unsupported,), "is not built by repogen (the model's inference.yml settings "
                           "are served); remove it or set it to null", unsupported=True)
        if isinstance(sub.threshold, dict):
            raise fail(path, loc + ("threshold",), "per-class thresholds are not built by repogen; give one number",
                       unsupported=True)
        if sub.threshold is not None:
            model.overrides = {"post": dict(cfg.post, threshold=float(sub.threshold))}
    elif isinstance(sub, ImageClassification):
        model.overrides = {"post": dict(cfg.post, topk=sub.topk or 5)}  # the pipeline passes topk=5 by default
    return PaddlexPipeline(path, name, [model])


def read_paddlex_pipeline(path: Path | str) -> PaddlexPipeline:
    """Read and check a PaddleX pipeline config and the model folders it names."""
    path = Path(path)
    data = load_yaml_file(path, "PaddleX pipeline config", LIMITS)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a PaddleX pipeline config is a YAML mapping, got {type(data).__name__}")
    name = validate(Head, data, path).pipeline_name
    if name not in PIPELINES:
        raise UnsupportedConfigError(f"{path}: pipeline_name {name[:80]!r} is not built by repogen (known: "
                                     f"{', '.join(PIPELINES)})")
    cfg = validate(PIPELINES[name], data, path)
    if isinstance(cfg, OcrPipeline):
        return _ocr(path, cfg)
    if len(cfg.SubModules) != 1:
        raise fail(path, ("SubModules",), f"expected the pipeline's one model, got {len(cfg.SubModules)} entries")
    (key, sub), = cfg.SubModules.items()
    return _single(path, name, key, sub)
