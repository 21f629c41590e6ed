"""Read the deploy config Paddle exports beside a model into one typed :class:`DeployConfig`.

Three formats, one description:

* PaddleX 3.x ``inference.yml``: ``Global.model_name``, ``PreProcess.transform_ops`` + ``PostProcess`` (OCR),
  ``Preprocess`` + ``label_list`` + ``draw_threshold`` (detection/layout), ``Deploy.transforms``
  (segmentation), ``Hpi.backend_configs.{tensorrt.dynamic_shapes | paddle_infer.trt_dynamic_shapes}``;
* PaddleDetection 2.x ``infer_cfg.yml``: ``arch``, ``Preprocess``, ``label_list``, ``draw_threshold``;
* PaddleSeg ``deploy.yaml``: ``Deploy.model``, ``Deploy.params``, ``Deploy.transforms``.

Transforms are translated into the canonical steps ``repogen.pipelines.ops`` runs, with the parameter
semantics PaddleX's predictors give them (the reference the pipelines are checked against), so that
differences between the formats (``target_size`` is [h, w] for detection, [w, h] for segmentation; integer
vs named interpolation; ``is_scale``) are settled here, once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from repogen.errors import ConfigError
from repogen.extras import require

CONFIG_NAMES = ("inference.yml", "infer_cfg.yml", "deploy.yaml", "deploy.yml")
KINDS = ("ocr_det", "ocr_rec", "detection", "segmentation", "classification")
# training-only label encoders and key filters that exports keep in their transform lists
IGNORED = {"DetLabelEncode", "KeepKeys", "MultiLabelEncode", "CTCLabelEncode", "NRTRLabelEncode",
           "SARLabelEncode", "ClsLabelEncode"}
# PaddleX limits the long side of these detectors (limit_type "max", 960) unless the config says otherwise
MAX_LIMIT_DET_MODELS = {"PP-OCRv5_server_det", "PP-OCRv5_mobile_det", "PP-OCRv4_server_det",
                        "PP-OCRv4_mobile_det", "PP-OCRv3_server_det", "PP-OCRv3_mobile_det",
                        "PP-OCRv6_medium_det", "PP-OCRv6_small_det", "PP-OCRv6_tiny_det"}
INTERP_CODES = {0: "NEAREST", 1: "LINEAR", 2: "BICUBIC", 3: "AREA", 4: "LANCZOS4"}
INTERP_NAMES = {"NEAREST", "LINEAR", "BILINEAR", "BICUBIC", "CUBIC", "AREA", "LANCZOS4"}
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


@dataclass
class DeployConfig:
    path: Path
    fmt: str  # "paddlex" | "paddledet" | "paddleseg"
    kind: str  # one of KINDS
    model_name: str | None
    arch: str | None
    color: str  # channel order the model was trained on: "BGR" or "RGB"
    transforms: list[dict[str, Any]]  # canonical steps for repogen.pipelines.ops.preprocess
    post: dict[str, Any]  # post-processing parameters for the kind
    labels: list[str] | None = None
    characters: list[str] | None = None  # CTC alphabet from character_dict (without blank/space)
    dynamic_shapes: dict[str, list[list[int]]] = field(default_factory=dict)  # input -> [min, opt, max]

    def default_name(self, fallback: str) -> str:
        """A Triton-safe model name: the exporter's ``model_name``, else the folder name."""
        if not self.model_name:
            return fallback  # the folder name, checked like any name the user gives
        # a model name is a folder, a URL segment and a metric label: letters, digits, _ . - and <= 128 chars
        return re.sub(r"[^A-Za-z0-9_.-]", "_", str(self.model_name))[:128].strip("._-") or fallback


def find_deploy_config(model: Path | str) -> Path | None:
    """The deploy config beside a model (directory, path prefix or model file), or None."""
    p = Path(model)
    folder = p if p.is_dir() else p.parent
    for name in CONFIG_NAMES:
        if (folder / name).is_file():
            return folder / name
    return None


