"""Network definition objects: ITensor, ILayer and NetworkCore (INetworkDefinition's base, _api.py); running
one layer (run_layer) and finding the shape tensors.

Shapes and data types are inferred when a layer is added (an invalid layer raises NetworkError there) and
re-inferred lazily after any public attribute of a layer changes, so `tensor.shape` always reflects the
current attributes as in TensorRT.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np

from repogen.errors import RepogenError

from ._types import (
    FLOAT_STORAGE,
    DataType,
    Dims,
    ExecutionError,
    LayerType,
    NetworkDefinitionCreationFlag,
    NetworkError,
    np_dtype,
)


@dataclass
class Info:
    """What is known of a tensor without running the network.

    shape: -1 marks a dimension known only at run time. pvalue: for int 0-D/1-D tensors (shape tensors),
    the element values where known (None where not). const: the full value when it is a build-time constant.
    """

    dtype: DataType
    shape: tuple[int, ...]
    pvalue: list[int | None] | None = None
    const: np.ndarray | None = None

    @property
    def rank(self) -> int:
        return len(self.shape)

    def known_values(self) -> list[int] | None:
        if self.pvalue is None or any(v is None for v in self.pvalue):
            return None
        return [int(v) for v in self.pvalue]


class ITensor:
    def __init__(self, network: "NetworkCore", name: str, producer: "ILayer | None", index: int = 0):
        self._network = network
        self._name = name
        self._producer = producer
        self._index = index
        self._info: Info | None = None
        self.is_network_input = False
        self.location = 0
        self.allowed_formats = 0
        self.dynamic_range = None
        self._dim_names: dict[int, str] = {}

    # ---- what TensorRT exposes
    @property
    def name(self) -> str:
        return self._name

    @name.setter
    def name(self, value: str) -> None:
        value = str(value)
        if value != self._name and self._network._tensor_named(value) is not None:
            # TensorRT: "Failed attempt to rename a tensor ... as the new name is already in use" (the
            # rename is refused and the tensor keeps its old name; here it raises so the caller sees it)
            raise NetworkError("ITensor.name", f"cannot rename {self._name!r} to {value!r}: the name is already in use")
        self._name = value

    @property
    def shape(self) -> Dims:
        return Dims(self._get_info().shape)

    @shape.setter
    def shape(self, value: Sequence[int]) -> None:
        if not self.is_network_input:
            raise NetworkError(self._name, "only a network input's shape can be set")
        self._info = Info(self._info.dtype, tuple(int(d) for d in value))
        self._network._touch(None)

    @property
    def dtype(self) -> DataType:
        return self._get_info().dtype

    @dtype.setter
    def dtype(self, value: DataType) -> None:
        if self.is_network_input:
            self._info = Info(DataType(value), self._info.shape)
            self._network._touch(None)
        elif DataType(value) != self.dtype:
            # strongly typed networks derive every type; TensorRT rejects setting one (use add_cast)
            raise NetworkError(self._name, "cannot set the type of a layer output in a strongly typed network; add_cast")

    @property
    def is_network_output(self) -> bool:
        return any(t is self for t in self._network._outputs)

    @property
    def is_shape_tensor(self) -> bool:
        return self._network._is_shape_tensor(self)

    @property
    def is_execution_tensor(self) -> bool:
        return not self.is_shape_tensor or self.is_network_output

    @property
    def broadcast_across_batch(self) -> bool:
        return False

    def set_dimension_name(self, index: int, name: str) -> None:
        self._dim_names[int(index)] = name

    def get_dimension_name(self, index: int) -> str | None:
        return self._dim_names.get(int(index))

    def reset_dynamic_range(self) -> None:
        self.dynamic_range = None

    def __repr__(self) -> str:
        try:
            return f"<ITensor {self._name!r} {self.dtype.name} {self.shape}>"
        except RepogenError:
            return f"<ITensor {self._name!r} (invalid)>"

    # ---- internals
    def _get_info(self) -> Info:
        self._network._refresh()
        assert self._info is not None
        return self._info


class ILayer:
    """Base of every layer. Subclasses define _infer (build time) and _run (NumPy execution)."""

    _TYPE: Any = None
    _TYPE_NAME = "Layer"
    _FOLDABLE = True  # may run at build time when all inputs are small constants

    def __init__(self, network: "NetworkCore", inputs: Sequence[ITensor | None], num_outputs: int = 1):
        d = self.__dict__
        d["_network"] = network
        d["_inputs"] = list(inputs)
        d["_index"] = len(network._layers)
        d["_name"] = f"(Unnamed Layer* {d['_index']}) [{self._TYPE_NAME}]"
        base = d["_name"] + "_output"
        d["_outputs"] = [
            ITensor(network, base if num_outputs == 1 else f"{base}_{i}", self, i) for i in range(num_outputs)
        ]
        d["_n_required"] = len(inputs)
        d["_order_pos"] = -1  # position in the network's producer-first order; -1 until added
        d["metadata"] = ""
        d["precision"] = DataType.FLOAT
        for t in inputs:
            if t is not None and not isinstance(t, ITensor):
                raise NetworkError(d["_name"], f"input is {type(t).__name__}, not an ITensor")

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        if not name.startswith("_"):
            self._network._touch(self)

    # ---- TensorRT API
    @property
    def name(self) -> str:
        return self._name

    @name.setter
    def name(self, value: str) -> None:
        self.__dict__["_name"] = str(value)

    @property
    def type(self) -> LayerType:
        return self._TYPE

    @property
    def num_inputs(self) -> int:
        return len(self._inputs)

    @property
    def num_outputs(self) -> int:
        return len(self._outputs)

    def get_input(self, index: int) -> ITensor | None:
        return self._inputs[index] if 0 <= index < len(self._inputs) else None

    def get_output(self, index: int) -> ITensor | None:
        return self._outputs[index] if 0 <= index < len(self._outputs) else None

    def set_input(self, index: int, tensor: ITensor) -> None:
        if not isinstance(tensor, ITensor):
            raise NetworkError(self._name, f"set_input({index}): not an ITensor")
        if index < 0 or index > self._max_inputs():
            raise NetworkError(self._name, f"set_input: index {index} is out of range for this layer")
        while len(self._inputs) <= index:
            self._inputs.append(None)
        self._inputs[index] = tensor
        self._network._rewired(self, tensor)
        self._network._touch(self)

    def get_output_type(self, index: int) -> DataType:
        return self._outputs[index].dtype

    def set_output_type(self, index: int, dtype: DataType) -> None:
        if DataType(dtype) != self._outputs[index].dtype:
            raise NetworkError(self._name, "set_output_type is not allowed in a strongly typed network; use add_cast")

    def output_type_is_set(self, index: int) -> bool:
        return False

    def reset_output_type(self, index: int) -> None:
        pass

    def precision_is_set(self) -> bool:
        return False

    def reset_precision(self) -> None:
        pass

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._name!r}>"

    # ---- contract for subclasses
    def _order_inputs(self) -> list[ITensor]:
        """Inputs that must be computed before this layer runs.

        Hook for control-flow layers: a loop's recurrence input points at a later layer by design and
        would override this to leave that back edge out of the producer-first order.
        """
        return [t for t in self._inputs if t is not None]

    def _required_inputs(self) -> range:
        return range(self._n_required)

    def _max_inputs(self) -> int:
        return len(self._inputs) - 1

    def _infer(self, ins: list[Info | None]) -> list[Info]:
        raise NotImplementedError

    def _run(self, xs: list[np.ndarray | None]) -> list[np.ndarray]:
        raise NotImplementedError

    def _fail(self, detail: str) -> NetworkError:
        return NetworkError(self._name, detail)

    def _late(self, detail: str) -> None:
        """Report a problem that attributes set right after add_* can fix (num_groups, mode...).

        TensorRT validates those at build time; here they raise at the next inference of this layer
        (next add_*, shape query, mark_output or execute) unless the attributes fixed them by then.
        """
        if self._network._adding is self:
            self._network._deferred = True
            return
        raise self._fail(detail)


class NetworkCore:
    """Bookkeeping half of INetworkDefinition; the add_* methods live in _api.INetworkDefinition."""

    def __init__(self, flags: int = 0):
        self._flags = int(flags)
        self._layers: list[ILayer] = []
        self._inputs: list[ITensor] = []
        self._outputs: list[ITensor] = []
        # Producer-first order of the layers (creation order until a set_input points a layer at a later
        # one); None: to be sorted again. Positions in it are kept on the layers (_order_pos).
        self._sorted: list[ILayer] | None = []
        self._clean_upto = 0  # layers _sorted[:_clean_upto] have up-to-date output Infos
        self._adding: ILayer | None = None
        self._deferred = False
        self.name = "Unnamed Network 0"
        self.error_recorder = None

    def _tensor_named(self, name: str) -> "ITensor | None":
        for t in self._inputs:
            if t.name == name:
                return t
        for layer in self._layers:
            for k in range(layer.num_outputs):
                t = layer.get_output(k)
                if t is not None and t.name == name:
                    return t
        return None

    # ---- queries
    @property
    def num_layers(self) -> int:
        return len(self._layers)

    @property
    def num_inputs(self) -> int:
        return len(self._inputs)

    @property
    def num_outputs(self) -> int:
        return len(self._outputs)

    @property
    def flags(self) -> int:
        return self._flags

    @property
    def has_implicit_batch_dimension(self) -> bool:
        return False

    def get_flag(self, flag: NetworkDefinitionCreationFlag) -> bool:
        return bool(self._flags & (1 << int(flag)))

    @property
    def strongly_typed(self) -> bool:
        return self.get_flag(NetworkDefinitionCreationFlag.STRONGLY_TYPED)

    def get_layer(self, index: int) -> ILayer:
        return self._layers[index]

    def get_input(self, index: int) -> ITensor:
        return self._inputs[index]

    def get_output(self, index: int) -> ITensor:
        return self._outputs[index]

    def __len__(self) -> int:
        return len(self._layers)

    def __getitem__(self, index: int) -> ILayer:
        return self._layers[index]

    def __iter__(self) -> Iterator[ILayer]:
        return iter(list(self._layers))

    def mark_output(self, tensor: ITensor) -> None:
        self._check_tensor(tensor, "mark_output")
        tensor._get_info()  # an invalid producer must fail here, as TensorRT reports it at this point
        if not any(t is tensor for t in self._outputs):
            self._outputs.append(tensor)

    def mark_output_for_shapes(self, tensor: ITensor) -> bool:
        self.mark_output(tensor)
        return True

    def unmark_output(self, tensor: ITensor) -> None:
        self._outputs = [t for t in self._outputs if t is not tensor]

    def remove_tensor(self, tensor: ITensor) -> None:
        if tensor.is_network_input:
            self._inputs = [t for t in self._inputs if t is not tensor]

    # ---- internals
    def _check_tensor(self, tensor: Any, where: str) -> None:
        if not isinstance(tensor, ITensor) or tensor._network is not self:
            raise NetworkError(where, "argument is not a tensor of this network")

    def _add_layer(self, layer: ILayer) -> ILayer:
        for t in layer._inputs:
            if t is not None:
                self._check_tensor(t, layer.name)
        try:
            self._refresh()  # earlier layers with deferred problems must be valid by now
        except NetworkError:
            raise
        self._layers.append(layer)
        if self._sorted is not None:  # add_* only reads existing tensors: appending keeps the order valid
            layer.__dict__["_order_pos"] = len(self._sorted)
            self._sorted.append(layer)
        self._adding, self._deferred = layer, False
        try:
            self._refresh()
        except NetworkError:
            self._layers.pop()
            if self._sorted is not None and self._sorted and self._sorted[-1] is layer:
                self._sorted.pop()
            layer.__dict__["_order_pos"] = -1
            self._clean_upto = min(self._clean_upto, len(self._layers))
            raise
        finally:
            self._adding = None
        if self._deferred:
            # infer again (strictly) at the next refresh
            self._clean_upto = min(self._clean_upto, len(self._layers) - 1)
        return layer

    def _position(self, layer: ILayer) -> int:
        """layer's index in the current order, -1 when it is not (yet) in it or the order is stale."""
        i = layer.__dict__.get("_order_pos", -1)
        if self._sorted is not None and 0 <= i < len(self._sorted) and self._sorted[i] is layer:
            return i
        return -1

    def _touch(self, layer: ILayer | None) -> None:
        if layer is None:
            self._clean_upto = 0
        else:
            i = self._position(layer)
            if i >= 0:
                self._clean_upto = min(self._clean_upto, i)

    def _rewired(self, layer: ILayer, tensor: ITensor) -> None:
        """set_input gave layer a new input: the order stays valid unless its producer now comes later."""
        producer = tensor._producer
        if producer is None or self._sorted is None or tensor not in layer._order_inputs():
            return
        at = self._position(layer)
        if at >= 0 and self._position(producer) >= at:  # a layer reading its own output is a cycle too
            self._sorted = None
            self._clean_upto = 0

    def _order(self) -> list[ILayer]:
        """Layers in an order where producers come first (set_input may point at a later layer)."""
        if self._sorted is None:
            order = self._sort()
            for i, layer in enumerate(order):
                layer.__dict__["_order_pos"] = i
            self._sorted, self._clean_upto = order, 0
        return self._sorted

    def _sort(self) -> list[ILayer]:
        return topological_order(self._layers, lambda layer: [t._producer for t in layer._order_inputs()],
                                 "the network has a cycle through set_input")

    def _refresh(self) -> None:
        """Infer the layers from the first one touched since the last refresh on, in producer-first order."""
        if self._sorted is not None and self._clean_upto >= len(self._sorted):
            return
        order = self._order()
        for i in range(self._clean_upto, len(order)):
            layer = order[i]
            infos = layer_infer(layer, [t._info if t is not None else None for t in layer._inputs])
            for t, info in zip(layer._outputs, infos):
                t._info = info
            self._clean_upto = i + 1

    def _is_shape_tensor(self, tensor: ITensor) -> bool:
        return id(tensor) in shape_tensors(self)


