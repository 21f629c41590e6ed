"""Served pipelines vs PaddleX's in-process predictors: same model files, same images, same thread count.

    python bench/bench_pipelines.py [--kinds ocr_det,det,seg,ocr_system] [--concurrency 1,8] [--images 40]
    python bench/bench_pipelines.py --kinds ocr_det_mobilenet,cls_mobilenet --images 48   # realistic compute

Images are PNG files: the server gets their bytes, PaddleX gets their paths (both decode them).
Builds the zoo-style test exports (repogen.examples.pipeline_exports) with ``repogen build`` (paddle target, no flags),
serves them on the bundled CPU tritonserver and sends encoded images over gRPC from N client threads; the
alternative is PaddleX ``create_model(..., engine="paddle_static", run_mode "paddle")`` (oneDNN off) called
from N threads, one predictor per thread (a PaddleX predictor is not thread-safe), with the same CPU math
threads per predictor (1) as each served model instance. For the OCR system the alternative is PaddleX's
OCR steps composed from its components (tests/pipeline_reference.py). Also reported: where the server's time
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


def main() -> int:
    import pipeline_reference as ref
    from repogen.harness.server import launch
    from repogen.build.flow import build_repository
    from repogen.build.spec import InstanceGroup, ModelSpec

    ap = argparse.ArgumentParser()
    ap.add_argument("--kinds", default="ocr_det,det,seg,ocr_system")
    ap.add_argument("--concurrency", default="1,8")
    ap.add_argument("--images", type=int, default=40)
    ap.add_argument("--instances", type=int, default=2, help="instances of each served model and stage")
    args = ap.parse_args()
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
