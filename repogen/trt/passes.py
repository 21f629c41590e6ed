"""Graph clean-up before conversion: dropout removal, conv bias / batch-norm folding, constant folding of
shape-only subgraphs, dead-code elimination. Works on a copy; the reader's graph is left untouched."""

from __future__ import annotations

import copy
from collections import Counter

import numpy as np

from repogen.ir import Block, Graph, Op, Value
from repogen.trt.helpers.weights import batch_norm_coefficients

#: ops worth folding when every input is known: shape arithmetic, small constants
FOLDABLE = frozenset({
    "shape", "shape64", "slice", "strided_slice", "concat", "stack", "cast", "scale", "add", "subtract",
    "multiply", "divide", "floor_divide", "remainder", "maximum", "minimum", "full", "full_int_array",
    "full_like", "assign", "assign_value", "reshape", "squeeze", "unsqueeze", "gather", "prod", "sum",
    "flatten", "expand", "tile", "unbind", "unstack", "split", "split_with_num", "transpose",
})
FOLD_MAX_ELEMENTS = 4096  # larger results stay in the network: folding them only bloats the plan


def clean_graph(graph: Graph) -> Graph:
    g = _copy(graph)
    remove_dropout(g)
    fold_constants(g)  # first: a conv bias often reaches its add through a reshape of the parameter
    fold_conv_bias(g)
    fold_batch_norm(g)
    eliminate_dead_code(g)
    return g


def _copy(graph: Graph) -> Graph:
    blocks = [Block(b.index, b.parent, [copy.copy(op) for op in b.ops], dict(b.values)) for b in graph.blocks]
    return Graph(graph.source, blocks, list(graph.inputs), list(graph.outputs), graph.params)


def _consumers(g: Graph) -> Counter:
    uses: Counter = Counter()
    for block in g.blocks:
        for op in block.ops:
            for n in op.input_names():
                uses[n] += 1
    for n in g.outputs:
        uses[n] += 1
    return uses


def _rename_uses(g: Graph, old: str, new: str) -> None:
    for block in g.blocks:
        for op in block.ops:
            op.inputs = {k: [new if n == old else n for n in v] for k, v in op.inputs.items()}


def _new_const(g: Graph, name: str, arr: np.ndarray) -> str:
    g.main.values[name] = Value(name, str(arr.dtype), tuple(arr.shape), persistable=True, const=arr)
    return name


def remove_dropout(g: Graph) -> None:
    """Inference dropout: upscale_in_train is the identity, downgrade_in_infer scales by 1 - p."""
    keep = []
    for op in g.ops:
        if op.type != "dropout":
            keep.append(op)
            continue
        mode = str(op.attrs.get("mode", op.attrs.get("dropout_implementation", "downgrade_in_infer")))
        p = op.attrs.get("p")
        if p is None:
            c = g.const(op.input("p"))
            p = float(c.reshape(-1)[0]) if c is not None else 0.5
        x, out = op.input("x"), op.output("out")
        if mode == "upscale_in_train" or float(p) == 0.0:
            if out in g.outputs:
                keep.append(Op("assign", "dropout", {"x": [x]}, {"out": [out]}))
            else:
                _rename_uses(g, out, x)
            continue
        keep.append(Op("scale", "dropout", {"x": [x]}, {"out": [out]},
                       {"scale": 1.0 - float(p), "bias": 0.0, "bias_after_scale": True}))
    g.main.ops[:] = keep


def _single_consumer(g: Graph, uses: Counter, name: str, types: tuple[str, ...]):
    if uses[name] != 1 or name in g.outputs:
        return None
    for op in g.ops:
        if name in list(op.input_names()):
            return op if op.type in types else None
    return None


def _is_conv(op: Op) -> bool:
    return op.type in ("conv2d", "depthwise_conv2d") and str(op.attrs.get("data_format", "NCHW")) == "NCHW"


def fold_conv_bias(g: Graph) -> None:
    """conv2d followed by `add` of a per-output-channel constant becomes a conv with a bias."""
    uses = _consumers(g)
    removed = set()
    for op in list(g.ops):
        if not _is_conv(op) or op.input("bias") is not None:
            continue
        w = g.const(op.input("filter"))
        add = _single_consumer(g, uses, op.output("out"), ("add",))
        if w is None or add is None or add.input("x") != op.output("out"):
            continue
        b = g.const(add.input("y"))
        oc = w.shape[0]
        axis = int(add.attrs.get("axis", -1))
        if b is None or b.size != oc:
            continue
        if not (b.shape == (oc,) and axis == 1) and b.shape not in ((1, oc, 1, 1), (oc, 1, 1)):
            continue
        op.inputs = dict(op.inputs, bias=[_new_const(g, add.input("y") + "@bias", b.reshape(oc).astype(np.float32))])
        op.outputs = dict(op.outputs, out=[add.output("out")])
        removed.add(id(add))
    g.main.ops[:] = [o for o in g.ops if id(o) not in removed]


