"""Paddle Inference predictor settings for the reference, shared by every caller (in a child or in-process)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from repogen.extras import require
from repogen.ir import ModelSource
from repogen.paddle.loader import detect


def source_of(model: str | Path | ModelSource) -> ModelSource:
    """The model's files, found by the same discovery the reader uses (paddle/loader.py)."""
    return model if isinstance(model, ModelSource) else detect(model)


def make_predictor(source: ModelSource) -> Any:
    """A CPU predictor on the program exactly as saved."""
    pi = require("paddle.inference", extra="paddle")

    if source.format == "fluid-separate":
        config = pi.Config(str(source.model_file.parent))
    else:
        config = pi.Config(str(source.model_file), str(source.params_file) if source.params_file else "")
    config.disable_gpu()
    # Paddle 3.3.1's oneDNN path cannot run PIR interp ops ("ConvertPirAttribute2RuntimeAttribute not support
    # ArrayAttribute<DoubleAttribute>") and gives NaN for PIR remainder/floor_divide/log/sqrt/rsqrt of
    # abs(x) + 0.5: the reference runs the plain CPU kernels, for every format alike.
    config.disable_onednn()
    # no fusion passes: the reference is the program as written, not Paddle's rewrite of it
    config.switch_ir_optim(False)
    config.set_cpu_math_library_num_threads(1)
    config.disable_glog_info()
    return pi.create_predictor(config)


def run_predictor(predictor: Any, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Outputs by the predictor's output names, in fetch order. ``feeds`` is keyed by its input names."""
    for name in predictor.get_input_names():
        if name not in feeds:
            raise KeyError(f"no feed for input {name!r} (given: {', '.join(feeds)})")
        handle = predictor.get_input_handle(name)
        handle.reshape(list(np.shape(feeds[name])))
        handle.copy_from_cpu(np.ascontiguousarray(feeds[name]))
    predictor.run()
    return {n: predictor.get_output_handle(n).copy_to_cpu() for n in predictor.get_output_names()}


def paddle_outputs(model: str | Path | ModelSource, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """In this process, without the child's timeout: for the test zoo, which calls it thousands of times."""
    return run_predictor(make_predictor(source_of(model)), feeds)
