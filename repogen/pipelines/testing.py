"""Zoo-style pipeline exports for tests and benchmarks: tiny models saved by Paddle itself, each with the deploy
config its real exporter writes beside it (PaddleX ``inference.yml``, PaddleDetection ``infer_cfg.yml``,
PaddleSeg ``deploy.yaml``), plus generated images (rendered text, drawn shapes; nothing downloaded).

The networks are small but not random noise: the text detector's probability map is high on dark ink, so DB
post-processing finds the rendered lines; the recognizer, detector and segmenter are fixed-seed networks whose
outputs depend on the image. Models are saved once per cache folder in a subprocess (Paddle's save needs its
own process-wide flags).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from repogen.extras import require

CHARACTERS = list("0123456789abcdefghijklmnopqrstuvwxyz")

OCR_DET_YML = """\
Global:
  model_name: PP-OCRv5_mobile_det
Hpi:
  backend_configs:
    paddle_infer:
      trt_dynamic_shapes: &id001
        x:
        - [1, 3, 32, 32]
        - [1, 3, 736, 736]
        - [1, 3, 1280, 1280]
    tensorrt:
      dynamic_shapes: *id001
PreProcess:
  transform_ops:
  - DecodeImage:
      channel_first: false
      img_mode: BGR
  - DetLabelEncode: null
  - DetResizeForTest:
      resize_long: 320
  - NormalizeImage:
      mean: [0.485, 0.456, 0.406]
      order: hwc
      scale: 1./255.
      std: [0.229, 0.224, 0.225]
  - ToCHWImage: null
  - KeepKeys:
      keep_keys: [image, shape, polys, ignore_tags]
PostProcess:
  name: DBPostProcess
  thresh: 0.3
  box_thresh: 0.6
  max_candidates: 1000
  unclip_ratio: 1.5
"""

OCR_REC_YML = """\
Global:
  model_name: PP-OCRv5_mobile_rec
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

LAYOUT_YML = """\
Global:
  model_name: PP-DocLayout-L
Hpi:
  backend_configs:
    paddle_infer:
      trt_dynamic_shapes: &id001
        image: [[1, 3, 480, 480], [1, 3, 480, 480], [8, 3, 480, 480]]
        im_shape: [[1, 2], [1, 2], [8, 2]]
        scale_factor: [[1, 2], [1, 2], [8, 2]]
    tensorrt:
      dynamic_shapes: *id001
arch: PicoDet
draw_threshold: 0.5
Preprocess:
- interp: 2
  keep_ratio: false
  target_size: [480, 480]
  type: Resize
- mean: [0.0, 0.0, 0.0]
  norm_type: none
  std: [1.0, 1.0, 1.0]
  type: NormalizeImage
- type: Permute
label_list: [paragraph_title, image, text, number, abstract, content, figure_title, formula, table,
  table_title, reference, doc_title, footnote, header, algorithm, footer, seal, chart_title, chart,
  formula_number, header_image, footer_image, aside_text]
"""

PPDET_YML = """\
mode: paddle
draw_threshold: 0.3
metric: COCO
use_dynamic_shape: false
arch: YOLO
min_subgraph_size: 3
Preprocess:
- interp: 2
  keep_ratio: true
  target_size: [320, 320]
  type: Resize
- is_scale: true
  mean: [0.485, 0.456, 0.406]
  std: [0.229, 0.224, 0.225]
  type: NormalizeImage
- type: Permute
- stride: 32
  type: PadStride
label_list:
- person
- bicycle
- car
- dog
- cat
"""

SEG_YML = """\
Deploy:
  model: inference.pdmodel
  params: inference.pdiparams
  transforms:
  - type: Resize
    target_size: [256, 192]
  - type: Normalize
    mean: [0.5, 0.5, 0.5]
    std: [0.5, 0.5, 0.5]
"""


CLS_YML = """\
Global:
  model_name: PP-LCNet_x1_0
PreProcess:
  transform_ops:
  - ResizeImage:
      resize_short: 72
  - CropImage:
      size: 64
  - NormalizeImage:
      channel_num: 3
      mean: [0.485, 0.456, 0.406]
      order: ''
      scale: 0.00392156862745098
      std: [0.229, 0.224, 0.225]
  - ToCHWImage: null
PostProcess:
  Topk:
    topk: 3
    label_list: [circle, square, stripe, dots, blank, noise]
"""


