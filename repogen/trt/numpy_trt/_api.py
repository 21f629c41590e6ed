"""INetworkDefinition: the add_* methods, with tensorrt's Python signatures."""

from __future__ import annotations

from typing import Any, Sequence

from . import _layers as L
from ._conv import IConvolutionLayer, IDeconvolutionLayer, IPoolingLayer
from ._network import Info, ITensor, NetworkCore
from ._types import (
    ActivationType,
    DataType,
    Dims,
    ElementWiseOperation,
    GatherMode,
    MatrixOperation,
    NetworkError,
    PoolingType,
    ReduceOperation,
    ScaleMode,
    TopKOperation,
    UnaryOperation,
    Weights,
    np_dtype,
)


class INetworkDefinition(NetworkCore):
    def add_input(self, name: str, dtype: DataType, shape: Sequence[int]) -> ITensor:
        if any(t.name == name for t in self._inputs):
            raise NetworkError(f"add_input {name!r}", "an input with this name already exists")
        dtype = DataType(dtype)
        np_dtype(dtype)
        dims = tuple(Dims(shape))
        if any(d < -1 for d in dims):
            raise NetworkError(f"add_input {name!r}", f"shape {dims} has a dimension below -1")
        t = ITensor(self, name, None)
        t.is_network_input = True
        t._info = Info(dtype, dims)
        self._inputs.append(t)
        return t

    def add_constant(self, shape: Sequence[int], weights: Any) -> L.IConstantLayer:
        return self._add_layer(L.IConstantLayer(self, shape, weights))

    def add_identity(self, input: ITensor) -> L.IIdentityLayer:  # noqa: A002
        return self._add_layer(L.IIdentityLayer(self, [input]))

    def add_cast(self, input: ITensor, to_type: DataType) -> L.ICastLayer:  # noqa: A002
        return self._add_layer(L.ICastLayer(self, input, to_type))

    def add_elementwise(self, input1: ITensor, input2: ITensor, op: ElementWiseOperation) -> L.IElementWiseLayer:
        return self._add_layer(L.IElementWiseLayer(self, input1, input2, op))

    def add_unary(self, input: ITensor, op: UnaryOperation) -> L.IUnaryLayer:  # noqa: A002
        return self._add_layer(L.IUnaryLayer(self, input, op))

    def add_activation(self, input: ITensor, type: ActivationType) -> L.IActivationLayer:  # noqa: A002
        return self._add_layer(L.IActivationLayer(self, input, type))

    def add_scale(self, input: ITensor, mode: ScaleMode, shift: Any = None, scale: Any = None,  # noqa: A002
                  power: Any = None) -> L.IScaleLayer:
        # explicit-batch networks: the channel axis of add_scale is 1 (NCHW)
        return self._add_layer(L.IScaleLayer(self, input, mode, shift, scale, power, 1))

    def add_scale_nd(self, input: ITensor, mode: ScaleMode, shift: Any = None, scale: Any = None,  # noqa: A002
                     power: Any = None, channel_axis: int = 1) -> L.IScaleLayer:
        return self._add_layer(L.IScaleLayer(self, input, mode, shift, scale, power, channel_axis))

    def add_shuffle(self, input: ITensor) -> L.IShuffleLayer:  # noqa: A002
        return self._add_layer(L.IShuffleLayer(self, input))

    def add_reduce(self, input: ITensor, op: ReduceOperation, axes: int, keep_dims: bool) -> L.IReduceLayer:  # noqa: A002
        return self._add_layer(L.IReduceLayer(self, input, op, axes, keep_dims))

    def add_topk(self, input: ITensor, op: TopKOperation, k: int, axes: int,  # noqa: A002
                 indices_type: DataType = DataType.INT32) -> L.ITopKLayer:
        return self._add_layer(L.ITopKLayer(self, input, op, k, axes, indices_type))

    def add_softmax(self, input: ITensor) -> L.ISoftMaxLayer:  # noqa: A002
        return self._add_layer(L.ISoftMaxLayer(self, input))

    def add_concatenation(self, inputs: Sequence[ITensor]) -> L.IConcatenationLayer:
        return self._add_layer(L.IConcatenationLayer(self, list(inputs)))

    def add_slice(self, input: ITensor, start: Sequence[int], shape: Sequence[int],  # noqa: A002
                  stride: Sequence[int]) -> L.ISliceLayer:
        return self._add_layer(L.ISliceLayer(self, input, start, shape, stride))

    def add_shape(self, input: ITensor) -> L.IShapeLayer:  # noqa: A002
        return self._add_layer(L.IShapeLayer(self, [input]))

    def add_gather(self, input: ITensor, indices: ITensor, axis: int) -> L.IGatherLayer:  # noqa: A002
        return self._add_layer(L.IGatherLayer(self, input, indices, axis, GatherMode.DEFAULT))

    def add_gather_v2(self, input: ITensor, indices: ITensor, mode: GatherMode) -> L.IGatherLayer:  # noqa: A002
        return self._add_layer(L.IGatherLayer(self, input, indices, 0, mode))

    def add_matrix_multiply(self, input0: ITensor, op0: MatrixOperation, input1: ITensor,
                            op1: MatrixOperation) -> L.IMatrixMultiplyLayer:
        return self._add_layer(L.IMatrixMultiplyLayer(self, input0, op0, input1, op1))

    def add_convolution_nd(self, input: ITensor, num_output_maps: int, kernel_shape: Sequence[int],  # noqa: A002
                           kernel: Any = None, bias: Any = None) -> IConvolutionLayer:
        return self._add_layer(IConvolutionLayer(self, input, num_output_maps, kernel_shape, kernel, bias))

    def add_deconvolution_nd(self, input: ITensor, num_output_maps: int, kernel_shape: Sequence[int],  # noqa: A002
                             kernel: Any = None, bias: Any = None) -> IDeconvolutionLayer:
        return self._add_layer(IDeconvolutionLayer(self, input, num_output_maps, kernel_shape, kernel, bias))

    def add_pooling_nd(self, input: ITensor, type: PoolingType, window_size: Sequence[int]) -> IPoolingLayer:  # noqa: A002
        return self._add_layer(IPoolingLayer(self, input, type, window_size))

    def _add_layer(self, layer: Any) -> Any:
        # a layer whose optional inputs (kernel tensor, shape tensor...) are set later must still
        # infer now; NetworkCore._add_layer raises NetworkError on failure and drops the layer
        return super()._add_layer(layer)


__all__ = ["INetworkDefinition", "Weights"]
