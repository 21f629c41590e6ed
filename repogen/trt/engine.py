"""Serialize a converted network into a TensorRT plan with the real `tensorrt` package."""

from __future__ import annotations

import importlib
from typing import Any

from repogen.errors import ConfigError

#: modules tried by tensorrt_module(); TensorRT-RTX only when asked (its plans are not Triton's tensorrt_plan)
_DEFAULT_MODULES = ("tensorrt",)


def tensorrt_module(name: str | None = None) -> Any | None:
    """The `tensorrt` module (or the one named, e.g. "tensorrt_rtx_bindings"), or None when not installed."""
    for mod in ((name,) if name else _DEFAULT_MODULES):
        try:
            return importlib.import_module(mod)
        except ImportError:
            continue
    return None


def build_engine(conversion: Any, *, workspace_bytes: int | None = None, optimization_level: int | None = None,
                 timing_cache: bytes | None = None) -> tuple[bytes, bytes]:
    """(serialized plan, timing cache). Needs a network built by convert_graph with a real TensorRT module."""
    trt = conversion.trt
    if trt is None or getattr(trt, "IS_NUMPY_BACKEND", False):
        raise ConfigError("building a TensorRT plan needs the tensorrt package (pip install tensorrt) and an "
                          "NVIDIA GPU; this conversion was made with the NumPy backend")
    config = conversion.config
    if workspace_bytes is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_bytes))
    if optimization_level is not None:
        config.builder_optimization_level = int(optimization_level)
    cache = config.create_timing_cache(timing_cache or b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    plan = conversion.builder.build_serialized_network(conversion.network, config)
    if plan is None:
        raise ConfigError("TensorRT failed to build the engine (see its log above)")
    return bytes(plan), bytes(memoryview(config.get_timing_cache().serialize()))
