"""Task-level checks (repogen.verify.tasks) on trained and zoo-style models: a correct conversion (NumPy backend, FP32
and FP16) gives the user Paddle's answer after the pipeline's own post-processing, and a wrong conversion (a converter
of CONVERTERS wrapped here: a conv bias with its sign flipped, input channels swapped, an activation scaled) does not.

Paddle's outputs come from the reference runner (Paddle Inference in a child process) on realistic inputs from
repogen.verify.inputs; nothing is compared with values computed by the code under test. REPOGEN_SLOW_TESTS=1 adds
more pages and lines and every wrong conversion at both precisions.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from repogen.errors import ConfigError
from repogen.paddle import load_model
from repogen.examples import pipeline_exports as testing
from repogen.pipelines.deploy_config import find_deploy_config, read_deploy_config
from repogen.reference import ReferenceRunner
from repogen.trt import converter_table, numpy_trt
from repogen.trt.convert import convert_graph
from repogen.trt.passes import clean_graph
from repogen.trt.profiles import Profile
from repogen.trt.registry import load_converters
from repogen.verify.ties import network_scores, tie_sources
from repogen.verify import inputs as vi
from repogen.verify import tasks as vt
from support.trained_models import with_paddlex_configs

SLOW = os.environ.get("REPOGEN_SLOW_TESTS") == "1"


# -- running a model both ways ---------------------------------------------------------------------------------------

class Case:
    """One exported model with a deploy config: its cleaned graph, realistic inputs and Paddle's outputs on them."""

    def __init__(self, folder: Path, count: int | None = None):
        self.cfg = read_deploy_config(find_deploy_config(folder))
        self.graph = load_model(folder)
        self.cleaned = clean_graph(self.graph)
        self.inputs = vi.task_inputs(self.cfg, self.graph.inputs, count=count)
        t0 = time.perf_counter()
        with ReferenceRunner(self.graph.source) as runner:
            self.want = [runner.run(t.feeds) for t in self.inputs]
        self.paddle_s = time.perf_counter() - t0

    def converted(self, precision: str) -> list[dict[str, np.ndarray]]:
        """The NumPy-backend conversion's outputs on every input, keyed by graph output names."""
        out = []
        for t in self.inputs:
            profile = Profile({n: (a.shape,) * 3 for n, a in t.feeds.items()})
            conv = convert_graph(self.cleaned, numpy_trt, precision=precision, profiles=[profile], clean=False)
            got = numpy_trt.execute(conv.network, t.feeds)
            out.append({name: got[conv.outputs[i][0]] for i, name in enumerate(self.graph.outputs)})
        return out

    def tie_scores(self, precision: str) -> list[Any]:
        """For a model whose answer is an arg-max inside the graph: the scores it was picked from (our network's)."""
        ties = tie_sources(self.cleaned, self.graph.outputs[:1])
        if not ties:
            return [None] * len(self.inputs)
        src = next(iter(ties.values())).scores
        return [network_scores(self.cleaned, t.feeds, [src], precision)[src] for t in self.inputs]

    def verdict(self, precision: str) -> vt.TaskVerdict:
        scores = self.tie_scores(precision)
        return vt.combine([vt.task_check(self.cfg, t, got, want, precision=precision, tie_scores=s)
                           for t, got, want, s in zip(self.inputs, self.converted(precision), self.want, scores)])


# -- wrong conversions: a converter of the table wrapped for one op ----------------------------------------------------

def _out(op: Any) -> str:
    return next(n for names in op.outputs.values() for n in names)


def _with_const(ctx: Any, name: str, change: Callable[[np.ndarray], np.ndarray], convert: Callable[[], None]) -> None:
    base = ctx.const_value
    ctx.const_value = lambda n: change(base(n)) if n == name else base(n)
    try:
        convert()
    finally:
        del ctx.const_value


def bias_sign(target: str) -> Callable:
    """The conv producing ``target`` gets its bias with the sign flipped."""
    original = converter_table.CONVERTERS["conv2d"]

    def conv(ctx: Any, op: Any) -> None:
        if _out(op) != target:
            return original(ctx, op)
        _with_const(ctx, op.input("bias"), lambda b: -b, lambda: original(ctx, op))
    return conv


def channel_order(target: str) -> Callable:
    """The conv producing ``target`` reads its input channels in reverse order (BGR taken for RGB)."""
    original = converter_table.CONVERTERS["conv2d"]

    def conv(ctx: Any, op: Any) -> None:
        if _out(op) != target:
            return original(ctx, op)
        _with_const(ctx, op.input("filter"), lambda w: np.ascontiguousarray(w[:, ::-1]), lambda: original(ctx, op))
    return conv


