"""Paddle quantization ops -> explicit TensorRT Quantize/Dequantize layers (strongly typed, no calibrator).

Scale conventions. Paddle passes the *range* ``s`` (abs max) and quantizes ``q = round(x * (b / s))`` with
``b = 2^(bits-1) - 1`` (127 for 8 bits); TensorRT passes the *step* and computes ``q = round(x / step)``,
so ``step = s / b``. Dequantizing is ``q * s / b`` in Paddle and ``q * step`` in TensorRT.

Rounding and saturation. TensorRT rounds half to even and saturates to [-128, 127] (IQuantizeLayer docs).
* ``quantize_linear`` (``round_type`` 0 = half to even, ``qmin``/``qmax`` -128/127): identical semantics.
* the ``fake_*`` ops clip ``x`` to [-s, s] first (so q never reaches -128) and round half away from zero
  (``round_type`` 1, their default). The clip is reproduced with a CLIP activation before the Quantize
  layer; the rounding is not: where ``x * b / s`` is exactly a half-integer the result differs by one step
  (``s / b``) from Paddle. Constant inputs (weights) are quantized here in NumPy with Paddle's own rounding,
  so weights are exact; only activations lying exactly on a tie can differ.
* Both sides divide by different float32 expressions (``x / (s/b)`` vs ``(b * (1/s)) * x``), which can move
  a value lying within a few ulps of a tie to the other side: same one-step bound, same rarity.

A scale that is only known at run time (``fake_quantize_dequantize_abs_max`` on an activation, moving
averages outside ``is_test``) cannot feed a TensorRT Quantize layer (its scale must be a build-time
constant); those ops are emulated exactly in float arithmetic (no INT8 kernels, Paddle's rounding).

A ``quantize`` op's result is an integer-valued float tensor in Paddle. The converter binds that float
value (a cast of the INT8 tensor) and remembers the INT8 tensor by value name, so that the following
dequantize op consumes the INT8 tensor directly: the Q/DQ pair TensorRT fuses into INT8 kernels.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from repogen.trt.helpers import tensors as H
from repogen.trt.converter_table import converter, refuse


# --- shared pieces ------------------------------------------------------------------------------------
def _bin_cnt(ctx, op, name: str = "bit_length") -> int:
    bits = ctx.attr(op, name, default=8)
    if isinstance(bits, (list, tuple)):
        bits = bits[0] if bits else 8
    return (1 << (int(bits) - 1)) - 1


def _axis(axis: int | None, rank: int) -> int | None:
    return None if axis is None or int(axis) < 0 else int(axis) % rank


def _view(s: np.ndarray, rank: int, axis: int | None) -> np.ndarray:
    """A per-channel scale shaped to broadcast along ``axis`` of a rank-``rank`` array."""
    if axis is None or s.size == 1:
        return s.reshape(())
    shape = [1] * rank
    shape[axis] = -1
    return s.reshape(shape)


def _step_const(ctx, s: np.ndarray, bin_cnt: int, dtype: Any) -> Any:
    """TensorRT's scale (the step s / b): a 0-D scalar per tensor, 1-D per channel; strictly positive."""
    s = np.asarray(s, np.float32).reshape(-1)
    step = np.where(s > 0, s / np.float32(bin_cnt), np.float32(1.0))  # an all-zero channel quantizes to 0
    return ctx.const(step.reshape(()) if step.size == 1 else step, dtype=dtype)


def _inv(s):
    """Paddle's ``inverse``: 1/s, guarded against a zero scale."""
    s = np.asarray(s, np.float32)
    return np.where(s < 1e-30, np.float32(1) / (s + np.float32(1e-6)), np.float32(1) / np.where(s == 0, 1, s))


def paddle_round(q: np.ndarray, round_type: int) -> np.ndarray:
    """Paddle's rounding: 0 = half to even, 1 = half away from zero."""
    return np.rint(q) if int(round_type) == 0 else np.sign(q) * np.floor(np.abs(q) + np.float32(0.5))


