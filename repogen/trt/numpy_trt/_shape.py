"""Layers that move data without computing on it: shape, shuffle (reshape / transpose), concatenation,
slice (with its sample modes), padding; and the assertion layer, which checks shape-tensor conditions.

Semantics and the TensorRT pages they follow: docs/numpy-backend.md.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ._conv import pad_crop
from ._network import ILayer, Info, ITensor, NetworkCore
from ._support import default_axis, require_type, same_type, shape_input_values, SHAPE_TYPES
from ._types import c_order, DataType, Dims, LayerType, NetworkError, SampleMode, volume


def reshape_target(layer: ILayer, in_shape: tuple[int, ...], dims: Sequence[int | None], zero_placeholder: bool) -> tuple[int, ...]:
    """Output dims of a reshape: 0 copies the input dim (when a placeholder), -1 is inferred, None unknown."""
    out: list[int] = []
    infer_at = None
    for i, d in enumerate(dims):
        if d is None:
            out.append(-1)
        elif d == 0 and zero_placeholder:
            if i >= len(in_shape):
                raise layer._fail(f"reshape dim {i} is 0 (copy) but the input has rank {len(in_shape)}")
            out.append(in_shape[i])
        elif d == -1:
            if infer_at is not None:
                raise layer._fail("reshape dims have more than one -1")
            infer_at = i
            out.append(-1)
        elif d < 0:
            raise layer._fail(f"reshape dim {d} is negative")
        else:
            out.append(int(d))
    vol_in = volume(in_shape) if all(d >= 0 for d in in_shape) else None
    others = [d for j, d in enumerate(out) if j != infer_at]
    if infer_at is not None:
        if vol_in is not None and all(d >= 0 for d in others):
            rest = volume(others)
            if rest == 0 or vol_in % rest:
                raise layer._fail(f"cannot infer the -1 in reshape dims {list(dims)} from input shape {in_shape}")
            out[infer_at] = vol_in // rest
    elif vol_in is not None and all(d >= 0 for d in out) and volume(out) != vol_in:
        raise layer._fail(f"reshape to {tuple(out)} changes the volume of input shape {in_shape}")
    return tuple(out)


class IShuffleLayer(ILayer):
    _TYPE = LayerType.SHUFFLE
    _TYPE_NAME = "Shuffle"

    def __init__(self, network: NetworkCore, x: ITensor):
        super().__init__(network, [x])
        self.first_transpose = None
        self.second_transpose = None
        self.reshape_dims = None
        self.zero_is_placeholder = True

    def _max_inputs(self) -> int:
        return 1

    def _perm(self, perm: Any, rank: int, which: str) -> list[int]:
        if perm is None:
            return list(range(rank))
        p = [int(v) for v in perm]
        if len(p) > rank and p[rank:] == list(range(rank, len(p))):
            p = p[:rank]  # tensorrt's Permutation carries 8 entries; the tail beyond the rank is ignored
        if sorted(p) != list(range(rank)):
            raise self._fail(f"{which} {tuple(p)} is not a permutation of rank {rank}")
        return p

    def _target(self, ins: list[Info | None]) -> list[int | None] | None:
        if len(ins) > 1 and ins[1] is not None:
            return shape_input_values(self, ins[1], "reshape dims (input 1)")[1]
        if self.reshape_dims is None:
            return None
        return [int(d) for d in Dims(self.reshape_dims)]

    def _infer(self, ins: list[Info | None]) -> list[Info]:
        x = ins[0]
        p1 = self._perm(self.first_transpose, x.rank, "first_transpose")
        shape = tuple(x.shape[i] for i in p1)
        target = self._target(ins)
        if target is not None:
            shape = reshape_target(self, shape, target, bool(self.zero_is_placeholder))
        p2 = self._perm(self.second_transpose, len(shape), "second_transpose")
        shape = tuple(shape[i] for i in p2)
        pv = None
        if x.pvalue is not None and len(shape) <= 1 and x.rank <= 1 and (not shape or shape[0] == len(x.pvalue)):
            pv = list(x.pvalue)
        return [Info(x.dtype, shape, pv)]

    def _run(self, xs: list[np.ndarray | None]) -> list[np.ndarray]:
        x = xs[0]
        y = np.transpose(x, self._perm(self.first_transpose, x.ndim, "first_transpose"))
        if len(xs) > 1 and xs[1] is not None:
            target: list[int] | None = [int(v) for v in xs[1]]
        else:
            target = None if self.reshape_dims is None else [int(d) for d in Dims(self.reshape_dims)]
        if target is not None:
            shape = reshape_target(self, y.shape, target, bool(self.zero_is_placeholder))
            y = y.reshape(shape)
        y = np.transpose(y, self._perm(self.second_transpose, y.ndim, "second_transpose"))
        return [np.array(y, order="C")]  # np.ascontiguousarray turns a 0-D result into shape (1,)


class IConcatenationLayer(ILayer):
    _TYPE = LayerType.CONCATENATION
    _TYPE_NAME = "Concatenation"

    def __init__(self, network: NetworkCore, inputs: Sequence[ITensor]):
        if not inputs:
            raise NetworkError("add_concatenation", "needs at least one input")
        rank = len(inputs[0].shape)
        super().__init__(network, list(inputs))
        self.axis = default_axis(rank)

    def _infer(self, ins: list[Info | None]) -> list[Info]:
        t = same_type(self, ins)
        rank = ins[0].rank
        if any(i.rank != rank for i in ins):
            raise self._fail(f"inputs have different ranks {[i.shape for i in ins]}")
        ax = int(self.axis)
        if not 0 <= ax < max(rank, 1) or rank == 0:
            raise self._fail(f"axis {ax} is outside [0, {rank}) (negative axes are not accepted)")
        shape = []
        for d in range(rank):
            dims = [i.shape[d] for i in ins]
            if d == ax:
                shape.append(-1 if any(v < 0 for v in dims) else sum(dims))
            else:
                known = {v for v in dims if v >= 0}
                if len(known) > 1:
                    # the axis is set after add_concatenation (default: rank - 3), so this may still be fixed
                    self._late(f"inputs differ outside the concatenation axis {ax}: {[i.shape for i in ins]}")
                    shape.append(-1)
                    continue
                shape.append(known.pop() if known else -1)
        pv = None
        if rank == 1 and t in SHAPE_TYPES and all(i.shape[0] >= 0 for i in ins):
            pv = [v for i in ins for v in (i.pvalue if i.pvalue is not None else [None] * i.shape[0])]
        return [Info(t, tuple(shape), pv)]

    def _run(self, xs: list[np.ndarray | None]) -> list[np.ndarray]:
        try:
            return [np.concatenate(xs, axis=int(self.axis))]
        except ValueError as exc:
            raise self._fail(f"run-time shapes {[x.shape for x in xs]}: {exc}") from exc


def sample_indices(mode: int, idx: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Map sampled coordinates into [0, n); second result marks out-of-bounds positions (for FILL)."""
    mode = SampleMode(mode)
    if mode == SampleMode.WRAP:
        return np.mod(idx, n) if n else idx, None
    if mode == SampleMode.CLAMP:
        return np.clip(idx, 0, max(n - 1, 0)), None
    if mode == SampleMode.REFLECT:
        if n == 1:
            return np.zeros_like(idx), None
        period = 2 * (n - 1)
        m = np.mod(idx, period)
        return np.where(m < n, m, period - m), None
    oob = (idx < 0) | (idx >= n)
    return np.clip(idx, 0, max(n - 1, 0)), oob


