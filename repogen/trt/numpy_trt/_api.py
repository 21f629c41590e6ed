"""INetworkDefinition: the add_* methods, with tensorrt's Python signatures; the layers live in modules by
theme (_elementwise, _shape, _gather, _reduce, _normalization, _matmul, _resize, _quantize, _creation, _conv,
_grid_sample, _nonmax, _control)."""

from __future__ import annotations

from typing import Any, Sequence

from ._control import IIfConditional, ILoop, add_if_conditional, add_loop
from ._conv import IConvolutionLayer, IDeconvolutionLayer, IPoolingLayer
from ._creation import IConstantLayer, IFillLayer
from ._elementwise import (
    IActivationLayer,
    ICastLayer,
    IElementWiseLayer,
    IIdentityLayer,
    IScaleLayer,
    ISelectLayer,
    IUnaryLayer,
)
from ._gather import IGatherLayer, IOneHotLayer, IScatterLayer
from ._grid_sample import IGridSampleLayer
from ._matmul import IEinsumLayer, IMatrixMultiplyLayer
from ._network import Info, ITensor, NetworkCore
from ._nonmax import INMSLayer, INonZeroLayer
from ._normalization import INormalizationLayer, ISoftMaxLayer
from ._quantize import IDequantizeLayer, IQuantizeLayer
from ._reduce import ICumulativeLayer, IReduceLayer, ITopKLayer
from ._resize import IResizeLayer
from ._shape import IAssertionLayer, IConcatenationLayer, IPaddingLayer, IShapeLayer, IShuffleLayer, ISliceLayer
from ._types import (
    ActivationType,
    CumulativeOperation,
    DataType,
    Dims,
    ElementWiseOperation,
    FillOperation,
    GatherMode,
    MatrixOperation,
    NetworkError,
    PoolingType,
    ReduceOperation,
    ScaleMode,
    ScatterMode,
    TopKOperation,
    UnaryOperation,
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

    def add_constant(self, shape: Sequence[int], weights: Any) -> IConstantLayer:
        return self._add_layer(IConstantLayer(self, shape, weights))

    def add_identity(self, input: ITensor) -> IIdentityLayer:  # noqa: A002
        return self._add_layer(IIdentityLayer(self, [input]))

    def add_cast(self, input: ITensor, to_type: DataType) -> ICastLayer:  # noqa: A002
        return self._add_layer(ICastLayer(self, input, to_type))

    def add_elementwise(self, input1: ITensor, input2: ITensor, op: ElementWiseOperation) -> IElementWiseLayer:
        return self._add_layer(IElementWiseLayer(self, input1, input2, op))

    def add_unary(self, input: ITensor, op: UnaryOperation) -> IUnaryLayer:  # noqa: A002
        return self._add_layer(IUnaryLayer(self, input, op))

    def add_activation(self, input: ITensor, type: ActivationType) -> IActivationLayer:  # noqa: A002
        return self._add_layer(IActivationLayer(self, input, type))

    def add_scale(self, input: ITensor, mode: ScaleMode, shift: Any = None, scale: Any = None,  # noqa: A002
                  power: Any = None) -> IScaleLayer:
        # explicit-batch networks: the channel axis of add_scale is 1 (NCHW)
        return self._add_layer(IScaleLayer(self, input, mode, shift, scale, power, 1))

    def add_scale_nd(self, input: ITensor, mode: ScaleMode, shift: Any = None, scale: Any = None,  # noqa: A002
                     power: Any = None, channel_axis: int = 1) -> IScaleLayer:
        return self._add_layer(IScaleLayer(self, input, mode, shift, scale, power, channel_axis))

    def add_shuffle(self, input: ITensor) -> IShuffleLayer:  # noqa: A002
        return self._add_layer(IShuffleLayer(self, input))

    def add_reduce(self, input: ITensor, op: ReduceOperation, axes: int, keep_dims: bool) -> IReduceLayer:  # noqa: A002
        return self._add_layer(IReduceLayer(self, input, op, axes, keep_dims))

    def add_topk(self, input: ITensor, op: TopKOperation, k: int, axes: int,  # noqa: A002
                 indices_type: DataType = DataType.INT32) -> ITopKLayer:
        return self._add_layer(ITopKLayer(self, input, op, k, axes, indices_type))

    def add_softmax(self, input: ITensor) -> ISoftMaxLayer:  # noqa: A002
        return self._add_layer(ISoftMaxLayer(self, input))

    def add_concatenation(self, inputs: Sequence[ITensor]) -> IConcatenationLayer:
        return self._add_layer(IConcatenationLayer(self, list(inputs)))

    def add_slice(self, input: ITensor, start: Sequence[int], shape: Sequence[int],  # noqa: A002
                  stride: Sequence[int]) -> ISliceLayer:
        return self._add_layer(ISliceLayer(self, input, start, shape, stride))

    def add_shape(self, input: ITensor) -> IShapeLayer:  # noqa: A002
        return self._add_layer(IShapeLayer(self, [input]))

    def add_gather(self, input: ITensor, indices: ITensor, axis: int) -> IGatherLayer:  # noqa: A002
        return self._add_layer(IGatherLayer(self, input, indices, axis, GatherMode.DEFAULT))

    def add_gather_v2(self, input: ITensor, indices: ITensor, mode: GatherMode) -> IGatherLayer:  # noqa: A002
        return self._add_layer(IGatherLayer(self, input, indices, 0, mode))

    def add_matrix_multiply(self, input0: ITensor, op0: MatrixOperation, input1: ITensor,
                            op1: MatrixOperation) -> IMatrixMultiplyLayer:
        return self._add_layer(IMatrixMultiplyLayer(self, input0, op0, input1, op1))

    def add_convolution_nd(self, input: ITensor, num_output_maps: int, kernel_shape: Sequence[int],  # noqa: A002
                           kernel: Any = None, bias: Any = None) -> IConvolutionLayer:
        return self._add_layer(IConvolutionLayer(self, input, num_output_maps, kernel_shape, kernel, bias))

    def add_deconvolution_nd(self, input: ITensor, num_output_maps: int, kernel_shape: Sequence[int],  # noqa: A002
                             kernel: Any = None, bias: Any = None) -> IDeconvolutionLayer:
        return self._add_layer(IDeconvolutionLayer(self, input, num_output_maps, kernel_shape, kernel, bias))

    def add_pooling_nd(self, input: ITensor, type: PoolingType, window_size: Sequence[int]) -> IPoolingLayer:  # noqa: A002
        return self._add_layer(IPoolingLayer(self, input, type, window_size))

    def add_resize(self, input: ITensor) -> IResizeLayer:  # noqa: A002
        return self._add_layer(IResizeLayer(self, input))

    def add_padding_nd(self, input: ITensor, pre_padding: Sequence[int],  # noqa: A002
                       post_padding: Sequence[int]) -> IPaddingLayer:
        return self._add_layer(IPaddingLayer(self, input, pre_padding, post_padding))

    def add_normalization(self, input: ITensor, scale: ITensor, bias: ITensor,  # noqa: A002
                          axesMask: int) -> INormalizationLayer:  # noqa: N803
        return self._add_layer(INormalizationLayer(self, input, scale, bias, axesMask))

    def add_select(self, condition: ITensor, then_input: ITensor, else_input: ITensor) -> ISelectLayer:
        return self._add_layer(ISelectLayer(self, [condition, then_input, else_input]))

    def add_fill(self, shape: Sequence[int], op: FillOperation, output_type: DataType = DataType.FLOAT) -> IFillLayer:
        return self._add_layer(IFillLayer(self, shape, op, output_type))

    def add_quantize(self, input: ITensor, scale: ITensor,  # noqa: A002
                     output_type: DataType = DataType.INT8) -> IQuantizeLayer:
        return self._add_layer(IQuantizeLayer(self, input, scale, output_type))

    def add_dequantize(self, input: ITensor, scale: ITensor,  # noqa: A002
                       output_type: DataType = DataType.FLOAT) -> IDequantizeLayer:
        return self._add_layer(IDequantizeLayer(self, input, scale, output_type))

    def add_einsum(self, inputs: Sequence[ITensor], equation: str) -> IEinsumLayer:
        return self._add_layer(IEinsumLayer(self, inputs, equation))

    def add_one_hot(self, indices: ITensor, values: ITensor, depth: ITensor, axis: int) -> IOneHotLayer:
        return self._add_layer(IOneHotLayer(self, indices, values, depth, axis))

    def add_cumulative(self, input: ITensor, axis: ITensor, op: CumulativeOperation, exclusive: bool,  # noqa: A002
                       reverse: bool) -> ICumulativeLayer:
        return self._add_layer(ICumulativeLayer(self, input, axis, op, exclusive, reverse))

    def add_scatter(self, data: ITensor, indices: ITensor, updates: ITensor, mode: ScatterMode) -> IScatterLayer:
        return self._add_layer(IScatterLayer(self, data, indices, updates, mode))

    def add_assertion(self, condition: ITensor, message: str) -> IAssertionLayer:
        return self._add_layer(IAssertionLayer(self, condition, message))

    def add_grid_sample(self, input: ITensor, grid: ITensor) -> IGridSampleLayer:  # noqa: A002
        return self._add_layer(IGridSampleLayer(self, input, grid))

    def add_nms(self, boxes: ITensor, scores: ITensor, max_output_boxes_per_class: ITensor) -> INMSLayer:
        return self._add_layer(INMSLayer(self, boxes, scores, max_output_boxes_per_class))

    def add_non_zero(self, input: ITensor, indices_type: DataType = DataType.INT32) -> INonZeroLayer:  # noqa: A002
        return self._add_layer(INonZeroLayer(self, input, indices_type))

    def add_loop(self) -> ILoop:
        return add_loop(self)

    def add_if_conditional(self) -> IIfConditional:
        return add_if_conditional(self)

    def _add_layer(self, layer: Any) -> Any:
        # a layer whose optional inputs (kernel tensor, shape tensor...) are set later must still
        # infer now; NetworkCore._add_layer raises NetworkError on failure and drops the layer
        return super()._add_layer(layer)
