"""The one input generator: what every check, build, validate and benchmark feeds a model.

Two kinds of input:

* **random tensors** for a graph's inputs at given shapes (:func:`random_inputs`, :func:`random_array`): seeded;
  floats uniform in [-1, 1), integers in [0, 8), booleans 0/1. Uniform rather than normal: bounded values keep
  exp/pow/log/sqrt layers inside their domain and FP16 range (a normal draw's 4-sigma tail is what overflows
  first), integer ids stay valid indices for small embedding tables, and the tolerances the checks use were
  measured on this distribution.
* **realistic inputs** where a deploy config exists (:func:`task_inputs`): generated BGR images - rendered text
  lines and pages of several lines (some upside down), drawn shapes - run through the deploy config's own
  pre-processing (``repogen.pipelines.ops.preprocess`` / ``model_feeds``, the transforms the served pipeline
  runs), so a trained model sees what its users send and its outputs mean something to post-processing.

Text is drawn with OpenCV's Hershey fonts (``cv2.putText``), which cover printable ASCII: a recognizer's
dictionary is sampled for the characters those fonts can draw (Latin letters, digits and punctuation are in the
Chinese PP-OCR dictionary too). Ink and paper are tinted, not grey, so a swapped channel order changes what a
model sees. OpenCV (the ``pipelines`` extra) is imported only by the image functions: random inputs need NumPy
alone, so ``repogen check`` on a plain model does not need it.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import numpy as np

from repogen.errors import ConfigError
from repogen.extras import require

if TYPE_CHECKING:
    from repogen.pipelines.deploy_config import DeployConfig

FLOAT_RANGE = (-1.0, 1.0)
INT_HIGH = 8  # integers drawn from [0, INT_HIGH): valid ids for any embedding table of 8 rows or more


# -- random tensors ------------------------------------------------------------------------------------------------

def random_array(rng: np.random.Generator, dtype: Any, shape: Sequence[int]) -> np.ndarray:
    """One seeded tensor of ``dtype``: floats uniform in [-1, 1), integers in [0, 8), booleans 0/1."""
    dt = np.dtype(dtype)
    shape = tuple(int(d) for d in shape)
    if dt.kind == "b":
        return rng.integers(0, 2, shape).astype(bool)
    if dt.kind in "iu":
        return rng.integers(0, INT_HIGH, shape).astype(dt)
    return rng.uniform(*FLOAT_RANGE, shape).astype(dt)


def random_inputs(graph: Any, shapes: Mapping[str, Sequence[int]], seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded random feeds for every input of ``graph`` (a ``repogen.ir.Graph``): ``shapes`` gives the shape of
    an input; without one, its static shape (a dynamic batch dim becomes 1). Inputs are drawn in graph order
    from one generator, so the same seed and shapes give the same feeds."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for v in graph.input_values():
        shape = shapes.get(v.name)
        if shape is None:
            if v.shape is None or any(d < 0 for d in v.shape[1:]):
                raise ConfigError(f"input {v.name!r} has dynamic dims {list(v.shape or [])}: give --shape "
                                  f"{v.name}:DIMS or --inputs FILE.npz")
            shape = tuple(1 if d < 0 else d for d in v.shape)
        feeds[v.name] = random_array(rng, v.dtype, shape)
    return feeds


# -- generated images ----------------------------------------------------------------------------------------------

#: what the Hershey fonts draw: printable ASCII without the space (a space is drawn as a gap)
HERSHEY_CHARACTERS = frozenset(string.ascii_letters + string.digits + string.punctuation)
VOCABULARY = ("invoice", "total", "amount", "date", "paddle", "triton", "model", "server", "page", "line",
              "order", "number", "price", "street", "city", "phone", "report", "summary", "table", "figure",
              "chapter", "result", "value", "batch", "image", "speed", "hello", "world", "station", "north",
              "delivery", "account", "balance", "receipt", "customer", "product", "quantity", "payment")


@dataclass
class TextLine:
    """One rendered line: its text, its corners in the image (top-left, top-right, bottom-right, bottom-left of
    the text as written, float32 [4, 2] x/y), and whether it was drawn upside down."""

    text: str
    box: np.ndarray
    upside_down: bool = False


@dataclass
class GeneratedImage:
    """A generated BGR uint8 image and what was drawn on it (the lines of text; empty for shapes)."""

    image: np.ndarray
    lines: list[TextLine] = field(default_factory=list)
    what: str = ""


def _cv2() -> Any:
    return require("cv2", extra="pipelines", for_what="generating images")  # only the image functions need it


def drawable(characters: Iterable[str] | None) -> str:
    """The characters of a recognizer's dictionary that the Hershey fonts draw (all of them when None)."""
    if characters is None:
        return "".join(sorted(HERSHEY_CHARACTERS))
    return "".join(sorted({c for c in characters if c in HERSHEY_CHARACTERS}))