class ISliceLayer(ILayer):
    _TYPE = LayerType.SLICE
    _TYPE_NAME = "Slice"

    def __init__(self, network: NetworkCore, x: ITensor, start: Sequence[int], shape: Sequence[int],
                 stride: Sequence[int]):
        super().__init__(network, [x])
        self.start = Dims(start)
        self.shape = Dims(shape)
        self.stride = Dims(stride)
        self.mode = SampleMode.STRICT_BOUNDS

    def _max_inputs(self) -> int:
        return 4

    def _param(self, ins: list[Info | None], idx: int, attr: str, rank: int) -> list[int | None]:
        if len(ins) > idx and ins[idx] is not None:
            n, vals = shape_input_values(self, ins[idx], f"{attr} (input {idx})")
        else:
            vals = [int(v) for v in Dims(getattr(self, attr))]
            n = len(vals)
        if n != rank:
            raise self._fail(f"{attr} has {n} entries, the input has rank {rank}")
        return vals

    def _infer(self, ins: list[Info | None]) -> list[Info]:
        x = ins[0]
        start = self._param(ins, 1, "start", x.rank)
        size = self._param(ins, 2, "shape", x.rank)
        stride = self._param(ins, 3, "stride", x.rank)
        mode = SampleMode(self.mode)
        if len(ins) > 4 and ins[4] is not None:
            if mode != SampleMode.FILL:
                raise self._fail("a fill value (input 4) is only accepted in FILL mode")
            if ins[4].dtype != x.dtype or ins[4].rank != 0:
                raise self._fail(f"fill value must be a 0-D {x.dtype.name} tensor")
        for d, (s0, n, st, dim) in enumerate(zip(start, size, stride, x.shape)):
            if n is not None and n < 0:
                raise self._fail(f"shape[{d}]={n} is negative")
            # STRICT_BOUNDS violations are reported at run time: converters set `mode` after add_slice
        shape = tuple(-1 if n is None else n for n in size)
        pv = None
        if x.rank == 1 and x.pvalue is not None and None not in (start[0], size[0], stride[0]):
            if mode == SampleMode.STRICT_BOUNDS or x.shape[0] >= 0:
                n = len(x.pvalue)
                ids = [start[0] + i * stride[0] for i in range(size[0])]
                if all(0 <= i < n for i in ids):
                    pv = [x.pvalue[i] for i in ids]
        return [Info(x.dtype, shape, pv)]

    def _run(self, xs: list[np.ndarray | None]) -> list[np.ndarray]:
        x = xs[0]

        def param(i: int, attr: str) -> list[int]:
            if len(xs) > i and xs[i] is not None:
                return [int(v) for v in xs[i]]
            return [int(v) for v in Dims(getattr(self, attr))]

        start, size, stride = param(1, "start"), param(2, "shape"), param(3, "stride")
        mode = SampleMode(self.mode)
        index, oob_masks = [], []
        for d, (s0, n, st) in enumerate(zip(start, size, stride)):
            coords = s0 + np.arange(n, dtype=np.int64) * st
            if mode == SampleMode.STRICT_BOUNDS and n > 0 and (coords.min() < 0 or coords.max() >= x.shape[d]):
                raise self._fail(f"STRICT_BOUNDS slice leaves dimension {d} (size {x.shape[d]}) at run time")
            if x.shape[d] == 0 and n > 0 and mode != SampleMode.FILL:
                raise self._fail(f"cannot sample {n} elements from empty dimension {d}")
            mapped, oob = sample_indices(mode, coords, x.shape[d])
            index.append(mapped)
            oob_masks.append(oob)
        if x.size == 0:
            fill = xs[4] if len(xs) > 4 and xs[4] is not None else np.zeros((), x.dtype)
            return [np.full(size, fill, x.dtype)]
        y = x[np.ix_(*index)] if index else x.copy()
        if mode == SampleMode.FILL:
            fill = xs[4] if len(xs) > 4 and xs[4] is not None else np.zeros((), x.dtype)
            mask = np.zeros(y.shape, bool)
            for d, oob in enumerate(oob_masks):
                shp = [1] * y.ndim
                shp[d] = -1
                mask |= oob.reshape(shp)
            y = np.where(mask, fill, y).astype(x.dtype)
        return [c_order(y)]


