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


def _more_layers() -> None:
    """add_* methods for the layers of _layers_more (kept apart to keep each module small)."""
    from . import _layers_more as M
    from ._types import CumulativeOperation, FillOperation, ScatterMode

    def add_resize(self, input):  # noqa: A002
        return self._add_layer(M.IResizeLayer(self, input))

    def add_padding_nd(self, input, pre_padding, post_padding):  # noqa: A002
        return self._add_layer(M.IPaddingLayer(self, input, pre_padding, post_padding))

    def add_normalization(self, input, scale, bias, axesMask):  # noqa: A002,N803
        return self._add_layer(M.INormalizationLayer(self, input, scale, bias, axesMask))

    def add_select(self, condition, then_input, else_input):
        return self._add_layer(M.ISelectLayer(self, [condition, then_input, else_input]))

    def add_fill(self, shape, op: FillOperation, output_type: DataType = DataType.FLOAT):
        return self._add_layer(M.IFillLayer(self, shape, op, output_type))

    def add_quantize(self, input, scale, output_type: DataType = DataType.INT8):  # noqa: A002
        return self._add_layer(M.IQuantizeLayer(self, input, scale, output_type))

    def add_dequantize(self, input, scale, output_type: DataType = DataType.FLOAT):  # noqa: A002
        return self._add_layer(M.IDequantizeLayer(self, input, scale, output_type))

    def add_einsum(self, inputs, equation: str):
        return self._add_layer(M.IEinsumLayer(self, inputs, equation))

    def add_one_hot(self, indices, values, depth, axis: int):
        return self._add_layer(M.IOneHotLayer(self, indices, values, depth, axis))

    def add_cumulative(self, input, axis, op: CumulativeOperation, exclusive: bool, reverse: bool):  # noqa: A002
        return self._add_layer(M.ICumulativeLayer(self, input, axis, op, exclusive, reverse))

    def add_scatter(self, data, indices, updates, mode: ScatterMode):
        return self._add_layer(M.IScatterLayer(self, data, indices, updates, mode))

    def add_assertion(self, condition, message: str):
        return self._add_layer(M.IAssertionLayer(self, condition, message))

    for fn in (add_resize, add_padding_nd, add_normalization, add_select, add_fill, add_quantize, add_dequantize,
               add_einsum, add_one_hot, add_cumulative, add_scatter, add_assertion):
        setattr(INetworkDefinition, fn.__name__, fn)


_more_layers()
