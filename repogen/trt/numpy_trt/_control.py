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

Execution: ``_exec`` asks ``schedule(network)`` for its steps; a top-level loop or conditional is one step
whose inputs are every outside tensor its layers read and whose outputs are its exit tensors. A loop step
runs its body once per iteration (only the layers the next values, the scanned outputs and the WHILE
condition need; the condition's layers first); a conditional step runs only the chosen branch's layers.
Loops and conditionals nest.
"""

from __future__ import annotations

from collections import ChainMap
from typing import Any, Iterable, Sequence

import numpy as np

from ._api import INetworkDefinition
from ._network import ILayer, Info, ITensor, NetworkCore, topological_order
from ._types import DataType, ExecutionError, LayerType, NetworkError, _Enum, np_dtype


class TripLimit(_Enum):
    COUNT = 0
    WHILE = 1


class LoopOutput(_Enum):
    LAST_VALUE = 0
    CONCATENATE = 1
    REVERSE = 2


_COUNT_TYPES = (DataType.INT32,)
_IF_TYPES = (DataType.BOOL, DataType.INT32, DataType.HALF, DataType.FLOAT)


def _regions(network: NetworkCore) -> list[Any]:
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
        self.name = f"(Unnamed Loop {len(_regions(network))})"
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
        self.name = f"(Unnamed IfConditional {len(_regions(network))})"
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


def add_loop(self: INetworkDefinition) -> ILoop:
    loop = ILoop(self)
    _regions(self).append(loop)
    return loop


def add_if_conditional(self: INetworkDefinition) -> IIfConditional:
    cond = IIfConditional(self)
    _regions(self).append(cond)
    return cond


INetworkDefinition.add_loop = add_loop
INetworkDefinition.add_if_conditional = add_if_conditional


# ---------------------------------------------------------------- scheduling


class _Region:
    """Where one loop / conditional sits: its layers (nested ones included) and the enclosing region."""

    def __init__(self, owner: Any):
        self.owner = owner
        self.layers: dict[int, ILayer] = {}  # every layer inside, its own boundary layers included
        self.parent: _Region | None = None
        self.inputs: list[ITensor] = []  # outside tensors its layers read
        self.outputs: list[ITensor] = []  # exit tensors

    @property
    def name(self) -> str:
        return self.owner.name


def _consumers(network: NetworkCore) -> dict[int, list[ILayer]]:
    found: dict[int, list[ILayer]] = {}
    for layer in network._layers:
        for t in layer._inputs:
            if t is not None:
                found.setdefault(id(t), []).append(layer)
    return found


def _analyse(network: NetworkCore) -> list[_Region]:
    consumers = _consumers(network)
    owners = [o for o in _regions(network) if o._boundary()]  # a loop / conditional left without layers is inert
    regions = [_Region(o) for o in owners]
    region_of_boundary = {id(layer): r for r in regions for layer in r.owner._boundary()}

    def reach(r: _Region, closed: bool) -> dict[int, ILayer]:
        exits = {id(e) for e in r.owner._exits()}
        body: dict[int, ILayer] = {}
        todo = list(r.owner._sources())
        while todo:
            layer = todo.pop()
            if id(layer) in body:
                continue
            body[id(layer)] = layer
            if id(layer) in exits:
                continue  # an exit's output is outside the region
            if closed:
                other = region_of_boundary.get(id(layer))
                if other is not None and other is not r:
                    todo.extend(other.layers.values())  # a region touched inside r lies wholly inside r
            for t in layer._outputs:
                todo.extend(consumers.get(id(t), ()))
        for b in r.owner._boundary():
            body[id(b)] = b
        return body

    for r in regions:
        r.layers = reach(r, closed=False)
    for _ in range(len(regions) + 1):  # nesting closes in at most one pass per nesting level
        changed = False
        for r in regions:
            grown = reach(r, closed=True)
            if len(grown) != len(r.layers):
                r.layers, changed = grown, True
        if not changed:
            break
    for r in regions:
        inside = [o for o in regions if o is not r and o.layers.keys() <= r.layers.keys()]
        for o in inside:
            if r.layers.keys() <= o.layers.keys():
                raise NetworkError(r.name, f"shares layers with {o.name} without one being inside the other "
                                           "(a layer reads tensors of both)")
    for r in regions:
        around = [o for o in regions if o is not r and r.layers.keys() <= o.layers.keys()]
        r.parent = min(around, key=lambda o: len(o.layers)) if around else None
    for r in regions:
        _check_region(network, r, consumers)
    return regions


def _check_region(network: NetworkCore, r: _Region, consumers: dict[int, list[ILayer]]) -> None:
    owner = r.owner
    exits = {id(e) for e in owner._exits()}
    produced = {id(t): layer for layer in r.layers.values() for t in layer._outputs}
    outputs = {id(t) for t in network._outputs}
    for layer in r.layers.values():
        if id(layer) in exits:
            continue
        for t in layer._outputs:
            if id(t) in outputs:
                raise NetworkError(layer.name, f"its output {t.name!r} is marked as a network output but lies "
                                               f"inside {r.name}; take it out through a loop/conditional output")
            for c in consumers.get(id(t), ()):
                if id(c) not in r.layers:
                    raise NetworkError(c.name, f"reads {t.name!r} from inside {r.name}; data leaves a loop only "
                                               "through ILoopOutputLayer (a conditional through its outputs)")
    seen: set[int] = set()
    r.inputs = []
    for layer in r.layers.values():
        for t in layer._inputs:
            if t is not None and id(t) not in produced and id(t) not in seen:
                seen.add(id(t))
                r.inputs.append(t)
    r.outputs = [e._outputs[0] for e in owner._exits()]
    if isinstance(owner, ILoop):
        _check_loop(owner, produced)
    else:
        if owner._condition is None:
            raise NetworkError(owner.name, "set_condition was never called")
        if not owner._outputs:
            raise NetworkError(owner.name, "a conditional needs at least one add_output")


def _check_loop(loop: ILoop, produced: dict[int, ILayer]) -> None:
    def outside(t: ITensor | None, what: str, layer: ILayer) -> None:
        if t is not None and id(t) in produced:
            raise NetworkError(layer.name, f"{what} must be defined outside the loop")

    if not loop._trip_limits:
        raise NetworkError(loop.name, "a loop needs a trip limit (add_trip_limit COUNT or WHILE)")
    count = next((t for t in loop._trip_limits if t.kind == TripLimit.COUNT), None)
    if count is not None:
        outside(count._inputs[0], "the COUNT trip limit", count)
    for rec in loop._recurrences:
        outside(rec._inputs[0], "the initial value (input 0)", rec)
        if len(rec._inputs) < 2 or rec._inputs[1] is None:
            raise NetworkError(rec.name, "recurrence input 1 (the next value) was never set")
        a, b = rec._inputs[0]._get_info(), rec._inputs[1]._get_info()
        if a.dtype != b.dtype or a.rank != b.rank or any(x != y and -1 not in (x, y) for x, y in zip(a.shape, b.shape)):
            raise NetworkError(rec.name, f"next value {b.dtype.name}{b.shape} does not match the initial value "
                                         f"{a.dtype.name}{a.shape}")
    for it in loop._iterators:
        outside(it._inputs[0], "the iterated tensor", it)
        if it.reverse and count is None:
            raise NetworkError(it.name, "a reverse iterator needs a COUNT trip limit (it reads M-1-i)")
    for out in loop._loop_outputs:
        if out.kind != LoopOutput.LAST_VALUE:
            if len(out._inputs) < 2 or out._inputs[1] is None:
                raise NetworkError(out.name, f"{out.kind.name} loop output needs set_input(1, length)")
            outside(out._inputs[1], "the concatenation length (input 1)", out)


class _Step:
    """A loop or conditional seen from the enclosing scope: one step with the duck type of a layer."""

    def __init__(self, region: _Region, regions: list[_Region], order: dict[int, int]):
        self.region = region
        self._regions = regions
        self._order = order
        self._inputs = region.inputs
        self._outputs = region.outputs
        self.name = region.name
        self._plan: Any = None

    def _run(self, xs: list[np.ndarray | None]) -> list[np.ndarray]:
        env = {id(t): x for t, x in zip(self._inputs, xs)}
        if isinstance(self.region.owner, ILoop):
            return _run_loop(self, env)
        return _run_conditional(self, env)


def _scope_steps(scope: _Region | None, network: NetworkCore, regions: list[_Region],
                 order: dict[int, int], skip: Iterable[ILayer] = ()) -> list[Any]:
    """Layers directly in scope (not in a nested region), and the nested regions as steps, producers first."""
    skipped = {id(layer) for layer in skip}
    children = [r for r in regions if r.parent is scope]
    nested: set[int] = set()
    for r in children:
        nested.update(r.layers)
    pool = scope.layers.values() if scope is not None else network._layers
    steps: list[Any] = [layer for layer in pool if id(layer) not in nested and id(layer) not in skipped]
    if scope is not None:
        steps = [s for s in steps if id(s) not in {id(b) for b in scope.owner._boundary()
                                                  if not isinstance(b, IIfConditionalInputLayer)}]
    steps += [_Step(r, regions, order) for r in children]
    return _toposort(steps, order)


def _first_pos(step: Any, order: dict[int, int]) -> int:
    if isinstance(step, _Step):
        return min(order.get(k, 0) for k in step.region.layers)
    return order.get(id(step), 0)


def _toposort(steps: list[Any], order: dict[int, int]) -> list[Any]:
    producer = {id(t): s for s in steps for t in s._outputs}
    return topological_order(sorted(steps, key=lambda s: _first_pos(s, order)),
                             lambda s: [producer.get(id(t)) for t in _step_inputs(s)],
                             "the network has a cycle outside recurrence back edges", self_edges=True)


def _step_inputs(step: Any) -> list[ITensor]:
    return step._inputs if isinstance(step, _Step) else step._order_inputs()


def _needed(steps: list[Any], wanted: Iterable[ITensor]) -> list[Any]:
    """The steps (in the given order) that the wanted tensors depend on within this scope."""
    producer = {id(t): s for s in steps for t in s._outputs}
    need: set[int] = set()
    todo = [producer[id(t)] for t in wanted if id(t) in producer]
    while todo:
        s = todo.pop()
        if id(s) in need:
            continue
        need.add(id(s))
        todo.extend(producer[id(t)] for t in s._inputs if t is not None and id(t) in producer)
    return [s for s in steps if id(s) in need]


def schedule(network: NetworkCore) -> list[Any]:
    """Top-level execution steps: layers outside every loop/conditional, and each outermost one as a step."""
    order = {id(layer): i for i, layer in enumerate(network._order())}
    regions = _analyse(network)
    return _scope_steps(None, network, regions, order)


def _run_steps(steps: list[Any], vals: ChainMap) -> None:
    from ._exec import _run_layer

    for s in steps:
        xs = [None if t is None else vals[id(t)] for t in s._inputs]
        for t, v in zip(s._outputs, _run_layer(s, xs)):
            vals[id(t)] = v


def _loop_plan(step: _Step) -> tuple[list[Any], list[Any]]:
    loop: ILoop = step.region.owner
    if step._plan is None:
        body = _scope_steps(step.region, loop._network, step._regions, step._order)
        wanted = [rec._inputs[1] for rec in loop._recurrences]
        wanted += [o._inputs[0] for o in loop._loop_outputs if o.kind != LoopOutput.LAST_VALUE]
        cond = next((t._inputs[0] for t in loop._trip_limits if t.kind == TripLimit.WHILE), None)
        first = _needed(body, [cond]) if cond is not None else []
        firsts = {id(s) for s in first}
        rest = [s for s in _needed(body, wanted) if id(s) not in firsts]
        step._plan = (first, rest)
    return step._plan


def _scalar(x: np.ndarray) -> Any:
    return np.asarray(x).reshape(()).item()


def _run_loop(step: _Step, env: dict[int, np.ndarray]) -> list[np.ndarray]:
    loop: ILoop = step.region.owner
    first, rest = _loop_plan(step)
    count = next((int(_scalar(env[id(t._inputs[0])])) for t in loop._trip_limits if t.kind == TripLimit.COUNT), None)
    cond = next((t._inputs[0] for t in loop._trip_limits if t.kind == TripLimit.WHILE), None)
    state = {id(rec): env[id(rec._inputs[0])] for rec in loop._recurrences}
    scans: dict[int, list[np.ndarray]] = {id(o): [] for o in loop._loop_outputs if o.kind != LoopOutput.LAST_VALUE}
    i = 0
    while count is None or i < count:
        vals: ChainMap = ChainMap({}, env)
        for rec in loop._recurrences:
            vals[id(rec._outputs[0])] = state[id(rec)]
        for it in loop._iterators:
            x = env[id(it._inputs[0])]
            axis = int(it.axis)
            k = count - 1 - i if it.reverse else i
            if not 0 <= k < x.shape[axis]:
                raise ExecutionError(it.name, f"iteration {i} reads index {k} of axis {axis} with extent "
                                              f"{x.shape[axis]} (iterating past a tensor is invalid)")
            vals[id(it._outputs[0])] = np.take(x, k, axis=axis)
        if cond is not None:
            _run_steps(first, vals)
            if not bool(_scalar(vals[id(cond)])):
                break
        _run_steps(rest, vals)
        for rec in loop._recurrences:
            nxt, old = vals[id(rec._inputs[1])], state[id(rec)]
            if nxt.shape != old.shape or nxt.dtype != old.dtype:
                raise ExecutionError(rec.name, f"iteration {i} computed a next value {nxt.dtype}{nxt.shape} for a "
                                               f"recurrence of {old.dtype}{old.shape}")
            state[id(rec)] = nxt
        for o in loop._loop_outputs:
            if o.kind != LoopOutput.LAST_VALUE:
                scans[id(o)].append(vals[id(o._inputs[0])])
        i += 1
    results = []
    for o in loop._loop_outputs:
        if o.kind == LoopOutput.LAST_VALUE:
            results.append(state[id(o._inputs[0]._producer)])
            continue
        results.append(_scan_output(o, scans[id(o)], int(_scalar(env[id(o._inputs[1])])), i))
    return results


def _scan_output(o: ILoopOutputLayer, values: list[np.ndarray], length: int, n: int) -> np.ndarray:
    if length < n:
        raise ExecutionError(o.name, f"the loop ran {n} iterations but the output length (input 1) is {length}")
    if o.kind == LoopOutput.REVERSE:
        values = values[::-1]
    axis = int(o.axis)
    if values:
        piece = values[0].shape
    else:
        info = o._inputs[0]._info
        if any(d < 0 for d in info.shape):
            raise ExecutionError(o.name, "the loop ran no iteration and the per-iteration shape is known only at "
                                         "run time")
        piece = info.shape
    dtype = values[0].dtype if values else np_dtype(o._inputs[0]._info.dtype)
    out = np.zeros(piece[:axis] + (length,) + piece[axis:], dtype)
    if values:
        idx = [slice(None)] * out.ndim
        idx[axis] = slice(0, n)
        out[tuple(idx)] = np.stack(values, axis=axis)
    return out


def _run_conditional(step: _Step, env: dict[int, np.ndarray]) -> list[np.ndarray]:
    cond: IIfConditional = step.region.owner
    side = 0 if bool(_scalar(env[id(cond._condition._inputs[0])])) else 1
    if step._plan is None:
        body = _scope_steps(step.region, cond._network, step._regions, step._order)
        step._plan = tuple(_needed(body, [o._inputs[k] for o in cond._outputs]) for k in (0, 1))
    vals: ChainMap = ChainMap({}, env)
    _run_steps(step._plan[side], vals)
    return [vals[id(o._inputs[side])] for o in cond._outputs]


__all__ = [
    "IConditionLayer", "IIfConditional", "IIfConditionalInputLayer", "IIfConditionalOutputLayer", "IIteratorLayer",
    "ILoop", "ILoopOutputLayer", "IRecurrenceLayer", "ITripLimitLayer", "LoopOutput", "TripLimit", "schedule",
]
