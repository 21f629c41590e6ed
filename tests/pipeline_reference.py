"""PaddleX's own processor classes, the reference for repogen.pipelines (tests and bench only).

PaddleX gates its OpenCV-based processors on the distribution name ``opencv-contrib-python``; its ``[ocr]``/``[cv]``
extras pin that wheel, which clashes with ``opencv-python-headless`` (both install ``cv2``). The processors only
need ``cv2`` itself, so the gate is answered from the ``cv2`` module that is importable, before they load.
"""

from __future__ import annotations

import sys

import cv2


def _patch_paddlex_cv2_gate() -> None:
    import paddlex.utils.deps as deps

    if getattr(deps, "_repogen_patched", False):
        return
    original = deps.is_dep_available

    def is_dep_available(dep, /, check_version=False):
        if dep == "opencv-contrib-python":
            return True
        return original(dep, check_version=check_version)

    deps.is_dep_available = is_dep_available
    deps._repogen_patched = True


_patch_paddlex_cv2_gate()

from paddlex.inference.models.common.vision import processors as common  # noqa: E402
from paddlex.inference.models.image_classification import processors as cls_proc  # noqa: E402
from paddlex.inference.models.object_detection import processors as det_proc  # noqa: E402
from paddlex.inference.models.semantic_segmentation import processors as seg_proc  # noqa: E402
from paddlex.inference.models.text_detection import processors as textdet  # noqa: E402
from paddlex.inference.models.text_recognition import processors as textrec  # noqa: E402
from paddlex.inference.common.reader import image_reader  # noqa: E402

# modules imported before the gate was answered never bound cv2
for _name, _mod in list(sys.modules.items()):
    if _name.startswith("paddlex.") and _mod is not None and hasattr(_mod, "is_dep_available") \
            and not hasattr(_mod, "cv2"):
        _mod.cv2 = cv2

__all__ = ["common", "cls_proc", "det_proc", "seg_proc", "textdet", "textrec", "image_reader"]