def quantize_array(x: np.ndarray, s: np.ndarray, bin_cnt: int, axis: int | None, round_type: int,
                   clip: bool) -> np.ndarray:
    """Paddle's quantization of a constant, in float32 as its CPU kernel computes it."""
    x = np.asarray(x, np.float32)
    sv = _view(np.asarray(s, np.float32), x.ndim, axis)
    if clip:
        x = np.clip(x, -sv, sv)
    q = paddle_round((np.float32(bin_cnt) * _inv(sv)) * x, round_type)
    return np.clip(q, -bin_cnt - 1, bin_cnt)


def quantize(ctx, x: Any, s: np.ndarray, bin_cnt: int, axis: int | None, clip: bool) -> Any:
    """An INT8 tensor from float x with Paddle range s (per tensor, or per channel along axis)."""
    if clip:
        if np.asarray(s).size == 1:
            v = float(np.asarray(s, np.float32).reshape(-1)[0])
            x = H.activation(ctx, x, "CLIP", -v, v)
        else:
            sv = _view(np.asarray(s, np.float32), H.rank(x), axis)
            x = H.minimum(ctx, H.maximum(ctx, x, ctx.const(-sv, dtype=x.dtype)), ctx.const(sv, dtype=x.dtype))
    layer = ctx.named(ctx.network.add_quantize(x, _step_const(ctx, s, bin_cnt, x.dtype), ctx.trt.DataType.INT8))
    if axis is not None and np.asarray(s).size > 1:
        layer.axis = axis
    return layer.get_output(0)


def dequantize(ctx, q: Any, s: np.ndarray, bin_cnt: int, axis: int | None) -> Any:
    ft = ctx.float_type
    layer = ctx.named(ctx.network.add_dequantize(q, _step_const(ctx, s, bin_cnt, ft), ft))
    if axis is not None and np.asarray(s).size > 1:
        layer.axis = axis
    return layer.get_output(0)


def _needs_emulation(bin_cnt: int) -> bool:
    return bin_cnt != 127  # TensorRT quantizes to INT8 only here (INT4/FP8 are other formats)


def emulate(ctx, x: Any, s: Any, bin_cnt: int, round_type: int, dequant: bool, clip: bool = True) -> Any:
    """Paddle's fake quantization in float arithmetic, for a scale known only at run time (s broadcasts)."""
    if not hasattr(s, "dtype"):
        s = ctx.const(np.asarray(s, np.float32), dtype=x.dtype)
    if clip:
        x = H.minimum(ctx, H.maximum(ctx, x, H.unary(ctx, s, "NEG")), s)
    # Paddle's inverse(): s below 1e-30 gets 1e-6 added before 1/s
    tiny = H.ew(ctx, s, ctx.const(np.full((1,) * H.rank(s), 1e-30, np.float32), dtype=s.dtype), "LESS")
    s_safe = H.select(ctx, tiny, H.add(ctx, s, 1e-6), s)
    q = H.mul(ctx, H.mul(ctx, H.div(ctx, 1.0, s_safe), float(bin_cnt)), x)
    if int(round_type) == 0:
        q = H.unary(ctx, q, "ROUND")
        q = H.minimum(ctx, H.maximum(ctx, q, float(-bin_cnt - 1)), float(bin_cnt))
    else:  # half away from zero: sign(q) * floor(|q| + 0.5)
        q = H.mul(ctx, H.unary(ctx, q, "SIGN"), H.unary(ctx, H.add(ctx, H.unary(ctx, q, "ABS"), 0.5), "FLOOR"))
    return H.div(ctx, H.mul(ctx, q, s), float(bin_cnt)) if dequant else q


def _abs_max(ctx, x: Any, axis: int | None) -> Any:
    """Run-time abs max of x: one value, or one per channel along axis (kept dims, so it broadcasts)."""
    r = H.rank(x)
    axes = [a for a in range(r) if a != axis] if axis is not None else list(range(r))
    return H.reduce(ctx, H.unary(ctx, x, "ABS"), "MAX", axes, True)


def _bind_quantized(ctx, op, q_int8: Any, slot: str) -> None:
    """Bind the integer-valued float result Paddle produces and remember its INT8 source."""
    name = op.output(slot) or next(op.output_names())
    ctx.int8_of[name] = q_int8
    ctx.output(op, ctx.cast(q_int8, H.out_dtype(ctx, op, slot)), slot)


