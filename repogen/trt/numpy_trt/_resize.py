"""The resize layer: nearest / linear / cubic interpolation with TensorRT's coordinate transformations,
selectors and nearest-rounding modes, one axis at a time.

Semantics and the TensorRT pages they follow: docs/numpy-backend.md.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ._network import ILayer, Info, ITensor, NetworkCore
from ._support import compute_in, require_type, shape_input_values
from ._types import (
    Dims,
    FLOAT_TYPES,
    InterpolationMode,
    LayerType,
    ResizeCoordinateTransformation,
    ResizeRoundMode,
    ResizeSelector,
)


_IM = InterpolationMode


_CT = ResizeCoordinateTransformation


def _source_coords(ct: int, n_in: int, n_out: int, selector: int) -> np.ndarray:
    """Input coordinate of every output index (Resize operator page's coordinate_transformation)."""
    x = np.arange(n_out, dtype=np.float64)
    if n_out == 1 and ResizeSelector(selector) == ResizeSelector.UPPER:
        return np.zeros(1)
    ct = _CT(ct)
    if ct == _CT.ALIGN_CORNERS:
        return x * ((n_in - 1) / (n_out - 1)) if n_out > 1 else np.zeros(1)
    if ct == _CT.ASYMMETRIC:
        return x * (n_in / n_out)
    return (x + 0.5) * (n_in / n_out) - 0.5


def _round_nearest(mode: int, x: np.ndarray) -> np.ndarray:
    mode = ResizeRoundMode(mode)
    if mode == ResizeRoundMode.FLOOR:
        return np.floor(x)
    if mode == ResizeRoundMode.CEIL:
        return np.ceil(x)
    if mode == ResizeRoundMode.HALF_UP:
        return np.floor(x + 0.5)
    return np.ceil(x - 0.5)


def _cubic_weights(t: np.ndarray, a: float) -> np.ndarray:
    """Keys cubic convolution weights for taps at offsets -1, 0, 1, 2 from floor(x); t = x - floor(x)."""
    d = np.stack([t + 1, t, 1 - t, 2 - t], axis=-1)
    ad = np.abs(d)
    near = ((a + 2) * ad - (a + 3)) * ad * ad + 1
    far = ((a * ad - 5 * a) * ad + 8 * a) * ad - 4 * a
    return np.where(ad <= 1, near, np.where(ad < 2, far, 0.0))


def resize_axis(x: np.ndarray, axis: int, n_out: int, layer: "IResizeLayer") -> np.ndarray:
    n_in = x.shape[axis]
    if n_in == n_out and _IM(layer.resize_mode) != _IM.NEAREST and _CT(layer.coordinate_transformation) != _CT.ALIGN_CORNERS:
        return x
    src = _source_coords(layer.coordinate_transformation, n_in, n_out, layer.selector_for_single_pixel)
    mode = _IM(layer.resize_mode)
    if mode == _IM.NEAREST:
        idx = np.clip(_round_nearest(layer.nearest_rounding, src).astype(np.int64), 0, n_in - 1)
        return np.take(x, idx, axis=axis)
    shape = [1] * x.ndim
    shape[axis] = n_out
    if mode == _IM.LINEAR:
        s = np.clip(src, 0, n_in - 1)  # beyond the edges the border value is used
        lo = np.floor(s).astype(np.int64)
        hi = np.minimum(lo + 1, n_in - 1)
        frac = (s - lo).astype(x.dtype).reshape(shape)
        return np.take(x, lo, axis=axis) * (1 - frac) + np.take(x, hi, axis=axis) * frac
    base = np.floor(src).astype(np.int64)
    w = _cubic_weights(src - base, float(layer.cubic_coeff))
    taps = base[:, None] + np.arange(-1, 3)[None, :]
    if layer.exclude_outside:
        w = np.where((taps < 0) | (taps >= n_in), 0.0, w)
        w = w / w.sum(axis=1, keepdims=True)
    taps = np.clip(taps, 0, n_in - 1)
    out = 0
    for j in range(4):
        out = out + np.take(x, taps[:, j], axis=axis) * w[:, j].astype(x.dtype).reshape(shape)
    return out


class IResizeLayer(ILayer):
    _TYPE = LayerType.RESIZE
    _TYPE_NAME = "Resize"

    def __init__(self, network: NetworkCore, x: ITensor):
        super().__init__(network, [x])
        d = self.__dict__
        d["_shape"] = None
        d["_scales"] = None
        d["resize_mode"] = _IM.NEAREST
        d["coordinate_transformation"] = _CT.ASYMMETRIC
        d["selector_for_single_pixel"] = ResizeSelector.FORMULA
        d["nearest_rounding"] = ResizeRoundMode.FLOOR
        d["cubic_coeff"] = -0.75
        d["exclude_outside"] = False

    @property
    def shape(self) -> Dims | None:
        return None if self._shape is None else Dims(self._shape)

    @shape.setter
    def shape(self, value: Sequence[int]) -> None:
        self.__dict__["_shape"] = tuple(Dims(value))
        self.__dict__["_scales"] = None
        self._network._touch(self)

    @property
    def scales(self) -> list[float] | None:
        return None if self._scales is None else list(self._scales)

    @scales.setter
    def scales(self, value: Sequence[float]) -> None:
        self.__dict__["_scales"] = tuple(float(v) for v in value)
        self.__dict__["_shape"] = None
        self._network._touch(self)

    def _max_inputs(self) -> int:
        return 1

    def _out_dims(self, in_shape: tuple[int, ...], target: list[int | None] | None) -> tuple[int, ...]:
        rank = len(in_shape)
        if target is not None:
            if len(target) != rank:
                raise self._fail(f"output shape tensor has {len(target)} entries, the input rank is {rank}")
            return tuple(-1 if v is None else int(v) for v in target)
        if self._shape is not None:
            if len(self._shape) != rank:
                raise self._fail(f"shape {self._shape} must have {rank} entries")
            return self._shape
        if self._scales is not None:
            if len(self._scales) != rank:
                raise self._fail(f"scales {self._scales} must have {rank} entries")
            # each output dimension is floor(input dimension * scale)
            return tuple(-1 if d < 0 else int(math.floor(d * s)) for d, s in zip(in_shape, self._scales))
        return in_shape

    def _infer(self, ins: list[Info | None]) -> list[Info]:
        x = ins[0]
        mode = _IM(self.resize_mode)
        if mode != _IM.NEAREST:
            require_type(self, x, FLOAT_TYPES, f"{mode.name} resize input")
        target = shape_input_values(self, ins[1], "output shape (input 1)")[1] if len(ins) > 1 and ins[1] else None
        out = self._out_dims(x.shape, target)
        if any(d < -1 for d in out):
            raise self._fail(f"negative output shape {out}")
        limit = {_IM.NEAREST: 8, _IM.LINEAR: 3, _IM.CUBIC: 2}[mode]
        fixed = [i for i, (a, b) in enumerate(zip(x.shape, out))
                 if (a >= 0 and b >= 0 and a == b) or (self._scales is not None and self._scales[i] == 1)]
        changed = [i for i in range(x.rank) if i not in fixed]
        if changed and min(changed) < x.rank - limit and self._scales is not None:
            self._late(f"{mode.name} resize changes dims {changed}; it resizes at most the innermost {limit}")
        return [Info(x.dtype, out)]

    def _run(self, xs: list[np.ndarray | None]) -> list[np.ndarray]:
        x = xs[0]
        target = [int(v) for v in xs[1]] if len(xs) > 1 and xs[1] is not None else None
        out = self._out_dims(x.shape, target)
        mode = _IM(self.resize_mode)
        limit = {_IM.NEAREST: 8, _IM.LINEAR: 3, _IM.CUBIC: 2}[mode]
        changed = [i for i in range(x.ndim) if x.shape[i] != out[i]]
        if changed and min(changed) < x.ndim - limit:
            raise self._fail(f"{mode.name} resize of dims {changed}: only the innermost {limit} can change")
        y = x if mode == _IM.NEAREST else x.astype(compute_in(x))
        axes = range(x.ndim) if mode == _IM.NEAREST else range(x.ndim - limit, x.ndim)
        for a in axes:
            if a >= 0:
                y = resize_axis(y, a, out[a], self)
        return [y.astype(x.dtype, order="C")]
