"""Resize, padding, normalization, select, fill, (de)quantize, einsum, one-hot, cumulative, scatter, assertion."""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from ._layers import (
    FLOAT_TYPES,
    SHAPE_TYPES,
    _NUMERIC,
    axes_of,
    broadcast_shapes,
    compute_in,
    require_type,
    run_broadcast_check,
    same_type,
    shape_input_values,
    wrap_indices,
)
from ._network import ILayer, Info, ITensor, NetworkCore
from ._types import (
    c_order,
    CumulativeOperation,
    DataType,
    Dims,
    FillOperation,
    InterpolationMode,
    LayerType,
    ResizeCoordinateTransformation,
    ResizeRoundMode,
    ResizeSelector,
    ScatterMode,
    np_dtype,
    volume,
)

_IM = InterpolationMode
_CT = ResizeCoordinateTransformation


# ---------------------------------------------------------------- resize


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


# ---------------------------------------------------------------- padding


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
        from ._conv import pad_crop

        pairs = list(zip(Dims(self.pre_padding_nd), Dims(self.post_padding_nd)))
        return [c_order(pad_crop(xs[0], pairs, 0))]


# ---------------------------------------------------------------- normalization


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
        ct = np.float32 if DataType(self.compute_precision) == DataType.FLOAT else compute_in(x)
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


# ---------------------------------------------------------------- select / fill


class ISelectLayer(ILayer):
    _TYPE = LayerType.SELECT
    _TYPE_NAME = "Select"

    def _infer(self, ins: list[Info | None]) -> list[Info]:
        c, a, b = ins
        require_type(self, c, {DataType.BOOL}, "condition")
        t = same_type(self, [a, b], "then/else inputs")
        return [Info(t, broadcast_shapes(self, [c.shape, a.shape, b.shape]))]

    def _run(self, xs: list[np.ndarray | None]) -> list[np.ndarray]:
        run_broadcast_check(self, xs)
        return [np.where(xs[0], xs[1], xs[2]).astype(xs[1].dtype)]


class IFillLayer(ILayer):
    _TYPE = LayerType.FILL
    _TYPE_NAME = "Fill"
    _FOLDABLE = True

    def __init__(self, network: NetworkCore, shape: Sequence[int], op: FillOperation, to_type: DataType):
        super().__init__(network, [])
        self.shape = Dims(shape)
        self.operation = FillOperation(op)
        self.to_type = DataType(to_type)
        self.alpha = 0.0
        self.beta = 0.0

    def _max_inputs(self) -> int:
        return 2

    def _infer(self, ins: list[Info | None]) -> list[Info]:
        if FillOperation(self.operation) != FillOperation.LINSPACE:
            raise self._fail("only LINSPACE fill is implemented (random fills have no reference semantics)")
        if DataType(self.to_type) not in (DataType.INT32, DataType.INT64, DataType.FLOAT):
            # TensorRT-RTX 1.7's builder: "FillOperation::kLINSPACE only supports `output` type kINT32 /
            # kINT64 / kFLOAT" (docs/gpu-validation.md); to_type is set after add_fill, so refuse late
            self._late(f"a LINSPACE fill produces INT32, INT64 or FLOAT, not {DataType(self.to_type).name}")
        if ins and ins[0] is not None:
            shape = tuple(-1 if v is None else v for v in shape_input_values(self, ins[0], "shape (input 0)")[1])
        else:
            shape = tuple(Dims(self.shape))
        for i in (1, 2):
            if len(ins) > i and ins[i] is not None and ins[i].dtype != DataType(self.to_type):
                raise self._fail(f"input {i} is {ins[i].dtype.name}, the fill type is {DataType(self.to_type).name}")
        if len(ins) > 2 and ins[2] is not None and ins[2].rank != 1:
            raise self._fail("beta (input 2) must be a 1-D tensor with one delta per output dimension")
        return [Info(DataType(self.to_type), shape)]

    def _run(self, xs: list[np.ndarray | None]) -> list[np.ndarray]:
        shape = [int(v) for v in xs[0]] if xs and xs[0] is not None else list(Dims(self.shape))
        dt = np_dtype(DataType(self.to_type))
        alpha = xs[1] if len(xs) > 1 and xs[1] is not None else np.asarray(self.alpha)
        if len(xs) > 2 and xs[2] is not None:
            beta = list(xs[2])
        else:
            b = self.beta
            beta = list(b) if isinstance(b, (list, tuple, np.ndarray)) else [b] * len(shape)
        if len(beta) != len(shape):
            raise self._fail(f"beta has {len(beta)} entries for a rank-{len(shape)} output")
        # LINSPACE: out[i0, i1, ...] = alpha + sum_k beta[k] * i_k
        acc = np.float64 if dt.kind == "f" else np.int64
        out = np.full(shape, np.asarray(alpha, acc), acc)
        for k, step in enumerate(beta):
            view = [1] * len(shape)
            view[k] = shape[k]
            out = out + np.arange(shape[k], dtype=acc).reshape(view) * acc(step)
        return [out.astype(dt)]


# ---------------------------------------------------------------- quantize / dequantize


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


# ---------------------------------------------------------------- einsum / one-hot / cumulative / scatter / assertion


class IEinsumLayer(ILayer):
    _TYPE = LayerType.EINSUM
    _TYPE_NAME = "Einsum"

    def __init__(self, network: NetworkCore, inputs: Sequence[ITensor], equation: str):
        super().__init__(network, list(inputs))
        self.equation = equation

    def _infer(self, ins: list[Info | None]) -> list[Info]:
        t = same_type(self, ins)
        require_type(self, ins[0], FLOAT_TYPES, "input")
        eq = self.equation.replace(" ", "")
        if "..." in eq:
            raise self._fail("ellipsis in einsum equations is not supported by TensorRT")
        lhs, _, rhs = eq.partition("->")
        terms = lhs.split(",")
        if len(terms) != len(ins):
            raise self._fail(f"equation {eq!r} names {len(terms)} operands, {len(ins)} given")
        sizes: dict[str, int] = {}
        for term, info in zip(terms, ins):
            if len(term) != info.rank:
                raise self._fail(f"subscripts {term!r} do not match an input of rank {info.rank}")
            for ch, d in zip(term, info.shape):
                if d >= 0:
                    sizes[ch] = d
                else:
                    sizes.setdefault(ch, -1)
        if not _:
            rhs = "".join(sorted(c for c in set(lhs.replace(",", "")) if lhs.replace(",", "").count(c) == 1))
        return [Info(t, tuple(sizes.get(c, -1) for c in rhs))]

    def _run(self, xs: list[np.ndarray | None]) -> list[np.ndarray]:
        ct = compute_in(xs[0])
        return [np.einsum(self.equation, *[x.astype(ct) for x in xs], optimize=True).astype(xs[0].dtype)]


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
        require_type(self, x, _NUMERIC, "input")
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
