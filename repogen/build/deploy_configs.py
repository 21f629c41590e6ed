"""The deploy config of a model in a build: the one the user named, else the one beside the model; and the name
it gives a model the user did not name."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from repogen.errors import ConfigError
from repogen.pipelines.deploy_config import (DeployConfig, find_deploy_config, is_unsupported, read_deploy_config,
                                             read_model_facts)


def _config_path(source: Path, explicit: Path | None) -> Path | None:
    """The deploy config the user named, else the one beside the model (None: neither)."""
    return Path(explicit) if explicit else find_deploy_config(source)


def deploy_config(spec: Any) -> DeployConfig | None:
    """The model's deploy config: all of it for a pipeline build, only the facts the model itself needs
    (name, dynamic shapes, detector batching) under --no-pipeline when the rest has no pipeline."""
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
