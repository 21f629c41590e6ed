"""repogen.toml parsing: every key, and clear errors naming the key and the model."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from repogen.cli import build_parser
from repogen.errors import ConfigError
from repogen.build.spec import EXAMPLE_DIR, load_spec_file, specs_from_options
from repogen.naming import validate_name
from repogen.cli.build import build_options

FULL = """
[[model]]
source = "@example"
name = "cnn"
version = 3
target = "paddle"
precision = "fp16"
max_batch_size = 4
cuda_graphs = true
workspace_mb = 512
optimization_level = 5
check = false
template = "my.pbtxt.j2"
labels = "labels.txt"

[[model.profile]]
image = { min = [1, 3, 32, 32], opt = [2, 3, 32, 32], max = [4, 3, 32, 32] }
[[model.profile]]
image = { min = [1, 3, 32, 32], max = [2, 3, 32, 32] }

[[model.instance_group]]
count = 2
kind = "gpu"
gpus = [0, 1]
profile = [1]

[model.dynamic_batching]
preferred_batch_size = [2, 4]
max_queue_delay_microseconds = 50

[model.warmup]
batch_size = 2
data = "random"

[[model]]
source = "@example"
name = "second"
"""


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "my.pbtxt.j2").write_text("x")
    (tmp_path / "labels.txt").write_text("a\n")
    p = tmp_path / "repogen.toml"
    p.write_text(text)
    return p


def test_every_key(tmp_path: Path) -> None:
    a, b = load_spec_file(write(tmp_path, FULL))
    assert a.source == EXAMPLE_DIR and a.name == "cnn" and a.version == 3 and a.target == "paddle"
    assert a.precision == "fp16" and a.max_batch_size == 4 and a.cuda_graphs and not a.check
    assert a.workspace_mb == 512 and a.optimization_level == 5
    assert a.template == tmp_path / "my.pbtxt.j2" and a.labels == tmp_path / "labels.txt"
    assert a.min_shapes == ["image:1x3x32x32", "image:1x3x32x32"]
    assert a.opt_shapes == ["image:2x3x32x32", "image:2x3x32x32"]  # opt defaults to max
    assert a.max_shapes == ["image:4x3x32x32", "image:2x3x32x32"]
    (g,) = a.instance_groups
    assert (g.count, g.kind, g.gpus, g.profile) == (2, "KIND_GPU", [0, 1], [1])
    assert a.dynamic_batching.preferred_batch_size == [2, 4] and a.dynamic_batching.max_queue_delay_microseconds == 50
    assert (a.warmup.batch_size, a.warmup.data) == (2, "random")
    assert b.name == "second" and b.target == "auto" and b.version == 1 and b.labels == EXAMPLE_DIR / "labels.txt"


@pytest.mark.parametrize("replace,message", [
    (("version = 3", "version = 0"), r"model\[0\] \(cnn\)\.version: version folder '0'"),
    (("version = 3", 'version = "01"'), r"\.version: version folder '01' must be a positive integer"),
    (('target = "paddle"', 'target = "onnx"'), r"\(cnn\)\.target: 'onnx' is not one of tensorrt, paddle, numpy, auto"),
    (('precision = "fp16"', 'precision = "int4"'), r"\.precision: 'int4'"),
    (("max_batch_size = 4", "max_batch_size = -1"), r"\.max_batch_size: expected an integer >= 0"),
    (("cuda_graphs = true", 'cuda_graphs = "yes"'), r"\.cuda_graphs: expected true or false"),
    (("workspace_mb = 512", "worksapce_mb = 512"), r"model\[0\] \(cnn\): unknown key 'worksapce_mb'"),
    (('kind = "gpu"', 'kind = "tpu"'), r"instance_group\[0\]\.kind: 'tpu'"),
    (("count = 2", "count = 0"), r"instance_group\[0\]\.count: expected an integer >= 1"),
    (("max_queue_delay_microseconds = 50", "max_delay = 50"), r"dynamic_batching: unknown key 'max_delay'"),
    (('data = "random"', 'data = "ones"'), r"warmup\.data: 'ones'"),
    (("optimization_level = 5", "optimization_level = 9"), r"optimization_level: expected 0\.\.5"),
    (('source = "@example"\nname = "cnn"', 'source = "nope/model.pdmodel"\nname = "cnn"'),
     r"\.source: .*nope/model\.pdmodel does not exist"),
    (('image = { min = [1, 3, 32, 32], max', 'image = { mn = [1, 3, 32, 32], max'), r"profile\[1\]\.image: unknown key 'mn'"),
    (('name = "second"', 'name = "cnn"'), r"model name 'cnn' appears twice"),
    (('name = "second"', 'name = "../up"'), r"model\[1\] \(\.\./up\)\.name: model name '../up' contains a path separator"),
    (('labels = "labels.txt"', 'labels = 3'), r"\.labels: expected a path string"),
])
def test_bad_values_name_the_key(tmp_path: Path, replace: tuple[str, str], message: str) -> None:
    assert replace[0] in FULL
    with pytest.raises(ConfigError, match=message):
        load_spec_file(write(tmp_path, FULL.replace(replace[0], replace[1], 1)))


def test_unknown_top_level_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown top-level key 'models'"):
        load_spec_file(write(tmp_path, "[[models]]\nname = 'x'\n"))
    with pytest.raises(ConfigError, match=r"repogen.toml: not valid TOML"):
        load_spec_file(write(tmp_path, "[[model]\n"))
    with pytest.raises(ConfigError, match=r"spec file not found"):
        load_spec_file(tmp_path / "missing.toml")


@pytest.mark.parametrize("name,message", [
    ("", "empty model name"), ("a/b", "path separator"), ("a\\b", "path separator"), ("..", "path separator"),
    (".hidden", "starts with a dot"), ("sp ace", "may only use"), ("ü", "may only use"), ("x" * 129, "may only use"),
])
def test_bad_names(name: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        validate_name(name)


@pytest.mark.parametrize("name", ["resnet50", "a.b-c_d", "0model", "x" * 128])
def test_good_names(name: str) -> None:
    assert validate_name(name) == name


def parse(argv: list[str]) -> argparse.Namespace:
    return build_parser().parse_args(["build", "--out", "o", *argv])


def test_cli_options_to_spec() -> None:
    (s,) = specs_from_options(build_options(parse(["--name", "n", "--fp16", "--target", "paddle", "--max-batch-size", "2",
                                  "--instances", "3", "--min-shapes", "image:1x3x32x32",
                                  "--max-shapes", "image:2x3x32x32", "--no-check", "--version-folder", "7"])))
    assert (s.name, s.precision, s.target, s.max_batch_size, s.version, s.check) == ("n", "fp16", "paddle", 2, 7, False)
    assert s.instance_groups[0].count == 3 and s.min_shapes == ["image:1x3x32x32"]
    assert s.source == EXAMPLE_DIR


def test_cli_conflicts(tmp_path: Path) -> None:
    spec = write(tmp_path, FULL)
    with pytest.raises(ConfigError, match=r"--name cannot be combined with --spec"):
        specs_from_options(build_options(parse(["--spec", str(spec), "--name", "x"])))
    with pytest.raises(ConfigError, match=r"--name needs exactly one MODEL"):
        specs_from_options(build_options(parse([str(EXAMPLE_DIR), str(EXAMPLE_DIR), "--name", "x"])))
    with pytest.raises(ConfigError, match=r"--shape: 'image1x3' is not NAME:DIMS"):
        specs_from_options(build_options(parse(["--shape", "image1x3"])))
    # the spec's own target survives when --target is not given, and --target overrides it when given
    assert specs_from_options(build_options(parse(["--spec", str(spec)])))[0].target == "paddle"
    assert specs_from_options(build_options(parse(["--spec", str(spec), "--target", "auto"])))[0].target == "auto"
