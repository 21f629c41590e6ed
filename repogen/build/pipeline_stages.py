"""What ``repogen build`` asks of the pipelines package (the few lines in build.py call these).

* :func:`deploy_config` - the model's deploy config (beside it, or ``spec.deploy_config``), or None;
* :func:`fill_profiles` - optimization profiles from the config when the user gave no shape flags;
* :func:`pipeline_models` - the ``_pre`` / ``_post`` / ``_pipeline`` models to write beside the model, and the
  ``_paddlex`` model answering PaddleX's serving protocol over the pipeline.
* :func:`deploy_config_files` - the deploy config the build used, written beside the model.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from repogen.build.deploy_configs import deploy_config  # noqa: F401 - the build reads configs through here
from repogen.build.spec import DynamicBatching
from repogen.errors import ConfigError
from repogen.build.budget import pixel_budget
from repogen.pipelines.deploy_config import CONFIG_NAMES, DeployConfig, check_labels, input_roles
from repogen.pipelines.ensemble import GeneratedModel, generate, ocr_system
from repogen.locks import private_cache_file
from repogen.pipelines.paddlex_protocol import ocr_protocol_model, pipeline_protocol_models

DEFAULT_MAX_SIDE = 2048  # largest image side a profile admits when the config does not say
DEFAULT_BATCH = 8


def _shape_text(shapes: dict[str, list[int]]) -> str:
    return ",".join(f"{n}:{'x'.join(str(d) for d in s)}" for n, s in shapes.items())


def _image_range(cfg: DeployConfig, fixed: list[int]) -> tuple[list[int], list[int], list[int]]:
    """[C, H, W] min/opt/max for the image input from its transforms (fixed dims win)."""
    lo, opt, hi = [3, 32, 32], [3, 640, 640], [3, DEFAULT_MAX_SIDE, DEFAULT_MAX_SIDE]
    for t in cfg.transforms:
        if t["op"] == "resize" and t.get("target_wh") and not t.get("keep_ratio"):
            w, h = t["target_wh"]
            lo, opt, hi = [3, h, w], [3, h, w], [3, h, w]
        elif t["op"] == "resize" and t.get("target_wh"):
            opt = [3, max(t["target_wh"]), max(t["target_wh"])]
        elif t["op"] == "center_crop":
            w, h = t["size"]
            lo, opt, hi = [3, h, w], [3, h, w], [3, h, w]
        elif t["op"] == "fluid_resize" and (t["pad"] or not t["keep_ratio"]):  # PaddleDetection 0.x: one size
            side = t["max_size"] if t["pad"] else t["target_size"]
            lo, opt, hi = [3, side, side], [3, side, side], [3, side, side]
        elif t["op"] == "cls_resize":  # PaddleOCR's direction classifier: one size whatever the crop
            c, h, w = t["image_shape"]
            lo, opt, hi = [c, h, w], [c, h, w], [c, h, w]
        elif t["op"] == "rec_resize":
            c, h, w = t["image_shape"]
            lo, opt, hi = [c, h, 16], [c, h, w], [c, h, 3200]
        elif t["op"] == "det_resize" and "limit_side_len" in t:
            side = t["limit_side_len"]
            opt = [3, side, side]
            hi = [3, max(side, 4000 if t["limit_type"] == "max" else DEFAULT_MAX_SIDE),
                  max(side, 4000 if t["limit_type"] == "max" else DEFAULT_MAX_SIDE)]
    for i, d in enumerate(fixed):
        if d > 0:
            lo[i] = opt[i] = hi[i] = d
    return lo, opt, hi


def _batch_range(given: dict[str, list[list[int]]], roles: dict[str, str], spec: Any) -> list[int]:
    """[min, opt, max] batch: the image input's Hpi range where it has one (every input shares the batch dim),
    else the first range the Hpi gives, else 1 .. the spec's max batch size."""
    for name in sorted(given, key=lambda n: roles.get(n) != "image"):
        return [int(r[0]) for r in given[name]]
    return [1, 1, spec.max_batch_size or DEFAULT_BATCH]


def _role_range(cfg: DeployConfig, role: str, shape: list[int], batch: list[int]) -> list[list[int]]:
    """min/opt/max of one input from what the transforms make of the image: the image after resize, and
    PaddleDetection's ``im_shape`` (the resized [h, w]) and ``scale_factor`` (the resize ratios), [N, 2] unless the
    graph fixes their width. A batch dim the graph fixes wins."""
    if role == "image":
        lo, opt, hi = _image_range(cfg, [int(d) for d in (shape or [-1, -1, -1, -1])[1:]])
        rng = [[batch[0]] + lo, [batch[1]] + opt, [batch[2]] + hi]
    else:  # [h, w] sizes and scales; PaddleDetection 0.x's im_info / im_shape are 3 wide, scale_factor 4
        tail = [int(d) for d in (shape or [])[1:]]
        tail = tail if tail and all(d > 0 for d in tail) else [2]
        rng = [[batch[0], *tail], [batch[1], *tail], [batch[2], *tail]]
    if shape and shape[0] > 0:
        for r in rng:
            r[0] = int(shape[0])
    return rng


