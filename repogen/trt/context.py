"""What a converter receives: the network under construction, graph value -> ITensor map, constants and
the precision policy for the op being converted."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from repogen.errors import ConversionError
from repogen.ir import Graph, Op, Value
from repogen.trt.converter_table import CONVERTERS, LOADED, STRUCTURAL
from repogen.trt.precision import detection_fp32_ops, keeps_fp32, shape_fp32_ops

#: Paddle (numpy) dtype name -> tensorrt.DataType member name: the one dtype table of the conversion
_TRT_NAME = {
    "float32": "FLOAT", "float64": "FLOAT", "float16": "HALF", "bfloat16": "BF16",
    "int32": "INT32", "int64": "INT64", "int16": "INT32", "int8": "INT8", "uint8": "UINT8", "bool": "BOOL",
}
#: tensorrt.DataType member name -> numpy dtype used for constants of that type
_NP_OF = {"FLOAT": np.float32, "HALF": np.float16, "INT32": np.int32, "INT64": np.int64, "INT8": np.int8,
          "UINT8": np.uint8, "BOOL": np.bool_}
FLOAT_NAMES = ("FLOAT", "HALF", "BF16")


class ConversionContext:
    def __init__(self, graph: Graph, trt: Any, network: Any, precision: str = "fp32"):
        if precision not in ("fp32", "fp16"):
            raise ValueError(f"precision must be fp32 or fp16, not {precision!r}")
        self.graph = graph
        self.trt = trt
        self.network = network
        self.precision = precision
        self.tensors: dict[str, Any] = {}
        self.op: Op | None = None
        self.position: int | None = None
        #: True while converting an op that the FP16 policy keeps in FP32 (see precision.py)
        self.keep_fp32 = False
        self._keep_alive: list[np.ndarray] = []  # TensorRT reads weights at build time, not at add time
        self._const_cache: dict[tuple, Any] = {}
        #: graph value name -> the INT8 tensor whose float cast the value is (converters/quant.py)
        self.int8_of: dict[str, Any] = {}
        self._input_names: set[str] = set()
        self._output_names: set[str] = set()
        self._values = {}
        for block in graph.blocks:
            for name, v in block.values.items():
                self._values.setdefault(name, v)
        self._layer_count = 0
        #: graph value name -> its FLOAT tensor where one exists under FP16 (an FP32-kept op's result, a float
        #: network input): FP32-kept consumers read it instead of the HALF copy, so chains of FP32 ops (box
        #: decoding -> scores -> NMS) never round through HALF
        self.fp32_of: dict[str, tuple[Any, Any]] = {}  # name -> (HALF copy, FLOAT original); see float_of
        #: ids of the ops the FP16 policy keeps in FP32 for detection (precision.detection_fp32_ops)
        #: and those computing with dimensions (precision.shape_fp32_ops)
        self._fp32_kept = (detection_fp32_ops(graph) | shape_fp32_ops(graph)) if precision == "fp16" else set()

    # --- dtypes -------------------------------------------------------------------------------------
    @property
    def float_type(self) -> Any:
        """The float type computations of the current op run in."""
        half = self.precision == "fp16" and not self.keep_fp32
        return self.trt.DataType.HALF if half else self.trt.DataType.FLOAT

    def trt_type(self, np_dtype: str | np.dtype) -> Any:
        """TensorRT type holding values of a Paddle dtype; float32/float64 follow the precision policy."""
        name = np.dtype(np_dtype).name if not isinstance(np_dtype, str) else np_dtype
        t = self.io_type(name)
        return self.float_type if t.name in FLOAT_NAMES else t

    def io_type(self, np_dtype: str) -> Any:
        """The type a network input/output keeps: the model's own, whatever the precision (float64 has no
        TensorRT twin and travels as FLOAT)."""
        trt_name = _TRT_NAME.get(np_dtype)
        if trt_name is None:
            raise self.fail(f"dtype {np_dtype} has no TensorRT type")
        return getattr(self.trt.DataType, trt_name)

    def np_type(self, trt_type: Any) -> type:
        return _NP_OF[trt_type.name]

    def is_float(self, t: Any) -> bool:
        return t.dtype.name in FLOAT_NAMES

    # --- values -------------------------------------------------------------------------------------
    def value(self, name: str) -> Value:
        try:
            return self._values[name]
        except KeyError:
            raise self.fail(f"value {name!r} is not in the graph") from None

    def const_value(self, name: str | None) -> np.ndarray | None:
        """The value of a graph value known at conversion time (parameter or folded constant)."""
        return self.graph.const(name)

    def get(self, name: str) -> Any:
        """The network tensor for a graph value, creating constants on first use; FP32-kept ops see FP32."""
        t = self.tensors.get(name)
        if t is None:
            arr = self.const_value(name)
            if arr is None:
                raise self.fail(f"input value {name!r} is produced by no converted op")
            return self.const(arr)
        if self.keep_fp32 and t.dtype == self.trt.DataType.HALF:
            full = self.float_of(name)
            return full if full is not None else self.cast(t, self.trt.DataType.FLOAT)
        return t

    def float_of(self, name: str) -> Any:
        """The FLOAT tensor the value's HALF copy was cast from, while that copy is still the value's tensor
        (control flow rebinds values directly), else None."""
        pair = self.fp32_of.get(name)
        if pair is not None and self.tensors.get(name) is pair[0]:
            return pair[1]
        return None

    def input(self, op: Op, slot: str, *aliases: str, required: bool = True) -> Any:
        for s in (slot,) + aliases:
            name = op.input(s)
            if name is not None:
                return self.get(name)
        if required:
            raise self.fail(f"missing input {slot!r}")
        return None

    def inputs(self, op: Op, slot: str) -> list[Any]:
        return [self.get(n) for n in op.inputs.get(slot) or []]

    def set(self, name: str, t: Any) -> None:
        """Bind a graph value; under FP16 every float result is stored as HALF (FP32-kept ops cast back)."""
        if self.precision == "fp16" and t.dtype == self.trt.DataType.FLOAT:
            full = t
            t = self.cast(t, self.trt.DataType.HALF)
            self.fp32_of[name] = (t, full)
        self.tensors[name] = t

    def output(self, op: Op, t: Any, slot: str = "out") -> None:
        names = op.outputs.get(slot) or []
        if not names:  # legacy spellings read by a reader that kept a single, differently named slot
            names = next((v for v in op.outputs.values() if v), [])
        if not names:
            raise self.fail(f"no output slot {slot!r}")
        self.set(names[0], t)

    def attr(self, op: Op, name: str, *aliases: str, default: Any = None) -> Any:
        for n in (name,) + aliases:
            if n in op.attrs and op.attrs[n] is not None:
                return op.attrs[n]
        return default

    # --- layers ---------------------------------------------------------------------------------------
    def named(self, layer: Any) -> Any:
        """Name a layer after the op it comes from so TensorRT's messages point at the graph."""
        self._layer_count += 1
        if self.op is not None:
            out = next(self.op.output_names(), "")
            layer.name = f"{self.op.type}#{self.position}:{out}:{self._layer_count}"
        return layer

    def const(self, array: Any, dtype: Any = None) -> Any:
        """A constant tensor; floats take the current float type unless ``dtype`` says otherwise."""
        arr = np.asarray(array)
        if dtype is None:
            if arr.dtype.kind == "f":
                dtype = self.float_type
            elif arr.dtype == np.bool_:
                dtype = self.trt.DataType.BOOL
            else:
                dtype = self.trt_type(arr.dtype.name)
        arr = np.array(arr, dtype=self.np_type(dtype), order="C")  # ascontiguousarray would make 0-D 1-D
        key = (arr.dtype.str, arr.shape, arr.tobytes()) if arr.size <= 64 else None
        if key is not None and key in self._const_cache:
            return self._const_cache[key]
        self.keep_alive(arr)
        t = self.named(self.network.add_constant(arr.shape, arr)).get_output(0)
        if key is not None:
            self._const_cache[key] = t
        return t

    def keep_alive(self, array: np.ndarray) -> np.ndarray:
        """Hold a weights array until the engine is built (TensorRT reads weights then, not when a layer is
        added); returns it."""
        self._keep_alive.append(array)
        return array

    def cast(self, t: Any, dtype: Any) -> Any:
        if t.dtype == dtype:
            return t
        return self.named(self.network.add_cast(t, dtype)).get_output(0)

    # --- network inputs and outputs ----------------------------------------------------------------------
    def add_input(self, name: str, dtype: Any, shape: Sequence[int], engine_name: str | None = None) -> Any:
        """A network input bound to the graph value ``name`` (under FP16 a float input is cast to HALF);
        ``engine_name``: the network's name for it when the model's inputs are renamed (repogen/naming.py)."""
        t = self.network.add_input(engine_name or name, dtype, tuple(int(d) for d in shape))
        self._input_names.add(engine_name or name)
        self.set(name, t)
        return t

    def mark_output(self, t: Any, name: str) -> Any:
        """Mark t as a network output called ``name``; returns the marked tensor.

        A tensor that cannot take the name and the output role itself (a network input, a tensor already
        marked, a cached constant other layers share) is first copied through an identity layer. Engine
        tensor names are unique, so a name already taken by an input or output becomes ``<name>_out``
        (``_out2``...): a legacy program whose loop updates its feed variable in place fetches that variable.
        """
        taken = self._input_names | self._output_names
        if t.name in taken or any(t is c for c in self._const_cache.values()):
            t = self.named(self.network.add_identity(t)).get_output(0)
        if name in taken:
            k, candidate = 1, f"{name}_out"
            while candidate in taken:
                k += 1
                candidate = f"{name}_out{k}"
            name = candidate
        t.name = name
        self.network.mark_output(t)
        self._output_names.add(name)
        return t

    # --- ops ----------------------------------------------------------------------------------------------
    def convert_ops(self, ops: Sequence[Op], position: int | None = None) -> None:
        """Convert ops in order through the converter table: the main block, or a control-flow sub-block
        (converters/control.py passes the owning op's ``position``, which then names errors)."""
        if not LOADED.done:  # conversion goes through repogen.trt.convert / fold, which import the registry
            raise RuntimeError("converters used before repogen.trt.registry loaded them")
        saved = self.op, self.position, self.keep_fp32
        for pos, op in enumerate(ops):
            if op.type in STRUCTURAL:
                continue
            where = pos if position is None else position
            self.op, self.position = op, where
            self.keep_fp32 = self.precision == "fp16" and (keeps_fp32(op.type) or id(op) in self._fp32_kept)
            if op.type not in CONVERTERS:
                raise ConversionError(op.type, "no converter (inside a control-flow block)", where)
            try:
                CONVERTERS[op.type](self, op)
            except ConversionError:
                raise
            except Exception as exc:  # a converter bug or a layer the backend rejected: name the op
                raise ConversionError(op.type, f"{type(exc).__name__}: {exc}", where) from exc
        if position is not None:
            self.op, self.position, self.keep_fp32 = saved

    def fail(self, detail: str) -> ConversionError:
        op_type = self.op.type if self.op is not None else "network"
        return ConversionError(op_type, detail, self.position)
