"""repogen build end to end on the bundled example: CLI, targets, manifest, --force, atomicity, sample_repo."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from repogen.errors import ConfigError
from repogen.build import flow as build_mod
from repogen.build.spec import EXAMPLE_DIR, ModelSpec
from repogen.build.targets import PlanBuild, TensorRTStatus
from repogen.repository.engine import graph_engine
from repogen.verify import rule_for

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_repo"
FALLBACK = "WARNING: TensorRT unavailable"


def repogen(*args: str, env: dict | None = None, check: bool = False) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "repogen.cli", "build", *args], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, **(env or {})}, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def snapshot(folder: Path) -> dict[str, bytes]:
    # __pycache__: written by Triton's Python backend when someone served the folder, not by repogen
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts}


def staging_dirs(out: Path) -> list[Path]:
    return [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.repogen-tmp-")]


def test_default_build_falls_back_to_paddle_with_one_warning(tmp_path: Path) -> None:
    out = tmp_path / "model_repository"
    proc = repogen("--out", str(out), "--json", check=True)
    report = json.loads(proc.stdout)  # stdout holds the JSON object and nothing else
    assert proc.stdout.count("\n") == 1
    assert [line for line in proc.stderr.splitlines() if "WARNING" in line] == \
        [line for line in proc.stderr.splitlines() if line.startswith(FALLBACK)]
    assert sum(line.startswith(FALLBACK) for line in proc.stderr.splitlines()) == 1
    (m,) = report["models"]
    assert (m["name"], m["target"], m["max_batch_size"]) == ("tiny_cnn", "paddle", 8)
    # paddle is installed here, so the NumPy-backend conversion was compared with Paddle
    probs = m["check"]["outputs"]["probs"]
    assert m["check"]["status"] == "passed" and probs["passed"] and probs["rel_l2"] <= 1e-5
    model = out / "tiny_cnn"
    assert sorted(snapshot(model)) == ["1/inference.pdiparams", "1/inference.pdmodel", "1/model.py",
                                       "config.pbtxt", "labels.txt", "repogen.json"]
    cfg = text_format.Parse((model / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
    assert cfg.backend == "python" and cfg.max_batch_size == 8 and list(cfg.input[0].dims) == [3, 32, 32]
    assert cfg.output[0].label_filename == "labels.txt"
    man = json.loads((model / "repogen.json").read_text())
    assert man["target"] == "paddle" and man["format"] == "paddle2" and man["tensorrt"] is None
    # the verification core's rule the build was judged by (validate judges the served model by the same)
    assert man["tolerance"] == rule_for("fp32", False).to_dict() and man["precision"] == "fp32"
    assert man["inputs"] == [{"name": "image", "dtype": "float32", "shape": [-1, 3, 32, 32]}]
    assert man["outputs"] == [{"name": "probs", "dtype": "float32", "shape": [-1, 10]}]
    assert man["profiles"] == [{"image": {"min": [1, 3, 32, 32], "opt": [8, 3, 32, 32], "max": [8, 3, 32, 32]}}]
    assert (model / man["source"]["path"]).resolve() == (EXAMPLE_DIR / "inference.pdmodel").resolve()
    import hashlib
    for name, digest in man["source"]["files"].items():
        assert hashlib.sha256((model / "1" / name).read_bytes()).hexdigest() == digest
        assert (model / "1" / name).read_bytes() == (EXAMPLE_DIR / name).read_bytes()
    assert not staging_dirs(out)


def test_target_tensorrt_without_tensorrt_is_a_clear_error(tmp_path: Path) -> None:
    out = tmp_path / "repo"
    proc = repogen("--out", str(out), "--target", "tensorrt", "--no-check")
    assert proc.returncode == 2
    assert "--target tensorrt (tiny_cnn):" in proc.stderr and "--target paddle" in proc.stderr
    assert FALLBACK not in proc.stderr
    assert not out.exists() and not staging_dirs(out)


def test_refuse_then_force_replaces_whole_model(tmp_path: Path) -> None:
    out = tmp_path / "repo"
    repogen("--out", str(out), "--no-check", "--max-batch-size", "4", check=True)
    (out / "tiny_cnn" / "1" / "stale.txt").write_text("from an older build")
    (out / "keep_me").mkdir()
    (out / "keep_me" / "config.pbtxt").write_text('name: "keep_me"\n')
    before = snapshot(out)
    # a file repogen did not write sits in the folder: --force would delete it, so the build is refused
    for force in ((), ("--force",)):
        proc = repogen("--out", str(out), "--no-check", "--max-batch-size", "2", *force)
        assert proc.returncode == 2 and "files repogen did not write there (1/stale.txt)" in proc.stderr
        assert snapshot(out) == before
    (out / "tiny_cnn" / "1" / "stale.txt").unlink()
    before = snapshot(out)
    proc = repogen("--out", str(out), "--no-check", "--max-batch-size", "2")
    assert proc.returncode == 2 and "version 1 already exists; pass --force" in proc.stderr
    assert snapshot(out) == before
    repogen("--out", str(out), "--no-check", "--max-batch-size", "2", "--force", check=True)
    after = snapshot(out)
    assert "max_batch_size: 2" in after["tiny_cnn/config.pbtxt"].decode()
    assert after["keep_me/config.pbtxt"] == before["keep_me/config.pbtxt"]
    assert not staging_dirs(out)


def test_force_never_trusts_a_copied_or_edited_mark(tmp_path: Path) -> None:
    """Ownership is what the mark proves: a repogen.json copied into a user's folder, or a file repogen wrote
    that someone changed since, makes the folder a user's (refused, --force or not, nothing deleted)."""
    out = tmp_path / "repo"
    repogen("--out", str(out), "--no-check", check=True)
    user = out / "mine"
    (user / "1").mkdir(parents=True)
    (user / "1" / "weights.bin").write_bytes(b"precious")
    (user / "config.pbtxt").write_text('name: "mine"\n')
    mark = json.loads((out / "tiny_cnn" / "repogen.json").read_text())
    (user / "repogen.json").write_text(json.dumps(mark | {"model_name": "mine"}))
    before = snapshot(out)
    proc = repogen("--out", str(out), "--no-check", "--name", "mine", "--force")
    assert proc.returncode == 2 and "files repogen did not write there (1/weights.bin)" in proc.stderr
    assert snapshot(out) == before
    (out / "tiny_cnn" / "1" / "model.py").write_text("# edited by hand\n")
    before = snapshot(out)
    proc = repogen("--out", str(out), "--no-check", "--force")
    assert proc.returncode == 2 and "1/model.py changed since repogen wrote it" in proc.stderr
    assert snapshot(out) == before


