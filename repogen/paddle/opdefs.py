"""The canonical op vocabulary: PIR/phi names for ops, slots and attributes, and how legacy ops map to it.

Each OpDef lists the PIR operand order (tensor inputs first, then the IntArray/Scalar arguments a PIR
program passes as operands), the output slots, and for each legacy (ProgramDesc) spelling how its slots and
attributes are renamed. docs/ir.md carries a table generated from OPS (tests check the two agree).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Mutable:
    """An IntArray/Scalar argument and where a legacy op may carry it."""

    name: str
    attr: str | None = None  # legacy attribute holding a constant
    tensor: str | None = None  # legacy input slot holding one 1-D tensor
    tensor_list: str | None = None  # legacy input slot holding a list of scalar tensors


@dataclass(frozen=True)
class Legacy:
    name: str
    slots: dict[str, str] = field(default_factory=dict)  # legacy slot -> canonical slot (overrides only)
    attrs: dict[str, str | None] = field(default_factory=dict)  # legacy attr -> canonical attr; None drops
    mutables: tuple[Mutable, ...] = ()
    set_attrs: dict[str, object] = field(default_factory=dict)  # attrs implied by the legacy op name


@dataclass(frozen=True)
class OpDef:
    type: str
    inputs: tuple[str, ...]  # PIR operand order
    outputs: tuple[str, ...]
    legacy: tuple[Legacy, ...] = ()
    tier: int = 1
    note: str = ""


@functools.lru_cache(maxsize=4096)
def snake(name: str) -> str:
    """Default legacy slot rename: ``X`` -> ``x``, ``MeanOut`` -> ``mean_out``, ``ROIs`` -> ``rois``."""
    s = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name)
    return s.lower()


# legacy attrs dropped everywhere: framework bookkeeping, not semantics
LEGACY_NOISE_ATTRS = frozenset({
    "op_role", "op_role_var", "op_namescope", "op_callstack", "op_device", "with_quant_attr", "use_mkldnn",
    "use_cudnn", "use_quantizer", "mkldnn_data_type", "is_test", "use_onednn", "onednn_data_type",
    "workspace_size_MB", "exhaustive_search", "fuse_relu_before_depthwise_conv", "use_addto",
    "force_fp32_output", "fuse_alpha", "fuse_beta", "fuse_activation", "fuse_residual_connection",
    "Scale_in", "Scale_out", "Scale_in_eltwise", "Scale_weights", "x_data_format", "y_data_format",
    "Scale_x", "Scale_y", "skip_quant", "struct_name", "force_cpu", "place_type",
})
# legacy output slots that only served the backward pass (``XShape`` of reshape2/transpose2/...)
LEGACY_NOISE_SLOTS = frozenset({"XShape"})
# legacy-only attributes that survive canonicalization on purpose (converters must honour them)
LEGACY_ONLY_ATTRS = {"axis": "elementwise and compare ops: broadcast Y from this axis of X (-1 = numpy)",
                     "alpha": "legacy matmul (v1): output multiplier"}

OPS: dict[str, OpDef] = {}
LEGACY: dict[str, tuple[OpDef, Legacy]] = {}


def _add(type_: str, inputs: str, outputs: str = "out", *legacy: Legacy, tier: int = 1, note: str = "") -> None:
    d = OpDef(type_, tuple(inputs.split()), tuple(outputs.split()), tuple(legacy), tier, note)
    OPS[type_] = d
    for lg in legacy:
        LEGACY[lg.name] = (d, lg)


def L(name: str, slots: str = "", attrs: str = "", mutables: tuple[Mutable, ...] = (),
      set_attrs: dict | None = None) -> Legacy:
    """Build a Legacy from compact "Old=new Old2=new2" strings ("Old=" drops an attr)."""
    def pairs(s: str) -> dict:
        return {k: (v or None) for k, v in (p.split("=") for p in s.split())}
    return Legacy(name, pairs(slots), pairs(attrs), mutables, set_attrs or {})


M = Mutable
_OUT_Y = "Y=out"
_OUTPUT = "Output=out"

# --- structure --------------------------------------------------------------------------------------
_add("assign", "x", "out", L("assign"))
_add("assign_value", "output", "out", L("assign_value", attrs="fp32_values= int32_values= int64_values= bool_values="),
     note="legacy typed value lists are merged into `values`")
_add("full", "", "out", L("fill_constant", attrs="str_value=",
                           mutables=(M("shape", "shape", "ShapeTensor", "ShapeTensorList"),
                                     M("value", "value", "ValueTensor"))),
     note="PIR `shape`/`value` are attributes; legacy `dtype` is a VarType code, converted to a dtype name")
_add("full_int_array", "", "out", note="PIR only; output carries Value.const")
_add("full_like", "x value", "out", L("fill_any_like", mutables=(M("value", "value"),)))
_add("full_batch_size_like", "input", "out", L("fill_constant_batch_size_like", attrs="str_value="))
_add("full_with_tensor", "value shape", "out", note="PIR only: full with a run-time value and shape (nn.LSTM states)")
_add("shape", "input", "out", L("shape"))
_add("shape64", "input", "out", L("shape64"))
_add("cast", "x", "out", L("cast", attrs="out_dtype=dtype in_dtype="))
_add("dropout", "x seed_tensor p", "out mask",
     L("dropout", slots="Seed=seed_tensor", attrs="dropout_implementation=mode fix_seed= seed=",
       mutables=(M("p", "dropout_prob"),)))

# --- convolution / pooling / normalization -----------------------------------------------------------
_add("conv2d", "input filter", "out", L("conv2d", slots=_OUTPUT))
_add("depthwise_conv2d", "input filter", "out", L("depthwise_conv2d", slots=_OUTPUT))
_add("conv3d", "input filter", "out", L("conv3d", slots=_OUTPUT), tier=3)
_add("conv3d_transpose", "x filter", "out", L("conv3d_transpose", slots="Input=x " + _OUTPUT), tier=3,
     note="PIR keeps `output_size` an attribute here (conv2d_transpose takes it as an operand)")
_add("conv2d_transpose", "x filter output_size", "out",
     L("conv2d_transpose", slots="Input=x " + _OUTPUT, mutables=(M("output_size", "output_size"),)),
     note="legacy optional `Bias` input becomes slot `bias`")
_add("depthwise_conv2d_transpose", "x filter output_size", "out",
     L("depthwise_conv2d_transpose", slots="Input=x " + _OUTPUT, mutables=(M("output_size", "output_size"),)))
_add("pool2d", "x kernel_size", "out", L("pool2d", mutables=(M("kernel_size", "ksize"),)))
_add("pool3d", "x", "out", L("pool3d", attrs="ksize=kernel_size"), tier=3)
_add("max_pool2d_with_index", "x", "out mask", L("max_pool2d_with_index", attrs="ksize=kernel_size"))
_add("max_pool3d_with_index", "x", "out mask", L("max_pool3d_with_index", attrs="ksize=kernel_size"), tier=3)
_add("batch_norm", "x mean variance scale bias", "out mean_out variance_out saved_mean saved_variance reserve_space",
     L("batch_norm", slots=_OUT_Y + " MomentumTensor=momentum_tensor", attrs="data_layout=data_format"))
_add("layer_norm", "x scale bias", "out mean variance", L("layer_norm", slots=_OUT_Y))
_add("group_norm", "x scale bias", "y mean variance", L("group_norm", attrs="data_layout=data_format"))
_add("instance_norm", "x scale bias", "y saved_mean saved_variance", L("instance_norm"))
_add("affine_channel", "x scale bias", "out", L("affine_channel", attrs="data_layout=data_format"))
_add("p_norm", "x", "out", L("p_norm"), tier=2)

# --- elementwise binary ----------------------------------------------------------------------------
for _canon, _legacy in [("add", "elementwise_add"), ("subtract", "elementwise_sub"),
                        ("multiply", "elementwise_mul"), ("divide", "elementwise_div"),
                        ("elementwise_pow", "elementwise_pow"), ("maximum", "elementwise_max"),
                        ("minimum", "elementwise_min"), ("remainder", "elementwise_mod"),
                        ("floor_divide", "elementwise_floordiv")]:
    _add(_canon, "x y", "out", L(_legacy), note="legacy keeps `axis` (default -1: numpy broadcasting)")

for _name in ["equal", "not_equal", "less_than", "less_equal", "greater_than", "greater_equal",
              "logical_and", "logical_or", "logical_xor", "bitwise_and", "bitwise_or", "bitwise_xor"]:
    _add(_name, "x y", "out", L(_name), tier=2)

# --- activations and unary math -------------------------------------------------------------------
for _name in ["relu", "relu6", "sigmoid", "tanh", "silu", "exp", "log", "sqrt", "rsqrt", "abs", "floor", "ceil",
              "round", "sign", "reciprocal", "erf", "sin", "cos", "square", "softsign", "tan", "asin", "acos",
              "atan", "sinh", "cosh", "log2", "log10", "log1p", "expm1", "logsigmoid"]:
    _add(_name, "x", "out", L(_name))
for _name in ["logical_not", "bitwise_not"]:
    _add(_name, "x", "out", L(_name), tier=2)
_add("isnan", "x", "out", L("isnan_v2"), tier=2)
_add("leaky_relu", "x", "out", L("leaky_relu", attrs="alpha=negative_slope"))
_add("hardswish", "x", "out", L("hard_swish", attrs="threshold= scale= offset="),
     note="legacy threshold/scale/offset are fixed at 6/6/3 in phi and dropped")
_add("hardsigmoid", "x", "out", L("hard_sigmoid"))
_add("gelu", "x", "out", L("gelu"))
_add("elu", "x", "out", L("elu"))
_add("selu", "x", "out", L("selu"))
_add("softplus", "x", "out", L("softplus"))
_add("swish", "x", "out", L("swish", attrs="beta="))
_add("mish", "x", "out", L("mish", attrs="threshold=lambda"))
_add("prelu", "x alpha", "out", L("prelu"))
_add("hardtanh", "x", "out", L("brelu", attrs="t_min=t_min t_max=t_max"))
_add("hardshrink", "x", "out", L("hard_shrink"))
_add("thresholded_relu", "x", "out", L("thresholded_relu"))
_add("pow", "x y", "out", L("pow", slots="FactorTensor=factor_tensor", attrs="factor=y"),
     note="`y` is the float exponent attribute; a legacy FactorTensor input becomes `factor_tensor`")
_add("scale", "x scale", "out", L("scale", slots="BiasTensor=bias_tensor", mutables=(M("scale", "scale", "ScaleTensor"),)))
_add("clip", "x min max", "out", L("clip", mutables=(M("min", "min", "Min"), M("max", "max", "Max"))))
_add("softmax", "x", "out", L("softmax"))
_add("log_softmax", "x", "out", L("log_softmax"))

# --- matmul family -----------------------------------------------------------------------------------
_add("matmul", "x y", "out",
     L("matmul_v2", attrs="trans_x=transpose_x trans_y=transpose_y"),
     L("matmul", attrs="transpose_X=transpose_x transpose_Y=transpose_y head_number="),
     note="legacy matmul (v1) also carries `alpha` (default 1.0)")
_add("matmul_with_flatten", "x y", "out", L("mul"))
_add("fc", "input w bias", "out", L("fc"))
_add("bmm", "x y", "out", L("bmm"))

# --- shape manipulation -----------------------------------------------------------------------------
_add("reshape", "x shape", "out", L("reshape2", mutables=(M("shape", "shape", "Shape", "ShapeTensor"),)),
     L("reshape", mutables=(M("shape", "shape", "Shape", "ShapeTensor"),)))
_add("flatten2", "x", "out", L("flatten2"), L("flatten", set_attrs={}),
     note="legacy only: 2-D flatten at `axis`")
_add("flatten", "x", "out", L("flatten_contiguous_range"))
_add("squeeze", "x axis", "out", L("squeeze2", mutables=(M("axis", "axes"),)),
     L("squeeze", mutables=(M("axis", "axes"),)))
_add("unsqueeze", "x axis", "out",
     L("unsqueeze2", mutables=(M("axis", "axes", "AxesTensor", "AxesTensorList"),)),
     L("unsqueeze", mutables=(M("axis", "axes", "AxesTensor", "AxesTensorList"),)))
_add("transpose", "x", "out", L("transpose2", attrs="axis=perm"), L("transpose", attrs="axis=perm data_format="))
_add("concat", "x axis", "out", L("concat", mutables=(M("axis", "axis", "AxisTensor"),)))
_add("split", "x sections axis", "out",
     L("split", mutables=(M("sections", "sections", None, "SectionsTensorList"), M("axis", "axis", "AxisTensor"))),
     note="legacy split with num > 0 maps to split_with_num")
_add("split_with_num", "x axis", "out", note="legacy `split` with `num` > 0")
_add("stack", "x", "out", L("stack", slots=_OUT_Y))
_add("unstack", "x", "out", L("unstack", slots=_OUT_Y))
_add("unbind", "input", "out", L("unbind", slots="X=input"))
_add("slice", "input starts ends", "out",
     L("slice", mutables=(M("starts", "starts", "StartsTensor", "StartsTensorList"),
                          M("ends", "ends", "EndsTensor", "EndsTensorList"))))
_add("strided_slice", "x starts ends strides", "out",
     L("strided_slice", slots="Input=x", attrs="infer_flags= decrease_axis=",
       mutables=(M("starts", "starts", "StartsTensor", "StartsTensorList"),
                 M("ends", "ends", "EndsTensor", "EndsTensorList"),
                 M("strides", "strides", "StridesTensor", "StridesTensorList"))))
_add("pad", "x pad_value", "out", L("pad", mutables=(M("pad_value", "pad_value"),)))
_add("pad3d", "x paddings", "out", L("pad3d", attrs="value=pad_value",
                                      mutables=(M("paddings", "paddings", "Paddings"),)))
for _mode in ["nearest", "bilinear", "linear", "bicubic", "trilinear"]:
    _interp_slots = "OutSize=out_size SizeTensor=size_tensor Scale=scale_tensor"
    _add(f"{_mode}_interp", "x out_size size_tensor scale_tensor", "output",
         L(f"{_mode}_interp_v2", slots=_interp_slots + " Out=output", attrs="data_layout=data_format"),
         L(f"{_mode}_interp", slots=_interp_slots + " Out=output", attrs="data_layout=data_format"),
         note="legacy v1 `scale` float becomes a list like v2's ([] when unset)")
_add("expand", "x shape", "out",
     L("expand_v2", mutables=(M("shape", "shape", "Shape", "expand_shapes_tensor"),)))
_add("expand_as", "x y", "out", L("expand_as_v2"))
_add("tile", "x repeat_times", "out",
     L("tile", mutables=(M("repeat_times", "repeat_times", "RepeatTimes", "repeat_times_tensor"),)))
_add("gather", "x index axis", "out", L("gather", mutables=(M("axis", "axis", "Axis"),)))
_add("embedding", "x weight", "out", L("lookup_table_v2", slots="Ids=x W=weight"))
_add("flip", "x", "out", L("flip"), tier=2)
_add("roll", "x shifts", "out", L("roll", mutables=(M("shifts", "shifts", "ShiftsTensor"),)), tier=2)
_add("tril", "x", "out", L("tril_triu"), tier=2, note="legacy tril_triu becomes tril or triu by its `lower` attr")
_add("triu", "x", "out", tier=2)

# --- reductions --------------------------------------------------------------------------------------
for _canon, _legacy in [("sum", "reduce_sum"), ("mean", "reduce_mean"), ("max", "reduce_max"),
                        ("min", "reduce_min"), ("prod", "reduce_prod"), ("all", "reduce_all"),
                        ("any", "reduce_any")]:
    _add(_canon, "x axis", "out", L(_legacy, attrs="keep_dim=keepdim in_dtype= out_dtype=dtype",
                                   mutables=(M("axis", "dim"),)),
         note="legacy `reduce_all` true means every axis")
_add("argmax", "x axis", "out", L("arg_max", mutables=(M("axis", "axis"),)))
_add("argmin", "x axis", "out", L("arg_min", mutables=(M("axis", "axis"),)))
_add("cumsum", "x axis", "out", L("cumsum", mutables=(M("axis", "axis"),)), tier=2)
_add("logsumexp", "x", "out", L("logsumexp"), tier=2)
# no TensorRT converter: read so that a partitioned build runs it in the Python remainder (zoo cumprod_net)
_add("cumprod", "x", "out", L("cumprod"), tier=2, note="no converter; runs in the Python remainder")

# --- Tier 2: selection / indexing / creation --------------------------------------------------------
_add("where", "condition x y", "out", L("where"), tier=2)
_add("topk", "x k", "out indices", L("top_k_v2", mutables=(M("k", "k", "K"),)),
     L("top_k", mutables=(M("k", "k", "K"),)), tier=2)
_add("argsort", "x", "out indices", L("argsort"), tier=2)
_add("gather_nd", "x index", "out", L("gather_nd"), tier=2)
_add("index_select", "x index", "out", L("index_select", attrs="dim=axis"), tier=2)
_add("take_along_axis", "arr indices", "out",
     L("take_along_axis", slots="Input=arr Index=indices Result=out", attrs="Axis=axis"), tier=2)
_add("put_along_axis", "arr indices values", "out",
     L("put_along_axis", slots="Input=arr Index=indices Value=values Result=out", attrs="Axis=axis"), tier=2)
_add("set_value", "x starts ends steps", "out",
     L("set_value", slots="Input=x", mutables=(M("starts", "starts", None, "StartsTensorList"),
                                                M("ends", "ends", None, "EndsTensorList"),
                                                M("steps", "steps", None, "StepsTensorList"))), tier=2)
_add("set_value_with_tensor", "x values starts ends steps", "out", tier=2,
     note="legacy set_value with a ValueTensor input")
_add("index_put", "x indices value", "out", L("index_put"), tier=2)
_add("masked_select", "x mask", "out", L("masked_select", slots="X=x Mask=mask Y=out"), tier=2,
     note="data-dependent length: NonZero + GatherND")
_add("arange", "start end step", "out", L("range"), tier=2)
_add("linspace", "start stop number", "out", L("linspace", slots="Num=number"), tier=2)
_add("meshgrid", "inputs", "out", L("meshgrid", slots="X=inputs"), tier=2)
_add("one_hot", "x num_classes", "out",
     L("one_hot_v2", mutables=(M("num_classes", "depth", "depth_tensor"),)), tier=2)
_add("einsum", "x", "out inner_cache xshape", L("einsum", slots="Operands=x"), tier=2)
_add("grid_sample", "x grid", "out", L("grid_sampler", slots=_OUTPUT), tier=2)
_add("yolo_box", "x img_size", "boxes scores", L("yolo_box"), tier=2)
_add("multiclass_nms3", "bboxes scores rois_num", "out index nms_rois_num",
     L("multiclass_nms3", slots="BBoxes=bboxes RoisNum=rois_num NmsRoisNum=nms_rois_num"), tier=2)
_add("multiclass_nms", "bboxes scores", "out", L("multiclass_nms", slots="BBoxes=bboxes"), tier=2,
     note="legacy only (fluid); no Index output")
_add("multiclass_nms2", "bboxes scores", "out index", L("multiclass_nms2", slots="BBoxes=bboxes"), tier=2,
     note="legacy only")
_add("matrix_nms", "bboxes scores", "out index roisnum", L("matrix_nms", slots="BBoxes=bboxes RoisNum=roisnum"), tier=2)
_add("roi_align", "x boxes boxes_num", "out", L("roi_align", slots="ROIs=boxes RoisNum=boxes_num"), tier=2)
_add("prior_box", "input image", "out var", L("prior_box", slots="Boxes=out Variances=var"), tier=2)
_add("box_coder", "prior_box prior_box_var target_box", "output_box", L("box_coder"), tier=2)
_add("anchor_generator", "input", "anchors variances", L("anchor_generator", slots="Input=input"), tier=2)

# --- Tier 3 --------------------------------------------------------------------------------------------
_add("quantize_linear", "x scale zero_point in_accum in_state", "y out_state out_accum out_scale",
     L("quantize_linear", slots="ZeroPoint=zero_point InAccum=in_accum InState=in_state OutState=out_state "
                                "OutAccum=out_accum OutScale=out_scale"), tier=3)
_add("dequantize_linear", "x scale zero_point in_accum in_state", "y out_state out_accum out_scale",
     L("dequantize_linear", slots="ZeroPoint=zero_point InAccum=in_accum InState=in_state OutState=out_state "
                                  "OutAccum=out_accum OutScale=out_scale"), tier=3)
# Paddle slim's fake quantization (QAT programs): legacy slots are the snake-case defaults
_add("fake_quantize_dequantize_moving_average_abs_max", "x in_scale in_accum in_state",
     "out out_scale out_state out_accum", L("fake_quantize_dequantize_moving_average_abs_max"), tier=3)
_add("fake_quantize_dequantize_abs_max", "x", "out out_scale", L("fake_quantize_dequantize_abs_max"), tier=3)
_add("fake_channel_wise_quantize_dequantize_abs_max", "x", "out out_scale",
     L("fake_channel_wise_quantize_dequantize_abs_max"), tier=3)
_add("fake_quantize_range_abs_max", "x in_scale iter", "out out_scale out_scales",
     L("fake_quantize_range_abs_max"), tier=3)
_add("fake_dequantize_max_abs", "x scale", "out", L("fake_dequantize_max_abs"), tier=3)
_add("fake_channel_wise_dequantize_max_abs", "x scales", "out", L("fake_channel_wise_dequantize_max_abs"), tier=3)
_add("dequantize_abs_max", "x scale", "out", L("dequantize_abs_max"), tier=3)
_add("shuffle_channel", "x", "out", L("shuffle_channel"), tier=3)
_add("channel_shuffle", "x", "out", L("channel_shuffle"), tier=3)
_add("temporal_shift", "x", "out", L("temporal_shift", attrs="data_format=data_format"), tier=3)
_add("pixel_shuffle", "x", "out", L("pixel_shuffle"), tier=3)
_add("pixel_unshuffle", "x", "out", L("pixel_unshuffle"), tier=3)
_add("deformable_conv", "x offset filter mask", "out",
     L("deformable_conv", slots="Input=x Offset=offset Filter=filter Mask=mask Output=out"),
     L("deformable_conv_v1", slots="Input=x Offset=offset Filter=filter Output=out"), tier=3,
     note="legacy `deformable_conv_v1` (no mask) and PIR's null `mask` operand are v1")

# --- recurrent networks (paddle.nn.LSTM / GRU / SimpleRNN); weight_list: every W_ih, W_hh (layer, direction),
# then every b_ih, b_hh in the same order; the legacy LoD ops lstm / gru have no TensorRT form
_add("rnn", "x pre_state weight_list sequence_length dropout_state_in", "out dropout_state_out state reserve",
     L("rnn", slots="Input=x DropoutState=dropout_state_out"), tier=3,
     note="`x` is time-major [T, B, I]; `pre_state`/`state` are [h] or [h, c], each [layers*directions, B, H]")

# --- control flow (slots are variable-length lists; see docs/ir.md) --------------------------------
_add("if", "cond", "out", tier=2, note="owns two sub-blocks (true, false), each ending in `yield`")
_add("while", "cond inputs", "out", L("while", slots="Condition=cond X=inputs"), tier=2,
     note="PIR body block arguments = `inputs` in order; legacy loop state is updated in place")
_add("yield", "x", "", tier=2, note="ends a PIR sub-block")
_add("conditional_block", "cond input", "out", L("conditional_block"), tier=2,
     note="legacy only; pairs with `select_input`")
_add("select_input", "x mask", "out", L("select_input"), tier=2, note="legacy only")

# PIR ops that only exist as structure: never in Graph.ops
STRUCTURAL = frozenset({"pd_op.data", "pd_op.fetch", "builtin.parameter", "builtin.constant", "builtin.combine",
                        "builtin.split", "builtin.slice", "p", "feed", "fetch", "data"})


def canonical_type(source_type: str) -> str:
    """PIR name without the dialect prefix and in-place underscore; legacy name through the table."""
    if source_type in LEGACY:
        return LEGACY[source_type][0].type
    name = source_type
    for prefix in ("pd_op.", "cf.", "custom_op.", "onednn_op.", "builtin."):
        if name.startswith(prefix):
            name = name[len(prefix):]
            break
    if name.endswith("_") and not name.endswith("__") and name[:-1] in OPS:
        name = name[:-1]
    elif name.endswith("_") and source_type.startswith("pd_op."):
        name = name[:-1]
    return name


DOC_BEGIN = "<!-- opdefs table: generated by `python -m repogen.paddle.opdefs docs/ir.md`, do not edit -->"
DOC_END = "<!-- end of opdefs table -->"


def _legacy_cell(lg: Legacy) -> str:
    parts = [f"`{lg.name}`"]
    renames = [f"{k}→{v}" for k, v in lg.slots.items()]
    renames += [f"@{k}→{v}" if v else f"@{k} dropped" for k, v in lg.attrs.items()]
    for m in lg.mutables:
        where = [f"@{m.attr}" if m.attr else "", m.tensor or "", f"{m.tensor_list}[]" if m.tensor_list else ""]
        renames.append(f"{m.name}←" + "/".join(w for w in where if w))
    if renames:
        parts.append("(" + ", ".join(renames) + ")")
    return " ".join(parts)


def markdown_table() -> str:
    """The vocabulary table of docs/ir.md, one row per canonical op."""
    rows = ["| canonical | tier | PIR operands (in order) | outputs | legacy spellings (slot/attr renames) | note |",
            "| --- | --- | --- | --- | --- | --- |"]
    for d in sorted(OPS.values(), key=lambda d: (d.tier, d.type)):
        legacy = "<br>".join(_legacy_cell(lg) for lg in d.legacy) or "—"
        rows.append(f"| `{d.type}` | {d.tier} | {', '.join(d.inputs) or '—'} | {', '.join(d.outputs)} | "
                    f"{legacy} | {d.note} |")
    return "\n".join(rows)


def _write_doc(path: str) -> None:
    from pathlib import Path

    p = Path(path)
    text = p.read_text()
    head, rest = text.split(DOC_BEGIN, 1)
    _, tail = rest.split(DOC_END, 1)
    p.write_text(f"{head}{DOC_BEGIN}\n{markdown_table()}\n{DOC_END}{tail}")


if __name__ == "__main__":
    import sys

    _write_doc(sys.argv[1])