def topological_order(nodes: Sequence[Any], producers_of: Any, cycle: str, self_edges: bool = False) -> list[Any]:
    """Producer-first order of nodes (depth first, iterative: deep networks exceed Python's recursion);
    producers_of(node) lists the nodes it reads from (None entries are ignored); a node reading itself is a
    cycle unless self_edges (a loop step reading its own recurrence)."""
    order: list[Any] = []
    state: dict[int, int] = {}  # 1: on the current path, 2: placed
    for root in nodes:
        stack = [(root, False)]
        while stack:
            node, done = stack.pop()
            if done:
                state[id(node)] = 2
                order.append(node)
                continue
            if state.get(id(node)) == 2:
                continue
            if state.get(id(node)) == 1:
                raise NetworkError(node.name, cycle)
            state[id(node)] = 1
            stack.append((node, True))
            for p in producers_of(node):
                if p is not None and not (self_edges and p is node) and state.get(id(p)) != 2:
                    stack.append((p, False))
    return order


def layer_infer(layer: ILayer, infos: list[Info | None]) -> list[Info]:
    """Run a layer's build-time inference, fold constants, fill partial values of shape tensors."""
    for i, info in enumerate(infos):
        if info is None and i in layer._required_inputs():
            raise layer._fail(f"input {i} is not set")
    outs = layer._infer(infos)
    present = [i for i in infos if i is not None]
    if (
        layer._FOLDABLE
        and present
        and all(i.const is not None for i in present)
        and sum(int(i.const.size) for i in present) <= 65536
    ):
        try:
            vals = layer._run([i.const if i is not None else None for i in infos])
        except NetworkError:
            raise
        except Exception as exc:  # noqa: BLE001 - any numeric failure of a constant layer is the layer's fault
            raise layer._fail(f"evaluating constant inputs failed: {exc}") from exc
        outs = [_with_const(o, v, layer) for o, v in zip(outs, vals)]
    for o in outs:
        if o.pvalue is None and o.const is not None and o.const.ndim <= 1 and o.const.dtype.kind in "iu":
            o.pvalue = [int(v) for v in o.const.reshape(-1)]
    return outs


