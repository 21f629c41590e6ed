"""Image pre-processing and result post-processing for served pipelines.

This one file is copied next to every generated pre/post/OCR Python-backend model, so it imports nothing
from repogen: only NumPy, OpenCV (``opencv-python-headless``) and pyclipper, the libraries Paddle's own
processors use. Each function follows the PaddleX 3.x processor of the same name (the reference the tests
compare against): same OpenCV calls, same float32 arithmetic, same rounding, so that boxes and texts come
out identical rather than merely close.

Transforms work on one image at a time and carry a small ``state`` dict:
``img`` (the current array), ``src_hw`` (the decoded image's height/width), ``ratio_hw`` (resized /
source, DetResizeForTest's ``shape`` tail) and ``scale_hw`` (PaddleDetection's ``scale_factor``).
"""

from __future__ import annotations

import math
import struct
from functools import lru_cache
from typing import Any, NamedTuple

import cv2
import numpy as np
import pyclipper

INTERP = {"NEAREST": cv2.INTER_NEAREST, "LINEAR": cv2.INTER_LINEAR, "BILINEAR": cv2.INTER_LINEAR,
          "BICUBIC": cv2.INTER_CUBIC, "CUBIC": cv2.INTER_CUBIC, "AREA": cv2.INTER_AREA,
          "LANCZOS4": cv2.INTER_LANCZOS4}
# PaddleDetection's integer interp codes are OpenCV's own constants
INTERP_CODES = {0: "NEAREST", 1: "LINEAR", 2: "BICUBIC", 3: "AREA", 4: "LANCZOS4"}


class InputError(ValueError):
    """A request's own input is unusable (not an image, too small, too large): that request fails alone."""


# -- decoding ------------------------------------------------------------------------------------------------------

# The decoded image's pixel cap (8192 x 8192): the decoded BGR image is at most 192 MiB (decoding it peaked at
# +385 MB for PNG, +577 MB for a progressive JPEG). The served stages also pass it to OpenCV itself
# (OPENCV_IO_MAX_IMAGE_PIXELS, pipeline_common.py), so a header that reads differently to OpenCV than to
# image_header below still cannot make it allocate more.
MAX_PIXELS = 1 << 26
FORMATS = "PNG, JPEG, BMP, WebP or TIFF"
# progressive JPEG: libjpeg's default script has 10 scans; the pixel product bounds the decoder's passes (16 scans
# of the largest image admitted)
MAX_JPEG_SCANS = 64
MAX_SCAN_PIXELS = 16 * MAX_PIXELS


class ImageHeader(NamedTuple):
    """What an encoded image's header says, read without decoding any pixel."""

    format: str
    width: int
    height: int
    channels: int


def _u16(data: bytes, at: int, order: str = ">") -> int:
    return struct.unpack_from(order + "H", data, at)[0]


def _u32(data: bytes, at: int, order: str = ">") -> int:
    return struct.unpack_from(order + "I", data, at)[0]


def _png_header(data: bytes) -> ImageHeader:
    # signature, then IHDR must be the first chunk: length 13, width, height, bit depth, colour type
    if data[12:16] != b"IHDR":
        raise InputError("PNG without an IHDR chunk first: cannot decode")
    colour = data[25]
    channels = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}.get(colour)
    if channels is None:
        raise InputError(f"PNG colour type {colour} is not a PNG colour type: cannot decode")
    # OpenCV 4.11 reads each chunk into a buffer of the size the chunk claims before it finds the bytes missing:
    # a 1 KB file claiming a 2 GB chunk cost 2 GB and 7 s. Every chunk must lie inside the bytes received.
    at = 8
    while at + 8 <= len(data):
        length, kind = _u32(data, at), data[at + 4:at + 8]
        if at + 12 + length > len(data):
            raise InputError(f"PNG chunk {kind!r} at byte {at} claims {length} bytes; the image has {len(data)} in "
                             "all: cannot decode")
        if kind == b"IEND":
            break
        at += 12 + length
    return ImageHeader("PNG", _u32(data, 16), _u32(data, 20), channels)


# JPEG start-of-frame markers (baseline, extended, progressive, lossless, arithmetic); C4, C8 and CC are not frames
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_header(data: bytes) -> ImageHeader:
    """The first start-of-frame segment, as libjpeg reads it (it refuses a second one)."""
    at = 2
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            raise InputError(f"JPEG segment at byte {at} does not start with a marker: cannot decode")
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            at += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image / start of scan before any frame header
            break
        length = _u16(data, at + 2)
        if marker in _SOF:
            if at + 10 > len(data):
                break
            height, width, channels = _u16(data, at + 5), _u16(data, at + 7), data[at + 9]
            if height == 0:  # the height would come later, in a DNL segment, which OpenCV's libjpeg refuses
                raise InputError("JPEG whose frame header gives no height (DNL): cannot decode")
            # each scan of a progressive JPEG passes over every block of its components: 2000 repeated 33-byte
            # scans of a 4096x4096 image (165 KB) cost libjpeg 74 s. Entropy-coded bytes never hold FF DA (an FF
            # there is followed by 00), so counting it counts the scans.
            scans = data.count(b"\xff\xda")
            if scans > MAX_JPEG_SCANS or scans * width * height > MAX_SCAN_PIXELS:
                raise InputError(f"JPEG of {width}x{height} pixels in {scans} scans; the pipeline decodes at most "
                                 f"{MAX_JPEG_SCANS} scans and {MAX_SCAN_PIXELS} pixels over all scans")
            return ImageHeader("JPEG", width, height, channels)
        if length < 2:
            break
        at += 2 + length
    raise InputError(f"JPEG of {len(data)} bytes without a frame header (truncated?): cannot decode")


def _bmp_header(data: bytes) -> ImageHeader:
    size = _u32(data, 14, "<")
    if size == 12:  # OS/2 BITMAPCOREHEADER: 16-bit sizes
        width, height, bits = _u16(data, 18, "<"), _u16(data, 20, "<"), _u16(data, 24, "<")
    elif size >= 40 and len(data) >= 30:
        width, height = struct.unpack_from("<ii", data, 18)
        bits = _u16(data, 28, "<")
        height = abs(height)  # negative: rows stored top-down
    else:
        raise InputError(f"BMP with a {size}-byte info header: cannot decode")
    return ImageHeader("BMP", width, height, 4 if bits == 32 else 3 if bits > 8 else 1)


def _webp_header(data: bytes) -> ImageHeader:
    kind = data[12:16]
    if kind == b"VP8 " and len(data) >= 30:  # lossy: 14-bit sizes after the key-frame start code
        if data[23:26] != b"\x9d\x01\x2a":
            raise InputError("WebP (lossy) without a key frame: cannot decode")
        return ImageHeader("WebP", _u16(data, 26, "<") & 0x3FFF, _u16(data, 28, "<") & 0x3FFF, 3)
    if kind == b"VP8L" and len(data) >= 25:  # lossless: 14-bit sizes minus one, packed after the 0x2f signature
        bits = _u32(data, 21, "<")
        return ImageHeader("WebP", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1, 4 if bits >> 28 & 1 else 3)
    if kind == b"VP8X" and len(data) >= 30:  # extended: 24-bit canvas sizes minus one
        width = (data[24] | data[25] << 8 | data[26] << 16) + 1
        height = (data[27] | data[28] << 8 | data[29] << 16) + 1
        return ImageHeader("WebP", width, height, 4 if data[20] & 0x10 else 3)
    raise InputError(f"WebP with a {kind!r} chunk first: cannot decode")


def _tiff_header(data: bytes) -> ImageHeader:
    """The first image file directory (the page OpenCV decodes); classic and BigTIFF."""
    order = "<" if data[:2] == b"II" else ">"
    big = _u16(data, 2, order) == 43
    if big:
        offset, count_size, entry, value_at = struct.unpack_from(order + "Q", data, 8)[0], 8, 20, 12
    else:
        offset, count_size, entry, value_at = _u32(data, 4, order), 2, 12, 8
    if offset + count_size > len(data):
        raise InputError(f"TIFF whose first directory (byte {offset}) lies beyond its {len(data)} bytes: "
                         "cannot decode")
    count = struct.unpack_from(order + ("Q" if big else "H"), data, offset)[0]
    tags: dict[int, int] = {}
    for i in range(min(count, 4096)):
        at = offset + count_size + i * entry
        if at + entry > len(data):
            break
        tag, kind = _u16(data, at, order), _u16(data, at + 2, order)
        if tag in (256, 257, 277):  # ImageWidth, ImageLength, SamplesPerPixel: SHORT, LONG or LONG8
            fmt = {3: "H", 4: "I", 16: "Q"}.get(kind)
            if fmt is None:
                raise InputError(f"TIFF tag {tag} of type {kind}: cannot decode")
            tags[tag] = struct.unpack_from(order + fmt, data, at + value_at)[0]
    if 256 not in tags or 257 not in tags:
        raise InputError("TIFF without ImageWidth/ImageLength in its first directory: cannot decode")
    return ImageHeader("TIFF", tags[256], tags[257], tags.get(277, 1))


