"""Per-op tests against Paddle: tiny programs saved by Paddle itself in PIR and 2.x format, loaded,
converted with the NumPy backend and compared with Paddle Inference at two input shapes.

Families the zoo nets do not reach with enough variety (convolution, pooling, normalization, activations on
their own) are spelled out here; elementwise/unary/shape/gather/reduce ops are covered per op inside the
zoo's `elementwise` and `tensors` nets (tests/test_models.py compares each of their stacked outputs).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

# case -> (input shape with -1 for dynamic dims, two concrete shapes to run)
IMG = ((-1, 4, -1, -1), [(1, 4, 9, 9), (3, 4, 12, 10)])
STATIC_IMG = ((-1, 4, 9, 11), [(1, 4, 9, 11), (3, 4, 9, 11)])


def _cases():
    """name -> (input spec, fn(x) -> output). Runs inside the saving subprocess (paddle imported there)."""
    import paddle
    import paddle.nn as nn
    import paddle.nn.functional as F

    paddle.seed(0)

    def layer(m, after=None):
        m.eval()
        return lambda x: (after(m(x)) if after else m(x))

    def conv_bn():
        c, b = nn.Conv2D(4, 5, 3, padding=1), nn.BatchNorm2D(5)
        c.eval(), b.eval()
        return lambda x: b(c(x))

    def bn_alone():
        b = nn.BatchNorm2D(4)
        b.eval()
        return lambda x: b(x * 2.0)

    def fn(f):
        return lambda: f

    # name -> (input spec, factory called inside the program guard so parameters land in the program)
    return {
        "conv2d_stride_dilation": (IMG, lambda: layer(nn.Conv2D(4, 6, 3, stride=2, padding=2, dilation=2))),
        "conv2d_groups_bias": (IMG, lambda: layer(nn.Conv2D(4, 8, 3, padding=[1, 0], groups=2))),
        "conv2d_same": (IMG, lambda: layer(nn.Conv2D(4, 4, 3, stride=2, padding="SAME"))),
        "conv2d_valid_asym": (IMG, lambda: layer(nn.Conv2D(4, 4, (3, 2), padding=[0, 1, 2, 0]))),
        "depthwise_conv2d": (IMG, lambda: layer(nn.Conv2D(4, 4, 3, padding=1, groups=4))),
        "conv_bn_fold": (IMG, conv_bn),
        "conv2d_transpose": (IMG, lambda: layer(nn.Conv2DTranspose(4, 3, 4, stride=2, padding=1))),
        "conv2d_transpose_outpad": (IMG, lambda: layer(nn.Conv2DTranspose(4, 2, 3, stride=2, padding=1,
                                                                          output_padding=1))),
        "depthwise_conv2d_transpose": (IMG, lambda: layer(nn.Conv2DTranspose(4, 4, 3, padding=1, groups=4))),
        "max_pool_ceil": (IMG, fn(lambda x: F.max_pool2d(x, 3, stride=2, padding=1, ceil_mode=True))),
        "avg_pool_exclusive": (IMG, fn(lambda x: F.avg_pool2d(x, 3, stride=2, padding=1, exclusive=True))),
        "avg_pool_inclusive": (IMG, fn(lambda x: F.avg_pool2d(x, 2, stride=2, padding=1, exclusive=False))),
        "global_avg_pool": (IMG, fn(lambda x: F.adaptive_avg_pool2d(x, 1))),
        "adaptive_avg_pool_3": (IMG, fn(lambda x: F.adaptive_avg_pool2d(x, 3))),
        "adaptive_max_pool_2": (IMG, fn(lambda x: F.adaptive_max_pool2d(x, 2))),
        "batch_norm": (IMG, bn_alone),
        "layer_norm": (((-1, -1, 8), [(2, 3, 8), (1, 5, 8)]), lambda: layer(nn.LayerNorm(8))),
        "group_norm": (IMG, lambda: layer(nn.GroupNorm(2, 4))),
        "instance_norm": (IMG, lambda: layer(nn.InstanceNorm2D(4))),
        "prelu_channel": (IMG, lambda: layer(nn.PReLU(4, 0.1))),
        "relu6_hardswish": (IMG, fn(lambda x: F.hardswish(F.relu6(x * 6.0)))),
        "softmax_axis1": (IMG, fn(lambda x: F.softmax(x, axis=1))),
        "reshape_from_shape": (IMG, fn(lambda x: paddle.reshape(x, [paddle.shape(x)[0], -1]) * 2.0)),
        "flatten_mean": (IMG, fn(lambda x: paddle.flatten(x, 1).mean(axis=-1))),
        "nearest_interp_scale": (IMG, fn(lambda x: F.interpolate(x, scale_factor=2, mode="nearest"))),
        "bilinear_align_corners": (IMG, fn(lambda x: F.interpolate(x, size=[7, 5], mode="bilinear",
                                                                   align_corners=True))),
        "bilinear_half_pixel": (IMG, fn(lambda x: F.interpolate(x, size=[6, 11], mode="bilinear",
                                                                align_corners=False, align_mode=0))),
        "bilinear_asymmetric": (IMG, fn(lambda x: F.interpolate(x, scale_factor=2, mode="bilinear",
                                                                align_corners=False, align_mode=1))),
        "bicubic": (IMG, fn(lambda x: F.interpolate(x, size=[8, 8], mode="bicubic", align_corners=False))),
        "interp_size_from_shape": (IMG, fn(lambda x: F.interpolate(x, size=paddle.shape(x)[2:] * 2,
                                                                   mode="bilinear"))),
        # whole-number scales keep TensorRT's resize; others take the constant-gather path (static H/W)
        "nearest_scale_1_5": (STATIC_IMG, fn(lambda x: F.interpolate(x, scale_factor=1.5, mode="nearest"))),
        "bilinear_scale_1_5_half_pixel": (STATIC_IMG, fn(lambda x: F.interpolate(
            x, scale_factor=1.5, mode="bilinear", align_corners=False, align_mode=0))),
        "bilinear_scale_0_7_asymmetric": (STATIC_IMG, fn(lambda x: F.interpolate(
            x, scale_factor=0.7, mode="bilinear", align_corners=False, align_mode=1))),
        "nearest_scale_0_7": (STATIC_IMG, fn(lambda x: F.interpolate(x, scale_factor=0.7, mode="nearest"))),
        # align_corners maps by (in - 1) / (out - 1) in Paddle and TensorRT alike: dynamic dims work too
        "bilinear_scale_1_5_align_corners": (IMG, fn(lambda x: F.interpolate(x, scale_factor=1.5, mode="bilinear",
                                                                             align_corners=True))),
        "bilinear_scale_0_7_align_corners": (STATIC_IMG, fn(lambda x: F.interpolate(
            x, scale_factor=0.7, mode="bilinear", align_corners=True))),
        "bicubic_scale_1_7": (STATIC_IMG, fn(lambda x: F.interpolate(x, scale_factor=1.7, mode="bicubic",
                                                                     align_corners=False))),
        "pad_constant_reflect": (IMG, fn(lambda x: F.pad(F.pad(x, [1, 1, 2, 0], value=0.5), [1, 1, 1, 1],
                                                         mode="reflect"))),
        "full_like": (IMG, fn(lambda x: x.mean(axis=[2, 3]) + paddle.full_like(x[:, :, 0, 0], 0.5))),
    }


def save_cases(cases: dict, mode: str, out: str) -> None:
    """Save each case (input spec, factory) as its own inference model under out/<name>/ (in a subprocess)."""
    import paddle

    from tests.support import zoo
    paddle.enable_static()
    if mode != "pir":
        zoo._install_legacy_shims()
    for name, ((shape, _), factory) in cases.items():
        main, startup = paddle.static.Program(), paddle.static.Program()
        with paddle.static.program_guard(main, startup):
            x = paddle.static.data("x", list(shape), "float32")
            y = factory()(x)
            ys = list(y) if isinstance(y, (list, tuple)) else [y]
        exe = paddle.static.Executor(paddle.CPUPlace())
        exe.run(startup)
        _randomize_bn(paddle.static.global_scope(), main, mode)
        paddle.static.save_inference_model(os.path.join(out, name, "inference"), [x], ys, exe, program=main)


def ensure_saved(script: str, key: str) -> dict[str, Path]:
    """Run ``script _save MODE DIR`` once per mode, cached under the zoo's cache root."""
    from tests.support.zoo import cache_root

    root = cache_root() / key
    out = {}
    for mode in ("pir", "legacy"):
        d = root / mode
        if not (d / ".complete").exists():
            root.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(dir=root))
            env = dict(os.environ, FLAGS_enable_pir_api="1" if mode == "pir" else "0", GLOG_minloglevel="2")
            proc = subprocess.run([sys.executable, script, "_save", mode, str(tmp)], env=env,
                                  capture_output=True, text=True, timeout=900)
            assert proc.returncode == 0, proc.stderr[-3000:]
            (tmp / ".complete").write_text("ok")
            try:
                os.rename(tmp, d)
            except OSError:  # another process won the race
                pass
        out[mode] = d
    return out