def scaled(op_type: str, factor: float) -> Callable:
    """Every ``op_type`` output multiplied by ``factor`` (a wrong constant, epsilon or scale in a converter)."""
    original = converter_table.CONVERTERS[op_type]

    def convert(ctx: Any, op: Any) -> None:
        original(ctx, op)
        name = _out(op)
        t = ctx.tensors[name]
        c = ctx.const(np.full((1,) * len(t.shape), factor, np.float32))
        ctx.tensors[name] = ctx.network.add_elementwise(t, c, ctx.trt.ElementWiseOperation.PROD).get_output(0)
    return convert


def _convs(case: Case) -> list[Any]:
    return [op for op in case.cleaned.ops if op.type == "conv2d"]


def first_conv(case: Case) -> str:
    return _out(next(op for op in _convs(case) if op.input("input") in case.graph.inputs))


def conv_with_bias(case: Case, which: int) -> str:
    return _out([op for op in _convs(case) if op.input("bias") is not None][which])


@pytest.fixture
def wrong(monkeypatch):
    """wrong(op_type, converter): the table answers ``op_type`` with a wrong converter for this test only."""
    load_converters()

    def install(op_type: str, fn: Callable) -> None:
        monkeypatch.setitem(converter_table.CONVERTERS, op_type, fn)
    return install


# -- the official trained PP-OCR models ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Case]:
    folders = with_paddlex_configs(tmp_path_factory.mktemp("trained"))
    counts = {"det": 4 if SLOW else 2, "rec": 16 if SLOW else 4, "cls": 16 if SLOW else 8}
    return {role: Case(folders[role], counts[role]) for role in ("det", "rec", "cls")}


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("role", ["det", "rec", "cls"])
def test_trained_conversion_gives_paddles_answer(trained, role, precision):
    case = trained[role]
    t0 = time.perf_counter()
    v = case.verdict(precision)
    print(f"{role} {precision}: {v.summary} (conversion + run {time.perf_counter() - t0:.1f} s, "
          f"Paddle {case.paddle_s:.1f} s)")
    assert v.passed, v.details["problems"]
    assert v.kind == {"det": "ocr_det", "rec": "ocr_rec", "cls": "classification"}[role]
    d = v.details
    if role == "det":  # every line drawn on the pages found, corners on the same pixels as Paddle's
        drawn = sum(len(g.lines) for t in case.inputs for g in t.images)
        assert d["boxes"] >= drawn - 1 and d["boxes_matched"] == d["boxes"] and d["max_px"] <= 1
    elif role == "rec":
        assert d["texts_identical"] == d["texts"] == sum(t.batch for t in case.inputs)
    else:
        assert d["rows_identical"] + d["ties"] >= d["rows"] == sum(t.batch for t in case.inputs)
    assert v.to_dict()["passed"] is True


# role -> (what, which conv, precisions by default, precisions under REPOGEN_SLOW_TESTS=1) the task check rejects.
# The recognizer with its input channels swapped reads the same 16/16 texts; only its text scores move (<= 6e-3),
# which fails at fp32 (1e-4) but not at fp16, where a correct FP16 conversion moves them by up to 3.7e-2: at fp16
# that wrong conversion is invisible to the task (and to the element-wise rule: rel 7e-2 vs 8e-2 when correct).
MUTATIONS = {
    "det": [("bias_sign", -1, ("fp16",), ("fp32", "fp16")), ("channel_order", 0, (), ("fp32", "fp16"))],
    "rec": [("bias_sign", 0, (), ("fp32", "fp16")), ("channel_order", 0, ("fp32",), ("fp32",))],
    "cls": [("bias_sign", 0, ("fp16",), ("fp32", "fp16"))],
}


@pytest.mark.parametrize("role,what,which,precisions", [(r, w, i, slow if SLOW else fast)
                                                        for r, ms in MUTATIONS.items() for w, i, fast, slow in ms
                                                        if (slow if SLOW else fast)])
def test_trained_wrong_conversion_fails(trained, wrong, role, what, which, precisions):
    case = trained[role]
    target = first_conv(case) if what == "channel_order" else conv_with_bias(case, which)
    wrong("conv2d", (channel_order if what == "channel_order" else bias_sign)(target))
    for precision in precisions:
        v = case.verdict(precision)
        print(f"{role} {what} {precision}: {v.summary}")
        assert not v.passed, v.summary
        assert v.details["problems"]


