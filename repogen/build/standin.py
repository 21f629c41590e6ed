"""``--target numpy``: the TensorRT layout of a model folder with a Python-backend stand-in for the plan.

The stand-in's config differs from the plan's only in the backend (same I/O names, dtypes, dims,
max_batch_size, batching, profiles); its ``model.py`` converts the model files in its version folder with
repogen's converters into the NumPy TensorRT backend once, at load, and runs that network per request,
refusing request shapes outside the optimization profiles as the plan would. So a CPU Triton exercises the
network repogen converted, end to end.
"""

from __future__ import annotations

from typing import Any

from repogen.ir import Graph
from repogen.partition.regions import Region
from repogen.repository.config import EngineDesc
from repogen.repository.engine import conversion_engine
from repogen.trt import convert, numpy_trt


def standin_engine(cleaned: Graph, profile_objs: list[Any], profiles: list[dict], precision: str) -> tuple[EngineDesc, Region]:
    """The engine description the plan would have (from converting with the NumPy backend) and the region
    (the whole model) the stand-in runs. ``cleaned`` comes cleaned from build's one pass (``ModelForms.cleaned`` in onepass.py),
    as for ``targets.build_plan``: no second clean_graph here."""
    conversion = convert.convert_graph(cleaned, numpy_trt, precision=precision, profiles=profile_objs, clean=False)
    engine = conversion_engine(conversion, profiles)
    region = Region("tensorrt", None, [], [(t.name, t.dtype, t.shape) for t in engine.inputs],
                    [(t.name, t.dtype, t.shape) for t in engine.outputs], {}, profiles, precision)
    return engine, region
