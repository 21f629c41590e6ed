"""A batch-split two-profile model (profile 0 batch 1-4, profile 1 batch 5-16) built for the paddle target
renders, checks, loads in the bundled tritonserver and answers every batch size like Paddle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from repogen.reference import paddle_outputs
from repogen.build.spec import EXAMPLE_DIR, DynamicBatching, ModelSpec, Warmup

pytestmark = pytest.mark.e2e


def _paddle(x: np.ndarray) -> np.ndarray:
    """The example's output from Paddle, with the settings every repogen reference uses."""
    return next(iter(paddle_outputs(EXAMPLE_DIR, {"image": x}).values()))


def test_batch_split_profiles_serve(tmp_path: Path) -> None:
    import tritonclient.grpc as grpcclient

    from repogen.harness.server import launch
    from repogen.build.flow import build_repository

    spec = ModelSpec(source=EXAMPLE_DIR, name="split", target="paddle", check=False,
                     min_shapes=["image:1x3x32x32", "image:5x3x32x32"],
                     opt_shapes=["image:4x3x32x32", "image:16x3x32x32"],
                     max_shapes=["image:4x3x32x32", "image:16x3x32x32"],
                     dynamic_batching=DynamicBatching(), warmup=Warmup(1))
    repo = tmp_path / "repo"
    build_repository([spec], repo, progress=False)
    cfg = text_format.Parse((repo / "split" / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
    assert cfg.max_batch_size == 16  # Triton's rule: the largest max across profiles
    assert cfg.model_warmup[0].batch_size == 1 and list(cfg.model_warmup[0].inputs["image"].dims) == [3, 32, 32]

    rng = np.random.default_rng(3)
    with launch(repo, require_models=True) as server:
        client = grpcclient.InferenceServerClient(server.grpc_url)
        for n in (1, 4, 5, 16):
            x = rng.normal(size=(n, 3, 32, 32)).astype(np.float32)
            inp = grpcclient.InferInput("image", list(x.shape), "FP32")
            inp.set_data_from_numpy(x)
            got = client.infer("split", [inp]).as_numpy("probs")
            want = _paddle(x)
            assert got.shape == want.shape == (n, 10)
            assert np.linalg.norm(got - want) / np.linalg.norm(want) <= 1e-5
        client.close()
