"""Top-down keypoint pipelines (issue 28, item 3): a PaddleDetection HRNet-style export (``TopDownEvalAffine`` in
its ``infer_cfg.yml``, heatmaps [N, K, H, W] plus arg-max indices, saved by Paddle itself) builds its pipeline
with no flags, ``repogen validate`` passes through the bundled tritonserver, and the served keypoints equal
PaddleX's keypoint predictor (``PP-TinyPose``'s KptRunnerPredictor: TopDownAffine, DARK decoding, the inverse
transform) on generated images, for the whole image and for person boxes as PaddleX's keypoint pipeline crops
them. A wrong decoding (no DARK step, swapped x/y, an unpadded box) fails the comparison."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from repogen.errors import ConfigError
from repogen.examples import pipeline_exports as exports
from repogen.verify import inputs
from repogen.verify.tasks import compare_answers

ref = pytest.importorskip("tests.support.pipeline_reference")
pytestmark = pytest.mark.timeout(420)
e2e = pytest.mark.e2e  # the tests that start the bundled tritonserver


def _images() -> list[np.ndarray]:
    # wide, tall and square images: the whole-image crop keeps each one's own aspect ratio
    return [inputs.shapes_image(i, size) for i, size in enumerate([(150, 220), (260, 140), (181, 181)])]


def _boxes(img: np.ndarray) -> list[np.ndarray]:
    """Person boxes inside, across and partly outside the image (PaddleX pads what lies outside with zeros)."""
    h, w = img.shape[:2]
    return [np.array([w * 0.2, h * 0.1, w * 0.6, h * 0.95], np.float32),
            np.array([w * 0.05, h * 0.4, w * 0.95, h * 0.6], np.float32),
            np.array([-10.5, h * 0.5, w * 0.3, h + 20.25], np.float32)]


# -- the processors against PaddleX's own classes --------------------------------------------------------------------

def test_crop_and_decoding_identical_to_paddlex():
    from paddlex.inference.models.keypoint_detection import processors as kp

    from repogen.pipelines import ops

    ref._bind_cv2()
    rng = np.random.default_rng(0)
    shifted = 0
    for case in range(120):
        h, w = (int(v) for v in rng.integers(12, 300, 2))
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        size = [int(rng.integers(16, 200)), int(rng.integers(16, 200))]
        udp = bool(rng.random() < 0.3)
        data = {"img": img}
        box = None
        if case % 2:
            x1, y1 = rng.uniform(-20, w), rng.uniform(-20, h)
            box = np.array([x1, y1, x1 + rng.uniform(1, 200), y1 + rng.uniform(1, 200)], np.float32)
            holder = type("P", (), {"input_size": size})()
            data = ref.paddlex_person_crop(holder, img, box)
        want = kp.TopDownAffine(size, use_udp=udp)([data])[0]
        got = ops.preprocess(img, [{"op": "topdown_affine", "size_wh": size, "use_udp": udp}],
                             None if box is None else ops.person_box(box))
        assert np.array_equal(got["img"], want["img"]), case
        assert np.array_equal(got["center"], want["center"]) and np.array_equal(got["scale"], want["scale"]), case

        k, hh, ww = int(rng.integers(1, 20)), int(rng.integers(4, 64)), int(rng.integers(4, 64))
        heat = rng.standard_normal((k, hh, ww)).astype(np.float32)
        if case % 3:  # smooth maps, as trained heatmaps are: DARK moves interior peaks by sub-pixel steps
            import cv2
            heat = np.stack([cv2.GaussianBlur(m, (7, 7), 2) for m in heat]).astype(np.float32)
        dark = case % 5 != 0
        info = ops.info_vector(got)
        assert info.dtype == np.float64
        out = kp.KptPostProcess(use_dark=dark).apply(heat.copy(), want["center"], want["scale"])[0]
        kpts, score = ops.keypoint_postprocess(heat, info[:2], info[2:], use_dark=dark)
        assert np.array_equal(kpts, out["keypoints"]) and np.float32(score) == out["kpt_score"], case
        plain, _ = ops.keypoint_postprocess(heat, info[:2], info[2:], use_dark=False)
        shifted += not np.array_equal(plain, kpts)
    assert shifted > 50  # the decoding choice matters on most cases: the equality above is not vacuous


def test_person_box_is_checked():
    from repogen.pipelines import ops

    assert ops.person_box(np.array([[1, 2, 3, 4]], np.float32)) == (1.0, 2.0, 3.0, 4.0)
    for bad, message in (([1, 2, 3], "4 finite numbers"), ([0, 0, np.nan, 5], "4 finite numbers"),
                         ([5, 0, 5, 9], "empty"), ([0, 9, 5, 2], "empty")):
        with pytest.raises(ops.InputError, match=message):
            ops.person_box(np.array(bad, np.float32))


# -- the deploy config ------------------------------------------------------------------------------------------------

def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "infer_cfg.yml"
    path.write_text(text, encoding="utf-8")
    return path


def test_deploy_config_of_a_topdown_export(tmp_path):
    from repogen.pipelines.deploy_config import is_unsupported, read_deploy_config, read_model_facts

    cfg = read_deploy_config(_write(tmp_path, exports.KEYPOINT_YML))
    assert (cfg.kind, cfg.fmt, cfg.arch, cfg.color, cfg.labels) == ("keypoint", "paddledet", "HRNet", "RGB",
                                                                     ["keypoint"])
    assert [t["op"] for t in cfg.transforms] == ["topdown_affine", "normalize", "to_chw"]
    assert cfg.transforms[0] == {"op": "topdown_affine", "size_wh": [96, 128], "use_udp": False}
    assert cfg.post == {"use_dark": True}
    # the crop fixes the model's input size, whatever the export's input shape says: no pixel budget
    from repogen.build import budget

    assert budget.fixed_size(cfg.transforms) and not budget.source_sized(cfg.transforms)
    # served alone (--no-pipeline), a keypoint model batches: its heatmaps are split by batch row
    assert read_model_facts(tmp_path / "infer_cfg.yml").kind == "model"

    bad = exports.KEYPOINT_YML.replace("trainsize: [96, 128]", "trainsize: [96]")
    with pytest.raises(ConfigError, match=r"Preprocess\[0\]\.TopDownEvalAffine\.trainsize: expected at least 2"):
        read_deploy_config(_write(tmp_path, bad))
    bad = exports.KEYPOINT_YML.replace("trainsize: [96, 128]", "use_udp: true")
    with pytest.raises(ConfigError, match=r"TopDownEvalAffine needs trainsize"):
        read_deploy_config(_write(tmp_path, bad))
    resized = exports.KEYPOINT_YML.replace("- type: Permute", "- type: Permute\n- {type: PadStride, stride: 32}")
    with pytest.raises(ConfigError, match="only sizing transform") as exc:
        read_deploy_config(_write(tmp_path, resized))
    assert is_unsupported(exc.value) and "\n" not in str(exc.value)


# -- built, served, validated, compared with PaddleX ------------------------------------------------------------------

@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return exports.save_model("keypoint", tmp_path_factory.mktemp("keypoint-export") / "keypoint")


@pytest.fixture(scope="module")
def repo(model, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("keypoint-repo") / "repo"
    # the user's command: no flags at all (the target falls back to paddle without TensorRT)
    proc = subprocess.run([sys.executable, "-m", "repogen.cli", "build", str(model), "--out", str(out), "--json"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    roles = {m["name"]: m["role"] for m in json.loads(proc.stdout)["models"]}
    assert roles == {"keypoint": "model", "keypoint_pre": "pre", "keypoint_post": "post",
                     "keypoint_pipeline": "pipeline", "keypoint_pipeline_raw": "pipeline"}
    return out


@pytest.fixture(scope="module")
def paddlex(model, tmp_path_factory):
    return ref.paddlex_predictor("keypoint", model, tmp_path_factory.mktemp("paddlex-keypoint"))


@pytest.fixture(scope="module")
def expected(paddlex) -> list[dict]:
    """PaddleX's answers: each image whole, then each with its person boxes."""
    out = [ref.paddlex_answer(paddlex, "keypoint", img) for img in _images()]
    for img in _images():
        out += [ref.paddlex_answer(paddlex, "keypoint", ref.paddlex_person_crop(paddlex, img, b)) for b in _boxes(img)]
    return out


