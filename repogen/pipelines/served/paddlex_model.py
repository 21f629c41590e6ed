"""PaddleX's serving protocol over a repogen pipeline (PaddleX's high-stability form): one JSON string in the
BYTES input ``input``, one JSON string out in ``output``, one request at a time (``max_batch_size: 1``).

The request is PaddleX's (``paddlex.inference.serving.schemas``): ``file`` (OCR) or ``image`` (detection,
classification, segmentation) as base64, and the pipeline's options. The image is decoded here (its header read
and its size admitted first), then the native pipeline named in pipeline.json ``target`` answers it through
BLS, and the answer is PaddleX's envelope ``{logId, errorCode: 0, errorMsg: "Success", result}``.

Every request gets an answer in PaddleX's form, whatever it holds: a request PaddleX would refuse, or one this
server cannot honour (a URL, a PDF, an option the pipeline was not built for), is ``errorCode`` 422 with a
message naming the field; anything else going wrong is 500 "Internal server error" (logged). Nothing is kept
between requests.
"""

import base64
import binascii
import json
import math
import uuid

import numpy as np
import triton_python_backend_utils as pb_utils

from pipeline_common import load_config, ops

INPUT, OUTPUT = "input", "output"


class RequestError(Exception):
    """A request PaddleX's serving answers with errorCode 422 (the client's to fix)."""


# -- PaddleX's request fields: JSON types as its pydantic schemas take them (strict: "5" is not an int) -------------

def _get(body, key, kind, required=False):
    value = body.get(key)
    if value is None:
        if required:
            raise RequestError(f"{key}: field required")
        return None
    check, what = _KINDS[kind]
    if not check(value):
        raise RequestError(f"{key}: expected {what}, got {json.dumps(value)[:60]}")
    return float(value) if kind == "float" else value


_KINDS = {"bool": (lambda v: isinstance(v, bool), "true or false"),
          "int": (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
          "float": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v), "a number"),
          "str": (lambda v: isinstance(v, str), "a string")}


def _refuse_constant(name):
    raise ValueError(f"{name} is not JSON")


def _same(a, b):
    return a is not None and b is not None and abs(float(a) - float(b)) <= 1e-9 * max(1.0, abs(float(b)))