@pytest.mark.parametrize("name,message", [
    (".hidden", "starts with a dot"), ("a/b", "path separator"), ("", "empty model name"), ("x y", "may only use")])
def test_bad_model_names_write_nothing(tmp_path: Path, name: str, message: str) -> None:
    out = tmp_path / "repo"
    proc = repogen("--out", str(out), "--name", name, "--no-check")
    assert proc.returncode == 2 and message in proc.stderr
    assert not out.exists() and not staging_dirs(out)


def test_config_mismatch_stops_before_writing(tmp_path: Path) -> None:
    out = tmp_path / "repo"
    template = tmp_path / "batch_in_dims.pbtxt.j2"
    template.write_text('name: {{ name | q }}\nbackend: "python"\nmax_batch_size: {{ max_batch_size }}\n'
                        'input { name: "image" data_type: TYPE_FP32 dims: [ -1, 3, 32, 32 ] }\n'
                        'output { name: "probs" data_type: TYPE_FP32 dims: [ 10 ] }\n')
    proc = repogen("--out", str(out), "--no-check", "--target", "paddle", "--template", str(template))
    assert proc.returncode == 2
    assert "input image: dims [-1, 3, 32, 32] include the batch dim" in proc.stderr
    assert not out.exists() and not staging_dirs(out)


def _start_paused(out: Path, stage: str, *extra: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "repogen.cli", "build", "--out", str(out), "--no-check", *extra],
                            cwd=ROOT, env={**os.environ, "REPOGEN_TEST_PAUSE_AFTER": stage},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    for line in proc.stderr:
        if line.startswith(f"REPOGEN_TEST_PAUSED {stage}"):
            return proc
        assert time.monotonic() < deadline
    raise AssertionError(f"build never reached {stage} (rc {proc.wait()})")


