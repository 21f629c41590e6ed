"""PaddleX layout exports as pipelines (issue 28 items 1-2).

* The layout post-processing (``ops.layout_postprocess``) against PaddleX's own ``DetPostProcess`` and
  ``LayoutAnalysisProcess`` on random box rows ([N, 6], [N, 7], [N, 8]) under every layout option.
* ``fill_profiles``: an input the Hpi section leaves out (``im_shape`` of PaddleX's DETR layout exports) gets its
  range from the transforms.
* Zoo equivalents of PP-DocLayout_plus-L (DETR head, Hpi without im_shape, PP-StructureV3's layout options),
  PP-DocLayoutV2 ([N, 8] rows with reading order, PaddleOCR-VL's options) and PP-DocLayout-S (PicoDet: image and
  scale_factor) build with no flags, ``repogen validate`` passes, and the served answers equal PaddleX's layout
  predictors on generated pages; wrong readings of the [N, 8] columns fail the same comparison.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from repogen.build.pipeline_stages import fill_profiles
from repogen.build.spec import ModelSpec
from repogen.errors import ConfigError
from repogen.examples import pipeline_exports as testing
from repogen.pipelines import ops
from repogen.pipelines.deploy_config import read_deploy_config
from repogen.verify import inputs
from repogen.verify.tasks import compare_answers

ref = pytest.importorskip("tests.support.pipeline_reference")
KINDS = ("layout_plus", "layout_v2", "layout_s")
SEEDS = range(150) if os.environ.get("REPOGEN_SLOW_TESTS") == "1" else range(12)  # random row sets per case
NAME = testing.MODEL_NAME
V2_LABELS = testing.DOCLAYOUT_V2_LABELS


# -- post-processing against PaddleX's processors ----------------------------------------------------------------

def _rows(seed: int, cols: int, labels: list[str], w: int = 320, h: int = 400) -> np.ndarray:
    """Box rows with what the layout steps act on: duplicates of a box under another class (layout NMS), boxes
    inside boxes (merge modes, overlap filtering), a whole-page image, tiny boxes, references, inline formulas,
    class -1, and for 7/8 columns reading-order positions (some shared, so the vote decides) and votes."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(4, 18))
    xy = rng.uniform(-20, w, (n, 2))
    wh = rng.uniform(2, 180, (n, 2))
    rows = np.concatenate([rng.integers(-1, len(labels), (n, 1)), rng.random((n, 1)), xy, xy + wh], axis=1)
    rows[0, :2] = [labels.index("text"), 0.97]  # something always survives the thresholds
    k = int(rng.integers(1, n))
    extra = [np.r_[rng.integers(0, len(labels)), rows[k, 1] - 0.01, rows[k, 2:6]],  # same box, other class
             np.r_[rows[k, 0], rng.random(), rows[k, 2:4] + 3, rows[k, 4:6] - 3],  # nested in it
             np.r_[labels.index("image"), 0.9, 0, 0, w, h],  # the whole page
             np.r_[labels.index("formula" if "formula" in labels else "inline_formula"), 0.8, rows[0, 2:4] + 1,
                   rows[0, 2:4] + 40],
             np.r_[labels.index("reference" if "reference" in labels else "text"), 0.85, 10, 10, 60, 70],
             np.r_[labels.index("chart"), 0.9, 10, 12, 61, 71], np.r_[labels.index("table"), 0.95, 8, 9, 62, 72]]
    rows = np.concatenate([rows, np.array(extra)])
    if cols > 6:
        order = rng.permutation(len(rows)).astype(np.float64)
        order[rng.integers(0, len(rows), 3)] = order[0]  # shared positions: the vote (column 8) decides
        rows = np.concatenate([rows, order[:, None], rng.random((len(rows), 1))], axis=1)[:, :cols]
    return rows.astype(np.float32)


OPTIONS = {
    "none": {},
    "class thresholds": {"class_thresholds": [[0, 0.3], [5, 0.6], [22, 0.45], [14, 0.2]]},
    "layout nms": {"nms": True},
    "merge large": {"merge_mode": "large"},
    "merge small": {"merge_mode": "small"},
    "merge per class": {"merge_mode": [[3, "large"], [5, "large"], [2, "small"], [8, "small"], [1, "union"]]},
    "unclip": {"unclip_ratio": [1.1, 0.95]},
    "unclip per class": {"unclip_ratio": [[22, [1.2, 1.05]], [5, [0.9, 1.3]]]},
    "PaddleOCR-VL": {"class_thresholds": [[i, 0.4 if i in (5, 6, 15, 17, 22, 23) else 0.5] for i in range(25)],
                     "nms": True, "unclip_ratio": [1.0, 1.0],
                     "merge_mode": [[i, "large" if i in (3, 5, 6, 15, 17) else "union"] for i in range(25)]},
}


