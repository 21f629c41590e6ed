"""``repogen build --paddlex-pipeline OCR.yaml``: PaddleX's own pipeline config as the build's input.

The reference is ``paddlex.create_pipeline(config)`` on the same config (oneDNN off, as the other PaddleX
references): PaddleX's shipped ``OCR.yaml`` pointed at the official trained PP-OCRv4 exports
(tests/support/trained_models.py), served by the bundled tritonserver and compared answer by answer with
``repogen.verify.tasks.compare_answers`` on generated pages; a config with other values through repogen's
reference chain (the served system's steps in-process); the detection and classification pipelines' settings;
and the config errors (one line naming the file and the key path, exit 2).
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from repogen.errors import ConfigError
from repogen.pipelines.bounded_yaml import load_yaml_file
from repogen.verify import inputs
from repogen.verify.tasks import compare_answers

ref = pytest.importorskip("tests.support.pipeline_reference")
paddlex = pytest.importorskip("paddlex")
yaml = pytest.importorskip("yaml")
from tests.support.trained_models import with_paddlex_configs  # noqa: E402

pytestmark = [pytest.mark.timeout(900)]
SHIPPED = Path(paddlex.__file__).parent / "configs" / "pipelines"
TEXTLINE = "PP-LCNet_x0_25_textline_ori"  # PaddleX's text-line orientation predictor for the trained classifier


def _pages() -> list[np.ndarray]:
    """Generated pages: small ones, a wide one past the detector's own 960-pixel limit, lines upside down."""
    texts = inputs.sample_texts(14, seed=21)
    return [inputs.text_page(texts[0:4], 1, (300, 420)).image,
            inputs.text_page(texts[4:9], 2, (700, 1100), upside_down=[1]).image,
            inputs.text_page(texts[9:14], 3, (420, 360), upside_down=[0, 2]).image,
            inputs.text_image(["hello world", "Triton 42", "paddle"], 4, (240, 360))]


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("trained")
    found = with_paddlex_configs(root)
    textline = root / "textline"  # the v2 direction classifier under the name of PaddleX's textline predictor
    shutil.copytree(found["cls"], textline)
    yml = (textline / "inference.yml").read_text(encoding="utf-8")
    (textline / "inference.yml").write_text(yml.replace("ch_ppocr_mobile_v2.0_cls", TEXTLINE), encoding="utf-8")
    return {"det": found["det"], "rec": found["rec"], "cls": textline}


def _ocr_config(exports: dict[str, Path], textline_batch: int = 1, **changes: dict) -> dict:
    """PaddleX's shipped OCR.yaml with the SubModules pointing at the exports (model_name as their inference.yml
    says: PaddleX refuses a mismatch) and without the document pre-processor (models repogen does not build).

    ``textline_batch``: the orientation classifier's batch_size. The shipped 6 meets a PaddleX 3.7.2 bug: its
    classification predictor returns a batch's class ids as one array, which every result of the batch then
    carries, and the OCR pipeline reads element 0, so every crop of a batch is turned by the first crop's angle
    (test_paddlex_turns_a_batch_by_its_first_crop). repogen turns each crop by its own class; the comparisons use
    batches of one, where PaddleX does too."""
    cfg = load_yaml_file(SHIPPED / "OCR.yaml", "shipped config")
    cfg["use_doc_preprocessor"] = False
    sub = cfg["SubModules"]
    sub["TextDetection"].update(model_name="PP-OCRv4_mobile_det", model_dir=str(exports["det"]))
    sub["TextRecognition"].update(model_name="PP-OCRv4_mobile_rec", model_dir=str(exports["rec"]))
    sub["TextLineOrientation"].update(model_name=TEXTLINE, model_dir=str(exports["cls"]), batch_size=textline_batch)
    for key, value in changes.items():
        if key in sub:
            sub[key].update(value)
        else:
            cfg[key] = value
    return cfg


def _write(cfg: dict, path: Path) -> Path:
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return path