def _cases() -> list[tuple[np.ndarray, np.ndarray | None]]:
    return [(img, None) for img in _images()] + [(img, b) for img in _images() for b in _boxes(img)]


@pytest.fixture(scope="module")
def server(repo):
    from repogen.harness.server import launch

    with launch(repo) as srv:
        assert not any(srv.loaded.values()), srv.loaded
        yield srv


def test_pipeline_files(repo):
    pre = json.loads((repo / "keypoint_pre" / "1" / "pipeline.json").read_text())
    assert pre["kind"] == "keypoint" and pre["heatmap_output"] == "fetch_name_0"
    assert "budget" not in pre  # the crop fixes the model's input size: every request costs the same
    text = (repo / "keypoint_pipeline" / "config.pbtxt").read_text()
    assert 'name: "box"' in text and "optional: true" in text
    # the model itself batches across requests (its heatmaps are split by batch row)
    assert "dynamic_batching" in (repo / "keypoint" / "config.pbtxt").read_text()


@e2e
@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_served_keypoints_equal_paddlex(server, expected, protocol):
    from repogen.harness.pipelines import client, infer

    mc = client(server.http_url if protocol == "http" else server.grpc_url, protocol)
    worst = 0.0
    for (img, box), want in zip(_cases(), expected):
        for model, raw in (("keypoint_pipeline", False), ("keypoint_pipeline_raw", True)):
            got = infer(mc, model, img, raw=raw, box=box)
            assert got["keypoints"].shape == (17, 3) and got["keypoints"].dtype == np.float32
            verdict = compare_answers("keypoint", got, want)
            assert verdict.passed, verdict.summary + "; " + "; ".join(verdict.details["problems"])
            worst = max(worst, float(np.abs(got["keypoints"] - want["keypoints"]).max()),
                        float(np.abs(got["kpt_score"] - want["kpt_score"]).max()))
    # the same processors and Paddle Inference on both sides: equal, not merely within the 1-pixel tolerance
    assert worst <= 1e-4, worst