def image_header(data: bytes) -> ImageHeader:
    """Format, width, height and channels from the first bytes of an encoded image, decoding nothing: the size
    of what a decode would allocate is known (and refused) before OpenCV allocates it. Only the formats parsed
    here are accepted."""
    try:
        if data[:8] == b"\x89PNG\r\n\x1a\n":
            return _png_header(data)
        if data[:3] == b"\xff\xd8\xff":
            return _jpeg_header(data)
        if data[:2] == b"BM":
            return _bmp_header(data)
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return _webp_header(data)
        if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
            return _tiff_header(data)
    except (struct.error, IndexError):  # a field past the end of the bytes
        raise InputError(f"{len(data)} bytes: the image header is truncated, cannot decode") from None
    raise InputError(f"{len(data)} bytes that the pipeline cannot decode: not a {FORMATS} image")


def check_size(h: int, w: int, min_side: int, max_side: int, max_pixels: int = MAX_PIXELS) -> None:
    if min(h, w) < min_side:
        raise InputError(f"image is {w}x{h} pixels; the pipeline needs at least {min_side} pixels on each side")
    if max(h, w) > max_side:
        raise InputError(f"image is {w}x{h} pixels; the pipeline accepts at most {max_side} pixels on a side")
    if h * w > max_pixels:
        raise InputError(f"image is {w}x{h} = {h * w} pixels; the pipeline accepts at most {max_pixels} pixels")


def decode_image(data: bytes, color: str, min_side: int = 8, max_side: int = 10000,
                 max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Encoded bytes (PNG/JPEG/BMP/WebP/TIFF) -> HWC uint8 in ``color`` order (``BGR`` or ``RGB``). The header is
    read and the size checked first, so an image over the limits (a decompression bomb) costs no decoding."""
    if not data:
        raise InputError("empty image bytes")
    head = image_header(data)
    check_size(head.height, head.width, min_side, max_side, max_pixels)
    try:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error as exc:  # OpenCV's own size limit, or a decoder's refusal it raised instead of returning None
        raise InputError(f"{len(data)} bytes of {head.format} that OpenCV cannot decode: "
                         f"{str(exc).strip().splitlines()[-1]}") from None
    if img is None:
        raise InputError(f"{len(data)} bytes of {head.format} that OpenCV cannot decode (corrupt or truncated)")
    # what was decoded is what the header said (an EXIF orientation may swap the sides)
    check_size(img.shape[0], img.shape[1], min_side, max_side, max_pixels)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB) if color == "RGB" else img


def raw_image(arr: np.ndarray, color: str, min_side: int = 8, max_side: int = 10000,
              max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """A raw UINT8 HWC array in OpenCV's BGR order (what ``cv2.imread`` returns) -> ``color`` order."""
    if arr.ndim == 4 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4) or arr.dtype != np.uint8:
        raise InputError(f"raw image must be UINT8 [height, width, 3] (BGR); got {arr.dtype} {list(arr.shape)}")
    check_size(arr.shape[0], arr.shape[1], min_side, max_side, max_pixels)
    if arr.shape[2] == 1:
        arr = cv2.cvtColor(arr, cv2.COLOR_GRAY2BGR)
    elif arr.shape[2] == 4:
        arr = cv2.cvtColor(arr, cv2.COLOR_BGRA2BGR)
    arr = np.ascontiguousarray(arr)
    return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB) if color == "RGB" else arr


# -- transforms ----------------------------------------------------------------------------------------------------

def det_resize(state: dict, *, limit_side_len: int = 736, limit_type: str = "min", max_side_limit: int = 4000,
               resize_long: int | None = None, image_shape: list | None = None, keep_ratio: bool = False,
               input_shape: list | None = None) -> None:
    """PaddleX ``DetResizeForTest``: to multiples of 32 (or 128 for resize_long), remembering the ratios."""
    img = state["img"]
    src_h, src_w = img.shape[:2]
    if src_h + src_w < 64:  # tiny images are padded to 32 first, as PaddleX does
        pad = np.zeros((max(32, src_h), max(32, src_w), img.shape[2]), np.uint8)
        pad[:src_h, :src_w] = img
        img = pad
    h, w = img.shape[:2]
    if input_shape is not None:
        rh, rw = int(input_shape[1]), int(input_shape[2])
        out = (img, 1.0, 1.0) if (rh, rw) == (h, w) else (cv2.resize(img, (rw, rh)), rh / h, rw / w)
    elif image_shape is not None:
        rh, rw = image_shape
        if keep_ratio:
            rw = math.ceil(w * rh / h / 32) * 32
        out = (img, 1.0, 1.0) if (rh, rw) == (h, w) else (cv2.resize(img, (int(rw), int(rh))), rh / h, rw / w)
    elif resize_long is not None:
        ratio = float(resize_long) / (h if h > w else w)
        rh, rw = int(h * ratio), int(w * ratio)
        rh, rw = (rh + 127) // 128 * 128, (rw + 127) // 128 * 128
        out = (img, 1.0, 1.0) if (rh, rw) == (h, w) else (cv2.resize(img, (rw, rh)), rh / h, rw / w)
    else:
        if limit_type == "max":
            ratio = float(limit_side_len) / (h if h > w else w) if max(h, w) > limit_side_len else 1.0
        elif limit_type == "min":
            ratio = float(limit_side_len) / (h if h < w else w) if min(h, w) < limit_side_len else 1.0
        elif limit_type == "resize_long":
            ratio = float(limit_side_len) / max(h, w)
        else:
            raise ValueError(f"DetResizeForTest: limit_type {limit_type!r} is not max, min or resize_long")
        rh, rw = int(h * ratio), int(w * ratio)
        if max(rh, rw) > max_side_limit:
            ratio = float(max_side_limit) / max(rh, rw)
            rh, rw = int(rh * ratio), int(rw * ratio)
        rh, rw = max(int(round(rh / 32) * 32), 32), max(int(round(rw / 32) * 32), 32)
        out = (img, 1.0, 1.0) if (rh, rw) == (h, w) else (cv2.resize(img, (rw, rh)), rh / float(h), rw / float(w))
    state["img"], state["ratio_hw"] = out[0], (out[1], out[2])
    state["src_hw"] = (src_h, src_w)


def resize(state: dict, *, target_wh: list | None, keep_ratio: bool = False, size_divisor: int | None = None,
           interp: str = "LINEAR") -> None:
    """PaddleX's common ``Resize`` (detection and segmentation): ``target_wh`` None keeps the image."""
    img = state["img"]
    h, w = img.shape[:2]
    if target_wh is not None:
        size = list(target_wh)
        if keep_ratio:
            scale = min(max(size) / max(w, h), min(size) / min(w, h))
            size = [round(w * scale), round(h * scale)]
        if size_divisor:
            size = [math.ceil(i / size_divisor) * size_divisor for i in size]
        img = cv2.resize(img, (int(size[0]), int(size[1])), interpolation=INTERP[interp])
    state["img"] = img
    state["resized_hw"] = img.shape[:2]
    state["scale_hw"] = (img.shape[0] / h, img.shape[1] / w)


def resize_short(state: dict, *, target: int, interp: str = "LINEAR") -> None:
    """PaddleX ``ResizeByShort`` (classification ``ResizeImage.resize_short``): short side to ``target``."""
    img = state["img"]
    h, w = img.shape[:2]
    scale = target / min(h, w)
    state["img"] = cv2.resize(img, (round(w * scale), round(h * scale)), interpolation=INTERP[interp])


def center_crop(state: dict, *, size: list) -> None:
    """PaddleX classification ``Crop`` (mode C): the centre ``size`` = [w, h] region."""
    img = state["img"]
    h, w = img.shape[:2]
    cw, ch = size
    if w < cw or h < ch:
        raise InputError(f"image resized to {w}x{h} is smaller than the {cw}x{ch} centre crop")
    x1, y1 = max(0, (w - cw) // 2), max(0, (h - ch) // 2)
    state["img"] = img[y1:min(h, y1 + ch), x1:min(w, x1 + cw)]


@lru_cache(maxsize=16)
def _normalize_table(alpha: tuple, beta: tuple) -> np.ndarray:
    """[256, 1, C] float32: every 8-bit value through the same two float32 roundings as the array form."""
    v = np.arange(256, dtype=np.float32)[:, None]
    table = v * np.array(alpha, np.float32)
    table += np.array(beta, np.float32)
    return np.ascontiguousarray(table[:, None, :])


def normalize(state: dict, *, alpha: list, beta: list) -> None:
    """``x * alpha + beta`` per channel in float32 (alpha = scale/std, beta = -mean/std, as PaddleX computes).
    An 8-bit image goes through a 256-entry table (cv2.LUT): the same float32 values, a quarter of the time."""
    img = state["img"]
    if img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_RGBA2RGB)
    if img.dtype == np.uint8 and len(alpha) == len(beta) == img.shape[2] <= 4:
        state["img"] = cv2.LUT(img, _normalize_table(tuple(alpha), tuple(beta)))
        return
    out = img.astype(np.float32)
    out *= np.array(alpha, np.float32)
    out += np.array(beta, np.float32)
    state["img"] = out


def to_chw(state: dict) -> None:
    state["img"] = state["img"].transpose((2, 0, 1))


def pad_stride(state: dict, *, stride: int) -> None:
    """PaddleDetection ``PadStride`` on a CHW image: zero-pad bottom/right to multiples of ``stride``."""
    img = state["img"]
    if stride <= 0:
        return
    c, h, w = img.shape
    ph, pw = int(np.ceil(float(h) / stride) * stride), int(np.ceil(float(w) / stride) * stride)
    out = np.zeros((c, ph, pw), np.float32)
    out[:, :h, :w] = img
    state["img"] = out