# -- the zoo-style exports of repogen.examples.pipeline_exports ----------------------------------------------------------------

ZOO_KINDS = ("ocr_det", "ocr_rec", "det", "layout", "seg", "cls", "textline")


def _zoo_root() -> Path:
    """Saved once per definition of the exports (Paddle subprocesses take ~15 s for all of them)."""
    key = hashlib.sha1((testing._SAVE + repr(sorted(testing.MODELS.items())) + testing.ocr_rec_yml()).encode())
    return Path(tempfile.gettempdir()) / f"repogen-verify-zoo-{key.hexdigest()[:10]}"


@pytest.fixture(scope="module")
def zoo() -> dict[str, Case]:
    folders = testing.save_models(_zoo_root(), ZOO_KINDS)
    return {k: Case(folders[k]) for k in ZOO_KINDS}


@pytest.mark.parametrize("kind", ZOO_KINDS)
def test_zoo_conversion_gives_paddles_answer(zoo, kind):
    case = zoo[kind]
    for precision in ("fp32", "fp16"):
        v = case.verdict(precision)
        print(f"{kind} {precision}: {v.summary}")
        assert v.passed, (precision, v.details["problems"])
    assert v.kind == case.cfg.kind


# the zoo networks are untrained: their conv biases are Paddle's zero initialisation (a flipped sign changes
# nothing), so their wrong conversions swap input channels or scale an activation
ZOO_MUTATIONS = {
    "ocr_det": ("sigmoid", lambda case: scaled("sigmoid", 0.9)),
    "ocr_rec": ("conv2d", lambda case: channel_order(first_conv(case))),
    "det": ("conv2d", lambda case: channel_order(first_conv(case))),
    "layout": ("relu", lambda case: scaled("relu", 0.95)),
    "seg": ("conv2d", lambda case: channel_order(first_conv(case))),
    "cls": ("conv2d", lambda case: channel_order(first_conv(case))),
    "textline": ("relu", lambda case: scaled("relu", 0.95)),
}


@pytest.mark.parametrize("kind", ZOO_KINDS)
def test_zoo_wrong_conversion_fails(zoo, wrong, kind):
    case = zoo[kind]
    op_type, make = ZOO_MUTATIONS[kind]
    wrong(op_type, make(case))
    for precision in ("fp32", "fp16"):
        v = case.verdict(precision)
        print(f"{kind} wrong {op_type} {precision}: {v.summary}")
        assert not v.passed, v.summary


# -- the rules on constructed outputs: ties pass, anything beyond them fails -------------------------------------------

def test_classification_tie_at_the_cut_passes_a_real_difference_fails():
    want = np.array([[0.500000, 0.499996, 0.000004], [0.7, 0.2, 0.1]], np.float32)
    tied = np.array([[0.499996, 0.500000, 0.000004], [0.7, 0.2, 0.1]], np.float32)  # swapped, 4e-6 < 1e-5 x 0.5
    v = vt.check_classification(tied, want, 1, ["a", "b", "c"])
    assert v.passed and v.details["ties"] == 1, v.details
    apart = np.array([[0.49995, 0.50005, 0.0]], np.float32)
    assert not vt.check_classification(apart, apart[:, [1, 0, 2]], 1).passed  # 1e-4 apart: no tie at fp32
    assert vt.check_classification(apart, apart[:, [1, 0, 2]], 1, tol=vt.task_tolerance("fp16")).passed
    wrong = np.array([[0.5, 0.499996, 0.000004], [0.2, 0.7, 0.1]], np.float32)
    v = vt.check_classification(wrong, want, 2, ["a", "b", "c"])
    assert not v.passed and "row 1: top-1 b" in v.details["problems"][0]
    assert vt.check_classification(want + np.float32(0.01), want, 1).passed is False  # scores moved by 1e-2
    assert vt.check_classification(want + np.float32(0.001), want, 1, tol=vt.task_tolerance("fp16")).passed


def _blob_map(value: float, x0: int = 20, y0: int = 20, h: int = 64, w: int = 96) -> np.ndarray:
    m = np.zeros((1, 1, h, w), np.float32)
    m[0, 0, y0:y0 + 12, x0:x0 + 40] = value
    return m