# a realistic-size text detector: the ink map of TextDet plus a MobileNetV2 (x0.5) backbone and a DB-style
# upsampled head, at PP-OCRv5's own 960-pixel resize: the compute of a mobile detector, boxes still on the ink
OCR_DET_MOBILENET_YML = OCR_DET_YML.replace("resize_long: 320", "resize_long: 960")

# a realistic-size classifier: MobileNetV2 (3.5 M parameters, ~300 MFLOPs) on PaddleX's ImageNet recipe, so a
# benchmark can show the serving overhead against a network whose compute is that of a real export
CLS_MOBILENET_YML = """\
Global:
  model_name: MobileNetV2_x1_0
PreProcess:
  transform_ops:
  - ResizeImage:
      resize_short: 256
  - CropImage:
      size: 224
  - NormalizeImage:
      channel_num: 3
      mean: [0.485, 0.456, 0.406]
      order: ''
      scale: 0.00392156862745098
      std: [0.229, 0.224, 0.225]
  - ToCHWImage: null
PostProcess:
  Topk:
    topk: 5
    label_list: [{labels}]
"""


TEXTLINE_YML = """\
Global:
  model_name: PP-LCNet_x0_25_textline_ori
PreProcess:
  transform_ops:
  - ResizeImage:
      size: [160, 80]
  - NormalizeImage:
      channel_num: 3
      mean: [0.485, 0.456, 0.406]
      order: ''
      scale: 0.00392156862745098
      std: [0.229, 0.224, 0.225]
  - ToCHWImage: null
PostProcess:
  Topk:
    topk: 1
    label_list: [0_degree, 180_degree]
"""


def ocr_rec_yml(chars: list[str] = CHARACTERS) -> str:
    import json

    return OCR_REC_YML.format(chars="\n".join(f"  - {json.dumps(c)}" for c in chars))


# -- the networks (built and saved inside a subprocess) ------------------------------------------------------------

