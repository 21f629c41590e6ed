"""repogen build --add-plan: plans for several GPU architectures in one model folder.

No GPU here: TensorRT is the NumPy backend (the real build_plan converts the model) and only the engine
serialization is stubbed; the stub reports the compute capability and TensorRT version a test chooses, as a
machine with another GPU would."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from repogen import cli
from repogen.errors import ConfigError
from repogen.trt import engine, numpy_trt
from repogen.build import flow as build_mod
from repogen.repository import multiplan
from repogen.build import targets
from repogen.build.spec import EXAMPLE_DIR, ModelSpec

NAME = "tiny"
ROOT = Path(__file__).resolve().parent.parent


class FakeGPU:
    """What the stubbed builder reports: this machine's compute capability and TensorRT version."""

    def __init__(self) -> None:
        self.cc = "8.9"
        self.version = "10.8.0"
        self.built: list[str] = []

    def build_engine(self, conversion: Any, **kw: Any) -> tuple[bytes, bytes]:
        self.built.append(self.cc)
        return f"PLAN sm{self.cc} trt{self.version} #{len(self.built)}".encode(), b""


@pytest.fixture
def gpu(monkeypatch: pytest.MonkeyPatch) -> FakeGPU:
    fake = FakeGPU()
    monkeypatch.setattr(build_mod, "tensorrt_status", lambda: targets.TensorRTStatus(numpy_trt, ""))
    monkeypatch.setattr(engine, "build_engine", fake.build_engine)
    monkeypatch.setattr(targets, "compute_capability", lambda: fake.cc)
    monkeypatch.setattr(numpy_trt, "__version__", None, raising=False)

    real_build_plan = targets.build_plan

    def build_plan(*args: Any, **kw: Any) -> Any:
        numpy_trt.__version__ = fake.version  # read by build_plan as trt.__version__
        return real_build_plan(*args, **kw)

    monkeypatch.setattr(build_mod, "build_plan", build_plan)
    return fake


