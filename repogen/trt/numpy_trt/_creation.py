"""Layers that create tensors: constants and fills (LINSPACE / RANDOM_UNIFORM / RANDOM_NORMAL).

Semantics and the TensorRT pages they follow: docs/numpy-backend.md.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ._network import ILayer, Info, NetworkCore
from ._support import shape_input_values
from ._types import as_weights, DataType, Dims, FillOperation, LayerType, np_dtype, volume


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
