"""The typed schema every deploy config goes through (pydantic v2), and the transforms it knows.

One class per exporter transform or post-processor. A class declares its arguments with their types and
ranges; pydantic checks them; ``steps`` turns the checked arguments into the canonical steps
``repogen.pipelines.ops`` runs, with PaddleX's semantics. Adding a transform is one small class::

    @register(DET_TRANSFORMS, "Pad")
    class DetPad(Transform):
        size: Pair = [640, 640]
        def steps(self, ctx): return [{"op": "pad", "size": self.size}]

Every bad value becomes one :class:`~repogen.errors.ConfigError` line naming the file, the key path
(``PreProcess.transform_ops[2].DetResizeForTest.resize_long``) and what was expected. Values are bounded so
that a config cannot ask for absurd work: sides up to :data:`MAX_SIDE` pixels, lists of labels or characters up
to :data:`MAX_LIST` entries, finite numbers only. A transform or post-processor repogen has no class for is an
:class:`UnsupportedConfigError`: the config is well formed, only no pipeline can be made of it, so the model
alone may still be served (``--no-pipeline``).
"""

from __future__ import annotations

import math
import re
import reprlib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Callable, Literal

from repogen.errors import ConfigError
from repogen.extras import require

_pydantic = require("pydantic", extra="pipelines", for_what="reading deploy configs")
BaseModel, BeforeValidator, ConfigDict = _pydantic.BaseModel, _pydantic.BeforeValidator, _pydantic.ConfigDict
Field, ValidationError, model_validator = _pydantic.Field, _pydantic.ValidationError, _pydantic.model_validator
PydanticCustomError = require("pydantic_core", extra="pipelines", for_what="reading deploy configs").PydanticCustomError

MAX_SIDE = 10000  # pixels on an image side (the served pipelines refuse larger requests too)
MAX_LIST = 100_000  # labels or CTC characters (PP-OCRv5's dictionary has 18,383; ImageNet-22k 21,841 classes)
MAX_NAME = 1000  # characters in a label, a character entry, a model or input name
MAX_DIM = 1 << 20  # a dim of an Hpi dynamic-shape range
MAX_RANK = 8
INTERP_CODES = {0: "NEAREST", 1: "LINEAR", 2: "BICUBIC", 3: "AREA", 4: "LANCZOS4"}
INTERP_NAMES = {"NEAREST", "LINEAR", "BILINEAR", "BICUBIC", "CUBIC", "AREA", "LANCZOS4"}
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


class UnsupportedConfigError(ConfigError):
    """A well-formed deploy config that names a transform or post-processor repogen has no pipeline for."""


# -- value types -------------------------------------------------------------------------------------------------

def _fail(message: str) -> PydanticCustomError:
    # "{m}" keeps braces in the message literal
    return PydanticCustomError("repogen", "{m}", {"m": message})


def _not_bool(value: Any) -> Any:
    # YAML's true/false are not numbers, whatever int(True) says
    if isinstance(value, bool):
        raise _fail(f"expected a number, got {value}")
    return value


def _scalar_text(value: Any) -> Any:
    """Labels and characters as the exporters write them: strings, or numbers YAML read as numbers."""
    if isinstance(value, bool) or isinstance(value, (int, float)) and math.isfinite(value):
        return str(value)
    if isinstance(value, str):
        return value
    raise _fail(f"expected a name (a string), got {type(value).__name__}")


def _repeat(n: int) -> Callable[[Any], Any]:
    """A scalar stands for the same value on every axis (``size: 224``, ``mean: 0.5``)."""
    def widen(value: Any) -> Any:
        return [value] * n if isinstance(value, (int, float)) and not isinstance(value, bool) else value
    return widen


def _fraction(value: Any) -> Any:
    """PaddleOCR writes ``scale: 1./255.``: that small arithmetic, without eval()."""
    if isinstance(value, str):
        m = re.fullmatch(r"\s*([0-9.eE+-]{1,32})\s*(?:/\s*([0-9.eE+-]{1,32}))?\s*", value)
        try:
            if not m:
                raise ValueError
            value = float(m.group(1)) / (float(m.group(2)) if m.group(2) else 1.0)
        except (ValueError, ZeroDivisionError):
            raise _fail(f"{_short(value)} is not a number or a/b fraction") from None
    return value