_SAVE = r'''
import sys, numpy as np, paddle
import paddle.nn as nn
import paddle.nn.functional as F
paddle.seed(7)
np.random.seed(7)
kind, out, fmt = sys.argv[1], sys.argv[2], sys.argv[3]
NCHARS = int(sys.argv[4])

class TextDet(nn.Layer):
    """Probability high on dark ink: channel mean negated, max-pooled so letters merge into word blobs,
    through a steep sigmoid (like DB's probability map)."""
    def __init__(self):
        super().__init__()
        self.mean = nn.Conv2D(3, 1, 1, bias_attr=False)
        self.mean.weight.set_value(np.full((1, 3, 1, 1), -1.0 / 3.0, np.float32))
    def forward(self, x):
        ink = F.max_pool2d(self.mean(x), kernel_size=7, stride=1, padding=3)
        return F.sigmoid(4.0 * ink)

class TextDetMobile(TextDet):
    def __init__(self):
        super().__init__()
        self.backbone = paddle.vision.models.mobilenet_v2(scale=0.5, with_pool=False, num_classes=-1).features
        self.head = nn.Conv2D(1280, 1, 1)
    def forward(self, x):
        ink = F.max_pool2d(self.mean(x), kernel_size=7, stride=1, padding=3)
        feat = F.interpolate(self.head(self.backbone(x)), size=paddle.shape(x)[2:], mode="bilinear")
        return F.sigmoid(4.0 * ink + 1e-3 * paddle.tanh(feat))

class TextRec(nn.Layer):
    """CRNN-shaped: conv features, height pooled away, one class distribution per 8-pixel column."""
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2D(3, 16, 3, padding=1)
        self.pool = nn.AvgPool2D((48, 8), (48, 8))
        self.fc = nn.Linear(16, NCHARS + 2)
        bias = np.zeros(NCHARS + 2, np.float32)
        bias[0] = -1.5  # blank (class 0) less likely, so lines decode to non-empty texts
        bias[1:] = np.random.uniform(-1, 1, NCHARS + 1)
        self.fc.bias.set_value(bias)
    def forward(self, x):
        f = self.pool(F.relu(self.conv(x)))              # [N, 16, 1, W/8]
        f = paddle.transpose(paddle.squeeze(f, 2), [0, 2, 1])
        return F.softmax(self.fc(f) * 4.0, axis=-1)

class Detector(nn.Layer):
    """PaddleDetection's contract: image, im_shape, scale_factor -> boxes [M, 6] in source pixels, box_num."""
    def __init__(self, k=6, classes=5):
        super().__init__()
        self.k, self.classes = k, classes
        self.conv = nn.Conv2D(3, 8, 3, stride=2, padding=1)
        self.fc = nn.Linear(8, k * (4 + 1 + classes))
    def forward(self, im_shape, image, scale_factor):
        f = paddle.mean(F.relu(self.conv(image)), axis=[2, 3])
        p = paddle.reshape(self.fc(f) * 3.0, [-1, self.k, 4 + 1 + self.classes])
        src = im_shape / scale_factor                  # [N, 2] source (h, w)
        h = paddle.unsqueeze(src[:, 0:1], 2)
        w = paddle.unsqueeze(src[:, 1:2], 2)
        x1 = F.sigmoid(p[:, :, 0:1]) * w * 1.1 - 0.05 * w
        y1 = F.sigmoid(p[:, :, 1:2]) * h * 1.1 - 0.05 * h
        x2 = x1 + F.sigmoid(p[:, :, 2:3]) * w * 0.8
        y2 = y1 + F.sigmoid(p[:, :, 3:4]) * h * 0.8
        score = F.sigmoid(p[:, :, 4:5])
        cls = paddle.cast(paddle.argmax(p[:, :, 5:], axis=-1, keepdim=True), "float32")
        boxes = paddle.reshape(paddle.concat([cls, score, x1, y1, x2, y2], axis=-1), [-1, 6])
        num = paddle.full([paddle.shape(image)[0]], self.k, "int32")
        return boxes, num

class Seg(nn.Layer):
    def __init__(self, classes=4):
        super().__init__()
        self.conv1 = nn.Conv2D(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2D(8, classes, 1)
    def forward(self, x):
        return paddle.argmax(self.conv2(F.relu(self.conv1(x))), axis=1).astype("int32")

class Cls(nn.Layer):
    def __init__(self, classes=6):
        super().__init__()
        self.conv = nn.Conv2D(3, 8, 3, stride=2, padding=1)
        self.fc = nn.Linear(8, classes)
    def forward(self, x):
        return F.softmax(self.fc(paddle.mean(F.relu(self.conv(x)), axis=[2, 3])) * 3.0, axis=-1)

S = paddle.static.InputSpec
models = {
    "ocr_det": (TextDet, [S([None, 3, None, None], "float32", "x")]),
    "ocr_rec": (TextRec, [S([None, 3, 48, None], "float32", "x")]),
    # PaddleDetection's input order (PaddleX feeds im_shape, image, scale_factor by position)
    "det": (Detector, [S([None, 2], "float32", "im_shape"), S([None, 3, None, None], "float32", "image"),
                       S([None, 2], "float32", "scale_factor")]),
    "seg": (Seg, [S([None, 3, None, None], "float32", "x")]),
    "cls": (Cls, [S([None, 3, 64, 64], "float32", "x")]),
    "ocr_det_mobilenet": (TextDetMobile, [S([None, 3, None, None], "float32", "x")]),
    "cls_mobilenet": (lambda: nn.Sequential(paddle.vision.models.mobilenet_v2(num_classes=1000), nn.Softmax()),
                      [S([None, 3, 224, 224], "float32", "x")]),
    # text-line orientation (0_degree / 180_degree) in PaddleX textline_ori layout
    "textline": (lambda: Cls(2), [S([None, 3, 80, 160], "float32", "x")]),
}
cls, spec = models[kind]
m = cls(); m.eval()
paddle.jit.save(m, out + "/inference", input_spec=spec)
'''

MODELS = {"ocr_det": OCR_DET_YML, "ocr_rec": None, "det": PPDET_YML, "layout": LAYOUT_YML, "seg": SEG_YML,
          "cls": CLS_YML, "textline": TEXTLINE_YML, "ocr_det_mobilenet": OCR_DET_MOBILENET_YML,
          "cls_mobilenet": CLS_MOBILENET_YML.format(labels=", ".join(f"class_{i}" for i in range(1000)))}
CONFIG_FILE = {"ocr_det": "inference.yml", "ocr_rec": "inference.yml", "det": "infer_cfg.yml",
               "layout": "inference.yml", "seg": "deploy.yaml", "cls": "inference.yml", "textline": "inference.yml",
               "cls_mobilenet": "inference.yml", "ocr_det_mobilenet": "inference.yml"}
