"""nearest / bilinear / linear / bicubic interpolation (v1 and v2) as TensorRT resize layers.

Paddle's coordinate rules: align_corners -> src = dst * (in - 1) / (out - 1); otherwise bilinear/linear
with align_mode 0 and bicubic use half-pixel centres, align_mode 1 and nearest use src = dst * in / out.
Nearest rounds down, or half up with align_corners. The output size comes, in falling priority, from
size_tensor, out_size, scale (tensor or attribute) and out_d/out_h/out_w. A scale known only at run time (or
a fractional one on run-time dims) samples nearest/linear by Paddle's 1 / scale through run-time gathers.
"""

from __future__ import annotations

import warnings

import numpy as np

from repogen.trt.helpers import tensors as H
from repogen.trt.helpers.layout import to_nchw
from repogen.trt.converter_table import converter, refuse

_MODES = {"nearest_interp": "NEAREST", "bilinear_interp": "LINEAR", "linear_interp": "LINEAR",
          "trilinear_interp": "LINEAR", "bicubic_interp": "CUBIC"}


def _runtime_scaled_dims(ctx, x, scale, n: int) -> list:
    """floor(in * scale) per spatial dim for a scale known only at run time, as Paddle sizes the output;
    computed in FLOAT shape arithmetic and cast back to INT64 (a shape tensor TensorRT accepts)."""
    f32, i64 = ctx.trt.DataType.FLOAT, ctx.trt.DataType.INT64
    scale = ctx.cast(H.reshape(ctx, scale, [-1]), f32)
    dims = H.dims_of(ctx, x)[2:]
    out = []
    for i, d in enumerate(dims):
        s = H.gather_1d(ctx, scale, [i if int(scale.shape[0]) != 1 else 0])
        scaled = H.unary(ctx, H.mul(ctx, ctx.cast(H.dim_tensor(ctx, d), f32), s), "FLOOR")
        out.append(ctx.cast(scaled, i64))
    return out


def _sizes(ctx, op, n: int, x=None):
    """('shape', dims) or ('scale', floats) for the n spatial dims."""
    lst = op.inputs.get("size_tensor") or []
    if lst:
        consts = [ctx.const_value(v) for v in lst]
        return "shape", [int(c.reshape(-1)[0]) if c is not None else H.dim_tensor(ctx, ctx.get(v))
                         for c, v in zip(consts, lst)]
    if op.input("out_size") is not None:
        v = H.int_array(ctx, op, "out_size")
        return "shape", v if isinstance(v, list) else H.split_dims(ctx, v)
    if op.input("scale_tensor") is not None:
        c = ctx.const_value(op.input("scale_tensor"))
        if c is None:
            # computed from shapes, the scale is FLOAT even under --fp16 (precision.shape_fp32_ops): read that
            scale = ctx.float_of(op.input("scale_tensor"))
            scale = ctx.get(op.input("scale_tensor")) if scale is None else scale
            if int(scale.shape[0]) not in (1, n):
                raise ctx.fail(f"scale_tensor must hold 1 or {n} values")
            return "runtime_scale", scale
        s = [float(v) for v in np.asarray(c).reshape(-1)]
        return "scale", s * n if len(s) == 1 else s
    scale = ctx.attr(op, "scale", default=None)
    if isinstance(scale, (int, float)):
        scale = [float(scale)] if scale > 0 else []
    scale = [float(s) for s in (scale or []) if s is not None]
    if scale and all(s > 0 for s in scale):
        return "scale", scale * n if len(scale) == 1 else scale
    names = {1: ["out_w"], 2: ["out_h", "out_w"], 3: ["out_d", "out_h", "out_w"]}[n]
    dims = [int(ctx.attr(op, k, default=-1)) for k in names]
    if any(d <= 0 for d in dims):
        raise ctx.fail("interpolation has no output size (out_size, size_tensor, scale or out_h/out_w)")
    return "shape", dims


def _diverges_from_length_ratio(in_dims, scales, align_corners: bool) -> bool:
    """True where Paddle's source coordinates (ratio 1/scale) differ from TensorRT's (in/out lengths).

    TensorRT maps coordinates with length_original / length_resized even when scales are set; Paddle uses
    1 / scale unless align_corners. The two agree only where in * scale is a whole number."""
    if align_corners:
        return False
    for d, s in zip(in_dims, scales):
        whole = float(d * s).is_integer() if d >= 0 else float(s).is_integer()
        if not whole:
            return True
    return False


