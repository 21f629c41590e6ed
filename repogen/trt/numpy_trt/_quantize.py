"""Quantize and dequantize layers with per-tensor or per-axis scales (INT8 output or input).

Semantics and the TensorRT pages they follow: docs/numpy-backend.md.
"""

from __future__ import annotations

import numpy as np

from ._network import ILayer, Info, ITensor, NetworkCore
from ._support import require_type, same_type
from ._types import DataType, FLOAT_TYPES, LayerType, np_dtype


def _q_view(layer: ILayer, scale: np.ndarray, x: np.ndarray) -> np.ndarray:
    if scale.size == 1:
        return scale.reshape(())
    axis = int(layer.axis) % x.ndim
    if scale.ndim != 1 or scale.size != x.shape[axis]:
        raise layer._fail(f"per-channel scale of shape {scale.shape} does not match axis {axis} of {x.shape}")
    shape = [1] * x.ndim
    shape[axis] = -1
    return scale.reshape(shape)


class _ScaledLayer(ILayer):
    """Quantize and dequantize: an input, a scale (per tensor, or per channel along ``axis``), a target type."""

    # never folded at add time: ``axis`` is set after add_*, and TensorRT keeps constant -> DQ (INT8 weights)
    _FOLDABLE = False

    def __init__(self, network: NetworkCore, x: ITensor, scale: ITensor, to_type: DataType):
        super().__init__(network, [x, scale])
        self.axis = -1
        self.to_type = DataType(to_type)

    def _max_inputs(self) -> int:
        return 2


class IQuantizeLayer(_ScaledLayer):
    _TYPE = LayerType.QUANTIZE
    _TYPE_NAME = "Quantize"

    def _infer(self, ins: list[Info | None]) -> list[Info]:
        x, s = ins[0], ins[1]
        require_type(self, x, FLOAT_TYPES, "input")
        same_type(self, [x, s], "input and scale")
        if DataType(self.to_type) not in (DataType.INT8,):
            raise self._fail(f"to_type {DataType(self.to_type).name}: the NumPy backend quantizes to INT8 only")
        if s.rank > 1:
            raise self._fail(f"scale must be a scalar or 1-D, got shape {s.shape}")
        return [Info(DataType(self.to_type), x.shape)]

    def _run(self, xs: list[np.ndarray | None]) -> list[np.ndarray]:
        x, s = xs[0], xs[1]
        q = x.astype(np.float32) / _q_view(self, s.astype(np.float32), x)
        if len(xs) > 2 and xs[2] is not None:
            q = q + _q_view(self, xs[2].astype(np.float32), x)
        # round half to even, then saturate to the int8 range
        return [np.clip(np.rint(q), -128, 127).astype(np.int8)]


class IDequantizeLayer(_ScaledLayer):
    _TYPE = LayerType.DEQUANTIZE
    _TYPE_NAME = "Dequantize"

    def _infer(self, ins: list[Info | None]) -> list[Info]:
        x, s = ins[0], ins[1]
        require_type(self, x, {DataType.INT8}, "input")
        if s.dtype != DataType(self.to_type):
            raise self._fail(f"scale is {s.dtype.name}; it must have the output type {DataType(self.to_type).name}")
        if s.rank > 1:
            raise self._fail(f"scale must be a scalar or 1-D, got shape {s.shape}")
        return [Info(DataType(self.to_type), x.shape)]

    def _run(self, xs: list[np.ndarray | None]) -> list[np.ndarray]:
        x, s = xs[0], xs[1]
        v = x.astype(np.float32)
        if len(xs) > 2 and xs[2] is not None:
            v = v - _q_view(self, xs[2].astype(np.float32), x)
        return [(v * _q_view(self, s.astype(np.float32), x)).astype(np_dtype(DataType(self.to_type)))]
