"""Paddle-target model repositories for the harness tests, built by ``repogen build`` (no tests here)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import repogen

EXAMPLE = Path(repogen.__file__).parent / "examples" / "tiny_cnn"

MAKE_MLP = '''
import sys, paddle
paddle.seed(1)
class MLP(paddle.nn.Layer):
    def __init__(self):
        super().__init__()
        self.a = paddle.nn.Linear(6, 16)
        self.b = paddle.nn.Linear(16, 4)
    def forward(self, x, y):
        h = paddle.nn.functional.gelu(self.a(x))
        return paddle.tanh(self.b(h)) + y
m = MLP(); m.eval()
paddle.jit.save(m, sys.argv[1], input_spec=[paddle.static.InputSpec([None, 6], "float32", "x"),
                                           paddle.static.InputSpec([None, 4], "float32", "y")])
'''


def mlp_source(cache: Path) -> Path:
    """A two-input PIR (.json) model, saved once per cache folder."""
    out = cache / "mlp"
    if not (out / "model.pdiparams").exists():
        out.mkdir(parents=True, exist_ok=True)
        script = cache / "make_mlp.py"
        script.write_text(MAKE_MLP)
        subprocess.run([sys.executable, str(script), str(out / "model")], check=True, capture_output=True,
                       env={**os.environ, "GLOG_minloglevel": "3"})
    return out


def good_repo(repo: Path, cache: Path) -> Path:
    """Two valid models built by ``repogen build --target paddle``: the bundled tiny CNN (Paddle 2.x files)
    and a two-input MLP (PIR)."""
    from repogen.build.flow import build_repository
    from repogen.build.spec import DynamicBatching, ModelSpec

    batching = DynamicBatching([], 2000)
    specs = [
        ModelSpec(source=EXAMPLE, name="tiny_cnn", target="paddle", min_shapes=["image:1x3x32x32"],
                  opt_shapes=["image:4x3x32x32"], max_shapes=["image:8x3x32x32"], dynamic_batching=batching,
                  check=False),
        ModelSpec(source=mlp_source(cache), name="mlp", target="paddle", min_shapes=["x:1x6,y:1x4"],
                  opt_shapes=["x:2x6,y:2x4"], max_shapes=["x:4x6,y:4x4"], dynamic_batching=batching, check=False),
    ]
    build_repository(specs, repo, force=True, progress=False)
    return repo


def derive(repo: Path, base: str, name: str, config_edit: tuple[str, str] | None = None,
           model_py_append: str = "") -> Path:
    """A copy of built model ``base`` under ``name``, with one config edit and/or extra model.py code."""
    folder = repo / name
    shutil.copytree(repo / base, folder)
    cfg = folder / "config.pbtxt"
    text = cfg.read_text().replace(f'name: "{base}"', f'name: "{name}"')
    if config_edit:
        assert config_edit[0] in text, config_edit
        text = text.replace(*config_edit)
    cfg.write_text(text)
    manifest = json.loads((folder / "repogen.json").read_text())
    manifest["model_name"] = name
    (folder / "repogen.json").write_text(json.dumps(manifest, indent=1))
    if model_py_append:
        with open(folder / str(manifest["version"]) / "model.py", "a") as f:
            f.write(model_py_append)
    return folder


# Appended to a built model.py: every output is off by exactly one.
ADD_ONE = """

_repogen_test_run = TritonPythonModel._run
TritonPythonModel._run = lambda self, arrays: [o + 1 for o in _repogen_test_run(self, arrays)]
"""


# Appended to a built model.py: every row of a request costs SLOW_ROW_S of sleep (a compute-bound model, slow
# however the batcher groups the rows); the answers stay Paddle's.
SLOW_ROW_S = 0.05
SLEEP_PER_ROW = f"""

import time as _repogen_test_time
_repogen_test_fast_run = TritonPythonModel._run


def _repogen_test_slow_run(self, arrays):
    _repogen_test_time.sleep({SLOW_ROW_S} * len(arrays[0]))
    return _repogen_test_fast_run(self, arrays)


TritonPythonModel._run = _repogen_test_slow_run
"""


def tritonserver_pids(marker: str) -> list[int]:
    """Processes whose command line mentions tritonserver and ``marker`` (the repo path), from /proc."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if "tritonserver" in cmd and marker in cmd and state != "Z":
            pids.append(int(entry))
    return pids