# what ``repogen build`` names each export when the user gives no name: the exporter's Global.model_name
# (PaddleX inference.yml), else the folder name (PaddleDetection's infer_cfg.yml and PaddleSeg's deploy.yaml
# carry none: ``arch: YOLO`` is a family, not a model)
MODEL_NAME = {"ocr_det": "PP-OCRv5_mobile_det", "ocr_rec": "PP-OCRv5_mobile_rec", "det": "det",
              "layout": "PP-DocLayout-L", "seg": "seg", "cls": "PP-LCNet_x1_0",
              "textline": "PP-LCNet_x0_25_textline_ori", "cls_mobilenet": "MobileNetV2_x1_0",
              "ocr_det_mobilenet": "PP-OCRv5_mobile_det"}


def save_model(kind: str, folder: Path, fmt: str = "pir") -> Path:
    """Save one test export (``ocr_det``, ``ocr_rec``, ``det``, ``layout``, ``seg``) into ``folder``."""
    folder = Path(folder)
    if (folder / "inference.pdiparams").is_file():
        return folder
    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    script = tmp / "save.py"
    script.write_text(_SAVE)
    env = {**os.environ, "GLOG_minloglevel": "3"}
    if fmt == "paddle2":
        env["FLAGS_enable_pir_api"] = "0"
    net = "det" if kind == "layout" else kind
    proc = subprocess.run([sys.executable, str(script), net, str(tmp), fmt, str(len(CHARACTERS))],
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"saving {kind} failed:\n{proc.stderr[-3000:]}")
    script.unlink()
    text = ocr_rec_yml() if kind == "ocr_rec" else MODELS[kind]
    (tmp / CONFIG_FILE[kind]).write_text(text, encoding="utf-8")
    try:
        os.rename(tmp, folder)
    except OSError:  # another process won the race: its copy is complete
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return folder


#: the small exports the tests use (the *_mobilenet ones, realistic compute, are for benchmarks)
TEST_KINDS = tuple(k for k in CONFIG_FILE if not k.endswith("_mobilenet"))


def save_models(root: Path, kinds: tuple[str, ...] = TEST_KINDS) -> dict[str, Path]:
    """Save several exports at once (one Paddle subprocess each, run side by side)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(len(kinds)) as pool:
        return dict(zip(kinds, pool.map(lambda k: save_model(k, Path(root) / k), kinds)))


# -- images ----------------------------------------------------------------------------------------------------------

def text_image(words: list[str], seed: int = 0, size: tuple[int, int] = (200, 320)) -> np.ndarray:
    """Black words on a light background, one per line, at random offsets (BGR uint8)."""
    cv2 = require("cv2", extra="pipelines", for_what="drawing test images")

    rng = np.random.default_rng(seed)
    h, w = size
    img = np.full((h, w, 3), 235, np.uint8)
    img += rng.integers(0, 15, img.shape, dtype=np.uint8)
    y = 30
    for word in words:
        x = int(rng.integers(5, max(6, w // 3)))
        cv2.putText(img, word, (x, y), cv2.FONT_HERSHEY_SIMPLEX, float(rng.uniform(0.6, 0.9)), (20, 20, 20), 2,
                    cv2.LINE_AA)
        y += int(rng.integers(32, 48))
        if y > h - 10:
            break
    return img


def shapes_image(seed: int = 0, size: tuple[int, int] = (180, 240)) -> np.ndarray:
    """Filled rectangles and circles in random colours (BGR uint8)."""
    cv2 = require("cv2", extra="pipelines", for_what="drawing test images")

    rng = np.random.default_rng(seed)
    h, w = size
    img = rng.integers(0, 60, (h, w, 3), dtype=np.uint8)
    for _ in range(int(rng.integers(2, 6))):
        color = tuple(int(c) for c in rng.integers(60, 255, 3))
        x, y = int(rng.integers(0, w - 20)), int(rng.integers(0, h - 20))
        if rng.random() < 0.5:
            cv2.rectangle(img, (x, y), (x + int(rng.integers(10, w // 2)), y + int(rng.integers(10, h // 2))), color, -1)
        else:
            cv2.circle(img, (x, y), int(rng.integers(5, 40)), color, -1)
    return img


def encode(img: np.ndarray, ext: str = ".png") -> bytes:
    cv2 = require("cv2", extra="pipelines", for_what="drawing test images")

    ok, buf = cv2.imencode(ext, img)
    if not ok:
        raise ValueError(f"OpenCV could not encode {img.shape} as {ext}")
    return buf.tobytes()
