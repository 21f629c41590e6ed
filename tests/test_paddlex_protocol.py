"""PaddleX's serving protocol over the generated pipelines (repogen.pipelines.paddlex_protocol): ``repogen build``
on zoo-style exports writes ``ocr_paddlex`` and ``<model>_paddlex``; served by the real CPU tritonserver, every
answer validates against PaddleX's own schema classes (``paddlex.inference.serving.schemas``, envelopes from
``paddlex.inference.serving.infra.models``) and carries what the native pipeline answers for the same image
(judged by repogen.verify.tasks.compare_answers); bad requests get PaddleX's error form and the server goes on."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from repogen.examples import pipeline_exports as testing
from repogen.pipelines.paddlex_protocol import ANSWER_KINDS, ENDPOINTS, native_answer, request_body
from repogen.verify import inputs
from repogen.verify.tasks import compare_answers

pytest.importorskip("paddlex")
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]
KINDS = ("ocr_det", "ocr_rec", "textline", "det", "seg", "cls")
NAME = testing.MODEL_NAME
#: protocol model -> (pipeline kind, native pipeline that answers the same image)
PROTOCOL = {"ocr_paddlex": ("ocr", "ocr_system"), "det_paddlex": ("detection", "det_pipeline"),
            f"{NAME['cls']}_paddlex": ("classification", f"{NAME['cls']}_pipeline"),
            "seg_paddlex": ("segmentation", "seg_pipeline")}


def paddlex_schemas():
    """PaddleX's serving schema modules. Its package refuses to import without the whole serving plugin
    (filetype, opencv-contrib-python...), which the schemas, plain pydantic classes, do not use: the gate is
    answered for the import only."""
    import paddlex.utils.deps as deps

    gate = deps.require_serving_plugin
    deps.require_serving_plugin = lambda: None
    try:
        from paddlex.inference.serving.infra import models
        from paddlex.inference.serving.schemas import (image_classification, object_detection, ocr,
                                                       semantic_segmentation)
    finally:
        deps.require_serving_plugin = gate
    return models, {"ocr": ocr, "detection": object_detection, "classification": image_classification,
                    "segmentation": semantic_segmentation}


ENVELOPES, SCHEMAS = paddlex_schemas()


def _images(kind: str) -> list[np.ndarray]:
    if kind == "ocr":
        words = [["hello", "world 42", "abc"], ["triton", "paddle ocr", "a b c d e f g"], ["x1 y2 z3", "ok"]]
        return [inputs.text_image(w, 10 + i, (220, 320)) for i, w in enumerate(words)]
    return [inputs.shapes_image(i, (150 + 20 * i, 200 + 30 * i)) for i in range(3)]


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    return testing.save_models(tmp_path_factory.mktemp("protocol-models"), KINDS)


@pytest.fixture(scope="module")
def repo(models, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("protocol-repo") / "repo"
    proc = subprocess.run([sys.executable, "-m", "repogen.cli", "build", *(str(models[k]) for k in KINDS),
                           "--out", str(out), "--target", "paddle", "--no-check", "--json"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = {m["name"]: m for m in json.loads(proc.stdout)["models"]}
    for name in PROTOCOL:  # written by the one writer, described like every pipeline folder
        assert report[name]["role"] == "pipeline", report[name]
    # the text-line classifier is an OCR member, answered through ocr_paddlex, not a protocol model of its own
    assert f"{NAME['textline']}_paddlex" not in report and f"{NAME['ocr_det']}_paddlex" not in report
    return out


@pytest.fixture(scope="module")
def server(repo):
    from repogen.harness.server import launch

    members = [NAME[k] for k in ("ocr_det", "ocr_rec", "textline")] + ["ocr_system"]
    stages = [f"{NAME[k]}{s}" for k in ("det", "seg", "cls") for s in ("", "_pre", "_post", "_pipeline", "_pipeline_raw")]
    with launch(repo, models=members + stages + list(PROTOCOL), require_models=True) as srv:
        yield srv


def _client(server, protocol: str):
    from repogen.harness.pipelines import client

    return client(server.http_url if protocol == "http" else server.grpc_url, protocol)


def _ask(server, model: str, body: dict, protocol: str = "grpc") -> dict:
    from repogen.harness.pipelines import protocol_infer

    return protocol_infer(_client(server, protocol), model, body)


def _native(server, model: str, img: np.ndarray) -> dict:
    from repogen.harness.pipelines import infer

    return infer(_client(server, "grpc"), model, inputs.encode(img))


def _valid_answer(kind: str, payload: dict) -> None:
    """PaddleX's own response classes accept it: the envelope with errorCode 0 / "Success" and the pipeline's result."""
    ENVELOPES.AIStudioResultResponse[SCHEMAS[kind].InferResult].model_validate(payload)
    assert payload["errorCode"] == 0 and payload["errorMsg"] == "Success", payload


def _valid_error(payload: dict, code: int = 422) -> str:
    ENVELOPES.AIStudioNoResultResponse.model_validate(payload)
    assert payload["errorCode"] == code and "result" not in payload, payload
    return payload["errorMsg"]


@pytest.fixture(scope="module")
def native(server) -> dict[str, list[dict]]:
    return {m: [_native(server, target, img) for img in _images(kind)] for m, (kind, target) in PROTOCOL.items()}


# -- the answers ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("protocol", ["http", "grpc"])
@pytest.mark.parametrize("model", list(PROTOCOL))
def test_answers_validate_and_carry_the_native_pipeline(server, native, model, protocol):
    kind, _ = PROTOCOL[model]
    found = 0
    for img, want in zip(_images(kind), native[model]):
        body = request_body(kind, inputs.encode(img), logId=f"req-{model}")
        SCHEMAS[kind].InferRequest.model_validate(body)  # the request is PaddleX's
        payload = _ask(server, model, body, protocol)
        _valid_answer(kind, payload)
        # PaddleX's OCR and detection requests carry a logId the answer repeats; the others get a new one
        assert (payload["logId"] == f"req-{model}") == (kind in ("ocr", "detection"))
        got = native_answer(kind, payload["result"])
        verdict = compare_answers(ANSWER_KINDS[kind], got, want)
        assert verdict.passed, verdict.summary
        result = payload["result"]
        if kind == "ocr":
            pruned = result["ocrResults"][0]["prunedResult"]
            assert result["dataInfo"] == {"width": img.shape[1], "height": img.shape[0], "type": "image"}
            assert pruned["rec_texts"] == want["texts"]  # every line, in the native reading order
            assert np.array_equal(np.array(pruned["dt_polys"]).reshape(-1, 4, 2), want["boxes"])
            assert pruned["rec_boxes"] == [[int(b[:, 0].min()), int(b[:, 1].min()), int(b[:, 0].max()),
                                            int(b[:, 1].max())] for b in want["boxes"]]
            found += len(want["texts"])
        elif kind == "detection":
            assert [o["categoryName"] for o in result["detectedObjects"]] == want["labels"]
            found += len(want["labels"])
        elif kind == "classification":
            assert [c["name"] for c in result["categories"]] == want["labels"]
            found += len(want["labels"])
        else:
            assert result["size"] == list(want["label_map"].shape)
            assert np.array_equal(np.array(result["labelMap"]).reshape(want["label_map"].shape), want["label_map"])
            found += want["label_map"].size
    assert found > 0  # the generated images give the pipelines something to find


def test_a_wrong_answer_fails_the_checks(server, native):
    """The checks above can fail: PaddleX's classes refuse a wrong envelope, compare_answers a changed text."""
    img = _images("ocr")[0]
    payload = _ask(server, "ocr_paddlex", request_body("ocr", inputs.encode(img)))
    for broken in ({**payload, "errorMsg": "OK"}, {k: v for k, v in payload.items() if k != "logId"},
                   {**payload, "result": {"ocrResults": payload["result"]["ocrResults"]}}):
        with pytest.raises(Exception, match="validation error"):
            ENVELOPES.AIStudioResultResponse[SCHEMAS["ocr"].InferResult].model_validate(broken)
    got = native_answer("ocr", payload["result"])
    assert got["texts"], "no text read"
    got["texts"] = [t + "x" for t in got["texts"]]
    assert not compare_answers("ocr_system", got, native["ocr_paddlex"][0]).passed


