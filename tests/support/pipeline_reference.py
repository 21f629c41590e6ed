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

def _bind_cv2() -> None:
    # modules imported before the gate was answered never bound cv2
    for name, mod in list(sys.modules.items()):
        if name.startswith("paddlex.") and mod is not None and hasattr(mod, "is_dep_available") \
                and not hasattr(mod, "cv2"):
            mod.cv2 = cv2


from paddlex.inference.pipelines.components.common import crop_image_regions, sort_boxes  # noqa: E402

_bind_cv2()

__all__ = ["crop_image_regions", "sort_boxes", "common", "cls_proc", "det_proc", "seg_proc", "textdet", "textrec", "image_reader"]


# -- PaddleX's own predictors on a test export (the reference chain: processors around Paddle Inference) -----------

PADDLEX_NAMES = {"ocr_det": "PP-OCRv5_mobile_det", "ocr_rec": "PP-OCRv5_mobile_rec", "det": "YOLOv3-DarkNet53",
                 "layout": "PP-DocLayout-L", "seg": "PP-LiteSeg-T", "cls": "PP-LCNet_x1_0",
                 "textline": "PP-LCNet_x0_25_textline_ori", "cls_mobilenet": "MobileNetV2_x1_0",
                 "ocr_det_mobilenet": "PP-OCRv5_mobile_det", "layout_plus": "PP-DocLayout_plus-L",
                 "layout_v2": "PP-DocLayoutV2", "layout_s": "PP-DocLayout-S"}
PADDLEX_NAMES["keypoint"] = "PP-TinyPose_128x96"  # a top-down keypoint model: PaddleX's KptRunnerPredictor


def paddlex_predictor(kind: str, model_dir, work_dir, batch_size: int = 1):
    """``paddlex.create_model`` on the export, Paddle Inference with oneDNN off (``run_mode: paddle``).

    PaddleX reads ``inference.yml`` only, so PaddleDetection / PaddleSeg configs are offered under that name
    in a copy of the folder."""
    import shutil
    from pathlib import Path

    from paddlex import create_model

    model_dir, work = Path(model_dir), Path(work_dir) / f"paddlex-{kind}"
    if not (model_dir / "inference.yml").is_file():
        if not work.exists():
            shutil.copytree(model_dir, work)
            for name in ("infer_cfg.yml", "deploy.yaml"):
                if (work / name).is_file():
                    (work / name).rename(work / "inference.yml")
        model_dir = work
    return create_model(model_name=PADDLEX_NAMES[kind], model_dir=str(model_dir), device="cpu",
                        engine="paddle_static", engine_config={"run_mode": "paddle", "cpu_threads": 1},
                        batch_size=batch_size)


def paddlex_answer(predictor, kind: str, img):
    """The predictor's answer for one BGR image, in the pipeline's output terms."""
    import numpy as np

    r = list(predictor.predict(img))[0]
    if kind == "ocr_det":
        return {"boxes": np.array(r["dt_polys"], np.float32).reshape(-1, 4, 2),
                "scores": np.array(r["dt_scores"], np.float32)}
    if kind == "ocr_rec":
        return {"texts": [r["rec_text"]], "scores": np.array([r["rec_score"]], np.float32)}
    if kind in ("det", "layout") or kind.startswith("layout_"):
        b = r["boxes"]
        answer = {"boxes": np.array([d["coordinate"] for d in b], np.float32).reshape(-1, 4),
                  "scores": np.array([d["score"] for d in b], np.float32),
                  "labels": [d["label"] for d in b], "label_ids": np.array([d["cls_id"] for d in b], np.int32)}
        if any("order" in d for d in b):  # layout analysis: reading order, None where PaddleX numbers none
            answer["orders"] = np.array([d["order"] or 0 for d in b], np.int32)
        return answer
    if kind in ("cls", "textline", "cls_mobilenet"):
        return {"class_ids": np.asarray(r["class_ids"], np.int32).reshape(-1),
                "scores": np.asarray(r["scores"], np.float32).reshape(-1),
                "labels": list(r["label_names"])}
    if kind == "seg":
        return {"label_map": np.asarray(r["pred"])[0].astype(np.int32)}
    if kind == "keypoint":  # img: a BGR image, or {"img", "center", "scale"} (paddlex_person_crop)
        k = r["kpts"][0]
        return {"keypoints": np.asarray(k["keypoints"], np.float32),
                "kpt_score": np.array([k["kpt_score"]], np.float32)}
    raise ValueError(kind)


