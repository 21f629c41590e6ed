"""The Paddle reference runner (repogen.reference): one child per model, Paddle's failures named as the reference's."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.support import zoo
from repogen.errors import PaddleReferenceError
from repogen.reference import ReferenceRunner, paddle_outputs
from repogen.reference import runner as runner_mod

ROOT = Path(__file__).resolve().parents[1]


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", "repogen.cli", *args], capture_output=True, text=True, env=full,
                          timeout=300)


def _children() -> list[int]:
    """Live child processes of this test process."""
    found = []
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        found += [int(p) for p in (task / "children").read_text().split()]
    return [p for p in found if Path(f"/proc/{p}").exists() and "Z" not in Path(f"/proc/{p}/stat").read_text().split()[2]]


def _place_corrupted(tmp_path: Path) -> Path:
    """convnet (PIR) with a device place Paddle cannot cast: repogen's reader accepts it, Paddle refuses it."""
    model = tmp_path / "corrupt"
    shutil.copytree(zoo.get("convnet", "pir"), model)
    js = model / "inference.json"
    text = js.read_text()
    assert '"D":[0,0,""]' in text
    js.write_text(text.replace('"D":[0,0,""]', '"D":[7,0,"zz"]'))
    return model


def test_child_equals_in_process_paddle_and_serves_many_feeds() -> None:
    # convnet is PIR with bilinear/bicubic interp: oneDNN must be off in the child as in the zoo
    path = zoo.get("convnet", "pir")
    with ReferenceRunner(path) as runner:
        pid = runner.pid
        assert runner.input_names == ["x"] and len(runner.output_names) == 6
        for seed, hw in ((0, 32), (1, 24), (2, 40)):
            x = np.random.default_rng(seed).uniform(-1, 1, (2, 3, hw, hw)).astype(np.float32)
            got = runner.run({"x": x})
            want = paddle_outputs(path, {"x": x})
            assert list(got) == list(want) == runner.output_names
            for name in want:
                assert got[name].shape == want[name].shape and np.isfinite(want[name]).all()
                np.testing.assert_array_equal(got[name], want[name])
        assert runner.pid == pid  # one process for every feed
        # a bad feed is Paddle's error on that run only: the runner keeps serving
        with pytest.raises(PaddleReferenceError, match=r"Paddle reference .* could not run it: .*4-D or 5-D"):
            runner.run({"x": np.zeros((1, 3, 5), np.float32)})
        assert runner.run({"x": x})[runner.output_names[0]].shape == want[runner.output_names[0]].shape
    # a clean child serves the next model too (Paddle is imported once per process, not per model)
    other = zoo.get("resnet18", "paddle2")
    x = np.random.default_rng(3).uniform(-1, 1, (1, 3, 32, 32)).astype(np.float32)
    with ReferenceRunner(other) as second:
        assert second.pid == pid
        got, want = second.run({"x": x}), paddle_outputs(other, {"x": x})
        assert list(got) == list(want)
        for name in want:
            np.testing.assert_array_equal(got[name], want[name])


def test_corrupt_program_is_the_references_failure(tmp_path: Path) -> None:
    model = _place_corrupted(tmp_path)
    with pytest.raises(PaddleReferenceError) as err:
        ReferenceRunner(model).input_names  # the load runs in the background until asked for
    msg = str(err.value)
    assert msg.startswith(f"{model / 'inference.json'}: the Paddle reference") and "could not load it" in msg
    assert "IPU" in msg and "\n" not in msg
    proc = _cli("check", str(model), "--shape", "x:1x3x32x32")
    assert proc.returncode == 2 and not proc.stdout
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("repogen check: error: ") and "the Paddle reference" in line
    assert str(model / "inference.json") in line and "Traceback" not in proc.stderr


def test_timeout_kills_the_child_and_names_the_reference() -> None:
    path = zoo.get("convnet", "pir")
    runner_mod._stop_idle()  # a fresh child: importing Paddle alone takes longer than the timeout
    started = set(_children())
    with pytest.raises(PaddleReferenceError, match=r"Paddle reference .* no answer after 0.2 s .*timeout") as err:
        ReferenceRunner(path, timeout=0.2).run(zoo.sample_feeds("convnet"))
    assert str(path / "inference.json") in str(err.value)
    assert set(_children()) <= started  # the timed-out child was killed and reaped
    proc = _cli("check", str(path), "--shape", "x:1x3x32x32", env={"REPOGEN_REFERENCE_TIMEOUT": "0.2"})
    assert proc.returncode == 2
    line = proc.stderr.strip().splitlines()[-1]
    assert "the Paddle reference" in line and "timeout" in line and "Traceback" not in proc.stderr


def test_memory_cap_is_named() -> None:
    with pytest.raises(PaddleReferenceError, match=r"Paddle reference .*memory cap 200 MiB"):
        ReferenceRunner(zoo.get("convnet", "pir"), memory_mb=200).input_names


