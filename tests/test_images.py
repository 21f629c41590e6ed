"""The serving image chosen from a repository's record (issue 26 item 4), and what the generated Python-backend
models import inside the server (what docker/Dockerfile.serve-paddle must carry; tests/test_container.py
imports this list in the built image)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from repogen.deploy.manifests import ManifestOptions, for_repository
from repogen.errors import ConfigError
from repogen.harness import container
from repogen.pipelines.ensemble import HERE as PIPELINES, SERVED
from repogen.repository import images
from repogen.repository.config import render_template
from repogen.partition.regions import STANDIN_TEMPLATE

PLAN_108 = {"role": "model", "target": "tensorrt", "backend": "tensorrt", "tensorrt": {"version": "10.8.0.43"}}
PLAN_105 = {"role": "model", "target": "tensorrt", "backend": "tensorrt", "tensorrt": {"version": "10.5.0.18"}}
# what build.flow and partition.ensemble write for the folders around a plan
PRE = {"role": "pre", "target": "python", "backend": "python", "part_of": "det"}
POST = {"role": "post", "target": "python", "backend": "python", "part_of": "det"}
PIPELINE = {"role": "pipeline", "target": "ensemble", "backend": "ensemble", "part_of": "det"}
SYSTEM = {"role": "system", "target": "python", "backend": "python"}
REMAINDER = {"role": "part", "target": "python", "backend": "python", "part_of": "net"}
PART_PLAN = {**PLAN_108, "role": "part", "part_of": "net"}
ENSEMBLE = {"role": "model", "target": "ensemble", "backend": "ensemble"}


def test_plans_alone_get_the_stock_ngc_release_of_their_tensorrt():
    for plans, release in (([PLAN_108, PIPELINE], "25.01"), ([PLAN_105], "24.10")):
        chosen = images.serving_image(plans, gpu_host=True)
        assert (chosen.image, chosen.gpu) == (f"nvcr.io/nvidia/tritonserver:{release}-py3", True), chosen


@pytest.mark.parametrize("python, kind", [
    ([PRE, POST, PIPELINE, SYSTEM], "pipeline stages"),  # pipeline stages and ocr_system around a plan
    ([ENSEMBLE, REMAINDER], "partition remainders"),  # a partitioned model: a plan part and a Python remainder
    ([{"role": "model", "target": "paddle", "backend": "python"}], "paddle target"),
    ([{"role": "model", "target": "numpy", "backend": "python"}], "NumPy stand-ins"),
])
def test_plans_beside_python_models_get_the_serve_paddle_image_of_the_plans_release(python, kind):
    """The stock NGC image has TensorRT but neither Paddle, OpenCV, pyclipper nor repogen: the Python models of
    a mixed repository would not load there. They get Dockerfile.serve-paddle built on the plans' release."""
    for plan, release in ((PART_PLAN if kind == "partition remainders" else PLAN_108, "25.01"), (PLAN_105, "24.10")):
        for gpu_host in (False, True):
            chosen = images.serving_image([plan, *python], gpu_host=gpu_host)
            assert (chosen.image, chosen.gpu) == (f"repogen/tritonserver-paddle:{release}", True), chosen
            assert kind in chosen.why and "Dockerfile.serve-paddle" in chosen.why, chosen.why
            assert f"TRITON_RELEASE={release}" in chosen.why, chosen.why


def test_python_models_alone_get_the_cpu_image_or_serve_paddle_on_a_gpu_host():
    python = [PRE, POST, PIPELINE, SYSTEM, {"role": "model", "target": "paddle", "backend": "python"}]
    assert images.serving_image(python).image == images.CPU_IMAGE
    assert not images.serving_image(python).gpu
    assert images.serving_image(python, gpu_host=True).image == images.PADDLE_GPU_IMAGE == "repogen/tritonserver-paddle:25.01"
    with pytest.raises(ConfigError, match="several TensorRT versions"):
        images.serving_image([PLAN_108, PLAN_105, PRE])


def test_manifests_and_the_harness_ask_the_same_chooser(tmp_path):
    """One repository on disk: `repogen manifests` (for_repository) and the container harness (image_for) name
    the same image, for the whole repository and for the plan alone."""
    for name, manifest in (("det", PLAN_108), ("det_pre", PRE), ("det_post", POST), ("det_pipeline", PIPELINE)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "repogen.json").write_text(json.dumps(manifest))
    manifests = [json.loads((tmp_path / n / "repogen.json").read_text()) for n in ("det", "det_pre", "det_post",
                                                                                   "det_pipeline")]
    opts = for_repository(ManifestOptions(), manifests, str(tmp_path))
    assert (opts.image, opts.gpus) == ("repogen/tritonserver-paddle:25.01", 1)
    assert container.image_for(tmp_path, None, gpus=True) == opts.image
    assert container.image_for(tmp_path, ["det"], gpus=True) == for_repository(
        ManifestOptions(), manifests[:1], str(tmp_path)).image == images.ngc_image("25.01")


