"""Normalizations: softmax and INormalizationLayer (layer / instance / group norm).

Semantics and the TensorRT pages they follow: docs/numpy-backend.md.
"""

from __future__ import annotations

import numpy as np

from ._network import ILayer, Info, ITensor, NetworkCore
from ._support import axes_of, compute_in, default_axis, require_type, run_broadcast_check, same_type
from ._types import DataType, FLOAT_TYPES, LayerType, np_dtype


class ISoftMaxLayer(ILayer):
    _TYPE = LayerType.SOFTMAX
    _TYPE_NAME = "SoftMax"

    def __init__(self, network: NetworkCore, x: ITensor):
        rank = len(x.shape)
        super().__init__(network, [x])
        self.axes = 1 << default_axis(rank)

    def _infer(self, ins: list[Info | None]) -> list[Info]:
        x = ins[0]
        require_type(self, x, FLOAT_TYPES, "softmax input")
        if len(axes_of(self, self.axes, x.rank)) != 1:
            raise self._fail(f"softmax axes must name exactly one axis, got bitmask {self.axes:#b}")
        return [Info(x.dtype, x.shape)]

    def _run(self, xs: list[np.ndarray | None]) -> list[np.ndarray]:
        x = xs[0]
        axis = axes_of(self, self.axes, x.ndim)[0]
        t = x.astype(compute_in(x))
        e = np.exp(t - t.max(axis=axis, keepdims=True))
        return [(e / e.sum(axis=axis, keepdims=True)).astype(x.dtype)]


class INormalizationLayer(ILayer):
    _TYPE = LayerType.NORMALIZATION
    _TYPE_NAME = "Normalization"

    def __init__(self, network: NetworkCore, x: ITensor, scale: ITensor, bias: ITensor, axes: int):
        super().__init__(network, [x, scale, bias])
        self.axes = int(axes)
        self.epsilon = 1e-5
        self.num_groups = 1
        self.compute_precision = x.dtype

    def _infer(self, ins: list[Info | None]) -> list[Info]:
        x, s, b = ins
        require_type(self, x, FLOAT_TYPES, "input")
        same_type(self, [x, s, b], "input, scale and bias")
        axes_of(self, self.axes, x.rank)
        g = int(self.num_groups)
        if g < 1:
            raise self._fail(f"num_groups {g} must be >= 1")
        if g > 1 and (x.rank < 2 or (x.shape[1] >= 0 and x.shape[1] % g)):
            self._late(f"num_groups {g} must divide the channel dimension of {x.shape}")
        for info, name in ((s, "scale"), (b, "bias")):
            if info.rank != x.rank:
                raise self._fail(f"{name} shape {info.shape} must have the input's rank {x.rank}")
        return [Info(x.dtype, x.shape)]

    def _run(self, xs: list[np.ndarray | None]) -> list[np.ndarray]:
        x, s, b = xs
        ct = np_dtype(DataType.FLOAT).type if DataType(self.compute_precision) == DataType.FLOAT else compute_in(x).type
        t = x.astype(ct)
        axes = tuple(axes_of(self, self.axes, x.ndim))
        g = int(self.num_groups)
        if g > 1:
            n, c = x.shape[:2]
            tg = t.reshape((n, g, c // g) + x.shape[2:])
            # the channels of a group are normalized together, along with the requested axes
            gaxes = tuple(sorted({2} | {a + 1 for a in axes if a >= 2}))
            mean = tg.mean(axis=gaxes, keepdims=True)
            var = ((tg - mean) ** 2).mean(axis=gaxes, keepdims=True)
            y = ((tg - mean) / np.sqrt(var + ct(self.epsilon))).reshape(x.shape)
        else:
            mean = t.mean(axis=axes, keepdims=True)
            var = ((t - mean) ** 2).mean(axis=axes, keepdims=True)
            y = (t - mean) / np.sqrt(var + ct(self.epsilon))
        s2, b2 = s.astype(ct), b.astype(ct)
        if g > 1 and s.ndim >= 2 and s.shape[1] == g and x.shape[1] != g:
            # TensorRT 8.6/10.0 group norm: scale/bias per group ([1, G, 1, ...])
            s2 = np.repeat(s2, x.shape[1] // g, axis=1)
            b2 = np.repeat(b2, x.shape[1] // g, axis=1)
        run_broadcast_check(self, [y, s2, b2])
        return [(y * s2 + b2).astype(x.dtype)]