def spec(**kw: Any) -> ModelSpec:
    return ModelSpec(**({"source": EXAMPLE_DIR, "name": NAME, "target": "tensorrt", "check": False} | kw))


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def staging_dirs(out: Path) -> list[Path]:
    return [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.repogen-tmp-")]


def first_build(out: Path, gpu: FakeGPU, **kw: Any) -> Path:
    build_mod.build_repository([spec(**kw)], out, progress=False)
    return out / NAME


def test_add_a_plan_for_a_second_gpu(tmp_path: Path, gpu: FakeGPU) -> None:
    out = tmp_path / "repo"
    model = first_build(out, gpu)
    first = (model / "1" / "model.plan").read_bytes()
    assert first.startswith(b"PLAN sm8.9")
    assert "cc_model_filenames" not in (model / "config.pbtxt").read_text()  # one plan: default_model_filename

    gpu.cc = "9.0"
    report = build_mod.build_repository([spec()], out, progress=False, add_plan=True)
    assert report.models[0].files == ["1/model.plan", "1/model_9.0.plan", "config.pbtxt", "repogen.json"]
    assert (model / "1" / "model.plan").read_bytes() == first  # the first plan is untouched
    assert (model / "1" / "model_9.0.plan").read_bytes().startswith(b"PLAN sm9.0")
    cfg = text_format.Parse((model / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
    assert dict(cfg.cc_model_filenames) == {"8.9": "model.plan", "9.0": "model_9.0.plan"}
    assert cfg.default_model_filename == "model.plan" and cfg.platform == "tensorrt_plan"
    trt = json.loads((model / "repogen.json").read_text())["tensorrt"]
    assert trt["cc_model_filenames"] == {"8.9": "model.plan", "9.0": "model_9.0.plan"}
    assert {f: (p["compute_capability"], p["version"]) for f, p in trt["plans"].items()} == \
        {"model.plan": ("8.9", "10.8.0"), "model_9.0.plan": ("9.0", "10.8.0")}
    import hashlib
    for f, p in trt["plans"].items():
        assert p["sha256"] == hashlib.sha256((model / "1" / f).read_bytes()).hexdigest()

    # a third architecture, through the command line
    gpu.cc = "10.0"
    assert cli.main(["build", str(EXAMPLE_DIR), "--name", NAME, "--out", str(out), "--target", "tensorrt",
                     "--no-check", "--add-plan", "--json"]) == 0
    cfg = text_format.Parse((model / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
    assert dict(cfg.cc_model_filenames) == {"8.9": "model.plan", "9.0": "model_9.0.plan", "10.0": "model_10.0.plan"}
    assert sorted(json.loads((model / "repogen.json").read_text())["tensorrt"]["plans"]) == \
        ["model.plan", "model_10.0.plan", "model_9.0.plan"]
    assert (model / "1" / "model.plan").read_bytes() == first and not staging_dirs(out)


def test_same_capability_needs_force(tmp_path: Path, gpu: FakeGPU, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "repo"
    model = first_build(out, gpu)
    gpu.cc = "9.0"
    build_mod.build_repository([spec()], out, progress=False, add_plan=True)
    before = snapshot(model)
    argv = ["build", str(EXAMPLE_DIR), "--name", NAME, "--out", str(out), "--target", "tensorrt", "--no-check",
            "--add-plan"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "already has a plan for compute capability 9.0 (model_9.0.plan); pass --force" in err
    assert snapshot(model) == before and not staging_dirs(out)
    assert cli.main(argv + ["--force"]) == 0
    after = snapshot(model)
    assert after["1/model_9.0.plan"] != before["1/model_9.0.plan"]  # rebuilt
    assert after["1/model.plan"] == before["1/model.plan"]
    assert after["config.pbtxt"] == before["config.pbtxt"]


def test_other_tensorrt_version_is_refused(tmp_path: Path, gpu: FakeGPU) -> None:
    out = tmp_path / "repo"
    model = first_build(out, gpu)
    before = snapshot(model)
    gpu.cc, gpu.version = "9.0", "10.9.0"
    with pytest.raises(ConfigError, match=r"TensorRT 10\.8\.0, this one with TensorRT 10\.9\.0"):
        build_mod.build_repository([spec()], out, progress=False, add_plan=True)
    assert snapshot(model) == before and not staging_dirs(out)


@pytest.mark.parametrize("change,message", [
    ({"max_shapes": ["image:4x3x32x32"]}, "max_batch_size, profiles"),
    ({"precision": "fp16"}, "precision"),
    ({"output_names": {"probs": "scores"}}, "outputs"),
    ({"instances": 2}, "instance_group"),
])
def test_different_engine_or_settings_are_refused(tmp_path: Path, gpu: FakeGPU, change: dict, message: str) -> None:
    out = tmp_path / "repo"
    model = first_build(out, gpu)
    before = snapshot(model)
    gpu.cc = "9.0"
    if "instances" in change:
        from repogen.build.spec import InstanceGroup

        change = {"instance_groups": [InstanceGroup(count=change["instances"])]}
    with pytest.raises(ConfigError, match=message):
        build_mod.build_repository([spec(**change)], out, progress=False, add_plan=True)
    assert snapshot(model) == before and not staging_dirs(out)


def test_existing_config_is_cross_checked_against_the_new_engine(tmp_path: Path, gpu: FakeGPU,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The manifest comparison aside, the folder's own config.pbtxt goes through the build's checker against
    the new plan's engine."""
    from dataclasses import replace

    out = tmp_path / "repo"
    model = first_build(out, gpu)
    before = snapshot(model)
    gpu.cc = "9.0"
    real_merge = multiplan.merge

    def merge(existing: Any, version: int, data: dict, **kw: Any) -> Any:
        eng = kw["engine"]  # an engine whose output is named otherwise than in the folder's config
        return real_merge(existing, version, data, **(kw | {"engine": replace(eng, outputs=[
            replace(eng.outputs[0], name="other")])}))

    monkeypatch.setattr(multiplan, "merge", merge)
    with pytest.raises(ConfigError, match=r"(?s)\(existing\) against the plan for 9\.0.*output 'probs' is not an "
                                          r"engine output \(engine has: other\)"):
        build_mod.build_repository([spec()], out, progress=False, add_plan=True)
    assert snapshot(model) == before and not staging_dirs(out)


def test_failure_mid_add_leaves_the_folder_byte_identical(tmp_path: Path, gpu: FakeGPU,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "repo"
    model = first_build(out, gpu)
    before = snapshot(model)
    inode = (model / "1" / "model.plan").stat().st_ino
    gpu.cc = "9.0"

    def broken_dumps(data: Any) -> str:
        # the new plan is already in the staging folder when the manifest is written
        staged = [p for p in staging_dirs(out)]
        assert staged and list(staged[0].rglob("model_9.0.plan"))
        raise OSError(28, "No space left on device", str(staged[0] / "repogen.json"))

    monkeypatch.setattr(multiplan, "dumps", broken_dumps)
    with pytest.raises(ConfigError, match="cannot write the repository"):
        build_mod.build_repository([spec()], out, progress=False, add_plan=True)
    assert snapshot(model) == before and not staging_dirs(out)
    assert (model / "1" / "model.plan").stat().st_ino == inode


def test_add_plan_needs_a_tensorrt_model_folder(tmp_path: Path, gpu: FakeGPU) -> None:
    out = tmp_path / "repo"
    with pytest.raises(ConfigError, match="there is none here"):
        build_mod.build_repository([spec()], out, progress=False, add_plan=True)
    assert not out.exists()
    build_mod.build_repository([spec(target="paddle")], out, progress=False)
    with pytest.raises(ConfigError, match="needs a TensorRT model; this one is target 'paddle'"):
        build_mod.build_repository([spec()], out, progress=False, add_plan=True)
    build_mod.build_repository([spec(name="trt")], out, progress=False)
    with pytest.raises(ConfigError, match=r"version 2, which does not exist \(versions: 1\)"):
        build_mod.build_repository([spec(name="trt", version=2)], out, progress=False, add_plan=True)


def test_every_served_version_must_hold_every_plan(tmp_path: Path, gpu: FakeGPU) -> None:
    from repogen.repository.serving_options import VersionPolicy

    out = tmp_path / "repo"
    both = VersionPolicy(kind="all")
    model = first_build(out, gpu, version_policy=both)
    build_mod.build_repository([spec(version=2, version_policy=both)], out, progress=False)
    before = snapshot(model)
    gpu.cc = "9.0"
    with pytest.raises(ConfigError, match="version 1 has no model_9.0.plan, and the version_policy serves it"):
        build_mod.build_repository([spec(version=2, version_policy=both)], out, progress=False, add_plan=True)
    assert snapshot(model) == before
    # the default policy serves only the latest version: version 1 without the plan is fine
    gpu.cc = "8.9"
    build_mod.build_repository([spec(version=2)], out, progress=False, force=True)
    gpu.cc = "9.0"
    build_mod.build_repository([spec(version=2)], out, progress=False, add_plan=True)
    assert sorted(p.name for p in (model / "2").iterdir()) == ["model.plan", "model_9.0.plan"]
    assert sorted(p.name for p in (model / "1").iterdir()) == ["model.plan"]
    assert snapshot(model)["1/model.plan"] == before["1/model.plan"]


# a child process with the stubbed GPU of the fixture above: compute capability and TensorRT version from argv
_CHILD = """
import sys
from repogen import cli
from repogen.trt import engine, numpy_trt
from repogen.build import flow as build, targets
cc, version, *argv = sys.argv[1:]
numpy_trt.__version__ = version
build.tensorrt_status = lambda: targets.TensorRTStatus(numpy_trt, "")
engine.build_engine = lambda conversion, **kw: (f"PLAN sm{cc} trt{version}".encode(), b"")
targets.compute_capability = lambda: cc
sys.exit(cli.main(argv))
"""


def _child(cc: str, out: Path, *extra: str, pause: str | None = None) -> subprocess.Popen:
    argv = ["build", str(EXAMPLE_DIR), "--name", NAME, "--out", str(out), "--target", "tensorrt", "--no-check",
            *extra]
    env = {**os.environ, **({"REPOGEN_TEST_PAUSE_AFTER": pause} if pause else {})}
    return subprocess.Popen([sys.executable, "-c", _CHILD, cc, "10.8.0", *argv], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _paused(proc: subprocess.Popen, stage: str) -> None:
    deadline = time.monotonic() + 120
    for line in proc.stderr:
        if line.startswith(f"REPOGEN_TEST_PAUSED {stage}"):
            return
        assert time.monotonic() < deadline
    raise AssertionError(f"build never reached {stage} (rc {proc.wait()})")


def test_kill_9_mid_add_leaves_the_folder_byte_identical(tmp_path: Path) -> None:
    out = tmp_path / "repo"
    assert _child("8.9", out).wait(timeout=300) == 0
    model = out / NAME
    before = snapshot(model)
    proc = _child("9.0", out, "--add-plan", pause="copy")
    try:
        _paused(proc, "copy")
        (stage,) = staging_dirs(out)  # the new plan is written, in the staging folder only
        assert (stage / NAME / "1" / "model_9.0.plan").read_bytes() == b"PLAN sm9.0 trt10.8.0"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert snapshot(model) == before
    # the next add clears the dead build's staging folder and completes
    assert _child("9.0", out, "--add-plan").wait(timeout=300) == 0
    assert not staging_dirs(out)
    after = snapshot(model)
    assert after["1/model.plan"] == before["1/model.plan"] == b"PLAN sm8.9 trt10.8.0"
    assert after["1/model_9.0.plan"] == b"PLAN sm9.0 trt10.8.0"
    assert 'cc_model_filenames { key: "9.0" value: "model_9.0.plan" }' in after["config.pbtxt"].decode()
