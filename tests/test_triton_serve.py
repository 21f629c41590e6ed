"""A paddle-target repository from `repogen build` loads in a real tritonserver and answers correctly.

Uses the harness launcher (repogen.harness.server.launch), which runs the tritonserver bundled in the
nvidia-pytriton wheel (Python backend only, no GPU). Outputs are compared with Paddle Inference run
directly here: with numpy 2.x the server "succeeds" with empty tensors, so success alone proves nothing.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from repogen.reference import paddle_outputs
from repogen.build.spec import EXAMPLE_DIR

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent

SPEC = """
[[model]]
source = "@example"
name = "cnn"
target = "paddle"
max_batch_size = 8
[[model.instance_group]]
count = 2
kind = "cpu"
[model.dynamic_batching]
preferred_batch_size = [4, 8]
max_queue_delay_microseconds = 100000
[model.warmup]
batch_size = 2
"""


def paddle_reference(x: np.ndarray) -> np.ndarray:
    """The example's output from Paddle, with the settings every repogen reference uses."""
    return next(iter(paddle_outputs(EXAMPLE_DIR, {"image": x}).values()))


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a.astype(np.float64) - b) / np.linalg.norm(b))


def test_paddle_target_serves_correct_outputs(tmp_path: Path) -> None:
    from repogen.harness.server import launch
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient

    spec = tmp_path / "repogen.toml"
    spec.write_text(SPEC)
    repo = tmp_path / "repo"
    subprocess.run([sys.executable, "-m", "repogen.cli", "build", "--spec", str(spec), "--out", str(repo),
                    "--no-check"], check=True, cwd=ROOT, capture_output=True, timeout=300)

    rng = np.random.default_rng(7)
    batches = [rng.normal(size=(n, 3, 32, 32)).astype(np.float32) for n in (1, 3, 1, 2, 5, 1)]
    with launch(repo, require_models=True) as server:
        http = httpclient.InferenceServerClient(server.http_url, concurrency=len(batches))
        meta = http.get_model_metadata("cnn")
        assert [i["name"] for i in meta["inputs"]] == ["image"] and meta["inputs"][0]["shape"] == [-1, 3, 32, 32]

        def send(x: np.ndarray):
            inp = httpclient.InferInput("image", list(x.shape), "FP32")
            inp.set_data_from_numpy(x)
            return http.async_infer("cnn", [inp])

        # concurrent requests of different batch sizes: the dynamic batcher may join them into one execute()
        pending = [send(x) for x in batches]
        results = [p.get_result().as_numpy("probs") for p in pending]
        stats = http.get_inference_statistics("cnn")["model_stats"][0]
        # warmup runs once per instance (2 x batch 2); fewer executions than requests means the batcher
        # joined requests, i.e. model.py's concatenate-and-split path ran (and is checked below)
        assert int(stats["inference_count"]) == sum(len(x) for x in batches) + 2 * 2
        assert int(stats["execution_count"]) < len(batches) + 2

        grpc = grpcclient.InferenceServerClient(server.grpc_url)
        xg = batches[4]
        inp = grpcclient.InferInput("image", list(xg.shape), "FP32")
        inp.set_data_from_numpy(xg)
        via_grpc = grpc.infer("cnn", [inp]).as_numpy("probs")

        # label_filename: classification extension returns "score:index:label"
        out = httpclient.InferRequestedOutput("probs", class_count=1)
        inp1 = httpclient.InferInput("image", [1, 3, 32, 32], "FP32")
        inp1.set_data_from_numpy(batches[0])
        top1 = http.infer("cnn", [inp1], outputs=[out]).as_numpy("probs")

    for x, y in zip(batches, results):
        ref = paddle_reference(x)
        assert y is not None and y.shape == ref.shape == (x.shape[0], 10)
        assert rel_err(y, ref) <= 1e-5
    assert rel_err(via_grpc, paddle_reference(xg)) <= 1e-5
    ref0 = paddle_reference(batches[0])[0]
    labels = (EXAMPLE_DIR / "labels.txt").read_text().split()
    score, index, label = top1.reshape(-1)[0].decode().split(":")
    assert int(index) == int(ref0.argmax()) and label == labels[int(index)]
    assert abs(float(score) - float(ref0.max())) <= 1e-5 * max(1.0, abs(float(ref0.max())))
