"""nearest / bilinear / linear / bicubic interpolation (v1 and v2) as TensorRT resize layers.

Paddle's coordinate rules: align_corners -> src = dst * (in - 1) / (out - 1); otherwise bilinear/linear
with align_mode 0 and bicubic use half-pixel centres, align_mode 1 and nearest use src = dst * in / out.
Nearest rounds down, or half up with align_corners. The output size comes, in falling priority, from
size_tensor, out_size, scale (tensor or attribute) and out_d/out_h/out_w.
"""

from __future__ import annotations

import numpy as np

from repogen.trt import helpers as H
from repogen.trt.converters.conv import to_nchw
from repogen.trt.registry import converter

_MODES = {"nearest_interp": "NEAREST", "bilinear_interp": "LINEAR", "linear_interp": "LINEAR",
          "trilinear_interp": "LINEAR", "bicubic_interp": "CUBIC"}


def _sizes(ctx, op, n: int):
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
            raise ctx.fail("a scale computed at run time is not supported; pass out_size instead")
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


@converter("nearest_interp", "bilinear_interp", "linear_interp", "bicubic_interp", "trilinear_interp")
def interp(ctx, op):
    x, restore = to_nchw(ctx, op, ctx.input(op, "x"))
    n = H.rank(x) - 2
    trt = ctx.trt
    layer = ctx.named(ctx.network.add_resize(x))
    kind = _MODES[op.type]
    layer.resize_mode = getattr(trt.InterpolationMode, kind)
    how, vals = _sizes(ctx, op, n)
    if how == "scale":
        layer.scales = [1.0, 1.0] + list(vals)
    else:
        dims = H.dims_of(ctx, x)[:2] + list(vals)
        if H.is_static(dims):
            layer.shape = tuple(int(d) for d in dims)
        else:
            layer.set_input(1, H.shape_tensor(ctx, dims))
    align_corners = bool(ctx.attr(op, "align_corners", default=False))
    align_mode = int(ctx.attr(op, "align_mode", default=1))
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