def test_build_stops_on_a_reference_failure_and_writes_nothing(tmp_path: Path) -> None:
    model = _place_corrupted(tmp_path)
    out = tmp_path / "repo"
    proc = _cli("build", str(model), "--target", "paddle", "--out", str(out), "--min-shapes", "x:1x3x16x16",
                "--opt-shapes", "x:2x3x32x32", "--max-shapes", "x:4x3x48x48")
    assert proc.returncode == 2 and not out.exists()
    line = proc.stderr.strip().splitlines()[-1]
    assert "the Paddle reference" in line and str(model / "inference.json") in line and "IPU" in line
    assert "Traceback" not in proc.stderr


def _built(tmp_path: Path, source: Path, name: str) -> Path:
    from repogen.build.flow import build_repository
    from repogen.build.spec import ModelSpec

    spec = ModelSpec(source=source, name=name, target="paddle", check=False, min_shapes=["x:1x3x16x16"],
                     opt_shapes=["x:2x3x32x32"], max_shapes=["x:4x3x32x32"])
    build_repository([spec], tmp_path / "repo", progress=False)
    return tmp_path / "repo" / name


@pytest.mark.parametrize("fmt", ["fluid-separate", "pir"])
def test_validates_reference_finds_the_source_through_the_reader(tmp_path: Path, fmt: str) -> None:
    """harness/reference.py: the manifest's source, else the version folder's copy, found by paddle/loader.py."""
    from repogen.harness.model_files import read_model_folder
    from repogen.harness.reference import PaddleReference, source_model

    source = tmp_path / "src"
    shutil.copytree(zoo.get("convnet", fmt), source)  # a copy: the zoo's cache is shared by other test runs
    folder = _built(tmp_path, source, "m")
    model = read_model_folder(folder)
    assert source_model(model).model_file.parent.resolve() == source
    x = np.random.default_rng(5).uniform(-1, 1, (2, 3, 32, 32)).astype(np.float32)
    want = list(paddle_outputs(source, {"x": x}).values())
    source.rename(tmp_path / "moved")  # the manifest's source is gone: the version folder's copy serves
    assert source_model(model).model_file.parent == folder / "1"
    ref = PaddleReference(model)
    got = ref.run({"x": x})
    ref.close()
    assert [s.name for s in model.outputs] == list(got)
    for a, b in zip(got.values(), want):
        np.testing.assert_array_equal(a, b)


def test_validates_reference_failure_names_the_reference(tmp_path: Path) -> None:
    from repogen.harness.model_files import read_model_folder
    from repogen.harness.reference import PaddleReference

    model = _place_corrupted(tmp_path)
    folder = _built(tmp_path, model, "corrupt")  # the paddle target without a check takes it as it is
    with pytest.raises(PaddleReferenceError, match=r"the Paddle reference .* could not load it: .*IPU") as err:
        PaddleReference(read_model_folder(folder))
    assert str(err.value).startswith(str(model / "inference.json"))


def test_validate_cli_reference_failure_is_one_error_and_the_server_goes(tmp_path: Path) -> None:
    """A Paddle reference that fails is no verdict on the served model: `repogen validate` stops with one line
    naming the reference and the model file (rc 2), not a failed model (rc 1); the server is torn down."""
    from repogen.build.flow import build_repository
    from repogen.build.spec import ModelSpec

    model = _place_corrupted(tmp_path)
    # --target numpy runs repogen's converted network (which reads this model) in Triton: the model loads
    spec = ModelSpec(source=model, name="corrupt", target="numpy", check=False, min_shapes=["x:1x3x16x16"],
                     opt_shapes=["x:2x3x32x32"], max_shapes=["x:4x3x32x32"])
    repo = tmp_path / "repo"
    build_repository([spec], repo, progress=False)
    proc = _cli("validate", str(repo), "--requests", "1", "--concurrency", "1")
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    line = lines[0]
    assert line.startswith("repogen validate: error: " + str(model / "inference.json")), line
    assert "the Paddle reference" in line and "IPU" in line
    assert "Traceback" not in proc.stderr and "corrupt" not in proc.stdout.replace(str(tmp_path), "")
    # no tritonserver left serving this repository
    left = [p for p in Path("/proc").iterdir() if p.name.isdigit() and (p / "cmdline").exists()
            and str(repo) in (p / "cmdline").read_bytes().decode(errors="replace")]
    assert not left, left


def test_runner_works_with_descriptors_above_select_limit() -> None:
    """A long test session or server reaches descriptor numbers >= 1024, where select() refuses to wait."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 1200:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} is below 1200")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    runner_mod._stop_idle()  # a fresh child, whose pipes get the high descriptors
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        path = zoo.get("convnet", "pir")
        x = np.random.default_rng(0).uniform(-1, 1, (1, 3, 32, 32)).astype(np.float32)
        with ReferenceRunner(path) as runner:
            got = runner.run({"x": x})
        want = paddle_outputs(path, {"x": x})
        for name in want:
            np.testing.assert_array_equal(got[name], want[name])
    finally:
        for fd in held:
            os.close(fd)
        runner_mod._stop_idle()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
