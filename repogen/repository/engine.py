"""What an engine (a TensorRT plan, its NumPy stand-in, or Paddle on the original files) exposes to Triton:
names, numpy dtypes, full shapes and profiles, as the config template and the cross-checks see it."""

from __future__ import annotations

from typing import Any

import numpy as np

from repogen.errors import ConfigError
from repogen.ir import Graph, Value
from repogen.repository.config import EngineDesc, TensorDesc


def _desc(value: Value) -> TensorDesc:
    if value.shape is None:
        raise ConfigError(f"tensor {value.name}: the model does not record its rank, which config.pbtxt needs")
    return TensorDesc(value.name, value.dtype, tuple(int(d) for d in value.shape))


def graph_engine(graph: Graph, profiles: list[dict]) -> EngineDesc:
    return EngineDesc([_desc(v) for v in graph.input_values()], [_desc(v) for v in graph.output_values()],
                      profiles)


def _dtype_name(dtype: Any, trt: Any = None) -> str:
    """Conversion I/O dtypes are TensorRT DataType enums (real or NumPy backend); numpy spelling out."""
    try:
        return np.dtype(str(dtype)).name
    except TypeError:
        pass
    if trt is not None and hasattr(trt, "nptype"):
        try:
            return np.dtype(trt.nptype(dtype)).name
        except (TypeError, KeyError, ValueError):
            pass
    names = {"DataType.FLOAT": "float32", "DataType.HALF": "float16", "DataType.INT32": "int32",
             "DataType.INT64": "int64", "DataType.INT8": "int8", "DataType.UINT8": "uint8",
             "DataType.BOOL": "bool", "DataType.BF16": "bfloat16"}
    if str(dtype) in names:
        return names[str(dtype)]
    raise ConfigError(f"engine dtype {dtype!r} has no numpy name")


def conversion_engine(conversion: Any, profiles: list[dict]) -> EngineDesc:
    trt = getattr(conversion, "trt", None)

    def descs(items):
        return [TensorDesc(str(n), _dtype_name(d, trt), tuple(int(x) for x in s)) for n, d, s in items]
    return EngineDesc(descs(conversion.inputs), descs(conversion.outputs), profiles)
