"""--input-names / --output-names (and the spec's input_names / output_names): Triton's names for a model's
inputs and outputs, carried into config.pbtxt, the plan's tensors, model.py and the manifest."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from repogen import cli
from repogen.errors import ConfigError
from repogen.naming import parse_renames
from repogen.build import flow as build_mod
from repogen.build.spec import EXAMPLE_DIR, ModelSpec, load_spec_file
from repogen.build.targets import TensorRTStatus


def test_parse_renames() -> None:
    assert parse_renames("linear_0.tmp_1:scores, image:pixels", "--output-names") == \
        {"linear_0.tmp_1": "scores", "image": "pixels"}
    assert parse_renames("a:b:c", "--x") == {"a:b": "c"}  # the last ':' splits
    with pytest.raises(ConfigError, match=r"--input-names: 'image' is not OLD:NEW"):
        parse_renames("image", "--input-names")
    with pytest.raises(ConfigError, match="renamed twice"):
        parse_renames("a:b,a:c", "--x")


def test_spec_keys(tmp_path: Path) -> None:
    spec = tmp_path / "repogen.toml"
    spec.write_text('[[model]]\ninput_names = { image = "pixels" }\noutput_names = { probs = "scores" }\n')
    (s,) = load_spec_file(spec)
    assert (s.input_names, s.output_names) == ({"image": "pixels"}, {"probs": "scores"})
    spec.write_text('[[model]]\ninput_names = { image = 3 }\n')
    with pytest.raises(ConfigError, match=r"model\[0\]\.input_names: expected a table of old = \"new\" names"):
        load_spec_file(spec)


@pytest.mark.parametrize("args,message", [
    (["--input-names", "nope:x"], "input_names renames 'nope', which is not a model input (the model's inputs: image)"),
    (["--output-names", "probs:image", "--input-names", "image:image"], "'image' names more than one"),
    (["--output-names", "probs:bad name"], "new name 'bad name' for 'probs' may only use"),
])
def test_bad_renames(tmp_path: Path, capsys: pytest.CaptureFixture, args: list[str], message: str) -> None:
    rc = cli.main(["build", "--out", str(tmp_path / "repo"), "--no-check", *args])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "repo").exists()


def test_paddle_target_renamed(tmp_path: Path) -> None:
    """config, manifest and model.py; the shape options may use the new name."""
    spec = ModelSpec(source=EXAMPLE_DIR, name="m", target="paddle", input_names={"image": "pixels"},
                     output_names={"probs": "scores"}, max_shapes=["pixels:4x3x32x32"])
    report = build_mod.build_repository([spec], tmp_path / "repo", progress=False)
    assert report.models[0].check["status"] == "passed"  # the check ran on Paddle's names
    model = tmp_path / "repo" / "m"
    cfg = text_format.Parse((model / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
    assert [t.name for t in cfg.input] == ["pixels"] and [t.name for t in cfg.output] == ["scores"]
    assert cfg.max_batch_size == 4
    man = json.loads((model / "repogen.json").read_text())
    assert man["paddle_names"] == {"pixels": "image", "scores": "probs"}
    assert [t["name"] for t in man["inputs"]] == ["pixels"] and list(man["profiles"][0]) == ["pixels"]
    assert "PADDLE_NAMES = {'pixels': 'image', 'scores': 'probs'}" in (model / "1" / "model.py").read_text()


def test_plan_tensors_renamed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The tensorrt target through the real build_plan/convert_graph, with the NumPy backend standing in
    for TensorRT up to serialization: the network's inputs/outputs carry the new names and still compute
    Paddle's answer."""
    from repogen.reference import reference_outputs
    from repogen.trt import engine as engine_mod
    from repogen.trt import numpy_trt

    seen = []

    def serialize(conversion, **kwargs):
        seen.append(conversion)
        return b"PLAN", b""

    monkeypatch.setattr(build_mod, "tensorrt_status", lambda: TensorRTStatus(numpy_trt, ""))
    monkeypatch.setattr(engine_mod, "build_engine", serialize)
    spec = ModelSpec(source=EXAMPLE_DIR, name="m", target="tensorrt", check=False,
                     input_names={"image": "pixels"}, output_names={"probs": "scores"},
                     min_shapes=["pixels:1x3x32x32"], max_shapes=["image:4x3x32x32"])
    build_mod.build_repository([spec], tmp_path / "repo", progress=False)
    (conv,) = seen
    net = conv.network
    assert [net.get_input(i).name for i in range(net.num_inputs)] == ["pixels"]
    assert [net.get_output(i).name for i in range(net.num_outputs)] == ["scores"]
    x = np.random.default_rng(0).standard_normal((3, 3, 32, 32)).astype(np.float32)
    got = numpy_trt.execute(net, {"pixels": x})["scores"]
    want = reference_outputs(EXAMPLE_DIR, {"image": x})["probs"]
    assert np.linalg.norm(got - want) / np.linalg.norm(want) <= 1e-5
    model = tmp_path / "repo" / "m"
    cfg = text_format.Parse((model / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
    assert cfg.platform == "tensorrt_plan" and [t.name for t in cfg.input] == ["pixels"]
    assert [t.name for t in cfg.output] == ["scores"] and cfg.max_batch_size == 4
    man = json.loads((model / "repogen.json").read_text())
    assert man["paddle_names"] == {"pixels": "image", "scores": "probs"}
    assert man["profiles"] == [{"pixels": {"min": [1, 3, 32, 32], "opt": [4, 3, 32, 32], "max": [4, 3, 32, 32]}}]


def test_swapped_names_feed_the_right_tensors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Inputs x and y renamed to each other: the names alone would pair them wrongly; the plan's network and
    the validation reference (manifest paddle_names) both feed Triton's "y" into Paddle's x."""
    from tests.support import zoo
    from repogen.harness.model_files import read_model_folder
    from repogen.harness.reference import PaddleReference
    from repogen.reference import reference_outputs
    from repogen.trt import engine as engine_mod
    from repogen.trt import numpy_trt

    source = zoo.get("elementwise", "pir")
    rng = np.random.default_rng(1)
    a = rng.standard_normal((2, 3, 8)).astype(np.float32)
    b = rng.standard_normal((2, 3, 8)).astype(np.float32)
    (want,) = reference_outputs(source, {"x": a, "y": b}).values()
    renames = {"input_names": {"x": "y", "y": "x"}, "check": False, "max_batch_size": 0,
               "shape": ["x:2x3x8,y:2x3x8"]}  # new names (in a swap, a name means the new one)

    build_mod.build_repository([ModelSpec(source=source, name="paddle_m", target="paddle", **renames)],
                               tmp_path / "repo", progress=False)
    ref = PaddleReference(read_model_folder(tmp_path / "repo" / "paddle_m"))
    try:
        (got,) = ref.run({"y": a, "x": b}).values()
    finally:
        ref.close()
    np.testing.assert_array_equal(got, want)

    seen = []
    monkeypatch.setattr(build_mod, "tensorrt_status", lambda: TensorRTStatus(numpy_trt, ""))
    monkeypatch.setattr(engine_mod, "build_engine", lambda conv, **kw: (seen.append(conv), (b"PLAN", b""))[1])
    build_mod.build_repository([ModelSpec(source=source, name="plan_m", target="tensorrt", **renames)],
                               tmp_path / "repo", progress=False)
    net = seen[0].network
    assert [net.get_input(i).name for i in range(net.num_inputs)] == ["y", "x"]
    (got,) = numpy_trt.execute(net, {"y": a, "x": b}).values()
    assert np.linalg.norm(got - want) / np.linalg.norm(want) <= 1e-5
