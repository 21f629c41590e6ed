"""The FP16 policy: which ops keep computing in FP32 (see docs/precision.md).

Under ``precision="fp16"`` weights and activations are HALF. An op listed here has its float inputs
cast to FLOAT, computes in FLOAT and its float outputs cast back to HALF: these ops either sum many
terms (the sum loses digits or overflows 65504), take exponentials/logarithms (exp(11.1) already
overflows FP16) or raise to powers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from repogen.ir import Graph, Op

FP32_OPS = frozenset({
    # normalizations and statistics: sums of many squares
    "layer_norm", "group_norm", "instance_norm", "softmax", "log_softmax", "logsumexp",
    # reductions
    "sum", "mean", "prod",
    # exponentials, logarithms, powers
    "exp", "expm1", "log", "log1p", "log2", "log10", "pow", "elementwise_pow", "softplus", "mish",
    "logsigmoid", "rsqrt", "reciprocal",
    # interpolation weights in bicubic are fine, but resize of large images accumulates: keep FP16
})


def keeps_fp32(op_type: str) -> bool:
    return op_type in FP32_OPS


# --- detection: decoded boxes, scores and NMS stay FP32 -------------------------------------------------
#: box decoders and NMS: their inputs and outputs are coordinates (pixels up to thousands, where FP16's step
#: is 2 to 4) and scores whose order and threshold crossings decide which detections survive
DETECTION_OPS = frozenset({
    "yolo_box", "box_coder", "prior_box", "anchor_generator",
    "multiclass_nms", "multiclass_nms2", "multiclass_nms3", "matrix_nms",
})
#: ops cheap enough to run in FP32 when they compute boxes or scores on the way to / from a DETECTION_OPS op:
#: elementwise arithmetic, activations, layout. A convolution or matmul ends the walk (it stays FP16).
_SCORE_PATH_OPS = frozenset({
    "add", "subtract", "multiply", "divide", "maximum", "minimum", "scale", "floor_divide", "remainder",
    "sigmoid", "softmax", "log_softmax", "exp", "log", "sqrt", "rsqrt", "square", "pow", "elementwise_pow", "clip",
    "relu", "relu6", "tanh", "abs", "floor", "ceil", "round", "sign", "hardsigmoid", "silu", "swish",
    "max", "min", "sum", "mean", "argmax", "topk",
    "reshape", "transpose", "concat", "split", "split_with_num", "slice", "strided_slice", "squeeze",
    "unsqueeze", "flatten", "stack", "unstack", "unbind", "gather", "gather_nd", "index_select",
    "take_along_axis", "tile", "expand", "expand_as", "cast", "assign", "where", "full_like",
})


def detection_fp32_ops(graph: "Graph") -> set[int]:
    """ids of the main-block ops kept in FP32 under --fp16 because they decode boxes, compute scores or feed
    NMS: every DETECTION_OPS op, the score-path ops upstream of one (back to a convolution, a matmul or a
    network input) and those downstream of an NMS (selecting or reshaping detections)."""
    ops = graph.ops
    seeds = [op for op in ops if op.type in DETECTION_OPS]
    if not seeds:
        return set()
    producer: dict[str, "Op"] = {}
    consumers: dict[str, list["Op"]] = {}
    for op in ops:
        for n in op.output_names():
            producer[n] = op
        for n in op.input_names():
            consumers.setdefault(n, []).append(op)
    keep = {id(op) for op in seeds}
    stack = [n for op in seeds for n in op.input_names()]
    while stack:  # upstream: where the boxes and scores are computed
        p = producer.get(stack.pop())
        if p is not None and id(p) not in keep and p.type in _SCORE_PATH_OPS:
            keep.add(id(p))
            stack.extend(p.input_names())
    stack = [n for op in seeds if "nms" in op.type for n in op.output_names()]
    while stack:  # downstream of NMS: detections being sliced, scaled or reshaped
        for c in consumers.get(stack.pop(), []):
            if id(c) not in keep and c.type in _SCORE_PATH_OPS:
                keep.add(id(c))
                stack.extend(c.output_names())
    return keep


# --- shape arithmetic stays FP32 --------------------------------------------------------------------------
#: ops that turn a tensor's shape into a value: their results are dimensions, exact in INT32/INT64
SHAPE_OPS = frozenset({"shape", "shape64", "numel", "size"})
#: arithmetic and layout ops that may carry a dimension on to a scale, a size or a slice bound
_SHAPE_PATH_OPS = _SCORE_PATH_OPS - {"softmax", "log_softmax", "argmax", "topk", "sigmoid"}


def shape_fp32_ops(graph: "Graph") -> set[int]:
    """ids of the main-block ops kept in FP32 under --fp16 because they compute with dimensions: every op of
    _SHAPE_PATH_OPS whose inputs are all a tensor's shape, a value computed from one, or a constant (e.g.
    ``paddle.shape(y).astype("float32") * 0.5`` as an interpolation scale). HALF cannot hold 2049, and a
    builder fusing a HALF cast of a shape into FLOAT coordinate math refused such networks (TensorRT-RTX
    1.7 on interp scales known only at run time). An op reading any activation is left alone."""
    derived: set[str] = set()
    keep: set[int] = set()
    for op in graph.ops:
        ins = [n for n in op.input_names() if n]
        if op.type in SHAPE_OPS:
            derived.update(op.output_names())
        elif (op.type in _SHAPE_PATH_OPS and any(n in derived for n in ins)
              and all(n in derived or graph.const(n) is not None for n in ins)):
            keep.add(id(op))
            derived.update(op.output_names())
    return keep
