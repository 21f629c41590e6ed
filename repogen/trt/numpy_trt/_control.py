"""Loops (``network.add_loop()`` -> ILoop) and if-conditionals (``network.add_if_conditional()`` -> IIfConditional).

Sources (TensorRT documentation read through the ``search`` tool):

* "Working with Loops" (TensorRT 10/11 developer guide) and the ILoop, ITripLimitLayer, IRecurrenceLayer,
  IIteratorLayer, ILoopOutputLayer and LoopOutput API references (TensorRT 8.2-11.0):
  - boundary layers define the loop; loop-invariant tensors (defined outside) may be used directly inside;
    data leaves a loop only through an ILoopOutputLayer; the only back edge allowed is input 1 of an
    IRecurrenceLayer;
  - at most one COUNT and one WHILE trip limit; with both, the loop exits when either says so. COUNT takes
    a 0-D INT32 shape tensor defined outside the loop, WHILE a 0-D BOOL tensor, typically computed from a
    recurrence (INT64 is refused: the guide names INT32 only);
  - ``add_iterator(t, axis, reverse)`` is ``gather(t, i, axis)`` in iteration i, or ``gather(t, M-1-i, axis)``
    with reverse, M being the COUNT trip limit; iterating past the tensor's extent is invalid;
  - ``add_recurrence(init)``: input 0 (defined outside) is the value in the first iteration, input 1
    (``set_input(1, next)``, required before building) the value computed for the next one;
  - ``add_loop_output(t, kind, axis)``: LAST_VALUE takes a single input that must be an IRecurrenceLayer
    output of the same loop; CONCATENATE / REVERSE need ``set_input(1, length)``, a 0-D shape tensor defined
    before the loop (INT32, as the guide says), and insert a dimension of that length at ``axis`` (concatenation of the per-iteration
    values in forward / reverse order); set_input(1) is refused for LAST_VALUE.
  - The guide's formal semantics (sequences of tensors): a recurrence is <init, next_0, next_1, ...>, so
    LAST_VALUE of a recurrence after n iterations is next_{n-1} (init when n == 0) - onnx-tensorrt's RNN
    importer reads the final hidden state this way; the trip count n of a WHILE loop is the least n whose
    condition value is false; CONCATENATE of n < length values is padded after them, and length < n is a
    run-time error.
* "Working with Conditionals" and the If operator page (TensorRT 10.x), IIfConditional API reference:
  ``set_condition`` takes a 0-D BOOL tensor; ``add_input(t)`` (IIfConditionalInputLayer) brings a tensor into
  the branches; ``add_output(true_t, false_t)`` (IIfConditionalOutputLayer) emits the chosen branch's tensor;
  branches are executed conditionally (only the chosen branch runs); branch outputs pair up with equal types
  and equal ranks unless the condition is a build-time constant; output types bool, int32, float16, float32
  (bfloat16 has no NumPy storage here). The subgraphs may use tensors defined outside directly.

Assumptions (the pages leave these open):
* Loop membership: a layer is inside a loop when it depends on one of the loop's recurrence or iterator
  outputs (not through that loop's outputs); inside a conditional when it depends on one of its input
  layers. Everything else is loop-invariant / outside and computed once, which is the same result under
  the documented applicative semantics.
* Padding of CONCATENATE / REVERSE beyond the trip count ("arbitrary values" in the guide) is zeros, after
  the n values in both kinds.
* The value a recurrence takes must keep the initial value's type and shape (checked when run).
* Structural rules TensorRT checks when building (a loop needs a trip limit, every recurrence needs input 1,
  nothing leaves a loop except through loop outputs) are checked here when the network is executed.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ._network import ILayer, Info, ITensor, NetworkCore
from ._types import DataType, LayerType, NetworkError, _Enum


class TripLimit(_Enum):
    COUNT = 0
    WHILE = 1


class LoopOutput(_Enum):
    LAST_VALUE = 0
    CONCATENATE = 1
    REVERSE = 2


_COUNT_TYPES = (DataType.INT32,)
_IF_TYPES = (DataType.BOOL, DataType.INT32, DataType.HALF, DataType.FLOAT)


def control_regions(network: NetworkCore) -> list[Any]:
    """The loops and conditionals of a network, in creation order (the scheduler reads them)."""
    return network.__dict__.setdefault("_control_regions", [])


# ---------------------------------------------------------------- loop layers


class _LoopBoundary(ILayer):
    _FOLDABLE = False  # values change per iteration; never fold them into constants

    def __init__(self, loop: "ILoop", inputs: Sequence[ITensor | None], num_outputs: int = 1):
        super().__init__(loop._network, inputs, num_outputs)
        self.__dict__["_loop"] = loop

    @property
    def loop(self) -> "ILoop":
        return self._loop


class ITripLimitLayer(_LoopBoundary):
    _TYPE = LayerType.TRIP_LIMIT
    _TYPE_NAME = "TripLimit"

    def __init__(self, loop: "ILoop", tensor: ITensor, kind: TripLimit):
        super().__init__(loop, [tensor], 0)
        self.__dict__["_kind"] = TripLimit(kind)

    @property
    def kind(self) -> TripLimit:
        return self._kind

    def _infer(self, ins: list[Info | None]) -> list[Info]:
        x = ins[0]
        want = _COUNT_TYPES if self._kind == TripLimit.COUNT else (DataType.BOOL,)
        if x.rank != 0 or x.dtype not in want:
            raise self._fail(f"{self._kind.name} trip limit needs a 0-D {'/'.join(t.name for t in want)} tensor, "
                             f"got {x.dtype.name}{x.shape}")
        return []


class IRecurrenceLayer(_LoopBoundary):
    _TYPE = LayerType.RECURRENCE
    _TYPE_NAME = "Recurrence"

    def _max_inputs(self) -> int:
        return 1

    def _order_inputs(self) -> list[ITensor]:
        # input 1 is the back edge: it is computed from this layer's own output in the previous iteration
        return [self._inputs[0]]

    def _infer(self, ins: list[Info | None]) -> list[Info]:
        x = ins[0]
        return [Info(x.dtype, x.shape)]


class IIteratorLayer(_LoopBoundary):
    _TYPE = LayerType.ITERATOR
    _TYPE_NAME = "Iterator"

    def __init__(self, loop: "ILoop", tensor: ITensor, axis: int, reverse: bool):
        super().__init__(loop, [tensor])
        self.axis = int(axis)
        self.reverse = bool(reverse)

    def _infer(self, ins: list[Info | None]) -> list[Info]:
        x = ins[0]
        axis = int(self.axis)
        if not 0 <= axis < x.rank:
            raise self._fail(f"axis {axis} is outside the input's rank {x.rank}")
        return [Info(x.dtype, x.shape[:axis] + x.shape[axis + 1:])]


class ILoopOutputLayer(_LoopBoundary):
    _TYPE = LayerType.LOOP_OUTPUT
    _TYPE_NAME = "LoopOutput"

    def __init__(self, loop: "ILoop", tensor: ITensor, kind: LoopOutput, axis: int):
        super().__init__(loop, [tensor])
        self.__dict__["_kind"] = LoopOutput(kind)
        self.axis = int(axis)

    @property
    def kind(self) -> LoopOutput:
        return self._kind

    def _max_inputs(self) -> int:
        return 0 if self._kind == LoopOutput.LAST_VALUE else 1

    def _infer(self, ins: list[Info | None]) -> list[Info]:
        x = ins[0]
        if self._kind == LoopOutput.LAST_VALUE:
            p = self._inputs[0]._producer
            if not (isinstance(p, IRecurrenceLayer) and p._loop is self._loop):
                raise self._fail("the input of a LAST_VALUE loop output must be an IRecurrenceLayer output of "
                                 "the same loop")
            return [Info(x.dtype, x.shape)]
        axis = int(self.axis)
        if not 0 <= axis <= x.rank:
            raise self._fail(f"concatenation axis {axis} is outside 0..{x.rank}")
        n = ins[1] if len(ins) > 1 else None
        length = -1
        if n is not None:  # a missing length is reported when the network runs: it may be set after more add_*
            if n.rank != 0 or n.dtype not in _COUNT_TYPES:
                raise self._fail(f"the length (input 1) must be a 0-D INT32 tensor, got {n.dtype.name}{n.shape}")
            if n.pvalue is not None and n.pvalue[0] is not None:
                length = int(n.pvalue[0])
        return [Info(x.dtype, x.shape[:axis] + (length,) + x.shape[axis:])]


class ILoop:
    """TensorRT's ILoop: a factory of the boundary layers of one loop (not itself a layer)."""

    def __init__(self, network: NetworkCore):
        self._network = network
        self.name = f"(Unnamed Loop {len(control_regions(network))})"
        self._trip_limits: list[ITripLimitLayer] = []
        self._recurrences: list[IRecurrenceLayer] = []
        self._iterators: list[IIteratorLayer] = []
        self._loop_outputs: list[ILoopOutputLayer] = []

    def add_trip_limit(self, tensor: ITensor, kind: TripLimit) -> ITripLimitLayer:
        kind = TripLimit(kind)
        if any(t.kind == kind for t in self._trip_limits):
            raise NetworkError(self.name, f"a loop has at most one {kind.name} trip limit")
        layer = self._network._add_layer(ITripLimitLayer(self, tensor, kind))
        self._trip_limits.append(layer)
        return layer

    def add_recurrence(self, initial_value: ITensor) -> IRecurrenceLayer:
        layer = self._network._add_layer(IRecurrenceLayer(self, [initial_value]))
        self._recurrences.append(layer)
        return layer

    def add_iterator(self, tensor: ITensor, axis: int = 0, reverse: bool = False) -> IIteratorLayer:
        layer = self._network._add_layer(IIteratorLayer(self, tensor, axis, reverse))
        self._iterators.append(layer)
        return layer

    def add_loop_output(self, tensor: ITensor, kind: LoopOutput, axis: int = 0) -> ILoopOutputLayer:
        layer = self._network._add_layer(ILoopOutputLayer(self, tensor, kind, axis))
        self._loop_outputs.append(layer)
        return layer

    # ---- for the scheduler
    def _sources(self) -> list[ILayer]:
        return [*self._recurrences, *self._iterators]

    def _exits(self) -> list[ILayer]:
        return list(self._loop_outputs)

    def _boundary(self) -> list[ILayer]:
        return [*self._trip_limits, *self._recurrences, *self._iterators, *self._loop_outputs]

    def __repr__(self) -> str:
        return f"<ILoop {self.name!r}>"


