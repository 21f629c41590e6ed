"""The paddle target's model.py, run in-process with a stand-in for triton_python_backend_utils.

Covers what the served e2e test cannot cheaply: every Paddle file format (Fluid separate / combined,
2.x, PIR), several outputs, dynamic spatial dims, and requests of different shapes arriving in one
execute() (joined when their non-batch shapes agree, run apart otherwise). Outputs are compared with
Paddle Inference run on the original model.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from tests.support import zoo
from repogen.build.flow import build_repository
from repogen.build.spec import ModelSpec


class _Tensor:
    def __init__(self, name: str, array: np.ndarray):
        self._name, self._array = name, array

    def name(self) -> str:
        return self._name

    def as_numpy(self) -> np.ndarray:
        return self._array


class _Response:
    def __init__(self, output_tensors, error=None):
        self.output_tensors, self.error = output_tensors, error


class _Error:
    def __init__(self, message: str):
        self.message = message


class _Request:
    def __init__(self, **tensors: np.ndarray):
        self.tensors = tensors


def _fake_pb_utils() -> types.ModuleType:
    m = types.ModuleType("triton_python_backend_utils")
    m.Tensor = _Tensor
    m.InferenceResponse = _Response
    m.TritonError = _Error
    m.TritonModelException = RuntimeError
    m.get_input_tensor_by_name = lambda request, name: _Tensor(name, request.tensors[name])
    return m


def load_model_py(model_dir: Path, version: str = "1"):
    sys.modules["triton_python_backend_utils"] = _fake_pb_utils()
    try:
        spec = importlib.util.spec_from_file_location(f"model_py_{id(model_dir)}", model_dir / version / "model.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        model = module.TritonPythonModel()
        model.initialize({"model_repository": str(model_dir), "model_version": version,
                          "model_instance_kind": "CPU", "model_instance_device_id": "0"})
    finally:
        sys.modules.pop("triton_python_backend_utils", None)
    return model


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    b = b.astype(np.float64)
    return float(np.linalg.norm(a.astype(np.float64) - b) / max(np.linalg.norm(b), 1e-30))


@pytest.mark.parametrize("fmt", zoo.FORMATS)
def test_model_py_all_formats_multi_output_mixed_shapes(tmp_path: Path, fmt: str) -> None:
    source = zoo.get("convnet", fmt)
    spec = ModelSpec(source=source, name="convnet", target="paddle", check=False, min_shapes=["x:1x3x16x16"],
                     opt_shapes=["x:2x3x16x16"], max_shapes=["x:4x3x32x32"])
    build_repository([spec], tmp_path / "repo", progress=False)
    model = load_model_py(tmp_path / "repo" / "convnet")

    rng = np.random.default_rng(3)
    xs = [rng.uniform(-1, 1, shape).astype(np.float32) for shape in ((1, 3, 16, 16), (2, 3, 16, 16), (1, 3, 32, 32))]
    responses = model.execute([_Request(x=x) for x in xs])
    assert len(responses) == 3
    for x, response in zip(xs, responses):
        assert response.error is None
        expected = list(zoo.reference_outputs(source, {"x": x}).values())
        got = [t.as_numpy() for t in response.output_tensors]
        assert len(got) == len(expected) == 6
        for g, e in zip(got, expected):
            assert g.shape == e.shape and g.shape[0] == x.shape[0]
            assert rel_err(g, e) <= 1e-5


def test_model_py_reports_a_bad_request_without_failing_the_others(tmp_path: Path) -> None:
    spec = ModelSpec(source=zoo.get("convnet", "paddle2"), name="convnet", target="paddle", check=False,
                     min_shapes=["x:1x3x16x16"], opt_shapes=["x:2x3x16x16"], max_shapes=["x:4x3x32x32"])
    build_repository([spec], tmp_path / "repo", progress=False)
    model = load_model_py(tmp_path / "repo" / "convnet")
    good = np.zeros((1, 3, 16, 16), np.float32)
    bad = np.zeros((1, 5, 16, 16), np.float32)  # wrong channel count: Paddle refuses it
    ok, failed = model.execute([_Request(x=good), _Request(x=bad)])
    assert ok.error is None and len(ok.output_tensors) == 6
    assert failed.error is not None and failed.error.message and not failed.output_tensors