def fold_batch_norm(g: Graph) -> None:
    """conv -> batch_norm (its only consumer, inference statistics) becomes one conv: W' = W * a, b' = b * a + c."""
    uses = _consumers(g)
    removed = set()
    for op in list(g.ops):
        if not _is_conv(op):
            continue
        w = g.const(op.input("filter"))
        bn = _single_consumer(g, uses, op.output("out"), ("batch_norm",))
        if w is None or bn is None or str(bn.attrs.get("data_format", "NCHW")) != "NCHW":
            continue
        if bn.attrs.get("use_global_stats") is False and bn.attrs.get("is_test") is False:
            continue  # training-mode statistics: not an affine map
        # the other batch_norm outputs (running stats) must be unused
        # (legacy programs write MeanOut/VarianceOut in place over Mean/Variance: bn's own reads don't count)
        others = {n for slot, names in bn.outputs.items() if slot != "out" for n in names}
        if others & set(g.outputs) or any(o is not bn and others & set(o.input_names()) for o in g.ops):
            continue
        params = [g.const(bn.input(s)) for s in ("mean", "variance", "scale", "bias")]
        if params[0] is None or params[1] is None:
            continue
        c = w.shape[0]
        mean, var = params[0].astype(np.float64), params[1].astype(np.float64)
        scale = np.ones(c) if params[2] is None else params[2].astype(np.float64)
        shift = np.zeros(c) if params[3] is None else params[3].astype(np.float64)
        a, b = batch_norm_coefficients(mean, var, scale, shift, float(bn.attrs.get("epsilon", 1e-5)))
        old_bias = g.const(op.input("bias"))
        if old_bias is not None:
            b = b + old_bias.astype(np.float64).reshape(-1) * a
        w2 = (w.astype(np.float64) * a.reshape(-1, *([1] * (w.ndim - 1)))).astype(w.dtype)
        base = op.input("filter")
        op.inputs = dict(op.inputs, filter=[_new_const(g, base + "@bnfold", w2)],
                         bias=[_new_const(g, base + "@bnfold_bias", b.astype(np.float32))])
        op.outputs = dict(op.outputs, out=[bn.output("out")])
        removed.add(id(bn))
    g.main.ops[:] = [o for o in g.ops if id(o) not in removed]


def fold_constants(g: Graph) -> None:
    """Evaluate ops whose inputs are all known (shape of a static value counts) and are small.

    The evaluation runs the op's own converter on the NumPy backend, so folding and conversion can never
    disagree on an op's meaning.
    """
    from repogen.trt import numpy_trt
    from repogen.trt.fold import evaluate_op

    keep = []
    for op in g.ops:
        if op.type not in FOLDABLE or op.blocks:
            keep.append(op)
            continue
        names = list(op.input_names())
        known = {}
        for n in names:
            c = g.const(n)
            if c is None and op.type in ("shape", "shape64"):
                v = g.value(n)
                if v.is_static:
                    known[n] = None  # only its shape is needed
                    continue
            if c is None:
                break
            known[n] = c
        else:
            try:
                results = evaluate_op(g, op, known, numpy_trt)
            except Exception:  # folding is an optimization: the converter will handle (or report) it
                results = None
            if results is not None and all(r.size <= FOLD_MAX_ELEMENTS for r in results.values()):
                for name, arr in results.items():
                    v = g.value(name)
                    g.main.values[name] = Value(name, v.dtype, tuple(arr.shape), v.persistable,
                                                arr.astype(v.dtype) if v.dtype != "bfloat16" else arr)
                continue
        keep.append(op)
    g.main.ops[:] = keep


def eliminate_dead_code(g: Graph) -> None:
    """Drop ops none of whose outputs reach a graph output."""
    live = set(g.outputs)
    keep = []
    for op in reversed(g.ops):
        if op.blocks or any(n in live for n in op.output_names()):
            keep.append(op)
            live.update(op.input_names())
    g.main.ops[:] = list(reversed(keep))