def _paddlex_kwargs(opts: dict) -> dict:
    """The same options as PaddleX's predictor hands them to its processor (dicts keyed by class id)."""
    unclip = opts.get("unclip_ratio")
    if unclip and isinstance(unclip[0], list):
        unclip = {k: tuple(v) for k, v in unclip}
    merge = opts.get("merge_mode")
    return {"threshold": dict(opts["class_thresholds"]) if "class_thresholds" in opts else 0.4,
            "layout_nms": opts.get("nms", False), "layout_unclip_ratio": unclip,
            "layout_merge_bboxes_mode": dict(merge) if isinstance(merge, list) else merge}


def _paddlex_post(rows: np.ndarray, w: int, h: int, opts: dict, analysis: bool, labels: list[str]) -> list[dict]:
    datas = [{"ori_img_size": [w, h]}]
    if analysis:
        from paddlex.inference.models.layout_analysis.processors import LayoutAnalysisProcess

        # what LayoutAnalysisRunnerPredictor.process passes by default: rectangles, overlap filtering on
        return LayoutAnalysisProcess(labels=labels, scale_size=[800, 800])(
            [{"boxes": rows.copy()}], datas, layout_shape_mode="auto", filter_overlap_boxes=True,
            **_paddlex_kwargs(opts))[0]
    return ref.det_proc.DetPostProcess(labels=labels)([{"boxes": rows.copy()}], datas, **_paddlex_kwargs(opts))[0]


def _same_as_paddlex(got: dict, want: list[dict]) -> bool:
    orders = [d["order"] or 0 for d in want] if any("order" in d for d in want) else None
    return (got["labels"] == [d["label"] for d in want]
            and got["label_ids"].tolist() == [d["cls_id"] for d in want]
            and np.array_equal(got["scores"], np.array([d["score"] for d in want], np.float32))
            and np.array_equal(got["boxes"], np.array([d["coordinate"] for d in want], np.float32).reshape(-1, 4))
            and (orders is None or got["orders"].tolist() == orders))


# PaddleX's DetPostProcess reads 6, 7 or 8 columns; its LayoutAnalysisProcess (PP-DocLayoutV2/V3) 6 or 8
@pytest.mark.parametrize("cols, analysis", [(6, False), (7, False), (8, False), (6, True), (8, True)],
                         ids=["6-DetPostProcess", "7-DetPostProcess", "8-DetPostProcess", "6-LayoutAnalysisProcess",
                              "8-LayoutAnalysisProcess"])
@pytest.mark.parametrize("option", list(OPTIONS))
def test_layout_postprocess_matches_paddlex(option, cols, analysis):
    opts = OPTIONS[option]
    # PP-DocLayoutV2's classes for its processor; PP-DocLayout_plus-L's (with "formula", which merging treats
    # apart) for DetPostProcess
    labels = V2_LABELS if analysis else testing.DOCLAYOUT_PLUS_LABELS
    effects = 0
    for seed in SEEDS:
        rows = _rows(seed, cols, labels)
        w, h = (320, 400) if seed % 2 else (400, 320)
        want = _paddlex_post(rows, w, h, opts, analysis, labels)
        got = ops.layout_postprocess(rows, (h, w), labels, 0.4, analysis=analysis, **opts)
        assert _same_as_paddlex(got, want), (seed, got["labels"], [d["label"] for d in want])
        plain = ops.layout_postprocess(rows, (h, w), labels, 0.4, analysis=analysis)
        effects += option == "none" or not _same_as_paddlex(plain, want)
    assert effects >= 3  # the option changed the answer on several inputs: the comparison saw it at work


