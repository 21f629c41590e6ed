"""`repogen check` on the command line: table/JSON, exit codes, --inputs/--reference files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.support import zoo
from repogen.cli import main


def test_check_json_passes(capsys):
    path = zoo.get("mobilenet_v3_small", "paddle2")
    rc = main(["check", str(path), "--shape", "x:2x3x32x32", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert rc == 0 and report["passed"]
    assert report["input_shapes"] == {"x": [2, 3, 32, 32]}
    assert all(o["passed"] and o["rel_l2"] <= 1e-5 and o["precision"] == "fp32" for o in report["outputs"])


def test_check_reference_mismatch_fails(tmp_path, capsys):
    path = zoo.get("transformer", "pir")
    feeds = zoo.sample_feeds("transformer")
    ref = zoo.reference_outputs(path, feeds)
    np.savez(tmp_path / "in.npz", **feeds)
    np.savez(tmp_path / "good.npz", **ref)
    np.savez(tmp_path / "bad.npz", **{k: v * 1.01 for k, v in ref.items()})
    assert main(["check", str(path), "--inputs", str(tmp_path / "in.npz"), "--reference", str(tmp_path / "good.npz")]) == 0
    capsys.readouterr()
    rc = main(["check", str(path), "--inputs", str(tmp_path / "in.npz"), "--reference", str(tmp_path / "bad.npz"),
               "--json"])
    report = json.loads(capsys.readouterr().out)
    assert rc == 1 and not report["passed"]
    assert 0.005 < report["outputs"][0]["rel_l2"] < 0.02 and report["outputs"][0]["reason"]


def test_check_lists_unsupported_ops(capsys):
    # a real Fluid-era LoD model (zoo lod_pool): sequence_pool can never become TensorRT layers
    rc = main(["check", str(zoo.get("lod_pool", "paddle2")), "--shape", "x:6x8", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert rc == 1 and report["unsupported"]
    assert {"position", "op", "outputs"} <= set(report["unsupported"][0])
    assert [u["op"] for u in report["unsupported"]] == ["sequence_pool"]


def test_check_dynamic_dims_need_shape(capsys):
    rc = main(["check", str(zoo.get("transformer", "pir"))])
    assert rc == 2 and "--shape" in capsys.readouterr().err


def test_lod_ops_are_rejected_with_the_reason() -> None:
    """LoD sequence ops can never become TensorRT layers: the error says so, naming op, position and outputs."""
    from repogen.errors import UnsupportedOpError
    from repogen.ir import Graph, ModelSource, Op, Value, Block
    from repogen.trt import numpy_trt
    from repogen.trt.convert import convert_graph
    from repogen.trt.registry import why_unsupported

    values = {n: Value(n, "float32", (-1, 8)) for n in ("x", "pooled", "y")}
    block = Block(0, -1, [Op("sequence_pool", "sequence_pool", {"x": ["x"]}, {"out": ["pooled"]}),
                          Op("relu", "relu", {"x": ["pooled"]}, {"out": ["y"]})], values)
    graph = Graph(ModelSource("paddle2", Path("m.pdmodel"), None), [block], ["x"], ["y"], {})
    with pytest.raises(UnsupportedOpError, match=r"#0 sequence_pool -> pooled: works on LoD"):
        convert_graph(graph, numpy_trt)
    assert why_unsupported("sequence_conv") and why_unsupported("conv2d") is None
    assert why_unsupported("lstm") and why_unsupported("gru") and why_unsupported("gru_unit") is None