def _with_const(info: Info, value: np.ndarray, layer: ILayer) -> Info:
    value = np.asarray(value)
    if value.dtype != np_dtype(info.dtype):
        raise layer._fail(f"internal: produced {value.dtype}, expected {info.dtype.name}")
    known = tuple(value.shape)
    if len(known) != len(info.shape) or any(d != -1 and d != k for d, k in zip(info.shape, known)):
        raise layer._fail(f"internal: constant output shape {known} disagrees with inferred {info.shape}")
    return Info(info.dtype, known, None, value)


# input slots of layers that TensorRT treats as shape tensors (values needed to compute shapes)
_SHAPE_SLOTS: dict[str, set[int]] = {
    "IShuffleLayer": {1},
    "ISliceLayer": {1, 2, 3},
    "ITopKLayer": {1},
    "IResizeLayer": {1},
    "IFillLayer": {0},
    "ILoopOutputLayer": {1},
}
_PASS_THROUGH = {"IConcatenationLayer", "IGatherLayer", "IElementWiseLayer", "ISliceLayer", "ICastLayer",
                 "IIdentityLayer", "IShuffleLayer", "IReduceLayer", "IUnaryLayer", "ISelectLayer"}


def shape_tensors(network: NetworkCore) -> set[int]:
    """ids of tensors TensorRT would treat as shape tensors."""
    found: set[int] = set()
    todo: list[ITensor] = []
    for layer in network._layers:
        name = type(layer).__name__
        if name == "IShapeLayer":
            todo.append(layer._outputs[0])
        for i in _SHAPE_SLOTS.get(name, ()):
            if i < len(layer._inputs) and layer._inputs[i] is not None:
                todo.append(layer._inputs[i])
    while todo:
        t = todo.pop()
        if id(t) in found:
            continue
        found.add(id(t))
        p = t._producer
        if p is not None and type(p).__name__ in _PASS_THROUGH:
            todo.extend(x for x in p._inputs if x is not None and x._info is not None
                        and x._info.dtype in (DataType.INT32, DataType.INT64, DataType.BOOL))
    return found