# -- PaddleX's options ---------------------------------------------------------------------------------------------

def test_options_the_pipeline_can_honour(server, native, models):
    import yaml

    img = _images("ocr")[1]
    full = _ask(server, "ocr_paddlex", request_body("ocr", inputs.encode(img)))["result"]["ocrResults"][0]
    pruned = full["prunedResult"]
    post = yaml.safe_load((models["ocr_det"] / "inference.yml").read_text())["PostProcess"]
    params = pruned["text_det_params"]  # the detector's settings, as PaddleX's OCR result reports them
    assert {k: params[k] for k in ("thresh", "box_thresh", "unclip_ratio")} == \
        {k: post[k] for k in ("thresh", "box_thresh", "unclip_ratio")}
    scores = pruned["rec_scores"]
    cut = float(np.median(scores))
    body = request_body("ocr", inputs.encode(img), textRecScoreThresh=cut, useTextlineOrientation=True,
                        useDocOrientationClassify=False, useDocUnwarping=False, returnWordBox=False, visualize=False,
                        textDetThresh=params["thresh"], textDetBoxThresh=params["box_thresh"],
                        textDetUnclipRatio=params["unclip_ratio"], textDetLimitSideLen=params["limit_side_len"],
                        textDetLimitType=params["limit_type"])  # repeating the build's settings is fine
    payload = _ask(server, "ocr_paddlex", body)
    _valid_answer("ocr", payload)
    got = payload["result"]["ocrResults"][0]["prunedResult"]
    kept = [i for i, s in enumerate(scores) if s >= cut]  # PaddleX keeps lines scored at or above the threshold
    assert 0 < len(kept) < len(scores)
    assert got["rec_texts"] == [pruned["rec_texts"][i] for i in kept]
    assert got["rec_polys"] == [pruned["rec_polys"][i] for i in kept]
    assert got["dt_polys"] == pruned["dt_polys"]  # every detected box stays in dt_polys
    assert got["text_rec_score_thresh"] == cut

    det = _images("detection")[1]
    want = native["det_paddlex"][1]
    assert len(want["scores"]) >= 2
    cut = float(np.sort(want["scores"])[-2])  # strictly above: the top box stays, the second goes
    objs = _ask(server, "det_paddlex", request_body("detection", inputs.encode(det), threshold=cut))
    _valid_answer("detection", objs)
    assert [o["score"] for o in objs["result"]["detectedObjects"]] == [float(s) for s in want["scores"] if s > cut]
    top = int(want["label_ids"][int(np.argmax(want["scores"]))])
    per_class = _ask(server, "det_paddlex", request_body("detection", inputs.encode(det),
                                                         threshold={str(top): 0.99, "99": 0.5}))
    _valid_answer("detection", per_class)  # classes the mapping leaves out: PaddleX's 0.5
    assert [o["score"] for o in per_class["result"]["detectedObjects"]] == \
        [float(s) for s, c in zip(want["scores"], want["label_ids"]) if s > (0.99 if c == top else 0.5)]

    cls = _ask(server, f"{NAME['cls']}_paddlex", request_body("classification", inputs.encode(det), topk=1))
    _valid_answer("classification", cls)
    assert [c["name"] for c in cls["result"]["categories"]] == native[f"{NAME['cls']}_paddlex"][1]["labels"][:1]