def _load_yaml(path: Path) -> dict:
    yaml = require("yaml", extra="pipelines", for_what=f"reading the deploy config {path}")

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the deploy config: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a deploy config is a YAML mapping, got {type(data).__name__}")
    return data


def _number(value: Any, where: str) -> float:
    """PaddleOCR writes ``scale: 1./255.``; evaluate that small arithmetic without eval()."""
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    m = re.fullmatch(r"([0-9.eE+-]+)\s*(?:/\s*([0-9.eE+-]+))?", text)
    if not m:
        raise ConfigError(f"{where}: {value!r} is not a number or a/b fraction")
    try:
        return float(m.group(1)) / (float(m.group(2)) if m.group(2) else 1.0)
    except (ValueError, ZeroDivisionError):
        raise ConfigError(f"{where}: {value!r} is not a number or a/b fraction") from None


def _normalize(scale: float, mean: Any, std: Any, where: str) -> dict:
    mean = [float(mean)] * 3 if isinstance(mean, (int, float)) else [float(v) for v in mean]
    std = [float(std)] * 3 if isinstance(std, (int, float)) else [float(v) for v in std]
    if len(mean) != 3 or len(std) != 3 or any(s == 0 for s in std):
        raise ConfigError(f"{where}: mean and std need 3 values each and a non-zero std, got {mean}, {std}")
    # the same float64 alpha/beta PaddleX computes, so the float32 products agree bit for bit
    return {"op": "normalize", "alpha": [scale / s for s in std], "beta": [-m / s for m, s in zip(mean, std)]}


def _interp(value: Any, where: str) -> str:
    if isinstance(value, int) and value in INTERP_CODES:
        return INTERP_CODES[value]
    if isinstance(value, str) and value.upper() in INTERP_NAMES:
        return value.upper()
    raise ConfigError(f"{where}: interp {value!r} is not an OpenCV code 0-4 or one of {sorted(INTERP_NAMES)}")


def _unknown(name: str, where: str, known: list[str]) -> ConfigError:
    return ConfigError(f"{where}: transform {name!r} has no repogen implementation (known: {', '.join(known)}); "
                       "build with --no-pipeline to serve the model alone (pre-processing on the client)")


