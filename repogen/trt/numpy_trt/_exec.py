"""Running a recorded network with NumPy: execute, execute_all (every tensor), infer_shapes."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from ._network import ILayer, Info, ITensor, NetworkCore, layer_infer, run_layer
from ._schedule import schedule
from ._types import FLOAT_STORAGE, ExecutionError, c_order, np_dtype

def _input_array(t: ITensor, value: Any) -> np.ndarray:
    info = t._info
    want = np_dtype(info.dtype)
    a = np.asarray(value)
    if a.dtype != want:
        if a.dtype.kind == want.kind or (a.dtype.kind in "iu" and want.kind in "iu") or a.dtype == np.float64:
            a = a.astype(want)
        else:
            raise ExecutionError(f"input {t.name!r}", f"array of {a.dtype} given for a {info.dtype.name} input")
    if a.ndim != len(info.shape) or any(d != -1 and d != s for d, s in zip(info.shape, a.shape)):
        raise ExecutionError(f"input {t.name!r}", f"shape {a.shape} does not match the declared {info.shape}")
    return c_order(a)


def _execute(network: NetworkCore, inputs: Mapping[str, Any], keep_all: bool) -> tuple[dict[int, np.ndarray], list[ILayer]]:
    network._refresh()
    values: dict[int, np.ndarray] = {}
    names = {t.name for t in network._inputs}
    unknown = set(inputs) - names
    if unknown:
        raise ExecutionError("execute", f"no network inputs named {sorted(unknown)}; inputs are {sorted(names)}")
    for t in network._inputs:
        if t.name not in inputs:
            raise ExecutionError("execute", f"input {t.name!r} was not given")
        values[id(t)] = _input_array(t, inputs[t.name])
    order = schedule(network)  # the layers; a loop / conditional is one step
    remaining: dict[int, int] = {}
    if not keep_all:
        for layer in order:
            for x in layer._inputs:
                if x is not None:
                    remaining[id(x)] = remaining.get(id(x), 0) + 1
        for t in network._outputs:
            remaining[id(t)] = remaining.get(id(t), 0) + 1
    for layer in order:
        xs = [None if x is None else values[id(x)] for x in layer._inputs]
        for t, v in zip(layer._outputs, run_layer(layer, xs)):
            values[id(t)] = v
        if not keep_all:
            for x in layer._inputs:
                if x is not None:
                    remaining[id(x)] -= 1
                    if remaining[id(x)] == 0:
                        values.pop(id(x), None)
    return values, order


def execute(network: NetworkCore, inputs: Mapping[str, Any], *, float64: bool = False) -> dict[str, np.ndarray]:
    """Run the network on NumPy arrays keyed by input name; returns the marked outputs keyed by name.

    ``float64``: FLOAT tensors are computed and stored in float64 instead (not a TensorRT mode: the same network
    without float32 rounding, for repogen.verify.noise); HALF tensors stay HALF."""
    token = FLOAT_STORAGE.set(np.dtype(np.float64)) if float64 else None
    try:
        values, _ = _execute(network, inputs, keep_all=False)
    finally:
        if token is not None:
            FLOAT_STORAGE.reset(token)
    return {t.name: values[id(t)] for t in network._outputs}


def execute_all(network: NetworkCore, inputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Like execute, but returns every tensor (inputs, layer outputs) keyed by tensor name, for debugging."""
    values, order = _execute(network, inputs, keep_all=True)
    out = {t.name: values[id(t)] for t in network._inputs}
    for layer in order:
        for t in layer._outputs:
            out[t.name] = values[id(t)]
    return out


def infer_shapes(network: NetworkCore, input_shapes: Mapping[str, Sequence[int]],
                 shape_values: Mapping[str, Sequence[int]] | None = None) -> dict[str, tuple[int, ...]]:
    """Output shapes for concrete input shapes, without running heavy layers where shapes follow statically.

    shape_values gives the values of int inputs that are shape tensors. Falls back to running the
    network on zeros when a shape depends on data.
    """
    network._refresh()
    shape_values = dict(shape_values or {})
    infos: dict[int, Info] = {}
    for t in network._inputs:
        base = t._info
        if t.name in shape_values:
            v = np.asarray(shape_values[t.name], np_dtype(base.dtype))
            infos[id(t)] = Info(base.dtype, tuple(v.shape), [int(x) for x in v.reshape(-1)], v)
        elif t.name in input_shapes:
            shape = tuple(int(d) for d in input_shapes[t.name])
            if len(shape) != len(base.shape) or any(d != -1 and d != s for d, s in zip(base.shape, shape)):
                raise ExecutionError(f"input {t.name!r}", f"shape {shape} does not match the declared {base.shape}")
            infos[id(t)] = Info(base.dtype, shape)
        else:
            raise ExecutionError("infer_shapes", f"no shape given for input {t.name!r}")
    for layer in network._order():
        # a recurrence's back edge (input 1) comes later in the order: its build-time Info stands in
        outs = layer_infer(layer, [None if x is None else infos.get(id(x), x._info) for x in layer._inputs])
        for t, info in zip(layer._outputs, outs):
            infos[id(t)] = info
    result = {t.name: infos[id(t)].shape for t in network._outputs}
    if all(d >= 0 for s in result.values() for d in s):
        return result
    feeds = {}
    for t in network._inputs:
        feeds[t.name] = (np.asarray(shape_values[t.name]) if t.name in shape_values
                         else np.zeros(infos[id(t)].shape, np_dtype(t._info.dtype)))
    return {k: tuple(v.shape) for k, v in execute(network, feeds).items()}