def paddlex_person_crop(predictor, img, box) -> dict:
    """What PaddleX's human keypoint pipeline hands its keypoint predictor for one person box [x1, y1, x2, y2]:
    the image with the centre and scale its own ``_box_xyxy2cs`` makes (aspect ratio, 1.25 padding)."""
    from paddlex.inference.pipelines.keypoint_detection.pipeline import _KeypointDetectionPipeline

    holder = type("KptInputSize", (), {"kpt_input_size": predictor.input_size})()
    center, scale = _KeypointDetectionPipeline._box_xyxy2cs(holder, [float(v) for v in box])
    return {"img": img, "center": center, "scale": scale}


def paddlex_ocr(det, rec, img, batch_size: int = 6, textline=None) -> dict:
    """PaddleX's OCR pipeline steps (ocr/pipeline.py, quad boxes, no orientation models), composed from its own
    components: det -> SortQuadBoxes -> CropByPolys -> crops sorted by aspect ratio -> rec in batches."""
    import numpy as np

    polys = list(det.predict(img))[0]["dt_polys"]
    polys = sort_boxes.SortQuadBoxes()(polys) if len(polys) else []
    crops = crop_image_regions.CropByPolys("quad")(img, polys) if len(polys) else []
    kept = [(c, p) for c, p in zip(crops, polys) if c.size > 0 and c.shape[0] > 0 and c.shape[1] > 0]
    if textline is not None and kept:  # PaddleX: class id 0/1 -> rotate 0/180 degrees (warp_image.rotate_image)
        from paddlex.inference.pipelines.components.common.warp_image import rotate_image
        _bind_cv2()
        angles = [int(np.asarray(r["class_ids"]).ravel()[0]) for r in textline.predict([c for c, _ in kept])]
        kept = [(rotate_image(c, a * 180), p) for (c, p), a in zip(kept, angles)]
    order = sorted(range(len(kept)), key=lambda i: kept[i][0].shape[1] / float(kept[i][0].shape[0]))
    texts, scores = [""] * len(kept), [0.0] * len(kept)
    if kept:
        for i, r in zip(order, rec.predict([kept[i][0] for i in order])):
            texts[i], scores[i] = r["rec_text"], r["rec_score"]
    return {"boxes": np.array([p for _, p in kept], np.float32).reshape(-1, 4, 2), "texts": texts,
            "scores": np.array(scores, np.float32)}


# -- PaddleX's pipelines (create_pipeline) -------------------------------------------------------------------------

def paddlex_pipeline(config: dict):
    """``paddlex.create_pipeline(config=config)`` on the CPU, Paddle Inference with oneDNN off and one thread (as
    :func:`paddlex_predictor`), inherited by every model of the pipeline.

    PaddleX also gates each pipeline on an extra (OCR: ``ocr-core``, whose only package missing here is
    ``imagesize``, for page sizes of documents, which the image path never imports); the gate is answered for the
    pipelines the tests run, so a truly missing import still fails where it is used."""
    import paddlex.utils.deps as deps
    from paddlex import create_pipeline

    if not getattr(deps, "_repogen_extras_patched", False):
        original = deps.require_extra

        def require_extra(extra, *, obj_name=None, alt=None):
            if extra in ("ocr", "cv"):
                return None
            return original(extra, obj_name=obj_name, alt=alt)

        deps.require_extra = require_extra
        deps._repogen_extras_patched = True
    pipeline = create_pipeline(config=config, device="cpu", engine="paddle_static",
                               engine_config={"run_mode": "paddle", "cpu_threads": 1})
    _bind_cv2()
    return pipeline


def paddlex_pipeline_answer(pipeline, img) -> dict:
    """The OCR pipeline's answer for one BGR image in ``ocr_system``'s terms: the kept lines' boxes, texts, scores."""
    import numpy as np

    r = list(pipeline.predict(img))[0]
    return {"boxes": np.array(r["rec_polys"], np.float32).reshape(-1, 4, 2), "texts": list(r["rec_texts"]),
            "scores": np.array(r["rec_scores"], np.float32)}