def test_options_the_pipeline_cannot_honour_are_refused_by_name(server):
    img = inputs.encode(_images("ocr")[0])
    shapes = inputs.encode(_images("detection")[0])
    cases = [("ocr_paddlex", "ocr", img, {"textDetThresh": 0.55}, "textDetThresh 0.55.*runs with thresh"),
             ("ocr_paddlex", "ocr", img, {"textDetLimitSideLen": 4096}, "runs with limit_side_len"),
             ("ocr_paddlex", "ocr", img, {"useTextlineOrientation": False}, "built with a text-line"),
             ("ocr_paddlex", "ocr", img, {"useDocUnwarping": True}, "no document preprocessing"),
             ("ocr_paddlex", "ocr", img, {"returnWordBox": True}, "returnWordBox"),
             ("ocr_paddlex", "ocr", img, {"visualize": True}, "visualize"),
             ("det_paddlex", "detection", shapes, {"threshold": 0.01}, "threshold 0.01.*keeps boxes scored above"),
             ("det_paddlex", "detection", shapes, {"threshold": {"0": 0.9, "1": 0.01}}, "threshold 0.01"),
             (f"{NAME['cls']}_paddlex", "classification", shapes, {"topk": 50}, "topk 50.*answers its top"),
             ("seg_paddlex", "segmentation", shapes, {"targetSize": 64}, "targetSize 64")]
    for model, kind, data, options, message in cases:
        body = request_body(kind, data, **options)
        SCHEMAS[kind].InferRequest.model_validate(body)  # a valid PaddleX request this server cannot honour
        assert re.search(message, _valid_error(_ask(server, model, body))), (options, message)


