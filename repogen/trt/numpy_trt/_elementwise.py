"""Per-element layers: elementwise (binary), unary, activation, scale, select, cast and identity.

Semantics and the TensorRT pages they follow: docs/numpy-backend.md.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._network import ILayer, Info, ITensor, NetworkCore
from ._support import (
    NUMERIC_TYPES,
    SHAPE_TYPES,
    broadcast_shapes,
    compute_in,
    require_type,
    run_broadcast_check,
    same_type,
)
from ._types import (
    ActivationType,
    as_weights,
    DataType,
    ElementWiseOperation,
    FLOAT_TYPES,
    LayerType,
    np_dtype,
    ScaleMode,
    UnaryOperation,
    volume,
)


_ERF = np.vectorize(math.erf, otypes=[np.float64])


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


_E = ElementWiseOperation


_COMPARE = {_E.EQUAL, _E.GREATER, _E.LESS}


_LOGICAL = {_E.AND, _E.OR, _E.XOR}


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
            require_type(self, a, frozenset(NUMERIC_TYPES - {DataType.INT8}), f"{op.name} input")
        else:
            require_type(self, a, NUMERIC_TYPES, f"{op.name} input")
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
            require_type(self, x, NUMERIC_TYPES, f"{op.name} input")
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
