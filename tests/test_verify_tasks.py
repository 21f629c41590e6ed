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

from repogen.paddle import load_model
from repogen.pipelines import testing
from repogen.pipelines.deploy_config import find_deploy_config, read_deploy_config
from repogen.reference import ReferenceRunner
from repogen.trt import converter_table, numpy_trt
from repogen.trt.convert import convert_graph
from repogen.trt.passes import clean_graph
from repogen.trt.profiles import Profile
from repogen.trt.registry import load_converters
from repogen.trt.ties import network_scores, tie_sources
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
    counts = {"det": 4 if SLOW else 2, "rec": 16 if SLOW else 6, "cls": 16 if SLOW else 8}
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


MUTATIONS = {  # role -> (what, which conv, precision by default) the task check must reject
    "det": [("bias_sign", -1, "fp16"), ("channel_order", 0, "fp16")],
    "rec": [("bias_sign", 0, "fp32"), ("channel_order", 0, "fp32")],  # fp16 runs of the recognizer take ~10 s
    "cls": [("bias_sign", 0, "fp16")],
}


@pytest.mark.parametrize("role,what,which,precision", [(r, *m) for r, ms in MUTATIONS.items() for m in ms])
def test_trained_wrong_conversion_fails(trained, wrong, role, what, which, precision):
    case = trained[role]
    target = first_conv(case) if what == "channel_order" else conv_with_bias(case, which)
    wrong("conv2d", (channel_order if what == "channel_order" else bias_sign)(target))
    for precision in (("fp32", "fp16") if SLOW else (precision,)):
        v = case.verdict(precision)
        print(f"{role} {what} {precision}: {v.summary}")
        assert not v.passed, v.summary
        assert v.details["problems"]


def test_channel_order_is_invisible_to_the_orientation_classifier(trained, wrong):
    """The v2 direction classifier answers the same with its input channels swapped (labels and scores within
    2e-5 on the generated lines): a task check passes what the user cannot tell apart, an element-wise one may not."""
    case = trained["cls"]
    wrong("conv2d", channel_order(first_conv(case)))
    v = case.verdict("fp32")
    assert v.passed, v.details["problems"]
    got = case.converted("fp32")
    diff = max(float(np.abs(g[k] - w[k]).max()) for g, w in zip(got, case.want) for k in w)
    assert 0 < diff < 1e-3


# -- the zoo-style exports of repogen.pipelines.testing ----------------------------------------------------------------

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