def _build(config: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "repogen.cli", "build", "--paddlex-pipeline", str(config),
                           "--out", str(out), "--target", "paddle", "--no-check", "--json", *extra],
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def shipped(exports, tmp_path_factory) -> tuple[dict, Path]:
    work = tmp_path_factory.mktemp("shipped")
    cfg = _ocr_config(exports)
    config = _write(cfg, work / "OCR.yaml")
    proc = _build(config, work / "repo")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return cfg, work / "repo"


@pytest.fixture(scope="module")
def expected(shipped) -> list[dict]:
    pipeline = ref.paddlex_pipeline(shipped[0])
    return [ref.paddlex_pipeline_answer(pipeline, img) for img in _pages()]


@pytest.fixture(scope="module")
def server(shipped):
    from repogen.harness.server import launch

    with launch(shipped[1]) as srv:
        yield srv


def test_build_takes_the_pipeline_configs_settings(shipped):
    cfg, repo = shipped
    det_cfg, rec_cfg = cfg["SubModules"]["TextDetection"], cfg["SubModules"]["TextRecognition"]
    system = json.loads((repo / "ocr_system" / "1" / "pipeline.json").read_text())
    assert [system[k]["model"] for k in ("det", "rec", "cls")] == ["PP-OCRv4_mobile_det", "PP-OCRv4_mobile_rec",
                                                                   TEXTLINE]
    (resize,) = [t for t in system["det"]["transforms"] if t["op"] == "det_resize"]
    # the config's values, not the model's inference.yml (resize_long 960, limit max)
    assert (resize["limit_side_len"], resize["limit_type"], resize["max_side_limit"]) == \
        (det_cfg["limit_side_len"], det_cfg["limit_type"], det_cfg["max_side_limit"])
    assert {k: system["det"]["post"][k] for k in ("thresh", "box_thresh", "unclip_ratio")} == \
        {k: det_cfg[k] for k in ("thresh", "box_thresh", "unclip_ratio")}
    assert system["rec"]["batch_size"] == rec_cfg["batch_size"]
    assert system["rec"]["score_thresh"] == rec_cfg["score_thresh"]


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_served_system_answers_as_create_pipeline(server, expected, protocol):
    from repogen.harness.pipelines import client, infer

    mc = client(server.http_url if protocol == "http" else server.grpc_url, protocol)
    lines = 0
    for i, (img, want) in enumerate(zip(_pages(), expected)):
        got = infer(mc, "ocr_system", img)
        verdict = compare_answers("ocr_system", got, want)
        assert verdict.passed, (i, verdict.details.get("problems"))
        assert list(got["texts"]) == want["texts"], i  # identical texts, in PaddleX's reading order
        assert np.abs(np.asarray(got["boxes"], np.float32) - want["boxes"]).max(initial=0) <= 1, i
        lines += len(want["texts"])
    assert lines >= 12  # real lines found and read


def test_the_models_own_settings_would_fail_the_check(exports, expected, tmp_path):
    """What a build from the models' inference.yml serves (PaddleX's own predictors, composed as its OCR pipeline
    composes them, with the models' settings) differs from create_pipeline(config) on a page: the check above can
    fail."""
    def predictor(name: str, folder: Path, batch_size: int = 1):
        return paddlex.create_model(model_name=name, model_dir=str(folder), device="cpu", engine="paddle_static",
                                    engine_config={"run_mode": "paddle", "cpu_threads": 1}, batch_size=batch_size)

    det = predictor("PP-OCRv4_mobile_det", exports["det"])
    rec = predictor("PP-OCRv4_mobile_rec", exports["rec"], 6)
    verdicts = [compare_answers("ocr_system", ref.paddlex_ocr(det, rec, img), want)
                for img, want in zip(_pages(), expected)]
    assert not all(v.passed for v in verdicts)


def test_paddlex_turns_a_batch_by_its_first_crop(shipped, expected):
    """The divergence the comparisons avoid, shown on PaddleX itself: with the shipped batch of 6 its OCR pipeline
    reads a page with one line upside down (the second) differently from batches of one, as the first crop's angle
    is applied to the whole batch. repogen's answer (batches of one or six alike) is the batch-of-one answer."""
    cfg = copy.deepcopy(shipped[0])
    cfg["SubModules"]["TextLineOrientation"]["batch_size"] = 6
    batched = ref.paddlex_pipeline_answer(ref.paddlex_pipeline(cfg), _pages()[1])
    assert not compare_answers("ocr_system", batched, expected[1]).passed


