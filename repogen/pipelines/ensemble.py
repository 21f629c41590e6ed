"""The pipeline models written beside a model that carries a deploy config.

``<model>_pre`` (Python backend: decode + transforms) -> ``<model>`` -> ``<model>_post`` (Python backend:
DB / CTC / detection / segmentation post-processing), tied together by the ensemble ``<model>_pipeline``:

* inputs: ``image`` (BYTES, one encoded JPEG/PNG per request) or, through ``<model>_pipeline_raw``, ``image_raw``
  (UINT8 [H, W, 3], BGR);
* outputs: OCR det ``boxes`` FP32 [n, 4, 2] + ``scores`` FP32 [n]; OCR rec ``texts`` BYTES + ``scores`` FP32;
  detection ``boxes`` FP32 [n, 4] (x1, y1, x2, y2 in source pixels), ``scores`` FP32, ``labels`` BYTES,
  ``label_ids`` INT32; segmentation ``label_map`` INT32 [H, W] at the source size; top-down keypoints
  ``keypoints`` FP32 [K, 3] (x, y in source pixels, confidence) + ``kpt_score`` FP32 [1], for the optional
  ``box`` FP32 [4] input (the person; the whole image without it).

Every request is one image (``max_batch_size: 1`` on the ensemble and the Python models), so requests are
never mixed; the model in the middle may still batch across requests. The Python models copy
``repogen/pipelines/ops.py`` (NumPy, OpenCV, pyclipper only), so the served repository never imports repogen.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from repogen.errors import ConfigError
from repogen.repository.config import stage_config
from repogen.pipelines.deploy_config import DeployConfig, check_size_inputs, input_roles
from repogen.pipelines.members import member_kind_of_pipeline

HERE = Path(__file__).resolve().parent
SERVED = HERE / "served"
INFO = "repogen_info"
# the Python stages' names for the model's tensors: a model input called "image" must not meet the pipeline's
PRE_OUT, POST_IN = "model_in_", "model_out_"
MIN_SIDE, MAX_SIDE = 8, 10000  # per-request image size limits (a 1x1 or 20000-pixel image is refused)
MAX_PIXELS = 1 << 26  # decoded pixels per request (ops.MAX_PIXELS: the served code imports nothing from here)


@dataclass
class Tensor:
    name: str
    dtype: str
    dims: list[int]  # without the batch dim
    optional: bool = False


@dataclass
class GeneratedModel:
    """A model folder the repository writer writes: config text plus files under the version folder."""

    name: str
    config: str
    files: dict[str, bytes] = field(default_factory=dict)  # path relative to the model folder -> content
    meta: dict[str, Any] = field(default_factory=dict)  # on a _pre model: what an OCR system needs to call it
    role: str = "pipeline"  # repogen.repository.layout.ROLES: pre, post, pipeline (the ensembles), system


BOX_COLUMNS = (6, 7, 8)  # detector box rows: PaddleDetection's, and the layout models' with reading-order columns


def outputs_for(kind: str, post: dict[str, Any] | None = None) -> list[Tensor]:
    """The pipeline's answer tensors; a layout analysis model (``post.layout.analysis``) adds ``orders``."""
    if kind == "detection" and ((post or {}).get("layout") or {}).get("analysis"):
        return outputs_for(kind) + [Tensor("orders", "int32", [-1])]
    return {
        "ocr_det": [Tensor("boxes", "float32", [-1, 4, 2]), Tensor("scores", "float32", [-1])],
        "ocr_rec": [Tensor("texts", "bytes", [-1]), Tensor("scores", "float32", [-1])],
        "detection": [Tensor("boxes", "float32", [-1, 4]), Tensor("scores", "float32", [-1]),
                      Tensor("labels", "bytes", [-1]), Tensor("label_ids", "int32", [-1])],
        "segmentation": [Tensor("label_map", "int32", [-1, -1])],
        "classification": [Tensor("class_ids", "int32", [-1]), Tensor("scores", "float32", [-1]),
                           Tensor("labels", "bytes", [-1])],
        # PaddleX's keypoint result: keypoints [K, 3] (x, y in source pixels, confidence) and kpt_score (their mean)
        "keypoint": [Tensor("keypoints", "float32", [-1, 3]), Tensor("kpt_score", "float32", [1])],
    }[kind]


def extra_inputs_for(kind: str) -> list[Tensor]:
    """Pipeline inputs besides the image: a top-down keypoint model's person box [x1, y1, x2, y2] in source pixels
    (optional; without it the whole image is the person, as PaddleX's keypoint predictor takes a bare image)."""
    return [Tensor("box", "float32", [4], optional=True)] if kind == "keypoint" else []


