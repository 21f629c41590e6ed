"""Partitioning without a server: placement rules and reasons, regions and boundary names, the numeric check
of the chained regions against Paddle, ensemble wiring checks, spec/CLI switches, refusals."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.support import zoo
from repogen.errors import ConfigError, RepogenError
from repogen.ir import Op
from repogen.paddle import load_model
from repogen.partition.check import check_partition
from repogen.partition.ensemble import check_ensemble, prepare
from repogen.trt.passes import clean_graph
from repogen.partition.plan import partition_graph
from repogen.trt.limits import NMS_MAX_BOXES as NMS_TOPK_BOX_LIMIT
from repogen.trt.registry import limit_reason
from repogen.build.flow import build_repository
from repogen.repository.config import parse_config
from repogen.build.spec import EXAMPLE_DIR as EXAMPLE, ModelSpec, load_spec_file
from repogen.repository.engine import graph_engine
from tritonclient.grpc import model_config_pb2

ROOT = Path(__file__).resolve().parent.parent
YOLO_BIG = [{"image": ((1, 3, 64, 64), (2, 3, 64, 64), (2, 3, 192, 192)), "im_size": ((1, 2), (2, 2), (2, 2))}]
YOLO_SMALL = [{"image": ((1, 3, 64, 64), (2, 3, 64, 64), (2, 3, 160, 160)), "im_size": ((1, 2), (2, 2), (2, 2))}]
CUMPROD = [{"x": ((1, 3, 16, 16), (2, 3, 16, 16), (4, 3, 32, 32))}]


@pytest.fixture(scope="module")
def yolo_dense():
    return load_model(zoo.get("yolo_dense", "pir"))


@pytest.fixture(scope="module")
def cumprod():
    return load_model(zoo.get("cumprod_net", "pir"))


def test_nms_beyond_the_box_limit_goes_to_python_with_the_numbers(yolo_dense):
    part = partition_graph(clean_graph(yolo_dense), YOLO_BIG)
    assert part.partitioned and [r.kind for r in part.regions] == ["tensorrt", "python"]
    s = part.summary()
    (nms,) = s["not_tensorrt"]
    # 192x192: 3 anchors x (12*12 + 24*24) boxes = 2160 per class, 3 classes
    assert nms["op"] == "multiclass_nms3" and "3 classes x 2160 candidates = 6480 boxes" in nms["reason"]
    assert str(NMS_TOPK_BOX_LIMIT) in nms["reason"]
    assert s["tensorrt_ops"] == s["ops"] - 1 and s["tensorrt_parameter_share"] == 1.0 and s["parameters"] > 0
    trt, py = part.regions
    assert [n for n, _, _ in trt.inputs] == ["image", "im_size"]
    names = [n for n, _, _ in trt.outputs]
    assert names == [n for n, _, _ in py.inputs]
    # boundary tensors are named for their producer: <op>_<position>_<slot>
    concat, transpose = names
    import re

    assert re.fullmatch(r"concat_\d+_out", concat) and re.fullmatch(r"transpose_\d+_out", transpose)
    assert part.cleaned.ops[int(concat.split("_")[1])].type == "concat"
    assert dict((n, s) for n, _, s in py.inputs) == {concat: (-1, -1, 4), transpose: (-1, 3, -1)}
    assert [n for n, _, _ in py.outputs] == yolo_dense.outputs
    # the TensorRT region's profile is the model's own
    assert trt.profiles == [{k: tuple(map(tuple, v)) for k, v in YOLO_BIG[0].items()}]


def test_nms_within_the_limit_stays_in_tensorrt(yolo_dense):
    # 160x160: 3 x 1500 = 4500 candidates
    assert not partition_graph(clean_graph(yolo_dense), YOLO_SMALL).partitioned
    # yolo_head keeps 100 per class: 300 candidates at any size
    assert not partition_graph(clean_graph(load_model(zoo.get("yolo_head", "pir"))), YOLO_BIG).partitioned


def test_unconvertible_op_in_the_middle(cumprod):
    part = partition_graph(clean_graph(cumprod), CUMPROD)
    assert [r.kind for r in part.regions] == ["tensorrt", "python", "tensorrt"]
    a, b, c = part.regions
    assert [n for n, _, _ in a.outputs] == [n for n, _, _ in b.inputs] == ["scale_2_out"]
    assert [n for n, _, _ in b.outputs] == [n for n, _, _ in c.inputs] == ["cumprod_3_out"]
    assert b.op_types == ["cumprod"]
    (why,) = part.summary()["not_tensorrt"]
    assert why["op"] == "cumprod" and "no TensorRT converter" in why["reason"]
    # the second TensorRT region's profile spans the shapes the runs observed for its input
    assert c.profiles == [{"cumprod_3_out": ((1, 8, 16, 16), (2, 8, 16, 16), (4, 8, 32, 32))}]


@pytest.mark.parametrize("name,profiles", [("yolo_dense", YOLO_BIG), ("cumprod_net", CUMPROD)])
def test_chained_regions_match_paddle_on_the_whole_model(name, profiles):
    graph = load_model(zoo.get(name, "pir"))
    part = partition_graph(clean_graph(graph), profiles)
    result = check_partition(part, zoo.get(name, "pir"), profiles)
    assert result["status"] == "passed", result
    assert all(o["passed"] and o["rel_l2"] <= 1e-5 for o in result["outputs"].values())
    # the check can fail: a region whose output is perturbed no longer matches
    region = part.regions[0]
    from repogen.partition import runtime

    real = runtime.NetworkRunner.shapes

    def off(self, feeds):
        outs, seen = real(self, feeds)
        return {k: v * 1.01 if v.dtype.kind == "f" else v for k, v in outs.items()}, seen

    runtime.NetworkRunner.shapes = off
    try:
        assert check_partition(part, zoo.get(name, "pir"), profiles)["status"] == "failed"
    finally:
        runtime.NetworkRunner.shapes = real
    assert region.kind == "tensorrt"


def test_limit_rules():
    topk = Op("topk", "topk", {"x": ["x"]}, {"out": ["v"], "indices": ["i"]}, {"axis": -1})
    assert limit_reason(topk, {"x": (2, 9000), "v": (2, 3840)}) is None
    assert "k = 4000" in limit_reason(topk, {"x": (2, 9000), "v": (2, 4000)})
    nms = Op("multiclass_nms3", "multiclass_nms3", {"bboxes": ["b"], "scores": ["s"]}, {"out": ["o"]},
             {"nms_top_k": 1000, "keep_top_k": 100, "background_label": 0})
    # 80 classes with background 0: 79 x 1000 candidates
    assert "79 classes x 1000 candidates = 79000" in limit_reason(nms, {"s": (1, 80, 8400)})
    assert limit_reason(nms, {"s": (1, 6, 900)}) is None  # 5 x 900 = 4500
    nms.attrs.update(nms_top_k=-1, keep_top_k=-1)
    assert "k <= 3840" in limit_reason(nms, {"s": (1, 2, 4000)})  # 4000 candidates fit NMS; TopK does not
    # matrix_nms sorts each class's candidates with one TopK: its converter refuses more than 3840
    matrix = Op("matrix_nms", "matrix_nms", {"bboxes": ["b"], "scores": ["s"]}, {"out": ["o"]},
                {"nms_top_k": -1, "keep_top_k": 20, "background_label": -1})
    assert limit_reason(matrix, {"s": (1, 3, 3840)}) is None
    assert "22743 candidates per class" in limit_reason(matrix, {"s": (1, 80, 22743)})
    matrix.attrs["nms_top_k"] = 100
    assert limit_reason(matrix, {"s": (1, 80, 22743)}) is None


def test_a_converter_refusal_places_the_op_in_python(monkeypatch):
    """Under --partition any converter refusal (not only a declared limit) puts the op in the remainder, with the
    converter's words."""
    from repogen.trt import converter_table

    real = converter_table.CONVERTERS["cumsum"]

    def refuse(ctx, op):
        raise ctx.fail("pretend TensorRT cannot")

    g = clean_graph(load_model(zoo.get("tier2", "pir")))
    assert "cumsum" in [op.type for op in g.ops]
    monkeypatch.setitem(converter_table.CONVERTERS, "cumsum", refuse)
    part = partition_graph(g, [{"x": ((1, 8), (8, 8), (8, 8))}])
    assert [(o["op"], o["reason"]) for o in part.summary()["not_tensorrt"]] == \
        [("cumsum", "the converter refused it: pretend TensorRT cannot")]
    monkeypatch.setitem(converter_table.CONVERTERS, "cumsum", real)
    assert not partition_graph(g, [{"x": ((1, 8), (8, 8), (8, 8))}]).partitioned


