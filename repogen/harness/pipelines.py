"""``repogen validate`` for pipeline models: generated images in, answers compared with the reference chain.

The reference chain is repogen's own transforms/post-processors (``ops.py``, which the tests hold equal to
PaddleX's processor classes) around Paddle Inference on the model's source files (the harness's
``PaddleReference``), on images generated for the pipeline's task (repogen.verify.inputs). The answers are
judged by the verification core's task rules (repogen.verify.tasks.compare_answers): identical texts, labels
and label maps, boxes within 1 pixel as sets, scores within the task tolerance. Speed: the harness's measurer (repogen.harness.speed) per pipeline at each concurrency, and the
share of server time spent in the pre/post stages (Triton's own per-model statistics over the same windows).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Sequence

import numpy as np

from repogen.extras import require
from repogen.harness.clients import Request
from repogen.harness.model_files import folder_role
from repogen.harness.speed import SpeedResult, measure_levels
from repogen.verify import inputs
from repogen.verify.tasks import compare_answers



PIPELINE_ROLES = ("pre", "post", "pipeline", "system")


def pipeline_ops() -> ModuleType:
    """repogen.pipelines.ops, the reference chain's pre/post-processing, imported only when a repository has
    pipeline models: it needs OpenCV and pyclipper (the pipelines extra), which a plain model never does."""
    for package in ("cv2", "pyclipper"):
        require(package, extra="pipelines", for_what="validating this repository's pipeline models")
    from repogen.pipelines import ops

    return ops


def pipeline_folders(repo: Path, names: list[str]) -> list[str]:
    """The pipeline folders among ``names`` (repogen.json "role": a stage, a pipeline ensemble, a system)."""
    return [n for n in names if folder_role(Path(repo) / n) in PIPELINE_ROLES]


def images_for(kind: str, cfg: dict | None = None) -> list[np.ndarray]:
    """The generated images a pipeline of ``kind`` is validated on (repogen.verify.inputs, the one generator):
    pages for text detectors, layout models and the OCR system, text lines for recognizers and orientation
    classifiers, shapes otherwise. ``cfg``: the pipeline's pipeline.json (labels, dictionary)."""
    cfg = cfg or {}
    post = cfg.get("post") or {}
    images = inputs.generated_images("ocr_det" if kind == "ocr_system" else kind, labels=cfg.get("labels"),
                                     characters=cfg.get("characters"),
                                     use_space_char=bool(post.get("use_space_char", True)), count=3)
    return [g.image for g in images]


def judge(kind: str, got: dict, want: dict, cfg: dict) -> Any:
    """A served pipeline's answer against the reference chain's, by the task rules of the verification core."""
    post = cfg.get("post") or (cfg.get("det") or {}).get("post") or {}
    return compare_answers(kind, got, want, box_thresh=post.get("box_thresh"), threshold=post.get("threshold"))


def boxes_for(kind: str, images: list[np.ndarray]) -> list[np.ndarray | None]:
    """The person box sent with each image (FP32 [x1, y1, x2, y2]): none for most pipelines; for a top-down
    keypoint pipeline, none (the whole image) and then a box inside each image, so both crops are checked."""
    if kind != "keypoint":
        return [None] * len(images)
    boxes = [np.array([w * 0.2, h * 0.15, w * 0.7, h * 0.9], np.float32) for h, w in (i.shape[:2] for i in images)]
    return [None] * len(images) + boxes


# -- client ----------------------------------------------------------------------------------------------------------

def client(url: str, protocol: str) -> Any:
    """(module, client); every request through it ends within REQUEST_TIMEOUT_S (a wedged server is an error)."""
    from repogen.harness.clients import REQUEST_TIMEOUT_S

    if protocol == "http":
        import tritonclient.http as mod
        return mod, mod.InferenceServerClient(url.split("://")[-1], connection_timeout=REQUEST_TIMEOUT_S,
                                              network_timeout=REQUEST_TIMEOUT_S)
    import tritonclient.grpc as mod
    return mod, mod.InferenceServerClient(url.split("://")[-1])