# -- bad requests --------------------------------------------------------------------------------------------------

def test_bad_requests_answer_paddlex_errors_and_the_server_goes_on(server, native):
    import cv2

    good_img = _images("ocr")[0]
    good = request_body("ocr", inputs.encode(good_img))
    b64 = lambda data: base64.b64encode(data).decode()  # noqa: E731
    tiny = cv2.imencode(".png", np.zeros((1, 1, 3), np.uint8))[1].tobytes()
    wide = cv2.imencode(".png", np.full((12, 20000, 3), 255, np.uint8))[1].tobytes()
    png = inputs.encode(good_img)
    # (request, message, PaddleX's own schema refuses it too)
    cases = [
        ({}, "file: field required", True),
        ({"file": 42}, "file: expected a string", True),
        ({"file": b64(png), "fileType": 2}, "fileType", True),
        ({"file": b64(png), "textDetThresh": "high"}, "textDetThresh: expected a number", True),
        ({"file": "abc"}, "not valid base64", False),
        ({"file": b64(b"GIF89a not really an image")}, "cannot decode", False),
        ({"file": b64(png[: len(png) // 2])}, "cannot decode|truncated|OpenCV", False),
        ({"file": b64(tiny)}, "at least 8 pixels", False),
        ({"file": b64(wide)}, "at most 10000 pixels", False),
        ({"file": b64(b"%PDF-1.4 ..."), "fileType": 1}, "PDF", False),
        ({"file": b64(png), "fileType": 0}, "fileType 0 \\(PDF\\)", False),
        ({"file": "https://example.com/a.png", "fileType": 1}, "URLs are not fetched", False),
        ({"file": ""}, "empty", False),
    ]
    for body, message, paddlex_refuses in cases:
        if paddlex_refuses:
            with pytest.raises(Exception, match="validation error"):
                SCHEMAS["ocr"].InferRequest.model_validate(body)
        for protocol in ("http", "grpc"):
            err = _valid_error(_ask(server, "ocr_paddlex", body, protocol))
            assert re.search(message, err), (body if len(json.dumps(body)) < 200 else message, err)
    for raw, message in ((b"not json", "not JSON"), (b"[1, 2]", "JSON object"), (b"\xff\xfe", "not JSON"),
                         (b'{"file": NaN}', "not JSON"), (b"[" * 100000 + b"]" * 100000, "not JSON")):
        from repogen.harness.pipelines import client

        mod, cli = client(server.grpc_url, "grpc")
        inp = mod.InferInput("input", [1, 1], "BYTES")
        inp.set_data_from_numpy(np.array([[raw]], dtype=np.object_))
        payload = json.loads(cli.infer("ocr_paddlex", [inp]).as_numpy("output").reshape(-1)[0])
        assert re.search(message, _valid_error(payload)), (raw[:20], payload)
    for model, kind in (("det_paddlex", "detection"), ("seg_paddlex", "segmentation")):
        assert "image: field required" in _valid_error(_ask(server, model, {"file": b64(png)}))
        assert "cannot decode" in _valid_error(_ask(server, model, {"image": b64(b"BM garbage")}))
    # the server still answers, and answers right
    payload = _ask(server, "ocr_paddlex", good)
    _valid_answer("ocr", payload)
    assert compare_answers("ocr_system", native_answer("ocr", payload["result"]), native["ocr_paddlex"][0]).passed


def test_concurrent_clients_never_mix(server, native):
    jobs = [(m, i) for m in PROTOCOL for i in range(3)]
    failures: list[str] = []

    def run(offset: int) -> None:
        for n in range(len(jobs)):
            model, i = jobs[(n + offset) % len(jobs)]
            kind = PROTOCOL[model][0]
            payload = _ask(server, model, request_body(kind, inputs.encode(_images(kind)[i])),
                           "grpc" if n % 2 else "http")
            verdict = compare_answers(ANSWER_KINDS[kind], native_answer(kind, payload["result"]), native[model][i]) \
                if payload.get("errorCode") == 0 else None
            if verdict is None or not verdict.passed:
                failures.append(f"{model}[{i}]: {payload.get('errorMsg') if verdict is None else verdict.summary}")

    threads = [threading.Thread(target=run, args=(2 * t,)) for t in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not failures, failures[:3]


# -- the repository ------------------------------------------------------------------------------------------------

def test_high_stability_layout(repo):
    """PaddleX's high-stability form: one Python model, one BYTES 'input', one BYTES 'output', max_batch_size 1;
    the route it answers is in the config, for a gateway that sees only Triton."""
    from repogen.repository.config import parse_config

    for model, (kind, target) in PROTOCOL.items():
        cfg = parse_config((repo / model / "config.pbtxt").read_text(), model)
        assert cfg.backend == "python" and cfg.max_batch_size == 1
        assert [(t.name, t.data_type, list(t.dims)) for t in cfg.input] == [("input", 13, [1])]  # TYPE_STRING
        assert [(t.name, t.data_type, list(t.dims)) for t in cfg.output] == [("output", 13, [1])]
        assert cfg.parameters["paddlex_endpoint"].string_value == SCHEMAS[kind].INFER_ENDPOINT == ENDPOINTS[kind]
        data = json.loads((repo / model / "1" / "pipeline.json").read_text())
        assert data["target"] in (target, target + "_raw")
        manifest = json.loads((repo / model / "repogen.json").read_text())
        assert manifest["role"] == "pipeline" and manifest["backend"] == "python"


def test_validate_checks_the_protocol_models(server, repo):
    from repogen.harness.pipelines import validate_pipelines

    reports = {r.model: r for r in validate_pipelines(server, repo, list(PROTOCOL), speed=False)}
    assert all(r.ok for r in reports.values()), {n: r.failures for n, r in reports.items() if not r.ok}
    assert all(len(r.checks) == 6 for r in reports.values())  # 3 images over HTTP and gRPC each


# -- the served model in-process (a stand-in for triton_python_backend_utils): what a server cannot cheaply show --

class _Tensor:
    def __init__(self, name, array):
        self.name, self.array = name, np.asarray(array)

    def as_numpy(self):
        return self.array


class _TritonError:
    INVALID_ARG, INTERNAL = 3, 13

    def __init__(self, message, code=13):
        self._message, self._code = message, code

    def message(self):
        return self._message

    def code(self):
        return self._code


class _BlsResponse:
    def __init__(self, outputs=None, error=None):
        self.outputs, self._error = outputs or {}, error

    def has_error(self):
        return self._error is not None

    def error(self):
        return self._error


def _load_protocol_model(tmp_path: Path, kind: str, answer, max_file_bytes: int | None = None):
    """A generated protocol model whose BLS calls ``answer(model, inputs)`` answers."""
    import importlib.util
    import types

    from repogen.pipelines.ensemble import GeneratedModel
    from repogen.pipelines.paddlex_protocol import ocr_protocol_model, pipeline_protocol_models
    from repogen.repository.config import stage_config

    if kind == "ocr":  # an OCR system as ensemble.ocr_system describes it (its pipeline.json and config)
        system = {"min_side": 8, "max_side": 10000, "det": {
            "transforms": [{"op": "det_resize", "limit_side_len": 960, "limit_type": "max"}],
            "post": {"thresh": 0.3, "box_thresh": 0.6, "unclip_ratio": 1.5}}}
        config = stage_config(name="ocr_system", description="", inputs=[], outputs=[], max_batch_size=1,
                              cpu_instances=1)
        model = ocr_protocol_model(GeneratedModel("ocr_system", config, {"1/pipeline.json": json.dumps(system).encode()}))
    else:
        data = {"kind": kind, "labels": ["a", "b"], "min_side": 8, "max_side": 10000, "transforms": [],
                "post": {"threshold": 0.3, "topk": 2}}
        (model,) = pipeline_protocol_models([GeneratedModel("m_pre", "", meta={"model": "m", "pipeline": data})])
    folder = tmp_path / model.name
    for rel, content in model.files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(content)
    if max_file_bytes is not None:
        cfg = json.loads((folder / "1" / "pipeline.json").read_text())
        (folder / "1" / "pipeline.json").write_text(json.dumps({**cfg, "max_file_bytes": max_file_bytes}))

    class InferenceRequest:
        def __init__(self, model_name, requested_output_names, inputs):
            self.model_name, self.inputs = model_name, {t.name: t.array for t in inputs}

        def exec(self):
            return answer(self.model_name, self.inputs)

    fake = types.ModuleType("triton_python_backend_utils")
    fake.Tensor, fake.TritonError, fake.InferenceRequest = _Tensor, _TritonError, InferenceRequest
    fake.InferenceResponse = lambda output_tensors, error=None: {t.name: t.array for t in output_tensors}
    fake.get_input_tensor_by_name = lambda request, name: _Tensor(name, request[name])
    fake.get_output_tensor_by_name = lambda response, name: _Tensor(name, response.outputs[name])
    fake.Logger = types.SimpleNamespace(log_error=lambda message: None)
    saved = {k: sys.modules.pop(k, None) for k in ("triton_python_backend_utils", "pipeline_common", "pipeline_ops")}
    sys.modules["triton_python_backend_utils"] = fake
    env = os.environ.get("OPENCV_IO_MAX_IMAGE_PIXELS")
    sys.path.insert(0, str(folder / "1"))
    try:
        spec = importlib.util.spec_from_file_location(f"protocol_{kind}", folder / "1" / "model.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        served = module.TritonPythonModel()
        served.initialize({})
    finally:
        sys.path.remove(str(folder / "1"))
        if env is None:
            os.environ.pop("OPENCV_IO_MAX_IMAGE_PIXELS", None)
        for k, v in saved.items():
            sys.modules.pop(k, None)
            if v is not None:
                sys.modules[k] = v

    def ask(body) -> dict:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        (response,) = served.execute([{"input": np.array([[raw]], dtype=np.object_)}])
        return json.loads(response["output"].reshape(-1)[0])
    return ask


def test_file_size_limit_and_pipeline_errors_in_paddlex_form(tmp_path):
    png = inputs.encode(_images("detection")[0])
    calls = []

    def answer(model, feeds):
        calls.append((model, feeds["image_raw"].shape))
        boxes = np.array([[[1, 2, 30, 40], [5, 6, 7, 8]]], np.float32)
        return _BlsResponse({"boxes": boxes, "scores": np.array([[0.9, 0.4]], np.float32),
                             "labels": np.array([[b"a", b"b"]], np.object_), "label_ids": np.array([[0, 1]], np.int32)})

    ask = _load_protocol_model(tmp_path / "ok", "detection", answer, max_file_bytes=len(png) + 10)
    payload = ask(request_body("detection", png, threshold=0.5))
    _valid_answer("detection", payload)
    assert [o["categoryName"] for o in payload["result"]["detectedObjects"]] == ["a"]  # 0.4 is not above 0.5
    assert calls == [("m_pipeline_raw", (1, *_images("detection")[0].shape))]  # decoded pixels, BGR, batch of 1
    big = ask(request_body("detection", png + b"\0" * 11))  # one byte over the limit once decoded
    assert re.search(r"image: \d+ bytes; this server accepts files of at most", _valid_error(big))
    huge = ask({"image": "A" * (8 * len(png))})  # refused before decoding, on the base64 length alone
    assert "base64 characters" in _valid_error(huge) and len(calls) == 1

    for error, code, message in ((_TritonError("image is 9000x9000 pixels; over the budget", 3), 422, "over the budget"),
                                 (_TritonError("model crashed", 13), 500, "Internal server error")):
        ask = _load_protocol_model(tmp_path / str(code), "detection", lambda m, f, e=error: _BlsResponse(error=e))
        assert message in _valid_error(ask(request_body("detection", png)), code)
    ask = _load_protocol_model(tmp_path / "raise", "classification", lambda m, f: 1 / 0)
    assert _valid_error(ask(request_body("classification", png)), 500) == "Internal server error"


def _stand_in_answer(kind: str):
    """Plausible native answers for the stand-in BLS (the protocol layer is under test, not the pipeline)."""
    outputs = {
        "detection": {"boxes": np.array([[[1, 2, 30, 40]]], np.float32), "scores": np.array([[0.9]], np.float32),
                      "labels": np.array([[b"a"]], np.object_), "label_ids": np.array([[0]], np.int32)},
        "classification": {"class_ids": np.array([[1, 0]], np.int32), "scores": np.array([[0.7, 0.3]], np.float32),
                           "labels": np.array([[b"b", b"a"]], np.object_)},
        "segmentation": {"label_map": np.zeros((1, 150, 200), np.int32)},
        "ocr": {"boxes": np.array([[[[1, 2], [30, 2], [30, 12], [1, 12]]]], np.float32),
                "texts": np.array([[b"hi"]], np.object_), "scores": np.array([[0.8]], np.float32)},
    }[kind]
    return lambda model, feeds: _BlsResponse(outputs)


def test_requests_paddlex_refuses_are_refused_here(tmp_path):
    """Field by field, against PaddleX's own request classes: whatever PaddleX's schema refuses is a 422 here;
    what it accepts is answered, or refused only by the rules docs/pipelines.md lists (URL, PDF, an option the
    build fixed, visualize)."""
    png = base64.b64encode(inputs.encode(_images("detection")[0])).decode()
    ours = ("URLs are not fetched", "visualize", "keeps boxes scored above", "answers its top", "resizes to",
            "set when it was built", "text-line orientation", "no document preprocessing", "line boxes only")
    bodies = {
        "ocr": [{"file": png, "fileType": 1}, {"file": png, "fileType": "1"}, {"file": png, "fileType": 2},
                {"file": png, "useTextlineOrientation": "true"}, {"file": png, "useDocUnwarping": 1},
                {"file": png, "textDetLimitSideLen": 960.0}, {"file": png, "textDetLimitSideLen": 960.5},
                {"file": png, "textDetLimitType": 5}, {"file": png, "textDetThresh": "0.3"},
                {"file": png, "textDetThresh": [0.3]}, {"file": png, "textRecScoreThresh": 0.5},
                {"file": png, "textRecScoreThresh": None}, {"file": png, "logId": 7}, {"file": png, "logId": "x"},
                {"file": png, "returnWordBox": {}}, {"file": ["a"]}],
        "detection": [{"image": png}, {"image": 5}, {}, {"image": png, "threshold": "0.5"},
                      {"image": png, "threshold": 0.5}, {"image": png, "threshold": 1}, {"image": png, "threshold": [0.5]},
                      {"image": png, "threshold": {"0": 0.6}}, {"image": png, "threshold": {"zero": 0.6}},
                      {"image": png, "threshold": {"0": "high"}}, {"image": png, "threshold": 0.01},
                      {"image": png, "visualize": "yes"}, {"image": png, "visualize": True},
                      {"image": png, "visualize": False}, {"image": png, "logId": 7}, {"image": "https://x.org/a.png"},
                      {"image": png, "unknownField": 1}],
        "classification": [{"image": png, "topk": 0}, {"image": png, "topk": -1}, {"image": png, "topk": 1},
                           {"image": png, "topk": 1.5}, {"image": png, "topk": "1"}, {"image": png, "topk": 99},
                           {"image": None}, {"image": png, "visualize": None}],
        "segmentation": [{"image": png, "targetSize": [1, 2, 3]}, {"image": png, "targetSize": "big"},
                         {"image": png, "targetSize": -1}, {"image": png, "targetSize": [-1, -1]},
                         {"image": png, "targetSize": 64}, {"image": png, "targetSize": [64, "a"]}],
    }
    refused_by_both = 0
    for kind, cases in bodies.items():
        ask = _load_protocol_model(tmp_path / kind, kind, _stand_in_answer(kind))
        for body in cases:
            try:
                SCHEMAS[kind].InferRequest.model_validate(body)
                paddlex_ok = True
            except Exception as exc:  # pydantic.ValidationError
                assert "validation error" in str(exc)
                paddlex_ok = False
            payload = ask(body)
            if not paddlex_ok:
                assert payload["errorCode"] == 422, (kind, body, payload)
                refused_by_both += 1
            elif payload["errorCode"] != 0:
                message = _valid_error(payload)
                # pydantic's lax mode turns "0.5" / 1.0 / "1" into numbers; this server takes JSON types as declared
                assert any(m in message for m in ours) or "expected" in message, (kind, body, message)
            else:
                _valid_answer(kind, payload)
    assert refused_by_both >= 20  # the table exercises PaddleX's refusals, not only the happy path


# -- repogen gateway: PaddleX basic serving's routes -------------------------------------------------------------

@pytest.fixture(scope="module")
def gateway(server):
    """The gateway's app on uvicorn, on 127.0.0.1, routes found on the server alone."""
    import time

    import uvicorn

    from repogen.harness.gateway import GatewaySettings, discover_routes, make_app
    from repogen.harness.server import free_port

    routes = discover_routes(server.http_url)
    assert routes == {ENDPOINTS[kind]: model for model, (kind, _) in PROTOCOL.items()}
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(make_app(GatewaySettings(server.http_url, routes, timeout_s=60,
                                                                 max_body_bytes=4 << 20)),
                                        host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started and time.monotonic() < deadline and thread.is_alive():
        time.sleep(0.05)
    assert srv.started
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(30)


def test_gateway_answers_paddlex_routes(gateway, server, native):
    import httpx

    with httpx.Client(base_url=gateway, timeout=60) as http:
        health = http.get("/health")
        assert health.status_code == 200 and health.json()["errorMsg"] == "Healthy"
        for model, (kind, _) in PROTOCOL.items():
            img = _images(kind)[0]
            got = http.post(SCHEMAS[kind].INFER_ENDPOINT, json=request_body(kind, inputs.encode(img)))
            assert got.status_code == 200, got.text[:300]
            _valid_answer(kind, got.json())
            verdict = compare_answers(ANSWER_KINDS[kind], native_answer(kind, got.json()["result"]), native[model][0])
            assert verdict.passed, verdict.summary
        # errors: PaddleX's envelope with its HTTP status (422 for the client's request)
        bad = http.post("/ocr", json={"file": "abc"})
        assert bad.status_code == 422 and "base64" in _valid_error(bad.json())
        assert http.post("/ocr", content=b"\xff\xfe").status_code == 422
        assert _valid_error(http.post("/nope", json={}).json(), 404)
        assert _valid_error(http.get("/ocr").json(), 405)
        big = http.post("/ocr", content=b"x" * (5 << 20))  # over this gateway's 4 MiB limit
        assert big.status_code == 413 and "over" in _valid_error(big.json(), 413)
        again = http.post("/object-detection", json=request_body("detection", inputs.encode(_images("detection")[0])))
        assert again.status_code == 200 and again.json()["errorCode"] == 0


def test_gateway_without_triton_answers_503(server):
    from starlette.testclient import TestClient

    from repogen.harness.gateway import GatewaySettings, make_app
    from repogen.harness.server import free_port

    app = make_app(GatewaySettings(f"http://127.0.0.1:{free_port()}", {"/ocr": "ocr_paddlex"}, timeout_s=5))
    with TestClient(app) as client:  # in-process: nothing listens on that port
        got = client.post("/ocr", json=request_body("ocr", inputs.encode(_images("ocr")[0])))
    assert got.status_code == 503 and "cannot be reached" in _valid_error(got.json(), 503)
    app = make_app(GatewaySettings(server.http_url, {"/ocr": "no_such_model"}, timeout_s=5))
    with TestClient(app) as client:
        got = client.post("/ocr", json={"file": "abc"})
    assert got.status_code == 503 and "no_such_model" in _valid_error(got.json(), 503)


def test_gateway_cli_refuses_bad_routes_and_unreachable_servers():
    from repogen.errors import ConfigError
    from repogen.harness.gateway import check_routes

    with pytest.raises(ConfigError, match="route '/detect': not a PaddleX route"):
        check_routes({"/detect": "det_paddlex"})
    proc = subprocess.run([sys.executable, "-m", "repogen.cli", "gateway", "http://127.0.0.1:9", "--timeout", "2"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "cannot list the server's models" in proc.stderr and "Traceback" not in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "repogen.cli", "gateway", "x", "--route", "ocr"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "ROUTE=MODEL" in proc.stderr


def test_gateway_command_serves_until_sigterm(server):
    """``repogen gateway URL``: the routes it found, PaddleX's answer on 127.0.0.1, a clean stop on SIGTERM."""
    import signal
    import time

    import httpx

    from repogen.harness.server import free_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "repogen.cli", "gateway", server.http_url, "--port", str(port),
                             "--timeout", "60"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline, health = time.monotonic() + 60, None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        assert health is not None and health.status_code == 200, proc.stderr.read() if proc.poll() is not None else ""
        got = httpx.post(f"http://127.0.0.1:{port}/semantic-segmentation", timeout=60,
                         json=request_body("segmentation", inputs.encode(_images("segmentation")[0])))
        assert got.status_code == 200
        _valid_answer("segmentation", got.json())
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 143 and "gateway stopped" in err, err[-1000:]  # SIGTERM: 128 + 15, after a clean stop
    assert "Traceback" not in err and "POST /ocr" in out and "ocr_paddlex" in out and f"127.0.0.1:{port}" in out
