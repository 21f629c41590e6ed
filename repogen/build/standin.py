"""``--target numpy``: the TensorRT layout of a model folder with a Python-backend stand-in for the plan.

The stand-in's config differs from the plan's only in the backend (same I/O names, dtypes, dims,
max_batch_size, batching, profiles); its ``model.py`` converts the model files in its version folder with
repogen's converters into the NumPy TensorRT backend once, at load, and runs that network per request,
refusing request shapes outside the optimization profiles as the plan would. So a CPU Triton exercises the
network repogen converted, end to end.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from repogen import __version__
from repogen.ir import Graph
from repogen.partition.regions import Region
from repogen.repository.config import EngineDesc, render_template

STANDIN_TEMPLATE = "numpy_model.py.j2"
MODEL_PY = "model.py"
DESCRIPTIONS = {
    "tensorrt": "CPU stand-in for a TensorRT plan: runs the TensorRT network repogen converted from the model "
                "files in this version folder on repogen's NumPy backend, and refuses request shapes outside "
                "the optimization profiles, as the plan would.",
    "python": "Remainder of a partitioned model: runs the ops TensorRT cannot (see repogen.json) with Paddle, "
              "op by op, from the model files in this version folder.",
}


def standin_engine(cleaned: Graph, profile_objs: list[Any], profiles: list[dict], precision: str) -> tuple[EngineDesc, Region]:
    """The engine description the plan would have (from converting with the NumPy backend) and the region
    (the whole model) the stand-in runs. ``cleaned`` comes cleaned from build's one pass (``ModelForms.cleaned`` in onepass.py),
    as for ``targets.build_plan``: no second clean_graph here."""
    from repogen.trt import numpy_trt
    from repogen.trt.convert import convert_graph
    from repogen.build.targets import conversion_engine

    conversion = convert_graph(cleaned, numpy_trt, precision=precision, profiles=profile_objs, clean=False)
    engine = conversion_engine(conversion, profiles)
    region = Region("tensorrt", None, [], [(t.name, t.dtype, t.shape) for t in engine.inputs],
                    [(t.name, t.dtype, t.shape) for t in engine.outputs], {}, profiles, precision)
    return engine, region


def render_region_py(model_file: str, region: Region) -> str:
    return render_template(STANDIN_TEMPLATE, {"repogen_version": __version__, "model_file": model_file,
                                              "region": region.to_json(), "description": DESCRIPTIONS[region.kind]})


def write_region_folder(version_dir: Path, sources: list[Path], region: Region) -> None:
    """The model files (the served model reads them at load) and model.py."""
    for f in sources:
        shutil.copyfile(f, version_dir / f.name)
    (version_dir / MODEL_PY).write_text(render_region_py(sources[0].name, region), encoding="utf-8")
