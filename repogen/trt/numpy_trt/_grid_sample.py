"""GridSample (IGridSampleLayer): ``network.add_grid_sample(input, grid)``.

Semantics from TensorRT's GridSample operator page (input [N, C, H, W], grid [N, H_out, W_out, 2] holding
(x, y) normalized to [-1, 1]; ``interpolation_mode`` NEAREST / LINEAR (default) / CUBIC; ``align_corners``
(default False); ``sample_mode`` FILL (0 outside), CLAMP (nearest border value), REFLECT (reflected by the
borders until in bounds), other sample modes refused) and the ONNX GridSample definition the page follows
for the coordinate mapping: align_corners maps -1/1 to the centers of the corner pixels, otherwise to their
outer edges; reflection runs about those same extremes. Assumption: NEAREST rounds half to even (ONNX).
CUBIC is not implemented here.
"""

from __future__ import annotations

import numpy as np

from ._support import compute_in, require_type, same_type
from ._network import ILayer, Info, ITensor, NetworkCore
from ._types import FLOAT_TYPES, InterpolationMode, LayerType, SampleMode

_SAMPLE_MODES = (SampleMode.FILL, SampleMode.CLAMP, SampleMode.REFLECT)


def _unnormalize(g: np.ndarray, size: int, align: bool) -> np.ndarray:
    return (g + 1) / 2 * (size - 1) if align else ((g + 1) * size - 1) / 2


def _reflect(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    span = hi - lo
    if span <= 0:
        return np.zeros_like(x)
    d = np.abs(x - lo)
    flips = np.floor(d / span)
    extra = d - flips * span
    return np.where(flips % 2 == 0, lo + extra, hi - extra)


def _source(g: np.ndarray, size: int, align: bool, mode: SampleMode) -> np.ndarray:
    x = _unnormalize(g, size, align)
    if mode == SampleMode.CLAMP:
        return np.clip(x, 0, size - 1)
    if mode == SampleMode.REFLECT:
        x = _reflect(x, 0.0, size - 1.0) if align else _reflect(x, -0.5, size - 0.5)
        return np.clip(x, 0, size - 1)
    return x


def _taps(img: np.ndarray, yi: np.ndarray, xi: np.ndarray) -> np.ndarray:
    """img [N, C, H, W] at integer (yi, xi) [N, Ho, Wo] -> [N, C, Ho, Wo]; outside reads 0."""
    n, c, h, w = img.shape
    inside = (yi >= 0) & (yi < h) & (xi >= 0) & (xi < w)
    yc, xc = np.clip(yi, 0, h - 1), np.clip(xi, 0, w - 1)
    batch = np.arange(n).reshape(n, 1, 1)
    vals = img[batch, :, yc, xc]  # [N, Ho, Wo, C]
    return np.moveaxis(np.where(inside[..., None], vals, 0), -1, 1)


class IGridSampleLayer(ILayer):
    _TYPE = LayerType.GRID_SAMPLE
    _TYPE_NAME = "GridSample"

    def __init__(self, network: NetworkCore, x: ITensor, grid: ITensor):
        super().__init__(network, [x, grid])
        self.interpolation_mode = InterpolationMode.LINEAR
        self.align_corners = False
        self.sample_mode = SampleMode.FILL

    def _infer(self, ins: list[Info | None]) -> list[Info]:
        x, g = ins
        require_type(self, x, FLOAT_TYPES, "input")
        same_type(self, [x, g], "input and grid")
        if x.rank != 4 or g.rank != 4:
            raise self._fail(f"input {x.shape} and grid {g.shape} must both have rank 4")
        if g.shape[3] not in (2, -1):
            raise self._fail(f"grid {g.shape} must end in a dimension of 2 (x, y)")
        if SampleMode(self.sample_mode) not in _SAMPLE_MODES:
            raise self._fail(f"sample_mode {SampleMode(self.sample_mode).name}: only FILL, CLAMP, REFLECT")
        if InterpolationMode(self.interpolation_mode) == InterpolationMode.CUBIC:
            self._late("CUBIC grid sampling is not implemented by the NumPy backend")
        n = x.shape[0] if x.shape[0] >= 0 else g.shape[0]
        return [Info(x.dtype, (n, x.shape[1], g.shape[1], g.shape[2]))]

    def _run(self, xs: list[np.ndarray | None]) -> list[np.ndarray]:
        x, g = xs
        if x.shape[0] != g.shape[0]:
            raise self._fail(f"input batch {x.shape[0]} and grid batch {g.shape[0]} differ")
        mode = SampleMode(self.sample_mode)
        align = bool(self.align_corners)
        ct = compute_in(x)
        img = x.astype(ct)
        h, w = x.shape[2], x.shape[3]
        gx = _source(g[..., 0].astype(np.float64), w, align, mode)
        gy = _source(g[..., 1].astype(np.float64), h, align, mode)
        if InterpolationMode(self.interpolation_mode) == InterpolationMode.NEAREST:
            out = _taps(img, np.rint(gy).astype(np.int64), np.rint(gx).astype(np.int64))
            return [out.astype(x.dtype)]
        x0, y0 = np.floor(gx), np.floor(gy)
        fx, fy = (gx - x0)[:, None], (gy - y0)[:, None]
        x0, y0 = x0.astype(np.int64), y0.astype(np.int64)
        out = (_taps(img, y0, x0) * ((1 - fx) * (1 - fy)) + _taps(img, y0, x0 + 1) * (fx * (1 - fy))
               + _taps(img, y0 + 1, x0) * ((1 - fx) * fy) + _taps(img, y0 + 1, x0 + 1) * (fx * fy))
        return [out.astype(x.dtype)]


__all__ = ["IGridSampleLayer"]