def test_clean_pass_is_the_same_in_a_fresh_process(tmp_path, cumprod):
    """The served model re-cleans the graph in a fresh interpreter: it must find the ops the build placed."""
    part = partition_graph(clean_graph(cumprod), CUMPROD)
    src = Path(zoo.get("cumprod_net", "pir")) / "inference.json"
    code = ("import json, sys; from repogen.partition.regions import load_cleaned; "
            f"print(json.dumps([op.type for op in load_cleaned(sys.argv[1]).ops]))")
    out = subprocess.run([sys.executable, "-c", code, str(src)], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120, check=True).stdout
    fresh = json.loads(out.strip().splitlines()[-1])
    for region in part.regions:
        assert [fresh[i] for i in region.ops] == region.op_types


def _prepare(name, profiles, **kw):
    graph = load_model(zoo.get(name, "pir"))
    spec = ModelSpec(source=zoo.get(name, "pir"), name=name, target="numpy", partition=True, **kw)
    from repogen.build.flow import _profiles

    objs, plain = _profiles(graph, spec)
    return prepare(spec, clean_graph(graph), target="numpy", profiles=plain, engine=graph_engine(graph, plain))


def test_ensemble_wiring_is_checked():
    model = _prepare("cumprod_net", CUMPROD, min_shapes=["x:1x3x16x16"], opt_shapes=["x:2x3x16x16"],
                     max_shapes=["x:4x3x32x32"])
    cfg = parse_config(model.ensemble_text, "ensemble")
    assert cfg.platform == "ensemble" and cfg.max_batch_size == 4
    assert [s.model_name for s in cfg.ensemble_scheduling.step] == [p.name for p in model.parts] == [
        "cumprod_net_0_tensorrt", "cumprod_net_1_python", "cumprod_net_2_tensorrt"]
    check_ensemble(cfg, model.engine, model.parts, "cumprod_net")  # as built: fine
    swapped = copy.deepcopy(cfg)
    steps = swapped.ensemble_scheduling.step
    a, b = copy.deepcopy(steps[0]), copy.deepcopy(steps[1])
    steps[0].CopyFrom(b), steps[1].CopyFrom(a)
    with pytest.raises(ConfigError, match="reads scale_2_out, which no earlier step produces"):
        check_ensemble(swapped, model.engine, model.parts, "cumprod_net")
    missing = copy.deepcopy(cfg)
    del missing.ensemble_scheduling.step[2]
    with pytest.raises(ConfigError, match="output fetch_name_0 is produced by no step"):
        check_ensemble(missing, model.engine, model.parts, "cumprod_net")
    # composing configs: same batching as the original; the Python part is a CPU Python-backend model
    py = parse_config(model.parts[1].config_text, "py")
    assert py.backend == "python" and py.max_batch_size == 4 and py.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_CPU