def rec_resize(state: dict, *, image_shape: list, max_width: int = 3200) -> None:
    """PaddleX ``OCRReisizeNormImg`` for one line: height ``H``, width from the aspect ratio, (x/255-0.5)/0.5,
    zero-padded on the right to ``H * max(W/H, w/h)`` (never below the configured width)."""
    state["img"] = rec_norm(state["img"], image_shape, max(image_shape[2] / image_shape[1],
                                                            state["img"].shape[1] / state["img"].shape[0]),
                            max_width)


# -- top-down keypoints (PaddleX keypoint_detection: TopDownAffine, KptPostProcess) ----------------------------------

# PaddleX's human keypoint pipeline widens a person box by this much before cropping (_box_xyxy2cs)
KEYPOINT_BOX_PADDING = 1.25


def person_box(values: Any) -> tuple[float, float, float, float]:
    """A request's person box [x1, y1, x2, y2] in source pixels (the pipeline's ``box`` input), checked."""
    arr = np.asarray(values, np.float64).reshape(-1)
    if arr.size != 4 or not np.all(np.isfinite(arr)):
        raise InputError(f"box must be 4 finite numbers [x1, y1, x2, y2] in source pixels; got {arr.size} values")
    x1, y1, x2, y2 = (float(v) for v in arr)
    if not (x2 > x1 and y2 > y1):
        raise InputError(f"box [{x1:g}, {y1:g}, {x2:g}, {y2:g}] is empty: it needs x2 > x1 and y2 > y1")
    return x1, y1, x2, y2


def box_center_scale(box: tuple[float, float, float, float], size_wh: list,
                     padding: float = KEYPOINT_BOX_PADDING) -> tuple[np.ndarray, np.ndarray]:
    """PaddleX's keypoint pipeline (``_box_xyxy2cs``): the box's centre, and its size widened to the model's
    aspect ratio, times ``padding``."""
    x1, y1, x2, y2 = box[:4]
    center = np.array([x1 + x2, y1 + y2]) * 0.5
    aspect_ratio = size_wh[0] / size_wh[1]
    w, h = x2 - x1, y2 - y1
    if w > aspect_ratio * h:
        h = w / aspect_ratio
    elif w < aspect_ratio * h:
        w = h * aspect_ratio
    return center, np.array([w, h]) * padding