def info_dtype(kind: str) -> str:
    """``repogen_info``'s type: float64 where it carries a keypoint crop's centre and scale (ops.info_vector)."""
    return "float64" if kind == "keypoint" else "float32"


def _tensors(items: list[Tensor]) -> list[dict[str, Any]]:
    return [{"name": t.name, "dtype": t.dtype, "dims": t.dims, "optional": t.optional} for t in items]


def _python_config(name: str, inputs: list[Tensor], outputs: list[Tensor], instances: int,
                   max_batch_size: int = 1) -> str:
    return stage_config(name=name, description="a pipeline stage (Python backend, model.py + pipeline_ops.py).",
                        inputs=_tensors(inputs), outputs=_tensors(outputs), max_batch_size=max_batch_size,
                        cpu_instances=instances)


def _ensemble_config(name: str, image: Tensor, model: str, pre: str, post: str, model_inputs: list[str],
                     model_outputs: list[str], outputs: list[Tensor], extra: list[Tensor] | None = None) -> str:
    internal = {n: f"_model_in_{n}" for n in model_inputs}
    raw_out = {n: f"_model_out_{n}" for n in model_outputs}
    extra = list(extra or [])  # further pipeline inputs (a keypoint model's person box), passed to the pre stage
    steps = [
        {"model": pre, "inputs": [(image.name, image.name)] + [(t.name, t.name) for t in extra],
         "outputs": [(PRE_OUT + n, internal[n]) for n in model_inputs] + [(INFO, f"_{INFO}")]},
        {"model": model, "inputs": [(n, internal[n]) for n in model_inputs],
         "outputs": [(n, raw_out[n]) for n in model_outputs]},
        {"model": post, "inputs": [(POST_IN + n, raw_out[n]) for n in model_outputs] + [(INFO, f"_{INFO}")],
         "outputs": [(t.name, t.name) for t in outputs]},
    ]
    return stage_config(name=name, description=f"{pre} -> {model} -> {post}, one image per request.",
                        inputs=_tensors([image] + extra), outputs=_tensors(outputs), max_batch_size=1, steps=steps)


def pipeline_json(cfg: DeployConfig, model_inputs: list[str], model_outputs: list[Any]) -> dict[str, Any]:
    data: dict[str, Any] = {
        "kind": cfg.kind, "color": cfg.color, "transforms": cfg.transforms, "post": cfg.post,
        "roles": input_roles(model_inputs, str(cfg.path)), "model_outputs": [o.name for o in model_outputs],
        "labels": cfg.labels, "characters": cfg.characters, "min_side": MIN_SIDE, "max_side": MAX_SIDE,
        "max_pixels": MAX_PIXELS, "deploy_config": cfg.path.name,
    }
    if cfg.kind == "detection":
        data.update(box_rows(cfg, model_outputs))
    if cfg.kind == "keypoint":
        heat = [o.name for o in model_outputs if o.dtype == "float32" and len(o.shape) == 4]
        if not heat:
            raise ConfigError(f"{cfg.path}: a top-down keypoint pipeline needs an FP32 heatmap output [N, K, H, W]; "
                              f"the model has {[(o.name, list(o.shape)) for o in model_outputs]}")
        data["heatmap_output"] = heat[0]
    return data


def box_rows(cfg: DeployConfig, model_outputs: list[Any]) -> dict[str, Any]:
    """Which output holds a detector's box rows, and how many columns they have: [N, 6] (class, score, x1, y1, x2,
    y2), or with reading-order columns [N, 7] (order) / [N, 8] (order, vote: PP-DocLayoutV2), which PaddleX's
    layout post-processing sorts by (``ops.layout_postprocess``)."""
    rows = [o for o in model_outputs if o.dtype == "float32" and len(o.shape) == 2 and o.shape[-1] in BOX_COLUMNS]
    rows.sort(key=lambda o: BOX_COLUMNS.index(o.shape[-1]))
    if not rows:
        raise ConfigError(f"{cfg.path}: a detection pipeline needs an FP32 box-row output [N, 6] (class, score, x1, "
                          "y1, x2, y2), or [N, 7] / [N, 8] with reading-order columns; the model has "
                          f"{[(o.name, list(o.shape)) for o in model_outputs]}")
    if (cfg.post.get("layout") or {}).get("analysis") and len(model_outputs) > 2:
        raise ConfigError(f"{cfg.path}: {cfg.model_name} returns {len(model_outputs)} outputs; the layout pipeline "
                          "serves box rows and their count, not region masks (polygons): build with --no-pipeline")
    return {"boxes_output": rows[0].name, "box_columns": int(rows[0].shape[-1])}