def test_build_refusals_and_switches(tmp_path):
    src = zoo.get("cumprod_net", "pir")
    shapes = dict(min_shapes=["x:1x3x16x16"], opt_shapes=["x:2x3x16x16"], max_shapes=["x:4x3x32x32"])
    # --no-partition (and the default for an explicit target): the op without a converter is refused, by name
    for partition in (False, None):
        with pytest.raises(RepogenError, match="cumprod"):
            build_repository([ModelSpec(source=src, name="m", target="numpy", partition=partition, **shapes)],
                             tmp_path / "r", progress=False)
        assert not (tmp_path / "r" / "m").exists()
    # --target paddle stays available and unpartitioned
    report = build_repository([ModelSpec(source=src, name="m", target="paddle", partition=True, **shapes)],
                              tmp_path / "p", progress=False)
    assert report.models[0].target == "paddle" and report.models[0].partition is None
    # a spec file switches it on
    spec_file = tmp_path / "repogen.toml"
    spec_file.write_text(f'[[model]]\nsource = "{src}"\nname = "m"\ntarget = "numpy"\npartition = true\n'
                         '[[model.profile]]\nx = { min = [1, 3, 16, 16], opt = [2, 3, 16, 16], max = [4, 3, 32, 32] }\n')
    (spec,) = load_spec_file(spec_file)
    assert spec.partition is True
    report = build_repository([spec], tmp_path / "s", progress=False)
    # the report lists every folder written: the ensemble under the model's name, then its parts
    assert [(r.name, r.role, r.part_of) for r in report.models] == [
        ("m", "model", None), ("m_0_tensorrt", "part", "m"), ("m_1_python", "part", "m"), ("m_2_tensorrt", "part", "m")]
    m = report.models[0]
    assert m.target == "ensemble" and m.check["status"] == "passed"
    assert m.partition["tensorrt_ops"] == m.partition["ops"] - 1
    manifest = json.loads((tmp_path / "s" / "m" / "repogen.json").read_text())
    assert manifest["target"] == "ensemble" and manifest["partition"]["not_tensorrt"][0]["op"] == "cumprod"
    assert (tmp_path / "s" / "m" / manifest["source"]["path"]).is_file()  # the reference travels along
    for part in ("m_0_tensorrt", "m_1_python", "m_2_tensorrt"):
        assert json.loads((tmp_path / "s" / part / "repogen.json").read_text())["part_of"] == "m"
    # a part may not take another model's folder
    clash = ModelSpec(source=EXAMPLE, name="m_1_python", target="paddle")
    with pytest.raises(ConfigError, match="m_1_python: this build would write it twice"):
        build_repository([spec, clash], tmp_path / "c", progress=False)
    assert not (tmp_path / "c").exists() or not any((tmp_path / "c").iterdir())
    # a rebuild without --force refuses, naming a part folder
    with pytest.raises(ConfigError, match="already exists"):
        build_repository([spec], tmp_path / "s", progress=False)
    # a part an earlier build left (here: faked) is named in a warning and kept
    stale = tmp_path / "s" / "m_7_python"
    stale.mkdir()
    (stale / "repogen.json").write_text('{"part_of": "m"}')
    report = build_repository([spec], tmp_path / "s", force=True, progress=False)
    assert any("m_7_python" in w and "unused now" in w for w in report.warnings) and stale.is_dir()