def _ocr_transforms(ops: list, model_name: str | None, where: str) -> tuple[str, list[dict]]:
    # PaddleX's predictors read RGB unless the config's DecodeImage says otherwise (PP-OCR configs say BGR)
    color, out = "RGB", []
    known = ["DecodeImage", "DetResizeForTest", "NormalizeImage", "ToCHWImage", "RecResizeImg", "ResizeImage",
             "CropImage"] + sorted(IGNORED)
    for i, entry in enumerate(ops or []):
        if not isinstance(entry, dict) or len(entry) != 1:
            raise ConfigError(f"{where}[{i}]: expected a one-key mapping like {{DetResizeForTest: {{...}}}}")
        (name, args), = entry.items()
        args = args or {}
        at = f"{where}[{i}] {name}"
        if name in IGNORED:
            continue
        if name == "DecodeImage":
            color = str(args.get("img_mode", "BGR")).upper()
            if color not in ("BGR", "RGB"):
                raise ConfigError(f"{at}: img_mode {color!r} is not BGR or RGB")
            if args.get("channel_first"):
                raise ConfigError(f"{at}: channel_first true is not supported (PaddleX refuses it too)")
        elif name == "DetResizeForTest":
            # PaddleX's predictor: the limit is resize_long (default 960 for PP-OCR detectors, else 736) with
            # limit_type "max" for PP-OCR detectors, "min" otherwise; image_shape / input_shape win over both
            step: dict[str, Any] = {"op": "det_resize"}
            if "image_shape" in args:
                step["image_shape"] = [int(v) for v in args["image_shape"]]
                step["keep_ratio"] = bool(args.get("keep_ratio", False))
            elif "input_shape" in args:
                step["input_shape"] = [int(v) for v in args["input_shape"]]
            else:
                in_list = model_name in MAX_LIMIT_DET_MODELS
                step["limit_side_len"] = int(args.get("resize_long", 960 if in_list else 736))
                step["limit_type"] = str(args.get("limit_type", "max" if in_list else "min"))
                if step["limit_type"] not in ("max", "min", "resize_long"):
                    raise ConfigError(f"{at}: limit_type {step['limit_type']!r} is not max, min or resize_long")
            out.append(step)
        elif name == "NormalizeImage":
            order = str(args.get("order", "hwc") or "hwc").lower()
            if order != "hwc":
                raise ConfigError(f"{at}: order {order!r}: only hwc normalisation is supported")
            out.append(_normalize(_number(args.get("scale", 1 / 255), f"{at}.scale"),
                                  args.get("mean", IMAGENET_MEAN), args.get("std", IMAGENET_STD), at))
        elif name == "ResizeImage":
            interp = _interp(args.get("interpolation", "LINEAR"), at)
            if args.get("resize_short"):
                out.append({"op": "resize_short", "target": int(args["resize_short"]), "interp": interp})
            elif args.get("size"):
                size = args["size"]
                size = [size, size] if isinstance(size, int) else [int(v) for v in size]
                out.append({"op": "resize", "target_wh": size, "keep_ratio": False, "interp": interp})
            else:
                raise ConfigError(f"{at}: needs resize_short or size")
        elif name == "CropImage":
            size = args.get("size", 224)
            out.append({"op": "center_crop", "size": [size, size] if isinstance(size, int) else [int(v) for v in size]})
        elif name == "ToCHWImage":
            out.append({"op": "to_chw"})
        elif name == "RecResizeImg":
            shape = args.get("image_shape")
            if not (isinstance(shape, list) and len(shape) == 3):
                raise ConfigError(f"{at}: image_shape must be [C, H, W], got {shape!r}")
            out.append({"op": "rec_resize", "image_shape": [int(v) for v in shape]})
        else:
            raise _unknown(name, at, known)
    return color, out


def _det_transforms(ops: list, where: str) -> list[dict]:
    out = []
    known = ["Resize", "NormalizeImage", "Permute", "PadStride"]
    for i, entry in enumerate(ops or []):
        if not isinstance(entry, dict) or "type" not in entry:
            raise ConfigError(f"{where}[{i}]: expected a mapping with a 'type' key")
        name = entry["type"]
        at = f"{where}[{i}] {name}"
        if name == "Resize":
            size = entry.get("target_size")
            if isinstance(size, int):
                size = [size, size]
            if not (isinstance(size, list) and len(size) == 2 and all(int(v) > 0 for v in size)):
                raise ConfigError(f"{at}: target_size must be [height, width], got {size!r}")
            out.append({"op": "resize", "target_wh": [int(size[1]), int(size[0])],
                        "keep_ratio": bool(entry.get("keep_ratio", False)),
                        "interp": _interp(entry.get("interp", 2), at)})
        elif name == "NormalizeImage":
            scale = 1.0 / 255.0 if entry.get("is_scale", True) else 1.0
            norm_type = entry.get("norm_type") or "mean_std"
            mean, std = (entry.get("mean", IMAGENET_MEAN), entry.get("std", IMAGENET_STD)) \
                if norm_type in ("mean_std", "none") else (0.0, 1.0)
            out.append(_normalize(scale, mean, std, at))
        elif name == "Permute":
            out.append({"op": "to_chw"})
        elif name == "PadStride":
            out.append({"op": "pad_stride", "stride": int(entry.get("stride", 32))})
        else:
            raise _unknown(name, at, known)
    return out


