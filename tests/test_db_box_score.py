"""DB box scores equal PaddleX's as PaddleX's environment computes them (OpenCV 4.10), whatever OpenCV is installed.

repogen's ``ops.fill_poly`` is OpenCV 4.10's polygon fill in NumPy; the reference is PaddleX's own
``DBPostProcess`` run in a child process on the OpenCV 4.10 wheel (tests/support/opencv_reference.py), on
probability maps made from generated text images and on boxes placed across them and over their borders.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from repogen.pipelines import ops
from repogen.verify import inputs

pytest.importorskip("paddlex")
from tests.support.opencv_reference import opencv_410_site, paddlex_db_reference  # noqa: E402

PARAMS = {"thresh": 0.3, "box_thresh": 0.6, "unclip_ratio": 1.5, "max_candidates": 1000}
TOLERANCE = 1e-6
MODES = ("fast", "slow")


def _maps(count: int) -> list[np.ndarray]:
    """DB-like probability maps: generated text pages, ink as probability, blurred so edges ramp."""
    rng = np.random.default_rng(7)
    words = ["hello", "world 42", "abc", "triton", "paddle ocr", "x1 y2", "pipeline", "ok", "boxes", "more text"]
    out = []
    for i in range(count):
        h, w = int(rng.integers(96, 260)), int(rng.integers(128, 360))
        picked = list(rng.choice(words, size=int(rng.integers(1, 5)), replace=False))
        img = inputs.text_image(picked, 100 + i, (h, w))
        ink = 1.0 - cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(np.float32) / 255.0
        ink = cv2.GaussianBlur(cv2.dilate(ink, np.ones((3, 7), np.uint8)), (0, 0), 1.5 + (i % 3))
        out.append(np.clip(ink / max(float(ink.max()), 1e-6) + rng.normal(0, 0.02, ink.shape), 0, 1)
                   .astype(np.float32))
    return out


def _pairs(maps: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(map, box) pairs: the minimum-area boxes DB takes of each map's blobs (float corners, as PaddleX scores
    them), and rotated boxes anywhere, many reaching over the map's border."""
    rng = np.random.default_rng(11)
    pairs = []
    for m in maps:
        contours = cv2.findContours(((m > 0.3) * 255).astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)[-2]
        for c in contours:
            box, _ = ops._mini_box(c)
            pairs.append((m, np.array(box, np.float32)))
        h, w = m.shape
        for _ in range(20):
            center = (float(rng.uniform(-10, w + 10)), float(rng.uniform(-10, h + 10)))
            size = (float(rng.uniform(1, w / 2)), float(rng.uniform(1, h / 3)))
            pairs.append((m, cv2.boxPoints((center, size, float(rng.uniform(-90, 90)))).astype(np.float32)))
    return pairs


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    maps = _maps(24)
    pairs = _pairs(maps)
    shaped = [(m, np.array([int(m.shape[0] * 1.25), int(m.shape[1] * 0.8), 0.8, 1.25], np.float32)) for m in maps]
    settings = [{**PARAMS, "score_mode": mode} for mode in MODES]
    ref = paddlex_db_reference(pairs, shaped, tmp_path_factory.mktemp("db410"), settings)
    return maps, pairs, shaped, ref


def test_box_scores_equal_paddlex_under_opencv_410(case):
    _, pairs, _, ref = case
    assert ref["version"].startswith("4.10.")
    assert len(pairs) > 500
    fast = np.array([ops._box_score_fast(m, b) for m, b in pairs])
    slow = np.array([ops._box_score_slow(m, b.astype(np.int32).reshape(-1, 1, 2)) for m, b in pairs])
    assert np.abs(fast - ref["fast"]).max() <= TOLERANCE
    assert np.abs(slow - ref["slow"]).max() <= TOLERANCE
    assert (ref["fast"] > 0.3).sum() > 100  # real text blobs scored, not only empty corners


def test_the_installed_opencv_fill_would_fail_the_check(case):
    """The check can fail: scores from the installed OpenCV's own fillPoly (what repogen did before) differ from
    PaddleX's 4.10 scores by more than the tolerance when the installed OpenCV is 4.11 or newer."""
    _, pairs, _, ref = case
    if tuple(int(p) for p in cv2.__version__.split(".")[:2]) < (4, 11):
        pytest.skip(f"the installed OpenCV {cv2.__version__} fills as 4.10 does")

    def installed_fill(bitmap, box):
        h, w = bitmap.shape
        box = box.copy()
        xmin, xmax = max(0, min(math.floor(box[:, 0].min()), w - 1)), max(0, min(math.ceil(box[:, 0].max()), w - 1))
        ymin, ymax = max(0, min(math.floor(box[:, 1].min()), h - 1)), max(0, min(math.ceil(box[:, 1].max()), h - 1))
        mask = np.zeros((ymax - ymin + 1, xmax - xmin + 1), np.uint8)
        box[:, 0] -= xmin
        box[:, 1] -= ymin
        cv2.fillPoly(mask, box.reshape(1, -1, 2).astype(np.int32), 1)
        return cv2.mean(bitmap[ymin:ymax + 1, xmin:xmax + 1], mask)[0]

    old = np.array([installed_fill(m, b) for m, b in pairs])
    assert np.abs(old - ref["fast"]).max() > TOLERANCE


def test_fill_poly_equals_opencv_410_on_clipped_and_odd_polygons(tmp_path):
    """Masks themselves, for polygons DB never hands over (self-crossing, outside, degenerate) too."""
    import subprocess
    import sys

    rng = np.random.default_rng(3)
    polys = [rng.integers(-20, 80, (int(rng.integers(3, 9)), 2)).astype(np.int32) for _ in range(400)]
    sizes = [(int(rng.integers(1, 60)), int(rng.integers(1, 60))) for _ in polys]
    np.savez(tmp_path / "polys.npz", *polys, sizes=np.array(sizes))
    child = ("import sys; sys.path.insert(0, sys.argv[1]); import cv2, numpy as np; "
             "a = np.load(sys.argv[2]); sizes = a['sizes']; out = []\n"
             "for i, (h, w) in enumerate(sizes):\n"
             "    m = np.zeros((h, w), np.uint8); cv2.fillPoly(m, a[f'arr_{i}'].reshape(1, -1, 2), 1); out.append(m)\n"
             "np.savez(sys.argv[3], *out)")
    subprocess.run([sys.executable, "-c", child, str(opencv_410_site()), str(tmp_path / "polys.npz"),
                    str(tmp_path / "masks.npz")], check=True, timeout=300)
    with np.load(tmp_path / "masks.npz") as want:
        for i, (pts, (h, w)) in enumerate(zip(polys, sizes)):
            got = np.zeros((h, w), np.uint8)
            ops.fill_poly(got, pts)
            assert np.array_equal(got, want[f"arr_{i}"]), (i, pts.tolist(), (h, w))


@pytest.mark.parametrize("score_mode", MODES)
def test_db_postprocess_equals_paddlex_under_opencv_410(case, score_mode):
    _, _, shaped, ref = case
    found = 0
    for i, (m, shape) in enumerate(shaped):
        boxes, scores = ops.db_postprocess(m[None], shape, score_mode=score_mode, **PARAMS)
        want_boxes, want_scores = ref["answers"][MODES.index(score_mode)][i]
        assert np.array_equal(np.asarray(boxes, np.float32).reshape(-1, 4, 2),
                              np.asarray(want_boxes, np.float32).reshape(-1, 4, 2)), i
        assert np.abs(np.asarray(scores, np.float64) - np.asarray(want_scores)).max(initial=0) <= TOLERANCE, i
        found += len(boxes)
    assert found > 50
