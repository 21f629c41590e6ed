"""Data types, enums, Dims and Weights with the names the `tensorrt` Python package gives them."""

from __future__ import annotations

import enum
from contextvars import ContextVar
from typing import Any, Iterable

import numpy as np

from repogen.errors import ConversionError


class NetworkError(ConversionError, ValueError):
    """A layer is invalid (raised when it is added or when its attributes make it invalid).

    TensorRT logs an error and returns None / builds nothing; the NumPy backend raises instead so the
    converter that produced the layer shows up in the traceback. It is a ConversionError (repogen's CLI
    prints it as one line) and a ValueError (for callers that do not import repogen.errors).
    """

    def __init__(self, layer: str, detail: str):
        super().__init__(layer, detail)
        self.layer = layer
        self.detail = detail


class ExecutionError(NetworkError):
    """The network cannot run on the given inputs (shape outside what a layer accepts, bad input)."""


class _Enum(enum.IntEnum):
    # tensorrt's pybind enums print as "DataType.FLOAT", not as the integer
    def __str__(self) -> str:
        return f"{type(self).__name__}.{self.name}"

    __repr__ = __str__


class DataType(_Enum):
    FLOAT = 0
    HALF = 1
    INT8 = 2
    INT32 = 3
    BOOL = 4
    UINT8 = 5
    FP8 = 6
    BF16 = 7
    INT64 = 8
    INT4 = 9

    @property
    def itemsize(self) -> int:
        return {0: 4, 1: 2, 2: 1, 3: 4, 4: 1, 5: 1, 6: 1, 7: 2, 8: 8}.get(int(self), 1)


float32 = DataType.FLOAT
float16 = DataType.HALF
int8 = DataType.INT8
int32 = DataType.INT32
int64 = DataType.INT64
bool = DataType.BOOL  # noqa: A001 - tensorrt exports this name
uint8 = DataType.UINT8
bfloat16 = DataType.BF16

_NP_OF = {
    DataType.FLOAT: np.dtype(np.float32),
    DataType.HALF: np.dtype(np.float16),
    DataType.INT8: np.dtype(np.int8),
    DataType.INT32: np.dtype(np.int32),
    DataType.INT64: np.dtype(np.int64),
    DataType.BOOL: np.dtype(np.bool_),
    DataType.UINT8: np.dtype(np.uint8),
}
_DT_OF = {v: k for k, v in _NP_OF.items()}

FLOAT_TYPES = frozenset({DataType.FLOAT, DataType.HALF, DataType.BF16})
INT_TYPES = frozenset({DataType.INT32, DataType.INT64, DataType.INT8, DataType.UINT8})


def nptype(dtype: DataType) -> type:
    """The numpy scalar type holding values of a TensorRT DataType (as tensorrt.nptype)."""
    try:
        return _NP_OF[DataType(dtype)].type
    except KeyError:
        raise TypeError(f"the NumPy backend has no storage for DataType.{DataType(dtype).name}") from None


# Storage of FLOAT tensors while a network runs: float32 as TensorRT, or float64 for execute(..., float64=True),
# which repogen.verify.noise uses to measure how far an fp32 run of the same network is from a float64 one.
FLOAT_STORAGE: ContextVar[np.dtype] = ContextVar("numpy_trt_float_storage", default=np.dtype(np.float32))


def np_dtype(dtype: DataType) -> np.dtype:
    if dtype == DataType.FLOAT:
        return FLOAT_STORAGE.get()
    return np.dtype(nptype(dtype))


def trt_dtype(npdt: Any) -> DataType:
    """DataType of a numpy dtype; float64/int64 weights are not narrowed (TensorRT rejects float64)."""
    d = np.dtype(npdt)
    if d in _DT_OF:
        return _DT_OF[d]
    raise TypeError(f"numpy dtype {d} has no TensorRT DataType")


def _enum(name: str, members: Iterable[str], aliases: dict[str, str] | None = None) -> Any:
    e = _Enum(name, [(m, i) for i, m in enumerate(members)])
    for alias, target in (aliases or {}).items():
        # IntEnum members are immutable; aliases live as plain class attributes
        setattr(e, alias, e[target])
    return e