def test_other_values_through_the_reference_chain(exports, tmp_path):
    """Non-default values (a smaller max-side limit, thresholds, no orientation classifier, a score threshold that
    drops lines, recognition in pairs): repogen's reference chain for the built system (the served system's steps,
    in-process) answers as create_pipeline(config)."""
    from repogen.harness.pipelines import Reference, ocr_answer

    cfg = _ocr_config(exports, use_textline_orientation=False,
                      TextDetection={"limit_side_len": 480, "limit_type": "max", "thresh": 0.25, "box_thresh": 0.5,
                                     "unclip_ratio": 1.8},
                      TextRecognition={"batch_size": 2, "score_thresh": 0.97})
    proc = _build(_write(cfg, tmp_path / "OCR.yaml"), tmp_path / "repo")
    assert proc.returncode == 0, proc.stderr[-3000:]
    repo = tmp_path / "repo"
    system = json.loads((repo / "ocr_system" / "1" / "pipeline.json").read_text())
    assert "cls" not in system and not (repo / TEXTLINE).exists()
    pipeline = ref.paddlex_pipeline(cfg)
    det, rec = Reference(repo, system["det"]["model"]), Reference(repo, system["rec"]["model"])
    dropped = 0
    try:
        for i, img in enumerate(_pages()):
            want = ref.paddlex_pipeline_answer(pipeline, img)
            got = ocr_answer(system, det, rec, img)
            verdict = compare_answers("ocr_system", got, want)
            assert verdict.passed and got["texts"] == want["texts"], (i, verdict.details.get("problems"))
            dropped += len(list(pipeline.predict(img))[0]["dt_polys"]) - len(want["texts"])
    finally:
        det.close()
        rec.close()
    assert dropped > 0  # the score threshold really dropped lines


# -- errors: one line naming the file and the key path ------------------------------------------------------------

def _specs(config: Path, **options):
    from repogen.build.spec import BuildOptions, specs_from_options

    return specs_from_options(BuildOptions(paddlex_pipeline=str(config), **options))


@pytest.mark.parametrize("change, key", [
    ({"TextDetection": {"model_dir": None}}, "SubModules.TextDetection.model_dir: is null"),
    ({"use_doc_preprocessor": True}, "use_doc_preprocessor: true needs the document pre-processing"),
    ({"TextRecognition": {"model_name": "PP-OCRv5_server_rec"}}, "SubModules.TextRecognition.model_name"),
    ({"TextDetection": {"limit_type": "avg"}}, "SubModules.TextDetection.limit_type: expected 'max', 'min' or"),
    ({"TextDetection": {"thresh": 1.5}}, "SubModules.TextDetection.thresh: expected a value <= 1"),
    ({"TextRecognition": {"batch_size": "six"}}, "SubModules.TextRecognition.batch_size: expected an integer"),
    ({"text_type": "seal"}, "text_type: seal"),
    ({"TextRecognition": {"model_dir": "TEXTLINE", "model_name": TEXTLINE}},
     "SubModules.TextRecognition.model_dir: "),  # a classifier where the recogniser goes
])
def test_config_errors_name_the_key(exports, tmp_path, change, key):
    filled = {k: ({**v, "model_dir": str(exports["cls"])} if v.get("model_dir") == "TEXTLINE" else v)
              if isinstance(v, dict) else v for k, v in change.items()}
    config = _write(_ocr_config(exports, **copy.deepcopy(filled)), tmp_path / "OCR.yaml")
    with pytest.raises(ConfigError) as err:
        _specs(config)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{config}: ") and key in message, message
    if "TEXTLINE" in str(change):
        assert "is a textline model" in message and "not the ocr_rec model" in message