def _third_point(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    direction = a - b
    return b + np.array([-direction[1], direction[0]], dtype=np.float32)


def crop_transform(center: Any, scale: Any, output_wh: Any, inv: bool = False) -> np.ndarray:
    """PaddleX ``get_affine_transform`` without rotation: the 2x3 matrix taking the box of ``scale`` [w, h]
    around ``center`` to an ``output_wh`` image (``inv``: back). Only the box width sets the scale, as PaddleX's
    does; the same float32 points go to ``cv2.getAffineTransform``."""
    src_w = scale[0]
    dst_w, dst_h = output_wh[0], output_wh[1]
    src_dir = [0.0, src_w * -0.5]  # rotate_point([0, -w/2], 0)
    dst_dir = np.array([0.0, dst_w * -0.5])
    src = np.zeros((3, 2), dtype=np.float32)
    src[0, :] = center
    src[1, :] = center + np.array(src_dir)
    src[2, :] = _third_point(src[0, :], src[1, :])
    dst = np.zeros((3, 2), dtype=np.float32)
    dst[0, :] = [dst_w * 0.5, dst_h * 0.5]
    dst[1, :] = np.array([dst_w * 0.5, dst_h * 0.5]) + dst_dir
    dst[2, :] = _third_point(dst[0, :], dst[1, :])
    if inv:
        return cv2.getAffineTransform(np.float32(dst), np.float32(src))
    return cv2.getAffineTransform(np.float32(src), np.float32(dst))


def udp_transform(center: Any, scale: Any, output_wh: Any) -> np.ndarray:
    """PaddleX ``get_warp_matrix`` without rotation (unbiased data processing, ``use_udp``): the box of
    ``scale`` around ``center`` onto the pixel grid of an ``output_wh`` image."""
    size_input = np.asarray(center) * 2.0
    size_dst = [output_wh[0] - 1.0, output_wh[1] - 1.0]
    theta = np.deg2rad(0)
    matrix = np.zeros((2, 3), dtype=np.float32)
    scale_x = size_dst[0] / scale[0]
    scale_y = size_dst[1] / scale[1]
    matrix[0, 0] = np.cos(theta) * scale_x
    matrix[0, 1] = -np.sin(theta) * scale_x
    matrix[0, 2] = scale_x * (-0.5 * size_input[0] * np.cos(theta) + 0.5 * size_input[1] * np.sin(theta)
                              + 0.5 * scale[0])
    matrix[1, 0] = np.sin(theta) * scale_y
    matrix[1, 1] = np.cos(theta) * scale_y
    matrix[1, 2] = scale_y * (-0.5 * size_input[0] * np.sin(theta) - 0.5 * size_input[1] * np.cos(theta)
                              + 0.5 * scale[1])
    return matrix


def topdown_affine(state: dict, *, size_wh: list, use_udp: bool = False) -> None:
    """PaddleX ``TopDownAffine`` (PaddleDetection ``TopDownEvalAffine``): the person region warped to the model's
    ``size_wh``. The region is the request's person box (``state["box"]``) as PaddleX's keypoint pipeline makes it
    (centre, widened to the model's aspect ratio, x1.25), else the whole image as PaddleX's keypoint predictor
    takes a bare image (centre = size / 2, scale = size). The centre and scale are kept for the inverse transform."""
    img = state["img"]
    if state.get("box") is not None:
        center, scale = box_center_scale(state["box"], size_wh)
    else:
        imshape = np.array(img.shape[:2][::-1])
        center, scale = imshape / 2.0, imshape
    out_w, out_h = int(size_wh[0]), int(size_wh[1])
    trans = udp_transform(center, scale, [out_w, out_h]) if use_udp else crop_transform(center, scale, size_wh)
    state["img"] = cv2.warpAffine(img, trans, (out_w, out_h), flags=cv2.INTER_LINEAR)
    state["center"], state["scale"] = center, scale


@lru_cache(maxsize=1)
def _rec_table() -> np.ndarray:
    """(v / 255 - 0.5) / 0.5 for every 8-bit value, with the array form's float32 roundings."""
    v = np.arange(256, dtype=np.float32) / 255
    v -= 0.5
    v /= 0.5
    return v.reshape(256, 1)


def rec_norm(img: np.ndarray, image_shape: list, max_wh_ratio: float, max_width: int = 3200) -> np.ndarray:
    c, h, w = (int(v) for v in image_shape)
    w = int(h * max_wh_ratio)
    if w > max_width:
        resized, w = cv2.resize(img, (max_width, h)), max_width
    else:
        ih, iw = img.shape[:2]
        ratio = iw / float(ih)
        rw = w if math.ceil(h * ratio) > w else int(math.ceil(h * ratio))
        resized = cv2.resize(img, (rw, h))
    return _pad_right_half_range(resized, c, h, w)


def _pad_right_half_range(resized: np.ndarray, c: int, h: int, w: int) -> np.ndarray:
    """PaddleOCR's recognizer/classifier tail: HWC to CHW, (x/255-0.5)/0.5 (a table for 8-bit images), zeros on
    the right up to width ``w``."""
    if resized.dtype == np.uint8:
        chw = cv2.LUT(resized, _rec_table()).transpose((2, 0, 1))
    else:
        chw = resized.astype("float32").transpose((2, 0, 1)) / 255
        chw -= 0.5
        chw /= 0.5
    out = np.zeros((c, h, w), np.float32)
    out[:, :, :resized.shape[1]] = chw
    return out


def cls_resize(state: dict, *, image_shape: list) -> None:
    """PaddleOCR's direction classifier input (``predict_cls``): height ``H`` keeping the aspect ratio, width at
    most ``W``, (x/255-0.5)/0.5, zeros on the right up to ``W``: a fixed [C, H, W] whatever the crop."""
    img = state["img"]
    c, h, w = (int(v) for v in image_shape)
    ih, iw = img.shape[:2]
    fit = math.ceil(h * (iw / float(ih)))
    rw = w if fit > w else int(fit)
    resized = cv2.resize(img, (rw, h))
    state["img"] = _pad_right_half_range(resized, c, h, w)


TRANSFORMS = {"det_resize": det_resize, "resize": resize, "resize_short": resize_short, "center_crop": center_crop,
              "normalize": normalize, "to_chw": to_chw, "pad_stride": pad_stride, "rec_resize": rec_resize,
              "cls_resize": cls_resize, "topdown_affine": topdown_affine}


# -- PaddleDetection 0.x (Fluid) exports ------------------------------------------------------------------------------
# The semantics of PaddleDetection release/0.5's deploy/python (preprocess.py Resize/Normalize/Permute/PadStride and
# infer.py create_inputs), which decodes to RGB and feeds size inputs by architecture.

def fluid_resize(state: dict, *, target_size: int, max_size: int = 0, keep_ratio: bool = False, pad: bool = False,
                 interp: str = "LINEAR") -> None:
    """0.x ``Resize``. ``keep_ratio`` (max_size set, R-CNN-style arch): one scale, the short side to target_size,
    unless the long side would then round above max_size, which then gets max_size. Otherwise x and y scale on
    their own, each side to target_size. OpenCV resizes by those factors (fx, fy): the output size is the rounded
    product and the sampling uses the factors themselves, not the rounded size. ``pad`` (fixed-shape exports:
    max_size and image_shape set): zero-padded bottom/right to a max_size square, as float32."""
    img = state["img"]
    h, w = img.shape[:2]
    if keep_ratio:
        scale = float(target_size) / float(min(h, w))
        if np.round(scale * max(h, w)) > max_size:
            scale = float(max_size) / float(max(h, w))
        sx = sy = scale
    else:
        sx, sy = float(target_size) / float(w), float(target_size) / float(h)
    if round(w * sx) < 1 or round(h * sy) < 1:
        raise InputError(f"image is {w}x{h} pixels; resized by {sx:.4g} x {sy:.4g} it has no pixels left")
    out = cv2.resize(img, None, None, fx=sx, fy=sy, interpolation=INTERP[interp])
    if out.ndim == 2:  # OpenCV drops a single channel's axis
        out = out[:, :, None]
    if pad:
        rh, rw = out.shape[:2]
        if rh > max_size or rw > max_size:
            raise InputError(f"image resized to {rw}x{rh} does not fit the {max_size}x{max_size} input")
        canvas = np.zeros((max_size, max_size, out.shape[2]), np.float32)
        canvas[:rh, :rw] = out
        out = canvas
    state["img"] = out
    state["scale_hw"] = (sy, sx)
    state["resized_hw"] = out.shape[:2]  # 0.x's resize_shape: after the padding


def fluid_normalize(state: dict, *, mean: list, std: list, is_scale: bool = True, channel_first: bool = False) -> None:
    """0.x ``Normalize``: float32, divided by 255 when ``is_scale``, then minus mean and divided by std in place
    (NumPy computes those two in float64 against the float64 mean/std and rounds to float32 each time). An 8-bit
    HWC image goes through a 256-entry table with the same arithmetic, so the values are the same."""
    img = state["img"]
    mean64, std64 = np.array(mean, np.float64), np.array(std, np.float64)
    if img.dtype == np.uint8 and not channel_first and img.ndim == 3 and img.shape[2] == len(mean) <= 4:
        values = np.repeat(np.arange(256, dtype=np.float32)[:, None, None], len(mean), axis=2)
        table = _fluid_normalize_math(values, mean64, std64, is_scale)
        state["img"] = cv2.LUT(img, np.ascontiguousarray(table))
        return
    shape = (-1, 1, 1) if channel_first else (1, 1, -1)
    state["img"] = _fluid_normalize_math(img.astype(np.float32), mean64.reshape(shape), std64.reshape(shape), is_scale)


def _fluid_normalize_math(im: np.ndarray, mean: np.ndarray, std: np.ndarray, is_scale: bool) -> np.ndarray:
    if is_scale:
        im = im / 255.0  # a float32 array over a Python float stays float32
    im -= mean
    im /= std
    return im


def reverse_channels_chw(state: dict) -> None:
    """0.x ``Permute(to_bgr=True)``: the first axis (the channels of a CHW image) reversed, RGB <-> BGR."""
    state["img"] = state["img"][[2, 1, 0], :, :]


def fluid_feeds(state: dict, *, feeds: dict[str, list], layout: str = "chw") -> None:
    """0.x ``create_inputs``: the size inputs of its exports, ``feeds`` = {input name: [quantity, dtype]} (the
    config reader picks them by arch), each a batch of one: ``source_hw`` [h, w] of the decoded image;
    ``source_hw_one`` [h, w, 1]; ``padded_hw_scale`` [h, w] after PadStride (else as resized) and the x scale;
    ``resized_hw_scale`` [h, w] as resized and the x scale; ``scale_xyxy`` [x, y, x, y] scales."""
    src_h, src_w = state["src_hw"]
    sy, sx = state["scale_hw"]
    img = state["img"]
    padded = tuple(img.shape[1:3]) if layout == "chw" else tuple(img.shape[:2])
    resized = tuple(state.get("resized_hw", state["src_hw"]))
    values = {"source_hw": [src_h, src_w], "source_hw_one": [src_h, src_w, 1.0],
              "padded_hw_scale": [padded[0], padded[1], sx], "resized_hw_scale": [resized[0], resized[1], sx],
              "scale_xyxy": [sx, sy, sx, sy]}
    state["feeds"] = {name: np.array([values[kind]], dtype) for name, (kind, dtype) in feeds.items()}


TRANSFORMS.update({"fluid_resize": fluid_resize, "fluid_normalize": fluid_normalize,
                   "reverse_channels_chw": reverse_channels_chw, "fluid_feeds": fluid_feeds})


def preprocess(img: np.ndarray, ops: list[dict], box: tuple[float, float, float, float] | None = None) -> dict:
    """Run the canonical transform list (``{"op": name, **params}``) on one decoded image. ``box``: the person
    box a top-down keypoint crop is taken from (:func:`person_box`); None: the whole image."""
    state = {"img": img, "src_hw": img.shape[:2], "ratio_hw": (1.0, 1.0), "scale_hw": (1.0, 1.0), "box": box}
    for op in ops:
        params = {k: v for k, v in op.items() if k != "op"}
        TRANSFORMS[op["op"]](state, **params)
    return state


def info_vector(state: dict) -> np.ndarray:
    """What post-processing needs from pre-processing: [src_h, src_w, ratio_h, ratio_w] (DB's ``shape``); after a
    top-down keypoint crop [center x, center y, scale w, scale h] in float64, the values PaddleX's inverse
    transform starts from (float32 would move a keypoint by float32's rounding of a box PaddleX keeps in float64)."""
    if state.get("center") is not None:
        return np.array([*state["center"], *state["scale"]], np.float64)
    return np.array([state["src_hw"][0], state["src_hw"][1], state["ratio_hw"][0], state["ratio_hw"][1]],
                    np.float32)


def model_feeds(state: dict, roles: dict[str, str]) -> dict[str, np.ndarray]:
    """Batch-of-one model inputs by role: ``image``, ``im_shape`` ([h, w] after resize) or ``scale_factor``."""
    img = state["img"]
    given = state.get("feeds", {})  # inputs a step computed itself (fluid_feeds: PaddleDetection 0.x's, by name)
    feeds = {}
    for name, role in roles.items():
        if name in given:
            feeds[name] = given[name]
        elif role == "image":
            feeds[name] = np.ascontiguousarray(img[None], dtype=np.float32)
        elif role == "im_shape":  # the resized size before any stride padding, as PaddleX feeds it
            feeds[name] = np.array([state.get("resized_hw", state["src_hw"])], np.float32)
        elif role == "scale_factor":
            feeds[name] = np.array([state["scale_hw"]], np.float32)
        else:
            raise ValueError(f"input {name}: unknown role {role!r}")
    return feeds


# -- polygon fill, as OpenCV 4.10 draws it (cv2.fillPoly, LINE_8, shift 0) -----------------------------------------
# OpenCV 4.11 fills a polygon's scanlines differently from 4.10 (PaddleX's environment): DB box scores moved by up
# to 7e-3 with the same probability map. The fill below is 4.10's algorithm in NumPy, so box scores no longer
# depend on the OpenCV that is installed: the outline as 8-connected Bresenham lines (clipped to the mask as
# OpenCV's clipLine does), plus every scanline between the edges in 16.16 fixed point.

_XY_SHIFT = 16
_XY_ONE = 1 << _XY_SHIFT


def _c_div(a: int, b: int) -> int:
    """C integer division (truncates toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def _clip_line(w: int, h: int, p0: tuple[int, int], p1: tuple[int, int]) -> tuple[bool, tuple, tuple]:
    """OpenCV's ``clipLine`` on a w x h image: whether any part is inside, and both end points moved onto the
    image border (Cohen-Sutherland, double intermediates truncated to integers)."""
    (x1, y1), (x2, y2) = p0, p1
    if w <= 0 or h <= 0:
        return False, p0, p1
    right, bottom = w - 1, h - 1
    c1 = (x1 < 0) + (x1 > right) * 2 + (y1 < 0) * 4 + (y1 > bottom) * 8
    c2 = (x2 < 0) + (x2 > right) * 2 + (y2 < 0) * 4 + (y2 > bottom) * 8
    if (c1 & c2) == 0 and (c1 | c2) != 0:
        if c1 & 12:
            a = 0 if c1 < 8 else bottom
            x1 += int(float(a - y1) * (x2 - x1) / (y2 - y1))
            y1 = a
            c1 = (x1 < 0) + (x1 > right) * 2
        if c2 & 12:
            a = 0 if c2 < 8 else bottom
            x2 += int(float(a - y2) * (x2 - x1) / (y2 - y1))
            y2 = a
            c2 = (x2 < 0) + (x2 > right) * 2
        if (c1 & c2) == 0 and (c1 | c2) != 0:
            if c1:
                a = 0 if c1 == 1 else right
                y1 += int(float(a - x1) * (y2 - y1) / (x2 - x1))
                x1, c1 = a, 0
            if c2:
                a = 0 if c2 == 1 else right
                y2 += int(float(a - x2) * (y2 - y1) / (x2 - x1))
                x2, c2 = a, 0
    return (c1 | c2) == 0, (x1, y1), (x2, y2)


def _line(w: int, h: int, p0: tuple[int, int], p1: tuple[int, int]) -> tuple[int, ...] | None:
    """OpenCV's 8-connected ``Line`` (its LineIterator, left to right, clipped to the w x h mask) as (x0, y0, major
    length, minor length, y step, vertical); None when nothing of it is inside. Pixel k = 0..major lies k along
    the major axis and (2*minor*k + major - 1) // (2*major) along the minor one: where Bresenham's error, started
    at major - 2*minor, has gone negative."""
    if not (0 <= p0[0] < w and 0 <= p1[0] < w and 0 <= p0[1] < h and 0 <= p1[1] < h):
        inside, p0, p1 = _clip_line(w, h, p0, p1)
        if not inside:
            return None
    if p1[0] < p0[0]:
        p0, p1 = p1, p0
    (x0, y0), (x1, y1) = p0, p1
    major, minor = x1 - x0, abs(y1 - y0)
    vertical = minor > major
    if vertical:
        major, minor = minor, major
    return x0, y0, major, minor, 1 if y1 >= y0 else -1, int(vertical)


def _draw_line(mask: np.ndarray, line: tuple[int, ...]) -> None:
    """Every pixel of one :func:`_line` set."""
    x0, y0, major, minor, step, vertical = line
    k = np.arange(major + 1)
    side = (2 * minor * k + major - 1) // (2 * major) if major else 0
    if vertical:
        mask[y0 + step * k, x0 + side] = 1
    else:
        mask[y0 + step * side, x0 + k] = 1


def fill_poly(mask: np.ndarray, points: np.ndarray) -> None:
    """``cv2.fillPoly(mask, [points], 1)`` as OpenCV 4.10 draws it (LINE_8, shift 0) for one polygon of integer
    ``points`` [N, 2] on a uint8 ``mask``: each edge drawn as a line, then on every row the spans between even-odd
    pairs of the edges crossing it, both ends rounded down from 16.16 fixed point. (OpenCV 4.11 rounds the left
    end up and puts every edge through pixel corners: a thinner mask.)"""
    h, w = mask.shape
    pts = [(int(x), int(y)) for x, y in np.asarray(points).reshape(-1, 2)]
    edges = []  # (y0, y1, x at y0 in 16.16, dx per row in 16.16)
    prev = pts[-1]
    for cur in pts:
        line = _line(w, h, prev, cur)
        if line is not None:
            _draw_line(mask, line)
        # the edge in 16.16 fixed point: through the pixel centres (x + 0.5) when the line lies inside the mask;
        # else through the end points clipped to the mask (pixel corners), unless clipping left it horizontal
        (x0c, y0c), (x1c, y1c) = (prev[0] << _XY_SHIFT, prev[1]), (cur[0] << _XY_SHIFT, cur[1])
        if 0 <= prev[0] < w and 0 <= cur[0] < w and 0 <= prev[1] < h and 0 <= cur[1] < h:
            x0c, x1c = x0c + _XY_ONE // 2, x1c + _XY_ONE // 2
        else:
            _, t0, t1 = _clip_line(w, h, prev, cur)
            if t0[1] != t1[1]:
                (x0c, y0c), (x1c, y1c) = (t0[0] << _XY_SHIFT, t0[1]), (t1[0] << _XY_SHIFT, t1[1])
        if prev[1] != cur[1]:
            dx = _c_div(x1c - x0c, y1c - y0c)
            if prev[1] < cur[1]:
                edges.append((prev[1], cur[1], x0c + (prev[1] - y0c) * dx, dx))
            else:
                edges.append((cur[1], prev[1], x1c + (cur[1] - y1c) * dx, dx))
        prev = cur
    if len(edges) < 2:
        return
    y_lo, y_hi = min(e[0] for e in edges), max(e[1] for e in edges)
    ends = [x for y0, y1, x0, dx in edges for x in (x0, x0 + (y1 - y0) * dx)]
    rows = np.arange(max(y_lo, 0), min(y_hi, h), dtype=np.int64)
    if y_hi < 0 or y_lo >= h or max(ends) < 0 or min(ends) >= (w << _XY_SHIFT) or not len(rows):
        return
    e = np.array(edges, np.int64)
    y0, y1, x0, dx = (e[:, i][None] for i in range(4))
    r = rows[:, None]
    never = np.iinfo(np.int64).max
    # the edges crossing each row, left to right; each pair of them bounds one span
    cross = np.sort(np.where((y0 <= r) & (r < y1), x0 + (r - y0) * dx, never), axis=1)
    cols = np.arange(w, dtype=np.int64)[None]
    band = mask[rows[0]:rows[-1] + 1]
    for j in range(0, cross.shape[1] - 1, 2):
        right = cross[:, j + 1:j + 2]
        x1, x2 = cross[:, j:j + 1] >> _XY_SHIFT, np.where(right == never, -1, right >> _XY_SHIFT)
        band[(x1 <= cols) & (cols <= x2)] = 1  # spans clipped to the mask by the columns themselves


# -- DB text detection ---------------------------------------------------------------------------------------------

def _mini_box(contour: np.ndarray) -> tuple[list, float]:
    rect = cv2.minAreaRect(contour)
    points = sorted(list(cv2.boxPoints(rect)), key=lambda p: p[0])
    i1, i4 = (0, 1) if points[1][1] > points[0][1] else (1, 0)
    i2, i3 = (2, 3) if points[3][1] > points[2][1] else (3, 2)
    return [points[i1], points[i2], points[i3], points[i4]], min(rect[1])


def _masked_mean(bitmap: np.ndarray, mask: np.ndarray) -> float:
    """``cv2.mean(bitmap, mask)[0]`` as OpenCV computes it: the pixels under the mask summed one after another in
    float64, times the reciprocal of their count (0 when none)."""
    values = bitmap[mask != 0].astype(np.float64)
    return float(np.cumsum(values)[-1] * (1.0 / len(values))) if len(values) else 0.0


def _box_score_fast(bitmap: np.ndarray, box: np.ndarray) -> float:
    h, w = bitmap.shape[:2]
    box = box.copy()
    xmin = max(0, min(math.floor(box[:, 0].min()), w - 1))
    xmax = max(0, min(math.ceil(box[:, 0].max()), w - 1))
    ymin = max(0, min(math.floor(box[:, 1].min()), h - 1))
    ymax = max(0, min(math.ceil(box[:, 1].max()), h - 1))
    mask = np.zeros((ymax - ymin + 1, xmax - xmin + 1), np.uint8)
    box[:, 0] -= xmin
    box[:, 1] -= ymin
    fill_poly(mask, box.reshape(-1, 2).astype(np.int32))  # PaddleX: cv2.fillPoly as OpenCV 4.10 fills
    return _masked_mean(bitmap[ymin:ymax + 1, xmin:xmax + 1], mask)


def _box_score_slow(bitmap: np.ndarray, contour: np.ndarray) -> float:
    h, w = bitmap.shape[:2]
    contour = np.reshape(contour.copy(), (-1, 2))
    xmin, xmax = np.clip(contour[:, 0].min(), 0, w - 1), np.clip(contour[:, 0].max(), 0, w - 1)
    ymin, ymax = np.clip(contour[:, 1].min(), 0, h - 1), np.clip(contour[:, 1].max(), 0, h - 1)
    mask = np.zeros((ymax - ymin + 1, xmax - xmin + 1), np.uint8)
    contour[:, 0] -= xmin
    contour[:, 1] -= ymin
    fill_poly(mask, contour.reshape(-1, 2).astype(np.int32))
    return _masked_mean(bitmap[ymin:ymax + 1, xmin:xmax + 1], mask)


def _unclip(box: Any, ratio: float) -> np.ndarray:
    """Grow a polygon by area * ratio / perimeter with pyclipper's round offset, as DB's paper does."""
    distance = cv2.contourArea(box) * ratio / cv2.arcLength(box, True)
    offset = pyclipper.PyclipperOffset()
    offset.AddPath(box, pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON)
    try:
        return np.array(offset.Execute(distance))
    except ValueError:  # paths of different lengths: keep the first, as PaddleX does
        return np.array(offset.Execute(distance)[0])


def _rescale(box: np.ndarray, sx: float, sy: float, dw: int, dh: int) -> np.ndarray:
    box = np.array(box)
    for i in range(box.shape[0]):
        box[i, 0] = max(0, min(round(box[i, 0] * sx), dw))
        box[i, 1] = max(0, min(round(box[i, 1] * sy), dh))
    return box


def db_postprocess(pred: np.ndarray, info: np.ndarray, *, thresh: float = 0.3, box_thresh: float = 0.6,
                   max_candidates: int = 1000, unclip_ratio: float = 2.0, use_dilation: bool = False,
                   score_mode: str = "fast", box_type: str = "quad", min_size: int = 3
                   ) -> tuple[list[np.ndarray], list[float]]:
    """PaddleX ``DBPostProcess`` for one probability map ``pred`` [1, H, W] (or [H, W]); ``info`` is
    [src_h, src_w, ratio_h, ratio_w]. Returns boxes in source-image pixels and their mean probabilities."""
    pred = pred.reshape(pred.shape[-2:])
    mask = pred > thresh
    if use_dilation:
        mask = cv2.dilate(mask.astype(np.uint8), np.array([[1, 1], [1, 1]]))
    dh, dw = float(info[0]), float(info[1])  # source sizes (whole numbers) as PaddleX uses them
    height, width = mask.shape
    sx, sy = dw / width, dh / height
    boxes, scores = [], []
    bitmap = (mask * 255).astype(np.uint8)
    contours = cv2.findContours(bitmap, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)[-2]
    if box_type == "poly":
        for contour in contours[:max_candidates]:
            approx = cv2.approxPolyDP(contour, 0.002 * cv2.arcLength(contour, True), True)
            points = approx.reshape((-1, 2))
            if points.shape[0] < 4:
                continue
            score = _box_score_fast(pred, points.reshape(-1, 2))
            if box_thresh > score:
                continue
            box = _unclip(points, unclip_ratio)
            if len(box) > 1 or len(box) == 0:
                continue
            box = box.reshape(-1, 2)
            if len(box) == 0 or _mini_box(box.reshape((-1, 1, 2)))[1] < min_size + 2:
                continue
            boxes.append(_rescale(box, sx, sy, dw, dh))
            scores.append(score)
        return boxes, scores
    if box_type != "quad":
        raise ValueError(f"DBPostProcess: box_type {box_type!r} is not quad or poly")
    for contour in contours[:max_candidates]:
        points, sside = _mini_box(contour)
        if sside < min_size:
            continue
        points = np.array(points)
        score = _box_score_fast(pred, points.reshape(-1, 2)) if score_mode == "fast" \
            else _box_score_slow(pred, contour)
        if box_thresh > score:
            continue
        box, sside = _mini_box(_unclip(points, unclip_ratio).reshape(-1, 1, 2))
        if sside < min_size + 2:
            continue
        boxes.append(_rescale(box, sx, sy, dw, dh).astype(np.int16))
        scores.append(score)
    return boxes, scores


# -- CTC text recognition ------------------------------------------------------------------------------------------

def ctc_characters(character_dict: list[str], use_space_char: bool = True) -> list[str]:
    """Index 0 is CTC's blank; PaddleOCR appends " " to the dictionary."""
    chars = list(character_dict)
    if use_space_char:
        chars.append(" ")
    return ["blank"] + chars


