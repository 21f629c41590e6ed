"""The one input generator (repogen.verify.inputs): seeded random tensors, and realistic inputs that trained models
read as drawn - the official PP-OCRv4 detector finds every rendered line, its recognizer reads them, the v2
direction classifier tells the upside-down ones - made into feeds by the deploy config's own pre-processing,
which PaddleX's processors reproduce."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from repogen.errors import ConfigError
from repogen.harness import model_files
from repogen.ir import Value
from repogen.examples import pipeline_exports as testing
from repogen.pipelines import ops
from repogen.pipelines.deploy_config import read_deploy_config
from repogen.reference import ReferenceRunner
from repogen.verify import conversion
from repogen.verify import inputs as vi
from support.trained_models import dictionary_characters, with_paddlex_configs


def _graph(*values: Value) -> SimpleNamespace:
    return SimpleNamespace(input_values=lambda: list(values))


GRAPH = _graph(Value("x", "float32", (-1, 3, 8, 8)), Value("ids", "int64", (-1, 5)), Value("mask", "bool", (-1, 5)),
               Value("h", "float16", (2, 2)))


def test_random_inputs_are_seeded_and_bounded():
    shapes = {"x": (2, 3, 8, 8), "ids": (2, 5), "mask": (2, 5)}
    a = vi.random_inputs(GRAPH, shapes, seed=3)
    assert {k: v.shape for k, v in a.items()} == {"x": (2, 3, 8, 8), "ids": (2, 5), "mask": (2, 5), "h": (2, 2)}
    assert {k: v.dtype for k, v in a.items()} == {"x": np.float32, "ids": np.int64, "mask": np.bool_,
                                                   "h": np.float16}
    assert a["x"].min() >= -1 and a["x"].max() < 1 and a["x"].std() > 0.4  # uniform on [-1, 1): std 0.577
    assert a["ids"].min() >= 0 and a["ids"].max() < 8  # valid rows of an 8-row embedding table
    b = vi.random_inputs(GRAPH, shapes, seed=3)
    c = vi.random_inputs(GRAPH, shapes, seed=4)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["x"], c["x"])
    # a dynamic non-batch dim without a shape is the user's to give
    with pytest.raises(ConfigError, match="--shape y:DIMS"):
        vi.random_inputs(_graph(Value("y", "float32", (1, -1))), {})


def test_check_harness_and_pipeline_tests_use_the_one_generator():
    shapes = {"x": (1, 3, 8, 8), "ids": (1, 5), "mask": (1, 5)}
    assert conversion.random_inputs is vi.random_inputs
    for dtype in (np.float32, np.int32, np.bool_):
        r1, r2 = np.random.default_rng(5), np.random.default_rng(5)
        assert np.array_equal(model_files.random_tensor(r1, dtype, [4, 3]), vi.random_array(r2, dtype, [4, 3]))


def test_texts_use_only_what_the_dictionary_and_the_fonts_have():
    texts = vi.sample_texts(50, seed=1, characters=list("0123456789"))
    assert texts and all(set(t) <= set("0123456789 ") for t in texts)
    assert vi.sample_texts(5, 2) == vi.sample_texts(5, 2) != vi.sample_texts(5, 3)
    joined = vi.sample_texts(30, 4, characters=list("abcdefghij"), spaces=False)
    assert all(" " not in t for t in joined)
    with pytest.raises(ConfigError, match="Hershey"):
        vi.sample_texts(3, characters=["中", "文"])


def test_pages_draw_lines_upside_down_where_asked():
    page = vi.text_page(["alpha 12", "beta", "gamma 345", "delta"], seed=2, size=(300, 400), upside_down=[1, 3])
    assert page.image.shape == (300, 400, 3) and page.image.dtype == np.uint8
    assert [ln.text for ln in page.lines] == ["alpha 12", "beta", "gamma 345", "delta"]
    assert [ln.upside_down for ln in page.lines] == [False, True, False, True]
    # tinted, not grey: a swapped channel order changes what a model sees
    assert np.abs(page.image[..., 0].astype(int) - page.image[..., 2]).mean() > 3
    paper = np.median(page.image)
    for ln in page.lines:  # dark ink inside each box on light paper
        x0, y0 = ln.box.min(0).astype(int)
        x1, y1 = ln.box.max(0).astype(int)
        assert page.image[y0:y1, x0:x1].min() < paper - 80
    line = vi.text_line("upside", seed=1, upside_down=True)
    assert np.array_equal(line.image[::-1, ::-1], vi.text_line("upside", seed=1).image)


# -- realistic inputs read by the official trained models ----------------------------------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return with_paddlex_configs(tmp_path_factory.mktemp("trained"))


def _run(folder, feeds_list):
    from repogen.paddle import load_model

    graph = load_model(folder)
    with ReferenceRunner(graph.source) as runner:
        return graph, [runner.run(f) for f in feeds_list]


def test_trained_detector_finds_every_drawn_line(trained):
    cfg = read_deploy_config(trained["det"] / "inference.yml")
    inputs = vi.task_inputs(cfg, ["x"], count=2)
    graph, outs = _run(trained["det"], [t.feeds for t in inputs])
    drawn = found = 0
    for t, out in zip(inputs, outs):
        boxes, _ = ops.db_postprocess(out[graph.outputs[0]][0], t.infos[0], **cfg.post)
        rects = np.array([[b[:, 0].min(), b[:, 1].min(), b[:, 0].max(), b[:, 1].max()] for b in boxes], float)
        for line in t.images[0].lines:
            drawn += 1
            x0, y0 = line.box.min(0)
            x1, y1 = line.box.max(0)
            ix = np.clip(np.minimum(rects[:, 2], x1) - np.maximum(rects[:, 0], x0), 0, None)
            iy = np.clip(np.minimum(rects[:, 3], y1) - np.maximum(rects[:, 1], y0), 0, None)
            found += bool(len(rects)) and float((ix * iy).max() / ((x1 - x0) * (y1 - y0))) > 0.6
    assert drawn >= 10 and any(ln.upside_down for t in inputs for ln in t.images[0].lines)
    assert found == drawn


def test_trained_recognizer_reads_the_drawn_texts(trained):
    cfg = read_deploy_config(trained["rec"] / "inference.yml")
    assert cfg.characters == dictionary_characters(trained["dict"])  # the Chinese PP-OCR dictionary
    inputs = vi.task_inputs(cfg, ["x"], count=8)
    graph, outs = _run(trained["rec"], [t.feeds for t in inputs])
    chars = ops.ctc_characters(cfg.characters, True)
    read = [txt for out in outs for txt in ops.ctc_decode(out[graph.outputs[0]], chars)[0]]
    drawn = [ln.text for t in inputs for g in t.images for ln in g.lines]
    assert len(drawn) == 8
    assert sum(r == d for r, d in zip(read, drawn)) >= 7, list(zip(read, drawn))


def test_trained_orientation_classifier_tells_upside_down_lines(trained):
    cfg = read_deploy_config(trained["cls"] / "inference.yml")
    inputs = vi.task_inputs(cfg, ["x"], count=8)
    assert [t.feeds["x"].shape for t in inputs] == [(8, 3, 48, 192)]  # the profile's max batch is 8
    graph, outs = _run(trained["cls"], [t.feeds for t in inputs])
    labels = [cfg.labels[int(i)] for out in outs for i in out[graph.outputs[0]].argmax(-1)]
    flipped = [g.lines[0].upside_down for t in inputs for g in t.images]
    assert sum(flipped) == 4
    assert labels == ["180_degree" if f else "0_degree" for f in flipped]


def test_detector_feeds_are_what_paddlex_preprocessing_makes(trained):
    ref = pytest.importorskip("tests.support.pipeline_reference")
    cfg = read_deploy_config(trained["det"] / "inference.yml")
    for t in vi.task_inputs(cfg, ["x"], count=2):
        img = t.images[0].image  # PP-OCR's DecodeImage img_mode is BGR: the image as drawn
        resized, shape = ref.textdet.DetResizeForTest(limit_side_len=960, limit_type="max")([img])
        norm = ref.textdet.NormalizeImage(scale=1 / 255, mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225],
                                          order="hwc")(resized)
        want = ref.common.ToCHWImage()(norm)[0]
        assert np.array_equal(t.feeds["x"][0], want)
        assert np.array_equal(t.infos[0], shape[0].astype(np.float32))


# -- every zoo-style export gets feeds its model takes ---------------------------------------------------------------

def test_task_inputs_fit_every_deploy_config_kind(tmp_path):
    for kind in ("ocr_det", "ocr_rec", "det", "layout", "seg", "cls", "textline"):
        folder = tmp_path / kind
        folder.mkdir()
        text = testing.ocr_rec_yml() if kind == "ocr_rec" else testing.MODELS[kind]
        (folder / testing.CONFIG_FILE[kind]).write_text(text)
        cfg = read_deploy_config(folder / testing.CONFIG_FILE[kind])
        names = ["im_shape", "image", "scale_factor"] if kind in ("det", "layout") else ["x"]
        inputs = vi.task_inputs(cfg, names, seed=1)
        assert inputs and all(set(t.feeds) == set(names) for t in inputs)
        for t in inputs:
            image = t.feeds["image" if kind in ("det", "layout") else "x"]
            assert image.dtype == np.float32 and image.ndim == 4 and image.shape[0] == t.batch == len(t.infos)
            for name, (lo, _, hi) in cfg.dynamic_shapes.items():  # inside the exporter's own profile
                assert all(a <= s <= b for a, s, b in zip(lo, t.feeds[name].shape, hi)), (kind, name)
            if kind == "det":  # PaddleDetection's [h, w] after resize (before PadStride) and the resize ratio
                resized = t.feeds["im_shape"][0]
                assert all(r <= s for r, s in zip(resized, image.shape[2:])) and image.shape[2] % 32 == 0
                assert max(resized) == 320  # Resize keep_ratio to [320, 320]
                assert np.allclose(t.feeds["scale_factor"][0], resized / t.images[0].image.shape[:2])
        what = {g.what.split()[0] for t in inputs for g in t.images}
        assert what == {"ocr_det": {"page"}, "ocr_rec": {"line"}, "det": {"shapes"}, "layout": {"page"},
                        "seg": {"shapes"}, "cls": {"shapes"}, "textline": {"line"}}[kind]
        if kind == "layout":  # PP-DocLayout's Resize to 480 x 480 without keeping the ratio
            assert all(t.feeds["image"].shape[2:] == (480, 480) for t in inputs)