def _bind_scale(ctx, op, slot: str, s: Any) -> None:
    """Auxiliary scale outputs (OutScale...) are bound too, in case a later op reads them."""
    if op.outputs.get(slot):
        ctx.output(op, s if hasattr(s, "dtype") else ctx.const(np.asarray(s, np.float32).reshape(-1)), slot)


def _source_int8(ctx, op, slot: str = "x") -> Any | None:
    """The INT8 tensor behind a dequantize op's input: a quantize op's result or an int8 constant."""
    name = op.input(slot)
    m = ctx.int8_of
    if name in m:
        return m[name]
    c = ctx.const_value(name)
    if c is not None:
        c = np.asarray(c)
        if c.dtype == np.int8:
            return ctx.const(c, dtype=ctx.trt.DataType.INT8)
        if c.dtype.kind == "f" and np.all(np.rint(c) == c) and np.all(np.abs(c) <= 128):
            return ctx.const(c.astype(np.int8), dtype=ctx.trt.DataType.INT8)  # frozen weights stored as float
    return None


def _scale_const(ctx, op, slot: str) -> np.ndarray | None:
    c = ctx.const_value(op.input(slot))
    return None if c is None else np.asarray(c, np.float32).reshape(-1)


def _qdq_const(ctx, op, x: Any, s: np.ndarray, bin_cnt: int, axis: int | None, round_type: int) -> Any:
    """Fake quantize-dequantize with a build-time range s: Q/DQ layers (constants quantized here exactly)."""
    c = ctx.const_value(op.input("x"))
    if c is not None:
        q = ctx.const(quantize_array(c, s, bin_cnt, axis, round_type, clip=True).astype(np.int8),
                      dtype=ctx.trt.DataType.INT8)
    else:
        q = quantize(ctx, x, s, bin_cnt, axis, clip=True)
    return dequantize(ctx, q, s, bin_cnt, axis)


# --- quantize_linear / dequantize_linear (Paddle >= 2.3 QDQ format) ------------------------------------
def _check_zero_point(ctx, op) -> None:
    zp = ctx.const_value(op.input("zero_point"))
    if op.input("zero_point") is not None and zp is None:
        raise ctx.fail("zero_point computed at run time: TensorRT INT8 is symmetric (zero point 0 only)")
    if zp is not None and np.any(np.asarray(zp) != 0):
        raise ctx.fail(f"zero_point {np.asarray(zp).reshape(-1)[:4]} is not 0: TensorRT INT8 is symmetric only")


def _linear_scale(ctx, op) -> np.ndarray:
    s = _scale_const(ctx, op, "scale")
    if s is None:
        raise ctx.fail("scale computed at run time: a TensorRT Quantize/Dequantize scale must be a build-time "
                       "constant")
    return s


@converter("quantize_linear")
def quantize_linear(ctx, op):
    x = ctx.input(op, "x")
    if ctx.attr(op, "only_observer", default=False):
        ctx.output(op, x, "y")
        return
    if not ctx.attr(op, "is_test", default=True):
        raise ctx.fail("is_test=false (training-time scale updates): export the model for inference")
    _check_zero_point(ctx, op)
    s, bin_cnt = _linear_scale(ctx, op), _bin_cnt(ctx, op)
    axis = _axis(ctx.attr(op, "quant_axis", default=-1), H.rank(x)) if s.size > 1 else None
    qmin = int(ctx.attr(op, "qmin", default=-bin_cnt - 1))
    round_type = int(ctx.attr(op, "round_type", default=0))
    if _needs_emulation(bin_cnt):
        sv = ctx.const(_view(s, H.rank(x), axis), dtype=x.dtype)
        ctx.output(op, emulate(ctx, x, sv, bin_cnt, round_type, dequant=False, clip=qmin > -bin_cnt - 1), "y")
        return
    c = ctx.const_value(op.input("x"))
    if c is not None:  # weights quantized at build time with Paddle's own rounding
        q = ctx.const(quantize_array(c, s, bin_cnt, axis, round_type, clip=qmin > -bin_cnt - 1).astype(np.int8),
                      dtype=ctx.trt.DataType.INT8)
    else:
        q = quantize(ctx, x, s, bin_cnt, axis, clip=qmin > -bin_cnt - 1)
    _bind_quantized(ctx, op, q, "y")


