"""Layer classes: build-time type/shape inference (_infer) and NumPy execution (_run).

The semantics of each layer and the TensorRT documentation page they follow are listed in
docs/numpy-backend.md.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from ._network import ILayer, Info, NetworkCore, ITensor
from ._types import (
    c_order,
    NetworkError,
    FLOAT_TYPES,
    INT_TYPES,
    ActivationType,
    DataType,
    Dims,
    ElementWiseOperation,
    GatherMode,
    LayerType,
    MatrixOperation,
    ReduceOperation,
    SampleMode,
    ScaleMode,
    TopKOperation,
    UnaryOperation,
    Weights,
    as_weights,
    np_dtype,
    trt_dtype,
    volume,
)

SHAPE_TYPES = frozenset({DataType.INT32, DataType.INT64})
_ERF = np.vectorize(math.erf, otypes=[np.float64])


# ---------------------------------------------------------------- helpers shared by layers


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


# ---------------------------------------------------------------- constant / identity / cast


class IConstantLayer(ILayer):
    _TYPE = LayerType.CONSTANT
    _TYPE_NAME = "Constant"

    def __init__(self, network: NetworkCore, shape: Sequence[int], weights: Any):
        super().__init__(network, [])
        self.shape = Dims(shape)
        self.weights = weights

    def _infer(self, ins: list[Info | None]) -> list[Info]:
        w = as_weights(self.weights)
        shape = tuple(Dims(self.shape))
        if any(d < 0 for d in shape):
            raise self._fail(f"constant shape {shape} has a negative dimension")
        if w.size != volume(shape) and w.size != 1 and not (w.size == 0 and volume(shape) == 0):
            raise self._fail(f"weights have {w.size} values, shape {shape} needs {volume(shape)}")
        arr = w.numpy().reshape(-1)
        # a single weight value broadcasts (TensorRT accepts count 1 for any shape)
        value = (np.broadcast_to(arr, (volume(shape),)) if arr.size == 1 else arr).reshape(shape).copy()
        return [Info(w.dtype, shape, None, value)]

    def _run(self, xs: list[np.ndarray | None]) -> list[np.ndarray]:
        return [self._outputs[0]._get_info().const]


class IIdentityLayer(ILayer):
    _TYPE = LayerType.IDENTITY
    _TYPE_NAME = "Identity"

    def _infer(self, ins: list[Info | None]) -> list[Info]:
        x = ins[0]
        return [Info(x.dtype, x.shape, x.pvalue)]

    def _run(self, xs: list[np.ndarray | None]) -> list[np.ndarray]:
        return [xs[0].copy()]


def cast_array(x: np.ndarray, to: DataType) -> np.ndarray:
    dt = np_dtype(to)
    if to == DataType.BOOL:
        return x != 0
    if x.dtype.kind == "f" and dt.kind in "iu":
        # float -> int rounds toward zero (the Cast operator page's example: 5.6 -> 5)
        with np.errstate(invalid="ignore", over="ignore"):
            return np.trunc(x).astype(dt)
    return x.astype(dt)


class ICastLayer(ILayer):
    _TYPE = LayerType.CAST
    _TYPE_NAME = "Cast"

    def __init__(self, network: NetworkCore, x: ITensor, to_type: DataType):
        super().__init__(network, [x])
        self.to_type = DataType(to_type)

    def _infer(self, ins: list[Info | None]) -> list[Info]:
        x = ins[0]
        to = DataType(self.to_type)
        np_dtype(to)  # raises for types without NumPy storage
        pv = x.pvalue if to in SHAPE_TYPES and x.dtype in SHAPE_TYPES else None
        return [Info(to, x.shape, pv)]

    def _run(self, xs: list[np.ndarray | None]) -> list[np.ndarray]:
        return [cast_array(xs[0], DataType(self.to_type))]


# ---------------------------------------------------------------- elementwise / unary / activation

_E = ElementWiseOperation
_COMPARE = {_E.EQUAL, _E.GREATER, _E.LESS}
_LOGICAL = {_E.AND, _E.OR, _E.XOR}
_NUMERIC = frozenset(FLOAT_TYPES | {DataType.INT8, DataType.INT32, DataType.INT64})


def elementwise(op: int, a: Any, b: Any) -> Any:
    """Shared by execution and partial shape-value propagation (a, b may be arrays or Python ints)."""
    op = _E(op)
    if op == _E.SUM:
        return a + b
    if op == _E.PROD:
        return a * b
    if op == _E.MAX:
        return np.maximum(a, b)
    if op == _E.MIN:
        return np.minimum(a, b)
    if op == _E.SUB:
        return a - b
    if op == _E.DIV:
        if np.asarray(a).dtype.kind in "iu":
            # integer division truncates toward zero (C semantics; FLOOR_DIV is the floor variant)
            q = np.floor_divide(a, b)
            fix = (np.remainder(a, b) != 0) & ((np.asarray(a) < 0) != (np.asarray(b) < 0))
            return q + fix.astype(np.asarray(q).dtype)
        return a / b
    if op == _E.POW:
        if np.asarray(a).dtype.kind in "iu":
            dt = np.result_type(a, b)
            return np.trunc(np.power(np.asarray(a, np.float64), np.asarray(b, np.float64))).astype(dt)
        return np.power(a, b)
    if op == _E.FLOOR_DIV:
        if np.asarray(a).dtype.kind in "iu":
            return np.floor_divide(a, b)
        return np.floor(a / b)
    if op == _E.AND:
        return np.logical_and(a, b)
    if op == _E.OR:
        return np.logical_or(a, b)
    if op == _E.XOR:
        return np.logical_xor(a, b)
    if op == _E.EQUAL:
        return np.equal(a, b)
    if op == _E.GREATER:
        return np.greater(a, b)
    if op == _E.LESS:
        return np.less(a, b)
    raise ValueError(f"unknown elementwise operation {op}")


class IElementWiseLayer(ILayer):
    _TYPE = LayerType.ELEMENTWISE
    _TYPE_NAME = "ElementWise"

    def __init__(self, network: NetworkCore, a: ITensor, b: ITensor, op: ElementWiseOperation):
        super().__init__(network, [a, b])
        self.op = _E(op)

    def _infer(self, ins: list[Info | None]) -> list[Info]:
        a, b = ins
        op = _E(self.op)
        t = same_type(self, [a, b])
        if op in _LOGICAL:
            require_type(self, a, {DataType.BOOL}, f"{op.name} input")
        elif op in _COMPARE:
            require_type(self, a, frozenset(_NUMERIC - {DataType.INT8}), f"{op.name} input")
        else:
            require_type(self, a, _NUMERIC, f"{op.name} input")
        shape = broadcast_shapes(self, [a.shape, b.shape])
        out_t = DataType.BOOL if op in _COMPARE else t
        pv = None
        if t in SHAPE_TYPES and op not in _COMPARE and len(shape) <= 1 and a.pvalue is not None and b.pvalue is not None:
            n = shape[0] if shape else 1
            if n >= 0:
                pa = a.pvalue * n if len(a.pvalue) == 1 else a.pvalue
                pb = b.pvalue * n if len(b.pvalue) == 1 else b.pvalue
                pv = [
                    None if x is None or y is None or (op in (_E.DIV, _E.FLOOR_DIV) and y == 0)
                    else int(elementwise(op, np.int64(x), np.int64(y)))
                    for x, y in zip(pa, pb)
                ]
        return [Info(out_t, shape, pv)]

    def _run(self, xs: list[np.ndarray | None]) -> list[np.ndarray]:
        a, b = xs
        run_broadcast_check(self, [a, b])
        with np.errstate(all="ignore"):
            out = elementwise(self.op, a, b)
        return [np.asarray(out, dtype=np.bool_ if _E(self.op) in _COMPARE else a.dtype)]


_U = UnaryOperation
_U_SIGNED = {_U.ABS, _U.NEG, _U.SIGN}


def unary(op: int, x: np.ndarray) -> np.ndarray:
    op = _U(op)
    if op in (_U.ISINF, _U.ISNAN):
        return np.isinf(x) if op == _U.ISINF else np.isnan(x)
    if op == _U.NOT:
        return np.logical_not(x)
    if op == _U.ABS:
        return np.abs(x)
    if op == _U.NEG:
        return -x
    if op == _U.SIGN:
        return np.sign(x)
    fns = {
        _U.EXP: np.exp, _U.LOG: np.log, _U.SQRT: np.sqrt, _U.RECIP: np.reciprocal, _U.SIN: np.sin, _U.COS: np.cos,
        _U.TAN: np.tan, _U.SINH: np.sinh, _U.COSH: np.cosh, _U.ASIN: np.arcsin, _U.ACOS: np.arccos,
        _U.ATAN: np.arctan, _U.ASINH: np.arcsinh, _U.ACOSH: np.arccosh, _U.ATANH: np.arctanh, _U.CEIL: np.ceil,
        _U.FLOOR: np.floor,
        # ROUND: TensorRT documents round-to-nearest-even for floating point, which is np.rint
        _U.ROUND: np.rint,
    }
    if op == _U.ERF:
        return _ERF(x.astype(np.float64)).astype(x.dtype)
    return fns[op](x)


class IUnaryLayer(ILayer):
    _TYPE = LayerType.UNARY
    _TYPE_NAME = "Unary"

    def __init__(self, network: NetworkCore, x: ITensor, op: UnaryOperation):
        super().__init__(network, [x])
        self.op = _U(op)

    def _infer(self, ins: list[Info | None]) -> list[Info]:
        x = ins[0]
        op = _U(self.op)
        if op == _U.NOT:
            require_type(self, x, {DataType.BOOL}, "NOT input")
        elif op in _U_SIGNED:
            require_type(self, x, _NUMERIC, f"{op.name} input")
        else:
            require_type(self, x, FLOAT_TYPES, f"{op.name} input")
        out_t = DataType.BOOL if op in (_U.ISINF, _U.ISNAN) else x.dtype
        return [Info(out_t, x.shape)]

    def _run(self, xs: list[np.ndarray | None]) -> list[np.ndarray]:
        with np.errstate(all="ignore"):
            return [np.asarray(unary(self.op, xs[0]))]


_A = ActivationType


def activation(kind: int, x: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """Formulas from the Activation operator page; evaluated in float32 for half inputs, then rounded."""
    k = _A(kind)
    t = x.astype(compute_in(x))
    a, b = t.dtype.type(alpha), t.dtype.type(beta)
    with np.errstate(all="ignore"):
        if k == _A.RELU:
            y = np.maximum(t, 0)
        elif k == _A.SIGMOID:
            y = 1 / (1 + np.exp(-t))
        elif k == _A.TANH:
            y = np.tanh(t)
        elif k == _A.LEAKY_RELU:
            y = np.where(t >= 0, t, a * t)
        elif k == _A.ELU:
            y = np.where(t >= 0, t, a * (np.exp(t) - 1))
        elif k == _A.SELU:
            y = np.where(t > 0, b * t, b * (a * np.exp(t) - a))
        elif k == _A.SOFTSIGN:
            y = t / (1 + np.abs(t))
        elif k == _A.SOFTPLUS:
            y = a * np.logaddexp(0, b * t)
        elif k == _A.CLIP:
            y = np.maximum(a, np.minimum(b, t))
        elif k == _A.HARD_SIGMOID:
            y = np.maximum(0, np.minimum(1, a * t + b))
        elif k == _A.SCALED_TANH:
            y = a * np.tanh(b * t)
        elif k == _A.THRESHOLDED_RELU:
            y = np.where(t > a, t, 0)
        elif k == _A.GELU_ERF:
            y = 0.5 * t * (1 + _ERF(t.astype(np.float64) / math.sqrt(2.0)).astype(t.dtype))
        elif k == _A.GELU_TANH:
            y = 0.5 * t * (1 + np.tanh(t.dtype.type(math.sqrt(2 / math.pi)) * (t + t.dtype.type(0.044715) * t**3)))
        else:
            raise ValueError(f"unknown activation {k}")
    return np.asarray(y).astype(x.dtype)


class IActivationLayer(ILayer):
    _TYPE = LayerType.ACTIVATION
    _TYPE_NAME = "Activation"

    def __init__(self, network: NetworkCore, x: ITensor, kind: ActivationType):
        super().__init__(network, [x])
        self.type = _A(kind)
        self.alpha = 0.0
        self.beta = 0.0

    # ILayer.type is the LayerType; IActivationLayer.type is the activation kind in tensorrt's Python API
    @property
    def type(self) -> Any:  # type: ignore[override]
        return self.__dict__["_act"]

    @type.setter
    def type(self, value: Any) -> None:
        self.__dict__["_act"] = _A(value)
        self._network._touch(self)

    def _infer(self, ins: list[Info | None]) -> list[Info]:
        x = ins[0]
        require_type(self, x, FLOAT_TYPES | {DataType.INT8}, "activation input")
        return [Info(x.dtype, x.shape)]

    def _run(self, xs: list[np.ndarray | None]) -> list[np.ndarray]:
        return [activation(self.type, xs[0], self.alpha, self.beta)]


# ---------------------------------------------------------------- scale


class IScaleLayer(ILayer):
    _TYPE = LayerType.SCALE
    _TYPE_NAME = "Scale"

    def __init__(self, network: NetworkCore, x: ITensor, mode: ScaleMode, shift: Any, scale: Any,
                 power: Any, channel_axis: int):
        super().__init__(network, [x])
        self.mode = ScaleMode(mode)
        self.shift = as_weights(shift)
        self.scale = as_weights(scale)
        self.power = as_weights(power)
        self.channel_axis = int(channel_axis)

    def _coeff_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        mode, c = ScaleMode(self.mode), self.channel_axis
        if mode == ScaleMode.UNIFORM:
            return (1,) * len(shape)
        if mode == ScaleMode.CHANNEL:
            return tuple(d if i == c else 1 for i, d in enumerate(shape))
        return tuple(d if i >= c else 1 for i, d in enumerate(shape))

    def _infer(self, ins: list[Info | None]) -> list[Info]:
        x = ins[0]
        require_type(self, x, FLOAT_TYPES, "scale input")
        if not 0 <= self.channel_axis < x.rank:
            raise self._fail(f"channel_axis {self.channel_axis} is outside rank {x.rank}")
        cshape = self._coeff_shape(x.shape)
        if any(d < 0 for d in cshape):
            raise self._fail(f"{ScaleMode(self.mode).name} scaling needs static dims over the scaled axes, got {x.shape}")
        for name in ("shift", "scale", "power"):
            w = as_weights(getattr(self, name))
            if w.size == 0:
                continue
            if w.dtype != x.dtype:
                raise self._fail(f"{name} weights are {w.dtype.name} but the input is {x.dtype.name} (strongly typed)")
            if w.size != volume(cshape):
                raise self._fail(f"{name} has {w.size} values; {ScaleMode(self.mode).name} mode needs {volume(cshape)}")
        return [Info(x.dtype, x.shape)]

    def _run(self, xs: list[np.ndarray | None]) -> list[np.ndarray]:
        x = xs[0]
        cshape = self._coeff_shape(x.shape)
        t = x.astype(compute_in(x))

        def coeff(name: str) -> np.ndarray | None:
            w = as_weights(getattr(self, name))
            return None if w.size == 0 else w.numpy().astype(t.dtype).reshape(cshape)

        s, sh, p = coeff("scale"), coeff("shift"), coeff("power")
        y = t * s if s is not None else t
        y = y + sh if sh is not None else y
        if p is not None:
            with np.errstate(all="ignore"):
                y = np.power(y, p)
        return [y.astype(x.dtype)]


# ---------------------------------------------------------------- shuffle


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


# ---------------------------------------------------------------- reduce / topk / softmax / concat


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
        require_type(self, x, _NUMERIC, "reduce input")
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
    MAX_K = 3840  # TensorRT 10's documented limit on K

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
        require_type(self, x, _NUMERIC, "topk input")
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


def default_axis(rank: int) -> int:
    """Default softmax/concat axis in TensorRT: rank - 3, or 0 below rank 3 (C of NCHW)."""
    return max(0, rank - 3)


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


# ---------------------------------------------------------------- slice / shape / gather


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


# ---------------------------------------------------------------- matrix multiply


class IMatrixMultiplyLayer(ILayer):
    _TYPE = LayerType.MATRIX_MULTIPLY
    _TYPE_NAME = "MatrixMultiply"

    def __init__(self, network: NetworkCore, a: ITensor, op0: MatrixOperation, b: ITensor, op1: MatrixOperation):
        super().__init__(network, [a, b])
        self.op0 = MatrixOperation(op0)
        self.op1 = MatrixOperation(op1)

    @staticmethod
    def _mat(shape: tuple[int, ...], op: MatrixOperation, left: bool) -> tuple[tuple[int, ...], int, int]:
        """(batch dims, rows, cols) of an operand after its operation; a vector is 1xK (left) or Kx1."""
        if op == MatrixOperation.VECTOR:
            return shape[:-1], (1 if left else shape[-1]), (shape[-1] if left else 1)
        r, c = shape[-2], shape[-1]
        if op == MatrixOperation.TRANSPOSE:
            r, c = c, r
        return shape[:-2], r, c

    def _infer(self, ins: list[Info | None]) -> list[Info]:
        a, b = ins
        t = same_type(self, [a, b])
        require_type(self, a, FLOAT_TYPES, "matrix multiply input")
        op0, op1 = MatrixOperation(self.op0), MatrixOperation(self.op1)
        for info, op, which in ((a, op0, "input 0"), (b, op1, "input 1")):
            need = 1 if op == MatrixOperation.VECTOR else 2
            if info.rank < need:
                raise self._fail(f"{which} of shape {info.shape} has rank < {need} for {op.name}")
        ba, ra, ca = self._mat(a.shape, op0, True)
        bb, rb, cb = self._mat(b.shape, op1, False)
        if len(ba) != len(bb):
            raise self._fail(
                f"batch ranks differ: {a.shape} ({op0.name}) vs {b.shape} ({op1.name}); TensorRT needs equal "
                "ranks (a VECTOR operand has one dimension less)"
            )
        if ca >= 0 and rb >= 0 and ca != rb:
            raise self._fail(f"inner dimensions differ: {a.shape} ({op0.name}) x {b.shape} ({op1.name})")
        batch = broadcast_shapes(self, [ba, bb]) if ba else ()
        shape = batch
        if op0 != MatrixOperation.VECTOR:
            shape += (ra,)
        if op1 != MatrixOperation.VECTOR:
            shape += (cb,)
        return [Info(t, tuple(shape))]

    def _run(self, xs: list[np.ndarray | None]) -> list[np.ndarray]:
        a, b = xs
        op0, op1 = MatrixOperation(self.op0), MatrixOperation(self.op1)
        ct = compute_in(a)
        A = a.astype(ct)
        B = b.astype(ct)
        A = A[..., None, :] if op0 == MatrixOperation.VECTOR else (np.swapaxes(A, -1, -2) if op0 == MatrixOperation.TRANSPOSE else A)
        B = B[..., :, None] if op1 == MatrixOperation.VECTOR else (np.swapaxes(B, -1, -2) if op1 == MatrixOperation.TRANSPOSE else B)
        run_broadcast_check(self, [np.empty(A.shape[:-2]), np.empty(B.shape[:-2])])
        if A.shape[-1] != B.shape[-2]:
            raise self._fail(f"run-time inner dimensions differ: {a.shape} x {b.shape}")
        y = np.matmul(A, B)
        if op1 == MatrixOperation.VECTOR:
            y = y[..., 0]
        if op0 == MatrixOperation.VECTOR:
            y = y[..., 0, :] if op1 != MatrixOperation.VECTOR else y[..., 0]
        return [np.asarray(y).astype(a.dtype)]