# ---------------------------------------------------------------- conditional layers


class _IfBoundary(ILayer):
    _FOLDABLE = False  # branch layers run only when their branch is chosen

    def __init__(self, cond: "IIfConditional", inputs: Sequence[ITensor | None], num_outputs: int = 1):
        super().__init__(cond._network, inputs, num_outputs)
        self.__dict__["_cond"] = cond

    @property
    def conditional(self) -> "IIfConditional":
        return self._cond


class IConditionLayer(_IfBoundary):
    _TYPE = LayerType.CONDITION
    _TYPE_NAME = "Condition"

    def _infer(self, ins: list[Info | None]) -> list[Info]:
        c = ins[0]
        if c.rank != 0 or c.dtype != DataType.BOOL:
            raise self._fail(f"the condition must be a 0-D BOOL tensor, got {c.dtype.name}{c.shape}")
        return []


class IIfConditionalInputLayer(_IfBoundary):
    _TYPE = LayerType.CONDITIONAL_INPUT
    _TYPE_NAME = "ConditionalInput"

    def _infer(self, ins: list[Info | None]) -> list[Info]:
        x = ins[0]
        if x.dtype not in _IF_TYPES:
            raise self._fail(f"input type {x.dtype.name} is not one of {', '.join(d.name for d in _IF_TYPES)} "
                             "(If operator page)")
        return [Info(x.dtype, x.shape)]

    def _run(self, xs: list[np.ndarray | None]) -> list[np.ndarray]:
        return [xs[0]]


