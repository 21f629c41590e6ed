"""Constant parameters as TensorRT weights, and the batch-norm algebra shared by the converter and the
conv + batch_norm folding pass."""

from __future__ import annotations

from typing import Any

import numpy as np

from repogen.ir import Op
from repogen.trt.context import ConversionContext


def param_weights(ctx: ConversionContext, op: Op, slot: str, dtype: Any) -> np.ndarray:
    """A constant input (filter, bias) as a C-ordered array of the TensorRT float type, kept alive for the build."""
    arr = ctx.const_value(op.input(slot))
    if arr is None:
        raise ctx.fail(f"{slot} must be a constant (a parameter) for TensorRT")
    arr = np.array(arr, dtype=ctx.np_type(dtype), order="C")
    ctx.keep_alive(arr)
    return arr


def batch_norm_coefficients(mean: np.ndarray, var: np.ndarray, scale: np.ndarray, bias: np.ndarray,
                            eps: float) -> tuple[np.ndarray, np.ndarray]:
    """(x - mean) / sqrt(var + eps) * scale + bias == x * a + b."""
    a = scale / np.sqrt(var + eps)
    return a, bias - mean * a
