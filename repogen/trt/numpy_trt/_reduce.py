"""Reductions: reduce, top-k and cumulative (running sum / product).

Semantics and the TensorRT pages they follow: docs/numpy-backend.md.
"""

from __future__ import annotations

import numpy as np

from repogen.trt.limits import TOPK_MAX_K
from ._network import ILayer, Info, ITensor, NetworkCore
from ._support import axes_of, compute_in, NUMERIC_TYPES, require_type, SHAPE_TYPES
from ._types import CumulativeOperation, DataType, LayerType, np_dtype, ReduceOperation, TopKOperation, volume


def reduce_array(op: int, x: np.ndarray, axes: tuple[int, ...], keep: bool) -> np.ndarray:
    op = ReduceOperation(op)
    if not axes:
        return x.copy()
    t = x.astype(compute_in(x))
    if op == ReduceOperation.SUM:
        y = t.sum(axis=axes, keepdims=keep)
    elif op == ReduceOperation.PROD:
        y = t.prod(axis=axes, keepdims=keep)
    elif op == ReduceOperation.MAX:
        y = t.max(axis=axes, keepdims=keep)
    elif op == ReduceOperation.MIN:
        y = t.min(axis=axes, keepdims=keep)
    else:
        n = volume(x.shape[a] for a in axes)
        y = t.sum(axis=axes, keepdims=keep)
        y = (y // n) if t.dtype.kind in "iu" else y / t.dtype.type(n)
    return np.asarray(y).astype(x.dtype)


class IReduceLayer(ILayer):
    _TYPE = LayerType.REDUCE
    _TYPE_NAME = "Reduce"

    def __init__(self, network: NetworkCore, x: ITensor, op: ReduceOperation, axes: int, keep_dims: bool):
        super().__init__(network, [x])
        self.op = ReduceOperation(op)
        self.axes = int(axes)
        self.keep_dims = bool(keep_dims)

    def _infer(self, ins: list[Info | None]) -> list[Info]:
        x = ins[0]
        require_type(self, x, NUMERIC_TYPES, "reduce input")
        axes = axes_of(self, self.axes, x.rank)
        shape = tuple(
            (1 if i in axes else d) for i, d in enumerate(x.shape) if self.keep_dims or i not in axes
        ) if axes else x.shape
        pv = None
        if x.pvalue is not None and x.rank == 1 and axes and ReduceOperation(self.op) != ReduceOperation.AVG:
            if all(v is not None for v in x.pvalue):
                pv = [int(reduce_array(self.op, np.array(x.pvalue, np.int64), (0,), False))]
        return [Info(x.dtype, shape, pv)]

    def _run(self, xs: list[np.ndarray | None]) -> list[np.ndarray]:
        axes = tuple(axes_of(self, self.axes, xs[0].ndim))
        return [reduce_array(self.op, xs[0], axes, bool(self.keep_dims))]


class ITopKLayer(ILayer):
    _TYPE = LayerType.TOPK
    _TYPE_NAME = "TopK"
    MAX_K = TOPK_MAX_K  # TensorRT 10's documented limit on K

    def __init__(self, network: NetworkCore, x: ITensor, op: TopKOperation, k: int, axes: int,
                 indices_type: DataType = DataType.INT32):
        super().__init__(network, [x], 2)
        self.op = TopKOperation(op)
        self.k = int(k)
        self.axes = int(axes)
        self.indices_type = DataType(indices_type)

    def _max_inputs(self) -> int:
        return 1

    def _k(self, ins: list[Info | None]) -> int | None:
        if len(ins) > 1 and ins[1] is not None:
            k_info = ins[1]
            require_type(self, k_info, SHAPE_TYPES, "k (input 1)")
            if k_info.rank != 0:
                raise self._fail(f"k (input 1) must be a 0-D shape tensor, got shape {k_info.shape}")
            return None if k_info.pvalue is None else k_info.pvalue[0]
        return int(self.k)

    def _infer(self, ins: list[Info | None]) -> list[Info]:
        x = ins[0]
        require_type(self, x, NUMERIC_TYPES, "topk input")
        axes = axes_of(self, self.axes, x.rank)
        if len(axes) != 1:
            raise self._fail(f"axes must name exactly one axis, got bitmask {self.axes:#b}")
        k = self._k(ins)
        if k is not None:
            if not 0 < k <= self.MAX_K:
                raise self._fail(f"k={k} is outside 1..{self.MAX_K}")
            if x.shape[axes[0]] >= 0 and k > x.shape[axes[0]]:
                raise self._fail(f"k={k} exceeds dimension {axes[0]} of size {x.shape[axes[0]]}")
        if DataType(self.indices_type) not in SHAPE_TYPES:
            raise self._fail("indices_type must be INT32 or INT64")
        shape = tuple((-1 if k is None else k) if i == axes[0] else d for i, d in enumerate(x.shape))
        return [Info(x.dtype, shape), Info(DataType(self.indices_type), shape)]

    def _run(self, xs: list[np.ndarray | None]) -> list[np.ndarray]:
        x = xs[0]
        axis = axes_of(self, self.axes, x.ndim)[0]
        k = int(xs[1]) if len(xs) > 1 and xs[1] is not None else int(self.k)
        if k > x.shape[axis]:
            raise self._fail(f"k={k} exceeds run-time dimension {axis} of size {x.shape[axis]}")
        # stable sort: among equal values the lower index comes first
        key = -x.astype(np.float64) if TopKOperation(self.op) == TopKOperation.MAX else x
        idx = np.argsort(key, axis=axis, kind="stable")
        idx = np.take(idx, np.arange(k), axis=axis)
        vals = np.take_along_axis(x, idx, axis=axis)
        return [vals, idx.astype(np_dtype(DataType(self.indices_type)))]


class ICumulativeLayer(ILayer):
    _TYPE = LayerType.CUMULATIVE
    _TYPE_NAME = "Cumulative"

    def __init__(self, network: NetworkCore, x: ITensor, axis: ITensor, op: CumulativeOperation, exclusive: bool,
                 reverse: bool):
        super().__init__(network, [x, axis])
        self.op = CumulativeOperation(op)
        self.exclusive = bool(exclusive)
        self.reverse = bool(reverse)

    def _infer(self, ins: list[Info | None]) -> list[Info]:
        x, ax = ins
        require_type(self, x, NUMERIC_TYPES, "input")
        require_type(self, ax, SHAPE_TYPES, "axis")
        if ax.rank != 0 or ax.const is None:
            raise self._fail("axis must be a 0-D build-time constant")
        return [Info(x.dtype, x.shape)]

    def _run(self, xs: list[np.ndarray | None]) -> list[np.ndarray]:
        x, ax = xs
        a = int(ax) % x.ndim
        t = np.flip(x, a) if self.reverse else x
        c = np.cumsum(t.astype(compute_in(x)), axis=a)
        if self.exclusive:
            c = c - t
        c = np.flip(c, a) if self.reverse else c
        return [c.astype(x.dtype)]