class IShapeLayer(ILayer):
    _TYPE = LayerType.SHAPE
    _TYPE_NAME = "Shape"

    def _infer(self, ins: list[Info | None]) -> list[Info]:
        x = ins[0]
        pv = [None if d < 0 else d for d in x.shape]
        const = np.array(x.shape, np.int64) if all(d >= 0 for d in x.shape) else None
        # TensorRT 10 shape layers produce INT64
        return [Info(DataType.INT64, (x.rank,), pv, const)]

    def _run(self, xs: list[np.ndarray | None]) -> list[np.ndarray]:
        return [np.array(xs[0].shape, np.int64)]


class IPaddingLayer(ILayer):
    _TYPE = LayerType.PADDING
    _TYPE_NAME = "Padding"

    def __init__(self, network: NetworkCore, x: ITensor, pre: Sequence[int], post: Sequence[int]):
        super().__init__(network, [x])
        self.pre_padding_nd = Dims(pre)
        self.post_padding_nd = Dims(post)

    def _infer(self, ins: list[Info | None]) -> list[Info]:
        x = ins[0]
        pre, post = tuple(Dims(self.pre_padding_nd)), tuple(Dims(self.post_padding_nd))
        if len(pre) != len(post) or not 0 < len(pre) <= x.rank:
            raise self._fail(f"pre {pre} / post {post} padding must have equal length, at most rank {x.rank}")
        lead = x.rank - len(pre)
        shape = x.shape[:lead] + tuple(-1 if d < 0 else d + a + b for d, a, b in zip(x.shape[lead:], pre, post))
        if any(d < -1 for d in shape):
            raise self._fail(f"negative padding crops {x.shape} below zero")
        return [Info(x.dtype, shape)]

    def _run(self, xs: list[np.ndarray | None]) -> list[np.ndarray]:
        pairs = list(zip(Dims(self.pre_padding_nd), Dims(self.post_padding_nd)))
        return [c_order(pad_crop(xs[0], pairs, 0))]


class IAssertionLayer(ILayer):
    _TYPE = LayerType.ASSERTION
    _TYPE_NAME = "Assertion"

    def __init__(self, network: NetworkCore, condition: ITensor, message: str):
        super().__init__(network, [condition], 0)
        self.message = message

    def _infer(self, ins: list[Info | None]) -> list[Info]:
        require_type(self, ins[0], {DataType.BOOL}, "condition")
        if ins[0].const is not None and not ins[0].const.all():
            raise self._fail(f"assertion fails at build time: {self.message}")
        return []

    def _run(self, xs: list[np.ndarray | None]) -> list[np.ndarray]:
        if not np.all(xs[0]):
            raise self._fail(f"assertion failed: {self.message}")
        return []
