"""The deploy config of a model in a build: the one the user named, else the one beside the model, else - for a
PaddleOCR 2.x export, which has none - the one PaddleOCR's defaults make (repogen.pipelines.paddleocr2); and the
name it gives a model the user did not name."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

from repogen.errors import ConfigError
from repogen.pipelines import paddleocr2
from repogen.pipelines.deploy_config import (DeployConfig, find_deploy_config, is_unsupported, read_deploy_config,
                                             read_model_facts)


def _config_path(source: Path, explicit: Path | None) -> Path | None:
    """The deploy config the user named, else the one beside the model (None: neither)."""
    return Path(explicit) if explicit else find_deploy_config(source)


def paddleocr_export(source: Path, kind: str | None, explicit: Path | None, pipeline: bool, where: str) -> str | None:
    """The PaddleOCR 2.x kind (``ocr-det`` / ``ocr-rec`` / ``ocr-cls``) a model is built as: the one asked for
    (``--pipeline`` / spec ``pipeline = "ocr-rec"``), else the one its folder's name says (``*_det_infer``...)
    when it has no deploy config and its pipeline is on; None otherwise."""
    config = _config_path(source, explicit)
    if kind is not None:
        if config is not None:
            raise ConfigError(f"{where}: pipeline {kind!r} builds with PaddleOCR's defaults, but {source} has a deploy "
                              f"config ({config}): drop the pipeline kind to use that config, or remove it")
        return kind
    if config is not None or not pipeline:
        return None
    return paddleocr2.kind_of_folder(source)


def paddleocr_dictionary(source: Path, kind: str | None, char_dict: Path | None, name: str, where: str,
                         strict: bool = True) -> Path | None:
    """A PaddleOCR 2.x recognizer's dictionary: the one named, else the one beside the model. ``strict``: a
    dictionary named for a model that is not such a recognizer is an error (a spec file's per-model key)."""
    if kind == "ocr-rec":
        found = char_dict or paddleocr2.find_dictionary(source)
        if found is None:
            raise ConfigError(f"{where}: {name} is a PaddleOCR 2.x text recognizer without a deploy config: it needs "
                              "its character dictionary (e.g. ppocr_keys_v1.txt): --char-dict FILE (spec key "
                              "char_dict), or the .txt file beside the model")
        return found
    if char_dict is not None and strict:
        raise ConfigError(f"{where}.char_dict: {name} is not a PaddleOCR 2.x text recognizer (a *_rec_infer folder "
                          'without a deploy config, or pipeline = "ocr-rec"): only those take a character dictionary')
    return None


def _announce(spec: Any, cfg: DeployConfig, kind: str) -> str:
    """The one line a build says about a generated config."""
    if kind == "ocr-det":
        p, step = cfg.post, next(t for t in cfg.transforms if t["op"] == "det_resize")
        what = (f"limit side {step['limit_side_len']} ({step['limit_type']}), thresh {p['thresh']}, box_thresh "
                f"{p['box_thresh']}, unclip {p['unclip_ratio']}, one image a batch")
    elif kind == "ocr-rec":
        shape = "x".join(str(d) for d in next(t["image_shape"] for t in cfg.transforms if t["op"] == "rec_resize"))
        what = f"{shape}, dictionary {Path(spec.char_dict).name}: {len(cfg.characters or [])} characters + space"
    else:
        shape = "x".join(str(d) for d in next(t["image_shape"] for t in cfg.transforms if t["op"] == "cls_resize"))
        what = f"{shape}, labels {cfg.labels}, cls_thresh {cfg.post['cls_thresh']}"
    return (f"WARNING: {spec.name}: PaddleOCR 2.x {paddleocr2.WHAT[kind]}: PaddleOCR's defaults applied ({what}; "
            f"written beside the model as {spec.version}/{paddleocr2.CONFIG_NAME}, edit it and rebuild from there)")


def deploy_config(spec: Any, warn: Callable[[str], None] | None = None, graph: Any = None) -> DeployConfig | None:
    """The model's deploy config: all of it for a pipeline build, only the facts the model itself needs
    (name, dynamic shapes, detector batching) under --no-pipeline when the rest has no pipeline. A PaddleOCR 2.x
    export (``spec.pipeline_kind``) gets the config PaddleOCR's defaults make (its profile for the first input of
    ``graph``, the model read), announced to ``warn``."""
    kind = getattr(spec, "pipeline_kind", None)
    if kind is not None:
        first = graph.input_values()[0] if graph is not None and graph.inputs else None
        cfg = read_deploy_config(paddleocr2.write_config(
            kind, spec.name, getattr(spec, "char_dict", None), first.name if first else paddleocr2.DEFAULT_INPUT,
            list(first.shape or []) if first else None))
        if warn is not None:
            warn(_announce(spec, cfg, kind))
        return cfg
    explicit = getattr(spec, "deploy_config", None)
    path = _config_path(spec.source, explicit)
    if explicit and not path.is_file():
        raise ConfigError(f"{spec.name}: --deploy-config {explicit}: file not found")
    if path is None:
        return None
    overrides = getattr(spec, "deploy_overrides", None)
    if overrides:  # a PaddleX pipeline config's values for this model (repogen.build.paddlex_pipeline)
        return dataclasses.replace(read_deploy_config(path), **overrides)
    try:
        return read_deploy_config(path)  # under --no-pipeline too: labels and transform-derived profiles
    except ConfigError as exc:  # a bad value is an error either way; only "no pipeline for this" falls back
        if getattr(spec, "pipeline", True) or not is_unsupported(exc):
            raise
        return read_model_facts(path)  # transforms or a post-processor repogen has no pipeline for


def default_model_name(source: Path, explicit: Path | None, fallback: str) -> str:
    """``Global.model_name`` of the model's deploy config (``explicit`` or the one beside ``source``), made
    Triton-safe; ``fallback`` when there is no config or it names no model (PaddleDetection's ``arch`` is a
    family such as ``YOLO``, not a model). A missing ``explicit`` file is reported by the build itself."""
    path = _config_path(source, explicit)
    if path is None or not path.is_file():
        return fallback
    return read_model_facts(path).default_name(fallback)


def task_config(model: Path, explicit: Path | None = None, kind: str | None = None,
                char_dict: Path | None = None) -> tuple[DeployConfig | None, str]:
    """(the deploy config ``repogen check`` judges a model's task by, or None, and why none): the one named, else
    the one beside the model, else for a PaddleOCR 2.x export (``kind`` asked for, or told by its ``*_infer``
    folder name) the one PaddleOCR's defaults make, as the build finds it. A config repogen has no pipeline for
    gives none (the check then uses random inputs); a bad value in it is the user's error, as in the build."""
    model = Path(model)
    path = _config_path(model, explicit)
    if explicit and not path.is_file():
        raise ConfigError(f"--deploy-config {explicit}: file not found")
    kind = paddleocr_export(model, kind, explicit, True, "check")
    if kind is not None:
        from repogen.paddle import load_model

        first = load_model(model).input_values()[0]
        name = (model if model.is_dir() else model.parent).name
        dictionary = paddleocr_dictionary(model, kind, char_dict, name, "check", strict=False)
        return read_deploy_config(paddleocr2.write_config(kind, name, dictionary, first.name,
                                                          list(first.shape or []))), ""
    if char_dict is not None:
        raise ConfigError(f"--char-dict: {model} is not a PaddleOCR 2.x text recognizer (a *_rec_infer folder "
                          "without a deploy config, or --pipeline ocr-rec)")
    if path is None:
        return None, "no deploy config beside the model"
    try:
        return read_deploy_config(path), ""
    except ConfigError as exc:
        if not is_unsupported(exc):
            raise
        return None, f"{path.name}: {exc}"