def test_cli_partition_flags():
    from repogen.cli import build_parser

    p = build_parser()
    assert p.parse_args(["build", "--out", "o"]).partition is None
    assert p.parse_args(["build", "--out", "o", "--partition"]).partition is True
    assert p.parse_args(["build", "--out", "o", "--no-partition"]).partition is False


def test_auto_with_tensorrt_builds_plans_for_regions_and_moves_refused_regions_to_python(tmp_path, monkeypatch):
    """--target auto on a TensorRT machine (builder stubbed): plans for the TensorRT regions; a region the
    builder refuses joins the Python remainder, with the builder's reason."""
    from repogen.build import flow as build_mod
    from repogen.build import targets
    from repogen.build.targets import TensorRTStatus

    built = []

    def fake_build_plan(graph, trt, **kw):
        types = [op.type for op in graph.ops]
        if "pool2d" in types:
            raise RepogenError("op #3 pool2d: no kernel for this layer on this GPU")
        built.append(types)
        return targets.PlanBuild(graph_engine(graph, kw["profiles"]), b"PLAN" + ",".join(types).encode(),
                                 {"version": "10.8.0", "compute_capability": "9.0"})

    monkeypatch.setattr(build_mod, "tensorrt_status", lambda: TensorRTStatus(object(), ""))
    monkeypatch.setattr(targets, "build_plan", fake_build_plan)
    spec = ModelSpec(source=zoo.get("cumprod_net", "pir"), name="c", target="auto", min_shapes=["x:1x3x16x16"],
                     opt_shapes=["x:2x3x16x16"], max_shapes=["x:4x3x32x32"])
    report = build_repository([spec], tmp_path / "repo", progress=False)
    m, *parts = report.models
    assert m.role == "model" and {p.role for p in parts} == {"part"}
    assert m.target == "ensemble" and m.check["status"] == "passed"
    reasons = {o["op"]: o["reason"] for o in m.partition["not_tensorrt"]}
    assert "no TensorRT converter" in reasons["cumprod"]
    assert "builder refused" in reasons["pool2d"] and "no kernel" in reasons["pool2d"]
    assert [r["kind"] for r in m.partition["regions"]] == ["tensorrt", "python"]
    plan_cfg = parse_config((tmp_path / "repo" / "c_0_tensorrt" / "config.pbtxt").read_text(), "plan")
    assert plan_cfg.platform == "tensorrt_plan"
    assert (tmp_path / "repo" / "c_0_tensorrt" / "1" / "model.plan").read_bytes().startswith(b"PLAN")
    assert (tmp_path / "repo" / "c_1_python" / "1" / "model.py").is_file()
    assert built and all("pool2d" not in t for t in built)