@converter("dequantize_linear")
def dequantize_linear(ctx, op):
    if ctx.attr(op, "only_observer", default=False):
        ctx.output(op, ctx.input(op, "x"), "y")
        return
    _check_zero_point(ctx, op)
    s, bin_cnt = _linear_scale(ctx, op), _bin_cnt(ctx, op)
    q = _source_int8(ctx, op)
    ref = q if q is not None else ctx.input(op, "x")
    axis = _axis(ctx.attr(op, "quant_axis", default=-1), H.rank(ref)) if s.size > 1 else None
    if q is None or _needs_emulation(bin_cnt):
        x = ctx.cast(ctx.input(op, "x"), ctx.float_type)
        ctx.output(op, H.div(ctx, H.mul(ctx, x, ctx.const(_view(s, H.rank(x), axis), dtype=x.dtype)),
                             float(bin_cnt)), "y")
        return
    ctx.output(op, dequantize(ctx, q, s, bin_cnt, axis), "y")


# --- fake quantize-dequantize (QAT programs, Paddle slim) ----------------------------------------------
@converter("fake_quantize_dequantize_moving_average_abs_max")
def fake_qdq_moving_average(ctx, op):
    x = ctx.input(op, "x")
    bin_cnt, round_type = _bin_cnt(ctx, op), int(ctx.attr(op, "round_type", default=1))
    s = _scale_const(ctx, op, "in_scale")
    if ctx.attr(op, "is_test", default=True) and s is not None and not _needs_emulation(bin_cnt):
        ctx.output(op, _qdq_const(ctx, op, x, s, bin_cnt, None, round_type))
        _bind_scale(ctx, op, "out_scale", s)
        return
    if ctx.attr(op, "is_test", default=True):
        s_t = ctx.input(op, "in_scale")
    else:  # the training-time update: state' = r*state + 1, accum' = r*accum + max|x|, scale = accum'/state'
        rate = float(ctx.attr(op, "moving_rate", default=0.9))
        accum, state = ctx.input(op, "in_accum"), ctx.input(op, "in_state")
        cur = H.reshape(ctx, _abs_max(ctx, x, None), [1])
        s_t = H.div(ctx, H.add(ctx, H.mul(ctx, accum, rate), cur), H.add(ctx, H.mul(ctx, state, rate), 1.0))
    s_t = H.reshape(ctx, ctx.cast(s_t, x.dtype), [1] * H.rank(x))
    ctx.output(op, emulate(ctx, x, s_t, bin_cnt, round_type, dequant=True))
    _bind_scale(ctx, op, "out_scale", H.reshape(ctx, s_t, [1]))


@converter("fake_quantize_dequantize_abs_max", "fake_channel_wise_quantize_dequantize_abs_max")
def fake_qdq_abs_max(ctx, op):
    x = ctx.input(op, "x")
    bin_cnt, round_type = _bin_cnt(ctx, op), int(ctx.attr(op, "round_type", default=1))
    channel_wise = op.type.startswith("fake_channel_wise")
    axis = _axis(ctx.attr(op, "quant_axis", default=0), H.rank(x)) if channel_wise else None
    c = ctx.const_value(op.input("x"))
    if c is not None and not _needs_emulation(bin_cnt):
        c = np.asarray(c, np.float32)
        axes = tuple(a for a in range(c.ndim) if a != axis)
        s = np.max(np.abs(c), axis=axes).reshape(-1) if c.size else np.zeros(1, np.float32)
        ctx.output(op, _qdq_const(ctx, op, x, s, bin_cnt, axis, round_type))
        _bind_scale(ctx, op, "out_scale", s)
        return
    s_t = _abs_max(ctx, x, axis)  # the scale of this very tensor: known only at run time
    ctx.output(op, emulate(ctx, x, s_t, bin_cnt, round_type, dequant=True))
    _bind_scale(ctx, op, "out_scale", H.reshape(ctx, s_t, [-1]))