def infer(mod_client: Any, model: str, img: np.ndarray | bytes, raw: bool = False,
          box: np.ndarray | None = None) -> dict[str, Any]:
    """One image (and a keypoint pipeline's optional person ``box``) through a served pipeline; BYTES outputs
    decoded to str, the batch-of-one dim dropped."""
    mod, cli = mod_client
    if raw:
        inp = mod.InferInput("image_raw", [1, *img.shape], "UINT8")
        inp.set_data_from_numpy(np.ascontiguousarray(img)[None])
    else:
        data = img if isinstance(img, bytes) else inputs.encode(img)
        inp = mod.InferInput("image", [1, 1], "BYTES")
        inp.set_data_from_numpy(np.array([[data]], dtype=np.object_))
    sent = [inp]
    if box is not None:
        sent.append(mod.InferInput("box", [1, 4], "FP32"))
        sent[-1].set_data_from_numpy(np.asarray(box, np.float32).reshape(1, 4))
    from repogen.harness.clients import REQUEST_TIMEOUT_S

    # gRPC has no client-wide timeout: bound each request (HTTP's network_timeout does it there)
    res = cli.infer(model, sent, client_timeout=REQUEST_TIMEOUT_S) if mod.__name__.endswith("grpc") else \
        cli.infer(model, sent)
    raw_resp = res.get_response()
    names = [o["name"] for o in raw_resp["outputs"]] if isinstance(raw_resp, dict) else [o.name for o in raw_resp.outputs]
    out = {}
    for name in names:
        arr = res.as_numpy(name)[0]
        out[name] = [b.decode("utf-8") for b in arr] if arr.dtype == np.object_ else arr
    return out


# -- reference chain -------------------------------------------------------------------------------------------------

def _load(repo: Path, name: str) -> dict:
    return json.loads((repo / name / "1" / "pipeline.json").read_text(encoding="utf-8"))


class Reference:
    """repogen's processors around Paddle Inference on one model's source files."""

    def __init__(self, repo: Path, model: str):
        from repogen.harness.model_files import read_model_folder
        from repogen.harness.reference import PaddleReference

        self.paddle = PaddleReference(read_model_folder(repo / model))

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.paddle.run(feeds)

    def close(self) -> None:
        self.paddle.close()


def pipeline_answer(cfg: dict, ref: Reference, img: np.ndarray, box: np.ndarray | None = None) -> dict[str, Any]:
    """The expected answer of ``<model>_pipeline`` for one BGR image (and a keypoint pipeline's person box)."""
    ops = pipeline_ops()
    img = ops.raw_image(img, cfg["color"], cfg["min_side"], cfg["max_side"])
    state = ops.preprocess(img, cfg["transforms"], None if box is None else ops.person_box(box))
    outs = ref.run(ops.model_feeds(state, cfg["roles"]))
    first = outs[cfg["model_outputs"][0]]
    info = ops.info_vector(state)
    kind = cfg["kind"]
    if kind == "ocr_det":
        boxes, scores = ops.db_postprocess(first[0], info, **cfg["post"])
        return {"boxes": np.array(boxes, np.float32).reshape(-1, 4, 2), "scores": np.array(scores, np.float32)}
    if kind == "ocr_rec":
        texts, scores = ops.ctc_decode(first, ops.ctc_characters(cfg["characters"], cfg["post"]["use_space_char"]))
        return {"texts": texts, "scores": np.array(scores, np.float32)}
    if kind == "detection":
        res = ops.detection_answer(outs[cfg["boxes_output"]].reshape(-1, cfg.get("box_columns", 6)), (info[0], info[1]),
                                   cfg["labels"], cfg["post"])
        return {k: res[k] for k in ("boxes", "scores", "labels", "label_ids", "orders") if k in res}
    if kind == "classification":
        ids, scores, names = ops.topk(first[0], cfg["post"]["topk"], cfg["labels"])
        return {"label_ids": ids, "scores": scores.astype(np.float32), "labels": names}
    if kind == "keypoint":
        kpts, score = ops.keypoint_postprocess(outs[cfg["heatmap_output"]][0], info[:2], info[2:], **cfg["post"])
        return {"keypoints": kpts, "kpt_score": np.array([score], np.float32)}
    return {"label_map": ops.seg_postprocess(first, (info[0], info[1]))}