def _seg_transforms(ops: list, where: str) -> list[dict]:
    # PaddleX's segmentation predictor always runs Resize, Normalize, ToCHW in that order
    resize: dict[str, Any] = {"op": "resize", "target_wh": None, "keep_ratio": True, "size_divisor": 32,
                              "interp": "LINEAR"}
    norm = _normalize(1 / 255, 0.5, 0.5, where)
    for i, entry in enumerate(ops or []):
        if not isinstance(entry, dict) or "type" not in entry:
            raise ConfigError(f"{where}[{i}]: expected a mapping with a 'type' key")
        name = entry["type"]
        at = f"{where}[{i}] {name}"
        if name == "Resize":
            size = entry.get("target_size", -1)
            size = [size, size] if isinstance(size, int) else size
            if not (isinstance(size, list) and len(size) == 2):
                raise ConfigError(f"{at}: target_size must be [width, height], got {size!r}")
            resize = {"op": "resize", "target_wh": None if list(size) == [-1, -1] else [int(v) for v in size],
                      "keep_ratio": bool(entry.get("keep_ratio", True)),
                      "size_divisor": entry.get("size_divisor", 32), "interp": _interp(entry.get("interp", "LINEAR"), at)}
        elif name == "Normalize":
            norm = _normalize(1 / 255, entry.get("mean", 0.5), entry.get("std", 0.5), at)
        else:
            raise _unknown(name, at, ["Resize", "Normalize"])
    return [resize, norm, {"op": "to_chw"}]


def _dynamic_shapes(data: dict, where: str) -> dict[str, list[list[int]]]:
    backends = ((data.get("Hpi") or {}).get("backend_configs") or {})
    shapes = ((backends.get("tensorrt") or {}).get("dynamic_shapes")
              or (backends.get("paddle_infer") or {}).get("trt_dynamic_shapes") or {})
    out = {}
    for name, rng in shapes.items():
        if not (isinstance(rng, list) and len(rng) == 3 and all(isinstance(s, list) for s in rng)
                and len({len(s) for s in rng}) == 1):
            raise ConfigError(f"{where}: Hpi dynamic_shapes[{name!r}] must be [[min], [opt], [max]] of one rank, "
                              f"got {rng!r}")
        out[str(name)] = [[int(d) for d in s] for s in rng]
    return out


def _labels(values: Any, where: str) -> list[str] | None:
    if values is None:
        return None
    if not isinstance(values, list):
        raise ConfigError(f"{where}: label_list must be a list, got {type(values).__name__}")
    return [str(v) for v in values]


def _identity(data: dict) -> tuple[str | None, str | None, str]:
    """(Global.model_name, arch, exporter format) of a loaded deploy config."""
    model_name = (data.get("Global") or {}).get("model_name") or data.get("model_name")
    fmt = "paddlex" if ("Global" in data or "Hpi" in data) else "paddleseg" if "Deploy" in data else "paddledet"
    return model_name, data.get("arch"), fmt