def fill_profiles(spec: Any, graph: Any, cfg: DeployConfig) -> Any:
    """``spec`` with min/opt/max shapes from the deploy config, unless the user gave any shape flag.

    The Hpi ``dynamic_shapes`` give an input's range where they name it; an input they leave out (PaddleX's DETR
    layout exports list only ``image`` and ``scale_factor``, not ``im_shape``) gets its range from the transforms
    (:func:`_role_range`), with the batch range the Hpi gives the others."""
    if spec.shape or spec.min_shapes or spec.opt_shapes or spec.max_shapes:
        return spec
    values = graph.input_values()
    names = [v.name for v in values]
    given = {n: cfg.dynamic_shapes[n] for n in names if n in cfg.dynamic_shapes}
    rng = dict(given)
    missing = [n for n in names if n not in given]
    if missing:
        try:
            roles = input_roles(names, str(cfg.path))
        except ConfigError:
            if not cfg.dynamic_shapes:
                raise
            raise ConfigError(f"{cfg.path}: Hpi dynamic_shapes has no range for input(s) {missing} and the "
                              f"transforms cannot tell which input takes the image (model inputs: {names}); give "
                              "--min-shapes/--opt-shapes/--max-shapes") from None
        batch = _batch_range(given, roles, spec)
        for v in values:
            if v.name in missing:
                rng[v.name] = _role_range(cfg, roles[v.name], [int(d) for d in (v.shape or [])], batch)
    rng = {n: rng[n] for n in names}
    return dataclasses.replace(spec, min_shapes=[_shape_text({n: r[0] for n, r in rng.items()})],
                               opt_shapes=[_shape_text({n: r[1] for n, r in rng.items()})],
                               max_shapes=[_shape_text({n: r[2] for n, r in rng.items()})])


def pipeline_models(spec: Any, cfg: DeployConfig | None, engine: Any, max_batch_size: int,
                    target: str | None = None) -> list[GeneratedModel]:
    """``target``: the target built (its runtime decides how the pipeline's pixel budget is set)."""
    try:
        check_labels(spec, cfg, engine, max_batch_size)  # also under --no-pipeline: the labels file is served
    except ConfigError as exc:
        if getattr(spec, "pipeline_kind", None) != "ocr-rec":
            raise
        # the config was generated from the user's dictionary: name that, not the generated file
        raise ConfigError(f"{spec.name}: character dictionary {spec.char_dict}: {str(exc).split(': ', 1)[-1]}") \
            from None
    if cfg is None or getattr(spec, "pipeline", True) is False:  # --no-pipeline: profiles still come from cfg
        return []
    instances = sum(g.count for g in (spec.instance_groups or [])) or 1
    roles = input_roles([t.name for t in engine.inputs], str(cfg.path))
    budget = pixel_budget(spec, cfg, engine, max_batch_size, roles, target, instances)
    models = generate(cfg, spec.name, engine, max_batch_size, instances, budget)
    return models + pipeline_protocol_models(models)  # PaddleX's protocol in front (<model>_paddlex)


def _labels_file(cfg: DeployConfig) -> Path:
    """``label_list`` as the labels file Triton's classification extension reads (``label_filename``): one label
    a line, in a per-content folder of this user's private cache (repogen.locks.private_cache_file: 0700, never
    written through a planted link); the build copies it beside config.pbtxt."""
    return private_cache_file("".join(f"{label}\n" for label in cfg.labels), "labels.txt", "labels")


def apply_defaults(spec: Any, graph: Any, cfg: DeployConfig) -> Any:
    """What the deploy config settles for the model itself: its profiles and, for detectors, no batching.

    PaddleDetection exports return all images' boxes as one [M, 6] block plus per-image counts, so their
    outputs are not split by batch row: Triton's dynamic batcher would hand one request's boxes to another.
    Such a model runs one request at a time; asking for dynamic batching on it is refused."""
    if cfg.kind != "model" or cfg.dynamic_shapes:  # facts alone (--no-pipeline) may say nothing of image sizes
        spec = fill_profiles(spec, graph, cfg)
    if cfg.kind == "classification" and cfg.labels and spec.labels is None:
        spec = dataclasses.replace(spec, labels=_labels_file(cfg))
    if cfg.kind == "detection":
        db = spec.dynamic_batching
        if db is not None and db.enabled:
            raise ConfigError(f"{spec.name}: dynamic batching would mix requests: this detector returns every "
                              "image's boxes as one [M, 6] block (not split by batch row); drop dynamic_batching")
        spec = dataclasses.replace(spec, dynamic_batching=DynamicBatching(enabled=False))
    return spec


def system_models(prepared: list[Any], choice: Any = None, warn: Any = None) -> list[GeneratedModel]:
    """Models built from several of the build's models: the PP-OCR system (``ocr_system``); ``choice`` is the
    spec's ``[ocr_system]`` (repogen.build.system_spec), ``warn`` hears why none was built."""
    systems = ocr_system([m for p in prepared for m in p.pipeline_models], choice, warn)
    return systems + [ocr_protocol_model(s) for s in systems]  # PaddleX's /ocr protocol (ocr_paddlex)


def manifest_fields(models: list[GeneratedModel]) -> dict[str, Any]:
    """Manifest keys for the model itself: a PaddleDetection detector's [M, 6] box block is not split by batch
    row, so ``validate`` must compare it as detection rows against a reference run of the same request."""
    for m in models:
        data = m.meta.get("pipeline") if m.meta else None
        if data and data.get("boxes_output"):
            return {"detections": {data["boxes_output"]: "rows"}}
    return {}


# the name each format's exporter gives its config, so that a rebuild from the model folder finds it again
CONFIG_FILE = {"paddlex": "inference.yml", "paddledet": "infer_cfg.yml", "paddleseg": "deploy.yaml"}


def deploy_config_files(spec: Any, cfg: DeployConfig | None) -> dict[str, Path]:
    """The deploy config the build used (the user's, or the one PaddleOCR 2.x defaults made), beside the model
    in its version folder: visible and editable, and a rebuild from that folder reads it back and gives the same
    repository."""
    if cfg is None:
        return {}
    name = cfg.path.name if cfg.path.name in CONFIG_NAMES else CONFIG_FILE[cfg.fmt]
    return {f"{spec.version}/{name}": cfg.path}
