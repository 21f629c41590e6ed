"""--target numpy: the TensorRT layout with a Python-backend stand-in that runs the converted network.

Built through build_repository, served by the real tritonserver (nvidia-pytriton, CPU) and validated over
HTTP and gRPC against Paddle on the whole model; request shapes outside the profile are refused.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from tests.support import zoo
from repogen.harness.model_files import read_model_folder
from repogen.harness.reference import PaddleReference
from repogen.harness.server import launch
from repogen.harness.validate import validate_model
from repogen.partition.regions import Region
from repogen.partition.runtime import profile_error
from repogen.build.flow import build_repository
from repogen.repository.config import TEMPLATES, parse_config, render_template
from repogen.build.spec import EXAMPLE_DIR, DynamicBatching, ModelSpec

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

RESNET = dict(min_shapes=["x:1x3x32x32"], opt_shapes=["x:2x3x32x32"], max_shapes=["x:4x3x48x48"])


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("standin") / "repo"
    specs = [ModelSpec(source=EXAMPLE_DIR, name="tiny_cnn", target="numpy",
                       dynamic_batching=DynamicBatching([4, 8], 200)),
             ModelSpec(source=zoo.get("resnet18", "pir"), name="resnet18", target="numpy", **RESNET)]
    report = build_repository(specs, out, progress=False)
    assert [(m.name, m.target) for m in report.models] == [("tiny_cnn", "numpy"), ("resnet18", "numpy")]
    assert all(m.check["status"] == "passed" for m in report.models)
    return out


@pytest.fixture(scope="module")
def server(repo):
    with launch(repo) as srv:
        yield srv


def test_config_differs_from_the_plans_only_in_the_backend(repo):
    for name in ("tiny_cnn", "resnet18"):
        text = (repo / name / "config.pbtxt").read_text()
        cfg = parse_config(text, name)
        assert cfg.backend == "python" and not cfg.platform
        # the tensorrt template rendered with the same context, minus what only a plan has
        plan = parse_config(text.replace('backend: "python"', 'platform: "tensorrt_plan"\n'
                                         'default_model_filename: "model.plan"'), name)
        plan.ClearField("platform"), plan.ClearField("default_model_filename")
        cfg.ClearField("backend")
        assert text_format.MessageToString(plan) == text_format.MessageToString(cfg)
    tiny = parse_config((repo / "tiny_cnn" / "config.pbtxt").read_text(), "tiny")
    assert tiny.max_batch_size == 8 and list(tiny.dynamic_batching.preferred_batch_size) == [4, 8]
    assert [list(i.dims) for i in tiny.input] == [[3, 32, 32]]
    assert "detections" not in (repo / "resnet18" / "repogen.json").read_text()  # classifiers: none
    assert sorted(p.name for p in (repo / "resnet18" / "1").iterdir()) == ["inference.json", "inference.pdiparams",
                                                                          "model.py"]
    assert "repogen.partition.runtime" in (repo / "resnet18" / "1" / "model.py").read_text()


@pytest.mark.parametrize("name", ["tiny_cnn", "resnet18"])
def test_standin_validates_against_paddle_over_http_and_grpc(server, repo, name):
    model = read_model_folder(repo / name)
    assert model.manifest["target"] == "numpy"
    report = validate_model(server, model, concurrency=(2,), requests=8)
    assert report.ok, report.failures
    assert {c.protocol for c in report.checks} == {"http", "grpc"}
    for c in report.checks:
        assert c.ok and c.rel_err is not None and c.rel_err <= 1e-5


def _infer(server, name: str, x: np.ndarray):
    import tritonclient.http as h

    client = h.InferenceServerClient(server.http_url.replace("http://", ""))
    inp = h.InferInput("x", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    return client.infer(name, [inp])


def test_standin_serves_the_profile_range_and_refuses_outside_it(server, repo):
    from tritonclient.utils import InferenceServerException

    model = read_model_folder(repo / "resnet18")
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, (3, 3, 48, 40)).astype(np.float32)  # inside [32, 48] on both spatial dims
    got = _infer(server, "resnet18", x).as_numpy(model.outputs[0].name)
    want = next(iter(PaddleReference(model).run({"x": x}).values()))
    assert np.linalg.norm(got - want) / np.linalg.norm(want) <= 1e-5
    with pytest.raises(InferenceServerException, match=r"outside the optimization profile.*x \[1, 3, 64, 64\] not "
                                                       r"within min \[1, 3, 32, 32\] max \[4, 3, 48, 48\]"):
        _infer(server, "resnet18", np.zeros((1, 3, 64, 64), np.float32))
    # the server still answers after a refusal
    assert _infer(server, "resnet18", x[:1]).as_numpy(model.outputs[0].name).shape[0] == 1


def test_profile_error_rules():
    region = Region("tensorrt", None, [], [("x", "float32", (-1, 3, -1, -1))], [("y", "float32", (-1, 10))], {},
                    [{"x": ((1, 3, 8, 8), (2, 3, 8, 8), (4, 3, 16, 16))},
                     {"x": ((1, 3, 32, 32), (1, 3, 32, 32), (2, 3, 64, 64))}])
    ok = {"x": np.zeros((2, 3, 16, 8), np.float32)}
    big = {"x": np.zeros((1, 3, 40, 40), np.float32)}
    assert profile_error(region, ok) is None and profile_error(region, ok, [0]) is None
    assert profile_error(region, big) is None  # profile 1 takes it
    assert "profile 0" in profile_error(region, big, [0])  # an instance limited to profile 0 refuses it
    assert "does not match" in profile_error(region, {"x": np.zeros((1, 4, 8, 8), np.float32)})
    assert "missing" in profile_error(region, {})


def test_detector_standin_marks_its_nms_outputs_for_set_comparison(tmp_path):
    """TensorRT's NMS orders rows by score, Paddle by class: the manifest tells the harness to compare sets."""
    import json

    report = build_repository([ModelSpec(source=zoo.get("yolo_head", "pir"), name="yh", target="numpy",
                                         min_shapes=["image:1x3x64x64,im_size:1x2"],
                                         opt_shapes=["image:2x3x64x64,im_size:2x2"],
                                         max_shapes=["image:2x3x96x96,im_size:2x2"])], tmp_path / "r", progress=False)
    assert report.models[0].check["status"] == "passed"
    manifest = json.loads((tmp_path / "r" / "yh" / "repogen.json").read_text())
    assert manifest["detections"] == {"fetch_name_0": "rows"}
    # validate feeds im_size as a client does (the image's own H, W): the converted detector equals Paddle
    model = read_model_folder(tmp_path / "r" / "yh")
    with launch(tmp_path / "r") as srv:
        result = validate_model(srv, model, concurrency=(1,), requests=4, speed=False)
    assert result.ok, result.failures
    assert {(c.protocol, c.case) for c in result.checks} == {(p, b) for p in ("http", "grpc")
                                                              for b in ("batch 1", "batch 2")}
    assert all(c.ok and c.rel_err is not None and c.rel_err <= 1e-5 for c in result.checks)