def _interp(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and value in INTERP_CODES:
        return INTERP_CODES[value]
    if isinstance(value, str) and value.upper() in INTERP_NAMES:
        return value.upper()
    raise _fail(f"interp {_short(value)} is not an OpenCV code 0-4 or one of {sorted(INTERP_NAMES)}")


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


Count = Annotated[int, BeforeValidator(_not_bool), Field(ge=1, le=MAX_LIST)]  # topk, max_candidates
Stride = Annotated[int, BeforeValidator(_not_bool), Field(ge=0, le=1024)]  # pixels; 0: none
Side = Annotated[int, BeforeValidator(_not_bool), Field(ge=1, le=MAX_SIDE)]
# normalisation: means and stds in pixel units (123.675, 58.395) or in [0, 1]; bounded so scale/std and mean/std
# stay ordinary float32 numbers
MeanValue = Annotated[float, BeforeValidator(_not_bool), Field(ge=-1e4, le=1e4, allow_inf_nan=False)]
StdValue = Annotated[float, BeforeValidator(_not_bool), Field(ge=1e-6, le=1e4, allow_inf_nan=False)]
Unit = Annotated[float, BeforeValidator(_not_bool), Field(ge=0.0, le=1.0, allow_inf_nan=False)]
Pair = Annotated[list[Side], BeforeValidator(_repeat(2)), Field(min_length=2, max_length=2)]
Mean = Annotated[list[MeanValue], BeforeValidator(_repeat(3)), Field(min_length=3, max_length=3)]
Std = Annotated[list[StdValue], BeforeValidator(_repeat(3)), Field(min_length=3, max_length=3)]
Scale = Annotated[float, BeforeValidator(_not_bool), BeforeValidator(_fraction),
                  Field(gt=0.0, le=1e4, allow_inf_nan=False)]
Interp = Annotated[str, BeforeValidator(_interp)]
Name = Annotated[str, Field(max_length=MAX_NAME)]
Label = Annotated[str, BeforeValidator(_scalar_text), Field(max_length=MAX_NAME)]
Labels = Annotated[list[Label], Field(max_length=MAX_LIST)]
Color = Annotated[Literal["BGR", "RGB"], BeforeValidator(_upper)]


class Schema(BaseModel):
    """Exports carry many keys repogen does not read (training leftovers, other runtimes): ignored, never
    trusted. Types are PaddleX's: numbers where numbers go, no silent truncation of 3.5 to 3."""

    model_config = ConfigDict(extra="ignore", frozen=True)


# -- transforms --------------------------------------------------------------------------------------------------

@dataclass
class StepContext:
    """What one transform's steps may depend on besides its own arguments, or settle for the ones after it."""

    model_name: str | None
    color: str = "RGB"  # PaddleX's predictors read RGB unless DecodeImage says otherwise
    arch: str | None = None  # PaddleDetection's ``arch`` (0.x's Resize and model feeds depend on it)
    layout: str = "hwc"  # the image's layout after the transforms so far (0.x's Normalize/Permute/PadStride)


class Transform(Schema):
    """One entry of a transform list; ``steps`` are the canonical ops (may be none: training-only entries)."""

    def steps(self, ctx: StepContext) -> list[dict[str, Any]]:
        return []


Registry = dict[str, type[Transform]]
OCR_TRANSFORMS: Registry = {}  # PaddleX OCR / classification ``PreProcess.transform_ops``: [{Name: {args}}]
DET_TRANSFORMS: Registry = {}  # PaddleX / PaddleDetection ``Preprocess``: [{type: Name, args...}]
SEG_TRANSFORMS: Registry = {}  # PaddleSeg ``Deploy.transforms``: [{type: Name, args...}]


def register(registry: Registry, name: str) -> Callable[[type[Transform]], type[Transform]]:
    def add(cls: type[Transform]) -> type[Transform]:
        registry[name] = cls
        return cls
    return add


def normalize_step(scale: float, mean: list[float], std: list[float]) -> dict[str, Any]:
    # the same float64 alpha/beta PaddleX computes, so the float32 products agree bit for bit
    return {"op": "normalize", "alpha": [scale / s for s in std], "beta": [-m / s for m, s in zip(mean, std)]}


class Ignored(Transform):
    """Training-only label encoders and key filters that exports keep in their transform lists."""

    model_config = ConfigDict(extra="allow", frozen=True)


for _name in ("DetLabelEncode", "KeepKeys", "MultiLabelEncode", "CTCLabelEncode", "NRTRLabelEncode",
              "SARLabelEncode", "ClsLabelEncode"):
    register(OCR_TRANSFORMS, _name)(Ignored)
IGNORED = frozenset(n for n, c in OCR_TRANSFORMS.items() if c is Ignored)

# PaddleX limits the long side of these detectors (limit_type "max", 960) unless the config says otherwise
MAX_LIMIT_DET_MODELS = {"PP-OCRv5_server_det", "PP-OCRv5_mobile_det", "PP-OCRv4_server_det",
                        "PP-OCRv4_mobile_det", "PP-OCRv3_server_det", "PP-OCRv3_mobile_det",
                        "PP-OCRv6_medium_det", "PP-OCRv6_small_det", "PP-OCRv6_tiny_det"}


@register(OCR_TRANSFORMS, "DecodeImage")
class DecodeImage(Transform):
    img_mode: Color = "BGR"
    channel_first: bool = False

    @model_validator(mode="after")
    def _hwc(self) -> DecodeImage:
        if self.channel_first:
            raise _fail("channel_first true is not supported (PaddleX refuses it too)")
        return self

    def steps(self, ctx: StepContext) -> list[dict[str, Any]]:
        ctx.color = self.img_mode
        return []


@register(OCR_TRANSFORMS, "DetResizeForTest")
class DetResizeForTest(Transform):
    image_shape: Pair | None = None  # [h, w]
    keep_ratio: bool = False
    input_shape: Annotated[list[Side], Field(min_length=3, max_length=3)] | None = None  # [c, h, w]
    resize_long: Side | None = None
    limit_type: Literal["max", "min", "resize_long"] | None = None
    limit_side_len: Side | None = None  # checked; the limit PaddleX's predictor applies is resize_long

    def steps(self, ctx: StepContext) -> list[dict[str, Any]]:
        # PaddleX's predictor: the limit is resize_long (default 960 for PP-OCR detectors, else 736) with
        # limit_type "max" for PP-OCR detectors, "min" otherwise; image_shape / input_shape win over both
        if self.image_shape is not None:
            return [{"op": "det_resize", "image_shape": list(self.image_shape), "keep_ratio": self.keep_ratio}]
        if self.input_shape is not None:
            return [{"op": "det_resize", "input_shape": list(self.input_shape)}]
        in_list = ctx.model_name in MAX_LIMIT_DET_MODELS
        return [{"op": "det_resize", "limit_side_len": self.resize_long or (960 if in_list else 736),
                 "limit_type": self.limit_type or ("max" if in_list else "min")}]


@register(OCR_TRANSFORMS, "NormalizeImage")
class NormalizeImage(Transform):
    scale: Scale = 1 / 255
    mean: Mean = IMAGENET_MEAN
    std: Std = IMAGENET_STD
    order: str | None = "hwc"

    @model_validator(mode="after")
    def _hwc(self) -> NormalizeImage:
        if (self.order or "hwc").lower() != "hwc":
            raise _fail(f"order {self.order[:40]!r}: only hwc normalisation is supported")
        return self

    def steps(self, ctx: StepContext) -> list[dict[str, Any]]:
        return [normalize_step(self.scale, self.mean, self.std)]


@register(OCR_TRANSFORMS, "ResizeImage")
class ResizeImage(Transform):
    resize_short: Side | None = None
    size: Pair | None = None  # [w, h]
    interpolation: Interp = "LINEAR"

    @model_validator(mode="after")
    def _one(self) -> ResizeImage:
        if self.resize_short is None and self.size is None:
            raise _fail("needs resize_short or size")
        return self

    def steps(self, ctx: StepContext) -> list[dict[str, Any]]:
        if self.resize_short is not None:
            return [{"op": "resize_short", "target": self.resize_short, "interp": self.interpolation}]
        return [{"op": "resize", "target_wh": list(self.size), "keep_ratio": False, "interp": self.interpolation}]


@register(OCR_TRANSFORMS, "CropImage")
class CropImage(Transform):
    size: Pair = [224, 224]  # [w, h]

    def steps(self, ctx: StepContext) -> list[dict[str, Any]]:
        return [{"op": "center_crop", "size": list(self.size)}]


@register(OCR_TRANSFORMS, "ToCHWImage")
class ToCHWImage(Transform):
    def steps(self, ctx: StepContext) -> list[dict[str, Any]]:
        return [{"op": "to_chw"}]


def _chw(value: Any) -> Any:
    if not (isinstance(value, list) and len(value) == 3):
        raise _fail(f"image_shape must be [C, H, W], got {_short(value)}")
    return value


@register(OCR_TRANSFORMS, "RecResizeImg")
class RecResizeImg(Transform):
    image_shape: Annotated[list[Side], BeforeValidator(_chw)]

    @model_validator(mode="before")
    @classmethod
    def _required(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("image_shape") is None:
            raise _fail("image_shape must be [C, H, W], got None")
        return data

    @model_validator(mode="after")
    def _channels(self) -> RecResizeImg:
        if self.image_shape[0] not in (1, 3):
            raise _fail(f"image_shape [C, H, W] needs C 1 or 3, got {self.image_shape[0]}")
        return self

    def steps(self, ctx: StepContext) -> list[dict[str, Any]]:
        return [{"op": "rec_resize", "image_shape": list(self.image_shape)}]


@register(OCR_TRANSFORMS, "ClsResizeImg")
class ClsResizeImg(Transform):
    """PaddleOCR's direction classifier input: height H keeping the aspect ratio, width at most W, [-1, 1], zeros
    on the right up to W."""

    image_shape: Annotated[list[Side], BeforeValidator(_chw)] = [3, 48, 192]

    @model_validator(mode="after")
    def _channels(self) -> ClsResizeImg:
        if self.image_shape[0] != 3:
            raise _fail(f"image_shape [C, H, W] needs C 3 (colour crops), got {self.image_shape[0]}")
        return self

    def steps(self, ctx: StepContext) -> list[dict[str, Any]]:
        return [{"op": "cls_resize", "image_shape": list(self.image_shape)}]


def _hw(value: Any) -> Any:
    value = [value, value] if isinstance(value, int) and not isinstance(value, bool) else value
    if not (isinstance(value, list) and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_SIDE for v in value)):
        raise _fail(f"must be [height, width] of integers 1-{MAX_SIDE}, got {_short(value)}")
    return value


@register(DET_TRANSFORMS, "Resize")
class DetResize(Transform):
    target_size: Annotated[list[int], BeforeValidator(_hw)]  # [h, w]
    keep_ratio: bool = False
    interp: Interp = "BICUBIC"

    @model_validator(mode="before")
    @classmethod
    def _required(cls, data: Any) -> Any:
        if isinstance(data, dict) and "target_size" not in data:
            raise _fail("needs target_size [height, width]")
        return data

    def steps(self, ctx: StepContext) -> list[dict[str, Any]]:
        h, w = self.target_size
        return [{"op": "resize", "target_wh": [w, h], "keep_ratio": self.keep_ratio, "interp": self.interp}]


@register(DET_TRANSFORMS, "NormalizeImage")
class DetNormalizeImage(Transform):
    is_scale: bool = True
    norm_type: Name | None = None
    mean: Mean = IMAGENET_MEAN
    std: Std = IMAGENET_STD

    def steps(self, ctx: StepContext) -> list[dict[str, Any]]:
        # PaddleX: no norm_type or "none" means mean_std; any other norm_type drops mean and std
        mean_std = (self.norm_type or "mean_std") in ("mean_std", "none")
        return [normalize_step(1.0 / 255.0 if self.is_scale else 1.0, self.mean if mean_std else [0.0] * 3,
                               self.std if mean_std else [1.0] * 3)]


@register(DET_TRANSFORMS, "Permute")
class Permute(ToCHWImage):
    pass


@register(DET_TRANSFORMS, "PadStride")
class PadStride(Transform):
    stride: Stride = 32

    def steps(self, ctx: StepContext) -> list[dict[str, Any]]:
        return [{"op": "pad_stride", "stride": self.stride}]


@register(DET_TRANSFORMS, "TopDownEvalAffine")
class TopDownEvalAffine(Transform):
    """PaddleDetection's top-down keypoint crop (PaddleX ``TopDownAffine``): the person region to ``trainsize``."""

    trainsize: Annotated[list[Side], Field(min_length=2, max_length=2)]  # [w, h]
    use_udp: bool = False

    @model_validator(mode="before")
    @classmethod
    def _required(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("trainsize") is None:
            raise _fail("needs trainsize [width, height]")
        return data

    def steps(self, ctx: StepContext) -> list[dict[str, Any]]:
        return [{"op": "topdown_affine", "size_wh": list(self.trainsize), "use_udp": self.use_udp}]


def _wh_or_keep(value: Any) -> Any:
    value = [value, value] if isinstance(value, int) and not isinstance(value, bool) else value
    if value == [-1, -1]:
        return None
    if not (isinstance(value, list) and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_SIDE for v in value)):
        raise _fail(f"must be [width, height] of integers 1-{MAX_SIDE} (or -1 to keep the size), "
                    f"got {_short(value)}")
    return value


@register(SEG_TRANSFORMS, "Resize")
class SegResize(Transform):
    target_size: Annotated[list[int] | None, BeforeValidator(_wh_or_keep)] = None  # [w, h]; None keeps the size
    keep_ratio: bool = True
    size_divisor: Stride | None = 32
    interp: Interp = "LINEAR"

    def steps(self, ctx: StepContext) -> list[dict[str, Any]]:
        return [{"op": "resize", "target_wh": self.target_size, "keep_ratio": self.keep_ratio,
                 "size_divisor": self.size_divisor, "interp": self.interp}]


@register(SEG_TRANSFORMS, "Normalize")
class SegNormalize(Transform):
    mean: Mean = [0.5, 0.5, 0.5]
    std: Std = [0.5, 0.5, 0.5]

    def steps(self, ctx: StepContext) -> list[dict[str, Any]]:
        return [normalize_step(1 / 255, self.mean, self.std)]


# -- PaddleDetection 0.x (Fluid) ``infer_cfg.yml`` (``mode: fluid``) ------------------------------------------------
# Semantics of PaddleDetection release/0.5 deploy/python (preprocess.py, infer.py), whose exporter
# (ppdet/utils/export_utils.py) writes ResizeImage / NormalizeImage / Permute with their training arguments and
# PadBatch as PadStride. The image is decoded to RGB.

FLUID_DET_TRANSFORMS: Registry = {}
# 0.x archs whose Resize keeps the aspect ratio when max_size is set (its RESIZE_SCALE_SET); the others resize
# each side to target_size on its own
FLUID_KEEP_RATIO_ARCHS = ("RCNN", "RetinaNet", "FCOS", "SOLOv2")
# 0.x's exporter writes one of these as ``arch`` (its TRT_MIN_SUBGRAPH keys); its deploy reads them as substrings
FLUID_ARCHS = ("YOLO", "SSD", "RCNN", "RetinaNet", "EfficientDet", "Face", "TTFNet", "FCOS", "SOLOv2")
# 0.x's create_inputs: the inputs beside ``image`` of the first arch key found in ``arch``, each as the quantity
# ops.fluid_feeds computes and its dtype
FLUID_FEEDS: tuple[tuple[str, dict[str, tuple[str, str]]], ...] = (
    ("YOLO", {"im_size": ("source_hw", "int32")}),
    ("RetinaNet", {"im_info": ("padded_hw_scale", "float32")}),
    ("EfficientDet", {"im_info": ("padded_hw_scale", "float32")}),
    ("RCNN", {"im_info": ("padded_hw_scale", "float32"), "im_shape": ("source_hw_one", "float32")}),
    ("FCOS", {"im_info": ("padded_hw_scale", "float32"), "im_shape": ("source_hw_one", "float32")}),
    ("TTF", {"scale_factor": ("scale_xyxy", "float32")}),
    ("SOLOv2", {"im_info": ("resized_hw_scale", "float32")}),
)
NonNegative = Annotated[int, BeforeValidator(_not_bool), Field(ge=0, le=MAX_SIDE)]


class StepError(ValueError):
    """A transform whose arguments are valid but not where it stands in the list (raised by ``steps``; see
    :func:`transform_steps`)."""


def _one_size(value: Any) -> Any:
    if isinstance(value, list):  # 0.x's deploy does float(target_size): a list (multi-scale training) fails there
        raise _fail(f"must be one integer (PaddleDetection 0.x resizes to one size), got {_short(value)}")
    return value


def _shape_or_none(value: Any) -> Any:
    # the exporter writes image_shape[1:] ([H, W]); only whether it is there matters to 0.x's Resize
    if value is not None and not (isinstance(value, list) and len(value) in (2, 3)
                                  and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)):
        raise _fail(f"must be [H, W] (or [C, H, W]) of positive integers, got {_short(value)}")
    return value