def _randomize_bn(scope, program, mode):
    """Non-trivial running statistics (mean 0 / variance 1 would hide a swapped slot)."""
    import paddle

    rng = np.random.default_rng(1)
    names = [v.name for v in program.list_vars() if getattr(v, "persistable", False)] if mode != "pir" else []
    if mode == "pir":
        names = [n for n in scope.local_var_names()]
    for n in names:
        is_mean = n.endswith(("_mean", ".w_1"))
        if not (is_mean or n.endswith(("_variance", ".w_2"))):
            continue
        var = scope.find_var(n)
        if var is None:
            continue
        t = var.get_tensor()
        shape = np.array(t).shape
        if len(shape) == 1:
            # centred means keep ReLU nets alive (means >= 0.5 everywhere zero out deep nets)
            lo, hi = (-0.2, 0.2) if is_mean else (0.5, 1.5)
            t.set(rng.uniform(lo, hi, shape).astype("float32"), paddle.CPUPlace())


CASES = ["conv2d_stride_dilation", "conv2d_groups_bias", "conv2d_same", "conv2d_valid_asym", "depthwise_conv2d",
         "conv_bn_fold", "conv2d_transpose", "conv2d_transpose_outpad", "depthwise_conv2d_transpose",
         "max_pool_ceil", "avg_pool_exclusive", "avg_pool_inclusive", "global_avg_pool", "adaptive_avg_pool_3",
         "adaptive_max_pool_2", "batch_norm", "layer_norm", "group_norm", "instance_norm", "prelu_channel",
         "relu6_hardswish", "softmax_axis1", "reshape_from_shape", "flatten_mean", "full_like", "nearest_interp_scale",
         "bilinear_align_corners", "bilinear_half_pixel", "bilinear_asymmetric", "bicubic", "interp_size_from_shape",
         "pad_constant_reflect", "nearest_scale_1_5", "bilinear_scale_1_5_half_pixel", "bilinear_scale_0_7_asymmetric",
         "bicubic_scale_1_7", "nearest_scale_0_7", "bilinear_scale_1_5_align_corners", "bilinear_scale_0_7_align_corners"]