def ocr_answer(cfg: dict, det: Reference, rec: Reference, img: np.ndarray, cls: Reference | None = None
               ) -> dict[str, Any]:
    ops = pipeline_ops()
    d, r = cfg["det"], cfg["rec"]
    state = ops.preprocess(img, d["transforms"])
    prob = det.run(ops.model_feeds(state, d["roles"]))[d["output"]]
    boxes, _ = ops.db_postprocess(prob[0], ops.info_vector(state), **d["post"])
    boxes = ops.sort_boxes(boxes)
    pairs = [(ops.minarea_crop(img, b), b) for b in boxes]
    pairs = [(c, b) for c, b in pairs if c.size > 0]
    if cfg.get("cls") and pairs:
        c = cfg["cls"]
        turned = ops.upright([p[0] for p in pairs], c, lambda x: cls.run({c["input"]: x})[c["output"]])
        pairs = [(t, p[1]) for t, p in zip(turned, pairs)]
    order = sorted(range(len(pairs)), key=lambda i: pairs[i][0].shape[1] / float(pairs[i][0].shape[0]))
    texts, scores = [""] * len(pairs), [0.0] * len(pairs)
    chars = ops.ctc_characters(r["characters"], r["use_space_char"])
    for start in range(0, len(order), r["batch_size"]):
        chunk = order[start:start + r["batch_size"]]
        probs = rec.run({r["input"]: ops.rec_batch([pairs[i][0] for i in chunk], r["image_shape"])})[r["output"]]
        for i, t, s in zip(chunk, *ops.ctc_decode(probs, chars)):
            texts[i], scores[i] = t, s
    keep = [i for i in range(len(pairs)) if scores[i] >= r.get("score_thresh", 0.0)]  # as the served system drops
    return {"boxes": np.array([pairs[i][1] for i in keep], np.float32).reshape(-1, 4, 2),
            "texts": [texts[i] for i in keep], "scores": np.array([scores[i] for i in keep], np.float32)}


# -- speed -----------------------------------------------------------------------------------------------------------

def timed_run(url: str, model: str, images: list[bytes], concurrency: Sequence[int], requests: int,
              stages: Sequence[str] = (), timing: dict | None = None) -> list[SpeedResult]:
    """``model`` timed by the harness's measurer (repogen.harness.speed) over gRPC, the encoded ``images``
    sent in turn: one row per concurrency level, sized from the single-image latency (a pipeline too slow
    for a level is a "too slow" row, not a failure); ``stages``' server time per image in each row."""
    requests_ = [Request(model, (("image", "BYTES", np.array([[img]], dtype=np.object_)),)) for img in images]
    return measure_levels(url, requests_, concurrency, protocol="grpc", stats_url=url, raw=False,
                          stage_models=stages, min_samples=requests, **(timing or {}))


def pre_post_share(kind: str, stages: Sequence[str], server_us: dict[str, float]) -> float | None:
    """Share of the server time of one request spent outside the model(s): pre/post stages, the BLS itself."""
    spent = [server_us.get(m, float("nan")) for m in stages]
    if any(np.isnan(spent)):
        return None
    if kind == "ocr_system":  # stages: system (its time includes the BLS calls), det, rec[, cls]
        # a page's recognizer batches are sent together: where they overlap (several recognizer instances, or
        # one batch queued behind another), the members' times add up to more than the system waited, and
        # the system's own share cannot be told from the server's statistics
        inside = sum(spent[1:])
        return round(1 - inside / spent[0], 3) if spent[0] and inside <= spent[0] else None
    total = sum(spent)  # stages: pre, model, post
    return round(1 - spent[1] / total, 3) if total else None