def test_cli_error_is_one_line_and_exit_2(exports, tmp_path):
    cfg = _ocr_config(exports)
    del cfg["SubModules"]["TextRecognition"]
    config = _write(cfg, tmp_path / "OCR.yaml")
    proc = _build(config, tmp_path / "repo")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"{config}: SubModules.TextRecognition is required" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "repogen.cli", "build", str(exports["det"]), "--paddlex-pipeline",
                           str(config), "--out", str(tmp_path / "repo")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "MODEL cannot be combined with --paddlex-pipeline" in proc.stderr
    unknown = _write({"pipeline_name": "PP-ChatOCRv4-doc", "SubModules": {}}, tmp_path / "chat.yaml")
    with pytest.raises(ConfigError, match=r"chat.yaml: pipeline_name 'PP-ChatOCRv4-doc' is not built by repogen"):
        _specs(unknown)


# -- the single-model pipelines ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_exports(tmp_path_factory) -> dict[str, Path]:
    from repogen.examples import pipeline_exports

    found = pipeline_exports.save_models(tmp_path_factory.mktemp("small"), ("layout", "cls", "seg"))
    # PaddleX reads a model's settings from inference.yml only: the PaddleSeg export's deploy.yaml under that name
    seg = found["seg"].parent / "seg_paddlex"
    shutil.copytree(found["seg"], seg)
    (seg / "deploy.yaml").rename(seg / "inference.yml")
    return {**found, "seg": seg}


@pytest.mark.parametrize("pipeline_name, key, kind, settings", [
    ("object_detection", "ObjectDetection", "layout", {"threshold": 0.05}),
    ("image_classification", "ImageClassification", "cls", {"topk": 3}),
    ("image_classification", "ImageClassification", "cls", {}),
    ("semantic_segmentation", "SemanticSegmentation", "seg", {}),
])
def test_single_model_pipelines_answer_as_create_pipeline(small_exports, tmp_path, pipeline_name, key, kind,
                                                           settings):
    from repogen.harness.pipelines import Reference, pipeline_answer

    cfg = load_yaml_file(SHIPPED / f"{pipeline_name}.yaml", "shipped config")
    sub = cfg["SubModules"][key]
    sub.update(model_name=ref.PADDLEX_NAMES[kind], model_dir=str(small_exports[kind]), **settings)
    proc = _build(_write(cfg, tmp_path / "pipeline.yaml"), tmp_path / "repo")
    assert proc.returncode == 0, proc.stderr[-3000:]
    name = ref.PADDLEX_NAMES[kind]  # the model is named as the config's model_name
    data = json.loads((tmp_path / "repo" / f"{name}_pre" / "1" / "pipeline.json").read_text())
    pipeline = ref.paddlex_pipeline(cfg)
    model = Reference(tmp_path / "repo", name)
    images = [inputs.shapes_image(i, (150 + 20 * i, 200 + 30 * i)) for i in range(3)] if kind in ("cls", "seg") \
        else [inputs.text_image(["hello world", "abc"], i, (220, 300)) for i in range(3)]
    from repogen.pipelines.deploy_config import find_deploy_config, read_deploy_config

    own = read_deploy_config(find_deploy_config(small_exports[kind])).post
    answers = below = 0
    try:
        for img in images:
            r = list(pipeline.predict(img))[0]
            got = pipeline_answer(data, model, img)
            if kind == "seg":
                want = {"label_map": np.asarray(r["pred"])[0].astype(np.int32)}
                verdict = compare_answers("segmentation", got, want)
                answers += want["label_map"].size
            elif kind == "cls":
                want = {"class_ids": np.asarray(r["class_ids"]).reshape(-1), "scores": np.asarray(r["scores"]),
                        "labels": list(r["label_names"])}
                verdict = compare_answers("classification", got, want)
                answers += len(want["labels"])
                assert len(got["labels"]) == settings.get("topk", 5)
            else:
                b = r["boxes"]
                want = {"boxes": np.array([d["coordinate"] for d in b], np.float32).reshape(-1, 4),
                        "scores": np.array([d["score"] for d in b], np.float32), "labels": [d["label"] for d in b],
                        "label_ids": np.array([d["cls_id"] for d in b], np.int32)}
                verdict = compare_answers("detection", got, want)
                answers += len(b)
                # boxes under the export's own draw_threshold: a build ignoring the setting would miss them
                below += int((want["scores"] < own["threshold"]).sum())
            assert verdict.passed, verdict.details.get("problems")
    finally:
        model.close()
    assert answers > 0 and (below > 0 or kind != "layout")