ElementWiseOperation = _enum(
    "ElementWiseOperation",
    ["SUM", "PROD", "MAX", "MIN", "SUB", "DIV", "POW", "FLOOR_DIV", "AND", "OR", "XOR", "EQUAL", "GREATER", "LESS"],
)
UnaryOperation = _enum(
    "UnaryOperation",
    ["EXP", "LOG", "SQRT", "RECIP", "ABS", "NEG", "SIN", "COS", "TAN", "SINH", "COSH", "ASIN", "ACOS", "ATAN",
     "ASINH", "ACOSH", "ATANH", "CEIL", "FLOOR", "ERF", "NOT", "SIGN", "ROUND", "ISINF", "ISNAN"],
)
ActivationType = _enum(
    "ActivationType",
    ["RELU", "SIGMOID", "TANH", "LEAKY_RELU", "ELU", "SELU", "SOFTSIGN", "SOFTPLUS", "CLIP", "HARD_SIGMOID",
     "SCALED_TANH", "THRESHOLDED_RELU", "GELU_ERF", "GELU_TANH"],
)
ReduceOperation = _enum("ReduceOperation", ["SUM", "PROD", "MAX", "MIN", "AVG"])
TopKOperation = _enum("TopKOperation", ["MAX", "MIN"])
MatrixOperation = _enum("MatrixOperation", ["NONE", "TRANSPOSE", "VECTOR"])
ScaleMode = _enum("ScaleMode", ["UNIFORM", "CHANNEL", "ELEMENTWISE"])
PaddingMode = _enum("PaddingMode", ["EXPLICIT_ROUND_DOWN", "EXPLICIT_ROUND_UP", "SAME_UPPER", "SAME_LOWER"])
PoolingType = _enum("PoolingType", ["MAX", "AVERAGE", "MAX_AVERAGE_BLEND"])
InterpolationMode = _enum("InterpolationMode", ["NEAREST", "LINEAR", "CUBIC"])
ResizeMode = InterpolationMode
ResizeCoordinateTransformation = _enum("ResizeCoordinateTransformation", ["ALIGN_CORNERS", "ASYMMETRIC", "HALF_PIXEL"])
ResizeSelector = _enum("ResizeSelector", ["FORMULA", "UPPER"])
ResizeRoundMode = _enum("ResizeRoundMode", ["HALF_UP", "HALF_DOWN", "FLOOR", "CEIL"])
SampleMode = _enum("SampleMode", ["STRICT_BOUNDS", "WRAP", "CLAMP", "FILL", "REFLECT"], {"DEFAULT": "STRICT_BOUNDS"})
SliceMode = SampleMode
GatherMode = _enum("GatherMode", ["DEFAULT", "ELEMENT", "ND"])
ScatterMode = _enum("ScatterMode", ["ELEMENT", "ND"])
FillOperation = _enum("FillOperation", ["LINSPACE", "RANDOM_UNIFORM", "RANDOM_NORMAL"])
CumulativeOperation = _enum("CumulativeOperation", ["SUM"])
NetworkDefinitionCreationFlag = _enum(
    "NetworkDefinitionCreationFlag", ["EXPLICIT_BATCH", "STRONGLY_TYPED", "PREFER_AOT_PYTHON_PLUGINS", "PREFER_JIT_PYTHON_PLUGINS"]
)
TensorLocation = _enum("TensorLocation", ["DEVICE", "HOST"])
BuilderFlag = _enum(
    "BuilderFlag",
    ["FP16", "INT8", "DEBUG", "GPU_FALLBACK", "REFIT", "DISABLE_TIMING_CACHE", "TF32", "SPARSE_WEIGHTS",
     "SAFETY_SCOPE", "OBEY_PRECISION_CONSTRAINTS", "PREFER_PRECISION_CONSTRAINTS", "DIRECT_IO",
     "REJECT_EMPTY_ALGORITHMS", "VERSION_COMPATIBLE", "EXCLUDE_LEAN_RUNTIME", "FP8", "ERROR_ON_TIMING_CACHE_MISS",
     "BF16", "DISABLE_COMPILATION_CACHE", "STRIP_PLAN", "REFIT_IDENTICAL", "WEIGHT_STREAMING", "INT4"],
)
MemoryPoolType = _enum("MemoryPoolType", ["WORKSPACE", "DLA_MANAGED_SRAM", "DLA_LOCAL_DRAM", "DLA_GLOBAL_DRAM", "TACTIC_DRAM"])
LayerType = _enum(
    "LayerType",
    ["CONVOLUTION", "CAST", "ACTIVATION", "POOLING", "LRN", "SCALE", "SOFTMAX", "DECONVOLUTION", "CONCATENATION",
     "ELEMENTWISE", "PLUGIN", "UNARY", "PADDING", "SHUFFLE", "REDUCE", "TOPK", "GATHER", "MATRIX_MULTIPLY",
     "RAGGED_SOFTMAX", "CONSTANT", "IDENTITY", "PLUGIN_V2", "SLICE", "SHAPE", "PARAMETRIC_RELU", "RESIZE",
     "TRIP_LIMIT", "RECURRENCE", "ITERATOR", "LOOP_OUTPUT", "SELECT", "FILL", "QUANTIZE", "DEQUANTIZE",
     "CONDITION", "CONDITIONAL_INPUT", "CONDITIONAL_OUTPUT", "SCATTER", "EINSUM", "ASSERTION", "ONE_HOT",
     "NON_ZERO", "GRID_SAMPLE", "NMS", "REVERSE_SEQUENCE", "NORMALIZATION", "PLUGIN_V3", "SQUEEZE", "UNSQUEEZE",
     "CUMULATIVE", "INPUT"],
)


