"""Served pipelines vs PaddleX's in-process predictors: same model files, same images, same thread count.

    python bench/bench_pipelines.py [--kinds ocr_det,det,seg,ocr_system] [--concurrency 1,8] [--images 40]
    python bench/bench_pipelines.py --kinds ocr_det_mobilenet,cls_mobilenet --images 48   # realistic compute

Images are PNG files: the server gets their bytes, PaddleX gets their paths (both decode them).
Builds the zoo-style test exports (repogen.examples.pipeline_exports) with ``repogen build`` (paddle target, no flags),
serves them on the bundled CPU tritonserver and sends encoded images over gRPC from N client threads; the
alternative is PaddleX ``create_model(..., engine="paddle_static", run_mode "paddle")`` (oneDNN off) called
from N threads, one predictor per thread (a PaddleX predictor is not thread-safe), with the same CPU math
threads per predictor (1) as each served model instance. For the OCR system the alternative is PaddleX's
OCR steps composed from its components (tests/support/pipeline_reference.py). Also reported: where the server's time
goes (pre, model, post from Triton's per-model statistics) and client-side decode+transport (request latency
minus the ensemble's server time). Prints only what it measured. Targets (issue 15): >= 0.9x at one client,
>= 2x at 8 clients.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # run from a checkout; the PaddleX reference lives in tests/

import numpy as np  # noqa: E402

from repogen.examples import pipeline_exports as testing
from repogen.verify import inputs  # noqa: E402
from repogen.harness.pipelines import client, infer, server_time_us, stage_models  # noqa: E402

EXPORTS = {"ocr_det": "ocr_det", "det": "det", "seg": "seg", "ocr_rec": "ocr_rec", "cls": "cls",
           "cls_mobilenet": "cls_mobilenet", "ocr_det_mobilenet": "ocr_det_mobilenet"}


def _images(kind: str, n: int) -> list[np.ndarray]:
    if kind in ("det", "seg", "cls", "cls_mobilenet"):
        return [inputs.shapes_image(i, (360, 480)) for i in range(n)]
    if kind == "ocr_rec":
        return [inputs.text_image([f"line {i}"], i, (40, 240))[8:40] for i in range(n)]
    return [inputs.text_image(["hello world", f"line {i} 42", "pipeline", "abc def"], i, (360, 480)) for i in range(n)]


def _threads(n: int, work) -> float:
    ts = [threading.Thread(target=work, args=(k,)) for k in range(n)]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return time.perf_counter() - t0


def served(url: str, model: str, images: list[np.ndarray], conc: int) -> tuple[float, list[float]]:
    encoded = [inputs.encode(i) for i in images]
    lat: list[float] = []
    lock = threading.Lock()

    def work(k: int) -> None:
        mc = client(url, "grpc")
        infer(mc, model, encoded[0])  # connection set up outside the timed part
        mine = []
        for j in range(k, len(encoded), conc):
            t0 = time.perf_counter()
            infer(mc, model, encoded[j])
            mine.append(time.perf_counter() - t0)
        with lock:
            lat.extend(mine)

    wall = _threads(conc, work)
    return len(encoded) / wall, lat


def decode_ms(encoded: list[bytes]) -> float:
    """What decoding the same files costs in one process (cv2.imdecode, as the pre stage does), ms per image:
    the pre stage's time splits into this, the transforms and the stage's own request handling."""
    import cv2

    t0 = time.perf_counter()
    for data in encoded:
        cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return (time.perf_counter() - t0) / len(encoded) * 1e3


def paddlex(make, answer, images: list[str], conc: int) -> float:
    """``images`` are the same encoded files the server gets, as paths: PaddleX decodes them itself."""
    preds = [make() for _ in range(conc)]
    for p in preds:
        answer(p, images[0])  # warm-up, as the server's first request is outside the timed part too

    def work(k: int) -> None:
        for j in range(k, len(images), conc):
            answer(preds[k], images[j])

    return len(images) / _threads(conc, work)


# -- --official: the official PP-OCRv4 exports, served ocr_system vs PaddleX's own OCR pipeline -----------------------

OFFICIAL_DET, OFFICIAL_REC, OFFICIAL_CLS = "PP-OCRv4_mobile_det", "PP-OCRv4_mobile_rec", "PP-LCNet_x0_25_textline_ori"


def _answer_paddlex_ocr_gate() -> None:
    """PaddleX gates its OCR pipeline on the ``ocr-core`` extra, whose ``imagesize`` is used only by PaddleX's
    dataset converters (training tools), never at inference; the gate is answered for it (as
    tests/support/pipeline_reference.py does for OpenCV's distribution name) before the first pipeline is created."""
    from support import pipeline_reference  # noqa: F401 - answers the OpenCV gate first
    import paddlex.utils.deps as deps

    original = deps.is_dep_available
    if getattr(original, "_repogen_imagesize", False):
        return

    def is_dep_available(dep, /, check_version=False):
        return True if dep == "imagesize" else original(dep, check_version=check_version)

    is_dep_available._repogen_imagesize = True
    deps.is_dep_available = is_dep_available


def official_folders(work: Path) -> dict[str, Path]:
    """The official exports with PaddleX-style inference.yml beside copies (tests/support/trained_models.py).
    PaddleX's OCR pipeline accepts only its own text-line orientation model names, so the classifier's copy
    is named PP-LCNet_x0_25_textline_ori in its inference.yml (its form already is that model's: 3x48x192 plain
    resize, [-1, 1], Topk with 0_degree / 180_degree); both sides read exactly these files."""
    import shutil

    from support.trained_models import with_paddlex_configs

    folders = with_paddlex_configs(work / "official")
    cls = work / "official" / "cls_as_textline_ori"
    if not cls.is_dir():
        shutil.copytree(folders["cls"], cls)
        yml = (cls / "inference.yml").read_text(encoding="utf-8")
        (cls / "inference.yml").write_text(yml.replace("model_name: ch_ppocr_mobile_v2.0_cls",
                                                       f"model_name: {OFFICIAL_CLS}"), encoding="utf-8")
    folders["cls"] = cls
    return folders


def paddlex_ocr_pipeline(folders: dict[str, Path], threads: int):
    """PaddleX's OCR pipeline (create_pipeline) on the same folders with the parameters the served system reads
    from them: DB at limit side 960 (max), thresholds as in inference.yml, orientation on, batches of 6,
    no document pre-processing; Paddle Inference with oneDNN off (``run_mode: paddle``: PaddleX's oneDNN run
    fails with Paddle 3.3.1 here, "ConvertPirAttribute2RuntimeAttribute not support")."""
    _answer_paddlex_ocr_gate()
    from paddlex import create_pipeline

    config = {"pipeline_name": "OCR", "text_type": "general", "use_doc_preprocessor": False,
              "use_textline_orientation": True, "SubModules": {
                  "TextDetection": {"module_name": "text_detection", "model_name": OFFICIAL_DET,
                                    "model_dir": str(folders["det"]), "limit_side_len": 960, "limit_type": "max",
                                    "max_side_limit": 4000, "thresh": 0.3, "box_thresh": 0.6, "unclip_ratio": 1.5},
                  "TextLineOrientation": {"module_name": "textline_orientation", "model_name": OFFICIAL_CLS,
                                          "model_dir": str(folders["cls"]), "batch_size": 1},
                  "TextRecognition": {"module_name": "text_recognition", "model_name": OFFICIAL_REC,
                                      "model_dir": str(folders["rec"]), "batch_size": 6, "score_thresh": 0.0}}}
    return create_pipeline(config=config, device="cpu", engine="paddle_static",
                           engine_config={"run_mode": "paddle", "cpu_threads": threads})


def paddlex_ocr_answer(pipeline, image) -> dict:
    r = list(pipeline.predict(image))[0]
    return {"boxes": np.array(r["rec_polys"], np.float32).reshape(-1, 4, 2), "texts": list(r["rec_texts"]),
            "scores": np.array(r["rec_scores"], np.float32)}


def official_images(characters: list[str], n: int) -> list[np.ndarray]:
    """Generated text pages (repogen.verify.inputs) in the dictionary's drawable characters, every other page
    with every other line upside down, so the orientation step has work."""
    return [inputs.text_page(inputs.sample_texts(6, 100 + i, characters), 100 + i, (360, 480),
                             upside_down=range(i % 2, 6, 2) if i % 2 else ()).image for i in range(n)]


def onednn_off_copy(repo: Path, dest: Path) -> Path:
    """The same repository with oneDNN off in the three paddle-target models (their model.py's USE_ONEDNN):
    the setting PaddleX has to run with here."""
    import shutil

    shutil.copytree(repo, dest, symlinks=True)
    for name in (OFFICIAL_DET, OFFICIAL_REC, OFFICIAL_CLS):
        path = dest / name / "1" / "model.py"
        text = path.read_text(encoding="utf-8")
        if "USE_ONEDNN = True" not in text:
            raise SystemExit(f"{path}: no 'USE_ONEDNN = True' to turn off")
        path.write_text(text.replace("USE_ONEDNN = True", "USE_ONEDNN = False"), encoding="utf-8")
    return dest


def replay_steps(cfg: dict, encoded: list[bytes], det_maps: list[np.ndarray], rec_probs) -> dict[str, float]:
    """The ocr_system's own Python steps (repogen.pipelines.ops, as ocr_model.py calls them) replayed in this
    process on the same images, ms per image; ``det_maps``: the served detector's maps for them;
    ``rec_probs(x)``: the recognizer's output for a batch (called outside the timed parts)."""
    from repogen.pipelines import ops

    det, rec, cls = cfg["det"], cfg["rec"], cfg.get("cls")
    characters = ops.ctc_characters(rec["characters"], rec["use_space_char"])
    spent = dict.fromkeys(("decode", "det pre", "DB post", "sort + crops", "cls pre + turn", "rec pre", "CTC"), 0.0)
    clock = time.perf_counter
    for data, prob in zip(encoded, det_maps):
        t0 = clock()
        img = ops.decode_image(data, cfg["color"], cfg["min_side"], cfg["max_side"])
        t1 = clock()
        state = ops.preprocess(img, det["transforms"])
        ops.model_feeds(state, det["roles"])
        t2 = clock()
        boxes, _ = ops.db_postprocess(prob[0], ops.info_vector(state), **det["post"])
        t3 = clock()
        crops = [c for c in (ops.minarea_crop(img, b) for b in ops.sort_boxes(boxes)) if c.size > 0]
        t4 = clock()
        spent["decode"] += t1 - t0
        spent["det pre"] += t2 - t1
        spent["DB post"] += t3 - t2
        spent["sort + crops"] += t4 - t3
        if cls and crops:  # the classifier's answers do not matter for the cost: class 0 for every crop
            t0 = clock()
            crops = ops.upright(crops, cls, lambda x: np.tile(np.array([[1.0, 0.0]], np.float32), (len(x), 1)))
            spent["cls pre + turn"] += clock() - t0
        order = sorted(range(len(crops)), key=lambda i: crops[i].shape[1] / float(crops[i].shape[0]))
        for start in range(0, len(order), rec["batch_size"]):
            t0 = clock()
            x = ops.rec_batch([crops[i] for i in order[start:start + rec["batch_size"]]], rec["image_shape"])
            spent["rec pre"] += clock() - t0
            probs = rec_probs(x)
            t0 = clock()
            ops.ctc_decode(probs, characters)
            spent["CTC"] += clock() - t0
    return {k: v / len(encoded) * 1e3 for k, v in spent.items()}


def _tensor_infer(url: str, model: str, name: str, x: np.ndarray) -> np.ndarray:
    import tritonclient.grpc as grpcclient

    cli = grpcclient.InferenceServerClient(url)
    inp = grpcclient.InferInput(name, list(x.shape), "FP32")
    inp.set_data_from_numpy(np.ascontiguousarray(x, np.float32))
    res = cli.infer(model, [inp])
    return res.as_numpy(res.get_response().outputs[0].name)


def official_breakdown(url: str, repo: Path, encoded: list[bytes], stage_us: dict[str, float]) -> str:
    """Where one request's time goes at one client: the members' server time (Triton's statistics, queue +
    compute per request), the system's own Python steps (replayed here on the same images) and the rest of
    the system's time (BLS hops: request/response tensors through shared memory, and the output tensors)."""
    import json

    from repogen.pipelines import ops

    cfg = json.loads((repo / "ocr_system" / "1" / "pipeline.json").read_text(encoding="utf-8"))
    det = cfg["det"]
    maps = []
    for data in encoded:
        img = ops.decode_image(data, cfg["color"], cfg["min_side"], cfg["max_side"])
        feeds = ops.model_feeds(ops.preprocess(img, det["transforms"]), det["roles"])
        (name, x), = feeds.items()
        maps.append(_tensor_infer(url, det["model"], name, x))
    rec = cfg["rec"]
    steps = replay_steps(cfg, encoded, maps, lambda x: _tensor_infer(url, rec["model"], rec["input"], x))
    total = stage_us[OFFICIAL_SYSTEM] / 1e3
    members = {m: stage_us.get(cfg[k]["model"], float("nan")) / 1e3 for k, m in
               (("det", "det model"), ("cls", "cls model"), ("rec", "rec model")) if k in cfg}
    rest = total - sum(members.values()) - sum(steps.values())
    parts = [f"{k} {v:.1f}" for k, v in {**steps, **members}.items()] + [f"BLS hops + rest {rest:.1f}"]
    return f"ocr_system {total:.1f} ms per image = " + ", ".join(parts)


OFFICIAL_SYSTEM = "ocr_system"


def official(args) -> int:
    """Served ocr_system vs PaddleX's OCR pipeline on the official exports, both settings, alternating."""
    import os
    import shutil

    from repogen.build.flow import build_repository
    from repogen.build.spec import InstanceGroup, ModelSpec
    from repogen.harness.pipelines import timed_run
    from repogen.harness.server import launch
    from repogen.verify.tasks import compare_answers
    from support.trained_models import dictionary_characters

    levels = [int(c) for c in args.concurrency.split(",")]
    work = Path(tempfile.mkdtemp(prefix="repogen-bench-official-"))
    folders = official_folders(work)
    groups = [InstanceGroup(count=args.instances)] if args.instances else None
    names = {"det": OFFICIAL_DET, "rec": OFFICIAL_REC, "cls": OFFICIAL_CLS}  # as the deploy configs name them
    specs = [ModelSpec(source=folders[k], name=name, target="paddle", check=False,
                       **({"instance_groups": groups} if groups else {})) for k, name in names.items()]
    repo = work / "repo"
    build_repository(specs, repo, progress=False)
    repos = {"best": repo, "oneDNN off": onednn_off_copy(repo, work / "repo-onednn-off")}
    repos = {k: v for k, v in repos.items() if k in args.settings.split(",")}
    images = official_images(dictionary_characters(folders["dict"]), args.images)
    encoded = [inputs.encode(img) for img in images]
    files = []
    for i, data in enumerate(encoded):
        files.append(str(work / f"page-{i}.png"))
        Path(files[-1]).write_bytes(data)
    cores = len(os.sched_getaffinity(0))
    pipelines: dict[int, list] = {}

    def paddlex_pipelines(conc: int) -> list:
        threads = max(1, cores // conc)  # PaddleX's best here: the cores shared among the predictors
        if conc not in pipelines:
            pipelines[conc] = [paddlex_ocr_pipeline(folders, threads) for _ in range(conc)]
        return pipelines[conc]

    print(f"official PP-OCRv4 det + rec + orientation classifier; {len(images)} generated text pages 480x360; "
          f"{cores} cores; served: build defaults{f', {args.instances} instances' if args.instances else ''}; "
          f"PaddleX: OCR pipeline per client thread, run_mode paddle (oneDNN off), cores // clients threads each")
    print(f"{'setting':<11} {'clients':>7} {'round':>5} {'served img/s':>12} {'PaddleX img/s':>13} {'ratio':>6} "
          f"{'load avg':>8}  server ms per image: system / det / cls / rec")
    failed = 0
    for setting, path in repos.items():
        with launch(path, models=[OFFICIAL_SYSTEM, OFFICIAL_DET, OFFICIAL_REC, OFFICIAL_CLS],
                    require_models=True) as srv:
            from repogen.harness.pipelines import client, infer, stage_models

            mc = client(srv.grpc_url, "grpc")
            want_pipeline = paddlex_pipelines(levels[0])[0]
            for i, (data, path_i) in enumerate(zip(encoded, files)):  # a fast wrong answer must not count
                got, want = infer(mc, OFFICIAL_SYSTEM, data), paddlex_ocr_answer(want_pipeline, path_i)
                verdict = compare_answers("ocr_system", got, want)
                if not verdict.passed or got["texts"] != want["texts"]:
                    failed += 1
                    print(f"{setting}: page {i}: served answer differs from PaddleX's: "
                          f"{verdict.details.get('problems')} {got['texts']} vs {want['texts']}")
            print(f"{setting}: served texts equal PaddleX's on {len(encoded) - failed}/{len(encoded)} pages "
                  f"({sum(len(infer(mc, OFFICIAL_SYSTEM, d)['texts']) for d in encoded[:2])} lines on the first two)")
            stages = stage_models(path, OFFICIAL_SYSTEM)
            for conc in levels:
                preds = paddlex_pipelines(conc)
                for rnd in range(1, args.rounds + 1):
                    row = timed_run(srv.grpc_url, OFFICIAL_SYSTEM, encoded, [conc], 20, stages,
                                    {"level_budget_s": 150.0})[0]
                    reps = max(1, 2 * conc // len(files) + 1)
                    alt = paddlex(lambda k=iter(preds): next(k), paddlex_ocr_answer, files * reps, conc)
                    load = os.getloadavg()[0]
                    s = row.stage_server_us
                    split = " / ".join(f"{s.get(m, float('nan')) / 1e3:.0f}" for m in
                                       (OFFICIAL_SYSTEM, OFFICIAL_DET, OFFICIAL_CLS, OFFICIAL_REC))
                    note = "" if row.verdict == "stable" else f" ({row.verdict}{': ' + row.note if row.note else ''})"
                    print(f"{setting:<11} {conc:>7} {rnd:>5} {row.throughput_rps:>12.2f} {alt:>13.2f} "
                          f"{row.throughput_rps / alt:>6.2f} {load:>8.1f}  {split}{note}", flush=True)
                    if conc == 1 and rnd == 1:
                        print("  breakdown, one client: " + official_breakdown(srv.grpc_url, path, encoded, s))
    shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


def main() -> int:
    from support import pipeline_reference as ref
    from repogen.harness.server import launch
    from repogen.build.flow import build_repository
    from repogen.build.spec import InstanceGroup, ModelSpec

    ap = argparse.ArgumentParser()
    ap.add_argument("--kinds", default="ocr_det,det,seg,ocr_system")
    ap.add_argument("--concurrency", default="1,8")
    ap.add_argument("--images", type=int, default=40)
    ap.add_argument("--instances", type=int, default=None,
                    help="instances of each served model and stage (default 2; --official: the build's default)")
    ap.add_argument("--official", action="store_true",
                    help="the official PP-OCRv4 det/rec and v2 classifier: served ocr_system vs PaddleX's OCR pipeline")
    ap.add_argument("--settings", default="best,oneDNN off",
                    help="--official: which settings to measure, comma-separated (best, oneDNN off)")
    ap.add_argument("--rounds", type=int, default=2, help="--official: served/PaddleX alternations per level")
    args = ap.parse_args()
    if args.official:
        return official(args)
    args.instances = 2 if args.instances is None else args.instances
    kinds = args.kinds.split(",")
    levels = [int(c) for c in args.concurrency.split(",")]
    work = Path(tempfile.mkdtemp(prefix="repogen-bench-pipelines-"))
    need = sorted({"ocr_det", "ocr_rec"} if "ocr_system" in kinds else set()) + [k for k in kinds if k in EXPORTS]
    models = testing.save_models(work / "models", tuple(dict.fromkeys(need)))
    groups = [InstanceGroup(count=args.instances)]
    specs = [ModelSpec(source=models[k], name=k, target="paddle", check=False, instance_groups=groups)
             for k in models]
    if "ocr_system" in kinds:  # the system over the small detector and recognizer, whatever else the build holds
        from repogen.build.system_spec import parse
        from repogen.build.spec import BuildSpecs

        specs = BuildSpecs(specs)
        specs.ocr_system = parse({"detector": "ocr_det", "recognizer": "ocr_rec"}, specs, "bench")
    repo = work / "repo"
    build_repository(specs, repo, progress=False)  # the pipeline stages get the models' instance count
    print(f"images per run: {args.images}; served instances per model/stage: {args.instances}; "
          f"PaddleX: one predictor per client thread, 1 CPU thread each")
    print(f"{'pipeline':<12} {'clients':>7} {'served img/s':>12} {'PaddleX img/s':>13} {'ratio':>6} "
          f"{'p50 ms':>7} {'p99 ms':>7}  server time: pre / model / post;  transport")
    with launch(repo) as srv:
        bad = {k: v for k, v in srv.loaded.items() if v}
        if bad:
            print(f"load errors: {bad}")
            return 1
        for kind in kinds:
            model = "ocr_system" if kind == "ocr_system" else f"{kind}_pipeline"
            images = _images("ocr_det" if kind == "ocr_system" else kind, args.images)
            if kind == "ocr_system":
                def make():
                    return (ref.paddlex_predictor("ocr_det", models["ocr_det"], work),
                            ref.paddlex_predictor("ocr_rec", models["ocr_rec"], work, batch_size=6))

                def answer(p, path):
                    import cv2
                    return ref.paddlex_ocr(p[0], p[1], cv2.imread(path))  # PaddleX's OCR reads with OpenCV
            else:
                def make(kind=kind):
                    return ref.paddlex_predictor(kind, models[kind], work)

                def answer(p, path):
                    return list(p.predict(path))

            files, encoded = [], [inputs.encode(img) for img in images]
            for i, data in enumerate(encoded):
                files.append(str(work / f"{kind}-{i}.png"))
                (work / f"{kind}-{i}.png").write_bytes(data)
            stages = stage_models(repo, model)
            for conc in levels:
                served(srv.grpc_url, model, images[:conc], conc)  # warm every instance
                before = server_time_us(srv.http_url, stages)
                rate, lat = served(srv.grpc_url, model, images, conc)
                after = server_time_us(srv.http_url, stages)
                spent = {m: (after[m] - before[m]) / len(images) / 1e3 for m in stages}  # ms per image
                alt = paddlex(make, answer, files, conc)
                ms = np.array(lat) * 1e3
                if kind == "ocr_system":
                    total = spent[stages[0]]
                    split = f"det {spent[stages[1]]:.1f} + rec {spent[stages[2]]:.1f} of {total:.1f} ms in BLS model"
                else:
                    total = sum(spent.values())
                    split = f"{spent[stages[0]]:.1f} / {spent[stages[1]]:.1f} / {spent[stages[2]]:.1f} ms"
                    if conc == 1:
                        split += f" (decode {decode_ms(encoded):.1f} of pre)"
                # request latency minus the stages' server time: meaningful at one client only (under load a
                # batched model's time is counted once per request of the batch, and stages overlap)
                transport = f"{float(np.mean(ms)) - total:.1f} ms" if conc == 1 else "-"
                print(f"{kind:<12} {conc:>7} {rate:>12.1f} {alt:>13.1f} {rate / alt:>6.2f} {np.percentile(ms, 50):>7.1f} "
                      f"{np.percentile(ms, 99):>7.1f}  {split};  {transport}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