def _requires_chw(ctx: StepContext, what: str) -> None:
    if ctx.layout != "chw":
        raise StepError(f"{what} works on a CHW image in PaddleDetection 0.x; here the image is still HWC (put a "
                        "Permute with channel_first: true before it)")


@register(FLUID_DET_TRANSFORMS, "Resize")
class FluidResize(Transform):
    target_size: Annotated[Side, BeforeValidator(_one_size)]
    max_size: NonNegative = 0  # 0: no cap
    interp: Interp = "LINEAR"  # 0.x passes the integer straight to OpenCV; its default is INTER_LINEAR
    image_shape: Annotated[list[int] | None, BeforeValidator(_shape_or_none)] = None
    use_cv2: bool = True

    @model_validator(mode="before")
    @classmethod
    def _required(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("target_size") is None:
            raise _fail("needs target_size (an integer: the short side, or each side for YOLO-style exports)")
        return data

    @model_validator(mode="after")
    def _cv2(self) -> FluidResize:
        if not self.use_cv2:
            raise _fail("use_cv2 false (PIL resizing, which 0.x refuses with max_size too) is not supported")
        return self

    def steps(self, ctx: StepContext) -> list[dict[str, Any]]:
        if ctx.layout != "hwc":
            raise StepError("Resize works on an HWC image in PaddleDetection 0.x; here a Permute already made it CHW")
        keep_ratio = self.max_size != 0 and ctx.arch in FLUID_KEEP_RATIO_ARCHS
        # fixed-shape exports: padded to max_size x max_size (after a resize that must fit in it)
        pad = self.max_size != 0 and self.image_shape is not None
        if pad and not keep_ratio and self.target_size > self.max_size:
            raise StepError(f"target_size {self.target_size} resizes every image beyond the max_size "
                            f"{self.max_size} square it is padded to")
        return [{"op": "fluid_resize", "target_size": self.target_size, "max_size": self.max_size,
                 "keep_ratio": keep_ratio, "pad": pad, "interp": self.interp}]


@register(FLUID_DET_TRANSFORMS, "Normalize")
class FluidNormalize(Transform):
    mean: Mean
    std: Std
    is_scale: bool = True
    is_channel_first: bool = False

    @model_validator(mode="before")
    @classmethod
    def _required(cls, data: Any) -> Any:
        if isinstance(data, dict) and (data.get("mean") is None or data.get("std") is None):
            raise _fail("needs mean and std (three numbers each)")
        return data

    def steps(self, ctx: StepContext) -> list[dict[str, Any]]:
        # 0.x broadcasts mean/std over the axis is_channel_first names: on the other layout it fails (or, on a
        # 3-pixel side, normalises rows); refused here rather than on every request
        if self.is_channel_first != (ctx.layout == "chw"):
            raise StepError(f"is_channel_first {str(self.is_channel_first).lower()} but the image is "
                            f"{ctx.layout.upper()} here (PaddleDetection 0.x would fail on it)")
        return [{"op": "fluid_normalize", "mean": list(self.mean), "std": list(self.std), "is_scale": self.is_scale,
                 "channel_first": self.is_channel_first}]


@register(FLUID_DET_TRANSFORMS, "Permute")
class FluidPermute(Transform):
    to_bgr: bool = False
    channel_first: bool = True

    def steps(self, ctx: StepContext) -> list[dict[str, Any]]:
        steps: list[dict[str, Any]] = []
        if self.channel_first:
            if ctx.layout == "chw":
                raise StepError("channel_first true on an image that is already CHW")
            steps.append({"op": "to_chw"})
            ctx.layout = "chw"
        if self.to_bgr:  # 0.x reverses the first axis: the channels only once the image is CHW
            _requires_chw(ctx, "to_bgr")
            steps.append({"op": "reverse_channels_chw"})
        return steps


@register(FLUID_DET_TRANSFORMS, "PadStride")
class FluidPadStride(Transform):
    stride: Stride = 0  # 0.x's default: no padding

    def steps(self, ctx: StepContext) -> list[dict[str, Any]]:
        if self.stride == 0:
            return []
        _requires_chw(ctx, "PadStride")
        return [{"op": "pad_stride", "stride": self.stride}]


@register(FLUID_DET_TRANSFORMS, "PadBatch")
class FluidPadBatch(Transform):
    """The training reader's batch transform, as a hand-written config may keep it; the exporter writes it as
    PadStride(stride=pad_to_stride)."""

    pad_to_stride: Stride = 0

    def steps(self, ctx: StepContext) -> list[dict[str, Any]]:
        return FluidPadStride(stride=self.pad_to_stride).steps(ctx)


def transform_steps(ops: list[Transform], registry: Registry, ctx: StepContext, file: Path | str,
                    loc: tuple[Any, ...]) -> list[dict[str, Any]]:
    """The canonical steps of checked transforms, in order; a transform out of place is one ConfigError line
    naming its index and name."""
    out: list[dict[str, Any]] = []
    for i, op in enumerate(ops):
        try:
            out += op.steps(ctx)
        except StepError as exc:
            name = next((n for n, c in registry.items() if c is type(op)), type(op).__name__)
            raise fail(file, loc + (i, name), str(exc)) from None
    return out


def fluid_labels(label_list: list[str] | None, with_background: bool) -> list[str] | None:
    """The name of each class id the model returns. 0.x's exporter writes label_list from its category map,
    which holds ``background`` (id 0) for the built-in COCO/VOC lists whatever with_background says, and not
    for lists read from an annotation file, while the model counts classes from 1 exactly when with_background
    is true. PaddleDetection 0.x's own tools/infer.py names a class through those maps, so the list is aligned
    the same way: ``background`` first exactly when the model has it."""
    if label_list is None:
        return None
    labels = list(label_list)
    has_background = bool(labels) and labels[0] == "background"
    if with_background and not has_background:
        return ["background"] + labels
    if not with_background and has_background:
        return labels[1:]
    return labels


def fluid_feeds_step(arch: str, ctx: StepContext, file: Path | str) -> dict[str, Any]:
    """The step computing the inputs PaddleDetection 0.x's deploy (infer.py ``create_inputs``) feeds beside
    ``image``; it runs after the transforms (``ctx.layout`` says where the image's height and width are)."""
    if "SSD" in arch or "Face" in arch:
        # 0.x scales these models' normalised boxes by the source size in its own post-processing
        raise UnsupportedConfigError(one_line(
            f"{file}: arch {arch!r}: PaddleDetection 0.x SSD/face exports return boxes normalised to [0, 1], which "
            "repogen's detection answers do not rescale; build with --no-pipeline to serve the model alone"))
    if not any(a in arch for a in FLUID_ARCHS):
        raise UnsupportedConfigError(one_line(
            f"{file}: arch {arch!r} is not a PaddleDetection 0.x architecture (one of {', '.join(FLUID_ARCHS)}); "
            "build with --no-pipeline to serve the model alone"))
    feeds = next((feeds for key, feeds in FLUID_FEEDS if key in arch), {})
    return {"op": "fluid_feeds", "feeds": {name: list(kind) for name, kind in feeds.items()}, "layout": ctx.layout}


# -- post-processors and sections ----------------------------------------------------------------------------------

class DBPostProcess(Schema):
    thresh: Unit = 0.3
    box_thresh: Unit = 0.6
    max_candidates: Count = 1000
    unclip_ratio: Annotated[float, BeforeValidator(_not_bool), Field(gt=0.0, le=100.0, allow_inf_nan=False)] = 2.0
    use_dilation: bool = False
    score_mode: Literal["fast", "slow"] = "fast"
    box_type: Literal["quad", "poly"] = "quad"


def _characters(value: Any) -> Any:
    if not isinstance(value, list) or not value:
        raise _fail("character_dict must be a non-empty list of characters")
    return value


class CTCLabelDecode(Schema):
    character_dict: Annotated[Labels, BeforeValidator(_characters)]
    use_space_char: bool = True

    @model_validator(mode="before")
    @classmethod
    def _required(cls, data: Any) -> Any:
        if isinstance(data, dict) and "character_dict" not in data:
            raise _fail("character_dict must be a non-empty list of characters")
        return data


def _list_of_names(value: Any) -> Any:
    if value is not None and not isinstance(value, list):
        raise _fail(f"must be a list of names, got {type(value).__name__}")
    return value


NameList = Annotated[Labels, BeforeValidator(_list_of_names)]


class ClsPostProcess(Schema):
    """PaddleOCR's direction classifier: the arg-max label of ``label_list``; ``cls_thresh`` (PaddleOCR's
    ``--cls_thresh``, kept here so it can be edited) is the '180' score above which a crop is turned."""

    label_list: NameList = ["0", "180"]
    cls_thresh: Unit = 0.9


class Topk(Schema):
    topk: Count = 5
    label_list: NameList | None = None


class PostProcessHead(Schema):
    name: Name | None = None
    Topk: Any = None


class PreProcessSection(Schema):
    transform_ops: Annotated[list[Any], Field(max_length=1000)] | None = None


class DeploySection(Schema):  # PaddleSeg
    transforms: Annotated[list[Any], Field(max_length=1000)] | None = None


def _shape_range(value: Any) -> Any:
    if not (isinstance(value, list) and len(value) == 3 and all(isinstance(s, list) for s in value)
            and len({len(s) for s in value}) == 1 and 1 <= len(value[0]) <= MAX_RANK):
        raise _fail(f"must be [[min], [opt], [max]] of one rank (1-{MAX_RANK}), got {_short(value)}")
    if not all(isinstance(d, int) and not isinstance(d, bool) and 1 <= d <= MAX_DIM for s in value for d in s):
        raise _fail(f"must hold integer dims 1-{MAX_DIM}, got {_short(value)}")
    lo, opt, hi = value
    if not all(a <= b <= c for a, b, c in zip(lo, opt, hi)):
        raise _fail(f"must have min <= opt <= max on every dim, got {_short(value)}")
    return value


ShapeRange = Annotated[list[list[int]], BeforeValidator(_shape_range)]
Shapes = Annotated[dict[Name, ShapeRange], Field(max_length=256)]


class TensorRTSection(Schema):
    dynamic_shapes: Shapes | None = None


class PaddleInferSection(Schema):
    trt_dynamic_shapes: Shapes | None = None


class BackendConfigs(Schema):
    paddle_infer: PaddleInferSection | None = None
    tensorrt: TensorRTSection | None = None


class HpiSection(Schema):
    backend_configs: BackendConfigs | None = None


class GlobalSection(Schema):
    model_name: Name | None = None


class Identity(Schema):
    """What names the model and bounds its shapes, whatever the rest of the config holds."""

    Global: GlobalSection | None = None
    model_name: Name | None = None
    arch: Name | None = None
    Hpi: HpiSection | None = None

    def name(self) -> str | None:
        return (self.Global.model_name if self.Global else None) or self.model_name

    def dynamic_shapes(self) -> dict[str, list[list[int]]]:
        backends = self.Hpi.backend_configs if self.Hpi else None
        if backends is None:
            return {}
        shapes = ((backends.tensorrt.dynamic_shapes if backends.tensorrt else None)
                  or (backends.paddle_infer.trt_dynamic_shapes if backends.paddle_infer else None) or {})
        return {name: [list(s) for s in rng] for name, rng in shapes.items()}


# PaddleX runs these layout models through its LayoutAnalysisProcess (coordinates rounded to whole pixels, small
# and overlapping regions dropped, reading-order numbers), every other detector through DetPostProcess
LAYOUT_ANALYSIS_MODELS = frozenset({"PP-DocLayoutV2", "PP-DocLayoutV3"})
ClassId = Annotated[int, BeforeValidator(_not_bool), Field(ge=0, le=MAX_LIST)]
UnclipRatio = Annotated[float, BeforeValidator(_not_bool), Field(gt=0.0, le=100.0, allow_inf_nan=False)]
UnclipPair = Annotated[list[UnclipRatio], Field(min_length=2, max_length=2)]
MergeMode = Literal["union", "large", "small"]


class DetectionSection(Schema):  # PaddleX detection / layout and PaddleDetection: beside ``Preprocess``
    # PaddleX's DetPostProcess: one threshold, or one per class id (classes not listed: 0.5)
    draw_threshold: Unit | Annotated[dict[ClassId, Unit], Field(max_length=MAX_LIST)] = 0.5
    label_list: NameList | None = None
    # PaddleX's layout options, read by its predictor from the same file (DetRunnerPredictor.build_postprocess)
    layout_nms: bool | None = None
    layout_unclip_ratio: UnclipRatio | UnclipPair | Annotated[dict[ClassId, UnclipPair],
                                                             Field(max_length=MAX_LIST)] | None = None
    layout_merge_bboxes_mode: MergeMode | Annotated[dict[ClassId, MergeMode], Field(max_length=MAX_LIST)] | None = None

    def layout_post(self, model_name: str | None) -> dict[str, Any]:
        """The post-processing parameters (JSON-safe: class ids as [id, value] pairs) for
        ``repogen.pipelines.ops.detection_answer``: ``threshold`` (a number: the one threshold, or the default of a
        per-class table) and, where any layout option is set or PaddleX runs the model as a layout analysis model,
        ``layout``."""
        threshold = self.draw_threshold
        post: dict[str, Any] = {"threshold": threshold if not isinstance(threshold, dict) else 0.5}
        layout: dict[str, Any] = {}
        if isinstance(threshold, dict):
            layout["class_thresholds"] = [[k, v] for k, v in threshold.items()]
        if self.layout_nms:
            layout["nms"] = True
        unclip = self.layout_unclip_ratio
        if isinstance(unclip, dict):
            layout["unclip_ratio"] = [[k, list(v)] for k, v in unclip.items()]
        elif unclip is not None:
            layout["unclip_ratio"] = list(unclip) if isinstance(unclip, list) else [unclip, unclip]
        merge = self.layout_merge_bboxes_mode
        if merge is not None:
            layout["merge_mode"] = [[k, v] for k, v in merge.items()] if isinstance(merge, dict) else merge
        if model_name in LAYOUT_ANALYSIS_MODELS:
            layout["analysis"] = True
        if layout:
            post["layout"] = layout
        return post


class FluidDetectionSection(DetectionSection):
    """The top level of a 0.x ``infer_cfg.yml`` beside ``Preprocess``."""

    arch: Name
    with_background: bool = False
    use_python_inference: bool = False  # which Paddle API 0.x's deploy runs the model with: nothing to serve
    min_subgraph_size: Annotated[int, BeforeValidator(_not_bool), Field(ge=0, le=MAX_LIST)] | None = None

    @model_validator(mode="before")
    @classmethod
    def _arch(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("arch") is None:
            raise _fail(f"arch is required in a PaddleDetection 0.x infer_cfg.yml (one of {', '.join(FLUID_ARCHS)})")
        return data


# -- errors --------------------------------------------------------------------------------------------------------

_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 60
_REPR.maxlist = _REPR.maxdict = 4
_REPR.maxlevel = 2


def _short(value: Any) -> str:
    """A bounded repr: a value may be a list of 100,000 labels."""
    return _REPR.repr(value)


FREE_FORM = {"dynamic_shapes", "trt_dynamic_shapes"}  # mappings keyed by the user's names (input names)


def key_path(loc: tuple[Any, ...]) -> str:
    """``('PreProcess', 'transform_ops', 2, 'DetResizeForTest', 'resize_long')`` ->
    ``PreProcess.transform_ops[2].DetResizeForTest.resize_long``."""
    out = ""
    for i, part in enumerate(loc):
        if part == "[key]":  # pydantic's mark for a mapping's key (rather than its value)
            out += " (the key)"
        elif isinstance(part, int) or (i and loc[i - 1] in FREE_FORM) or not re.fullmatch(r"[\w.-]{1,80}", str(part)):
            out += f"[{part!r}]" if not isinstance(part, int) else f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


_EXPECTED = {
    "model_type": "expected a mapping", "dict_type": "expected a mapping", "list_type": "expected a list",
    "int_type": "expected an integer", "int_parsing": "expected an integer", "int_from_float": "expected an integer",
    "float_type": "expected a number", "float_parsing": "expected a number",
    "finite_number": "expected a finite number",
    "bool_type": "expected true or false", "bool_parsing": "expected true or false", "string_type": "expected a string",
    "missing": "is required",
}


def _message(err: dict[str, Any]) -> str:
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind == "repogen":
        return ctx["m"]
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        op = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}[kind]
        bound = next(iter(ctx.values()))
        return f"expected a value {op} {bound}"
    if kind in ("too_short", "too_long"):
        want = f"at most {ctx.get('max_length')}" if kind == "too_long" else f"at least {ctx.get('min_length')}"
        return f"expected {want} items"
    if kind == "literal_error":
        return f"expected {ctx.get('expected')}"
    if kind == "string_too_long":
        return f"expected a string of at most {ctx.get('max_length')} characters"
    msg = err["msg"].removeprefix("Input should be ").removeprefix("Value error, ")
    return _EXPECTED.get(kind) or "expected " + msg


def validate(cls: type[Schema], value: Any, file: Path | str, loc: tuple[Any, ...] = ()) -> Any:
    """``cls`` from ``value`` (a mapping from the YAML), or one ConfigError: file, key path, expectation."""
    try:
        return cls.model_validate(value)
    except ValidationError as exc:
        raise schema_error(file, exc, loc) from None


def schema_error(file: Path | str, exc: ValidationError, loc: tuple[Any, ...] = ()) -> ConfigError:
    err = exc.errors(include_url=False, include_input=True)[0]  # the first: one line, one fix at a time
    path = key_path(tuple(loc) + tuple(err["loc"]))
    msg = _message(err)
    got = "" if err["type"] in ("repogen", "missing") or "input" not in err else f" (got {_short(err['input'])})"
    joint = " " if msg.startswith(("must ", "is ", "needs ")) else ": "
    return ConfigError(one_line(f"{file}: {path}{joint}{msg}{got}"))


def one_line(text: str) -> str:
    return text.replace("\r", "\\r").replace("\n", "\\n")


def fail(file: Path | str, loc: tuple[Any, ...], message: str, unsupported: bool = False) -> ConfigError:
    cls = UnsupportedConfigError if unsupported else ConfigError
    return cls(one_line(f"{file}: {key_path(loc)}: {message}"))


def parse_transforms(entries: list[Any] | None, registry: Registry, file: Path | str, loc: tuple[Any, ...],
                     style: Literal["one_key", "type_key"]) -> list[Transform]:
    """Each entry validated by its registered class: ``{Name: {args}}`` (``one_key``, PaddleX OCR) or
    ``{type: Name, args...}`` (``type_key``, PaddleDetection / PaddleSeg)."""
    out = []
    known = ", ".join(sorted(registry))
    for i, entry in enumerate(entries or []):
        if style == "one_key":
            if not isinstance(entry, dict) or len(entry) != 1:
                raise fail(file, loc + (i,), "expected a one-key mapping like {DetResizeForTest: {...}}, got "
                           + _short(entry))
            (name, args), = entry.items()
            if args is None:
                args = {}
        else:
            if not isinstance(entry, dict) or not isinstance(entry.get("type"), str):
                raise fail(file, loc + (i,), f"expected a mapping with a 'type' key, got {_short(entry)}")
            name, args = entry["type"], {k: v for k, v in entry.items() if k != "type"}
        if not isinstance(name, str) or len(name) > 200:
            raise fail(file, loc + (i,), f"expected a transform name, got {_short(name)}")
        cls = registry.get(name)
        if cls is None:
            raise UnsupportedConfigError(one_line(
                f"{file}: {key_path(loc)}[{i}] {name}: transform {name!r} has no repogen implementation (known: "
                f"{known}); build with --no-pipeline to serve the model alone (pre-processing on the client)"))
        if not isinstance(args, dict):
            if cls is Ignored:
                args = {}
            else:
                raise fail(file, loc + (i, name), f"expected a mapping of arguments, got {_short(args)}")
        out.append(validate(cls, args, file, loc + (i, name)))
    return out