@converter("fake_quantize_range_abs_max")
def fake_quantize_range_abs_max(ctx, op):
    x = ctx.input(op, "x")
    bin_cnt, round_type = _bin_cnt(ctx, op), int(ctx.attr(op, "round_type", default=1))
    s = _scale_const(ctx, op, "in_scale")
    if not ctx.attr(op, "is_test", default=True) or s is None:
        raise ctx.fail("needs is_test=true and a constant in_scale (the windowed range is a training-time "
                       "statistic)")
    if _needs_emulation(bin_cnt):
        ctx.output(op, emulate(ctx, x, ctx.const(s.reshape((1,) * H.rank(x)), dtype=x.dtype), bin_cnt,
                               round_type, dequant=False))
    else:
        _bind_quantized(ctx, op, quantize(ctx, x, s, bin_cnt, None, clip=True), "out")
    _bind_scale(ctx, op, "out_scale", s)


@converter("fake_dequantize_max_abs", "dequantize_abs_max")
def fake_dequantize_max_abs(ctx, op):
    # out = x * scale / max_range
    max_range = float(ctx.attr(op, "max_range", default=127.0))
    s = _scale_const(ctx, op, "scale")
    q = _source_int8(ctx, op)
    if q is not None and s is not None and s.size == 1:
        ctx.output(op, dequantize(ctx, q, s * np.float32(127.0 / max_range), 127, None))
        return
    x = ctx.cast(ctx.input(op, "x"), ctx.float_type)
    s_t = ctx.input(op, "scale")
    ctx.output(op, H.div(ctx, H.mul(ctx, x, H.reshape(ctx, s_t, [1] * H.rank(x))), max_range))


@converter("fake_channel_wise_dequantize_max_abs")
def fake_channel_wise_dequantize_max_abs(ctx, op):
    """One scale: per channel along quant_axis. Two (an INT8 conv/mul output): channel scale along
    x_num_col_dims times the activation's scale, over the product of both ranges."""
    scales = [np.asarray(ctx.const_value(n), np.float32).reshape(-1) if ctx.const_value(n) is not None else None
              for n in op.inputs.get("scales") or []]
    if not scales or any(s is None for s in scales):
        raise ctx.fail("scales must be constants")
    bits = ctx.attr(op, "quant_bits", default=[8] * len(scales))
    ranges = [float((1 << (int(b) - 1)) - 1) for b in bits]
    q = _source_int8(ctx, op)
    ref = q if q is not None else ctx.input(op, "x")
    if len(scales) == 1:
        axis = _axis(ctx.attr(op, "quant_axis", default=0), H.rank(ref))
        if q is not None and ranges[0] == 127.0:
            ctx.output(op, dequantize(ctx, q, scales[0], 127, axis if scales[0].size > 1 else None))
            return
        factor, div = _view(scales[0], H.rank(ref), axis if scales[0].size > 1 else None), ranges[0]
    elif len(scales) == 2:
        axis = _axis(ctx.attr(op, "x_num_col_dims", default=1), H.rank(ref))
        factor = _view(scales[0], H.rank(ref), axis if scales[0].size > 1 else None) * scales[1][0]
        div = ranges[0] * ranges[1]
    else:
        raise ctx.fail(f"{len(scales)} scales: Paddle defines one or two")
    x = ctx.cast(ctx.input(op, "x"), ctx.float_type)
    ctx.output(op, H.div(ctx, H.mul(ctx, x, ctx.const(np.asarray(factor, np.float32).reshape(
        np.shape(factor) if np.ndim(factor) else (1,) * H.rank(x)), dtype=x.dtype)), div))


# what these converters refuse (repogen ops --refused, docs/refused.md)
refuse(("quantize_linear", "dequantize_linear"), "a non-zero `zero_point`; a `scale` computed at run time",
       "TensorRT INT8 is symmetric and its Q/DQ scales are build-time constants")
refuse(("quantize_linear", "fake_quantize_range_abs_max"),
       "`is_test=false` (fake_quantize_range_abs_max: also an `in_scale` computed at run time)",
       "training-time scale updates: export the model for inference")