SHAPES = {"layer_norm": [(2, 3, 8), (1, 5, 8)], **{name: STATIC_IMG[1] for name in (
    "nearest_scale_1_5", "bilinear_scale_1_5_half_pixel", "bilinear_scale_0_7_asymmetric", "bicubic_scale_1_7",
    "nearest_scale_0_7", "bilinear_scale_0_7_align_corners")}}


@pytest.fixture(scope="session")
def op_models() -> dict[str, Path]:
    # keyed by this file's content: editing a case re-saves instead of serving a stale cache
    return ensure_saved(__file__, "test_ops-" + hashlib.sha1(Path(__file__).read_bytes()).hexdigest()[:10])


def run_case(model: Path, precision: str, shapes=None):
    """Convert once (dynamic dims kept) and compare with Paddle Inference at each of the shapes."""
    from repogen.paddle import load_model
    from repogen.trt import numpy_trt
    from tests.support.judging import judge
    from repogen.trt.convert import convert_graph
    from repogen.trt.profiles import make_profiles
    from tests.support.zoo import reference_outputs

    graph = load_model(model)
    shapes = shapes or SHAPES.get(model.name, IMG[1])
    lo = [min(d) for d in zip(*shapes)]
    hi = [max(d) for d in zip(*shapes)]
    conv = convert_graph(graph, numpy_trt, precision=precision, profiles=make_profiles(
        graph.input_values(), min_shapes=["x:" + "x".join(map(str, lo))], max_shapes=["x:" + "x".join(map(str, hi))]))
    # the network keeps -1 dims: the same network runs at both shapes
    assert any(d == -1 for d in conv.inputs[0][2])
    results = []
    for i, shape in enumerate(shapes):
        x = np.random.default_rng(i).uniform(-1, 1, shape).astype("float32")
        got = numpy_trt.execute(conv.network, {"x": x})
        ref = list(reference_outputs(model, {"x": x}).values())
        for name, expected in zip(graph.outputs, ref):
            # a constant reference (a dead net) would make the comparison vacuous
            assert expected.size == 1 or np.std(expected) > 0, f"{model.name}: Paddle's output {name} is constant"
            results.append(judge(got[name], expected, precision, name, network=conv.network, feeds={"x": x}))
    return graph, results


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("mode", ["pir", "legacy"])
def test_op_fp32(op_models, case, mode):
    _, results = run_case(op_models[mode] / case, "fp32")
    for r in results:
        assert r.passed, f"{case} ({mode}): {r}"


@pytest.mark.parametrize("case", ["conv2d_stride_dilation", "conv_bn_fold", "conv2d_transpose", "avg_pool_exclusive",
                                  "layer_norm", "group_norm", "softmax_axis1", "adaptive_avg_pool_3",
                                  "bilinear_scale_1_5_half_pixel"])
def test_op_fp16(op_models, case):
    _, results = run_case(op_models["pir"] / case, "fp16")
    for r in results:
        assert r.passed, f"{case} fp16: {r}"


if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "_save":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    save_cases(_cases(), sys.argv[2], sys.argv[3])
