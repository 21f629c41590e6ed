"""``repogen validate`` for pipeline models: generated images in, answers compared with the reference chain.

The reference chain is repogen's own transforms/post-processors (``ops.py``, which the tests hold equal to
PaddleX's processor classes) around Paddle Inference on the model's source files (the harness's
``PaddleReference``). Tolerances: identical texts, labels and label maps; boxes within 1 pixel; scores
within 1e-4. Speed: the harness's measurer (repogen.harness.speed) per pipeline at each concurrency, and the
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

BOX_TOL, SCORE_TOL = 1.0, 1e-4


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


def images_for(kind: str) -> list[np.ndarray]:
    words = [["hello", "world 42", "abc"], ["triton", "paddle ocr"], ["x1 y2 z3", "pipeline", "ok"]]
    if kind == "ocr_rec":
        return [inputs.text_image([w[0]], i, (40, 40 + 30 * len(w[0])))[8:40] for i, w in enumerate(words)]
    if kind in ("detection", "segmentation", "classification"):
        return [inputs.shapes_image(i, (150 + 20 * i, 200 + 30 * i)) for i in range(3)]
    return [inputs.text_image(w, i, (200, 320)) for i, w in enumerate(words)]


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


def infer(mod_client: Any, model: str, img: np.ndarray | bytes, raw: bool = False) -> dict[str, Any]:
    """One image through a served pipeline; BYTES outputs decoded to str, the batch-of-one dim dropped."""
    mod, cli = mod_client
    if raw:
        inp = mod.InferInput("image_raw", [1, *img.shape], "UINT8")
        inp.set_data_from_numpy(np.ascontiguousarray(img)[None])
    else:
        data = img if isinstance(img, bytes) else inputs.encode(img)
        inp = mod.InferInput("image", [1, 1], "BYTES")
        inp.set_data_from_numpy(np.array([[data]], dtype=np.object_))
    from repogen.harness.clients import REQUEST_TIMEOUT_S

    # gRPC has no client-wide timeout: bound each request (HTTP's network_timeout does it there)
    res = cli.infer(model, [inp], client_timeout=REQUEST_TIMEOUT_S) if mod.__name__.endswith("grpc") else \
        cli.infer(model, [inp])
    raw_resp = res.get_response()
    names = [o["name"] for o in raw_resp["outputs"]] if isinstance(raw_resp, dict) else [o.name for o in raw_resp.outputs]
    out = {}
    for name in names:
        arr = res.as_numpy(name)[0]
        out[name] = [b.decode("utf-8") for b in arr] if arr.dtype == np.object_ else arr
    return out


def differences(kind: str, got: dict, want: dict) -> list[str]:
    """What differs beyond the tolerances (empty: the answers agree)."""
    bad = []
    for key in ("texts", "labels"):
        if key in want and got.get(key) != want[key]:
            bad.append(f"{key} {got.get(key)} != {want[key]}")
    if "class_ids" in got and "label_ids" not in got:
        got = got | {"label_ids": got["class_ids"]}
    if "label_ids" in want and not np.array_equal(got.get("label_ids"), want["label_ids"]):
        bad.append("label_ids differ")
    if "label_map" in want and not np.array_equal(got.get("label_map"), want["label_map"]):
        bad.append("label_map differs")
    if "boxes" in want:
        g, w = np.asarray(got.get("boxes")), np.asarray(want["boxes"])
        if g.shape != w.shape:
            bad.append(f"boxes shape {list(g.shape)} != {list(w.shape)}")
        elif np.abs(g - w).max(initial=0) > BOX_TOL:
            bad.append(f"boxes differ by {np.abs(g - w).max():.3g} px > {BOX_TOL}")
    if "scores" in want:
        g, w = np.asarray(got.get("scores"), np.float64), np.asarray(want["scores"], np.float64)
        if g.shape != w.shape or np.abs(g - w).max(initial=0) > SCORE_TOL:
            bad.append(f"scores differ (> {SCORE_TOL})")
    return bad


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


def pipeline_answer(cfg: dict, ref: Reference, img: np.ndarray) -> dict[str, Any]:
    """The expected answer of ``<model>_pipeline`` for one BGR image."""
    ops = pipeline_ops()
    img = ops.raw_image(img, cfg["color"], cfg["min_side"], cfg["max_side"])
    state = ops.preprocess(img, cfg["transforms"])
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
        res = ops.det_postprocess(outs[cfg["boxes_output"]].reshape(-1, 6), (info[0], info[1]), cfg["labels"],
                                  cfg["post"]["threshold"])
        return {k: res[k] for k in ("boxes", "scores", "labels", "label_ids")}
    if kind == "classification":
        ids, scores, names = ops.topk(first[0], cfg["post"]["topk"], cfg["labels"])
        return {"label_ids": ids, "scores": scores.astype(np.float32), "labels": names}
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
        angles = ops.orientations([p[0] for p in pairs], c, lambda x: cls.run({c["input"]: x})[c["output"]])
        pairs = [(ops.rotate(p[0], 180) if a == 1 else p[0], p[1]) for p, a in zip(pairs, angles)]
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
        return round(1 - (spent[1] + spent[2]) / spent[0], 3) if spent[0] else None
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
                if name.endswith("_pipeline") or name.endswith("_pipeline_raw"):
                    model = name.rsplit("_pipeline", 1)[0]
                    cfg = _load(repo, f"{model}_pre")
                    images = images_for(cfg["kind"])
                    expect: Callable = lambda img, cfg=cfg, model=model: pipeline_answer(cfg, ref(model), img)
                    kind = cfg["kind"]
                else:
                    cfg = _load(repo, name)
                    images = images_for("ocr_det")
                    expect = lambda img, cfg=cfg: ocr_answer(
                        cfg, ref(cfg["det"]["model"]), ref(cfg["rec"]["model"]), img,
                        ref(cfg["cls"]["model"]) if cfg.get("cls") else None)
                    kind = "ocr_system"
                raw = name.endswith("_raw")
                wants = [expect(img) for img in images]
                for protocol in protocols:
                    mc = client(server.http_url if protocol == "http" else server.grpc_url, protocol)
                    for i, (img, want) in enumerate(zip(images, wants)):
                        got = infer(mc, name, img, raw=raw)
                        bad = differences(kind, got, want)
                        report.checks.append(OutputCheck(protocol, f"image {i}", ",".join(sorted(want)),
                                                         None, [], None, None, BOX_TOL, not bad, "; ".join(bad)))
                        if bad:
                            report.fail(f"{protocol} image {i}: {'; '.join(bad)}")
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
