"""Pipelines end to end: ``repogen build`` on zoo-style exports with their deploy configs, served by the real
CPU tritonserver, answers compared with PaddleX's own predictors (its processors around Paddle Inference) on
generated images over HTTP and gRPC, under concurrency, with bad inputs in between."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from repogen.examples import pipeline_exports as testing
from repogen.verify import inputs

ref = pytest.importorskip("tests.support.pipeline_reference")
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]
KINDS = ("ocr_det", "ocr_rec", "det", "layout", "seg", "cls", "textline")
NAME = testing.MODEL_NAME  # the Triton names a build with no names gives the exports


def _images(kind: str) -> list[np.ndarray]:
    words = [["hello", "world 42", "abc"], ["triton", "paddle ocr"], ["x1 y2 z3", "pipeline", "ok", "boxes"]]
    if kind in ("ocr_rec", "textline"):
        lines = [inputs.text_image([w[0]], i, (40, 40 + 30 * len(w[0]))) for i, w in enumerate(words)]
        return [line[8:40] for line in lines]
    if kind in ("det", "seg", "cls"):
        return [inputs.shapes_image(i, (150 + 20 * i, 200 + 30 * i)) for i in range(3)]
    return [inputs.text_image(w, i, (180 + 10 * i, 300 - 20 * i)) for i, w in enumerate(words)]


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    return testing.save_models(tmp_path_factory.mktemp("pipeline-models"), KINDS)


@pytest.fixture(scope="module")
def repo(models, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pipeline-repo") / "repo"
    # the user's command: no shape flags; profiles and pipelines come from the deploy configs
    proc = subprocess.run([sys.executable, "-m", "repogen.cli", "build", *(str(models[k]) for k in KINDS),
                           "--out", str(out), "--target", "paddle", "--no-check", "--json"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    # no names given: PaddleX exports are named by their inference.yml's Global.model_name, the others by folder
    assert [m["name"] for m in report["models"] if m["role"] == "model"] == [NAME[k] for k in KINDS]
    # every folder written is in the report, each pipeline stage with the model it serves
    stages = {(m["name"], m["role"], m["part_of"]) for m in report["models"] if m["role"] in ("pre", "post")}
    assert stages == {(f"{NAME[k]}_{r}", r, NAME[k]) for k in KINDS for r in ("pre", "post")}
    assert NAME["ocr_det"] == "PP-OCRv5_mobile_det" and NAME["det"] == "det"
    return out


@pytest.fixture(scope="module")
def expected(models, tmp_path_factory) -> dict[str, list[dict]]:
    work = tmp_path_factory.mktemp("paddlex")
    return {k: [ref.paddlex_answer(ref.paddlex_predictor(k, models[k], work), k, img) for img in _images(k)]
            for k in KINDS}


def _ocr_images() -> list[np.ndarray]:
    words = [["hello", "world 42", "abc"], ["triton", "paddle ocr", "a b c d e f g"],
             ["x1 y2 z3", "pipeline", "ok", "boxes", "more"], ["one line"]]
    return [inputs.text_image(w, 10 + i, (220, 320)) for i, w in enumerate(words)]


@pytest.fixture(scope="module")
def expected_ocr(models, tmp_path_factory) -> list[dict]:
    work = tmp_path_factory.mktemp("paddlex-ocr")
    det = ref.paddlex_predictor("ocr_det", models["ocr_det"], work)
    rec = ref.paddlex_predictor("ocr_rec", models["ocr_rec"], work, batch_size=6)
    textline = ref.paddlex_predictor("textline", models["textline"], work, batch_size=6)
    return [ref.paddlex_ocr(det, rec, img, textline=textline) for img in _ocr_images()]


@pytest.fixture(scope="module")
def server(repo):
    from repogen.harness.server import launch

    with launch(repo) as srv:
        assert not any(srv.loaded.values()), srv.loaded
        yield srv


def _infer(server, protocol: str, model: str, img: np.ndarray | bytes, raw: bool = False) -> dict:
    if protocol == "http":
        import tritonclient.http as client_mod
        client = client_mod.InferenceServerClient(server.http_url.replace("http://", ""))
    else:
        import tritonclient.grpc as client_mod
        client = client_mod.InferenceServerClient(server.grpc_url.replace("grpc://", ""))
    if raw:
        inp = client_mod.InferInput("image_raw", [1, *img.shape], "UINT8")
        inp.set_data_from_numpy(img[None])
    else:
        data = img if isinstance(img, bytes) else inputs.encode(img)
        inp = client_mod.InferInput("image", [1, 1], "BYTES")
        inp.set_data_from_numpy(np.array([[data]], dtype=np.object_))
    res = client.infer(model, [inp])
    outs = [o["name"] if isinstance(o, dict) else o.name for o in
            (res.get_response()["outputs"] if protocol == "http" else res.get_response().outputs)]
    got = {}
    for name in outs:
        arr = res.as_numpy(name)[0]
        got[name] = [b.decode() for b in arr] if arr.dtype == np.object_ else arr
    return got


def _same(kind: str, got: dict, want: dict) -> None:
    if kind == "ocr_system":
        assert got["texts"] == want["texts"]
        assert got["boxes"].shape == want["boxes"].shape and np.abs(got["boxes"] - want["boxes"]).max(initial=0) <= 1
        np.testing.assert_allclose(got["scores"], want["scores"], atol=1e-4)
    elif kind == "ocr_det":
        assert got["boxes"].shape == want["boxes"].shape and np.abs(got["boxes"] - want["boxes"]).max(initial=0) <= 1
        np.testing.assert_allclose(got["scores"], want["scores"], atol=1e-4)
    elif kind in ("cls", "textline"):
        assert got["labels"] == want["labels"] and np.array_equal(got["class_ids"], want["class_ids"])
        np.testing.assert_allclose(got["scores"], want["scores"], atol=1e-4)
    elif kind == "ocr_rec":
        assert got["texts"] == want["texts"]
        np.testing.assert_allclose(got["scores"], want["scores"], atol=1e-4)
    elif kind in ("det", "layout"):
        assert got["labels"] == want["labels"] and np.array_equal(got["label_ids"], want["label_ids"])
        assert got["boxes"].shape == want["boxes"].shape and np.abs(got["boxes"] - want["boxes"]).max(initial=0) <= 1
        np.testing.assert_allclose(got["scores"], want["scores"], atol=1e-4)
    else:
        assert np.array_equal(got["label_map"], want["label_map"])


@pytest.mark.parametrize("protocol", ["http", "grpc"])
@pytest.mark.parametrize("kind", KINDS)
def test_pipeline_matches_paddlex(server, expected, kind, protocol):
    found = 0
    for img, want in zip(_images(kind), expected[kind]):
        got = _infer(server, protocol, f"{NAME[kind]}_pipeline", img)
        _same(kind, got, want)
        found += len(got.get("boxes", got.get("texts", got.get("label_map", got.get("labels", [])))))
    assert found > 0  # the generated images give the pipelines something to find


def test_raw_uint8_input_matches(server, expected):
    for kind in ("ocr_det", "det"):
        for img, want in zip(_images(kind), expected[kind]):
            _same(kind, _infer(server, "grpc", f"{NAME[kind]}_pipeline_raw", np.ascontiguousarray(img), raw=True), want)


def test_concurrent_clients_never_mix(server, expected):
    jobs = [(k, i) for k in KINDS for i in range(3)] * 2
    failures: list[str] = []

    def client(offset: int) -> None:
        for n in range(len(jobs)):
            kind, i = jobs[(n + offset) % len(jobs)]
            try:
                _same(kind, _infer(server, "grpc" if n % 2 else "http", f"{NAME[kind]}_pipeline", _images(kind)[i]),
                      expected[kind][i])
            except AssertionError as exc:
                failures.append(f"{kind}[{i}]: {exc}")

    threads = [threading.Thread(target=client, args=(3 * t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not failures, failures[:3]


def test_bad_input_fails_alone_and_server_keeps_serving(server, expected):
    import cv2
    from tritonclient.utils import InferenceServerException

    one = cv2.imencode(".png", np.zeros((1, 1, 3), np.uint8))[1].tobytes()
    wide = cv2.imencode(".png", np.full((12, 20000, 3), 255, np.uint8))[1].tobytes()
    cases = [(b"", "empty image bytes"), (b"GIF89a not really", "cannot decode"), (one, "at least 8 pixels"),
             (wide, "at most 10000 pixels")]
    for protocol in ("http", "grpc"):
        for data, message in cases:
            with pytest.raises(InferenceServerException, match=message):
                _infer(server, protocol, f"{NAME['ocr_det']}_pipeline", data)
        with pytest.raises(InferenceServerException, match="at least 8 pixels"):
            _infer(server, protocol, "det_pipeline_raw", np.zeros((1, 1, 3), np.uint8), raw=True)
        with pytest.raises(InferenceServerException, match="unexpected shape"):  # Triton checks the channels
            _infer(server, protocol, "det_pipeline_raw", np.zeros((20, 20, 2), np.uint8), raw=True)
    _same("ocr_det", _infer(server, "grpc", f"{NAME['ocr_det']}_pipeline", _images("ocr_det")[0]), expected["ocr_det"][0])


def test_repository_layout(repo):
    from repogen.repository.config import parse_config

    for name in (NAME[k] for k in KINDS):
        for suffix in ("_pre", "_post", "_pipeline", "_pipeline_raw"):
            cfg = parse_config((repo / f"{name}{suffix}" / "config.pbtxt").read_text(), name + suffix)
            assert cfg.name == name + suffix
            if suffix.startswith("_pipeline"):
                assert cfg.platform == "ensemble" and [s.model_name for s in cfg.ensemble_scheduling.step] == \
                    [f"{name}_pre", name, f"{name}_post"]
            else:
                assert cfg.backend == "python" and (repo / f"{name}{suffix}" / "1" / "pipeline_ops.py").is_file()
    # detectors return one [M, 6] block for the whole batch: never batched across requests
    for kind in ("det", "layout"):
        assert not parse_config((repo / NAME[kind] / "config.pbtxt").read_text(), kind).HasField("dynamic_batching")
    # the served code is the tested module, byte for byte
    from repogen.pipelines import ops
    assert (repo / f"{NAME['ocr_det']}_pre" / "1" / "pipeline_ops.py").read_bytes() == Path(ops.__file__).read_bytes()


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_ocr_system_matches_paddlex_chain(server, expected_ocr, protocol):
    lines = 0
    for img, want in zip(_ocr_images(), expected_ocr):
        got = _infer(server, protocol, "ocr_system", img)
        _same("ocr_system", got, want)
        lines += sum(1 for t in got["texts"] if t)
    assert lines >= 10  # real lines found and read (not empty answers that trivially agree)
    assert len({len(w["texts"]) for w in expected_ocr}) > 1  # images differ, so mixing would show


def test_ocr_system_16_concurrent_clients_no_mixing(server, expected_ocr):
    images = _ocr_images()
    failures: list[str] = []

    def client(k: int) -> None:
        for n in range(4):
            i = (k + n) % len(images)
            try:
                _same("ocr_system", _infer(server, "grpc" if (k + n) % 2 else "http", "ocr_system", images[i]),
                      expected_ocr[i])
            except AssertionError as exc:
                failures.append(f"client {k} image {i}: {exc}")

    threads = [threading.Thread(target=client, args=(k,)) for k in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not failures, failures[:3]
    from tritonclient.utils import InferenceServerException

    with pytest.raises(InferenceServerException, match="cannot decode"):
        _infer(server, "grpc", "ocr_system", b"\x89PNG broken")
    _same("ocr_system", _infer(server, "grpc", "ocr_system", images[0]), expected_ocr[0])


def test_validate_hook_passes_every_pipeline_and_times_them(server, repo):
    from repogen.harness.pipelines import pipeline_folders, validate_pipelines

    names = pipeline_folders(repo, sorted(p.name for p in repo.iterdir()))
    assert "ocr_system" in names and "det_pipeline" in names and "seg_post" in names and "det" not in names
    system = json.loads((repo / "ocr_system" / "1" / "pipeline.json").read_text())
    assert [system[k]["model"] for k in ("det", "rec", "cls")] == [NAME["ocr_det"], NAME["ocr_rec"], NAME["textline"]]
    reports = {r.model: r for r in validate_pipelines(server, repo, names, concurrency=(2,), requests=4)}
    assert all(r.ok for r in reports.values()), {n: r.failures for n, r in reports.items() if not r.ok}
    checked = reports[f"{NAME['layout']}_pipeline"].checks
    assert {c.protocol for c in checked} == {"http", "grpc"} and len(checked) == 6 and all(c.ok for c in checked)
    # timed by the harness's one measurer (repogen.harness.speed): a row per concurrency level
    (run,) = reports["ocr_system"].speed
    assert run.concurrency == 2 and run.verdict in ("stable", "unstable") and not run.errors, run
    assert run.requests >= 4 and run.throughput_rps > 0 and 0 < run.p50_ms <= run.p95_ms <= run.p99_ms
    assert set(run.stage_server_us) >= {"ocr_system", NAME["ocr_det"]}
    # a page's recognizer batches overlap on the server: the system's own share is reported only where the
    # members' times fit inside the system's (repogen.harness.pipelines.pre_post_share)
    members = sum(v for k, v in run.stage_server_us.items() if k != "ocr_system")
    if members <= run.stage_server_us["ocr_system"]:
        assert 0 <= run.pre_post_share < 1, run
    else:
        assert run.pre_post_share is None, run


def test_pipeline_answers_are_judged_by_the_task_rules():
    """validate judges a served pipeline's answer with the verification core's task rules: a box moved by more
    than a pixel, a changed score, label or text, or a missing box fail; a sub-pixel move passes."""
    from repogen.harness.pipelines import judge

    boxes = np.array([[10, 10, 60, 40], [80, 20, 140, 90]], np.float32)
    want = {"boxes": boxes, "scores": np.array([0.5, 0.6], np.float32), "labels": ["a", "b"],
            "label_ids": np.array([0, 1], np.int32)}
    cfg = {"post": {"threshold": 0.3}}
    assert judge("detection", dict(want), want, cfg).passed
    assert judge("detection", want | {"boxes": boxes + 0.9}, want, cfg).passed
    assert not judge("detection", want | {"boxes": boxes + 1.5}, want, cfg).passed
    assert not judge("detection", want | {"scores": want["scores"] + 2e-2}, want, cfg).passed
    assert not judge("detection", want | {"labels": ["a", "c"], "label_ids": np.array([0, 2], np.int32)}, want,
                     cfg).passed
    assert not judge("detection", {k: v[:1] for k, v in want.items()}, want, cfg).passed
    assert not judge("ocr_rec", {"texts": ["ab"], "scores": [0.1]}, {"texts": ["ac"], "scores": [0.1]}, {}).passed

def test_classification_extension_uses_label_list(server, repo):
    import tritonclient.grpc as g

    cli = g.InferenceServerClient(server.grpc_url.replace("grpc://", ""))
    x = np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32)
    inp = g.InferInput("x", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    out_name = [o.name for o in cli.get_model_metadata(NAME["cls"]).outputs][0]
    res = cli.infer(NAME["cls"], [inp], outputs=[g.InferRequestedOutput(out_name, class_count=2)])
    entries = [e.decode().split(":") for e in res.as_numpy(out_name).reshape(-1)]
    labels = (repo / NAME["cls"] / "labels.txt").read_text().split()
    assert len(entries) == 2 and all(e[2] == labels[int(e[1])] for e in entries)
    assert float(entries[0][0]) >= float(entries[1][0])


def test_harness_validates_the_detector_itself(server, repo):
    """The detector's [M, 6] box block is not split by batch row: the manifest says so and the harness
    compares each request (batched or not) with Paddle's run of that same request."""
    from repogen.harness.model_files import read_model_folder
    from repogen.harness.validate import validate_model

    manifest = json.loads((repo / "det" / "repogen.json").read_text())
    assert manifest["detections"] == {"fetch_name_0": "rows"}
    report = validate_model(server, read_model_folder(repo / "det"), concurrency=(1,), requests=4, speed=False)
    assert report.ok, report.failures[:3]