def ctc_decode(probs: np.ndarray, characters: list[str]) -> tuple[list[str], list[float]]:
    """PaddleX ``CTCLabelDecode``: argmax per step, drop repeats and blanks, score = mean of the kept maxima."""
    idx = probs.argmax(axis=-1)
    prob = probs.max(axis=-1)
    texts, scores = [], []
    for i in range(idx.shape[0]):
        keep = np.ones(idx.shape[1], bool)
        keep[1:] = idx[i][1:] != idx[i][:-1]
        keep &= idx[i] != 0
        conf = prob[i][keep]
        texts.append("".join(characters[t] for t in idx[i][keep]))
        scores.append(np.mean(conf if len(conf) else [0]).tolist())
    return texts, scores


# -- detection, classification, segmentation -----------------------------------------------------------------------

def det_postprocess(boxes: np.ndarray, src_hw: tuple[int, int], labels: list[str] | None,
                    threshold: float = 0.5) -> dict[str, Any]:
    """PaddleX ``DetPostProcess`` (float threshold, no layout NMS/merge): rows [cls, score, x1, y1, x2, y2]
    above ``threshold`` and of a real class, clipped to the source image; empty boxes dropped."""
    return layout_postprocess(boxes, src_hw, labels, threshold)


# -- layout detection (PaddleX DetPostProcess with its layout options, and LayoutAnalysisProcess) ------------------

