"""What a pipeline model is as a member of a system built from several models (the PP-OCR system): a text
detector, a text recognizer or a text-line orientation classifier, told from its deploy config or from the
pipeline data its ``_pre`` model carries."""

from __future__ import annotations

from typing import Any

WHAT = {"ocr_det": "text detector (PaddleX DBPostProcess model)", "ocr_rec": "text recognizer (CTCLabelDecode model)",
        "textline": "text-line orientation classifier (Topk model with label_list [0_degree, 180_degree], or "
                    "PaddleOCR's v2 direction classifier: ClsPostProcess)"}


def _kind(kind: str, labels: list[str] | None, post: dict[str, Any] | None = None) -> str:
    # PaddleX's text-line orientation classifiers (textline_ori) label their two classes so; PaddleOCR's v2
    # direction classifier (ClsPostProcess) is told by its cls_thresh
    textline = (labels or [])[:2] == ["0_degree", "180_degree"] or "cls_thresh" in (post or {})
    return "textline" if kind == "classification" and textline else kind


def member_kind(cfg: Any) -> str | None:
    """``ocr_det`` / ``ocr_rec`` / ``textline`` for a deploy config, else its kind; None without one."""
    return None if cfg is None else _kind(cfg.kind, cfg.labels, cfg.post)


def member_kind_of_pipeline(data: dict[str, Any]) -> str:
    """The same for a generated ``_pre`` model's pipeline.json data."""
    return _kind(data["kind"], data.get("labels"), data.get("post"))
