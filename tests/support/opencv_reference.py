"""OpenCV 4.10, the version in PaddleX's own environment, for running PaddleX's processors as PaddleX runs them.

``opencv-python-headless>=4.8`` resolves to 4.11 here, whose ``cv2.fillPoly`` fills polygons differently from
4.10: PaddleX's DB box scores under 4.11 are not the scores PaddleX users get. The 4.10 wheel is fetched by pip
alone (``--no-deps``) into a cache folder (``REPOGEN_TRAINED_CACHE``, as the trained exports) and unpacked; a child
process puts it first on ``sys.path``, so the test process keeps its own OpenCV.

:func:`paddlex_db_reference` runs PaddleX's ``DBPostProcess`` there: ``box_score_fast`` / ``box_score_slow`` on
given (map, box) pairs, and the whole post-processing on given probability maps.
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

import numpy as np

from tests.support.cache_lock import cache_lock
from tests.support.trained_models import cache_root

VERSION = "4.10.0.84"
WHEEL = f"opencv-python-headless=={VERSION}"
TESTS = Path(__file__).resolve().parent.parent


def opencv_410_site() -> Path:
    """A folder holding OpenCV 4.10's ``cv2`` package (unpacked from the PyPI wheel, cached)."""
    root = cache_root() / f"opencv-{VERSION}"
    done = root / "site" / ".complete"
    with cache_lock(root):
        if not done.is_file():
            _unpack(root)
    return root / "site"


def _unpack(root: Path) -> None:
    """OpenCV 4.10's wheel fetched and unpacked into ``root/site`` (under the cache lock)."""
    wheels = list(root.glob("opencv_python_headless-*.whl"))
    if not wheels:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--only-binary", ":all:",
                        "-d", str(root), WHEEL], check=True, timeout=600)
        wheels = list(root.glob("opencv_python_headless-*.whl"))
    tmp = Path(tempfile.mkdtemp(prefix=".unpack-", dir=root))
    with zipfile.ZipFile(wheels[0]) as zf:
        zf.extractall(tmp)
    (tmp / ".complete").write_text("ok")
    if (root / "site").exists():  # a half-unpacked folder of an interrupted run
        shutil.rmtree(root / "site")
    os.replace(tmp, root / "site")


_CHILD = r"""
import json, sys
import numpy as np
site, tests, data, out, settings = sys.argv[1:6]
sys.path.insert(0, site)
sys.path.insert(1, tests)  # tests/support: the PaddleX reference
import cv2
assert cv2.__version__.startswith("4.10."), cv2.__version__
import pipeline_reference as ref
settings = json.loads(settings)
arrays = np.load(data)
post = ref.textdet.DBPostProcess()
pairs = [(arrays[f"pair_map_{i}"], arrays[f"pair_box_{i}"]) for i in range(int(arrays["pairs"]))]
result = {"fast": [float(post.box_score_fast(m, b)) for m, b in pairs],
          "slow": [float(post.box_score_slow(m, b.astype(np.int32).reshape(-1, 1, 2))) for m, b in pairs]}
answers = []
for params in settings:
    post = ref.textdet.DBPostProcess(**params)
    per_map = []
    for i in range(int(arrays["maps"])):
        pred = arrays[f"map_{i}"]
        boxes, scores = post([pred.reshape(1, 1, *pred.shape[-2:])], [arrays[f"shape_{i}"]])
        per_map.append(([np.asarray(b, np.float32).tolist() for b in boxes[0]], [float(s) for s in scores[0]]))
    answers.append(per_map)
result["answers"] = answers
result["version"] = cv2.__version__
with open(out, "w") as f:
    json.dump(result, f)  # floats written as repr: read back exactly
"""


def paddlex_db_reference(pairs: list[tuple[np.ndarray, np.ndarray]], maps: list[tuple[np.ndarray, np.ndarray]],
                         work: Path, settings: list[dict] = ()) -> dict:
    """PaddleX's ``DBPostProcess`` under OpenCV 4.10, in a child process: ``fast`` / ``slow``, the box scores of each
    (probability map [H, W], float box [4, 2]) pair; ``answers[k][i]``, the (boxes, scores) of
    ``DBPostProcess(**settings[k])`` for the i-th (map [H, W] or [1, H, W], shape [src_h, src_w, ratio_h, ratio_w]) of
    ``maps``; ``version``, the child's OpenCV."""
    work.mkdir(parents=True, exist_ok=True)
    data, out = work / "db_in.npz", work / "db_out.json"
    arrays: dict[str, np.ndarray] = {"pairs": np.array(len(pairs)), "maps": np.array(len(maps))}
    for i, (m, b) in enumerate(pairs):
        arrays[f"pair_map_{i}"], arrays[f"pair_box_{i}"] = m, b
    for i, (m, s) in enumerate(maps):
        arrays[f"map_{i}"], arrays[f"shape_{i}"] = m, s
    np.savez(data, **arrays)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the child's OpenCV comes first, no other
    env["PYTHONPATH"] = str(TESTS.parent)
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(opencv_410_site()), str(TESTS / "support"), str(data), str(out),
                           json.dumps(list(settings))], capture_output=True, text=True, timeout=600, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"PaddleX reference under OpenCV 4.10 failed: {proc.stderr[-3000:]}")
    got = json.loads(out.read_text())
    got["fast"], got["slow"] = np.array(got["fast"]), np.array(got["slow"])
    return got