def test_wrong_row_readings_differ_from_paddlex():
    """Each misreading of PP-DocLayoutV2's [N, 8] rows gives answers PaddleX's processor does not: the
    comparison above would catch it."""
    wrong = {
        "ignore the order columns": lambda r: r[:, :6],
        "order by the vote": lambda r: r[:, [0, 1, 2, 3, 4, 5, 7, 6]],
        "order descending": lambda r: np.concatenate([r[:, :6], -r[:, 6:7], r[:, 7:]], axis=1),
        "rows of six": lambda r: r.reshape(-1)[:len(r) * 8 // 6 * 6].reshape(-1, 6),
    }
    for name, misread in wrong.items():
        caught = 0
        for seed in range(12):
            rows = _rows(seed, 8, V2_LABELS)
            want = _paddlex_post(rows, 320, 400, {}, True, V2_LABELS)
            caught += not _same_as_paddlex(ops.layout_postprocess(misread(rows), (400, 320), V2_LABELS, 0.4,
                                                                  analysis=True), want)
        assert caught >= 6, name


def test_task_check_reads_layout_rows(tmp_path):
    """The conversion check's task level (verify.tasks.task_check, what build and check judge a model on) reads
    [N, 8] rows with the deploy config's layout post-processing: Paddle's rows against themselves pass, rows whose
    reading order moved fail."""
    from repogen.verify.inputs import TaskInput
    from repogen.verify.tasks import task_check

    (tmp_path / "inference.yml").write_text(testing.LAYOUT_V2_YML, encoding="utf-8")
    cfg = read_deploy_config(tmp_path / "inference.yml")
    failed = 0
    for seed in range(6):
        rows = _rows(seed, 8, V2_LABELS)
        info = TaskInput(feeds={}, infos=[np.array([400, 320, 1, 1], np.float32)], images=[], label=f"page {seed}")
        assert task_check(cfg, info, {"rows": rows}, {"rows": rows}).passed
        moved = rows.copy()
        moved[:, 6] = -moved[:, 6]  # reading order reversed
        failed += not task_check(cfg, info, {"rows": moved}, {"rows": rows}).passed
    assert failed >= 4


def test_layout_options_read_from_inference_yml(tmp_path):
    (tmp_path / "inference.yml").write_text(testing.LAYOUT_V2_YML, encoding="utf-8")
    post = read_deploy_config(tmp_path / "inference.yml").post
    layout = post["layout"]
    assert post["threshold"] == 0.5 and layout["analysis"] is True and layout["nms"] is True
    assert dict(layout["class_thresholds"])[20] == 0.45 and len(layout["class_thresholds"]) == 25
    assert layout["unclip_ratio"] == [1.0, 1.0] and dict(layout["merge_mode"])[3] == "large"
    (tmp_path / "inference.yml").write_text(testing.LAYOUT_S_YML, encoding="utf-8")
    assert read_deploy_config(tmp_path / "inference.yml").post == {"threshold": 0.5}  # DetPostProcess as before
    bad = testing.LAYOUT_V2_YML.replace("3: large", "3: largest")
    (tmp_path / "inference.yml").write_text(bad, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"inference.yml: layout_merge_bboxes_mode"):
        read_deploy_config(tmp_path / "inference.yml")


# -- profiles: inputs the Hpi leaves out ------------------------------------------------------------------------------

def _graph(*inputs_: tuple[str, list[int]]) -> SimpleNamespace:
    values = [SimpleNamespace(name=n, shape=s) for n, s in inputs_]
    return SimpleNamespace(input_values=lambda: values)


def _spec() -> ModelSpec:
    return ModelSpec(source=Path("unused"), name="layout")


def test_inputs_the_hpi_omits_get_ranges_from_the_transforms(tmp_path):
    (tmp_path / "inference.yml").write_text(testing.LAYOUT_PLUS_YML, encoding="utf-8")
    cfg = read_deploy_config(tmp_path / "inference.yml")
    assert set(cfg.dynamic_shapes) == {"image", "scale_factor"}  # as PaddleX exports PP-DocLayout_plus-L
    graph = _graph(("im_shape", [-1, 2]), ("image", [-1, 3, -1, -1]), ("scale_factor", [-1, 2]))
    spec = fill_profiles(_spec(), graph, cfg)
    # im_shape: [batch, 2], the batch range the Hpi gives the image; image and scale_factor as the Hpi says
    assert spec.min_shapes == ["im_shape:1x2,image:1x3x800x800,scale_factor:1x2"]
    assert spec.opt_shapes == ["im_shape:1x2,image:1x3x800x800,scale_factor:1x2"]
    assert spec.max_shapes == ["im_shape:8x2,image:8x3x800x800,scale_factor:8x2"]
    # an omitted image input: the fixed 800x800 Resize decides its size
    cfg.dynamic_shapes = {"scale_factor": [[1, 2], [2, 2], [4, 2]]}
    spec = fill_profiles(_spec(), graph, cfg)
    assert spec.max_shapes == ["im_shape:4x2,image:4x3x800x800,scale_factor:4x2"]
    assert spec.opt_shapes == ["im_shape:2x2,image:2x3x800x800,scale_factor:2x2"]
    # a width the graph fixes wins (PaddleDetection 0.x's im_shape is [N, 3])
    spec = fill_profiles(_spec(), _graph(("im_shape", [-1, 3]), ("image", [-1, 3, -1, -1])), cfg)
    assert spec.max_shapes == ["im_shape:8x3,image:8x3x800x800"]  # no range of its inputs: batch 1 .. 8
    # two inputs that could each be the image: no guessing
    with pytest.raises(ConfigError, match=r"no range for input\(s\) \['extra', 'image'\].*which input takes the image"):
        fill_profiles(_spec(), _graph(("extra", [-1, 3, -1, -1]), ("image", [-1, 3, -1, -1])), cfg)


# -- the exports: built with no flags, validated, served as PaddleX answers --------------------------------------------

@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    return testing.save_models(tmp_path_factory.mktemp("layout-models"), KINDS)


@pytest.fixture(scope="module")
def repo(models, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("layout-repo") / "repo"
    proc = subprocess.run([sys.executable, "-m", "repogen.cli", "build", *(str(models[k]) for k in KINDS),
                           "--out", str(out), "--json"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert [m["name"] for m in report["models"] if m["role"] == "model"] == [NAME[k] for k in KINDS]
    return out


def _pages() -> list[np.ndarray]:
    sizes = [(416, 320), (320, 448), (512, 384)]
    return [inputs.text_page(inputs.sample_texts(8, 40 + i), 40 + i, size).image for i, size in enumerate(sizes)]


@pytest.fixture(scope="module")
def expected(models, tmp_path_factory) -> dict[str, list[dict]]:
    work = tmp_path_factory.mktemp("paddlex-layout")
    return {k: [ref.paddlex_answer(ref.paddlex_predictor(k, models[k], work), k, img) for img in _pages()]
            for k in KINDS}


@pytest.fixture(scope="module")
def server(repo):
    from repogen.harness.server import launch

    with launch(repo) as srv:
        assert not any(srv.loaded.values()), srv.loaded
        yield srv


def test_profiles_and_rows_of_the_built_repository(repo):
    from repogen.repository.config import parse_config

    cfg = parse_config((repo / NAME["layout_plus"] / "config.pbtxt").read_text(), NAME["layout_plus"])
    assert [i.name for i in cfg.input] == ["im_shape", "image", "scale_factor"]
    manifest = json.loads((repo / NAME["layout_plus"] / "repogen.json").read_text())
    assert "im_shape" in json.dumps(manifest.get("profiles"))  # a range the Hpi never gave
    v2 = json.loads((repo / f"{NAME['layout_v2']}_post" / "1" / "pipeline.json").read_text())
    assert v2["box_columns"] == 8 and v2["post"]["layout"]["analysis"] is True
    outputs = parse_config((repo / f"{NAME['layout_v2']}_pipeline" / "config.pbtxt").read_text(), "x").output
    assert [o.name for o in outputs] == ["boxes", "scores", "labels", "label_ids", "orders"]


def _served(server, protocol: str, kind: str, img: np.ndarray) -> dict:
    from repogen.harness.pipelines import client, infer

    url = server.http_url if protocol == "http" else server.grpc_url
    return infer(client(url, protocol), f"{NAME[kind]}_pipeline", img)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
@pytest.mark.parametrize("kind", KINDS)
def test_served_layout_answers_equal_paddlex(server, expected, kind, protocol):
    regions = 0
    for img, want in zip(_pages(), expected[kind]):
        got = _served(server, protocol, kind, img)
        verdict = compare_answers("detection", got, want, threshold=0.5)
        assert verdict.passed, verdict.summary
        assert got["labels"] == want["labels"]  # in PaddleX's sequence too (reading order for PP-DocLayoutV2)
        assert ("orders" in got) == (kind == "layout_v2")
        regions += len(want["labels"])
    assert regions >= 15  # pages with real answers, not empty ones that agree trivially
    if kind == "layout_v2":
        assert any(o > 1 for w in expected[kind] for o in w["orders"])  # a reading order, not one region


def test_wrong_column_reading_fails_the_comparison(server, repo, expected):
    """The served PP-DocLayoutV2 rows read wrongly (as [N, 6] rows, ignoring the order columns, the vote taken as a
    confidence) give answers the comparison with PaddleX refuses."""
    from repogen.harness.pipelines import Reference

    cfg = json.loads((repo / f"{NAME['layout_v2']}_post" / "1" / "pipeline.json").read_text())
    model = Reference(repo, NAME["layout_v2"])
    try:
        for img, want in zip(_pages(), expected["layout_v2"]):
            state = ops.preprocess(ops.raw_image(img, cfg["color"]), cfg["transforms"])
            rows = model.run(ops.model_feeds(state, cfg["roles"]))[cfg["boxes_output"]]
            info = ops.info_vector(state)
            right = ops.detection_answer(rows, (info[0], info[1]), cfg["labels"], cfg["post"])
            assert compare_answers("detection", right, want, threshold=0.5).passed
            as_six = ops.detection_answer(rows.reshape(-1)[:rows.size // 6 * 6].reshape(-1, 6), (info[0], info[1]),
                                          cfg["labels"], cfg["post"])
            no_order = ops.detection_answer(rows[:, :6], (info[0], info[1]), cfg["labels"], cfg["post"])
            # the vote taken as a confidence: highest first
            by_vote = ops.detection_answer(np.concatenate([rows[:, :6], -rows[:, 7:8], rows[:, 6:7]], axis=1),
                                           (info[0], info[1]), cfg["labels"], cfg["post"])
            for wrong in (as_six, no_order, by_vote):
                verdict = compare_answers("detection", wrong, want, threshold=0.5)
                assert not verdict.passed, verdict.summary
    finally:
        model.close()


def test_validate_passes_models_and_pipelines(server, repo):
    """What ``repogen validate`` runs on each folder (the harness's validate_model / validate_pipelines), timing
    left out: every pipeline (HTTP and gRPC, raw pixels too) against the reference chain, the layout analysis
    answers with their reading order, and the PicoDet model against Paddle at its profile's batch 1 and 8 (the
    800 x 800 DETR models take a minute each on the shared 2-core machine: the command test below does them)."""
    from repogen.harness.model_files import read_model_folder
    from repogen.harness.pipelines import pipeline_folders, validate_pipelines
    from repogen.harness.validate import validate_model

    report = validate_model(server, read_model_folder(repo / NAME["layout_s"]), concurrency=(1,), requests=4,
                            speed=False)
    assert report.ok, report.failures[:3]
    names = pipeline_folders(repo, sorted(p.name for p in repo.iterdir()))
    assert len(names) == 5 * len(KINDS)  # _pre, _post, _pipeline, _pipeline_raw, _paddlex
    reports = validate_pipelines(server, repo, names, concurrency=(1,), requests=4, speed=False)
    assert reports and all(r.ok for r in reports), {r.model: r.failures for r in reports if not r.ok}
    v2 = {r.model: r for r in reports}[f"{NAME['layout_v2']}_pipeline"]
    assert len(v2.checks) == 6 and all("orders" in c.output for c in v2.checks)


@pytest.mark.skipif(os.environ.get("REPOGEN_SLOW_TESTS") != "1", reason="slow (minutes): set REPOGEN_SLOW_TESTS=1")
def test_repogen_validate_command_passes(server, repo):
    """``repogen validate`` itself on all 15 folders (models at batch 1 and 8 against Paddle, pipelines, stages);
    timing levels are left out (a level over its 1 s budget is reported, not failed)."""
    names = ",".join(f"{NAME[k]}{s}" for k in KINDS for s in ("", "_pre", "_post", "_pipeline", "_pipeline_raw"))
    proc = subprocess.run([sys.executable, "-m", "repogen.cli", "validate", str(repo), "--server", server.http_url,
                           "--grpc-url", server.grpc_url, "--models", names, "--concurrency", "1", "--requests", "4",
                           "--level-budget-s", "1", "--json"], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
