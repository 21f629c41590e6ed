"""Tier 3 ops (issue 6) against Paddle: conv3d / conv3d_transpose, pool3d (max/avg, ceil_mode, exclusive,
SAME/VALID, adaptive, channels-last), temporal_shift, shuffle_channel / channel_shuffle, pixel_shuffle /
pixel_unshuffle and deformable_conv (v1 and v2).

Each case is a tiny program saved by Paddle as PIR (dynamic dims), as a 2.x ProgramDesc (legacy op names)
and as PIR with static dims (tests/support/opcases.py); the converted network runs at two shapes and must match
Paddle Inference: floats within 1e-5 relative (1e-2 at fp16).
"""

from __future__ import annotations

import pytest

from tests.support.opcases import Case, Inp, emit_legacy, standard_tests

B = -1  # a dynamic dim


def _one(shape_a, shape_b, name="x", **kw):
    """A single input; dims that differ between the two runs are dynamic."""
    spec = tuple(B if a != b else a for a, b in zip(shape_a, shape_b))
    return (Inp(name, spec, **kw),), ({name: shape_a}, {name: shape_b})


def _case(inputs_runs, fp16=True):
    inputs, runs = inputs_runs
    return Case(inputs, runs, fp16=fp16)


def _deform(x, off, mask, name="x"):
    """x/offset/mask inputs of a deformable conv: (shape run 1, shape run 2) each."""
    inputs = [Inp("x", tuple(B if a != b else a for a, b in zip(*x))),
              Inp("off", tuple(B if a != b else a for a, b in zip(*off)), low=-2.0, high=2.0)]
    runs = [{"x": x[0], "off": off[0]}, {"x": x[1], "off": off[1]}]
    if mask is not None:
        inputs.append(Inp("m", tuple(B if a != b else a for a, b in zip(*mask)), low=0.0, high=1.0))
        runs[0]["m"], runs[1]["m"] = mask
    return Case(tuple(inputs), tuple(runs), fp16=True)


CASES: dict[str, Case] = {
    # --- conv.py
    "conv3d": _case(_one((2, 4, 5, 6, 7), (1, 4, 5, 6, 7))),
    "conv3d_dynamic_spatial": _case(_one((2, 4, 5, 6, 7), (1, 4, 4, 8, 5))),
    "conv3d_transpose": _case(_one((2, 4, 3, 4, 5), (1, 4, 4, 3, 2))),
    "conv3d_transpose_output_size": _case(_one((2, 4, 3, 4, 5), (1, 4, 3, 4, 5))),  # output_size needs static dims
    # --- pool.py
    "pool3d": _case(_one((2, 3, 5, 6, 7), (1, 3, 6, 7, 5))),
    "pool3d_adaptive": _case(_one((2, 3, 5, 6, 7), (1, 3, 7, 4, 9))),
    "pool3d_static_adaptive": _case(_one((2, 3, 6, 6, 8), (1, 3, 6, 6, 8))),  # divisible: one pooling layer
    "avg_pool3d_ceil_inclusive": _case(_one((2, 2, 5, 5, 6), (1, 2, 7, 3, 4))),
    # --- rearrange.py
    "temporal_shift": _case(_one((6, 8, 3, 4), (12, 8, 2, 5))),
    "temporal_shift_small_ratio": _case(_one((6, 3, 2, 2), (12, 3, 2, 2))),
    "channel_shuffle": _case(_one((2, 8, 3, 4), (1, 8, 5, 2))),
    "pixel_shuffle": _case(_one((2, 8, 4, 6), (1, 8, 2, 4))),
    "pixel_unshuffle": _case(_one((2, 8, 4, 6), (1, 8, 4, 6))),  # Paddle requires static H, W here
    # --- deform.py
    "deform_conv_v2": _deform(((2, 4, 6, 7), (1, 4, 6, 7)), ((2, 18, 6, 7), (1, 18, 6, 7)),
                              ((2, 9, 6, 7), (1, 9, 6, 7))),
    "deform_conv_v1_groups": _deform(((2, 4, 6, 7), (1, 4, 6, 7)), ((2, 36, 3, 4), (1, 36, 3, 4)), None),
    "deform_conv_dynamic_spatial": _deform(((2, 4, 5, 7), (1, 4, 8, 3)), ((2, 12, 4, 7), (1, 12, 7, 3)),
                                           ((2, 6, 4, 7), (1, 6, 7, 3))),
}


