"""What a generated Python-backend ``model.py`` runs (also used by ``check`` and the tests, without Triton).

* :class:`NetworkRunner`: a TensorRT region (or the whole model) converted by repogen's converters into
  the NumPy TensorRT backend once, then executed per request: the CPU stand-in for a plan. Request shapes
  outside the optimization profiles are refused, as the plan would refuse them.
* :class:`PaddleOpsRunner`: a remainder region run by Paddle itself, op by op in dynamic mode
  (``paddle._C_ops``, the same phi kernels Paddle Inference runs). Paddle, not the NumPy backend: the
  remainder exists because TensorRT cannot run these ops (no converter) or cannot run them at these shapes
  (layer limits); the NumPy backend implements TensorRT's layers *with* those limits (its NMS layer takes at
  most 5000 candidates, its TopK k <= 3840), so only Paddle runs every remainder op exactly as the reference.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from repogen.errors import ConfigError, RepogenError
from repogen.extras import require
from repogen.ir import Graph
from repogen.partition.regions import Region, cut


class ShapeError(RepogenError):
    """A request whose shapes no optimization profile (of this instance) accepts."""


def profile_error(region: Region, feeds: Mapping[str, np.ndarray], allowed: Sequence[int] | None = None) -> str | None:
    """None when some allowed profile takes every input's shape, else the reason (TensorRT refuses these)."""
    for name, dtype, shape in region.inputs:
        a = feeds.get(name)
        if a is None:
            return f"input {name!r} is missing"
        if a.ndim != len(shape) or any(d >= 0 and d != s for d, s in zip(shape, a.shape)):
            return f"input {name!r}: shape {list(a.shape)} does not match the model's {list(shape)}"
    indices = list(allowed) if allowed else list(range(len(region.profiles)))
    if not region.profiles:
        return None
    problems = []
    for i in indices:
        prof = region.profiles[i]
        bad = [f"{n} {list(feeds[n].shape)} not within min {list(lo)} max {list(hi)}"
               for n, (lo, _, hi) in prof.items() if n in feeds
               and not all(a <= d <= b for a, d, b in zip(lo, feeds[n].shape, hi))]
        if not bad:
            return None
        problems.append(f"profile {i}: " + "; ".join(bad))
    return "request shapes are outside the optimization profile(s) this model was built for: " + " | ".join(problems)


class NetworkRunner:
    """The region's converted TensorRT network on the NumPy backend."""

    def __init__(self, cleaned: Graph, region: Region):
        from repogen.trt import numpy_trt
        from repogen.trt.convert import convert_graph
        from repogen.trt.profiles import Profile

        self.region = region
        self.trt = numpy_trt
        graph = cut(cleaned, region)
        profiles = [Profile({n: tuple(tuple(int(d) for d in s) for s in rng) for n, rng in p.items()})
                    for p in region.profiles]
        if not profiles:  # a draft region being observed: the NumPy backend records profiles, never needs them
            profiles = [Profile({n: (tuple(max(1, d) for d in shape),) * 3 for n, _, shape in region.inputs})]
        self.conversion = convert_graph(graph, numpy_trt, precision=region.precision, profiles=profiles, clean=False)
        names = [n for n, _, _ in self.conversion.outputs]
        self.output_names = dict(zip(names, (n for n, _, _ in region.outputs)))

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        got = self.trt.execute(self.conversion.network, {n: feeds[n] for n, _, _ in self.region.inputs})
        return {self.output_names[k]: np.asarray(got[k]).astype(dtype, copy=False)
                for k, (_, dtype, _) in zip(self.output_names, self.region.outputs)}

    def shapes(self, feeds: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, tuple]]:
        """(outputs, the shape of every graph value the network computed): what the partitioner observes."""
        every = self.trt.execute_all(self.conversion.network, {n: feeds[n] for n, _, _ in self.region.inputs})
        outputs = {self.output_names[k]: np.asarray(every[k]).astype(dtype, copy=False)
                   for k, (_, dtype, _) in zip(self.output_names, self.region.outputs)}
        tensors = self.conversion.context.tensors
        seen = {name: tuple(np.shape(every[t.name])) for name, t in tensors.items() if t.name in every}
        return outputs, seen


# phi argument orders the generated SIGNATURES table lacks (Paddle's ops.pyi leaves these ops out)
_BINARY = ("x", "y")
EXTRA_SIGNATURES: dict[str, tuple[str, ...]] = {
    **{op: _BINARY for op in ("add", "subtract", "multiply", "divide", "maximum", "minimum", "floor_divide",
                              "remainder", "elementwise_pow", "equal", "not_equal", "greater_equal", "greater_than",
                              "less_equal", "less_than")},
    "matmul": ("x", "y", "transpose_x", "transpose_y"),
    "batch_norm": ("x", "mean", "variance", "scale", "bias", "is_test", "momentum", "epsilon", "data_format",
                   "use_global_stats", "trainable_statistics"),
    "softmax": ("x", "axis"),
    "hardswish": ("x",),
    "assign": ("x",),
    "tile": ("x", "repeat_times"),
    "min": ("x", "axis", "keepdim"),
    "arange": ("start", "end", "step", "dtype", "place"),
    "embedding": ("x", "weight", "padding_idx", "sparse"),
}

# _C_ops arguments that take a list of tensors even when the op lists a single one: (op, argument) pairs, and
# arguments that are lists for every op
_LIST_OF_OP = {(op, "x") for op in ("concat", "stack", "add_n", "meshgrid", "broadcast_tensors")}
_LIST_ALWAYS = {"xs", "inputs"}