def test_kill_9_mid_build_leaves_repository_byte_identical(tmp_path: Path) -> None:
    out = tmp_path / "repo"
    repogen("--out", str(out), "--no-check", "--max-batch-size", "4", check=True)
    before = snapshot(out)
    proc = _start_paused(out, "copy", "--max-batch-size", "2", "--force")
    # the model files are in the staging folder by now, none of them under --out
    (stage,) = staging_dirs(out)
    assert (stage / "tiny_cnn" / "1" / "inference.pdmodel").is_file()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert snapshot(out) == before
    # the next build clears the dead build's staging folder
    repogen("--out", str(out), "--no-check", "--max-batch-size", "2", "--force", check=True)
    assert not staging_dirs(out)
    assert "max_batch_size: 2" in (out / "tiny_cnn" / "config.pbtxt").read_text()


def test_kill_9_during_commit_leaves_each_model_whole(tmp_path: Path) -> None:
    """Two models replaced with --force; killed after the first swap: one is new, the other old, both whole."""
    out = tmp_path / "repo"
    spec = tmp_path / "two.toml"
    body = '[[model]]\nname = "{n}"\nmax_batch_size = {b}\ntarget = "paddle"\n'
    spec.write_text(body.format(n="a", b=4) + body.format(n="b", b=4))
    repogen("--spec", str(spec), "--out", str(out), "--no-check", check=True)
    old = snapshot(out)
    spec.write_text(body.format(n="a", b=2) + body.format(n="b", b=2))
    proc = _start_paused(out, "commit", "--spec", str(spec), "--force")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    now = snapshot(out)
    assert sorted(now) == sorted(old)
    new_a = {k: v for k, v in now.items() if k.startswith("a/")}
    assert "max_batch_size: 2" in new_a["a/config.pbtxt"].decode()
    assert {k: v for k, v in now.items() if k.startswith("b/")} == {k: v for k, v in old.items() if k.startswith("b/")}


def test_new_repository_appears_in_one_rename(tmp_path: Path) -> None:
    out = tmp_path / "fresh"
    proc = _start_paused(out, "copy")
    assert not out.exists()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists()


def test_sample_repo_regenerates_identically(tmp_path: Path) -> None:
    """Documented normalisation: repogen.json's source.path is relative to the model folder, so a copy built
    elsewhere differs only there; it must point at the same file."""
    out = tmp_path / "sample"
    repogen("--spec", str(SAMPLE / "repogen.toml"), "--out", str(out), check=True)
    committed = {k: v for k, v in snapshot(SAMPLE).items() if k != "repogen.toml"}
    fresh = snapshot(out)
    assert sorted(fresh) == sorted(committed)
    for key in committed:
        if key.endswith("repogen.json"):
            a, b = json.loads(committed[key]), json.loads(fresh[key])
            model = key.split("/")[0]
            assert (SAMPLE / model / a["source"].pop("path")).resolve() == (out / model / b["source"].pop("path")).resolve()
            assert a == b
        else:
            assert fresh[key] == committed[key], key