def sample_texts(count: int, seed: int = 0, characters: Iterable[str] | None = None, max_words: int = 3,
                 spaces: bool = True) -> list[str]:
    """``count`` short lines as documents have them (words, capitalised words, numbers, prices, dates, codes),
    using only ``characters`` (a recognizer's dictionary; None: any the fonts draw); words are joined by
    spaces unless ``spaces`` is False (a recognizer without ``use_space_char`` cannot read them)."""
    allowed = set(drawable(characters))
    if not allowed:
        raise ConfigError("the dictionary has no character OpenCV's Hershey fonts can draw (Latin letters, "
                          "digits, punctuation): no text can be generated for it")
    rng = np.random.default_rng(seed)
    letters = [c for c in string.ascii_letters + string.digits if c in allowed] or sorted(allowed)

    def token() -> str:
        pick = rng.random()
        if pick < 0.45:
            word = str(rng.choice(VOCABULARY))
            return word.capitalize() if rng.random() < 0.4 else word
        if pick < 0.6:
            return str(int(rng.integers(1, 99999)))
        if pick < 0.7:
            return f"${int(rng.integers(1, 999))}.{int(rng.integers(0, 100)):02d}"
        if pick < 0.8:
            return f"20{int(rng.integers(10, 30))}-{int(rng.integers(1, 13)):02d}-{int(rng.integers(1, 29)):02d}"
        return "".join(rng.choice(letters, int(rng.integers(3, 8))))

    out = []
    while len(out) < count:
        words = [token() for _ in range(int(rng.integers(1, max_words + 1)))]
        kept = [w for w in ("".join(c for c in w if c in allowed) for w in words) if w]
        text = (" " if spaces else "").join(kept)
        if text:
            out.append(text)
    return out


_FONTS = ("FONT_HERSHEY_SIMPLEX", "FONT_HERSHEY_DUPLEX", "FONT_HERSHEY_COMPLEX", "FONT_HERSHEY_TRIPLEX")


def _paper_and_ink(rng: np.random.Generator) -> tuple[np.ndarray, tuple[int, int, int]]:
    """A light tinted paper colour and a dark tinted ink colour (BGR): not grey, so channels differ."""
    paper = rng.integers(190, 256, 3)
    ink = tuple(int(c) for c in rng.integers(0, 110, 3))
    return paper, ink


def _font(font_name: str, height: int, thickness: int) -> tuple[int, float]:
    """(OpenCV font, scale) that draws capitals ~``height`` pixels tall."""
    cv2 = _cv2()
    font = getattr(cv2, font_name)
    return font, cv2.getFontScaleFromHeight(font, height, thickness)


def _text_size(text: str, height: int, font_name: str, thickness: int) -> tuple[int, int, int]:
    """(width, ascent, descent) of ``text`` as :func:`_draw_text` draws it."""
    font, scale = _font(font_name, height, thickness)
    (w, h), base = _cv2().getTextSize(text, font, scale, thickness)
    return w, h, base


def _draw_text(canvas: np.ndarray, text: str, x: int, baseline: int, height: int, font_name: str, thickness: int,
               ink: tuple[int, int, int]) -> None:
    cv2 = _cv2()
    font, scale = _font(font_name, height, thickness)
    cv2.putText(canvas, text, (x, baseline), font, scale, ink, thickness, cv2.LINE_AA)


