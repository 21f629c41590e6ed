"""The converter registry is the one table: converters are loaded in one place, so cleaning (whose constant
folding runs ops through their converters) gives the same graph cold and warm, and every layer limit the
partitioner, the NumPy backend and ``repogen ops --refused`` use comes from the converters' declarations."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import zoo

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "repogen" / "examples" / "tiny_cnn"

_COLD = r"""
import json, sys
from repogen.paddle import load_model
from repogen.trt.passes import clean_graph
print(json.dumps([op.type for op in clean_graph(load_model(sys.argv[1])).ops]))
"""


@pytest.mark.parametrize("model", ["example", "resnet18", "yolo_head"])
def test_cleaning_is_the_same_cold_and_warm(model):
    """A fresh process that imports nothing but the reader and the passes cleans like one that converted before
    (the served stand-in loads cold; the build cleaned warm). Before the registry loaded the converters itself,
    the example cleaned to 17 ops cold and 11 warm."""
    path = str(EXAMPLE) if model == "example" else str(zoo.get(model, "pir"))
    cold = json.loads(subprocess.run([sys.executable, "-c", _COLD, path], capture_output=True, text=True, check=True,
                                     cwd=ROOT, timeout=300).stdout)
    from repogen.paddle import load_model
    from repogen.trt import numpy_trt
    from repogen.trt.convert import convert_graph
    from repogen.trt.passes import clean_graph
    from repogen.trt.profiles import Profile

    convert_graph(load_model(str(EXAMPLE)), numpy_trt,  # warm: every converter imported and used
                  profiles=[Profile({"image": ((1, 3, 32, 32),) * 3})])
    warm = [op.type for op in clean_graph(load_model(path)).ops]
    assert cold == warm
    assert len(warm) < len(load_model(path).ops)  # folding did something


def test_layer_limits_are_declared_by_the_converters():
    from repogen.trt import limits, registry
    from repogen.trt.numpy_trt import _nonmax, _reduce

    limited = sorted(t for t in registry.CONVERTERS if registry.has_limit(t))
    assert limited == ["argsort", "matrix_nms", "multiclass_nms", "multiclass_nms2", "multiclass_nms3", "topk"]
    data_dependent = sorted(t for t in registry.CONVERTERS if registry.needs_data_dependent_layers(t))
    assert data_dependent == ["index_put", "masked_select", "matrix_nms", "multiclass_nms", "multiclass_nms2",
                              "multiclass_nms3"]
    # the NumPy backend enforces TensorRT's limits from the same constants
    assert _reduce.ITopKLayer.MAX_K == limits.TOPK_MAX_K and _nonmax.MAX_TOPK_BOX_LIMIT == limits.NMS_MAX_BOXES


def test_refusals_are_declared_beside_their_converters():
    from repogen.trt import registry

    rows = registry.refusals()
    assert all(registry.has_converter(op) for r in rows for op in r.ops)
    assert any(r.approximate for r in rows) and any(not r.approximate for r in rows)
    # each (op, attribute) once: a refusal declared twice would show twice in docs/refused.md
    keys = [(op, r.attribute) for r in rows for op in r.ops]
    assert len(keys) == len(set(keys))
