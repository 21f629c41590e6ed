"""A PIR model with a bilinear interpolation through build, check and validate on the real local tritonserver.

Paddle 3.3.1's oneDNN path cannot run PIR interp ops; validate's reference once ran with oneDNN on and
reported a correctly served model as broken. Every reference now runs with repogen.reference's settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "GLOG_minloglevel": "3"}

MAKE_BILINEAR = '''
import sys, paddle
paddle.seed(2)
class Net(paddle.nn.Layer):
    def __init__(self):
        super().__init__()
        self.conv = paddle.nn.Conv2D(3, 4, 3, padding=1)
    def forward(self, x):
        y = paddle.nn.functional.relu(self.conv(x))
        return paddle.nn.functional.interpolate(y, scale_factor=2, mode="bilinear", align_corners=False)
m = Net(); m.eval()
paddle.jit.save(m, sys.argv[1], input_spec=[paddle.static.InputSpec([None, 3, 8, 8], "float32", "x")])
'''

ONEDNN_RUN = '''
import sys, numpy as np, paddle.inference as pi
c = pi.Config(sys.argv[1] + ".json", sys.argv[1] + ".pdiparams"); c.disable_gpu(); c.disable_glog_info()
p = pi.create_predictor(c)
h = p.get_input_handle("x"); h.reshape([1, 3, 8, 8]); h.copy_from_cpu(np.ones((1, 3, 8, 8), np.float32)); p.run()
'''


def _run(args: list[str], timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, env=ENV, timeout=timeout, cwd=ROOT)


@pytest.fixture(scope="module")
def bilinear(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("bilinear")
    script = folder / "make.py"
    script.write_text(MAKE_BILINEAR)
    proc = _run([sys.executable, str(script), str(folder / "model" / "model")])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert '"1.bilinear_interp"' in (folder / "model" / "model.json").read_text()
    return folder / "model"


def test_paddles_onednn_path_fails_on_this_model(bilinear: Path) -> None:
    """What the test below guards against: Paddle's default CPU settings cannot run the model at all."""
    proc = _run([sys.executable, "-c", ONEDNN_RUN, str(bilinear / "model")])
    assert proc.returncode != 0 and "ConvertPirAttribute2RuntimeAttribute" in proc.stderr


def test_pir_bilinear_builds_checks_and_validates(bilinear: Path, tmp_path: Path) -> None:
    out = tmp_path / "repo"
    proc = _run([sys.executable, "-m", "repogen.cli", "build", str(bilinear), "--name", "bilinear", "--target",
                 "paddle", "--out", str(out), "--max-shapes", "x:4x3x8x8", "--json"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    built = json.loads(proc.stdout.strip().splitlines()[-1])["models"][0]
    assert built["check"]["status"] == "passed"  # NumPy backend vs the Paddle reference (child process)
    assert all(o["passed"] and o["rel_l2"] <= 1e-5 for o in built["check"]["outputs"].values())
    proc = _run([sys.executable, "-m", "repogen.cli", "validate", str(out), "--concurrency", "1", "--requests", "5",
                 "--json"])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(proc.stdout[proc.stdout.index("{"):])
    model = report["models"][0]
    assert report["ok"] and model["ok"] and not model["failures"]
    assert model["checks"] and all(c["ok"] and c["rel_err"] <= 1e-5 for c in model["checks"])
    assert {c["protocol"] for c in model["checks"]} == {"http", "grpc"}
    assert {tuple(c["shape"]) for c in model["checks"]} >= {(1, 4, 16, 16), (4, 4, 16, 16)}
