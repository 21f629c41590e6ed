"""Indexing layers: gather (default / element / nd modes), scatter and one-hot.

Semantics and the TensorRT pages they follow: docs/numpy-backend.md.
"""

from __future__ import annotations

import numpy as np

from ._network import ILayer, Info, ITensor, NetworkCore
from ._support import require_type, same_type, SHAPE_TYPES
from ._types import GatherMode, LayerType, ScatterMode, volume


def wrap_indices(layer: ILayer, idx: np.ndarray, n: int, what: str) -> np.ndarray:
    idx = idx.astype(np.int64)
    if idx.size and (idx.min() < -n or idx.max() >= n):
        raise layer._fail(f"{what} index out of range [-{n}, {n}) (min {idx.min()}, max {idx.max()})")
    return np.where(idx < 0, idx + n, idx)


class IGatherLayer(ILayer):
    _TYPE = LayerType.GATHER
    _TYPE_NAME = "Gather"

    def __init__(self, network: NetworkCore, data: ITensor, indices: ITensor, axis: int, mode: GatherMode):
        super().__init__(network, [data, indices])
        self.axis = int(axis)
        self.mode = GatherMode(mode)
        self.num_elementwise_dims = 0

    def _infer(self, ins: list[Info | None]) -> list[Info]:
        data, ind = ins
        require_type(self, ind, SHAPE_TYPES, "indices")
        mode, ax, nbe = GatherMode(self.mode), int(self.axis), int(self.num_elementwise_dims)
        pv = None
        if mode == GatherMode.DEFAULT:
            if not 0 <= ax < data.rank:
                raise self._fail(f"axis {ax} is outside [0, {data.rank})")
            if nbe not in (0, 1) or (nbe == 1 and (ax == 0 or ind.rank < 1)):
                raise self._fail(f"num_elementwise_dims={nbe} is not valid with axis {ax} in DEFAULT mode")
            shape = data.shape[:ax] + ind.shape[nbe:] + data.shape[ax + 1:]
            if data.rank == 1 and data.pvalue is not None and ind.pvalue is not None and ind.rank <= 1:
                n = len(data.pvalue)
                pv = [data.pvalue[i] if i is not None and -n <= i < n else None for i in ind.pvalue]
        elif mode == GatherMode.ELEMENT:
            if not 0 <= ax < data.rank or ind.rank != data.rank:
                raise self._fail(f"ELEMENT mode needs indices of the data's rank {data.rank} and a valid axis")
            if nbe != 0:
                raise self._fail("ELEMENT mode needs num_elementwise_dims = 0")
            shape = ind.shape
        else:
            q = ind.shape[-1] if ind.rank else -1
            if q < 0:
                raise self._fail("ND mode needs the last dimension of the indices to be static")
            if nbe + q > data.rank:
                raise self._fail(f"ND mode: {nbe} batch dims + index depth {q} exceed data rank {data.rank}")
            shape = ind.shape[:-1] + data.shape[nbe + q:]
        return [Info(data.dtype, tuple(shape), pv)]

    def _run(self, xs: list[np.ndarray | None]) -> list[np.ndarray]:
        data, ind = xs
        mode, ax, nbe = GatherMode(self.mode), int(self.axis), int(self.num_elementwise_dims)
        if mode == GatherMode.DEFAULT:
            idx = wrap_indices(self, ind, data.shape[ax], "gather")
            if nbe == 0:
                return [np.take(data, idx, axis=ax)]
            if data.shape[0] != ind.shape[0]:
                raise self._fail(f"elementwise dim 0 differs: data {data.shape}, indices {ind.shape}")
            return [np.stack([np.take(data[b], idx[b], axis=ax - 1) for b in range(data.shape[0])])]
        if mode == GatherMode.ELEMENT:
            idx = wrap_indices(self, ind, data.shape[ax], "gather")
            return [np.take_along_axis(data, idx, axis=ax)]
        q = ind.shape[-1]
        batch = data.shape[:nbe]
        if ind.shape[:nbe] != batch:
            raise self._fail(f"ND mode batch dims differ: data {data.shape}, indices {ind.shape}")
        out_shape = ind.shape[:-1] + data.shape[nbe + q:]
        d2 = data.reshape((volume(batch),) + data.shape[nbe:])
        i2 = ind.reshape((volume(batch), -1, q))
        res = []
        for b in range(d2.shape[0]):
            cols = [wrap_indices(self, i2[b, :, j], d2.shape[1 + j], "gather") for j in range(q)]
            res.append(d2[b][tuple(cols)])
        return [np.stack(res).reshape(out_shape) if res else np.zeros(out_shape, data.dtype)]


class IOneHotLayer(ILayer):
    _TYPE = LayerType.ONE_HOT
    _TYPE_NAME = "OneHot"

    def __init__(self, network: NetworkCore, indices: ITensor, values: ITensor, depth: ITensor, axis: int):
        super().__init__(network, [indices, values, depth])
        self.axis = int(axis)

    def _infer(self, ins: list[Info | None]) -> list[Info]:
        ind, val, dep = ins
        require_type(self, ind, SHAPE_TYPES, "indices")
        require_type(self, dep, SHAPE_TYPES, "depth")
        if val.shape not in ((2,), (-1,)) or dep.rank != 0:
            raise self._fail("values must be a 2-element [off, on] tensor and depth a 0-D tensor")
        ax = int(self.axis) % (ind.rank + 1)
        depth = dep.pvalue[0] if dep.pvalue and dep.pvalue[0] is not None else -1
        return [Info(val.dtype, ind.shape[:ax] + (depth,) + ind.shape[ax:])]

    def _run(self, xs: list[np.ndarray | None]) -> list[np.ndarray]:
        ind, val, dep = xs
        depth = int(dep)
        ax = int(self.axis) % (ind.ndim + 1)
        idx = np.where(ind < 0, ind + depth, ind)
        hot = np.expand_dims(idx, ax) == np.arange(depth).reshape([-1 if i == ax else 1 for i in range(ind.ndim + 1)])
        return [np.where(hot, val[1], val[0]).astype(val.dtype)]


class IScatterLayer(ILayer):
    _TYPE = LayerType.SCATTER
    _TYPE_NAME = "Scatter"

    def __init__(self, network: NetworkCore, data: ITensor, indices: ITensor, updates: ITensor, mode: ScatterMode):
        super().__init__(network, [data, indices, updates])
        self.mode = ScatterMode(mode)
        self.axis = 0

    def _infer(self, ins: list[Info | None]) -> list[Info]:
        data, ind, upd = ins
        require_type(self, ind, SHAPE_TYPES, "indices")
        same_type(self, [data, upd], "data and updates")
        return [Info(data.dtype, data.shape)]

    def _run(self, xs: list[np.ndarray | None]) -> list[np.ndarray]:
        data, ind, upd = xs
        out = data.copy()
        if ScatterMode(self.mode) == ScatterMode.ELEMENT:
            ax = int(self.axis)
            idx = wrap_indices(self, ind, data.shape[ax], "scatter")
            grid = list(np.indices(ind.shape, sparse=True))
            grid[ax] = idx
            out[tuple(grid)] = upd
            return [out]
        q = ind.shape[-1]
        flat = ind.reshape(-1, q)
        cols = tuple(wrap_indices(self, flat[:, j], data.shape[j], "scatter") for j in range(q))
        out[cols] = upd.reshape((flat.shape[0],) + data.shape[q:])
        return [out]