@e2e
def test_validate_passes_through_the_bundled_server(repo, server):
    proc = subprocess.run([sys.executable, "-m", "repogen.cli", "validate", str(repo), "--server", server.http_url,
                           "--grpc-url", server.grpc_url, "--concurrency", "1", "--requests", "5", "--json"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-2000:])
    report = json.loads(proc.stdout)
    models = {m["model"]: m for m in report["models"]}
    assert report["ok"] and all(m["ok"] for m in models.values())
    assert set(models) == {"keypoint", "keypoint_pipeline", "keypoint_pipeline_raw", "keypoint_pre", "keypoint_post"}
    cases = [c["case"] for c in models["keypoint_pipeline"]["checks"]]
    assert any("with a box" in c for c in cases) and any("with a box" not in c for c in cases)


def test_wrong_decoding_fails_the_comparison(repo, expected):
    """The served decoding checked against PaddleX by the same rule validate uses: the right one passes, each
    wrong one (no DARK step, swapped x/y, the box without PaddleX's padding) fails it."""
    from repogen.harness.pipelines import Reference, _load
    from repogen.pipelines import ops

    cfg = _load(repo, "keypoint_pre")
    paddle = Reference(repo, "keypoint")
    failed = {"no_dark": 0, "swapped": 0, "unpadded": 0}
    try:
        for (img, box), want in zip(_cases(), expected):
            rgb = ops.raw_image(img, cfg["color"])
            state = ops.preprocess(rgb, cfg["transforms"], None if box is None else ops.person_box(box))
            heat = paddle.run(ops.model_feeds(state, cfg["roles"]))[cfg["heatmap_output"]][0]
            info = ops.info_vector(state)

            def answer(kpts: np.ndarray, score: float) -> dict:
                return {"keypoints": kpts, "kpt_score": np.array([score], np.float32)}

            right = ops.keypoint_postprocess(heat, info[:2], info[2:], use_dark=True)
            assert compare_answers("keypoint", answer(*right), want).passed
            no_dark = ops.keypoint_postprocess(heat, info[:2], info[2:], use_dark=False)
            failed["no_dark"] += not compare_answers("keypoint", answer(*no_dark), want).passed
            swapped = right[0][:, [1, 0, 2]]
            failed["swapped"] += not compare_answers("keypoint", answer(swapped, right[1]), want).passed
            if box is not None:  # the crop's scale without the 1.25 padding: every joint pulled towards the centre
                scale = info[2:] / ops.KEYPOINT_BOX_PADDING
                unpadded = ops.keypoint_postprocess(heat, info[:2], scale, use_dark=True)
                failed["unpadded"] += not compare_answers("keypoint", answer(*unpadded), want).passed
    finally:
        paddle.close()
    boxed = sum(box is not None for _, box in _cases())
    assert failed == {"no_dark": len(expected), "swapped": len(expected), "unpadded": boxed}, failed


@e2e
def test_bad_box_fails_alone(server, expected):
    from tritonclient.utils import InferenceServerException

    from repogen.harness.pipelines import client, infer

    img = _images()[0]
    for protocol in ("http", "grpc"):
        mc = client(server.http_url if protocol == "http" else server.grpc_url, protocol)
        for box, message in (([50, 10, 20, 90], "is empty"), ([0, 0, np.inf, 5], "4 finite numbers")):
            with pytest.raises(InferenceServerException, match=message) as exc:
                infer(mc, "keypoint_pipeline", img, box=np.array(box, np.float32))
            assert "400" in str(exc.value) or "INVALID_ARG" in str(exc.value)
        assert compare_answers("keypoint", infer(mc, "keypoint_pipeline", img), expected[0]).passed


def test_task_check_reads_keypoint_heatmaps(model, repo):
    """`repogen check`'s task level on a keypoint export: realistic crops through the config's own transforms,
    the heatmaps judged joint by joint (Paddle against itself passes; a heatmap moved by one column fails)."""
    from repogen.harness.pipelines import Reference
    from repogen.pipelines.deploy_config import read_deploy_config
    from repogen.verify.inputs import task_inputs
    from repogen.verify.tasks import task_check

    cfg = read_deploy_config(model / "infer_cfg.yml")
    paddle = Reference(repo, "keypoint")
    try:
        for task_input in task_inputs(cfg, ["image"]):
            assert task_input.feeds["image"].shape == (1, 3, 128, 96)
            want = paddle.run(task_input.feeds)
            assert task_check(cfg, task_input, want, want).passed
            moved = {**want, "fetch_name_0": np.roll(want["fetch_name_0"], 1, axis=-1)}
            assert not task_check(cfg, task_input, moved, want).passed
    finally:
        paddle.close()