def test_tensorrt_target_wiring_with_a_fake_builder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Everything after the plan build, with a stand-in builder (no TensorRT here): model.plan, platform,
    manifest tensorrt block, one timing cache shared by both models."""
    caches: list[object] = []

    def fake_build_plan(graph, trt, *, precision, profiles_objs, profiles, workspace_mb, optimization_level,
                        cache, name):
        caches.append(cache)
        assert (workspace_mb, optimization_level) == (256, 3)
        return PlanBuild(graph_engine(graph, profiles), b"PLAN:" + name.encode(),
                         {"version": "10.9.0", "compute_capability": "9.0", "cc_model_filenames": {"9.0": "model.plan"}})

    monkeypatch.setattr(build_mod, "tensorrt_status", lambda: TensorRTStatus(object(), ""))
    monkeypatch.setattr(build_mod, "build_plan", fake_build_plan)
    specs = [ModelSpec(source=EXAMPLE_DIR, name=n, target="auto", precision="fp16", check=False, workspace_mb=256,
                       optimization_level=3, cuda_graphs=True, max_shapes=["image:4x3x32x32"]) for n in ("p", "q")]
    report = build_mod.build_repository(specs, tmp_path / "repo", progress=False)
    assert [m.target for m in report.models] == ["tensorrt", "tensorrt"] and not report.warnings
    assert caches[0] is caches[1]
    model = tmp_path / "repo" / "p"
    assert (model / "1" / "model.plan").read_bytes() == b"PLAN:p"
    assert sorted(snapshot(model)) == ["1/model.plan", "config.pbtxt", "repogen.json"]
    cfg = text_format.Parse((model / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
    assert cfg.platform == "tensorrt_plan" and cfg.max_batch_size == 4 and cfg.optimization.cuda.graphs
    assert model_config_pb2.ModelInstanceGroup.Kind.Name(cfg.instance_group[0].kind) == "KIND_GPU"
    man = json.loads((model / "repogen.json").read_text())
    assert man["precision"] == "fp16" and man["tolerance"] == rule_for("fp16", False).to_dict()
    assert man["tensorrt"]["compute_capability"] == "9.0" and man["source"]["in_version_folder"] is False


def test_programmatic_api_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nothing to build"):
        build_mod.build_repository([], tmp_path / "r", progress=False)
    spec = ModelSpec(source=EXAMPLE_DIR, name="m", target="paddle", check=False, max_batch_size=16,
                     max_shapes=["image:8x3x32x32"])
    with pytest.raises(ConfigError, match=r"max_batch_size 16 exceeds the engine's max batch 8"):
        build_mod.build_repository([spec], tmp_path / "r", progress=False)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_paddle_target_io_equals_the_converted_network_io(precision: str) -> None:
    """Clients never change between targets: the paddle target's I/O (from the graph) is what the converter
    gives the TensorRT network (here built with the NumPy backend, the same converter code)."""
    from repogen.paddle import load_model
    from repogen.trt import numpy_trt
    from repogen.trt.convert import convert_graph
    from repogen.trt.profiles import make_profiles
    from repogen.repository.engine import conversion_engine

    graph = load_model(EXAMPLE_DIR)
    conversion = convert_graph(graph, numpy_trt, precision=precision, profiles=make_profiles(graph.input_values()))
    assert conversion_engine(conversion, []) == graph_engine(graph, [])


def test_tensorrt_status_needs_module_and_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    from repogen.trt import engine
    from repogen.build import targets
    monkeypatch.setattr(engine, "tensorrt_module", lambda name=None: None)
    assert targets.tensorrt_status().reason == "the tensorrt package is not installed"
    fake = types.SimpleNamespace(__version__="10.8.0")
    monkeypatch.setattr(engine, "tensorrt_module", lambda name=None: fake)
    monkeypatch.setattr(targets, "compute_capability", lambda: None)
    status = targets.tensorrt_status()
    assert status.module is None and "no NVIDIA GPU" in status.reason and "10.8.0" in status.reason
    monkeypatch.setattr(targets, "compute_capability", lambda: "9.0")
    assert targets.tensorrt_status() == targets.TensorRTStatus(fake, "")


@pytest.mark.parametrize("target", ["auto", "tensorrt"])
def test_a_failed_plan_build_falls_back_only_under_auto(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        target: str) -> None:
    """A builder that cannot build a network (TensorRT-RTX has no NMS / NonZero kernels) leaves an auto model
    served by the paddle target with a warning naming the cause; an explicit --target tensorrt still fails."""

    def builder_refuses(*args, **kwargs):
        raise ConfigError("TensorRT failed to build the engine: NMS has no runners that implement it")

    monkeypatch.setattr(build_mod, "tensorrt_status", lambda: TensorRTStatus(object(), ""))
    monkeypatch.setattr(build_mod, "build_plan", builder_refuses)
    spec = ModelSpec(source=EXAMPLE_DIR, name="m", target=target, check=False)
    if target == "tensorrt":
        with pytest.raises(ConfigError, match="no runners"):
            build_mod.build_repository([spec], tmp_path / "repo", progress=False)
        assert not (tmp_path / "repo").exists()
        return
    report = build_mod.build_repository([spec], tmp_path / "repo", progress=False)
    assert [m.target for m in report.models] == ["paddle"]
    assert any("no runners" in w and "paddle target" in w for w in report.warnings)
    assert (tmp_path / "repo" / "m" / "1" / "model.py").exists()


def test_auto_falls_back_to_paddle_for_ops_without_converter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With TensorRT at hand, --target auto still serves a model TensorRT cannot express (LoD sequence ops,
    say) through the paddle target, and says which ops forced it."""
    from tests.support import zoo
    def no_plan(*args, **kwargs):
        raise AssertionError("no plan may be built for a model with unconvertible ops")

    monkeypatch.setattr(build_mod, "tensorrt_status", lambda: TensorRTStatus(object(), ""))
    monkeypatch.setattr(build_mod, "build_plan", no_plan)
    # zoo lod_pool: a Fluid-era model whose sequence_pool works on LoD tensors
    spec = ModelSpec(source=zoo.get("lod_pool", "paddle2"), name="m", target="auto", check=False)
    report = build_mod.build_repository([spec], tmp_path / "repo", progress=False)
    assert [m.target for m in report.models] == ["paddle"]
    assert any("sequence_pool" in w and "paddle target" in w for w in report.warnings)
    assert (tmp_path / "repo" / "m" / "1" / "model.py").exists()