class IIfConditionalOutputLayer(_IfBoundary):
    _TYPE = LayerType.CONDITIONAL_OUTPUT
    _TYPE_NAME = "ConditionalOutput"

    def _infer(self, ins: list[Info | None]) -> list[Info]:
        t, f = ins
        for side, info in (("true", t), ("false", f)):
            if info.dtype not in _IF_TYPES:
                raise self._fail(f"{side}-branch output type {info.dtype.name} is not one of "
                                 f"{', '.join(d.name for d in _IF_TYPES)} (If operator page)")
        if t.dtype != f.dtype:
            raise self._fail(f"branch outputs have different types {t.dtype.name} / {f.dtype.name}")
        known = self._cond._known_condition()
        if known is not None:
            chosen = t if known else f
            return [Info(chosen.dtype, chosen.shape)]
        if t.rank != f.rank:
            raise self._fail(f"branch outputs have different ranks {t.shape} / {f.shape}; only a build-time "
                             "constant condition allows that")
        return [Info(t.dtype, tuple(a if a == b else -1 for a, b in zip(t.shape, f.shape)))]


class IIfConditional:
    """TensorRT's IIfConditional: a factory of the boundary layers of one if-then-else (not itself a layer)."""

    def __init__(self, network: NetworkCore):
        self._network = network
        self.name = f"(Unnamed IfConditional {len(control_regions(network))})"
        self._condition: IConditionLayer | None = None
        self._inputs: list[IIfConditionalInputLayer] = []
        self._outputs: list[IIfConditionalOutputLayer] = []

    def set_condition(self, condition: ITensor) -> IConditionLayer:
        if self._condition is not None:
            raise NetworkError(self.name, "the condition is already set")
        self._condition = self._network._add_layer(IConditionLayer(self, [condition]))
        return self._condition

    def add_input(self, input: ITensor) -> IIfConditionalInputLayer:  # noqa: A002
        layer = self._network._add_layer(IIfConditionalInputLayer(self, [input]))
        self._inputs.append(layer)
        return layer

    def add_output(self, true_subgraph_output: ITensor, false_subgraph_output: ITensor) -> IIfConditionalOutputLayer:
        layer = self._network._add_layer(IIfConditionalOutputLayer(self, [true_subgraph_output, false_subgraph_output]))
        self._outputs.append(layer)
        return layer

    def _known_condition(self) -> bool | None:
        if self._condition is None:
            return None
        info = self._condition._inputs[0]._info
        return None if info is None or info.const is None else bool(info.const)

    def _sources(self) -> list[ILayer]:
        return list(self._inputs)

    def _exits(self) -> list[ILayer]:
        return list(self._outputs)

    def _boundary(self) -> list[ILayer]:
        return [*([self._condition] if self._condition else []), *self._inputs, *self._outputs]

    def __repr__(self) -> str:
        return f"<IIfConditional {self.name!r}>"


def add_loop(network: NetworkCore) -> ILoop:
    """INetworkDefinition.add_loop."""
    loop = ILoop(network)
    control_regions(network).append(loop)
    return loop


def add_if_conditional(network: NetworkCore) -> IIfConditional:
    """INetworkDefinition.add_if_conditional."""
    cond = IIfConditional(network)
    control_regions(network).append(cond)
    return cond


__all__ = [
    "IConditionLayer", "IIfConditional", "IIfConditionalInputLayer", "IIfConditionalOutputLayer", "IIteratorLayer",
    "ILoop", "ILoopOutputLayer", "IRecurrenceLayer", "ITripLimitLayer", "LoopOutput", "TripLimit",
]