# argument names the signature table and the reader spell differently
_ALIASES = {"keepdim": "keepdims", "keepdims": "keepdim"}

# passes.fold_conv_bias / fold_batch_norm give these a "bias" input, which phi's conv kernels do not take
_CONV_WITH_FOLDED_BIAS = ("conv2d", "depthwise_conv2d")


def _takes_list(op_type: str, arg: str) -> bool:
    return arg in _LIST_ALWAYS or (op_type, arg) in _LIST_OF_OP


class PaddleOpsRunner:
    """The region's ops, one ``paddle._C_ops`` call each, in graph order."""

    def __init__(self, cleaned: Graph, region: Region):
        # a server without Paddle fails here, at load, with the reason
        paddle = require("paddle", extra="paddle", for_what="a Python remainder model (Paddle runs its ops)")
        _C_ops = require("paddle._C_ops", extra="paddle", for_what="a Python remainder model (Paddle runs its ops)")

        from repogen.paddle.pir_signatures import SIGNATURES

        self.region = region
        self.graph = cut(cleaned, region)
        self.ops = self.graph.ops
        self.calls = []
        produced = set()
        for op in self.ops:
            if op.blocks:
                raise ConfigError(f"op {op.type}: control flow cannot run in a Python remainder model")
            fn = getattr(_C_ops, op.type, None)
            sig = SIGNATURES.get(op.type) or EXTRA_SIGNATURES.get(op.type)
            if fn is None or sig is None:
                raise ConfigError(f"op {op.type}: Paddle {paddle.__version__} has no dynamic-mode kernel call "
                                  "(paddle._C_ops) repogen can run it with")
            sig = list(sig)
            if sig and sig[-1] == "name":
                sig.pop()
            self.calls.append((op, fn, sig))
            produced.update(op.output_names())
        self.constants = self._constants(produced)

    def _constants(self, produced: set[str]) -> dict[str, np.ndarray]:
        """Parameters and folded constants the ops read (not fed, not produced here)."""
        fed = {n for n, _, _ in self.region.inputs}
        out = {}
        for op in self.ops:
            for n in op.input_names():
                if n in fed or n in produced or n in out:
                    continue
                if n in self.graph.params:
                    out[n] = np.asarray(self.graph.params[n])
                    continue
                try:
                    v = self.graph.value(n)
                except KeyError:
                    v = None
                if v is None or v.const is None:
                    raise ConfigError(f"op {op.type}: input {n!r} is neither fed nor known at build time")
                out[n] = np.asarray(v.const)
        return out

    @staticmethod
    def _attr(name: str, value: Any) -> Any:
        paddle = require("paddle", extra="paddle")

        if name == "place":
            return paddle.CPUPlace()
        if name == "dtype" and isinstance(value, str):
            if value.startswith("Undefined"):  # PIR's "same as the input" (full_like)
                return paddle.base.core.DataType.UNDEFINED
            return paddle.base.framework.convert_np_dtype_to_dtype_(value)
        return value

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.shapes(feeds)[0]

    def shapes(self, feeds: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, tuple]]:
        paddle = require("paddle", extra="paddle")

        env: dict[str, Any] = {n: paddle.to_tensor(a) for n, a in self.constants.items()}
        env.update({n: paddle.to_tensor(np.ascontiguousarray(feeds[n])) for n, _, _ in self.region.inputs})
        with paddle.no_grad():
            for op, fn, sig in self.calls:
                args = []
                for a in sig:
                    names = op.inputs.get(a)
                    if names:
                        vals = [env[n] for n in names]
                        args.append(vals if len(vals) != 1 or _takes_list(op.type, a) else vals[0])
                    elif op.inputs.get(a + "_tensor_list"):
                        args.append([env[n] for n in op.inputs[a + "_tensor_list"]])
                    elif a == "place":  # where to allocate: never recorded in a saved model
                        args.append(paddle.CPUPlace())
                    elif a in op.attrs:
                        args.append(self._attr(a, op.attrs[a]))
                    elif _ALIASES.get(a) in op.attrs:
                        args.append(self._attr(a, op.attrs[_ALIASES[a]]))
                    else:
                        args.append(None)
                try:
                    result = fn(*args)
                except Exception as exc:
                    raise RepogenError(f"op {op.type} ({', '.join(op.output_names())}): Paddle: "
                                       f"{' '.join(str(exc).split())[:400]}") from exc
                bias = op.inputs.get("bias") if op.type in _CONV_WITH_FOLDED_BIAS else None
                if bias:  # repogen's clean-up folded an add / batch norm into the conv (no phi argument for it)
                    result = result + env[bias[0]].reshape([1, -1, 1, 1])
                results = list(result) if isinstance(result, (tuple, list)) else [result]
                slots = [names for names in op.outputs.values()]
                if len(slots) == 1 and len(slots[0]) > 1 and len(results) == len(slots[0]):
                    env.update(zip(slots[0], results))
                    continue
                for names, r in zip(slots, results):
                    if names and r is not None:
                        env[names[0]] = r
        outputs = {n: env[n].numpy().astype(dtype, copy=False) for n, dtype, _ in self.region.outputs}
        return outputs, {n: tuple(t.shape) for n, t in env.items()}


def make_runner(cleaned: Graph, region: Region) -> NetworkRunner | PaddleOpsRunner:
    return NetworkRunner(cleaned, region) if region.kind == "tensorrt" else PaddleOpsRunner(cleaned, region)