class TritonPythonModel:
    def initialize(self, args):
        self.cfg = load_config()
        self.kind = self.cfg["kind"]
        self.handlers = {"ocr": self._ocr, "detection": self._detection, "classification": self._classification,
                         "segmentation": self._segmentation}

    def execute(self, requests):
        return [self._respond(request) for request in requests]

    # -- envelope --------------------------------------------------------------------------------------------------

    def _respond(self, request):
        log_id = None
        try:
            body = self._body(request)
            # a field of PaddleX's OCR and detection requests (the others ignore it, as any unknown field)
            log_id = _get(body, "logId", "str") or None if self.kind in ("ocr", "detection") else None
            out = {"logId": log_id or str(uuid.uuid4()), "errorCode": 0, "errorMsg": "Success",
                   "result": self.handlers[self.kind](body)}
        except RequestError as exc:
            out = {"logId": log_id or str(uuid.uuid4()), "errorCode": 422, "errorMsg": str(exc)}
        except Exception as exc:  # noqa: BLE001 - the server's fault: PaddleX's 500, the details in the log
            pb_utils.Logger.log_error(f"{self.cfg['target']} (PaddleX protocol): {type(exc).__name__}: {exc}")
            out = {"logId": log_id or str(uuid.uuid4()), "errorCode": 500, "errorMsg": "Internal server error"}
        text = json.dumps(out, ensure_ascii=False).encode("utf-8")
        return pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(OUTPUT, np.array([[text]], np.object_))])

    def _body(self, request):
        items = pb_utils.get_input_tensor_by_name(request, INPUT).as_numpy().reshape(-1)
        if items.size != 1:
            raise RequestError(f"send one JSON request in '{INPUT}', got {items.size}")
        raw = items[0] if isinstance(items[0], bytes) else bytes(items[0])
        try:
            body = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise RequestError(f"the request is not JSON: {str(exc)[:200]}") from None
        if not isinstance(body, dict):
            raise RequestError(f"the request must be a JSON object, got {type(body).__name__}")
        return body

    # -- the image ---------------------------------------------------------------------------------------------------

    def _image(self, body, key, file_type=None):
        """The request's image, decoded to BGR pixels (as PaddleX's serving decodes it), and its dataInfo."""
        value = _get(body, key, "str", required=True)
        if value.startswith("http://") or value.startswith("https://"):
            raise RequestError(f"{key}: URLs are not fetched by this server; send the file's bytes as base64")
        if file_type == 0:
            raise RequestError("fileType 0 (PDF): this server reads images only; send an image with fileType 1")
        limit = int(self.cfg["max_file_bytes"])
        if len(value) > (limit + 2) // 3 * 4 + 4096:  # checked before decoding: the base64 text alone is too big
            raise RequestError(f"{key}: {len(value)} base64 characters; this server accepts files of at most "
                               f"{limit} bytes")
        try:
            data = base64.b64decode(value)  # as PaddleX decodes it (characters outside the alphabet skipped)
        except (binascii.Error, ValueError) as exc:
            raise RequestError(f"{key}: not valid base64 ({exc})") from None
        if not data:
            raise RequestError(f"{key}: the file is empty")
        if len(data) > limit:
            raise RequestError(f"{key}: {len(data)} bytes; this server accepts files of at most {limit} bytes")
        if data[:5] == b"%PDF-":
            raise RequestError(f"{key}: the file is a PDF; this server reads images only")
        cfg = self.cfg
        try:
            img = ops.decode_image(data, "BGR", cfg["min_side"], cfg["max_side"], cfg["max_pixels"])
        except ops.InputError as exc:
            raise RequestError(f"{key}: {exc}") from None
        return img, {"width": int(img.shape[1]), "height": int(img.shape[0]), "type": "image"}

    def _call(self, img, outputs):
        """The native pipeline's answer for one BGR image (its ``image_raw`` input), batch dim dropped."""
        request = pb_utils.InferenceRequest(model_name=self.cfg["target"], requested_output_names=outputs,
                                            inputs=[pb_utils.Tensor("image_raw", np.ascontiguousarray(img)[None])])
        response = request.exec()
        if response.has_error():
            error = response.error()
            code = error.code() if hasattr(error, "code") else None
            if code is not None and code == getattr(pb_utils.TritonError, "INVALID_ARG", object()):
                raise RequestError(error.message())  # the pipeline refused the image (size, pixel budget)
            raise RuntimeError(f"{self.cfg['target']}: {error.message()}")
        out = {}
        for name in outputs:
            arr = pb_utils.get_output_tensor_by_name(response, name).as_numpy()[0]
            out[name] = [b.decode("utf-8") for b in arr.reshape(-1)] if arr.dtype == np.object_ else arr
        return out

    @staticmethod
    def _no_visualize(body):
        if _get(body, "visualize", "bool"):
            raise RequestError("visualize: this server returns no images; send visualize false or leave it out")

    # -- the pipelines -----------------------------------------------------------------------------------------------

    def _ocr(self, body):
        cfg, params = self.cfg, self.cfg["text_det_params"]
        file_type = _get(body, "fileType", "int")
        if file_type not in (None, 0, 1):
            raise RequestError(f"fileType: expected 0 (PDF) or 1 (image), got {file_type}")
        for key in ("useDocOrientationClassify", "useDocUnwarping"):
            if _get(body, key, "bool"):
                raise RequestError(f"{key}: this server's OCR pipeline has no document preprocessing "
                                   "(text detection, text-line orientation and recognition only)")
        textline = _get(body, "useTextlineOrientation", "bool")
        if textline is not None and textline != cfg["textline_orientation"]:
            raise RequestError(f"useTextlineOrientation {str(textline).lower()}: this server's OCR pipeline was built "
                               f"{'with' if cfg['textline_orientation'] else 'without'} a text-line orientation "
                               "classifier; leave the option out")
        # the detector's settings are the build's (the deploy configs): a request may repeat them, not change them
        fixed = (("textDetLimitSideLen", "int", "limit_side_len"), ("textDetLimitType", "str", "limit_type"),
                 ("textDetThresh", "float", "thresh"), ("textDetBoxThresh", "float", "box_thresh"),
                 ("textDetUnclipRatio", "float", "unclip_ratio"))
        for key, kind, name in fixed:
            value = _get(body, key, kind)
            built = params.get(name)
            if value is not None and not (value == built if kind == "str" else _same(value, built)):
                raise RequestError(f"{key} {value}: this server's OCR pipeline runs with {name} {built}, set when it "
                                   "was built (the detector's deploy config); leave the option out or rebuild")
        score_thresh = _get(body, "textRecScoreThresh", "float")
        score_thresh = cfg["text_rec_score_thresh"] if score_thresh is None else score_thresh
        if _get(body, "returnWordBox", "bool"):
            raise RequestError("returnWordBox: this server returns line boxes only; leave the option out")
        self._no_visualize(body)
        img, info = self._image(body, "file", file_type)
        got = self._call(img, ["boxes", "texts", "scores"])
        polys = [[[int(round(float(x))), int(round(float(y)))] for x, y in box] for box in got["boxes"].reshape(-1, 4, 2)]
        texts, scores = got["texts"], [float(s) for s in got["scores"].reshape(-1)]
        # PaddleX's OCR result (OCRResult._to_json, less input_path/page_index): every detected box in dt_polys, the
        # lines read at or above the score threshold in rec_*
        kept = [i for i, s in enumerate(scores) if s >= score_thresh]
        rec_polys = [polys[i] for i in kept]
        pruned = {
            "model_settings": {"use_doc_preprocessor": False, "use_textline_orientation": cfg["textline_orientation"]},
            "dt_polys": polys, "text_det_params": params, "text_type": "general",
            "text_rec_score_thresh": score_thresh, "return_word_box": False,
            "rec_texts": [texts[i] for i in kept], "rec_scores": [scores[i] for i in kept], "rec_polys": rec_polys,
            "rec_boxes": [[min(p[0] for p in q), min(p[1] for p in q), max(p[0] for p in q), max(p[1] for p in q)]
                          for q in rec_polys],
        }
        if not cfg["textline_orientation"]:
            pruned["textline_orientation_angles"] = [-1] * len(polys)  # PaddleX's value when no classifier runs
        return {"ocrResults": [{"prunedResult": pruned}], "dataInfo": info}

    def _detection(self, body):
        built = self.cfg["threshold"]
        threshold = body.get("threshold")
        if isinstance(threshold, dict):
            per_class = {}
            for key, value in threshold.items():
                try:
                    cls = int(key)
                except ValueError:
                    raise RequestError(f"threshold: class ids are integers, got {key!r}") from None
                per_class[cls] = _get({"threshold": value}, "threshold", "float")
            default = 0.5  # PaddleX's threshold for a class the mapping leaves out
            lowest = min(list(per_class.values()) + [default])
        else:
            per_class, default = {}, _get(body, "threshold", "float")
            lowest = default
        if lowest is not None and lowest < built - 1e-9:
            raise RequestError(f"threshold {lowest}: this server's detector keeps boxes scored above {built}, set when "
                               "it was built (draw_threshold); send a threshold of at least that or leave it out")
        self._no_visualize(body)
        img, _ = self._image(body, "image")
        got = self._call(img, ["boxes", "scores", "labels", "label_ids"])
        objects = []
        for box, score, label, cls in zip(got["boxes"].reshape(-1, 4), got["scores"].reshape(-1), got["labels"],
                                          got["label_ids"].reshape(-1)):
            cut = per_class.get(int(cls), default) if per_class else default
            if cut is not None and not float(score) > cut:  # PaddleX keeps scores strictly above the threshold
                continue
            objects.append({"bbox": [float(v) for v in box], "categoryId": int(cls), "categoryName": label,
                            "score": float(score)})
        return {"detectedObjects": objects}

    def _classification(self, body):
        built = self.cfg["topk"]
        topk = _get(body, "topk", "int")
        if topk is not None and topk <= 0:
            raise RequestError(f"topk: must be greater than 0, got {topk}")
        if topk is not None and topk > built:
            raise RequestError(f"topk {topk}: this server's classifier answers its top {built} classes, set when it "
                               "was built (PostProcess.Topk.topk); ask for at most that many")
        self._no_visualize(body)
        img, _ = self._image(body, "image")
        got = self._call(img, ["class_ids", "scores", "labels"])
        rows = list(zip(got["class_ids"].reshape(-1), got["labels"], got["scores"].reshape(-1)))[:topk or built]
        return {"categories": [{"id": int(i), "name": n, "score": float(s)} for i, n, s in rows]}

    def _segmentation(self, body):
        size = body.get("targetSize")
        if size is not None:
            if isinstance(size, list) and len(size) == 2:
                wanted = [_get({"targetSize": v}, "targetSize", "int") for v in size]
            else:
                wanted = [_get(body, "targetSize", "int")] * 2
            if wanted != self.cfg["target_size"]:
                raise RequestError(f"targetSize {size}: this server's segmenter resizes to {self.cfg['target_size']} "
                                   "([-1, -1]: the image's own size), set when it was built; leave the option out")
        self._no_visualize(body)
        img, _ = self._image(body, "image")
        label_map = self._call(img, ["label_map"])["label_map"]
        h, w = int(label_map.shape[0]), int(label_map.shape[1])
        return {"labelMap": label_map.reshape(-1).astype(int).tolist(), "size": [h, w]}