def server_time_us(url: str, models: list[str]) -> dict[str, float]:
    """Cumulative compute time per model from Triton's statistics (queue + compute), microseconds."""
    _, cli = client(url, "http")
    out = {}
    for m in models:
        stats = cli.get_inference_statistics(m)["model_stats"]
        s = stats[0]["inference_stats"] if stats else {}
        out[m] = sum(int(s.get(k, {}).get("ns", 0)) for k in ("queue", "compute_input", "compute_infer",
                                                                  "compute_output")) / 1e3
    return out


def stage_models(repo: Path, name: str) -> list[str]:
    """The models one pipeline request runs: pre, model, post (ensembles) or the BLS targets (ocr_system)."""
    if name.endswith("_pipeline") or name.endswith("_pipeline_raw"):
        model = name.rsplit("_pipeline", 1)[0]
        return [f"{model}_pre", model, f"{model}_post"]
    cfg = _load(repo, name)
    return [name, cfg["det"]["model"], cfg["rec"]["model"]] + ([cfg["cls"]["model"]] if cfg.get("cls") else [])


# -- validate hook ---------------------------------------------------------------------------------------------------

def protocol_infer(mod_client: Any, model: str, body: dict[str, Any]) -> dict[str, Any]:
    """One PaddleX-protocol request (repogen.pipelines.paddlex_protocol): JSON in ``input``, JSON back."""
    from repogen.harness.clients import REQUEST_TIMEOUT_S

    mod, cli = mod_client
    inp = mod.InferInput("input", [1, 1], "BYTES")
    inp.set_data_from_numpy(np.array([[json.dumps(body).encode("utf-8")]], dtype=np.object_))
    # gRPC has no client-wide timeout: bound each request (HTTP's network_timeout does it there)
    res = cli.infer(model, [inp], client_timeout=REQUEST_TIMEOUT_S) if mod.__name__.endswith("grpc") else \
        cli.infer(model, [inp])
    return json.loads(res.as_numpy("output").reshape(-1)[0])


def _check_protocol(report: Any, server: Any, cfg: dict, name: str, protocols: tuple[str, ...]) -> None:
    """A PaddleX-protocol model: each image's answer, turned back into the native pipeline's terms, is what the
    native pipeline it calls (``cfg["target"]``) answers for the same pixels, by the task rules
    (repogen.verify.tasks.compare_answers)."""
    from repogen.harness.report import OutputCheck
    from repogen.pipelines.paddlex_protocol import ANSWER_KINDS, native_answer, request_body
    from repogen.verify.tasks import compare_answers

    kind = ANSWER_KINDS[cfg["kind"]]
    images = images_for("ocr_det" if cfg["kind"] == "ocr" else cfg["kind"])
    for protocol in protocols:
        mc = client(server.http_url if protocol == "http" else server.grpc_url, protocol)
        for i, img in enumerate(images):
            want = infer(mc, cfg["target"], img, raw=True)
            # PaddleX's detection protocol has no reading-order field: a layout analysis model's objects come in
            # the native answer's (reading) order, which the box matching does not judge; the orders are not sent
            want.pop("orders", None)
            payload = protocol_infer(mc, name, request_body(cfg["kind"], inputs.encode(img)))
            if payload.get("errorCode") != 0:
                passed, why = False, f"errorCode {payload.get('errorCode')}: {payload.get('errorMsg')}"
            else:
                verdict = compare_answers(kind, native_answer(cfg["kind"], payload["result"]), want)
                passed, why = verdict.passed, verdict.summary
            report.checks.append(OutputCheck(protocol, f"image {i}", ",".join(sorted(want)), None, [], None, None,
                                             0.0, passed, "" if passed else why))
            if not passed:
                report.fail(f"{protocol} image {i}: {why}")


