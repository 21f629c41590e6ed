"""The Paddle reference's memory cap follows the machine's available memory, and validation batches fit it.

A cap above what the machine has free let a segmentation model's reference grow to 17.3 GB until the kernel's
OOM killer ended it (issue 28). Now the cap is a share of the memory available when the child starts, and the
largest validation batch is the one the reference can run under it: measured on one sample (or taken from the
pipeline's per-pixel cost the build measured), cut and named so when the full batch would not fit.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from repogen.errors import PaddleReferenceError
from repogen.harness import model_files
from repogen.harness.model_files import ModelFolder, TensorSpec, make_cases
from repogen.reference import runner

pytest.importorskip("paddle")


def _meminfo_available_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) >> 10
    pytest.skip("no MemAvailable in /proc/meminfo")


def test_cap_is_within_the_memory_available_now(monkeypatch):
    monkeypatch.delenv("REPOGEN_REFERENCE_MEMORY_MB", raising=False)
    before = _meminfo_available_mb()
    cap = runner.default_memory_mb()
    after = _meminfo_available_mb()
    assert 0 < cap <= max(before, after)  # the old rule (3/4 of physical memory) ignored what others use
    monkeypatch.setenv("REPOGEN_REFERENCE_MEMORY_MB", "1234")
    assert runner.default_memory_mb() == 1234


@pytest.mark.parametrize("available, cgroup_left, physical", [
    (16000, None, 64000),  # a large, idle machine
    (16000, 3000, 64000),  # a container whose memory limit leaves 3 GB
    (7900, None, 8000),  # nearly all of a small machine free: still 3/4 of physical at most
    (700, None, 8000),  # a machine with little free memory: a small cap, not one above what is there
])
def test_cap_follows_available_memory_and_cgroup_limits(monkeypatch, available, cgroup_left, physical):
    monkeypatch.delenv("REPOGEN_REFERENCE_MEMORY_MB", raising=False)
    monkeypatch.setattr(runner, "_meminfo_mb", lambda key: available if key == "MemAvailable" else None)
    monkeypatch.setattr(runner, "_cgroup_left_mb", lambda: cgroup_left)
    monkeypatch.setattr(runner, "physical_memory_mb", lambda: physical)
    cap = runner.default_memory_mb()
    free = min(v for v in (available, cgroup_left) if v is not None)
    assert cap <= free and cap <= physical * 3 // 4
    assert cap >= min(free * 0.8, physical * 0.75) - 512  # not needlessly small either


def _seg_folder(tmp_path: Path, side: int, batch: int) -> tuple[ModelFolder, Path]:
    """A source-size segmenter (the pipeline tests' export) as a served folder: batch ``batch`` of side x side."""
    from tritonclient.grpc import model_config_pb2

    from repogen.examples import pipeline_exports

    src = pipeline_exports.save_models(tmp_path / "models", ("seg",))["seg"]
    with runner.ReferenceRunner(src) as ref:
        name = ref.input_names[0]
    cfg = model_config_pb2.ModelConfig(name="seg", max_batch_size=batch)
    manifest = {"profiles": [{name: {"min": [1, 3, 32, 32], "opt": [1, 3, side, side], "max": [batch, 3, side, side]}}]}
    folder = ModelFolder("seg", tmp_path / "repo" / "seg", cfg, manifest,
                         [TensorSpec(name, np.float32, "FP32", [3, -1, -1])], [])
    return folder, src


def test_validation_batch_is_cut_to_what_the_cap_holds(tmp_path):
    """With the cap forced small, the largest case is the batch the reference can run (named with the numbers);
    the full batch under the same cap is Paddle's memory error, not a process the OOM killer ends."""
    cap = 2560  # Paddle with this model loaded holds ~1.5 GB of address space; a 1536 x 1536 sample adds ~0.2 GB
    folder, src = _seg_folder(tmp_path, 1536, 8)
    with runner.ReferenceRunner(src, memory_mb=cap) as ref:
        cases = make_cases(folder, probe=lambda feeds: ref.measure_run_mb(feeds), memory_mb=cap)
        assert len(cases) == 2
        name, feeds = list(cases.items())[1]
        batch = next(iter(feeds.values())).shape[0]
        assert 1 < batch < 8 and name.startswith(f"batch {batch} (batch 8 would need") and f"cap is {cap} MiB" in name
        out = ref.run(feeds)  # fits
        assert next(iter(out.values())).shape[0] == batch
    with runner.ReferenceRunner(src, memory_mb=cap + 1) as ref:  # a fresh child (a waiting one has run batch 1)
        full = {k: np.concatenate([v] * 8)[:8] for k, v in cases["batch 1"].items()}
        with pytest.raises(PaddleReferenceError, match=f"memory cap {cap + 1} MiB"):
            ref.run(full)


def test_without_a_tight_cap_the_batch_is_kept(tmp_path):
    folder, src = _seg_folder(tmp_path, 256, 8)
    with runner.ReferenceRunner(src, memory_mb=16384) as ref:
        cases = make_cases(folder, probe=lambda feeds: ref.measure_run_mb(feeds), memory_mb=16384)
    assert list(cases) == ["batch 1", "batch 8"]


def test_pipeline_cost_measured_at_build_sizes_the_batch(tmp_path):
    """No probe: the per-pixel cost the build measured for the model's pipeline (its _pre stage's budget)."""
    from tritonclient.grpc import model_config_pb2

    pre = tmp_path / "repo" / "m_pre" / "1"
    pre.mkdir(parents=True)
    (pre / "pipeline.json").write_text(json.dumps({"budget": {"base_mb": 300, "bytes_per_pixel": 2000}}))
    cfg = model_config_pb2.ModelConfig(name="m", max_batch_size=8)
    manifest = {"profiles": [{"x": {"min": [1, 3, 32, 32], "opt": [1, 3, 640, 640], "max": [8, 3, 640, 640]}}]}
    folder = ModelFolder("m", tmp_path / "repo" / "m", cfg, manifest, [TensorSpec("x", np.float32, "FP32", [3, -1, -1])],
                         [])
    per_sample = 2000 * 640 * 640 / (1 << 20)  # 781 MiB
    assert model_files.pipeline_cost_mb(folder) == (300.0, 2000 / (1 << 20))
    cases = make_cases(folder, memory_mb=6000)
    batch = next(iter(list(cases.values())[-1].values())).shape[0]
    assert 1 < batch < 8
    assert 300 + model_files.ADDRESS_SPACE_MB + batch * per_sample <= 6000 * model_files.CAP_USE
    assert 300 + model_files.ADDRESS_SPACE_MB + (batch + 1) * per_sample > 6000 * model_files.CAP_USE
    assert list(make_cases(folder, memory_mb=60000)) == ["batch 1", "batch 8"]


@pytest.mark.e2e
@pytest.mark.timeout(900)
@pytest.mark.skipif(os.environ.get("REPOGEN_SLOW_TESTS") != "1", reason="3 minutes on 2 cores (a 1536 x 1536 "
                    "segmenter served and timed); REPOGEN_SLOW_TESTS=1 runs it")
def test_validate_under_a_small_cap_cuts_its_batch_and_passes(tmp_path):
    """``repogen validate`` with the reference's cap forced small (REPOGEN_REFERENCE_MEMORY_MB): the served
    segmenter is checked at the batch the reference holds, named so in the report, and the run passes."""
    import subprocess
    import sys

    from repogen.examples import pipeline_exports

    src = pipeline_exports.save_models(tmp_path / "models", ("seg",))["seg"]
    with runner.ReferenceRunner(src) as ref:
        name = ref.input_names[0]
    repo = tmp_path / "repo"
    build = subprocess.run([sys.executable, "-m", "repogen.cli", "build", str(src), "--name", "seg", "--out", str(repo),
                            "--target", "paddle", "--no-check", "--no-pipeline", "--min-shapes", f"{name}:1x3x32x32",
                            "--opt-shapes", f"{name}:1x3x1536x1536", "--max-shapes", f"{name}:8x3x1536x1536"],
                           capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-2000:]
    env = dict(os.environ, REPOGEN_REFERENCE_MEMORY_MB="2560")
    proc = subprocess.run([sys.executable, "-m", "repogen.cli", "validate", str(repo), "--json", "--protocol", "grpc",
                           "--concurrency", "1", "--requests", "4", "--level-budget-s", "5"],
                          capture_output=True, text=True, timeout=800, env=env)
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-2000:])
    text = proc.stdout
    assert "batch 8 would need" in text and "its cap is 2560 MiB" in text, text[-2000:]
