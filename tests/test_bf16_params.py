"""bfloat16 parameters (repogen/paddle/params.py): widened exactly to float32 on reading, then stored in the
network's precision; a model saved by Paddle with bf16 weights matches Paddle Inference at fp32 (1e-5) and
fp16 (1e-2)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.opcases import Case, Inp, convert_and_compare, saved_programs

B = -1
CASES = {"bf16_linear_conv": Case((Inp("x", (B, 3, 6, 6)),), ({"x": (2, 3, 6, 6)}, {"x": (1, 3, 6, 6)}), fp16=True)}


def build_cases(mode: str) -> dict:
    import paddle
    import paddle.nn.functional as F

    def param(shape, lo, hi, name):
        vals = np.linspace(lo, hi, int(np.prod(shape))).reshape(shape).astype("float32")
        return paddle.create_parameter(list(shape), "bfloat16", name=name,
                                       default_initializer=paddle.nn.initializer.Assign(vals))

    def bf16_linear_conv(x):
        # weights kept in bf16 (as mixed-precision exports carry them), cast to float32 where used
        w = param((4, 3, 3, 3), -0.7, 0.9, "conv_w_bf16")
        b = param((4,), -0.3, 0.25, "conv_b_bf16")
        y = F.conv2d(x, w.astype("float32"), b.astype("float32"), padding=1)
        fc = param((4 * 36, 5), -0.05, 0.06, "fc_w_bf16")
        return paddle.matmul(paddle.flatten(F.relu(y), 1), fc.astype("float32"))

    return {"bf16_linear_conv": bf16_linear_conv}


@pytest.fixture(scope="module")
def programs():
    # Paddle 3.3.1 writes bf16 parameters in PIR programs only (its legacy static matmul refuses the cast)
    return saved_programs(__file__, "bf16_params", modes=("pir", "pir-static"))


def test_bits_widen_exactly():
    from repogen.paddle.params import bf16_to_float32

    bits = np.array([0x3F80, 0xC020, 0x0000, 0x8000, 0x7F80, 0xFF80, 0x0001, 0x4049, 0x7FC0], np.uint16)
    got = bf16_to_float32(bits)
    assert got.dtype == np.float32
    want = [1.0, -2.5, 0.0, -0.0, np.inf, -np.inf, np.float32(2.0 ** -133), 3.140625]
    np.testing.assert_array_equal(got[:8], want)
    assert np.signbit(got[3]) and np.isnan(got[8])


def test_params_read_as_float32(programs):
    from repogen.paddle import load_model

    g = load_model(programs["pir"] / "bf16_linear_conv")
    bf = {n: v for n, v in g.main.values.items() if v.dtype == "bfloat16" and v.const is not None}
    assert len(bf) == 3 and all(v.const.dtype == np.float32 for v in bf.values())
    w = next(v.const for n, v in bf.items() if v.const.shape == (4,))
    # Paddle rounds the float32 initial values to bf16 (8 mantissa bits): within 2^-9 relative, not equal
    want = np.linspace(-0.3, 0.25, 4).astype(np.float32)
    assert np.all(np.abs(w - want) <= np.abs(want) * 2.0 ** -8) and not np.array_equal(w, want)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_bf16_model_matches_paddle(programs, precision):
    failures = convert_and_compare(programs["pir"] / "bf16_linear_conv", CASES["bf16_linear_conv"], precision)
    assert not failures, "\n".join(failures)


def test_bf16_model_static(programs):
    failures = convert_and_compare(programs["pir-static"] / "bf16_linear_conv", CASES["bf16_linear_conv"], "fp32",
                                   static=True)
    assert not failures, "\n".join(failures)