class Dims(tuple):
    """A shape: a tuple of ints, -1 for a dimension known only at run time."""

    def __new__(cls, shape: Iterable[int] | int = ()) -> "Dims":
        if isinstance(shape, (int, np.integer)):
            shape = (int(shape),)
        return super().__new__(cls, (int(d) for d in shape))

    def __repr__(self) -> str:
        return f"({', '.join(str(d) for d in self)})"

    @property
    def nbDims(self) -> int:  # noqa: N802 - C++ name, kept for converters that use it
        return len(self)


Dims2 = Dims3 = Dims4 = DimsHW = Dims


def c_order(a: Any) -> np.ndarray:
    """a as a C-contiguous array of its own shape (np.ascontiguousarray turns a 0-D array into shape (1,))."""
    return np.asarray(a, order="C")


def volume(shape: Iterable[int]) -> int:
    v = 1
    for d in shape:
        v *= int(d)
    return v


class Weights:
    """Host weights: wraps a contiguous numpy array (TensorRT keeps a pointer; here a copy is kept)."""

    def __init__(self, a: Any = None):
        if a is None:
            self._array: np.ndarray | None = None
            self.dtype = DataType.FLOAT
        elif isinstance(a, DataType):
            self._array = None
            self.dtype = a
        else:
            arr = np.ascontiguousarray(a)
            if arr.dtype == np.float64:
                # tensorrt.Weights refuses float64; be as strict so converters cast on purpose
                raise TypeError("Weights: float64 arrays are not a TensorRT type; cast to float32 or float16")
            self.dtype = trt_dtype(arr.dtype)
            self._array = arr.copy()

    @property
    def size(self) -> int:
        return 0 if self._array is None else int(self._array.size)

    @property
    def nbytes(self) -> int:
        return 0 if self._array is None else int(self._array.nbytes)

    def numpy(self) -> np.ndarray:
        return np.empty((0,), np_dtype(self.dtype)) if self._array is None else self._array

    def __len__(self) -> int:
        return self.size

    def __repr__(self) -> str:
        return f"Weights(dtype={self.dtype.name}, size={self.size})"


def as_weights(w: Any) -> Weights:
    if w is None:
        return Weights()
    if isinstance(w, Weights):
        return w
    return Weights(w)