# -- what --force may replace (ownership.py) ---------------------------------------------------------------------

def _model_copy(tmp_path: Path) -> Path:
    src = tmp_path / "model"
    src.mkdir()
    for f in EXAMPLE_DIR.iterdir():
        if f.is_file():
            (src / f.name).write_bytes(f.read_bytes())
    return src


@pytest.mark.parametrize("victim", ["inference.pdmodel", "repogen.toml", "foreign"])
def test_force_never_replaces_what_repogen_did_not_write(tmp_path: Path, victim: str) -> None:
    """--out is the model's own folder: --name naming the source model, a spec file or a foreign folder."""
    src = _model_copy(tmp_path)
    (src / "repogen.toml").write_text('[[model]]\nsource = "inference.pdmodel"\n')
    (src / "foreign").mkdir()
    (src / "foreign" / "config.pbtxt").write_text('name: "foreign"\n')  # a Triton model, not repogen's
    before = snapshot(src)
    proc = repogen(str(src / "inference.pdmodel"), "--out", str(src), "--name", victim, "--no-check", "--force")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"{src / victim}: exists and is a" in proc.stderr and "only replaces model folders it built" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert snapshot(src) == before and not staging_dirs(src)


def test_force_refuses_a_symlink_to_a_built_model(tmp_path: Path) -> None:
    out = tmp_path / "repo"
    repogen("--out", str(out), "--no-check", check=True)
    (out / "alias").symlink_to(out / "tiny_cnn")
    proc = repogen("--out", str(out), "--name", "alias", "--no-check", "--force")
    assert proc.returncode == 2 and "exists and is a symlink" in proc.stderr
    assert (out / "alias").is_symlink()


def test_new_version_keeps_existing_versions(tmp_path: Path) -> None:
    out = tmp_path / "repo"
    repogen("--out", str(out), "--no-check", check=True)
    v1 = {k: v for k, v in snapshot(out).items() if k.startswith("tiny_cnn/1/")}
    # adding version 2 needs no --force and keeps version 1 byte for byte
    repogen("--out", str(out), "--no-check", "--version-folder", "2", check=True)
    now = snapshot(out)
    assert {k: v for k, v in now.items() if k.startswith("tiny_cnn/1/")} == v1
    assert "tiny_cnn/2/model.py" in now and "tiny_cnn/2/inference.pdmodel" in now
    assert json.loads(now["tiny_cnn/repogen.json"])["version"] == 2
    # rebuilding version 2 needs --force, and still keeps version 1
    proc = repogen("--out", str(out), "--no-check", "--version-folder", "2")
    assert proc.returncode == 2 and "version 2 already exists; pass --force" in proc.stderr
    repogen("--out", str(out), "--no-check", "--version-folder", "2", "--force", check=True)
    assert {k: v for k, v in snapshot(out).items() if k.startswith("tiny_cnn/1/")} == v1
    # a version below the latest would not be served by Triton: refused, nothing changes
    before = snapshot(out)
    proc = repogen("--out", str(out), "--no-check", "--version-folder", "1", "--force")
    assert proc.returncode == 2 and "has version 2 above version 1" in proc.stderr
    assert snapshot(out) == before and not staging_dirs(out)


def test_new_version_with_other_io_is_refused(tmp_path: Path) -> None:
    """One config.pbtxt serves every version: a version 1 with max batch 8 cannot stay beside a max batch 2."""
    out = tmp_path / "repo"
    repogen("--out", str(out), "--no-check", check=True)
    before = snapshot(out)
    proc = repogen("--out", str(out), "--no-check", "--version-folder", "2", "--max-batch-size", "2")
    assert proc.returncode == 2 and "version(s) 1 were built with a different max_batch_size" in proc.stderr
    assert snapshot(out) == before and not staging_dirs(out)
