"""What the converters still refuse, and why: the Paddle op, the attribute (or input) whose value causes it and
the reason TensorRT cannot take it (`repogen ops --refused`, docs/refused.md, generated from REFUSED).

Ops without any converter are listed by `repogen check` / `build` with registry.why_unsupported; this table is
about ops that do convert, except for the attribute values named here.
"""

from __future__ import annotations

from dataclasses import dataclass

_AXIS = ("TensorRT fixes the axis of a concatenation, slice, reduction, gather or TopK when the network is built "
         "(the output's layout depends on it); an axis tensor that folds to a constant is accepted")


@dataclass(frozen=True)
class Refusal:
    ops: tuple[str, ...]
    attribute: str  # the attribute or input, and the value of it that is refused
    why: str


REFUSED: tuple[Refusal, ...] = (
    Refusal(("concat", "split", "split_with_num"), "`axis` computed at run time", _AXIS),
    Refusal(("gather", "argmax", "argmin", "topk", "cumsum", "sum", "mean", "max", "min", "prod", "any", "all"),
            "`axis` computed at run time", _AXIS),
    Refusal(("squeeze", "unsqueeze"), "`axis` / `axes` computed at run time",
            "they decide the output's rank, which TensorRT fixes when building"),
    Refusal(("set_value", "set_value_with_tensor"), "`starts` / `ends` / `steps` computed at run time; `none_axes`",
            "the region mask is built from build-time bounds (slice/strided_slice take run-time bounds and steps)"),
    Refusal(("set_value",), "`values` attribute with more than one value",
            "only a scalar attribute value is spread over the region (a tensor value converts)"),
    Refusal(("index_put",), "`accumulate=True`",
            "TensorRT's scatter has no accumulate mode: duplicate indices would race"),
    Refusal(("index_put",), "a bool mask together with integer index tensors",
            "a bool mask alone converts (select or NonZero + scatter); mixed indexing has no single scatter"),
    Refusal(("put_along_axis",), "`reduce` other than 'assign'", "TensorRT's scatter only assigns"),
    Refusal(("conv2d_transpose", "depthwise_conv2d_transpose"),
            "`output_size` computed at run time, or given with run-time spatial dims",
            "the deconvolution's output padding is a build-time layer parameter"),
    Refusal(("conv2d_transpose", "depthwise_conv2d_transpose", "conv3d_transpose"),
            "`padding_algorithm` SAME with run-time spatial dims",
            "Paddle pads as for the forward convolution, by amounts that depend on the input size; a "
            "deconvolution's padding is a build-time layer parameter (forward conv/pool use TensorRT's SAME_UPPER)"),
    Refusal(("multiclass_nms", "multiclass_nms2", "multiclass_nms3"), "`nms_eta` < 1",
            "an IoU threshold that shrinks as boxes are kept has no TensorRT NMS form"),
    Refusal(("multiclass_nms", "multiclass_nms2", "multiclass_nms3", "matrix_nms"),
            "per-class boxes [N, M, C, 4], LoD boxes, or a class count (scores dim 1) known only at run time",
            "TensorRT's NMS takes boxes shared by the classes and a build-time class count"),
    Refusal(("multiclass_nms", "multiclass_nms2", "multiclass_nms3", "matrix_nms"),
            "`nms_top_k` (or candidates per class) above 3840",
            "TensorRT's TopK limit; a partitioned build (--partition) runs such an NMS in Paddle"),
    Refusal(("roi_align",), "no `boxes_num` (LoD rois)", "LoD tensors have no TensorRT form"),
    Refusal(("max_pool2d_with_index", "max_pool3d_with_index"), "the `mask` (argmax) output used",
            "TensorRT pooling does not return argmax positions"),
    Refusal(("grid_sample",), "a 5-D input (3-D sampling), or a mode / padding_mode TensorRT lacks",
            "TensorRT's GridSample is 2-D (NCHW) only"),
    Refusal(("einsum",), "an equation with an ellipsis (`...`)", "TensorRT's einsum has no ellipsis"),
    Refusal(("rnn",), "`sequence_length` given (per-sample lengths)",
            "masked steps have no TensorRT RNN form: feed padded batches"),
    Refusal(("layer_norm",), "normalized over several dims of which one is known only at run time",
            "the normalization's scale/bias shape is fixed when building"),
    Refusal(("quantize_linear", "dequantize_linear"), "a non-zero `zero_point`; a `scale` computed at run time",
            "TensorRT INT8 is symmetric and its Q/DQ scales are build-time constants"),
    Refusal(("quantize_linear", "fake_quantize_range_abs_max"),
            "`is_test=false` (fake_quantize_range_abs_max: also an `in_scale` computed at run time)",
            "training-time scale updates: export the model for inference"),
    Refusal(("bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_not"), "on a type other than bool / int32 / int64",
            "TensorRT has no such bitwise type"),
)

#: conversions that are accepted but approximate Paddle, with the condition under which they are exact
APPROXIMATE: tuple[Refusal, ...] = (
    Refusal(("nearest_interp", "bilinear_interp", "linear_interp", "bicubic_interp", "trilinear_interp"),
            "bicubic, or align_corners with a `scale_tensor` computed at run time; bicubic with a fractional scale "
            "on run-time dims",
            "TensorRT samples by the length ratio in / out, Paddle by 1 / scale; the two agree where in x scale is "
            "whole (a warning is printed). Nearest and linear modes use Paddle's own coordinates instead "
            "(gathers computed at run time)"),
)


def markdown() -> str:
    """The tables of docs/refused.md."""
    lines = ["| Paddle op | attribute / input value | why |", "|---|---|---|"]
    for r in REFUSED:
        lines.append(f"| {', '.join(f'`{o}`' for o in r.ops)} | {r.attribute} | {r.why} |")
    lines += ["", "Accepted, but exact only under a condition:", "", "| Paddle op | attribute / input value | why |",
              "|---|---|---|"]
    for r in APPROXIMATE:
        lines.append(f"| {', '.join(f'`{o}`' for o in r.ops)} | {r.attribute} | {r.why} |")
    return "\n".join(lines) + "\n"


def as_json() -> list[dict]:
    return [{"ops": list(r.ops), "attribute": r.attribute, "why": r.why, "approximate": r in APPROXIMATE}
            for r in REFUSED + APPROXIMATE]