def read_deploy_config(path: Path | str) -> DeployConfig:
    """Parse one deploy config file; every problem is a ConfigError naming the file and field."""
    path = Path(path)
    data = _load_yaml(path)
    where = str(path)
    model_name, arch, fmt = _identity(data)
    shapes = _dynamic_shapes(data, where)
    if "PreProcess" in data and "PostProcess" in data:
        post = data["PostProcess"] or {}
        pname = post.get("name")
        color, transforms = _ocr_transforms((data["PreProcess"] or {}).get("transform_ops"),
                                            model_name, f"{where}: PreProcess.transform_ops")
        if pname == "DBPostProcess":
            params = {"thresh": float(post.get("thresh", 0.3)), "box_thresh": float(post.get("box_thresh", 0.6)),
                      "max_candidates": int(post.get("max_candidates", 1000)),
                      "unclip_ratio": float(post.get("unclip_ratio", 2.0)),
                      "use_dilation": bool(post.get("use_dilation", False)),
                      "score_mode": str(post.get("score_mode", "fast")), "box_type": str(post.get("box_type", "quad"))}
            if params["score_mode"] not in ("fast", "slow") or params["box_type"] not in ("quad", "poly"):
                raise ConfigError(f"{where}: PostProcess score_mode/box_type must be fast|slow / quad|poly")
            if not any(t["op"] == "det_resize" for t in transforms):
                raise ConfigError(f"{where}: a DBPostProcess model needs DetResizeForTest in its transform_ops")
            return DeployConfig(path, fmt, "ocr_det", model_name, arch, color, transforms, params,
                                dynamic_shapes=shapes)
        if pname == "CTCLabelDecode":
            chars = post.get("character_dict")
            if not isinstance(chars, list) or not chars:
                raise ConfigError(f"{where}: PostProcess.character_dict must be a non-empty list of characters")
            if not any(t["op"] == "rec_resize" for t in transforms):
                raise ConfigError(f"{where}: a CTCLabelDecode model needs RecResizeImg in its transform_ops")
            chars = [str(c) for c in chars]
            if chars[0] == "blank":
                chars = chars[1:]
            return DeployConfig(path, fmt, "ocr_rec", model_name, arch, color, transforms,
                                {"use_space_char": bool(post.get("use_space_char", True))}, characters=chars,
                                dynamic_shapes=shapes)
        if pname is None and isinstance(post.get("Topk"), dict):
            topk = post["Topk"]
            labels = _labels(topk.get("label_list"), f"{where}: PostProcess.Topk.label_list")
            return DeployConfig(path, fmt, "classification", model_name, arch, color, transforms,
                                {"topk": int(topk.get("topk", 5))}, labels=labels, dynamic_shapes=shapes)
        raise ConfigError(f"{where}: PostProcess.name {pname!r} has no repogen implementation "
                          "(known: DBPostProcess, CTCLabelDecode, Topk); build with --no-pipeline to serve the model "
                          "alone")
    if "Preprocess" in data:
        labels = _labels(data.get("label_list"), f"{where}: label_list")
        transforms = _det_transforms(data["Preprocess"], f"{where}: Preprocess")
        threshold = float(data.get("draw_threshold", 0.5))
        return DeployConfig(path, fmt, "detection", model_name, arch, "RGB", transforms,
                            {"threshold": threshold}, labels=labels, dynamic_shapes=shapes)
    if "Deploy" in data:
        deploy = data["Deploy"] or {}
        transforms = _seg_transforms(deploy.get("transforms"), f"{where}: Deploy.transforms")
        return DeployConfig(path, fmt, "segmentation", model_name, arch, "RGB", transforms, {},
                            dynamic_shapes=shapes)
    raise ConfigError(f"{where}: not a deploy config repogen knows: expected PreProcess/PostProcess (PaddleX OCR), "
                      "Preprocess (PaddleX / PaddleDetection detection) or Deploy.transforms (PaddleSeg)")


def read_model_facts(path: Path | str) -> DeployConfig:
    """What serving the model alone takes from a deploy config, whatever its transforms and post-processors:
    ``Global.model_name``, the Hpi dynamic shapes, and whether it is a PaddleDetection-style detector (whose
    [M, 6] box block must not be batched across requests). ``kind`` is "model" unless it is such a detector;
    no transforms, so profiles come from the dynamic shapes or from the user. Used by --no-pipeline builds and
    for default names, so a config repogen cannot make a pipeline of never blocks the model itself."""
    path = Path(path)
    data = _load_yaml(path)
    model_name, arch, fmt = _identity(data)
    kind = "detection" if "Preprocess" in data else "model"
    return DeployConfig(path, fmt, kind, model_name, arch, "BGR", [], {},
                        dynamic_shapes=_dynamic_shapes(data, str(path)))


def input_roles(input_names: list[str], where: str) -> dict[str, str]:
    """Which model input takes the image and which take PaddleDetection's ``im_shape`` / ``scale_factor``."""
    roles = {}
    for n in input_names:
        low = n.lower()
        roles[n] = "im_shape" if low in ("im_shape", "im_size") else "scale_factor" if low == "scale_factor" \
            else "image"
    if list(roles.values()).count("image") != 1:
        raise ConfigError(f"{where}: cannot tell which input takes the image among {input_names}")
    return roles
