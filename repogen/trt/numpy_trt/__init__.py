"""A NumPy implementation of the subset of TensorRT's network-definition API that repogen's converters use.

Import it in place of `tensorrt` (`import repogen.trt.numpy_trt as trt`) to build a network on a machine
without a GPU, then run it with `execute(network, {"x": array})`. Semantics follow TensorRT's documentation;
docs/numpy-backend.md lists them per layer.
"""

from ._api import INetworkDefinition
from ._control import (  # also adds INetworkDefinition.add_loop / add_if_conditional
    IConditionLayer,
    IIfConditional,
    IIfConditionalInputLayer,
    IIfConditionalOutputLayer,
    IIteratorLayer,
    ILoop,
    ILoopOutputLayer,
    IRecurrenceLayer,
    ITripLimitLayer,
    LoopOutput,
    TripLimit,
)
from ._conv import IConvolutionLayer, IDeconvolutionLayer, IPoolingLayer
from ._exec import execute, execute_all, infer_shapes
from ._grid_sample import IGridSampleLayer  # also adds INetworkDefinition.add_grid_sample
from ._nonmax import BoundingBoxFormat, INMSLayer, INonZeroLayer  # also adds add_nms, add_non_zero
from ._layers import (
    IActivationLayer,
    ICastLayer,
    IConcatenationLayer,
    IConstantLayer,
    IElementWiseLayer,
    IGatherLayer,
    IIdentityLayer,
    IMatrixMultiplyLayer,
    IReduceLayer,
    IScaleLayer,
    IShapeLayer,
    IShuffleLayer,
    ISliceLayer,
    ISoftMaxLayer,
    ITopKLayer,
    IUnaryLayer,
)
from ._layers_more import (
    IAssertionLayer,
    ICumulativeLayer,
    IDequantizeLayer,
    IEinsumLayer,
    IFillLayer,
    INormalizationLayer,
    IOneHotLayer,
    IPaddingLayer,
    IQuantizeLayer,
    IResizeLayer,
    IScatterLayer,
    ISelectLayer,
)
from ._network import (
    Builder,
    IBuilderConfig,
    ILayer,
    ILogger,
    IOptimizationProfile,
    ITensor,
    Logger,
    NoEngineError,
    Runtime,
)
from ._types import (
    ActivationType,
    BuilderFlag,
    CumulativeOperation,
    DataType,
    Dims,
    Dims2,
    Dims3,
    Dims4,
    DimsHW,
    ElementWiseOperation,
    ExecutionError,
    FillOperation,
    GatherMode,
    InterpolationMode,
    LayerType,
    MatrixOperation,
    MemoryPoolType,
    NetworkDefinitionCreationFlag,
    NetworkError,
    PaddingMode,
    PoolingType,
    ReduceOperation,
    ResizeCoordinateTransformation,
    ResizeMode,
    ResizeRoundMode,
    ResizeSelector,
    SampleMode,
    ScaleMode,
    ScatterMode,
    SliceMode,
    TensorLocation,
    TopKOperation,
    UnaryOperation,
    Weights,
    bfloat16,
    bool,
    float16,
    float32,
    int8,
    int32,
    int64,
    nptype,
    uint8,
)

__version__ = "10.0.0+numpy"
IS_NUMPY_BACKEND = True