def test_check_cli_checks_what_a_partitioned_build_deploys():
    src = zoo.get("cumprod_net", "pir")
    proc = subprocess.run([sys.executable, "-m", "repogen.cli", "check", str(src), "--partition", "--json",
                           "--min-shapes", "x:1x3x16x16", "--opt-shapes", "x:2x3x16x16", "--max-shapes", "x:4x3x32x32"],
                          capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["status"] == "passed" and result["input_shapes"] == {"x": [2, 3, 16, 16]}
    assert all(o["passed"] and o["rel_l2"] <= 1e-5 for o in result["outputs"].values())
    assert [r["kind"] for r in result["partition"]["regions"]] == ["tensorrt", "python", "tensorrt"]
    # without --partition the same model is refused by name (no converter)
    plain = subprocess.run([sys.executable, "-m", "repogen.cli", "check", str(src), "--shape", "x:2x3x16x16"],
                           capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                           timeout=300)
    assert plain.returncode != 0 and "cumprod" in plain.stdout + plain.stderr


def test_auto_whole_plan_refused_partitions_around_the_nms(tmp_path, monkeypatch):
    """A builder without NMS kernels (TensorRT-RTX) refuses yolo_head whole; --target auto then keeps the backbone
    and head in TensorRT and runs the NMS in Python, instead of sending everything to the paddle target."""
    from repogen.build import flow as build_mod
    from repogen.build import targets
    from repogen.build.targets import TensorRTStatus

    def builder_without_nms(graph, trt, **kw):
        if any(op.type == "multiclass_nms3" for op in graph.ops):
            raise RepogenError("TensorRT: no implementation of INMSLayer for this platform")
        return targets.PlanBuild(graph_engine(graph, kw["profiles"]), b"PLAN", {"version": "1.7"})

    monkeypatch.setattr(build_mod, "tensorrt_status", lambda: TensorRTStatus(object(), ""))
    monkeypatch.setattr(build_mod, "build_plan", builder_without_nms)
    monkeypatch.setattr(targets, "build_plan", builder_without_nms)
    spec = ModelSpec(source=zoo.get("yolo_head", "pir"), name="y", target="auto",
                     min_shapes=["image:1x3x64x64,im_size:1x2"], opt_shapes=["image:2x3x64x64,im_size:2x2"],
                     max_shapes=["image:2x3x96x96,im_size:2x2"])
    report = build_repository([spec], tmp_path / "repo", progress=False)
    m, *parts = report.models
    assert m.role == "model" and {p.role for p in parts} == {"part"}
    assert m.target == "ensemble" and m.check["status"] == "passed"
    (outside,) = m.partition["not_tensorrt"]
    assert outside["op"] == "multiclass_nms3" and "INMSLayer" in outside["reason"]
    assert [r["kind"] for r in m.partition["regions"]] == ["tensorrt", "python"]
    assert (tmp_path / "repo" / "y_0_tensorrt" / "1" / "model.plan").read_bytes() == b"PLAN"
    # --no-partition keeps the old behaviour: the paddle target, with the builder's reason
    spec.partition = False
    report = build_repository([spec], tmp_path / "repo2", progress=False)
    assert report.models[0].target == "paddle"
    assert any("INMSLayer" in w for w in report.warnings)


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2", "yolo_head", "tensors", "rtdetr_head", "ernie",
                                  "transformer"])
def test_paddle_remainder_runner_equals_paddle_on_whole_zoo_models(name):
    """Every op of a cleaned zoo model run by the remainder runner (paddle._C_ops, one call per op) gives Paddle
    Inference's outputs: convs carrying biases repogen folded into them, depthwise convs, yolo_box + NMS,
    shape/gather/arg ops, topk + grid_sample, embeddings."""
    from repogen.partition.plan import _io_dtype
    from repogen.partition.regions import Region
    from repogen.partition.runtime import PaddleOpsRunner
    from repogen.verify import detection_outputs
    from tests.support.judging import judge

    g = clean_graph(load_model(zoo.get(name, "pir")))
    feeds = zoo.sample_feeds(name)

    def io(names):
        return [(n, _io_dtype(g.value(n).dtype), tuple(g.value(n).shape)) for n in names]

    region = Region("python", list(range(len(g.ops))), [o.type for o in g.ops], io(g.inputs), io(g.outputs))
    got = PaddleOpsRunner(g, region).run(feeds)
    want = zoo.reference_outputs(zoo.get(name, "pir"), feeds)
    detections = detection_outputs(g)
    assert len(want) == len(g.outputs)
    for out, expected in zip(g.outputs, want.values()):
        r = judge(got[out], expected, "fp32", out, detection=detections.get(out))
        assert r.passed, (out, r)


