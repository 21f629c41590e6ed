"""`repogen build` makes one pass: the model is read, cleaned, calibrated (int8) and converted once per backend,
and the check and the plan builder share what that pass made. The test zoo stays off the run-time path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import repogen.paddle
import repogen.reference
from tests.support import zoo
from repogen.trt import calibrate, convert, engine, passes
from repogen.build import flow as build_mod
from repogen.build import targets
from repogen.build.spec import EXAMPLE_DIR, ModelSpec

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Counter:
    """Counts of the expensive steps; a conversion is counted by the module that asked for it."""
    seen: Counter = Counter()

    def counting(key: str, fn: Any) -> Any:
        def wrapper(*args: Any, **kw: Any) -> Any:
            caller = sys._getframe(1).f_globals["__name__"]
            seen[key] += 1
            seen[f"{key} from {caller}"] += 1
            return fn(*args, **kw)
        return wrapper

    monkeypatch.setattr(repogen.paddle, "load_model", counting("load_model", repogen.paddle.load_model))
    monkeypatch.setattr(passes, "clean_graph", counting("clean_graph", passes.clean_graph))
    monkeypatch.setattr(calibrate, "quantize_model", counting("quantize_model", calibrate.quantize_model))
    monkeypatch.setattr(convert, "convert_graph", counting("convert_graph", convert.convert_graph))
    runner = repogen.reference.ReferenceRunner
    monkeypatch.setattr(runner, "__init__", counting("reference", runner.__init__))
    monkeypatch.setattr(runner, "run", counting("reference run", runner.run))
    return seen


@pytest.fixture
def plan_builder(monkeypatch: pytest.MonkeyPatch) -> list:
    """TensorRT "available", with the NumPy backend as its module: the real build_plan converts the model,
    and only the last step (TensorRT's engine build, which needs a GPU) is replaced."""
    from repogen.trt import numpy_trt

    built: list = []

    def build_engine(conversion: Any, **kw: Any) -> tuple[bytes, bytes]:
        built.append(conversion)
        return b"PLAN", b""

    monkeypatch.setattr(build_mod, "tensorrt_status", lambda: targets.TensorRTStatus(numpy_trt, ""))
    monkeypatch.setattr(engine, "build_engine", build_engine)
    return built


def test_fp32_build_reads_cleans_and_converts_once(tmp_path: Path, calls: Counter, plan_builder: list) -> None:
    spec = ModelSpec(source=zoo.get("resnet50", "paddle2"), name="resnet50", target="tensorrt",
                     max_shapes=["x:2x3x32x32"])
    report = build_mod.build_repository([spec], tmp_path / "repo", progress=False)
    check = report.models[0].check
    assert check["status"] == "passed" and all(o["rel_l2"] <= 1e-5 for o in check["outputs"].values())
    assert calls["load_model"] == 1 and calls["clean_graph"] == 1
    assert calls["reference"] == calls["reference run"] == 1
    # one NumPy-backend conversion for the check, one for the plan (real TensorRT there), nothing else
    assert calls["convert_graph"] == 2
    assert calls["convert_graph from repogen.verify.conversion"] == calls["convert_graph from repogen.build.targets"] == 1
    assert calls["quantize_model"] == 0
    # the plan was built from the very graph the check converted: cleaned once, not re-cleaned
    assert len(plan_builder) == 1 and (tmp_path / "repo" / "resnet50" / "1" / "model.plan").read_bytes() == b"PLAN"


def test_int8_build_calibrates_once(tmp_path: Path, calls: Counter, plan_builder: list) -> None:
    calib = tmp_path / "calib.npz"
    np.savez(calib, image=np.random.default_rng(1).uniform(0, 1, (10, 3, 32, 32)).astype(np.float32))
    spec = ModelSpec(source=EXAMPLE_DIR, name="tiny", target="tensorrt", precision="int8", calib_data=calib)
    report = build_mod.build_repository([spec], tmp_path / "repo", progress=False)
    assert report.models[0].precision == "int8" and report.models[0].check["status"] == "passed"
    assert report.models[0].check["int8"]["calibration_samples"] > 0
    assert calls["load_model"] == 1 and calls["clean_graph"] == 1 and calls["quantize_model"] == 1
    # the check converts the int8 network and its fp32 twin (repogen.verify: the converters' mistakes show at fp32)
    assert calls["convert_graph from repogen.verify.conversion"] == 2
    assert calls["convert_graph from repogen.build.targets"] == 1
    ops = {op.type for op in plan_builder[0].graph.ops}
    assert {"quantize_linear", "dequantize_linear"} <= ops  # the plan got the calibrated graph
    assert calls["reference"] == calls["reference run"] == 1  # Paddle's FP32 outputs on the held-out samples


def test_paddle_target_without_check_reads_once_and_never_cleans(tmp_path: Path, calls: Counter) -> None:
    spec = ModelSpec(source=EXAMPLE_DIR, name="tiny", target="paddle", check=False)
    build_mod.build_repository([spec], tmp_path / "repo", progress=False)
    assert calls["load_model"] == 1 and calls["clean_graph"] == 0 and calls["convert_graph"] == 0


def test_check_graph_with_the_callers_graph_matches_check_model() -> None:
    """check_model is check_graph behind the CLI's options: the same report for the same inputs."""
    from repogen.verify.conversion import check_graph, check_model
    from repogen.trt.profiles import Profile

    path = zoo.get("resnet18", "pir")
    graph = repogen.paddle.load_model(path)
    a = check_graph(graph, [Profile({"x": ((1, 3, 24, 24), (2, 3, 32, 32), (4, 3, 48, 48))})], "fp32", seed=3)
    b = check_model(path, shapes=["x:2x3x32x32"], seed=3)
    assert a.input_shapes == b.input_shapes == {"x": [2, 3, 32, 32]}
    assert a.passed and b.passed
    assert [(o.name, o.rel_l2) for o in a.outputs] == [(o.name, o.rel_l2) for o in b.outputs]


def test_zoo_is_not_on_the_run_time_path(tmp_path: Path) -> None:
    code = f"""
import sys
from repogen.cli import main
assert main(["check", {str(EXAMPLE_DIR)!r}, "--json"]) == 0
assert main(["build", "--out", {str(tmp_path / "repo")!r}, "--target", "paddle", "--json"]) == 0
import repogen.harness.validate, repogen.harness.reference
print("ZOO", "tests.support.zoo" in sys.modules, "paddle" in sys.modules)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    # neither the zoo nor Paddle itself: the reference ran in its child
    assert last == "ZOO False False", last
    report = json.loads(proc.stdout.strip().splitlines()[-2])
    assert report["ok"] and report["models"][0]["check"]["status"] == "passed"


def test_int8_build_without_check_still_calibrates_once(tmp_path: Path, calls: Counter, plan_builder: list) -> None:
    calib = tmp_path / "calib.npz"
    np.savez(calib, image=np.random.default_rng(2).uniform(0, 1, (10, 3, 32, 32)).astype(np.float32))
    spec = ModelSpec(source=EXAMPLE_DIR, name="tiny", target="tensorrt", precision="int8", calib_data=calib,
                     check=False)
    report = build_mod.build_repository([spec], tmp_path / "repo", progress=False)
    assert report.models[0].check["status"] == "skipped"
    assert calls["load_model"] == calls["clean_graph"] == calls["quantize_model"] == 1
    assert calls["convert_graph from repogen.verify.conversion"] == 0 and calls["reference"] == 0
    assert {"quantize_linear", "dequantize_linear"} <= {op.type for op in plan_builder[0].graph.ops}


def test_numpy_target_reads_cleans_and_converts_once_per_use(tmp_path: Path, calls: Counter) -> None:
    """--target numpy: the stand-in's engine description converts the one pass's cleaned graph (no second
    clean_graph), as the plan builder does."""
    spec = ModelSpec(source=EXAMPLE_DIR, name="tiny", target="numpy")
    report = build_mod.build_repository([spec], tmp_path / "repo", progress=False)
    assert report.models[0].check["status"] == "passed"
    assert calls["load_model"] == 1 and calls["clean_graph"] == 1
    assert calls["convert_graph from repogen.verify.conversion"] == calls["convert_graph from repogen.build.standin"] == 1
    assert calls["convert_graph"] == 2
    assert (tmp_path / "repo" / "tiny" / "1" / "model.py").is_file()
