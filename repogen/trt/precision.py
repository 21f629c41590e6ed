"""The FP16 policy: which ops keep computing in FP32 (see docs/precision.md).

Under ``precision="fp16"`` weights and activations are HALF. An op listed here has its float inputs
cast to FLOAT, computes in FLOAT and its float outputs cast back to HALF: these ops either sum many
terms (the sum loses digits or overflows 65504), take exponentials/logarithms (exp(11.1) already
overflows FP16) or raise to powers.
"""

from __future__ import annotations

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
