"""PaddleOCR 2.x exports: a bare ``*_infer`` folder -> the deploy config PaddleOCR's documented defaults make.

PaddleOCR 2.x ships its models as ``inference.pdmodel`` + ``inference.pdiparams`` alone (``ch_PP-OCRv4_det_infer``,
``en_PP-OCRv4_rec_infer``, ``ch_ppocr_mobile_v2.0_cls_infer``): what its ``tools/infer`` scripts apply around
them are command-line defaults, and a recognizer's dictionary is a separate text file (``ppocr_keys_v1.txt``,
``en_dict.txt``). This module writes those defaults as a PaddleX ``inference.yml`` - the form
:func:`repogen.pipelines.deploy_config.read_deploy_config` reads - so a generated config and a user's go through
the same reader and schema, and the file the build writes beside the model can be read, edited and rebuilt from.

PaddleOCR 2.x's defaults (its ``tools/infer`` arguments, as its documentation lists them):

* detector (DB): ``det_limit_side_len 960`` with ``det_limit_type max``, ImageNet mean/std on BGR pixels scaled
  to [0, 1], ``det_db_thresh 0.3``, ``det_db_box_thresh 0.6``, ``det_db_unclip_ratio 1.5``, 1000 candidates,
  no dilation, ``det_db_score_mode fast``, quadrilateral boxes;
* recognizer (CTC): ``rec_image_shape 3,48,320`` (height 48, width from the aspect ratio, [-1, 1]), the
  dictionary one character a line with ``" "`` appended (``use_space_char``);
* direction classifier: ``cls_image_shape 3,48,192`` (height 48 keeping the ratio, width at most 192,
  [-1, 1], zeros on the right), ``label_list ['0', '180']``, ``cls_thresh 0.9``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from repogen.errors import ConfigError
from repogen.pipelines.bounded_yaml import dump_yaml, read_regular_file
from repogen.locks import private_cache_file

PIPELINE_KINDS = ("ocr-det", "ocr-rec", "ocr-cls")  # --pipeline / spec ``pipeline = "ocr-rec"``
WHAT = {"ocr-det": "text detector", "ocr-rec": "text recognizer", "ocr-cls": "direction classifier"}
FOLDER_SUFFIXES = {"_det_infer": "ocr-det", "_rec_infer": "ocr-rec", "_cls_infer": "ocr-cls"}
DICTIONARY_MAX_BYTES = 8 << 20  # 100,000 characters and more
CONFIG_NAME = "inference.yml"

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
DET_LIMIT_SIDE_LEN, DET_LIMIT_TYPE = 960, "max"
DB_POST = {"name": "DBPostProcess", "thresh": 0.3, "box_thresh": 0.6, "max_candidates": 1000, "unclip_ratio": 1.5,
           "use_dilation": False, "score_mode": "fast", "box_type": "quad"}
REC_IMAGE_SHAPE = [3, 48, 320]  # PaddleOCR >= 2.6; its 2.0 models fix a height of 32 (then 3,32,320), read from them
CLS_IMAGE_SHAPE = [3, 48, 192]
CLS_LABELS = ["0", "180"]
CLS_THRESH = 0.9
DEFAULT_INPUT = "x"  # the image input of every PaddleOCR 2.x export
# optimization profiles [min, opt, max] per kind: PaddleOCR detects one image at a time (PaddleX's own PP-OCR
# detector configs say batch 1, sides up to 4000); recognizer and classifier batches of up to 8 crops
PROFILES = {"ocr-det": [[1, 3, 32, 32], [1, 3, 960, 960], [1, 3, 4000, 4000]],
            "ocr-rec": [[1, 3, 48, 16], [1, 3, 48, 320], [8, 3, 48, 3200]],
            "ocr-cls": [[1, 3, 48, 192], [1, 3, 48, 192], [8, 3, 48, 192]]}


def kind_of_folder(model: Path | str) -> str | None:
    """``ocr-det`` / ``ocr-rec`` / ``ocr-cls`` for a model in a folder named as PaddleOCR names its exports
    (``*_det_infer``, ``*_rec_infer``, ``*_cls_infer``); None otherwise."""
    p = Path(model)
    name = (p if p.is_dir() else p.parent).resolve().name.lower()
    return next((kind for suffix, kind in FOLDER_SUFFIXES.items() if name.endswith(suffix)), None)


def find_dictionary(model: Path | str) -> Path | None:
    """The character dictionary beside a recognizer: the one ``.txt`` file of its folder (of several, the one whose
    name says dict or keys); None when there is none. Several candidates are an error: the user names one."""
    p = Path(model)
    folder = p if p.is_dir() else p.parent
    found = sorted(f for f in folder.glob("*.txt") if f.is_file())
    if len(found) > 1:
        named = [f for f in found if "dict" in f.name.lower() or "keys" in f.name.lower()]
        found = named if named else found
    if len(found) > 1:
        raise ConfigError(f"{folder}: several text files could be the recognizer's dictionary "
                          f"({', '.join(f.name for f in found)}): name it with --char-dict FILE (spec key char_dict)")
    return found[0] if found else None


def read_dictionary(path: Path | str) -> list[str]:
    """The characters as PaddleOCR reads a dictionary: one per line, the line's ``\\r``/``\\n`` stripped (a line
    may be a space)."""
    data = read_regular_file(path, DICTIONARY_MAX_BYTES, "character dictionary")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: the character dictionary is not UTF-8 text (byte {exc.start})") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the last line
    chars = [line.strip("\r\n") for line in lines]
    if not chars:
        raise ConfigError(f"{path}: the character dictionary is empty (one character a line expected)")
    return chars


def rec_image_shape(input_shape: list[int] | None) -> list[int]:
    """A recognizer's [C, H, W]: PaddleOCR's 3x48x320, at the height the model's input fixes if it fixes another
    (PaddleOCR 2.0's recognizers take 32 rows: its default then was 3,32,320)."""
    dims = [int(d) for d in (input_shape or [])]
    height = dims[2] if len(dims) == 4 and dims[2] > 0 else REC_IMAGE_SHAPE[1]
    return [REC_IMAGE_SHAPE[0], height, REC_IMAGE_SHAPE[2]]


def effective_config(kind: str, model_name: str, characters: list[str] | None = None,
                     input_name: str = DEFAULT_INPUT, input_shape: list[int] | None = None) -> dict[str, Any]:
    """PaddleOCR 2.x's defaults for ``kind`` in PaddleX's ``inference.yml`` form (``characters``: a recognizer's
    dictionary, without the space PaddleOCR appends; ``input_name`` / ``input_shape``: the model's image input,
    whose profile the ``Hpi`` section gives)."""
    decode = {"DecodeImage": {"img_mode": "BGR", "channel_first": False}}  # PaddleOCR works on cv2.imread's BGR
    if kind == "ocr-det":
        # PaddleX's predictor reads the side limit from resize_long (PaddleOCR's det_limit_side_len)
        ops = [decode, {"DetResizeForTest": {"resize_long": DET_LIMIT_SIDE_LEN, "limit_type": DET_LIMIT_TYPE}},
               {"NormalizeImage": {"scale": "1./255.", "mean": IMAGENET_MEAN, "std": IMAGENET_STD, "order": "hwc"}},
               {"ToCHWImage": None}]
        post: dict[str, Any] = dict(DB_POST)
    elif kind == "ocr-rec":
        if not characters:
            raise ConfigError(f"{model_name}: a PaddleOCR 2.x text recognizer needs its character dictionary")
        ops = [decode, {"RecResizeImg": {"image_shape": rec_image_shape(input_shape)}}]
        post = {"name": "CTCLabelDecode", "use_space_char": True, "character_dict": list(characters)}
    elif kind == "ocr-cls":
        ops = [decode, {"ClsResizeImg": {"image_shape": CLS_IMAGE_SHAPE}}]
        post = {"name": "ClsPostProcess", "label_list": CLS_LABELS, "cls_thresh": CLS_THRESH}
    else:
        raise ConfigError(f"{model_name}: pipeline {kind!r} is not one of {', '.join(PIPELINE_KINDS)}")
    profile = [list(s) for s in PROFILES[kind]]
    if kind == "ocr-rec":
        for s in profile:
            s[2] = rec_image_shape(input_shape)[1]
    shapes = {input_name: profile}
    return {"Global": {"model_name": model_name},
            "Hpi": {"backend_configs": {"paddle_infer": {"trt_dynamic_shapes": shapes},
                                        "tensorrt": {"dynamic_shapes": shapes}}},
            "PreProcess": {"transform_ops": ops}, "PostProcess": post}


def config_text(kind: str, model_name: str, characters: list[str] | None = None,
                dictionary: Path | None = None, input_name: str = DEFAULT_INPUT,
                input_shape: list[int] | None = None) -> str:
    """:func:`effective_config` as the YAML file the build writes beside the model, with a header saying where
    its values come from."""
    header = [f"PaddleOCR 2.x {WHAT.get(kind, kind)}: PaddleOCR's defaults, written by repogen for this export "
              "(it has no deploy config).",
              "Read like a PaddleX inference.yml: edit it, then rebuild from this folder (repogen build FOLDER ...)."]
    if kind == "ocr-det":
        header.append("DetResizeForTest.resize_long is PaddleOCR's det_limit_side_len, limit_type its det_limit_type.")
    if kind == "ocr-rec" and dictionary is not None:
        header.append(f"character_dict: {Path(dictionary).name} ({len(characters or [])} characters); "
                      "use_space_char appends ' '.")
    if kind == "ocr-cls":
        header.append("cls_thresh: ocr_system turns a crop 180 degrees only when its '180' score is above it.")
    header.append("Hpi: the optimization profile of the model's input ([min, opt, max] shapes).")
    return dump_yaml(effective_config(kind, model_name, characters, input_name, input_shape), "\n".join(header))


def write_config(kind: str, model_name: str, dictionary: Path | None = None, input_name: str = DEFAULT_INPUT,
                 input_shape: list[int] | None = None) -> Path:
    """The generated ``inference.yml`` for an export (a cached file the build reads and copies beside the model)."""
    characters = read_dictionary(dictionary) if kind == "ocr-rec" and dictionary is not None else None
    if kind == "ocr-rec" and characters is None:
        raise ConfigError(f"{model_name}: a PaddleOCR 2.x text recognizer needs its character dictionary: "
                          "--char-dict FILE (spec key char_dict), or the .txt file beside the model")
    return private_cache_file(config_text(kind, model_name, characters, dictionary, input_name, input_shape), CONFIG_NAME,
                              "paddleocr2")