def _paddle_taps(kind: str, n_in: int, scale: float, align_mode: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(source indices, weights) per tap for one axis, by Paddle's formulas with ratio 1/scale."""
    n_out = int(np.floor(n_in * scale))
    dst, ratio = np.arange(n_out, dtype=np.float64), 1.0 / scale
    if kind == "NEAREST":
        return [(np.minimum(np.floor(dst * ratio), n_in - 1).astype(np.int32), np.ones(n_out))]
    if kind == "LINEAR":
        src = np.maximum((dst + 0.5) * ratio - 0.5, 0.0) if align_mode == 0 else dst * ratio
        lo = np.minimum(np.floor(src), n_in - 1)
        frac = src - lo
        return [(lo.astype(np.int32), 1.0 - frac), (np.minimum(lo + 1, n_in - 1).astype(np.int32), frac)]
    src = (dst + 0.5) * ratio - 0.5  # bicubic: half-pixel centres, Keys kernel with a = -0.75
    base, a = np.floor(src), -0.75
    taps = []
    for k in (-1, 0, 1, 2):
        d = np.abs(src - (base + k))
        w = np.where(d <= 1, ((a + 2) * d - (a + 3)) * d * d + 1,
                     np.where(d < 2, ((a * d - 5 * a) * d + 8 * a) * d - 4 * a, 0.0))
        taps.append((np.clip(base + k, 0, n_in - 1).astype(np.int32), w))
    return taps


def _resize_by_taps(ctx, x, kind: str, scales, align_mode: int):
    """Separable resize as constant gathers and weighted sums, one spatial axis at a time."""
    for i, s in enumerate(scales):
        axis = 2 + i
        out = None
        for idx, w in _paddle_taps(kind, int(x.shape[axis]), s, align_mode):
            picked = ctx.named(ctx.network.add_gather(x, ctx.const(idx), axis)).get_output(0)
            wshape = [1] * H.rank(x)
            wshape[axis] = len(w)
            term = H.mul(ctx, picked, ctx.const(w.reshape(wshape)))
            out = term if out is None else H.add(ctx, out, term)
        x = out
    return x


def _resize_by_runtime_taps(ctx, x, kind: str, scale, n: int, align_mode: int):
    """Nearest / linear resize by Paddle's formulas on spatial dims or scales known only at run time: per axis,
    out = floor(in * scale), ratio = 1 / scale, source coordinates from an iota of the output positions, two
    gathers and a lerp (linear) or one gather (nearest). TensorRT's resize would use in / out instead."""
    f32, i64 = ctx.trt.DataType.FLOAT, ctx.trt.DataType.INT64
    scale = ctx.cast(H.reshape(ctx, scale, [-1]), f32)
    for i in range(n):
        axis = 2 + i
        s = H.gather_1d(ctx, scale, [i if int(scale.shape[0]) != 1 else 0])  # [1]
        n_in = H.dims_of(ctx, x)[axis]
        n_in_f = ctx.cast(H.dim_tensor(ctx, n_in), f32)
        n_out = H.reshape(ctx, ctx.cast(H.unary(ctx, H.mul(ctx, n_in_f, s), "FLOOR"), i64), [1])
        ratio = H.div(ctx, ctx.const(np.ones(1, np.float32), dtype=f32), s)
        k = H.iota(ctx, n_out, f32)
        last = H.sub(ctx, H.dim_tensor(ctx, n_in), 1)
        view = [1] * H.rank(x)
        view[axis] = -1
        if kind == "NEAREST":
            idx = H.minimum(ctx, ctx.cast(H.unary(ctx, H.mul(ctx, k, ratio), "FLOOR"), i64), last)
            x = ctx.named(ctx.network.add_gather(x, idx, axis)).get_output(0)
            continue
        src = H.sub(ctx, H.mul(ctx, H.add(ctx, k, 0.5), ratio), 0.5) if align_mode == 0 else H.mul(ctx, k, ratio)
        src = H.maximum(ctx, src, 0.0)
        lo = H.minimum(ctx, ctx.cast(H.unary(ctx, src, "FLOOR"), i64), last)
        hi = H.minimum(ctx, H.add(ctx, lo, 1), last)
        frac = ctx.cast(H.reshape(ctx, H.sub(ctx, src, ctx.cast(lo, f32)), view), x.dtype)
        a = ctx.named(ctx.network.add_gather(x, lo, axis)).get_output(0)
        b = ctx.named(ctx.network.add_gather(x, hi, axis)).get_output(0)
        x = H.add(ctx, a, H.mul(ctx, H.sub(ctx, b, a), frac))
    return x


@converter("nearest_interp", "bilinear_interp", "linear_interp", "bicubic_interp", "trilinear_interp")
def interp(ctx, op):
    x, restore = to_nchw(ctx, op, ctx.input(op, "x"))
    n = H.rank(x) - 2
    trt = ctx.trt
    kind = _MODES[op.type]
    how, vals = _sizes(ctx, op, n, x)
    align_corners = bool(ctx.attr(op, "align_corners", default=False))
    align_mode = int(ctx.attr(op, "align_mode", default=1))
    if how == "runtime_scale":
        if kind != "CUBIC" and not align_corners:  # Paddle's own coordinates, computed at run time
            ctx.output(op, restore(_resize_by_runtime_taps(ctx, x, kind, vals, n, align_mode)), slot="output")
            return
        # TensorRT maps coordinates by the length ratio; Paddle by 1 / scale: equal where in * scale is whole
        warnings.warn(f"{op.type} #{ctx.position}: a scale known only at run time matches Paddle where input size "
                      "x scale is a whole number (TensorRT samples by length ratio)", stacklevel=2)
        how, vals = "shape", _runtime_scaled_dims(ctx, x, vals, n)
    if how == "scale" and _diverges_from_length_ratio(list(x.shape[2:]), vals, align_corners):
        if all(d >= 0 for d in x.shape[2:]):
            ctx.output(op, restore(_resize_by_taps(ctx, x, kind, vals, align_mode)), slot="output")
            return
        if kind != "CUBIC":
            scale = ctx.const(np.asarray(vals, np.float32), dtype=ctx.trt.DataType.FLOAT)
            ctx.output(op, restore(_resize_by_runtime_taps(ctx, x, kind, scale, n, align_mode)), slot="output")
            return
        warnings.warn(f"{op.type} #{ctx.position}: scale {vals} on spatial dims known only at run time matches "
                      "Paddle only where input size x scale is a whole number (TensorRT samples by length ratio)",
                      stacklevel=2)
    layer = ctx.named(ctx.network.add_resize(x))
    layer.resize_mode = getattr(trt.InterpolationMode, kind)
    if how == "scale":
        layer.scales = [1.0, 1.0] + list(vals)
    else:
        dims = H.dims_of(ctx, x)[:2] + list(vals)
        if H.is_static(dims):
            layer.shape = tuple(int(d) for d in dims)
        else:
            layer.set_input(1, H.shape_tensor(ctx, dims))
    T = trt.ResizeCoordinateTransformation
    if align_corners:
        layer.coordinate_transformation = T.ALIGN_CORNERS
    elif kind == "CUBIC" or (kind == "LINEAR" and align_mode == 0):
        layer.coordinate_transformation = T.HALF_PIXEL
    else:
        layer.coordinate_transformation = T.ASYMMETRIC
    if kind == "NEAREST":
        layer.nearest_rounding = trt.ResizeRoundMode.HALF_UP if align_corners else trt.ResizeRoundMode.FLOOR
    if kind == "CUBIC":
        layer.cubic_coeff = -0.75
    layer.selector_for_single_pixel = trt.ResizeSelector.FORMULA
    ctx.output(op, restore(layer.get_output(0)), slot="output")


# what these converters refuse (repogen ops --refused, docs/refused.md)
refuse(("nearest_interp", "bilinear_interp", "linear_interp", "bicubic_interp", "trilinear_interp"),
       "bicubic, or align_corners with a `scale_tensor` computed at run time; bicubic with a fractional scale on "
       "run-time dims",
       "TensorRT samples by the length ratio in / out, Paddle by 1 / scale; the two agree where in x scale is whole "
       "(a warning is printed). Nearest and linear modes use Paddle's own coordinates instead (gathers computed "
       "at run time)", approximate=True)