def generate(cfg: DeployConfig, model: str, engine: Any, max_batch_size: int, instances: int = 1,
             budget: dict[str, Any] | None = None) -> list[GeneratedModel]:
    """The pre, post and ensemble models for ``model`` (its EngineDesc gives names, dtypes and shapes);
    the Python stages get ``instances`` CPU instances, as many as the model has, so they never throttle it.
    ``budget`` (repogen.build.budget.pixel_budget) bounds the pixels one request may bring to the model."""
    if max_batch_size <= 0:
        raise ConfigError(f"{model}: a pipeline needs a model with a dynamic batch dim (max_batch_size > 0); "
                          f"{cfg.path.name} describes one image per request")
    check_size_inputs(cfg, engine.inputs, model)  # FP32, but for a PaddleDetection 0.x export's INT32 im_size
    names = [t.name for t in engine.inputs]
    data = pipeline_json(cfg, names, engine.outputs)
    if budget:
        data["budget"] = budget
    pre, post, ens = f"{model}_pre", f"{model}_post", f"{model}_pipeline"
    image = Tensor("image", "bytes", [1], optional=True)
    raw = Tensor("image_raw", "uint8", [-1, -1, 3], optional=True)
    model_in = [Tensor(PRE_OUT + t.name, t.dtype, [int(d) for d in t.shape[1:]]) for t in engine.inputs]
    info = Tensor(INFO, info_dtype(cfg.kind), [4])
    extra = extra_inputs_for(cfg.kind)
    # model outputs reach post-processing as the model returns them: detectors return [M, 6] rows for a batch of
    # one, which is not a batch of M, so the post stage takes whole tensors (max_batch_size 0)
    model_out = [Tensor(POST_IN + t.name, t.dtype, [-1] * max(len(t.shape), 1)) for t in engine.outputs]
    outputs = outputs_for(cfg.kind, cfg.post)
    post_out = [Tensor(t.name, t.dtype, [1] + t.dims) for t in outputs]
    ops_src = (HERE / "ops.py").read_bytes()
    common = (SERVED / "common.py").read_bytes()
    payload = json.dumps(data, indent=1).encode()

    def python_files(model_py: str) -> dict[str, bytes]:
        return {"1/model.py": (SERVED / model_py).read_bytes(), "1/pipeline_ops.py": ops_src,
                "1/pipeline_common.py": common, "1/pipeline.json": payload}

    return [
        GeneratedModel(pre, _python_config(pre, [image, raw] + extra, model_in + [info], instances),
                       python_files("pre_model.py"),
                       meta={"model": model, "pipeline": data, "max_batch_size": max_batch_size, "instances": instances},
                       role="pre"),
        GeneratedModel(post, _python_config(post, model_out + [Tensor(INFO, info.dtype, [1, 4])], post_out, instances, 0),
                       python_files("post_model.py"), role="post"),
        GeneratedModel(ens, _ensemble_config(ens, Tensor("image", "bytes", [1]), model, pre, post, names, [o.name for o in engine.outputs],
                                             outputs, extra), {"1/.keep": b""}),
        GeneratedModel(ens + "_raw", _ensemble_config(ens + "_raw", Tensor("image_raw", "uint8", [-1, -1, 3]), model,
                                                      pre, post, names, [o.name for o in engine.outputs], outputs,
                                                      extra),
                       {"1/.keep": b""}),
    ]


OCR_SYSTEM = "ocr_system"
OCR_BATCH = 6  # PaddleX's OCR pipeline recognises crops in batches of 6
SYSTEM_MIN_INSTANCES = 2  # concurrent requests through the system model (see ocr_system)