# PaddleX's LayoutAnalysisProcess numbers the reading order of every region but these
LAYOUT_SKIP_ORDER = ("figure_title", "vision_footnote", "image", "chart", "table", "header", "header_image", "footer",
                     "footer_image", "footnote", "aside_text")


def layout_nms(boxes: np.ndarray, iou_same: float = 0.6, iou_diff: float = 0.98) -> list[int]:
    """PaddleX ``layout_nms``: greedy by score; a box goes when it overlaps a kept one by ``iou_same`` (same class)
    or ``iou_diff`` (another class), sides pixel-inclusive (+1). Returns the kept row indices, best first.

    Each kept box against all the others at once, with PaddleX's scalar arithmetic: side differences in the
    rows' dtype, the +1 and everything after it in float64 (NumPy 1.x promotes a float32 scalar plus a Python int
    to float64)."""
    cls, x1, y1, x2, y2 = (boxes[:, k] for k in (0, 2, 3, 4, 5))
    area = ((x2 - x1).astype(np.float64) + 1) * ((y2 - y1).astype(np.float64) + 1)
    indices = np.argsort(boxes[:, 1])[::-1]
    selected = []
    with np.errstate(divide="ignore", invalid="ignore"):
        while len(indices) > 0:
            current, rest = indices[0], indices[1:]
            selected.append(current)
            w = np.maximum(0, (np.minimum(x2[current], x2[rest]) - np.maximum(x1[current], x1[rest])).astype(np.float64)
                           + 1)
            h = np.maximum(0, (np.minimum(y2[current], y2[rest]) - np.maximum(y1[current], y1[rest])).astype(np.float64)
                           + 1)
            inter = w * h
            union = area[current] + area[rest] - inter
            iou = np.where(union != 0, inter / union, 0.0)  # degenerate rows (sides of -1 px): PaddleX divides by 0
            indices = rest[iou < np.where(cls[rest] == cls[current], iou_same, iou_diff)]
    return selected


