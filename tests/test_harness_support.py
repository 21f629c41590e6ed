"""Hand-made paddle-target model repositories for the harness tests (no tests here).

Layout matches what ``repogen build --target paddle`` writes: config.pbtxt, repogen.json, and a version
folder with a Python-backend model.py running Paddle Inference next to the Paddle files.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import repogen

EXAMPLE = Path(repogen.__file__).parent / "examples" / "tiny_cnn"

MODEL_PY = '''
import json, os
import numpy as np
import triton_python_backend_utils as pb_utils
import paddle.inference as pi

class TritonPythonModel:
    def initialize(self, args):
        here = os.path.dirname(__file__)
        graphs = sorted(f for f in os.listdir(here) if f.endswith((".json", ".pdmodel")))
        graph = os.path.join(here, graphs[0])
        cfg = pi.Config(graph, os.path.splitext(graph)[0] + ".pdiparams")
        cfg.disable_gpu(); cfg.disable_glog_info(); cfg.set_cpu_math_library_num_threads(1)
        self.pred = pi.create_predictor(cfg)
        conf = json.loads(args["model_config"])
        self.outputs = [o["name"] for o in conf["output"]]
        self.shift = float(conf.get("parameters", {}).get("shift", {}).get("string_value", "0"))

    def execute(self, requests):
        responses = []
        for req in requests:
            for name in self.pred.get_input_names():
                arr = pb_utils.get_input_tensor_by_name(req, name).as_numpy()
                self.pred.get_input_handle(name).copy_from_cpu(np.ascontiguousarray(arr))
            self.pred.run()
            tensors = [pb_utils.Tensor(t, (self.pred.get_output_handle(p).copy_to_cpu() + self.shift)
                                       .astype(np.float32))
                       for t, p in zip(self.outputs, self.pred.get_output_names())]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
        return responses
'''

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


def _dims(d: list[int]) -> str:
    return ", ".join(map(str, d))


def write_model(repo: Path, name: str, source: Path, inputs: list[tuple[str, list[int]]],
                outputs: list[tuple[str, list[int]]], max_batch: int = 8, shift: float = 0.0,
                extra_config: str = "", tolerance: float = 1e-5) -> Path:
    """One paddle-target model folder; ``inputs``/``outputs`` dims exclude the batch dimension."""
    folder = repo / name
    version = folder / "1"
    version.mkdir(parents=True)
    files = {}
    for f in sorted(source.iterdir()):
        if f.suffix in (".json", ".pdmodel", ".pdiparams"):
            shutil.copy2(f, version / f.name)
            from repogen.harness.model_files import sha256
            files[f.name] = sha256(f)
    (version / "model.py").write_text(MODEL_PY)
    ins = "\n".join(f'  {{ name: "{n}" data_type: TYPE_FP32 dims: [ {_dims(d)} ] }},' for n, d in inputs).rstrip(",")
    outs = "\n".join(f'  {{ name: "{n}" data_type: TYPE_FP32 dims: [ {_dims(d)} ] }},' for n, d in outputs).rstrip(",")
    params = f'parameters {{ key: "shift" value: {{ string_value: "{shift}" }} }}\n' if shift else ""
    (folder / "config.pbtxt").write_text(textwrap.dedent(f'''\
        name: "{name}"
        backend: "python"
        max_batch_size: {max_batch}
        input [
        {ins}
        ]
        output [
        {outs}
        ]
        dynamic_batching {{ max_queue_delay_microseconds: 2000 }}
        instance_group [ {{ kind: KIND_CPU count: 1 }} ]
        ''') + params + extra_config)
    manifest = {
        "repogen_version": repogen.__version__, "model_name": name, "version": 1, "target": "paddle",
        "format": "pir" if any(k.endswith(".json") for k in files) else "program_desc",
        "source": {"path": str(source), "files": files}, "precision": "fp32", "tolerance": {"rtol": tolerance},
        "max_batch_size": max_batch,
        "inputs": [{"name": n, "dtype": "float32", "shape": [-1] + d} for n, d in inputs],
        "outputs": [{"name": n, "dtype": "float32", "shape": [-1] + d} for n, d in outputs],
        "profiles": [{n: {"min": [1] + d, "opt": [1] + d, "max": [max_batch] + d} for n, d in inputs}],
        "tensorrt": None,
    }
    (folder / "repogen.json").write_text(json.dumps(manifest, indent=1))
    return folder


def good_repo(repo: Path, cache: Path) -> Path:
    """Two valid models: the bundled tiny CNN (Paddle 2.x files) and a two-input MLP (PIR)."""
    write_model(repo, "tiny_cnn", EXAMPLE, [("image", [3, 32, 32])], [("probs", [10])])
    write_model(repo, "mlp", mlp_source(cache), [("x", [6]), ("y", [4])], [("out", [4])], max_batch=4)
    return repo


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
