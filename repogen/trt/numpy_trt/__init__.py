"""A NumPy implementation of the subset of TensorRT's network-definition API that repogen's converters use.

Import it in place of `tensorrt` (`import repogen.trt.numpy_trt as trt`) to build a network on a machine
without a GPU, then run it with `execute(network, {"x": array})`. Semantics follow TensorRT's documentation;
docs/numpy-backend.md lists them per layer.
"""

from ._api import INetworkDefinition
from ._builder import Builder, IBuilderConfig, ILogger, IOptimizationProfile, Logger, NoEngineError, Runtime
from ._control import (
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
from ._exec import execute, execute_all, infer_shapes
from ._gather import IGatherLayer, IOneHotLayer, IScatterLayer
from ._grid_sample import IGridSampleLayer
from ._matmul import IEinsumLayer, IMatrixMultiplyLayer
from ._network import ILayer, ITensor
from ._nonmax import BoundingBoxFormat, INMSLayer, INonZeroLayer
from ._normalization import INormalizationLayer, ISoftMaxLayer
from ._quantize import IDequantizeLayer, IQuantizeLayer
from ._reduce import ICumulativeLayer, IReduceLayer, ITopKLayer
from ._resize import IResizeLayer
from ._shape import IAssertionLayer, IConcatenationLayer, IPaddingLayer, IShapeLayer, IShuffleLayer, ISliceLayer
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