def test_ocr_boxes_near_box_thresh_may_be_one_sided_moved_or_missing_boxes_fail():
    info = [np.array([64, 96, 1.0, 1.0], np.float32)]
    post = {"thresh": 0.3, "box_thresh": 0.6, "max_candidates": 1000, "unclip_ratio": 1.5}
    # Paddle's box scores 0.60003, ours 0.59997: a tie with box_thresh, kept on one side only
    v = vt.check_ocr_det(_blob_map(0.59997), _blob_map(0.60003), info, post)
    assert v.passed and v.details["near_threshold"] == 1 and v.details["boxes"] == 1, v.details
    v = vt.check_ocr_det(_blob_map(0.59), _blob_map(0.7), info, post)
    assert not v.passed and "missing box" in v.details["problems"][0]
    v = vt.check_ocr_det(_blob_map(0.7, x0=22), _blob_map(0.7), info, post)
    assert not v.passed and "moved 2 px" in v.details["problems"][0]
    v = vt.check_ocr_det(_blob_map(0.7, x0=21), _blob_map(0.7), info, post, vt.TaskTolerance(box_px=1.0))
    assert v.passed and v.details["max_px"] == 1


def test_detections_as_sets_with_nms_ties_and_threshold_ties():
    info = [np.array([100, 100, 1.0, 1.0], np.float32)]
    want = np.array([[0, 0.8, 10, 10, 50, 50], [1, 0.9, 60, 60, 90, 90]], np.float32)
    swapped = want[::-1].copy()
    v = vt.check_detection(swapped, want, info, ["a", "b"], 0.5)
    assert v.passed and v.details["boxes_matched"] == 2 and v.details["min_iou"] == 1.0
    # NMS kept an overlapping box of the same label with a tied score: either is right, where the model has NMS
    nms = np.array([[0, 0.80005, 14, 14, 54, 54], [1, 0.9, 60, 60, 90, 90]], np.float32)
    v = vt.check_detection(nms, want, info, ["a", "b"], 0.5, nms=True)
    assert v.passed and v.details["nms_ties"] == 1, v.details
    assert not vt.check_detection(nms, want, info, ["a", "b"], 0.5).passed  # no NMS: the box moved
    assert not vt.check_detection(nms + np.float32([0, 0.01, 0, 0, 0, 0]), want, info, ["a", "b"], 0.5,
                                  nms=True).passed
    # every box "tied": a wrong box regression, not NMS
    many = np.array([[0, 0.8, 10 * i, 0, 10 * i + 8, 8] for i in range(8)], np.float32)
    v = vt.check_detection(many + np.float32([0, 0, 2, 0, 2, 0]), many, info, ["a"], 0.5, nms=True)
    assert not v.passed and "more than ties explain" in v.details["problems"][0]
    # a 3-pixel box one pixel wider: IoU 0.75, yet every side within 1 px
    tiny = np.array([[0, 0.8, 10, 10, 13, 13]], np.float32)
    v = vt.check_detection(tiny + np.float32([0, 0, 0, 0, 1, 0]), tiny, info, ["a"], 0.5)
    assert v.passed and v.details["min_iou"] == 0.75
    assert not vt.check_detection(tiny + np.float32([0, 0, 0, 0, 2, 0]), tiny, info, ["a"], 0.5).passed
    relabeled = np.array([[1, 0.8, 10, 10, 50, 50], [1, 0.9, 60, 60, 90, 90]], np.float32)
    assert not vt.check_detection(relabeled, want, info, ["a", "b"], 0.5).passed
    # a box scored at the threshold may be on one side only; one well above it may not
    near = np.concatenate([want, [[1, 0.50004, 0, 0, 20, 20]]]).astype(np.float32)
    assert vt.check_detection(near, want, info, ["a", "b"], 0.5).details["near_threshold"] == 1
    far = np.concatenate([want, [[1, 0.7, 0, 0, 20, 20]]]).astype(np.float32)
    v = vt.check_detection(far, want, info, ["a", "b"], 0.5)
    assert not v.passed and "extra b box" in v.details["problems"][0]