def build_cases(mode: str) -> dict:
    """Case name -> fn(*inputs); runs in the saving subprocess."""
    import paddle
    import paddle.nn as nn
    import paddle.nn.functional as F
    from paddle.vision.ops import DeformConv2D

    def layers(*ms):
        for m in ms:
            m.eval()
        return ms

    def conv3d(x):
        a, b, c, d, e = layers(
            nn.Conv3D(4, 6, 3, padding=1),
            nn.Conv3D(4, 4, (2, 3, 3), stride=(1, 2, 2), padding=(1, 0, 1), dilation=(1, 1, 2), groups=2),
            nn.Conv3D(4, 3, 3, stride=2, padding="SAME"),
            nn.Conv3D(4, 2, (1, 2, 3), padding=[1, 0, 0, 1, 2, 1], bias_attr=False),
            nn.Conv3D(4, 5, 2, data_format="NDHWC"))
        return a(x), b(x), c(x), d(x), e(x.transpose([0, 2, 3, 4, 1]))

    def conv3d_transpose(x):
        a, b, c = layers(nn.Conv3DTranspose(4, 3, 3, stride=2, padding=1, output_padding=1),
                         nn.Conv3DTranspose(4, 4, (2, 3, 3), stride=(1, 2, 2), groups=2),
                         nn.Conv3DTranspose(4, 2, 2, stride=1, padding=[1, 0, 0, 1, 1, 0], dilation=2))
        return a(x), b(x), c(x)

    def conv3d_transpose_output_size(x):
        a, = layers(nn.Conv3DTranspose(4, 2, 3, stride=2))
        return a(x, output_size=[8, 10, 11])  # (in - 1) * 2 + 3 = [7, 9, 11], plus up to stride - 1

    def pool3d(x):
        return (F.max_pool3d(x, 2, 2), F.max_pool3d(x, 3, 2, padding=1, ceil_mode=True),
                F.avg_pool3d(x, 3, 2, padding=1, exclusive=True), F.avg_pool3d(x, 3, 2, padding=1, exclusive=False),
                F.avg_pool3d(x, 3, 1, padding="SAME"), F.max_pool3d(x, (2, 3, 2), (1, 2, 2), padding="VALID"),
                F.avg_pool3d(x.transpose([0, 2, 3, 4, 1]), 2, 2, data_format="NDHWC"),
                F.adaptive_avg_pool3d(x, 1))

    def pool3d_adaptive(x):
        return (F.adaptive_avg_pool3d(x, [2, 3, 4]), F.adaptive_max_pool3d(x, [3, 2, 2]),
                F.adaptive_avg_pool3d(x.transpose([0, 2, 3, 4, 1]), 2, data_format="NDHWC"))

    def avg_pool3d_ceil_inclusive(x):
        # the last window overhangs input + padding: Paddle divides by the clipped window (test of pool.py's claim)
        return (F.avg_pool3d(x, 2, 2, ceil_mode=True, exclusive=False),
                F.avg_pool3d(x, 3, 2, padding=1, ceil_mode=True, exclusive=False),
                F.avg_pool3d(x, 3, 2, padding=1, ceil_mode=True, exclusive=True))

    def temporal_shift(x):
        return (F.temporal_shift(x, 2, 0.25), F.temporal_shift(x, 3, 0.2), F.temporal_shift(x, 2, 0.3),
                F.temporal_shift(x.transpose([0, 2, 3, 1]), 3, 0.25, data_format="NHWC"))

    def channel_shuffle(x):
        if mode == "legacy":
            shuffled = emit_legacy("shuffle_channel", {"X": [x]}, {"group": 4})
        else:
            shuffled = paddle._C_ops.shuffle_channel(x, 4)
        return (F.channel_shuffle(x, 2), shuffled, F.channel_shuffle(x.transpose([0, 2, 3, 1]), 4, "NHWC"))

    def pixel_shuffle(x):
        return F.pixel_shuffle(x, 2), F.pixel_shuffle(x.transpose([0, 2, 3, 1]), 2, "NHWC")

    def pixel_unshuffle(x):
        return F.pixel_unshuffle(x, 2), F.pixel_unshuffle(x.transpose([0, 2, 3, 1]), 2, "NHWC")

    def deform_conv_v2(x, off, m):
        a, = layers(DeformConv2D(4, 6, 3, padding=1))
        return a(x, off, m)

    def deform_conv_v1_groups(x, off):
        # 2 deformable groups of 2 channels, 2 conv groups; Ho = (6 + 4 - 5) // 2 + 1 = 3, Wo = 4
        a, = layers(DeformConv2D(4, 6, 3, stride=2, padding=2, dilation=2, deformable_groups=2, groups=2))
        return a(x, off)

    def deform_conv_dynamic_spatial(x, off, m):
        # kernel (2, 3), padding (0, 1): K = 6, Ho = H - 1, Wo = W
        a, = layers(DeformConv2D(4, 3, (2, 3), padding=(0, 1), bias_attr=False))
        return a(x, off, m)

    return {
        "conv3d": conv3d,
        "conv3d_dynamic_spatial": conv3d,
        "conv3d_transpose": conv3d_transpose,
        "conv3d_transpose_output_size": conv3d_transpose_output_size,
        "pool3d": pool3d,
        "pool3d_adaptive": pool3d_adaptive,
        "pool3d_static_adaptive": pool3d_adaptive,
        "avg_pool3d_ceil_inclusive": avg_pool3d_ceil_inclusive,
        "temporal_shift": temporal_shift,
        "temporal_shift_small_ratio": lambda x: (F.temporal_shift(x, 2, 0.2), F.temporal_shift(x, 3, 0.4)),
        "channel_shuffle": channel_shuffle,
        "pixel_shuffle": pixel_shuffle,
        "pixel_unshuffle": pixel_unshuffle,
        "deform_conv_v2": deform_conv_v2,
        "deform_conv_v1_groups": deform_conv_v1_groups,
        "deform_conv_dynamic_spatial": deform_conv_dynamic_spatial,
    }


