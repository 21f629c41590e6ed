"""Partitioned models through the real tritonserver (nvidia-pytriton, CPU, --target numpy regions): a detector
whose NMS exceeds TensorRT's limits, a Fluid detector whose matrix_nms sees more candidates per class than
TensorRT's TopK takes (6000 > 3840: the converter refuses it, the partitioner places it in Python), and a
model with an op without converter between two TensorRT regions,
validated over HTTP and gRPC against Paddle on the whole model; the ensemble's contract equals the single
model's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.support import zoo
from repogen.harness.model_files import list_models, read_model_folder
from repogen.harness.reference import PaddleReference
from repogen.harness.server import launch
from repogen.harness.validate import validate_model
from repogen.build.flow import build_repository
from repogen.build.spec import DynamicBatching, ModelSpec

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

YOLO = dict(min_shapes=["image:1x3x64x64,im_size:1x2"], opt_shapes=["image:2x3x64x64,im_size:2x2"],
            max_shapes=["image:2x3x192x192,im_size:2x2"])
CUMPROD = dict(min_shapes=["x:1x3x16x16"], opt_shapes=["x:2x3x16x16"], max_shapes=["x:4x3x32x32"])
# 3 * (320*320/256 + 320*320/64) = 6000 candidates per class at the max shapes
MATRIX = dict(min_shapes=["image:1x3x64x64,im_size:1x2"], opt_shapes=["image:1x3x64x64,im_size:1x2"],
              max_shapes=["image:2x3x320x320,im_size:2x2"])


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("partition") / "repo"
    yolo, cum = zoo.get("yolo_dense", "pir"), zoo.get("cumprod_net", "pir")
    specs = [ModelSpec(source=yolo, name="yolo", target="numpy", partition=True,
                       dynamic_batching=DynamicBatching([2], 200), **YOLO),
             ModelSpec(source=cum, name="cumprod", target="numpy", partition=True, **CUMPROD),
             ModelSpec(source=zoo.get("yolo_matrix", "fluid-combined"), name="matrix", target="numpy",
                       partition=True, **MATRIX),
             # the same detector as one paddle-target model: the contract the ensemble must reproduce
             ModelSpec(source=yolo, name="yolo_single", target="paddle", **YOLO)]
    report = build_repository(specs, out, progress=False)
    models = [m for m in report.models if m.role == "model"]
    assert [m.target for m in models] == ["ensemble", "ensemble", "ensemble", "paddle"]
    assert {(m.role, m.part_of) for m in report.models if m.role != "model"} == {
        ("part", "yolo"), ("part", "cumprod"), ("part", "matrix")}
    (matrix,) = models[2].partition["not_tensorrt"]
    assert matrix["op"] == "matrix_nms" and "6000 candidates per class" in matrix["reason"]
    return out


@pytest.fixture(scope="module")
def server(repo):
    with launch(repo) as srv:
        yield srv


def test_repository_layout(repo):
    assert sorted(p.name for p in repo.iterdir()) == ["cumprod", "cumprod_0_tensorrt", "cumprod_1_python",
                                                      "cumprod_2_tensorrt", "matrix", "matrix_0_tensorrt",
                                                      "matrix_1_python", "yolo", "yolo_0_tensorrt",
                                                      "yolo_1_python", "yolo_single"]
    # the harness validates ensembles (which load their parts), not the parts alone
    assert list_models(repo) == ["cumprod", "matrix", "yolo", "yolo_single"]


@pytest.mark.parametrize("name", ["yolo", "cumprod", "matrix"])
def test_ensemble_validates_against_paddle_over_http_and_grpc(server, repo, name):
    model = read_model_folder(repo / name)
    report = validate_model(server, model, concurrency=(2,), requests=8)
    assert report.ok, report.failures
    assert {c.protocol for c in report.checks} == {"http", "grpc"}
    assert all(c.ok and c.rel_err is not None and c.rel_err <= 1e-5 for c in report.checks)
    assert report.dynamic_batching["failed"] == 0 and report.dynamic_batching["requests"] >= 20
    assert report.speed and all(s.requests >= 8 and s.p50_ms > 0 and not s.errors for s in report.speed)


def test_client_cannot_tell_the_ensemble_from_the_single_model(server):
    import tritonclient.grpc as g

    client = g.InferenceServerClient(server.grpc_url)
    ens, single = client.get_model_metadata("yolo"), client.get_model_metadata("yolo_single")
    for kind in ("inputs", "outputs"):
        assert [(t.name, t.datatype, list(t.shape)) for t in getattr(ens, kind)] == \
            [(t.name, t.datatype, list(t.shape)) for t in getattr(single, kind)]
    assert client.get_model_config("yolo").config.max_batch_size == \
        client.get_model_config("yolo_single").config.max_batch_size
    # the same request to both: the same detections, as sets, and the same per-image counts
    rng = np.random.default_rng(7)
    image = rng.uniform(-1, 1, (2, 3, 96, 80)).astype(np.float32)
    size = np.array([[96, 80], [96, 80]], np.int32)
    outs = {}
    for name in ("yolo", "yolo_single"):
        ins = [g.InferInput("image", list(image.shape), "FP32"), g.InferInput("im_size", [2, 2], "INT32")]
        ins[0].set_data_from_numpy(image), ins[1].set_data_from_numpy(size)
        r = client.infer(name, ins)
        outs[name] = [r.as_numpy(o.name) for o in ens.outputs]
    from repogen.verify import as_detection_set

    rows_e, rows_s = (as_detection_set(outs[n][0], "rows") for n in ("yolo", "yolo_single"))
    assert rows_e.shape == rows_s.shape and rows_e.shape[0] > 0
    np.testing.assert_allclose(rows_e, rows_s, rtol=1e-5, atol=1e-4)
    # per-image counts: the single model reports its [N] output as [N, 1] (config dims [1] + reshape []); the
    # ensemble returns Paddle's [N] (Triton infers ensemble shapes without the reshape); the values agree
    np.testing.assert_array_equal(outs["yolo"][1], outs["yolo_single"][1].reshape(-1))
    assert outs["yolo"][1].shape == (2,)
    client.close()


def test_shape_outside_the_tensorrt_region_profile_is_refused(server, repo):
    import tritonclient.http as h
    from tritonclient.utils import InferenceServerException

    client = h.InferenceServerClient(server.http_url.replace("http://", ""))
    x = h.InferInput("x", [1, 3, 48, 48], "FP32")
    x.set_data_from_numpy(np.zeros((1, 3, 48, 48), np.float32))
    with pytest.raises(InferenceServerException, match="outside the optimization profile"):
        client.infer("cumprod", [x])
    # inside the range: equals Paddle
    model = read_model_folder(repo / "cumprod")
    feed = np.random.default_rng(2).uniform(-1, 1, (3, 3, 24, 32)).astype(np.float32)
    x = h.InferInput("x", list(feed.shape), "FP32")
    x.set_data_from_numpy(feed)
    got = client.infer("cumprod", [x]).as_numpy(model.outputs[0].name)
    want = next(iter(PaddleReference(model).run({"x": feed}).values()))
    assert np.linalg.norm(got - want) / np.linalg.norm(want) <= 1e-5