def validate_pipelines(server: Any, repo: Path, names: list[str], *, protocols: tuple[str, ...] = ("http", "grpc"),
                       concurrency: tuple[int, ...] = (1, 4), requests: int = 20, speed: bool = True,
                       timing: dict | None = None) -> list[Any]:
    """One harness ModelReport per pipeline folder; ``_pre``/``_post`` pass or fail with their ensemble."""
    from repogen.harness.report import ModelReport, OutputCheck

    repo = Path(repo)
    if names:
        pipeline_ops()  # a missing package is the command's one error, not one failure per pipeline
    reports: dict[str, Any] = {}
    refs: dict[str, Reference] = {}

    def ref(model: str) -> Reference:
        if model not in refs:
            refs[model] = Reference(repo, model)
        return refs[model]

    try:
        for name in names:
            if name.endswith("_pre") or name.endswith("_post"):
                continue
            report = reports[name] = ModelReport(name)
            try:
                if (repo / name / "1" / "pipeline.json").is_file() and _load(repo, name).get("protocol") == "paddlex":
                    _check_protocol(report, server, _load(repo, name), name, protocols)  # PaddleX's JSON in front
                    continue
                if name.endswith("_pipeline") or name.endswith("_pipeline_raw"):
                    model = name.rsplit("_pipeline", 1)[0]
                    cfg = _load(repo, f"{model}_pre")
                    images = images_for(cfg["kind"], cfg)
                    expect: Callable = lambda img, box, cfg=cfg, model=model: pipeline_answer(cfg, ref(model), img,
                                                                                             box)
                    kind = cfg["kind"]
                else:
                    cfg = _load(repo, name)
                    images = images_for("ocr_system", cfg.get("rec"))
                    expect = lambda img, box, cfg=cfg: ocr_answer(
                        cfg, ref(cfg["det"]["model"]), ref(cfg["rec"]["model"]), img,
                        ref(cfg["cls"]["model"]) if cfg.get("cls") else None)
                    kind = "ocr_system"
                raw = name.endswith("_raw")
                cases = [(images[i % len(images)], box) for i, box in enumerate(boxes_for(kind, images))]
                wants = [expect(img, box) for img, box in cases]
                for protocol in protocols:
                    mc = client(server.http_url if protocol == "http" else server.grpc_url, protocol)
                    for i, ((img, box), want) in enumerate(zip(cases, wants)):
                        got = infer(mc, name, img, raw=raw, box=box)
                        verdict = judge(kind, got, want, cfg)
                        what = f"image {i % len(images)}" + ("" if box is None else " with a box")
                        report.checks.append(OutputCheck(protocol, what, ",".join(sorted(want)), None, [],
                                                         None, None, 0.0, verdict.passed,
                                                         "" if verdict.passed else verdict.summary,
                                                         criterion="task"))
                        if not verdict.passed:
                            report.fail(f"{protocol} {what}: {verdict.summary}")
                if speed and not raw:
                    stages = stage_models(repo, name)
                    for run in timed_run(server.grpc_url, name, [inputs.encode(img) for img in images],
                                         concurrency, requests, stages, timing):
                        # speed is reported, never a verdict: a slow pipeline that answered correctly passes
                        report.speed.append(replace(run, pre_post_share=pre_post_share(kind, stages,
                                                                                       run.stage_server_us)))
            except Exception as exc:  # noqa: BLE001 - one pipeline's failure is reported, the others go on
                report.fail(f"{type(exc).__name__}: {' '.join(str(exc).split())[:500]}")
        for name in names:
            if name.endswith("_pre") or name.endswith("_post"):
                owner = name.rsplit("_", 1)[0] + "_pipeline"
                stage = reports[name] = ModelReport(name)
                if owner not in reports:
                    stage.fail(f"not validated: {owner} (the ensemble that runs this stage) was not validated")
                elif not reports[owner].ok:
                    stage.fail(f"validated through {owner}, which failed")
    finally:
        for r in refs.values():
            r.close()
    return [reports[n] for n in names]
