"""grid_sample (legacy grid_sampler) through TensorRT's GridSample layer."""

from __future__ import annotations

from repogen.trt.converter_table import converter, refuse

_MODES = {"bilinear": "LINEAR", "nearest": "NEAREST", "bicubic": "CUBIC"}
_PADDING = {"zeros": "FILL", "border": "CLAMP", "reflection": "REFLECT"}


@converter("grid_sample")
def grid_sample(ctx, op):
    x, grid = ctx.input(op, "x"), ctx.input(op, "grid")
    if len(x.shape) != 4:
        raise ctx.fail(f"grid_sample of a rank-{len(x.shape)} input: TensorRT's GridSample is 2-D (NCHW) only")
    mode = str(ctx.attr(op, "mode", default="bilinear"))
    padding = str(ctx.attr(op, "padding_mode", default="zeros"))
    if mode not in _MODES or padding not in _PADDING:
        raise ctx.fail(f"mode {mode!r} / padding_mode {padding!r} is not supported")
    layer = ctx.named(ctx.network.add_grid_sample(x, ctx.cast(grid, x.dtype)))
    layer.interpolation_mode = getattr(ctx.trt.InterpolationMode, _MODES[mode])
    layer.sample_mode = getattr(ctx.trt.SampleMode, _PADDING[padding])
    layer.align_corners = bool(ctx.attr(op, "align_corners", default=True))
    ctx.output(op, layer.get_output(0))


# what these converters refuse (repogen ops --refused, docs/refused.md)
refuse(("grid_sample",), "a 5-D input (3-D sampling), or a mode / padding_mode TensorRT lacks",
       "TensorRT's GridSample is 2-D (NCHW) only")