def text_line(text: str, seed: int = 0, height: int = 32, upside_down: bool = False) -> GeneratedImage:
    """One line of text, cropped with a small margin as a detector's box crop is (BGR uint8, ``height`` rows)."""
    rng = np.random.default_rng(seed)
    paper, ink = _paper_and_ink(rng)
    font, thickness = _FONTS[int(rng.integers(len(_FONTS)))], int(rng.integers(1, 3))
    cap = max(8, int(height * 0.55))
    w, h, base = _text_size(text, cap, font, thickness)
    pad_x = int(rng.integers(3, 9))
    top = max(1, (height - h - base) // 2)
    canvas = np.empty((height, w + 2 * pad_x, 3), np.uint8)
    canvas[:] = paper.astype(np.uint8)
    canvas -= rng.integers(0, 12, canvas.shape, dtype=np.uint8)
    _draw_text(canvas, text, pad_x, top + h, cap, font, thickness, ink)
    hh, ww = canvas.shape[:2]
    box = np.float32([[0, 0], [ww, 0], [ww, hh], [0, hh]])
    if upside_down:
        canvas = np.ascontiguousarray(canvas[::-1, ::-1])
        box = np.float32([[ww, hh], [0, hh], [0, 0], [ww, 0]])
    return GeneratedImage(canvas, [TextLine(text, box, upside_down)], "line" + (" upside down" if upside_down else ""))


def text_page(texts: Sequence[str], seed: int = 0, size: tuple[int, int] = (360, 480),
              upside_down: Iterable[int] = ()) -> GeneratedImage:
    """A page of several lines (BGR uint8, ``size`` = (h, w)) on tinted paper; the lines whose index is in
    ``upside_down`` are drawn rotated by 180 degrees (a page scanned upside down, a label on a turned box).
    Lines that no longer fit the page are left out (``lines`` lists those drawn)."""
    rng = np.random.default_rng(seed)
    flipped = set(upside_down)
    h, w = size
    paper, ink = _paper_and_ink(rng)
    page = np.empty((h, w, 3), np.uint8)
    page[:] = paper.astype(np.uint8)
    page -= rng.integers(0, 12, page.shape, dtype=np.uint8)
    lines: list[TextLine] = []
    y = int(rng.integers(8, 24))
    for i, text in enumerate(texts):
        font, thickness = _FONTS[int(rng.integers(len(_FONTS)))], int(rng.integers(1, 3))
        cap = int(rng.integers(14, 26))
        tw, th, base = _text_size(text, cap, font, thickness)
        pad = 4
        lh = th + base + 2 * pad
        if y + lh > h - 4:
            break
        if tw + 2 * pad > w - 8:
            continue  # too wide for this page: the next line may fit
        x = int(rng.integers(4, max(5, w - tw - 2 * pad - 4)))
        patch = np.ascontiguousarray(page[y:y + lh, x:x + tw + 2 * pad])
        _draw_text(patch, text, pad, pad + th, cap, font, thickness, ink)
        ph, pw = patch.shape[:2]
        box = np.float32([[x, y], [x + pw, y], [x + pw, y + ph], [x, y + ph]])
        if i in flipped:
            patch = patch[::-1, ::-1]
            box = box[[2, 3, 0, 1]]
        page[y:y + lh, x:x + pw] = patch
        lines.append(TextLine(text, box, i in flipped))
        y += lh + int(rng.integers(6, 22))
    flipped_count = sum(ln.upside_down for ln in lines)
    return GeneratedImage(page, lines, f"page of {len(lines)} lines ({flipped_count} upside down)")


def text_image(words: list[str], seed: int = 0, size: tuple[int, int] = (200, 320)) -> np.ndarray:
    """Black words on a light grey background, one per line, at random offsets (BGR uint8): the plain page the
    pipeline tests compare against PaddleX with (a tinted, multi-font page is :func:`text_page`)."""
    cv2 = _cv2()
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
    """Filled rectangles and circles in random colours on a dark noisy background (BGR uint8)."""
    cv2 = _cv2()
    rng = np.random.default_rng(seed)
    h, w = size
    img = rng.integers(0, 60, (h, w, 3), dtype=np.uint8)
    for _ in range(int(rng.integers(2, 6))):
        color = tuple(int(c) for c in rng.integers(60, 255, 3))
        x, y = int(rng.integers(0, w - 20)), int(rng.integers(0, h - 20))
        if rng.random() < 0.5:
            corner = (x + int(rng.integers(10, w // 2)), y + int(rng.integers(10, h // 2)))
            cv2.rectangle(img, (x, y), corner, color, -1)
        else:
            cv2.circle(img, (x, y), int(rng.integers(5, 40)), color, -1)
    return img


def encode(img: np.ndarray, ext: str = ".png") -> bytes:
    """An image as the bytes of an image file (what a pipeline client sends)."""
    cv2 = _cv2()
    ok, buf = cv2.imencode(ext, img)
    if not ok:
        raise ValueError(f"OpenCV could not encode {img.shape} as {ext}")
    return buf.tobytes()


# -- realistic model inputs from a deploy config ---------------------------------------------------------------------

@dataclass
class TaskInput:
    """Model feeds made from generated images by the deploy config's pre-processing, with what post-processing
    needs to read the outputs: ``infos[i]`` is batch row i's ``[src_h, src_w, ratio_h, ratio_w]``
    (``repogen.pipelines.ops.info_vector``), ``images[i]`` the image it came from (with the text drawn)."""

    feeds: dict[str, np.ndarray]
    infos: list[np.ndarray]
    images: list[GeneratedImage]
    label: str

    @property
    def batch(self) -> int:
        return len(self.images)


#: how many images each kind gets by default: enough lines and boxes to matter, few enough for a CPU check
DEFAULT_COUNT = {"ocr_det": 2, "ocr_rec": 8, "classification": 8, "detection": 3, "segmentation": 2}


def _max_batch(cfg: DeployConfig, name: str) -> int:
    shapes = cfg.dynamic_shapes.get(name)
    if shapes and shapes[2] and shapes[2][0] > 0:
        return int(shapes[2][0])
    return 8


def _orientation_labels(labels: Sequence[str] | None) -> bool:
    """A text-line orientation classifier (labels like 0_degree / 180_degree, or 0 / 180) sees text crops."""
    return bool(labels) and any("180" in str(lb) for lb in labels)


def _document_labels(labels: Sequence[str] | None) -> bool:
    """A layout detector (PP-DocLayout: text, paragraph_title, table...) sees pages, not shapes."""
    return bool(labels) and any(str(lb) in ("text", "paragraph_title", "doc_title") for lb in labels)


def generated_images(kind: str, *, labels: Sequence[str] | None = None, characters: Sequence[str] | None = None,
                     use_space_char: bool = True, count: int | None = None, seed: int = 0) -> list[GeneratedImage]:
    """Images a model of ``kind`` (a DeployConfig kind) is meant for: pages for text detectors and layout models
    (``labels`` with text/paragraph_title), line crops for recognizers (texts from ``characters``, their
    dictionary) and orientation classifiers (labels with 180; every other line upside down), shapes otherwise."""
    n = count or DEFAULT_COUNT.get(kind, 2)
    if kind == "ocr_det" or (kind == "detection" and _document_labels(labels)):
        sizes = [(320, 448), (416, 320), (288, 512), (384, 384)]
        out = []
        for i in range(n):
            texts = sample_texts(8, seed * 1000 + i)
            out.append(text_page(texts, seed * 1000 + i, sizes[i % len(sizes)],
                                 upside_down=range(i % 2, len(texts), 3)))
        return out
    if kind == "ocr_rec" or (kind == "classification" and _orientation_labels(labels)):
        texts = sample_texts(n, seed, characters if kind == "ocr_rec" else None,
                             spaces=kind != "ocr_rec" or use_space_char)
        heights = np.random.default_rng(seed).integers(32, 49, n)  # crops come at the size the text was found
        # a recognizer reads upright crops (the classifier turned them); an orientation classifier sees both
        return [text_line(t, seed * 1000 + i, int(heights[i]), kind == "classification" and i % 2 == 1)
                for i, t in enumerate(texts)]
    sizes = [(180, 240), (240, 200), (150, 320)]
    return [GeneratedImage(shapes_image(seed * 1000 + i, sizes[i % len(sizes)]), [], "shapes") for i in range(n)]


def task_inputs(cfg: DeployConfig, input_names: Sequence[str], count: int | None = None,
                seed: int = 0) -> list[TaskInput]:
    """Realistic feeds for the model ``cfg`` describes (its inputs named ``input_names``, in graph order):
    :func:`generated_images` through the config's own pre-processing. Text detectors, detectors and segmenters
    get one image per feed (their input size follows the image); recognizers and classifiers get batches of
    up to the profile's max batch, recognizer lines padded to the widest as the OCR pipeline batches them."""
    # imported here, not at the top: ops needs OpenCV and pyclipper (the pipelines extra), random inputs do not
    from repogen.pipelines import ops
    from repogen.pipelines.deploy_config import input_roles

    roles = input_roles(list(input_names), str(cfg.path))
    image_input = next(n for n, r in roles.items() if r == "image")
    images = generated_images(cfg.kind, labels=cfg.labels, characters=cfg.characters,
                              use_space_char=bool(cfg.post.get("use_space_char", True)), count=count, seed=seed)
    out: list[TaskInput] = []
    if cfg.kind in ("ocr_rec", "classification"):
        limit = _max_batch(cfg, image_input)
        for start in range(0, len(images), limit):
            chunk = images[start:start + limit]
            colored = [ops.raw_image(g.image, cfg.color) for g in chunk]
            if cfg.kind == "ocr_rec":
                step = next(t for t in cfg.transforms if t["op"] == "rec_resize")
                x = ops.rec_batch(colored, step["image_shape"])
            else:
                x = np.stack([ops.preprocess(c, cfg.transforms)["img"] for c in colored]).astype(np.float32)
            infos = [np.array([c.shape[0], c.shape[1], 1.0, 1.0], np.float32) for c in colored]
            out.append(TaskInput({image_input: np.ascontiguousarray(x)}, infos, list(chunk),
                                 f"{len(chunk)} {chunk[0].what.split()[0]}s from {start}"))
        return out
    for i, g in enumerate(images):
        state = ops.preprocess(ops.raw_image(g.image, cfg.color), cfg.transforms)
        feeds = ops.model_feeds(state, roles)
        out.append(TaskInput(feeds, [ops.info_vector(state)], [g], f"image {i}: {g.what}"))
    return out