programs, test_fp32_dynamic, test_fp32_static, test_fp16 = standard_tests(__file__, "ops_tier3", CASES)


# --- what the converters refuse, with the op and field named -------------------------------------------
def _convert_one(op_type: str, inputs: dict, attrs: dict, values: dict, params: dict | None = None,
                 outputs: dict | None = None):
    import numpy as np

    from repogen.ir import Block, Graph, ModelSource, Op, Value
    from repogen.trt import numpy_trt
    from repogen.trt.convert import convert_graph
    from repogen.trt.profiles import make_profiles

    outputs = outputs or {"out": ["y"]}
    vals = {n: Value(n, "float32", s) for n, s in values.items()}
    for name, arr in (params or {}).items():
        vals[name] = Value(name, "float32", tuple(np.shape(arr)), persistable=True)
    for slot_names in outputs.values():
        for n in slot_names:
            vals.setdefault(n, Value(n, "float32", None))
    feeds = [n for n in values]
    g = Graph(ModelSource("pir", "m.json", None), [Block(0, -1, [Op(op_type, op_type, inputs, outputs, attrs)], vals)],
              feeds, [n for ns in outputs.values() for n in ns], dict(params or {}))
    ranges = [",".join(f"{n}:{'x'.join(str(d if d >= 0 else 2) for d in s)}" for n, s in values.items())]
    return convert_graph(g, numpy_trt, profiles=make_profiles(g.input_values(), min_shapes=ranges,
                                                              opt_shapes=ranges, max_shapes=ranges))


def test_temporal_shift_needs_static_channels():
    from repogen.errors import ConversionError

    with pytest.raises(ConversionError, match=r"temporal_shift: the channel dim \(axis 1\) must be static"):
        _convert_one("temporal_shift", {"x": ["x"]}, {"seg_num": 2, "shift_ratio": 0.25}, {"x": (-1, -1, 4, 4)})


def test_deformable_conv_checks_offset_channels():
    import numpy as np

    from repogen.errors import ConversionError

    w = np.ones((2, 4, 3, 3), np.float32)
    with pytest.raises(ConversionError, match=r"deformable_conv: offset has 9 channels, expected 2 \* 1 \* 9"):
        _convert_one("deformable_conv", {"x": ["x"], "offset": ["off"], "filter": ["w"]},
                     {"strides": [1, 1], "paddings": [1, 1], "dilations": [1, 1]},
                     {"x": (-1, 4, 5, 5), "off": (-1, 9, 5, 5)}, params={"w": w})


def test_pool3d_with_index_refuses_a_used_mask():
    from repogen.errors import ConversionError

    with pytest.raises(ConversionError, match="argmax mask of max_pool3d_with_index"):
        _convert_one("max_pool3d_with_index", {"x": ["x"]}, {"kernel_size": [2, 2, 2], "strides": [2, 2, 2]},
                     {"x": (-1, 2, 4, 4, 4)}, outputs={"out": ["y"], "mask": ["m"]})