def test_label_maps_equal_outside_ties():
    info = [np.array([4, 6, 1.0, 1.0], np.float32)]
    want = np.zeros((1, 3, 4, 6), np.float32)
    want[0, 1] = 1.0
    want[0, 2, 0, 0] = 1.0 - 1e-6  # pixel (0, 0): classes 1 and 2 tied
    got = want.copy()
    got[0, 2, 0, 0] = 1.0 + 1e-6
    v = vt.check_segmentation(got, want, info)
    assert v.passed and v.details["ties"] == 1 and v.details["pixels"] == 24, v.details
    got[0, 0, 3, 5] = 2.0  # pixel (5, 3): class 0 by a clear margin
    v = vt.check_segmentation(got, want, info)
    assert not v.passed and v.details["pixels_differ"] == 1 and "x=5, y=3" in v.details["problems"][0]
    # integer label maps: exact, unless the scores they were arg-maxed from show the tie
    lw, lg = want.argmax(1).astype(np.int32), got.argmax(1).astype(np.int32)
    lg[0, 3, 5] = lw[0, 3, 5]
    assert not vt.check_segmentation(lg, lw, info).passed
    assert vt.check_segmentation(lg, lw, info, scores=got).passed


def test_keypoints_at_the_same_peak_or_a_tie():
    want = np.zeros((1, 2, 8, 8), np.float32)
    want[0, 0, 2, 3] = 0.9
    want[0, 0, 5, 5] = 0.9 - 1e-6  # joint 0: two peaks of one height
    want[0, 1, 4, 4] = 0.8
    got = want.copy()
    got[0, 0, 5, 5] = 0.9 + 1e-6
    v = vt.check_keypoints(got, want)
    assert v.passed and v.details["ties"] == 1 and v.kind == "keypoint"
    got[0, 1, 4, 4], got[0, 1, 4, 6] = 0.1, 0.8
    v = vt.check_keypoints(got, want)
    assert not v.passed and "joint 1: at (x=6, y=4)" in v.details["problems"][0]


def test_texts_must_be_identical():
    chars = list("ab")
    want = np.zeros((1, 4, 4), np.float32)  # [blank, a, b, space]
    want[0, [0, 1, 2, 3], [1, 0, 2, 0]] = 1.0  # "a", blank, "b", blank -> "ab"
    assert vt.check_ocr_rec(want.copy(), want, chars).passed
    got = want.copy()
    got[0, 2] = [1, 0, 0, 0]  # the "b" step read as a blank
    v = vt.check_ocr_rec(got, want, chars)
    assert not v.passed and v.details["problems"] == ["line 0: 'a' != Paddle's 'ab'"]


def test_task_check_picks_outputs_from_the_deploy_config_and_combines(tmp_path):
    import json

    (tmp_path / "infer_cfg.yml").write_text(testing.PPDET_YML)
    cfg = read_deploy_config(tmp_path / "infer_cfg.yml")
    t = vi.task_inputs(cfg, ["im_shape", "image", "scale_factor"], count=1)[0]
    src_h, src_w = t.infos[0][:2]
    rows = np.array([[2, 0.9, 1, 2, src_w / 2, src_h / 2]], np.float32)
    num = np.array([1], np.int32)
    v = vt.task_check(cfg, t, {"num": num, "boxes": rows}, {"num": num, "boxes": rows})
    assert v.passed and v.kind == "detection" and v.summary.startswith("detections 1/1 matched")
    both = vt.combine([v, vt.task_check(cfg, t, {"num": num, "boxes": rows[:0]}, {"num": num, "boxes": rows})])
    assert not both.passed and both.details["boxes"] == 2 and both.details["boxes_matched"] == 1
    assert both.details["problems"][0].startswith("input 1: missing car box")
    assert json.loads(json.dumps(both.to_dict()))["passed"] is False
    with pytest.raises(ConfigError, match=r"\[M, 6\] box rows"):
        vt.task_check(cfg, t, {"num": num}, {"num": num})


# -- whole pages through the OCR system: the served pipeline's answers compared by the same rules --------------------

class _Model:
    """``run(feeds) -> {graph output: array}`` for repogen.pipelines.validate.ocr_answer: Paddle or a conversion."""

    def __init__(self, case: Case, precision: str | None, runner: ReferenceRunner | None = None):
        self.case, self.precision, self.runner = case, precision, runner

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = self.case.graph.outputs
        if self.runner is not None:  # Paddle may rename fetch targets; their order is the graph's
            return dict(zip(outputs, self.runner.run(feeds).values()))
        profile = Profile({n: (a.shape,) * 3 for n, a in feeds.items()})
        conv = convert_graph(self.case.cleaned, numpy_trt, precision=self.precision, profiles=[profile], clean=False)
        got = numpy_trt.execute(conv.network, feeds)
        return {name: got[conv.outputs[i][0]] for i, name in enumerate(outputs)}


