"""Running loops and conditionals: which layers belong to which loop / conditional, the checks TensorRT makes
when building (here when executing), and the steps _exec runs (see _control.py for the layers and sources).

Execution: ``_exec`` asks ``schedule(network)`` for its steps; a top-level loop or conditional is one step
whose inputs are every outside tensor its layers read and whose outputs are its exit tensors. A loop step
runs its body once per iteration (only the layers the next values, the scanned outputs and the WHILE
condition need; the condition's layers first); a conditional step runs only the chosen branch's layers.
Loops and conditionals nest.
"""

from __future__ import annotations

from collections import ChainMap
from typing import Any, Iterable

import numpy as np

from ._control import IIfConditional, IIfConditionalInputLayer, ILoop, ILoopOutputLayer, LoopOutput, TripLimit, control_regions
from ._network import ILayer, ITensor, NetworkCore, run_layer, topological_order
from ._types import ExecutionError, NetworkError, np_dtype


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
    owners = [o for o in control_regions(network) if o._boundary()]  # a loop / conditional left without layers is inert
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
    if not control_regions(network):
        return network._order()
    order = {id(layer): i for i, layer in enumerate(network._order())}
    regions = _analyse(network)
    return _scope_steps(None, network, regions, order)


def _run_steps(steps: list[Any], vals: ChainMap) -> None:
    for s in steps:
        xs = [None if t is None else vals[id(t)] for t in s._inputs]
        for t, v in zip(s._outputs, run_layer(s, xs)):
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