def run_layer(layer: ILayer, xs: list[np.ndarray | None]) -> list[np.ndarray]:
    """Run one layer (or a loop / conditional step) on NumPy arrays: its errors name the layer, and outputs
    that contradict the built types / shapes are refused."""
    try:
        with np.errstate(all="ignore"):
            outs = layer._run(xs)
    except ExecutionError:
        raise
    except NetworkError as exc:
        raise ExecutionError(exc.layer, exc.detail) from exc
    except Exception as exc:  # noqa: BLE001 - report which layer failed on which shapes
        shapes = [None if x is None else x.shape for x in xs]
        raise ExecutionError(layer.name, f"failed on input shapes {shapes}: {type(exc).__name__}: {exc}") from exc
    if FLOAT_STORAGE.get() != np.float32:
        # a float64 run: constants (weights kept as float32, as TensorRT stores them) and layers that compute
        # in a fixed float32 (quantize, NMS scores) enter the float64 computation as exact float64 values
        outs = [v.astype(np.float64) if v.dtype == np.float32 else v for v in outs]
    for t, v in zip(layer._outputs, outs):
        info = t._info
        if v.dtype != np_dtype(info.dtype) or v.ndim != len(info.shape) or any(
            d != -1 and d != s for d, s in zip(info.shape, v.shape)
        ):
            raise ExecutionError(
                layer.name, f"produced {v.dtype}{v.shape}, which contradicts the built {info.dtype.name}{info.shape}"
            )
    return outs