def ocr_system(generated: list[GeneratedModel], choice: Any = None,
               warn: Callable[[str], None] | None = None) -> list[GeneratedModel]:
    """The PP-OCR system (BLS). ``choice`` (a :class:`~repogen.build.system_spec.OcrSystemSpec`, from the
    spec's ``[ocr_system]``) names its members; without it the system is built when the build holds exactly one
    text detector and one recognizer (and joins the one text-line orientation classifier, if any), and
    ``warn`` hears why nothing was built when there are several."""
    pres = {m.meta["model"]: m.meta for m in generated if m.meta}
    by_kind: dict[str, list[str]] = {}
    for model, meta in pres.items():
        by_kind.setdefault(member_kind_of_pipeline(meta["pipeline"]), []).append(model)
    dets, recs, oris = by_kind.get("ocr_det", []), by_kind.get("ocr_rec", []), by_kind.get("textline", [])
    if choice is None:
        if len(dets) != 1 or len(recs) != 1:
            if dets and recs and warn:
                warn(f"WARNING: {OCR_SYSTEM} not built: the build holds {len(dets)} text detector(s) "
                     f"({', '.join(dets)}) and {len(recs)} recognizer(s) ({', '.join(recs)}); choose them with "
                     "[ocr_system] detector/recognizer in a spec file")
            return []
        if len(oris) > 1 and warn:
            warn(f"WARNING: {OCR_SYSTEM} built without a text-line orientation classifier: the build holds "
                 f"{len(oris)} ({', '.join(oris)}); choose one with [ocr_system] classifier in a spec file")
        name, det, rec = OCR_SYSTEM, pres[dets[0]], pres[recs[0]]
        cls = pres[oris[0]] if len(oris) == 1 else None
    elif not choice.enabled:
        return []
    else:
        def member(model: str, kind: str, role: str) -> dict:
            if model not in pres or member_kind_of_pipeline(pres[model]["pipeline"]) != kind:
                raise ConfigError(f"ocr_system.{role}: {model!r} has no {kind} pipeline in this build")
            return pres[model]

        name = choice.name
        det, rec = member(choice.detector, "ocr_det", "detector"), member(choice.recognizer, "ocr_rec", "recognizer")
        cls = member(choice.classifier, "textline", "classifier") if choice.classifier else None
    def batch(member: dict, asked: int | None, role: str) -> int:
        if asked is None:
            return max(1, min(OCR_BATCH, member["max_batch_size"]))
        if asked > member["max_batch_size"]:  # fewer crops a batch pads differently: other scores than PaddleX's
            raise ConfigError(f"{name}: the {role} batch_size {asked} is above {member['model']}'s max_batch_size "
                              f"{member['max_batch_size']}: build with a --max-batch-size of at least {asked}")
        return asked

    dp, rp = det["pipeline"], rec["pipeline"]
    if len(dp["roles"]) != 1 or len(rp["roles"]) != 1:
        raise ConfigError(f"{name}: text detector and recognizer must take one image input each")
    shape = next(t["image_shape"] for t in rp["transforms"] if t["op"] == "rec_resize")
    data = {
        "color": dp["color"], "min_side": dp["min_side"], "max_side": dp["max_side"],
        "max_pixels": dp.get("max_pixels", MAX_PIXELS),
        "det": {"model": det["model"], "transforms": dp["transforms"], "roles": dp["roles"],
                "output": dp["model_outputs"][0], "post": dp["post"], "budget": dp.get("budget")},
        "rec": {"model": rec["model"], "input": next(iter(rp["roles"])), "output": rp["model_outputs"][0],
                "image_shape": shape, "characters": rp["characters"], "use_space_char": rp["post"]["use_space_char"],
                "batch_size": batch(rec, getattr(choice, "rec_batch_size", None), "recognizer"),
                "score_thresh": float(getattr(choice, "rec_score_thresh", 0.0) or 0.0)},
    }
    if cls is not None:  # a text-line orientation classifier (PaddleX textline_ori: 0_degree / 180_degree)
        op = cls["pipeline"]
        data["cls"] = {"model": cls["model"], "input": next(iter(op["roles"])), "output": op["model_outputs"][0],
                       "transforms": op["transforms"], "color": op["color"],
                       "batch_size": batch(cls, getattr(choice, "cls_batch_size", None), "classifier")}
        if "cls_thresh" in op["post"]:  # PaddleOCR's v2 direction classifier: its labels and threshold decide
            data["cls"].update(labels=op["labels"], cls_thresh=op["post"]["cls_thresh"])
    outputs = [Tensor("boxes", "float32", [-1, 4, 2]), Tensor("texts", "bytes", [-1]), Tensor("scores", "float32", [-1])]
    files = {"1/model.py": (SERVED / "ocr_model.py").read_bytes(), "1/pipeline_ops.py": (HERE / "ops.py").read_bytes(),
             "1/pipeline_common.py": (SERVED / "common.py").read_bytes(),
             "1/pipeline.json": json.dumps(data, indent=1).encode()}
    inputs = [Tensor("image", "bytes", [1], optional=True), Tensor("image_raw", "uint8", [-1, -1, 3], optional=True)]
    # The system model mostly waits on its members (its own steps are ~1-4 % of a request with the official
    # PP-OCR models): with one instance a second client's request queues behind the whole first one, and the
    # detector idles while the recognizer runs. Two let one request's detection overlap another's recognition.
    instances = max(SYSTEM_MIN_INSTANCES, det.get("instances", 1), rec.get("instances", 1))
    return [GeneratedModel(name, _python_config(name, inputs, outputs, instances), files, role="system")]