def _containment(boxes: np.ndarray, formula_index: int | None, category_index: int | None = None,
                 mode: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """PaddleX ``check_containment``: which boxes contain another, which are contained, a box counting as inside
    another when at least 90 % of its area is (``is_contained``); a formula is only compared with formulas; with
    ``category_index``, only pairs where that class is the container (large) / the contained (small). All pairs at
    once, in the rows' own dtype as PaddleX's scalar arithmetic (intersection over the inner box's area)."""
    n = len(boxes)
    cls, x1, y1, x2, y2 = (boxes[:, k] for k in (0, 2, 3, 4, 5))
    area = (x2 - x1) * (y2 - y1)
    inter = np.maximum(0, np.minimum(x2[:, None], x2[None, :]) - np.maximum(x1[:, None], x1[None, :])) * \
        np.maximum(0, np.minimum(y2[:, None], y2[None, :]) - np.maximum(y1[:, None], y1[None, :]))
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(area[:, None] > 0, inter / area[:, None], 0)
    # [i, j]: box i inside box j. PaddleX compares its float32 scalar with 0.9 as a double (0.9f is below 0.9):
    # an array compared with 0.9 would round 0.9 to float32 and take a 90.0 % box as inside
    inside = share.astype(np.float64) >= 0.9
    pairs = ~np.eye(n, dtype=bool)
    if formula_index is not None:
        pairs &= ~((cls[:, None] == formula_index) & (cls[None, :] != formula_index))
    if category_index is not None and mode is not None:
        pairs &= (cls[None, :] == category_index) if mode == "large" else \
            (cls[:, None] == category_index) if mode == "small" else np.zeros((n, n), dtype=bool)
    hit = inside & pairs
    return hit.any(axis=0).astype(int), hit.any(axis=1).astype(int)


def _merge_layout(boxes: np.ndarray, mode: Any, labels: list[str]) -> np.ndarray:
    """PaddleX ``layout_merge_bboxes_mode``: "large" drops boxes inside another, "small" drops boxes that hold
    another (unless held themselves), "union" keeps all; a list of [class id, mode] applies per class."""
    formula_index = labels.index("formula") if "formula" in labels else None
    if isinstance(mode, str):
        if mode == "union":
            return boxes
        contains, contained = _containment(boxes[:, :6], formula_index)
        return boxes[contained == 0] if mode == "large" else boxes[(contains == 0) | (contained == 1)]
    keep = np.ones(len(boxes), dtype=bool)
    for category_index, layout_mode in mode:
        if layout_mode == "union":
            continue
        contains, contained = _containment(boxes[:, :6], formula_index, int(category_index), mode=layout_mode)
        keep &= (contained == 0) if layout_mode == "large" else ((contains == 0) | (contained == 1))
    return boxes[keep]


def _unclip_layout(boxes: np.ndarray, ratio: Any) -> np.ndarray:
    """PaddleX ``unclip_boxes``: each box scaled about its centre by (width, height) ratios; a list of
    [class id, [w, h]] scales only those classes."""
    if ratio and isinstance(ratio[0], (list, tuple)):
        table = {int(k): tuple(v) for k, v in ratio}
        expanded = []
        for box in boxes:
            class_id, score, x1, y1, x2, y2 = box
            if class_id in table:
                width_ratio, height_ratio = table[class_id]
                width, height = x2 - x1, y2 - y1
                new_w, new_h = width * width_ratio, height * height_ratio
                center_x, center_y = x1 + width / 2, y1 + height / 2
                expanded.append([class_id, score, center_x - new_w / 2, center_y - new_h / 2, center_x + new_w / 2,
                                 center_y + new_h / 2])
            else:
                expanded.append(box)
        return np.array(expanded)
    widths, heights = boxes[:, 4] - boxes[:, 2], boxes[:, 5] - boxes[:, 3]
    new_w, new_h = widths * ratio[0], heights * ratio[1]
    center_x, center_y = boxes[:, 2] + widths / 2, boxes[:, 3] + heights / 2
    return np.column_stack((boxes[:, 0], boxes[:, 1], center_x - new_w / 2, center_y - new_h / 2,
                            center_x + new_w / 2, center_y + new_h / 2))


def _overlap_small(coords: list[list]) -> np.ndarray:
    """[i, j]: PaddleX ``calculate_overlap_ratio(i, j, "small")``, intersection over the smaller box, for whole-pixel
    coordinates (integer intersections, float areas, as PaddleX computes them)."""
    c = np.array(coords).reshape(-1, 4)
    x1, y1, x2, y2 = c[:, 0], c[:, 1], c[:, 2], c[:, 3]
    inter = np.maximum(0, np.minimum(x2[:, None], x2[None, :]) - np.maximum(x1[:, None], x1[None, :])) * \
        np.maximum(0, np.minimum(y2[:, None], y2[None, :]) - np.maximum(y1[:, None], y1[None, :]))
    cf = c.astype(np.float64)
    area = np.abs((cf[:, 2] - cf[:, 0]) * (cf[:, 3] - cf[:, 1]))
    ref = np.minimum(area[:, None], area[None, :])
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(ref == 0, 0.0, inter / ref)


def _filter_layout_overlaps(regions: list[dict]) -> list[dict]:
    """PaddleX ``filter_boxes`` (rectangles): references dropped, regions under 6 pixels a side dropped, of two
    regions overlapping by more than 70 % of the smaller the smaller goes (an image, table, seal or chart beside
    another class stays, unless a table meets a non-visual class); inline formulas inside others go."""
    regions = [r for r in regions if r["label"] != "reference"]
    overlap = _overlap_small([r["coordinate"] for r in regions])
    area = [abs((float(x2) - float(x1)) * (float(y2) - float(y1))) for x1, y1, x2, y2 in
            (r["coordinate"] for r in regions)]
    dropped: set[int] = set()
    for i in range(len(regions)):
        x1, y1, x2, y2 = regions[i]["coordinate"]
        if x2 - x1 < 6 or y2 - y1 < 6:
            dropped.add(i)
        for j in range(i + 1, len(regions)):
            if i in dropped or j in dropped:
                continue
            ratio = overlap[i, j]
            li, lj = regions[i]["label"], regions[j]["label"]
            if "inline_formula" in (li, lj) and ratio > 0.5:
                if li == "inline_formula":
                    dropped.add(i)
                if lj == "inline_formula":
                    dropped.add(j)
                continue
            if ratio > 0.7:
                pair = {li, lj}
                if pair & {"image", "table", "seal", "chart"} and len(pair) > 1:
                    if "table" not in pair or pair <= {"table", "image", "seal", "chart"}:
                        continue
                dropped.add(j if area[i] >= area[j] else i)
    return [r for k, r in enumerate(regions) if k not in dropped]


def layout_postprocess(boxes: np.ndarray, src_hw: tuple[int, int], labels: list[str] | None,
                       threshold: float = 0.5, *, class_thresholds: list | None = None, nms: bool = False,
                       unclip_ratio: list | None = None, merge_mode: Any = None,
                       analysis: bool = False) -> dict[str, Any]:
    """PaddleX ``DetPostProcess`` with the layout options its predictor reads from ``inference.yml`` (or, with
    ``analysis``, ``LayoutAnalysisProcess``, what PaddleX runs PP-DocLayoutV2/V3 through), for one image's rows.

    Rows are [cls, score, x1, y1, x2, y2] plus, for reading-order heads, [order] (7 columns) or [order, votes]
    (8 columns, PP-DocLayoutV2: the position in reading order and its vote): the kept regions come out in that
    order. ``class_thresholds`` ([class id, threshold] pairs, others 0.5) replaces ``threshold``; ``nms`` is
    PaddleX's layout NMS (IoU 0.6 within a class, 0.98 across); ``merge_mode`` "large" / "small" / "union" or
    [class id, mode] pairs; ``unclip_ratio`` [w, h] or [class id, [w, h]] pairs. ``analysis`` rounds coordinates
    to whole pixels first, drops references, tiny and overlapped regions, and numbers the reading order
    (``orders``: 1, 2, ... with 0 for the classes PaddleX leaves unnumbered, where it says None)."""
    h, w = int(src_hw[0]), int(src_hw[1])
    labels = list(labels or [])
    boxes = np.array(boxes, copy=True)
    if boxes.ndim != 2:
        boxes = boxes.reshape(0, 6)
    if analysis:
        boxes[:, 2:6] = np.round(boxes[:, 2:6]).astype(int)
    if class_thresholds is None:
        boxes = boxes[(boxes[:, 1] > threshold) & (boxes[:, 0] > -1), :]
    else:
        table = {int(k): v for k, v in class_thresholds}
        parts = []
        for cat_id in np.unique(boxes[:, 0]):
            cat = boxes[boxes[:, 0] == cat_id]
            parts.append(cat[(cat[:, 1] > table.get(int(cat_id), 0.5)) & (cat[:, 0] > -1)])
        boxes = np.vstack(parts) if parts else boxes[:0]
    if nms and len(boxes):
        boxes = np.array(boxes[layout_nms(boxes[:, :6], iou_same=0.6, iou_diff=0.98)])
    if len(boxes) > 1:
        # PaddleX drops an "image" region covering (almost) the whole page
        area_thres = 0.82 if w > h else 0.93
        image_index = labels.index("image") if "image" in labels else None
        kept = []
        for box in boxes:
            label_index, _, xmin, ymin, xmax, ymax = box[:6]
            if label_index == image_index:
                xmin, ymin, xmax, ymax = max(0, xmin), max(0, ymin), min(w, xmax), min(h, ymax)
                if (xmax - xmin) * (ymax - ymin) > area_thres * (w * h):
                    continue
            kept.append(box)
        boxes = np.array(kept) if kept else boxes
    if merge_mode and len(boxes):
        boxes = _merge_layout(boxes, merge_mode, labels)
    if boxes.shape[1] == 8:  # reading order first, the larger vote first among equal orders
        boxes = boxes[np.lexsort((-boxes[:, 7], boxes[:, 6]))][:, :6]
    elif boxes.shape[1] == 7:
        boxes = boxes[np.argsort(boxes[:, 6])][:, :6]
    if unclip_ratio and len(boxes):
        boxes = _unclip_layout(boxes, unclip_ratio)
    regions = []
    for box in boxes:
        xmin, ymin, xmax, ymax = box[2:6]
        xmin, ymin, xmax, ymax = max(0, xmin), max(0, ymin), min(w, xmax), min(h, ymax)
        if analysis:
            xmin, ymin, xmax, ymax = int(xmin), int(ymin), int(xmax), int(ymax)
        if xmax <= xmin or ymax <= ymin:
            continue
        cls = int(box[0])
        regions.append({"cls_id": cls, "label": labels[cls] if 0 <= cls < len(labels) else str(cls),
                        "score": float(box[1]), "coordinate": [xmin, ymin, xmax, ymax]})
    out: dict[str, Any] = {}
    if analysis:
        regions = _filter_layout_overlaps(regions)
        order = 0
        orders = []
        for r in regions:
            numbered = r["label"] not in LAYOUT_SKIP_ORDER
            order += numbered
            orders.append(order if numbered else 0)
        out["orders"] = np.array(orders, np.int32)
    out.update({"boxes": np.array([r["coordinate"] for r in regions], np.float32).reshape(-1, 4),
                "label_ids": np.array([r["cls_id"] for r in regions], np.int32),
                "scores": np.array([r["score"] for r in regions], np.float32),
                "labels": [r["label"] for r in regions]})
    return out


def detection_answer(rows: np.ndarray, src_hw: tuple[int, int], labels: list[str] | None,
                     post: dict[str, Any]) -> dict[str, Any]:
    """A detection pipeline's answer for one image's box rows, with the post-processing its ``pipeline.json``
    names (``threshold``; ``layout`` options where the deploy config sets them)."""
    rows = np.asarray(rows)
    return layout_postprocess(rows.reshape(-1, rows.shape[-1]) if rows.size else rows.reshape(0, 6), src_hw, labels,
                              post.get("threshold", 0.5), **(post.get("layout") or {}))


def topk(probs: np.ndarray, k: int, labels: list[str] | None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """PaddleX ``Topk`` for one row: class ids, scores rounded to 5 decimals, label names."""
    index = probs.argsort()[-k:][::-1].astype("int32")
    names = [labels[i] if labels and i < len(labels) else str(int(i)) for i in index]
    return index, np.around(probs[index], decimals=5), names


def seg_postprocess(pred: np.ndarray, src_hw: tuple[int, int]) -> np.ndarray:
    """Label map at the source size (nearest neighbour); logits [C, H, W] are arg-maxed first."""
    pred = np.asarray(pred)
    if pred.ndim == 4:
        pred = pred[0]
    if pred.ndim == 3 and np.issubdtype(pred.dtype, np.floating):
        pred = pred.argmax(axis=0).astype(np.int32)
    elif pred.ndim == 3:
        pred = pred[0]
    return cv2.resize(pred.astype(np.int32), dsize=(int(src_hw[1]), int(src_hw[0])),
                      interpolation=cv2.INTER_NEAREST)


# -- keypoints: heatmaps -> source pixels (PaddleX KptPostProcess) -------------------------------------------------

def _max_preds(heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """PaddleX ``get_max_preds``: each joint's arg-max (x, y) on [N, K, H, W] heatmaps and its value; joints whose
    peak is not positive sit at (0, 0)."""
    n, k, width = heatmaps.shape[0], heatmaps.shape[1], heatmaps.shape[3]
    flat = heatmaps.reshape((n, k, -1))
    idx = np.argmax(flat, 2).reshape((n, k, 1))
    maxvals = np.amax(flat, 2).reshape((n, k, 1))
    preds = np.tile(idx, (1, 1, 2)).astype(np.float32)
    preds[:, :, 0] = (preds[:, :, 0]) % width
    preds[:, :, 1] = np.floor((preds[:, :, 1]) / width)
    preds *= np.tile(np.greater(maxvals, 0.0), (1, 1, 2)).astype(np.float32)
    return preds, maxvals


def _gaussian_blur(heatmap: np.ndarray, kernel: int) -> np.ndarray:
    """DARK's modulation: each map blurred (zero border) and rescaled to its former peak, in place as PaddleX does."""
    border = (kernel - 1) // 2
    n, k, height, width = heatmap.shape
    for i in range(n):
        for j in range(k):
            origin_max = np.max(heatmap[i, j])
            dr = np.zeros((height + 2 * border, width + 2 * border))
            dr[border:-border, border:-border] = heatmap[i, j].copy()
            dr = cv2.GaussianBlur(dr, (kernel, kernel), 0)
            heatmap[i, j] = dr[border:-border, border:-border].copy()
            with np.errstate(divide="ignore", invalid="ignore"):  # an all-zero map: NaN, as PaddleX gets
                heatmap[i, j] *= origin_max / np.max(heatmap[i, j])
    return heatmap


def _dark_parse(hm: np.ndarray, coord: np.ndarray) -> np.ndarray:
    """DARK's sub-pixel step: a Newton step on the log-heatmap's Taylor expansion around the peak (interior
    peaks only)."""
    heatmap_height, heatmap_width = hm.shape[0], hm.shape[1]
    px, py = int(coord[0]), int(coord[1])
    if 1 < px < heatmap_width - 2 and 1 < py < heatmap_height - 2:
        dx = 0.5 * (hm[py][px + 1] - hm[py][px - 1])
        dy = 0.5 * (hm[py + 1][px] - hm[py - 1][px])
        dxx = 0.25 * (hm[py][px + 2] - 2 * hm[py][px] + hm[py][px - 2])
        dxy = 0.25 * (hm[py + 1][px + 1] - hm[py - 1][px + 1] - hm[py + 1][px - 1] + hm[py - 1][px - 1])
        dyy = 0.25 * (hm[py + 2 * 1][px] - 2 * hm[py][px] + hm[py - 2 * 1][px])
        derivative = np.array([[dx], [dy]])
        hessian = np.array([[dxx, dxy], [dxy, dyy]])
        if dxx * dyy - dxy**2 != 0:
            offset = np.dot(-np.linalg.inv(hessian), derivative)  # np.matrix's -H.I * d, without np.matrix
            coord += np.squeeze(offset.T, axis=0)
    return coord


def keypoint_postprocess(heatmap: np.ndarray, center: Any, scale: Any, use_dark: bool = True,
                         kernel: int = 3) -> tuple[np.ndarray, float]:
    """PaddleX ``KptPostProcess`` for one person: heatmaps [K, H, W] -> keypoints [K, 3] (x, y in source pixels,
    the joint's peak value) and the person's score (the mean peak). Positions are the arg-max refined by DARK
    (``use_dark``, PaddleX's keypoint predictor always) or by a quarter pixel towards the higher neighbour, then
    mapped back through the inverse of the crop's transform (``center``, ``scale``)."""
    heatmaps = np.array(heatmap, dtype=np.float32)[None]  # a copy: DARK's blur writes into it
    coords, maxvals = _max_preds(heatmaps)
    height, width = heatmaps.shape[2], heatmaps.shape[3]
    if use_dark:
        hm = np.log(np.maximum(_gaussian_blur(heatmaps, kernel), 1e-10))
        for p in range(coords.shape[1]):
            coords[0, p] = _dark_parse(hm[0][p], coords[0][p])
    else:
        for p in range(coords.shape[1]):
            hm = heatmaps[0][p]
            px, py = int(math.floor(coords[0][p][0] + 0.5)), int(math.floor(coords[0][p][1] + 0.5))
            if 1 < px < width - 1 and 1 < py < height - 1:
                diff = np.array([hm[py][px + 1] - hm[py][px - 1], hm[py + 1][px] - hm[py - 1][px]])
                coords[0][p] += np.sign(diff) * 0.25
    preds = coords.copy()
    trans = crop_transform(np.asarray(center), np.asarray(scale), [width, height], inv=True)
    for p in range(coords.shape[1]):
        pt = np.array([coords[0, p, 0], coords[0, p, 1], 1.0]).T
        preds[0, p] = np.dot(trans, pt)[:2]
    keypoints = np.concatenate((preds, maxvals), axis=-1)[0]
    return keypoints.astype(np.float32), float(np.mean(maxvals.squeeze(-1), axis=1)[0])


# -- PP-OCR system helpers -----------------------------------------------------------------------------------------

def sort_boxes(boxes: list[np.ndarray]) -> list[np.ndarray]:
    """PaddleOCR's reading order: top to bottom, then left to right within a 10-pixel line band."""
    ordered = sorted(boxes, key=lambda b: (b[0][1], b[0][0]))
    for i in range(len(ordered) - 1):
        for j in range(i, -1, -1):
            if abs(ordered[j + 1][0][1] - ordered[j][0][1]) < 10 and ordered[j + 1][0][0] < ordered[j][0][0]:
                ordered[j], ordered[j + 1] = ordered[j + 1], ordered[j]
            else:
                break
    return ordered


def rotate_crop(img: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Perspective-warp a quadrilateral to an upright rectangle; tall crops (h/w >= 1.5) turn 90 degrees."""
    points = np.asarray(points, np.float32)
    w = int(max(np.linalg.norm(points[0] - points[1]), np.linalg.norm(points[2] - points[3])))
    h = int(max(np.linalg.norm(points[0] - points[3]), np.linalg.norm(points[1] - points[2])))
    std = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    m = cv2.getPerspectiveTransform(points, std)
    crop = cv2.warpPerspective(img, m, (w, h), borderMode=cv2.BORDER_REPLICATE, flags=cv2.INTER_CUBIC)
    if crop.shape[0] * 1.0 / crop.shape[1] >= 1.5:
        crop = np.rot90(crop)
    return crop


def minarea_crop(img: np.ndarray, points: np.ndarray) -> np.ndarray:
    """PaddleX ``CropByPolys`` (quad): the minimum-area rectangle around the box, then :func:`rotate_crop`."""
    box, _ = _mini_box(np.array(points).astype(np.int32))
    return rotate_crop(img, np.array(box))


def rec_batch(crops: list[np.ndarray], image_shape: list) -> np.ndarray:
    """PaddleX's recognizer batch: each crop resized and normalised at its own width, zero-padded on the right to
    the widest of the batch."""
    items = [rec_norm(c, image_shape, max(image_shape[2] / image_shape[1], c.shape[1] / c.shape[0])) for c in crops]
    width = max(i.shape[2] for i in items)
    return np.stack([np.pad(i, ((0, 0), (0, 0), (0, width - i.shape[2]))) for i in items]).astype(np.float32)


def rotate(img: np.ndarray, angle: float) -> np.ndarray:
    """PaddleX ``rotate_image``: rotate about the centre on an enlarged canvas (cubic), e.g. 180 for a line
    the orientation classifier found upside down."""
    if angle < 1e-7:
        return img
    h, w = img.shape[:2]
    mat = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    cos, sin = np.abs(mat[0, 0]), np.abs(mat[0, 1])
    new_w, new_h = int((h * sin) + (w * cos)), int((h * cos) + (w * sin))
    mat[0, 2] += (new_w - w) / 2
    mat[1, 2] += (new_h - h) / 2
    return cv2.warpAffine(img, mat, (new_w, new_h), flags=cv2.INTER_CUBIC)


def orientations(crops: list[np.ndarray], cls: dict, run: Any) -> list[int]:
    """Text-line orientation (0: upright, 1: upside down) for BGR crops, in batches, through ``run(x)`` -> probs."""
    out = []
    for start in range(0, len(crops), cls["batch_size"]):
        chunk = crops[start:start + cls["batch_size"]]
        rgb = [cv2.cvtColor(c, cv2.COLOR_BGR2RGB) if cls["color"] == "RGB" else c for c in chunk]
        x = np.stack([preprocess(np.ascontiguousarray(c), cls["transforms"])["img"] for c in rgb]).astype(np.float32)
        probs = run(x)
        out += [int(topk(p, 1, None)[0][0]) for p in probs]
    return out


def upright(crops: list[np.ndarray], cls: dict, run: Any) -> list[np.ndarray]:
    """The crops, those the orientation classifier finds upside down turned 180 degrees (``run(x)`` -> probs).
    PaddleX's text-line orientation models turn class 1 with :func:`rotate`; PaddleOCR's v2 direction classifier
    (``cls_thresh`` in ``cls``) turns a crop only when its arg-max label contains '180' and that score is above
    ``cls_thresh``, and turns it exactly (``cv2.rotate``), as PaddleOCR's ``predict_cls`` does."""
    if cls.get("cls_thresh") is None:
        return [rotate(c, 180) if a == 1 else c for c, a in zip(crops, orientations(crops, cls, run))]
    out = []
    for start in range(0, len(crops), cls["batch_size"]):
        chunk = crops[start:start + cls["batch_size"]]
        rgb = [cv2.cvtColor(c, cv2.COLOR_BGR2RGB) if cls["color"] == "RGB" else c for c in chunk]
        x = np.stack([preprocess(np.ascontiguousarray(c), cls["transforms"])["img"] for c in rgb]).astype(np.float32)
        for crop, probs in zip(chunk, run(x)):
            best = int(np.argmax(probs))
            turn = "180" in str(cls["labels"][best]) and probs[best] > cls["cls_thresh"]
            out.append(cv2.rotate(crop, cv2.ROTATE_180) if turn else crop)
    return out
