"""PaddleX's serving protocol in front of repogen's pipelines: one ``<pipeline>_paddlex`` model per pipeline.

PaddleX serves a pipeline two ways with the same JSON: basic serving (an HTTP app, one route per pipeline:
``/ocr``, ``/object-detection``, ...) and high-stability serving (Triton: one Python-backend model per
pipeline taking one JSON string in the BYTES input ``input`` and answering one JSON string in ``output``,
``max_batch_size: 1``). The models written here are the high-stability form: ``repogen/pipelines/served/
paddlex_model.py`` parses PaddleX's request (``file``/``image`` as base64), decodes the image, calls the native
pipeline (``ocr_system``, ``<model>_pipeline_raw``) through BLS and answers PaddleX's envelope
``{logId, errorCode: 0, errorMsg: "Success", result}``, or ``{logId, errorCode, errorMsg}`` for a request it
refuses (422) or a failure of its own (500). ``repogen gateway`` serves the basic routes by calling them.

PaddleX's options are honoured where the served pipeline can honour them per request (a stricter score
threshold, fewer top-k classes, ...); an option that would need the pipeline built differently is refused with
the value the pipeline was built with (422), never silently ignored.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np

from repogen.pipelines.ensemble import SERVED, GeneratedModel, HERE, MAX_PIXELS
from repogen.pipelines.members import member_kind_of_pipeline
from repogen.repository.config import parse_config, stage_config

SUFFIX = "_paddlex"
INPUT, OUTPUT = "input", "output"  # PaddleX high-stability serving's tensor names
#: pipeline kind -> PaddleX's basic-serving route (paddlex.inference.serving.schemas.<module>.INFER_ENDPOINT)
ENDPOINTS = {"ocr": "/ocr", "detection": "/object-detection", "classification": "/image-classification",
             "segmentation": "/semantic-segmentation"}
#: the config parameter that names a protocol model's route, so a gateway finds the models from Triton alone
ENDPOINT_PARAMETER = "paddlex_endpoint"
MAX_FILE_BYTES = 64 << 20  # a request's file after base64 decoding (a 20-megapixel PNG is well under)


def _model(name: str, target: str, data: dict[str, Any], instances: int) -> GeneratedModel:
    payload = {"protocol": "paddlex", "endpoint": ENDPOINTS[data["kind"]], "target": target,
               "max_file_bytes": MAX_FILE_BYTES, **data}
    tensor = lambda n: {"name": n, "dtype": "bytes", "dims": [1]}  # noqa: E731
    config = stage_config(name=name, description=f"PaddleX's {payload['endpoint']} protocol over {target} (BLS).",
                          inputs=[tensor(INPUT)], outputs=[tensor(OUTPUT)], max_batch_size=1,
                          cpu_instances=instances, parameters={ENDPOINT_PARAMETER: payload["endpoint"]})
    files = {"1/model.py": (SERVED / "paddlex_model.py").read_bytes(),
             "1/pipeline_ops.py": (HERE / "ops.py").read_bytes(),
             "1/pipeline_common.py": (SERVED / "common.py").read_bytes(),
             "1/pipeline.json": json.dumps(payload, indent=1).encode()}
    return GeneratedModel(name, config, files, role="pipeline")


def _limits(data: dict[str, Any]) -> dict[str, Any]:
    return {"min_side": data["min_side"], "max_side": data["max_side"], "max_pixels": data.get("max_pixels", MAX_PIXELS)}


def _resize_target(transforms: list[dict[str, Any]]) -> list[int]:
    """The [w, h] a segmentation pipeline resizes to (PaddleX's ``target_size``), [-1, -1] when it keeps the size."""
    for t in transforms:
        if t["op"] == "resize" and t.get("target_wh") and not t.get("keep_ratio"):
            return [int(v) for v in t["target_wh"]]
    return [-1, -1]


def pipeline_protocol_models(generated: list[GeneratedModel]) -> list[GeneratedModel]:
    """``<model>_paddlex`` for each detection, classification and segmentation pipeline among ``generated``
    (repogen.pipelines.ensemble.generate's models); OCR members are served through the OCR system's one."""
    out = []
    for pre in generated:
        meta = pre.meta or {}
        data = meta.get("pipeline")
        if not data or member_kind_of_pipeline(data) not in ("detection", "classification", "segmentation"):
            continue
        model = meta["model"]
        post = data["post"]
        kind = data["kind"]
        settings: dict[str, Any] = {"kind": kind, **_limits(data)}
        if kind == "detection":
            settings["threshold"] = float(post["threshold"])
        elif kind == "classification":
            settings["topk"] = int(post["topk"])
        else:
            settings["target_size"] = _resize_target(data["transforms"])
        # a protocol instance waits out its whole BLS call: one per request the ensemble can hold (its pre, model
        # and post stages each run ``instances`` at once), or the protocol model throttles the pipeline
        out.append(_model(model + SUFFIX, f"{model}_pipeline_raw", settings, 3 * int(meta.get("instances", 1))))
    return out


def protocol_name(system: str) -> str:
    """``ocr_system`` -> ``ocr_paddlex`` (PaddleX's endpoint is /ocr); a system named by a spec keeps its name."""
    return "ocr" + SUFFIX if system == "ocr_system" else system + SUFFIX


def ocr_protocol_model(system: GeneratedModel) -> GeneratedModel:
    """The PaddleX OCR protocol model over an OCR system (repogen.pipelines.ensemble.ocr_system's model)."""
    data = json.loads(system.files["1/pipeline.json"])
    det = data["det"]
    resize = next((t for t in det["transforms"] if t["op"] == "det_resize"), {})
    # PaddleX's text_det_params, as the system was built (the OCR result reports them)
    params = {"limit_side_len": resize.get("limit_side_len"), "limit_type": resize.get("limit_type"),
              "thresh": det["post"].get("thresh"), "max_side_limit": resize.get("max_side_limit", 4000),
              "box_thresh": det["post"].get("box_thresh"), "unclip_ratio": det["post"].get("unclip_ratio")}
    if "resize_long" in resize or "image_shape" in resize or "input_shape" in resize:
        params["limit_side_len"] = params["limit_type"] = None  # a fixed or long-side resize: no limit applies
    groups = parse_config(system.config, f"{system.name}/config.pbtxt").instance_group
    settings = {"kind": "ocr", **_limits(data), "text_det_params": params, "textline_orientation": "cls" in data,
                "text_rec_score_thresh": 0.0}
    # two per system instance: one waits on the system while the other decodes the next image / encodes an answer
    return _model(protocol_name(system.name), system.name, settings, 2 * (sum(g.count for g in groups) or 1))


# -- requests and answers -------------------------------------------------------------------------------------------

#: pipeline kind -> the native pipeline kind its answers are judged as (repogen.verify.tasks.compare_answers)
ANSWER_KINDS = {"ocr": "ocr_system", "detection": "detection", "classification": "classification",
                "segmentation": "segmentation"}


def request_body(kind: str, image: bytes, **options: Any) -> dict[str, Any]:
    """PaddleX's request for one encoded image: OCR takes ``file`` + ``fileType`` 1, the others ``image``."""
    data = base64.b64encode(image).decode("ascii")
    return {"file": data, "fileType": 1, **options} if kind == "ocr" else {"image": data, **options}


# -- the answers in the native pipeline's terms (for repogen.verify.tasks.compare_answers) --------------------------

def native_answer(kind: str, result: dict[str, Any]) -> dict[str, Any]:
    """A protocol ``result`` as the native pipeline answers (``boxes``, ``texts``, ``scores``, ``labels``,
    ``label_ids``, ``label_map``), so both are judged by the same rules. ``kind``: ocr, detection,
    classification or segmentation."""
    if kind == "ocr":
        (page,) = result["ocrResults"]
        pruned = page["prunedResult"]
        return {"boxes": np.array(pruned["rec_polys"], np.float32).reshape(-1, 4, 2), "texts": list(pruned["rec_texts"]),
                "scores": np.array(pruned["rec_scores"], np.float32)}
    if kind == "detection":
        objs = result["detectedObjects"]
        return {"boxes": np.array([o["bbox"] for o in objs], np.float32).reshape(-1, 4),
                "scores": np.array([o["score"] for o in objs], np.float32), "labels": [o["categoryName"] for o in objs],
                "label_ids": np.array([o["categoryId"] for o in objs], np.int32)}
    if kind == "classification":
        cats = result["categories"]
        return {"label_ids": np.array([c["id"] for c in cats], np.int32), "labels": [c["name"] for c in cats],
                "scores": np.array([c["score"] for c in cats], np.float32)}
    h, w = result["size"]
    return {"label_map": np.array(result["labelMap"], np.int32).reshape(h, w)}
