"""Whole zoo models through check_model (load -> clean -> convert -> NumPy backend) against Paddle Inference."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.support import zoo
from repogen.verify.conversion import check_model

FAST = [("resnet18", "pir"), ("resnet18", "paddle2"), ("mobilenet_v3_small", "pir"),
        ("mobilenet_v3_small", "paddle2"), ("mobilenet_v2", "paddle2"), ("transformer", "pir"),
        ("transformer", "paddle2"), ("tensors", "pir"), ("tensors", "paddle2"), ("elementwise", "pir"),
        ("elementwise", "paddle2"), ("convnet", "pir"), ("convnet", "paddle2"), ("resnet18", "fluid-combined"),
        ("ernie", "pir"), ("ernie", "paddle2"), ("rtdetr_head", "pir"), ("rtdetr_head", "paddle2"),
        ("crnn", "pir"), ("crnn", "paddle2"), ("yolo_head", "pir"), ("yolo_head", "paddle2")]
# resnet50 at 32x32 takes ~10 s more per format on 2 cores: opt-in
SLOW = [("resnet50", "pir"), ("resnet50", "paddle2")] if os.environ.get("REPOGEN_SLOW_TESTS") else []


@pytest.mark.parametrize("name,fmt", FAST + SLOW)
def test_model_fp32(name, fmt):
    report = check_model(zoo.get(name, fmt), inputs=zoo.sample_feeds(name))
    assert not report.unsupported
    assert report.outputs
    for o in report.outputs:
        assert o.passed and o.rel_l2 <= 1e-5, o


@pytest.mark.parametrize("name,fmt", [("resnet18", "pir"), ("mobilenet_v3_small", "paddle2"), ("transformer", "pir"),
                                      ("tensors", "paddle2"), ("mobilenet_v2", "pir"), ("ernie", "paddle2"),
                                      ("rtdetr_head", "pir"), ("crnn", "pir"),
                                      ("yolo_head", "pir")])
def test_model_fp16(name, fmt):
    report = check_model(zoo.get(name, fmt), inputs=zoo.sample_feeds(name), fp16=True)
    assert report.outputs
    for o in report.outputs:
        assert o.passed and o.rel_l2 <= 1e-2, o


@pytest.mark.parametrize("name", ["mobilenet_v2", "mobilenet_v3_small", "resnet18", "resnet50"])
def test_zoo_logits_depend_on_input(name):
    # deep zoo nets whose logits ignore the input make every precision check pass vacuously
    out = next(iter(zoo.reference_outputs(zoo.get(name, "pir"), zoo.sample_feeds(name)).values()))
    assert np.abs(out[0] - out[1]).max() > 0.05 * np.abs(out).max(), out


# --- nets the zoo does not carry: saved here by Paddle (PIR and 2.x), dynamic batch and spatial dims -------
def _extra_cases():
    import paddle
    import paddle.nn as nn
    import paddle.nn.functional as F
    import paddle.vision.models as M

    img = (-1, 3, -1, -1)

    def net(factory, hw=None):  # hw: a net that reshapes with Python ints needs static spatial dims
        def make():
            m = factory()
            m.eval()
            return m
        return ((img if hw is None else (-1, 3, hw, hw), None), make)

    def cbr(cin, cout, k=3, s=1):
        return nn.Sequential(nn.Conv2D(cin, cout, k, s, padding=k // 2), nn.BatchNorm2D(cout), nn.ReLU())

    class UNet(nn.Layer):  # encoder/decoder with transposed conv, bilinear upsampling and skip concats
        def __init__(self):
            super().__init__()
            self.e1, self.e2, self.e3 = cbr(3, 8), cbr(8, 16, s=2), cbr(16, 32, s=2)
            self.up1 = nn.Conv2DTranspose(32, 16, 2, stride=2)
            self.d1, self.d2 = cbr(32, 16), cbr(24, 8)
            self.head = nn.Conv2D(8, 3, 1)

        def forward(self, x):
            a = self.e1(x)
            b = self.e2(a)
            c = self.e3(b)
            u = self.d1(paddle.concat([self.up1(c), b], axis=1))
            u = F.interpolate(u, size=paddle.shape(a)[2:], mode="bilinear", align_corners=False)
            return F.softmax(self.head(self.d2(paddle.concat([u, a], axis=1))), axis=1)

    class DBHead(nn.Layer):  # FPN of nearest upsamplings + DB probability head (conv-BN-ReLU-convT-convT-sigmoid)
        def __init__(self):
            super().__init__()
            self.c2, self.c3, self.c4 = cbr(3, 16, s=2), cbr(16, 16, s=2), cbr(16, 16, s=2)
            self.fuse = cbr(48, 16)
            self.t1 = nn.Conv2DTranspose(16, 8, 2, stride=2)
            self.bn = nn.BatchNorm2D(8)
            self.t2 = nn.Conv2DTranspose(8, 1, 2, stride=2)

        def forward(self, x):
            p2 = self.c2(x)
            p3 = self.c3(p2)
            p4 = self.c4(p3)
            f = paddle.concat([p2, F.upsample(p3, scale_factor=2, mode="nearest"),
                               F.upsample(p4, scale_factor=4, mode="nearest")], axis=1)
            return F.sigmoid(self.t2(F.relu(self.bn(self.t1(self.fuse(f))))))

    class SVTR(nn.Layer):  # conv stem, flatten to a sequence, attention blocks, CTC-style head
        def __init__(self, dim=32, heads=4, classes=20):
            super().__init__()
            self.stem = nn.Sequential(cbr(3, 16, s=2), cbr(16, dim, s=2))
            self.blocks = nn.LayerList([nn.TransformerEncoderLayer(dim, heads, 64, dropout=0.1,
                                                                   activation="gelu", normalize_before=True)
                                        for _ in range(2)])
            self.norm = nn.LayerNorm(dim)
            self.head = nn.Linear(dim, classes)

        def forward(self, x):
            f = paddle.mean(self.stem(x), axis=2)  # [N, C, W/4]: height pooled away, width is the sequence
            seq = f.transpose([0, 2, 1])
            for blk in self.blocks:
                seq = blk(seq)
            return F.softmax(self.head(self.norm(seq)), axis=-1)

    return {
        "mobilenet_v1": net(lambda: M.mobilenet_v1(scale=0.25, num_classes=10)),
        "mobilenet_v3_large": net(lambda: M.mobilenet_v3_large(scale=0.35, num_classes=10)),
        "squeezenet1_1": net(lambda: M.squeezenet1_1(num_classes=10)),
        "shufflenet_v2": net(lambda: M.shufflenet_v2_x0_25(num_classes=10), hw=64),
        "densenet121": net(lambda: M.densenet121(num_classes=10)),
        "googlenet": net(lambda: M.googlenet(num_classes=10), hw=192),  # aux heads: fc over 128x3x3
        "inception_v3": net(lambda: M.inception_v3(num_classes=10)),
        "vgg16": net(lambda: M.vgg16(num_classes=10)),
        "unet": net(UNet),
        "db_head": net(DBHead),
        "svtr": net(SVTR),
    }


# two input shapes per net (batch and, where the net allows it, spatial size differ); one network serves both
_VAR = [(1, 3, 64, 64), (2, 3, 72, 56)]
EXTRA_SHAPES = {"mobilenet_v1": _VAR, "mobilenet_v3_large": _VAR, "squeezenet1_1": _VAR,
                "shufflenet_v2": [(1, 3, 64, 64), (3, 3, 64, 64)],
                "googlenet": [(1, 3, 192, 192), (2, 3, 192, 192)], "unet": _VAR, "db_head": _VAR, "svtr": [(1, 3, 32, 64), (2, 3, 32, 96)],
                "densenet121": [(1, 3, 32, 32), (2, 3, 48, 40)], "inception_v3": [(1, 3, 75, 75), (2, 3, 96, 80)],
                "vgg16": [(1, 3, 32, 32), (2, 3, 40, 48)]}
EXTRA_FAST = ["mobilenet_v1", "mobilenet_v3_large", "squeezenet1_1", "shufflenet_v2", "unet", "db_head", "svtr"]
# densenet121 / googlenet / inception_v3 / vgg16: tens of MB of weights and many layers; opt-in
EXTRA_SLOW = ["densenet121", "googlenet", "inception_v3", "vgg16"] if os.environ.get("REPOGEN_SLOW_TESTS") else []


@pytest.fixture(scope="session")
def extra_models():
    from test_ops import ensure_saved

    return ensure_saved(__file__, "test_models_extra" + ("_slow" if EXTRA_SLOW else ""))


@pytest.mark.parametrize("name", EXTRA_FAST + EXTRA_SLOW)
@pytest.mark.parametrize("mode", ["pir", "legacy"])
def test_extra_model_fp32_two_shapes(extra_models, name, mode):
    from test_ops import run_case

    shapes = EXTRA_SHAPES[name]
    _, results = run_case(extra_models[mode] / name, "fp32", shapes)
    for r in results:
        assert r.passed and r.rel_l2 <= 1e-5, (name, mode, r)


@pytest.mark.parametrize("name", ["unet", "svtr", "db_head"])
def test_extra_model_fp16(extra_models, name):
    from test_ops import run_case

    _, results = run_case(extra_models["pir"] / name, "fp16", EXTRA_SHAPES[name])
    for r in results:
        assert r.passed and r.rel_l2 <= 1e-2, (name, r)


if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "_save":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from test_ops import save_cases

    cases = _extra_cases()
    keep = EXTRA_FAST + EXTRA_SLOW
    save_cases({k: v for k, v in cases.items() if k in keep}, sys.argv[2], sys.argv[3])


# --- a model quantized by Paddle's own post-training quantization (tests.support.zoo "convnet_paddle_ptq") -----
@pytest.mark.parametrize("fmt", ["paddle2", "fluid-separate", "fluid-combined"])
def test_paddle_quantized_model_matches_paddle(fmt):
    from repogen.paddle import load_model
    from repogen.trt import numpy_trt
    from repogen.trt.convert import convert_graph

    path = zoo.get("convnet_paddle_ptq", fmt)
    graph = load_model(path)
    assert any(a.dtype == np.int8 for a in graph.params.values()), "PTQ should have frozen int8 weights"
    from repogen.trt.profiles import make_profiles

    profiles = make_profiles(graph.input_values(), shape=["x:2x3x16x16"])
    network = convert_graph(graph, numpy_trt, profiles=profiles).network
    quantize = [l for l in network if l.type == numpy_trt.LayerType.QUANTIZE]
    # "only_observer" pairs only record a scale for Paddle's later passes: Paddle runs them as identity
    real = [o for o in graph.blocks[0].ops if o.type == "quantize_linear" and not o.attrs.get("only_observer")]
    assert len(real) >= 2 and len(quantize) == len(real)
    assert all(l.get_output(0).dtype == numpy_trt.int8 for l in quantize)
    int8_weights = [l for l in network if l.type == numpy_trt.LayerType.CONSTANT and l.get_output(0).dtype == numpy_trt.int8]
    assert len(int8_weights) >= 2, "frozen int8 weights should stay int8 constants behind a dequantize layer"
    # same net before quantization: the int8 simulation moves every output by 0.2-2.5 %; repogen must sit
    # far closer to Paddle's quantized outputs than that (a converter dropping Q/DQ pairs could not)
    for seed in (0, 1):
        feeds = zoo.sample_feeds("convnet_paddle_ptq", seed)
        fp32 = list(zoo.reference_outputs(zoo.get("convnet", "paddle2"), feeds).values())
        report = check_model(path, inputs=feeds)
        assert not report.unsupported and len(report.outputs) == len(fp32)
        int8 = list(zoo.reference_outputs(path, feeds).values())
        for o, a, b in zip(report.outputs, fp32, int8):
            assert o.passed and o.rel_l2 <= 1e-3, o  # judged by the prequantized fp32 rule (repogen.verify)
            assert o.rel_l2 * 20 < np.linalg.norm(a - b) / np.linalg.norm(b), o


@pytest.mark.parametrize("fmt", ["pir", "fluid-separate"])
def test_ernie_with_padded_batches(fmt):
    # trailing pad ids (0) switch the attention mask on for those keys; two batch sizes and sequence lengths
    from repogen.verify.conversion import check_model as check

    for seed, length in ((3, 7), (4, 11)):
        feeds = {k: np.resize(v, (3, length)) for k, v in zoo.sample_feeds("ernie", seed).items()}
        feeds["ids"][0, -3:] = 0
        feeds["ids"][2, -1:] = 0
        report = check(zoo.get("ernie", fmt), inputs=feeds)
        assert report.outputs and all(o.passed and o.rel_l2 <= 1e-5 for o in report.outputs), report.outputs


@pytest.mark.parametrize("fmt", ["pir", "fluid-combined"])
def test_rtdetr_head_at_another_size(fmt):
    # the anchor grid and the per-head value maps are built from the run-time H and W
    feeds = {"feat": np.random.default_rng(1).uniform(-1, 1, (3, 16, 9, 5)).astype("float32")}
    report = check_model(zoo.get("rtdetr_head", fmt), inputs=feeds)
    assert report.outputs and all(o.passed and o.rel_l2 <= 1e-5 for o in report.outputs), report.outputs


@pytest.mark.parametrize("fmt", ["pir", "fluid-separate"])
def test_crnn_at_another_width(fmt):
    # the LSTM loops run for W/2 steps, known only at run time
    feeds = {"x": np.random.default_rng(2).uniform(-1, 1, (3, 3, 8, 20)).astype("float32")}
    report = check_model(zoo.get("crnn", fmt), inputs=feeds)
    assert report.outputs and all(o.passed and o.rel_l2 <= 1e-5 for o in report.outputs), report.outputs


@pytest.mark.parametrize("name", ["resnet50", "resnet18", "mobilenet_v2"])
def test_zoo_nets_are_conditioned_for_a_1e5_check(name):
    # a random-weight net whose logits move more than ~1e-6 for a one-ulp input change cannot certify a 1e-5
    # fp32 comparison (zoo._calibrate_batch_norms): Paddle against itself is the measure
    path = zoo.get(name, "paddle2")
    feeds = zoo.sample_feeds(name)
    x = feeds["x"]
    nudged = {"x": (x * (1 + np.finfo(np.float32).eps * np.random.default_rng(0).choice([-1, 1], x.shape)))
              .astype(np.float32)}
    a = next(iter(zoo.reference_outputs(path, feeds).values()))
    b = next(iter(zoo.reference_outputs(path, nudged).values()))
    assert np.linalg.norm(a - b) / np.linalg.norm(a) < 3e-6


def test_paddle_quantized_model_in_fp16():
    # FP16 outside the Q/DQ pairs: stated bound 3e-2 against Paddle's int8 simulation (repogen.verify)
    report = check_model(zoo.get("convnet_paddle_ptq", "paddle2"), inputs=zoo.sample_feeds("convnet_paddle_ptq"),
                         fp16=True)
    assert report.outputs and all(o.passed and o.precision == "fp16" for o in report.outputs)


@pytest.mark.parametrize("fmt", ["pir", "fluid-separate"])
def test_yolo_head_at_another_size(fmt):
    # yolo_box grids and the number of NMS candidates follow the run-time image size; detections compare as
    # sets (repogen.verify.as_detection_set) and the per-image counts exactly
    rng = np.random.default_rng(5)
    feeds = {"image": rng.uniform(-1, 1, (3, 3, 96, 80)).astype("float32"),
             "im_size": np.array([[96, 80], [90, 70], [96, 80]], np.int32)}
    report = check_model(zoo.get("yolo_head", fmt), inputs=feeds)
    assert report.outputs and all(o.passed for o in report.outputs), report.outputs
    assert report.outputs[0].shape[1] == 6 and report.outputs[1].shape == [3]