def _ocr_system_config(trained: dict[str, Case]) -> dict[str, Any]:
    """What ensemble.system_models writes to the OCR system's pipeline.json for these three models."""
    det, rec, cls = (trained[r] for r in ("det", "rec", "cls"))
    shape = next(t["image_shape"] for t in rec.cfg.transforms if t["op"] == "rec_resize")
    return {"color": det.cfg.color,
            "det": {"transforms": det.cfg.transforms, "roles": {"x": "image"}, "output": det.graph.outputs[0],
                    "post": det.cfg.post},
            "rec": {"input": "x", "output": rec.graph.outputs[0], "image_shape": shape,
                    "characters": rec.cfg.characters, "use_space_char": True, "batch_size": 6},
            "cls": {"input": "x", "output": cls.graph.outputs[0], "transforms": cls.cfg.transforms,
                    "color": cls.cfg.color, "batch_size": 6}}


def test_fp16_ocr_system_reads_paddles_texts_on_pages(trained):
    """The issue's claim, checked here: the FP16 conversions of det, rec and cls, composed as the served OCR system
    composes them, read the same texts as Paddle on whole pages with upside-down lines, the texts that were drawn."""
    from repogen.harness.pipelines import ocr_answer

    cfg = _ocr_system_config(trained)
    pages = trained["det"].inputs[:1 if not SLOW else None]
    runners = {r: ReferenceRunner(trained[r].graph.source) for r in ("det", "rec", "cls")}
    try:
        paddle = [_Model(trained[r], None, runners[r]) for r in ("det", "rec", "cls")]
        fp16 = [_Model(trained[r], "fp16") for r in ("det", "rec", "cls")]
        verdicts = []
        for page in pages:
            img = page.images[0].image
            want = ocr_answer(cfg, *paddle[:2], img, paddle[2])
            got = ocr_answer(cfg, *fp16[:2], img, fp16[2])
            verdicts.append(vt.compare_answers("ocr_system", got, want, precision="fp16"))
            # upside-down lines turned by the classifier, then read as drawn, but for spaces (the Chinese model
            # drops some between Latin words) and an I read as l in a random code
            drawn = {ln.text.replace(" ", "") for ln in page.images[0].lines}
            read = {t.replace(" ", "") for t in want["texts"]}
            assert len(want["texts"]) == len(drawn) and len(read & drawn) >= len(drawn) - 1, (read, drawn)
    finally:
        for r in runners.values():
            r.close()
    v = vt.combine(verdicts)
    print(f"OCR system fp16: {v.summary}")
    assert v.passed, v.details["problems"]
    assert v.details["texts_identical"] == v.details["texts"] >= 6 and v.details["max_px"] <= 1


def test_served_answers_compare_by_the_same_rules():
    box = np.float32([[10, 10], [50, 10], [50, 30], [10, 30]])
    want = {"boxes": np.stack([box, box + 60]), "scores": np.float32([0.9, 0.6])}
    got = {"boxes": np.stack([box + 1]), "scores": np.float32([0.9])}
    v = vt.compare_answers("ocr_det", got, want, box_thresh=0.6)  # Paddle's second box: scored at box_thresh
    assert v.passed and v.details["near_threshold"] == 1 and v.details["max_px"] == 1
    assert not vt.compare_answers("ocr_det", got, want).passed  # no threshold known: a missing box
    system = {"boxes": want["boxes"], "texts": ["total", "42"], "scores": np.float32([0.99, 0.98])}
    v = vt.compare_answers("ocr_system", {**system, "texts": ["total", "4Z"]}, system)
    assert not v.passed and v.details["problems"] == ["box [[70, 70], [110, 70], [110, 90], [70, 90]]: '4Z' != "
                                                      "Paddle's '42'"]
    served = {"class_ids": np.int32([1, 0]), "scores": np.float32([0.500002, 0.5]), "labels": ["b", "a"]}
    ref = {"label_ids": np.int32([0, 1]), "scores": np.float32([0.500002, 0.5]), "labels": ["a", "b"]}
    assert vt.compare_answers("classification", served, ref).details["ties"] == 2
    maps = np.zeros((4, 4), np.int32)
    other = maps.copy()
    other[1, 2] = 3
    assert not vt.compare_answers("segmentation", {"label_map": other}, {"label_map": maps}).passed
    assert vt.compare_answers("segmentation", {"label_map": other}, {"label_map": maps}, tie_mask=other > 0).passed
    with pytest.raises(ConfigError, match="no answer comparison"):
        vt.compare_answers("pose", {}, {})