def test_fp16_partition_checks_at_the_fp16_tolerance(cumprod):
    """TensorRT regions convert in FP16 (NumPy backend emulates the rounding), the remainder stays Paddle FP32,
    boundary tensors stay FP32 (a network's I/O keeps the model's types)."""
    part = partition_graph(clean_graph(cumprod), CUMPROD, "fp16")
    assert all(d == "float32" for r in part.regions for _, d, _ in r.inputs + r.outputs)
    assert {r.precision for r in part.regions} == {"fp16"}
    result = check_partition(part, zoo.get("cumprod_net", "pir"), CUMPROD, "fp16")
    (out,) = result["outputs"].values()
    assert result["status"] == "passed" and out["criterion"] == "elementwise"  # judged by the fp16 rule
    assert 1e-6 < out["rel_l2"] <= 1e-2  # FP16 rounding is visible, and within the bound


def test_tensorrt_part_dims_follow_the_engine():
    """A TensorRT part's config carries the dims its engine fixes (the stand-in: the NumPy conversion's), -1 only
    where the engine has a run-time dim; the Python step reading the same tensor may keep -1 (a wildcard)."""
    model = _prepare("yolo_dense", YOLO_BIG, min_shapes=["image:1x3x64x64,im_size:1x2"],
                     opt_shapes=["image:2x3x64x64,im_size:2x2"], max_shapes=["image:2x3x192x192,im_size:2x2"])
    trt, py = model.parts
    from repogen.partition.ensemble import standin_io

    engine = standin_io(model.partition.cleaned, trt.region)
    for (n, _, s), t in zip(trt.region.outputs, engine.outputs):
        assert all(d == e for d, e in zip(s, t.shape) if e >= 0), (n, s, t.shape)
    cfg = parse_config(trt.config_text, "trt")
    assert [list(o.dims) for o in cfg.output] == [list(s[1:]) for _, _, s in trt.region.outputs]
    check_ensemble(parse_config(model.ensemble_text, "e"), model.engine, model.parts, "yolo_dense")


def test_partition_check_pairs_detection_rows_like_check_and_validate(yolo_dense, monkeypatch):
    """Two rows of one label whose near-equal scores swap places (FP16 does this) are the same set: the check
    pairs each Paddle row with the closest row of its label (trt/check.align_detection_rows), as `repogen check`
    and the harness do; a wrong box still fails."""
    from repogen.partition import check as check_mod
    from repogen.verify import detection_outputs

    part = partition_graph(clean_graph(yolo_dense), YOLO_BIG)
    rows = next(iter(detection_outputs(part.cleaned)))
    real_run, real_ref = check_mod.run_regions, check_mod.reference_outputs
    s, d = 0.55, 1e-5
    edit: dict = {}

    def run_regions(g, regions, feeds):
        env, seen = real_run(g, regions, feeds)
        got = env[rows].copy()
        i, j = np.flatnonzero(got[:, 0] == got[0, 0])[:2]
        edit["pair"] = got[[i, j]].copy()  # the two rows as the converted regions made them
        got[i, 1], got[j, 1] = s, s + d
        if edit.get("wrong_box"):
            got[i, 2] += 1.0
        return {**env, rows: got}, seen

    def reference_outputs(source, feeds):
        ref = dict(real_ref(source, feeds))
        name = rows if rows in ref else list(ref)[0]
        want = ref[name].copy()
        # Paddle's rows for the same two detections get the scores the other way round
        for row, score in zip(edit["pair"], (s + d, s)):
            k = np.argmin(np.abs(np.delete(want, 1, axis=1) - np.delete(row, 1)).max(axis=1))
            want[k, 1] = score
        ref[name] = want
        return ref

    monkeypatch.setattr(check_mod, "run_regions", run_regions)
    monkeypatch.setattr(check_mod, "reference_outputs", reference_outputs)
    result = check_partition(part, zoo.get("yolo_dense", "pir"), YOLO_BIG)
    assert result["status"] == "passed", result
    assert result["outputs"][rows]["rel_l2"] <= 1e-5
    edit["wrong_box"] = True
    result = check_partition(part, zoo.get("yolo_dense", "pir"), YOLO_BIG)
    assert result["status"] == "failed" and not result["outputs"][rows]["passed"], result
