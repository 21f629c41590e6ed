"""Checks and array helpers shared by the layer modules: axes bitmasks, broadcasting, input types,
shape-tensor input values, weights, the dtype computations run in.

Semantics and the TensorRT pages they follow: docs/numpy-backend.md.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ._network import ILayer, Info
from ._types import as_weights, DataType, FLOAT_TYPES


SHAPE_TYPES = frozenset({DataType.INT32, DataType.INT64})


def axes_of(layer: ILayer, mask: int, rank: int) -> list[int]:
    mask = int(mask)
    if mask < 0 or mask >> max(rank, 0):
        raise layer._fail(f"axes bitmask {mask:#b} names an axis beyond rank {rank}")
    return [a for a in range(rank) if mask >> a & 1]


def broadcast_shapes(layer: ILayer, shapes: Sequence[tuple[int, ...]]) -> tuple[int, ...]:
    """TensorRT broadcasting: equal ranks, per dimension equal lengths or one of them 1."""
    ranks = {len(s) for s in shapes}
    if len(ranks) != 1:
        raise layer._fail(
            f"inputs have different ranks {[tuple(s) for s in shapes]}; TensorRT broadcasts only tensors of "
            "equal rank (insert a shuffle to add leading 1s)"
        )
    out = []
    for dims in zip(*shapes):
        known = {d for d in dims if d not in (-1, 1)}
        if len(known) > 1:
            raise layer._fail(f"dimensions {[tuple(s) for s in shapes]} cannot be broadcast")
        if known:
            out.append(known.pop())
        elif -1 in dims:
            # -1 vs 1 stays dynamic; -1 vs -1 is checked at run time
            out.append(-1)
        else:
            out.append(1)
    return tuple(out)


def run_broadcast_check(layer: ILayer, arrays: Sequence[np.ndarray]) -> None:
    for dims in zip(*(a.shape for a in arrays)):
        if len({d for d in dims if d != 1}) > 1:
            raise layer._fail(f"run-time shapes {[a.shape for a in arrays]} cannot be broadcast")


def same_type(layer: ILayer, infos: Sequence[Info], what: str = "inputs") -> DataType:
    types = {i.dtype for i in infos}
    if len(types) != 1:
        raise layer._fail(
            f"{what} have different types {[i.dtype.name for i in infos]}; a strongly typed network needs "
            "them equal (add_cast one of them)"
        )
    return types.pop()


def require_type(layer: ILayer, info: Info, allowed: frozenset | set, what: str = "input") -> None:
    if info.dtype not in allowed:
        names = sorted(t.name for t in allowed)
        raise layer._fail(f"{what} type {info.dtype.name} is not supported (allowed: {', '.join(names)})")


def shape_input_values(layer: ILayer, info: Info, what: str) -> tuple[int, list[int | None]]:
    """Length and known values of a 1-D int shape tensor given to a layer."""
    require_type(layer, info, SHAPE_TYPES, what)
    if info.rank != 1 or info.shape[0] < 0:
        raise layer._fail(f"{what} must be a 1-D shape tensor of static length, got shape {info.shape}")
    return info.shape[0], list(info.pvalue) if info.pvalue is not None else [None] * info.shape[0]


def compute_in(x: np.ndarray) -> np.dtype:
    """Accumulation type: TensorRT kernels accumulate half precision in float32."""
    return np.dtype(np.float32) if x.dtype == np.float16 else x.dtype


def weights_array(layer: ILayer, w: Any, what: str) -> np.ndarray | None:
    w = as_weights(w)
    return None if w.size == 0 else w.numpy()


NUMERIC_TYPES = frozenset(FLOAT_TYPES | {DataType.INT8, DataType.INT32, DataType.INT64})


def default_axis(rank: int) -> int:
    """Default softmax/concat axis in TensorRT: rank - 3, or 0 below rank 3 (C of NCHW)."""
    return max(0, rank - 3)
