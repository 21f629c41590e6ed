"""Real TensorRT-family builder checks (issue: check every converter against a real builder).

Skipped unless a TensorRT-family module imports and an NVIDIA GPU answers; docs/gpu-validation.md records
the runs made on a GPU machine with tests/gpu/builder_check.py over every saved per-op and zoo program.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from repogen.trt.engine import tensorrt_module

MODULE = os.environ.get("REPOGEN_TRT_MODULE", "tensorrt")
_HAS_GPU = shutil.which("nvidia-smi") is not None and subprocess.run(
    ["nvidia-smi", "-L"], capture_output=True).returncode == 0

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(
    tensorrt_module(MODULE) is None or not _HAS_GPU, reason=f"needs {MODULE} and an NVIDIA GPU")]

CASES = Path(os.environ.get("REPOGEN_GPU_CASES", Path(__file__).resolve().parents[2] / ".gpu_cases"))


def _case_dirs():
    from builder_check import model_dirs
    return model_dirs(CASES) if CASES.is_dir() else []


@pytest.mark.parametrize("model_dir", _case_dirs(), ids=lambda p: p.name)
def test_real_builder_accepts_and_agrees(model_dir):
    from builder_check import check_one
    result = check_one(model_dir, MODULE)
    assert result["status"] == "ok", result["problems"]
    assert result["fp32_plan_bytes"] > 0 and result["fp16_plan_bytes"] > 0