# -- what the generated models import ----------------------------------------------------------------------------

def _pipeline_stage(folder: Path) -> Path:
    """A pre-processing stage's version folder as repogen.pipelines.ensemble writes it (the same files)."""
    version = folder / "1"
    version.mkdir(parents=True)
    (version / "model.py").write_bytes((SERVED / "pre_model.py").read_bytes())
    (version / "pipeline_common.py").write_bytes((SERVED / "common.py").read_bytes())
    (version / "pipeline_ops.py").write_bytes((PIPELINES / "ops.py").read_bytes())
    (version / "pipeline.json").write_text("{}")
    return folder


def _standin(folder: Path) -> Path:
    version = folder / "1"
    version.mkdir(parents=True)
    (version / "model.py").write_text(render_template(STANDIN_TEMPLATE, {
        "repogen_version": "0", "model_file": "inference.json", "region": {}, "description": "a stand-in"}))
    return folder


def _imported_at_run_time(version: Path, statements: list[str]) -> set[str]:
    """Python's own answer: the non-standard-library top-level modules loaded after running ``statements`` in a
    fresh interpreter with the version folder on the path and a stub for the backend's utilities."""
    code = ("import sys, types; sys.modules['triton_python_backend_utils'] = types.ModuleType('stub'); "
            f"sys.path.insert(0, {str(version)!r}); before = set(sys.modules)\n" + "\n".join(statements) +
            # extension modules register private helpers (Cython's cython_runtime, _cython_3_0_8) with no spec
            "\nprint(' '.join(sorted({m.split('.')[0] for m in set(sys.modules) - before if not m.startswith('_') "
            "and getattr(sys.modules[m], '__spec__', None) is not None} - set(sys.stdlib_module_names))))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=version)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return set(proc.stdout.split())


def test_a_pipeline_stage_imports_what_python_itself_loads(tmp_path):
    """The stage's model.py imports its siblings (pipeline_common, pipeline_ops), which import OpenCV, pyclipper
    and numpy: the list is exactly the third-party modules Python loads when the model module is imported."""
    folder = _pipeline_stage(tmp_path / "det_pre")
    found = images.python_model_imports([folder])
    assert found == ["import cv2", "import numpy", "import pyclipper"], found
    loaded = _imported_at_run_time(folder / "1", ["import model"]) - {"pipeline_common", "pipeline_ops", "model"}
    assert loaded == {"cv2", "numpy", "pyclipper"}, loaded


def test_a_standin_follows_repogen_through_its_run_time_imports(tmp_path):
    """A stand-in's model.py imports repogen.partition inside initialize(); the list follows repogen's modules,
    their imports inside functions and their require() calls (the converters, the NumPy backend and Paddle's
    ops run at load and request time), so it holds every repogen module Python loads for it, and more."""
    folder = _standin(tmp_path / "net_0_tensorrt")
    found = images.python_model_imports([folder])
    tops = {line.split()[1].split(".")[0] for line in found}
    assert {"numpy", "paddle", "repogen", "jinja2", "tritonclient", "google"} <= tops, tops
    assert "triton_python_backend_utils" not in tops and "json" not in tops and "os" not in tops
    assert "import paddle._C_ops" in found  # runtime.py: require("paddle._C_ops") for a remainder's ops
    mentioned = set()
    for line in found:  # "import m" / "from m import name": m, m.name (a submodule or not) and their packages
        words = line.split()
        for module in (words[1], f"{words[1]}.{words[3]}") if words[0] == "from" else (words[1],):
            parts = module.split(".")
            mentioned |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
    code = ["from repogen.partition.regions import Region, load_cleaned",
            "from repogen.partition.runtime import make_runner, profile_error",
            # what make_runner and a remainder import when they run (inside functions)
            "import repogen.trt.numpy_trt, repogen.trt.convert, repogen.trt.profiles, repogen.paddle.pir_signatures",
            "print(' '.join(m for m in sys.modules if m.startswith('repogen')))"]
    proc = subprocess.run([sys.executable, "-c", "import sys\n" + "\n".join(code)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    loaded = set(proc.stdout.split())
    assert "repogen.trt.numpy_trt" in loaded and "repogen.trt.converters.conv" in loaded, loaded
    assert loaded <= mentioned, sorted(loaded - mentioned)


def test_the_reader_keeps_only_what_the_server_must_provide(tmp_path):
    version = tmp_path / "m" / "1"
    version.mkdir(parents=True)
    (version / "helper.py").write_text("import yaml\n")
    (version / "model.py").write_text(
        "import json, os\nimport helper\nfrom helper import thing\nimport triton_python_backend_utils as pb\n"
        "def initialize():\n    from paddle import inference\n    import shapely.geometry\n")
    assert images.python_model_imports([tmp_path / "m"]) == [
        "from paddle import inference", "import shapely.geometry", "import yaml"]
