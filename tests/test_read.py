"""The readers against Paddle's own loader, for every zoo model in every format."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.support import zoo
from repogen.errors import ModelFormatError
from repogen.paddle import load_model
from repogen.paddle.opdefs import OPS

MODELS = [m for m in zoo.MODELS if m != "resnet50"]  # resnet50 only in test_resnet50_params
CASES = [(m, f) for m in MODELS for f in zoo.MODELS[m].formats]
PIR_MODELS = [m for m in MODELS if "pir" in zoo.MODELS[m].formats]
SYNTHETIC = "pd_op.fetch"  # source_type of the assign the PIR reader adds for a fetched named value


@pytest.fixture(scope="session")
def views() -> dict[str, dict]:
    zoo.ensure(MODELS)  # builds missing models in parallel on a cold cache
    return zoo.paddle_view([zoo.get(m, f) for m, f in CASES])


@pytest.fixture(scope="session")
def graphs() -> dict:
    return {(m, f): load_model(zoo.get(m, f)) for m, f in CASES}


def _view(views: dict, model: str, fmt: str) -> dict:
    return views[str(zoo.get(model, fmt))]


@pytest.mark.parametrize("model,fmt", CASES)
def test_params_equal_paddle_bytes(model: str, fmt: str, views: dict, graphs: dict) -> None:
    g = graphs[model, fmt]
    want = _view(views, model, fmt)["params"]
    assert sorted(g.params) == sorted(want)
    for name, arr in g.params.items():
        dtype, shape, digest = want[name]
        if dtype == "uint16" and g.value(name).dtype == "bfloat16":
            # bf16 parameters are widened exactly to float32 on reading: their upper halves are the stored bits
            assert arr.dtype == np.float32, name
            arr = (arr.view(np.uint32) >> 16).astype(np.uint16)
        else:
            assert not arr.flags.owndata and not arr.flags.writeable, f"{name} is a copy, not a view of the file"
        assert (str(arr.dtype), list(arr.shape)) == (dtype, shape), name
        assert hashlib.sha256(arr.tobytes()).hexdigest() == digest, name
        assert g.value(name).const is g.params[name] and g.value(name).persistable


@pytest.mark.parametrize("model,fmt", CASES)
def test_feeds_fetches_equal_paddle(model: str, fmt: str, views: dict, graphs: dict) -> None:
    g = graphs[model, fmt]
    view = _view(views, model, fmt)
    got_in = [[v.name, v.dtype, list(v.shape)] for v in g.input_values()]
    got_out = [[v.name, v.dtype, list(v.shape)] for v in g.output_values()]
    assert got_in == view["feeds"]
    assert got_out == view["fetches"]


@pytest.mark.parametrize("model,fmt", CASES)
def test_op_sequence_equals_paddle(model: str, fmt: str, views: dict, graphs: dict) -> None:
    g = graphs[model, fmt]
    view = _view(views, model, fmt)
    assert [op.source_type for op in g.ops if op.source_type != SYNTHETIC] == view["ops"]
    assert [op.source_type for b in g.sub_blocks for op in b.ops] == view["sub_block_ops"]


@pytest.mark.parametrize("model", PIR_MODELS)
def test_pir_slot_names_equal_paddle(model: str, views: dict, graphs: dict) -> None:
    """Canonical slots of PIR ops are the names Paddle's op yaml gives (operands and results)."""
    g = graphs[model, "pir"]
    slots = _view(views, model, "pir")["slots"]
    ops = [op for op in g.ops if op.source_type != SYNTHETIC]
    assert len(ops) == len(slots)
    checked = 0
    for op, (name, ins, outs) in zip(ops, slots):
        assert op.source_type == name
        if ins is None:
            continue
        assert op.type in OPS, f"{name} has no opdefs entry"
        assert set(op.inputs) <= set(ins), (name, op.inputs, ins)
        assert list(op.outputs) == [o for o in outs][: len(op.outputs)], (name, op.outputs, outs)
        checked += 1
    assert checked > 0


@pytest.mark.parametrize("model,fmt", CASES)
def test_values_typed_and_ops_canonical(model: str, fmt: str, graphs: dict) -> None:
    g = graphs[model, fmt]
    for block in g.blocks:
        for op in block.ops:
            assert not op.type.startswith("pd_op.") and not op.type.endswith("_") or op.type not in OPS
            for name in list(op.input_names()) + list(op.output_names()):
                v = g.value(name)
                assert v.dtype in ("bool", "int8", "uint8", "int16", "int32", "int64", "float16", "bfloat16",
                                   "float32", "float64", "complex64", "complex128")
    if fmt != "pir":
        known = [op for op in g.ops if op.type in OPS]
        assert known, "no op mapped to the canonical vocabulary"
        for op in known:  # legacy slot names end up in the phi vocabulary, never capitalized
            assert all(s == s.lower() for s in list(op.inputs) + list(op.outputs)), op


@pytest.mark.parametrize("model", ["convnet", "tensors", "transformer", "legacy_ops"])
def test_reference_output_names_match(model: str, graphs: dict) -> None:
    """Graph.outputs are the names Paddle Inference reports, and their shapes fit the declared ones."""
    feeds = zoo.sample_feeds(model)
    for fmt in zoo.MODELS[model].formats:
        g = graphs[model, fmt]
        ref = zoo.reference_outputs(zoo.get(model, fmt), feeds)
        assert list(ref) == g.outputs, fmt
        for v in g.output_values():
            assert len(ref[v.name].shape) == len(v.shape)
            assert all(d < 0 or d == r for d, r in zip(v.shape, ref[v.name].shape)), (v, ref[v.name].shape)


def test_formats_agree_on_params() -> None:
    """The three legacy layouts of one model hold the same arrays."""
    a, b, c = (load_model(zoo.get("convnet", f)) for f in ("paddle2", "fluid-separate", "fluid-combined"))
    assert sorted(a.params) == sorted(b.params) == sorted(c.params)
    for name in a.params:
        assert np.array_equal(a.params[name], b.params[name]) and np.array_equal(a.params[name], c.params[name])


def test_pir_constants_and_combine() -> None:
    g = load_model(zoo.get("tensors", "pir"))
    reshapes = [op for op in g.ops if op.type == "reshape"]
    shapes = [g.value(op.input("shape")).const for op in reshapes]
    assert any(s is not None and s.tolist() == [-1, 48] for s in shapes), shapes
    concat = next(op for op in g.ops if op.type == "concat")
    assert len(concat.inputs["x"]) == 2  # builtin.combine became a list
    split = next(op for op in g.ops if op.type == "split")
    assert len(split.outputs["out"]) == 3 and all(g.value(n) for n in split.outputs["out"])


def test_legacy_mutable_args() -> None:
    g = load_model(zoo.get("tensors", "paddle2"))
    r = next(op for op in g.ops if op.source_type == "reshape2" and op.attrs.get("shape") == [-1, 48])
    assert r.type == "reshape" and r.input("x") and r.output("out")
    s = next(op for op in g.ops if op.source_type == "scale" or op.source_type == "slice")
    assert s.type in ("scale", "slice")
    ew = next(op for op in g.ops if op.source_type == "elementwise_add")
    assert ew.type == "add" and ew.attrs["axis"] == -1


def test_control_flow_blocks_kept() -> None:
    pir = load_model(zoo.get("ifnet", "pir"))
    if_op = next(op for op in pir.ops if op.type == "if")
    assert len(if_op.blocks) == 2
    for idx in if_op.blocks:
        block = pir.blocks[idx]
        assert block.parent == 0 and [op.type for op in block.ops][-1] == "yield"
        assert any(op.type == "scale" for op in block.ops)
    assert if_op.inputs["cond"] and if_op.outputs["out"] == pir.outputs
    legacy = load_model(zoo.get("ifnet", "paddle2"))
    conds = [op for op in legacy.ops if op.type == "conditional_block"]
    assert len(conds) == 2 and sorted(i for op in conds for i in op.blocks) == [1, 2]
    # while: loop-carried values are the body block's arguments, in the order of the op's `inputs`
    pir = load_model(zoo.get("whilenet", "pir"))
    loop = next(op for op in pir.ops if op.type == "while")
    body = pir.blocks[loop.blocks[0]]
    assert len(loop.inputs["inputs"]) == len(loop.outputs["out"]) == 2
    assert [n for n in body.values if n.startswith("%-")] == ["%-1", "%-2"]
    yield_op = body.ops[-1]
    assert yield_op.type == "yield" and len(yield_op.inputs["x"]) == 3  # next condition + the two values
    legacy = load_model(zoo.get("whilenet", "paddle2"))
    loop = next(op for op in legacy.ops if op.type == "while")
    assert loop.blocks == [1] and loop.inputs["cond"] and legacy.blocks[1].parent == 0


def test_detect_paths(tmp_path: Path) -> None:
    d = zoo.get("convnet", "pir")
    prefix = load_model(d / "inference")
    assert load_model(d / "inference.json").source == prefix.source
    assert load_model(d / "inference.pdiparams").source.format == "pir"
    assert load_model(zoo.get("convnet", "paddle2") / "inference.pdmodel").source.format == "paddle2"
    assert load_model(zoo.get("convnet", "fluid-separate")).source.params_file is None
    # a combined Fluid params file under any name, found alone or named explicitly
    odd = tmp_path / "odd"
    odd.mkdir()
    src = zoo.get("convnet", "fluid-combined")
    shutil.copy(src / "__model__", odd / "__model__")
    shutil.copy(src / "__params__", odd / "weights")
    g = load_model(odd)
    assert g.source.format == "fluid-combined" and g.source.params_file == odd / "weights"
    shutil.copy(src / "__params__", odd / "other")
    assert load_model(odd, params_file="weights").source.params_file == odd / "weights"
    with pytest.raises(ModelFormatError, match="nothing"):
        load_model(d / "nothing")


def test_pir_versions(tmp_path: Path) -> None:
    """Versions 1..3 spell some attrs as float/int32 where 4 uses double/int64: same graph either way."""
    import json

    base = json.loads((zoo.get("convnet", "pir") / "inference.json").read_text())
    ref = load_model(zoo.get("convnet", "pir"))

    def downgrade(node: object) -> None:
        if isinstance(node, dict):
            if node.get("#") == "0.a_f64":
                node["#"] = "0.a_f32"
            if node.get("#") == "0.a_i64":
                node["#"] = "0.a_i32"
            for v in node.values():
                downgrade(v)
        elif isinstance(node, list):
            for v in node:
                downgrade(v)

    downgrade(base)
    for version in (1, 2, 3):
        base["base_code"]["version"] = version
        d = tmp_path / f"v{version}"
        d.mkdir()
        (d / "inference.json").write_text(json.dumps(base))
        shutil.copy(zoo.get("convnet", "pir") / "inference.pdiparams", d / "inference.pdiparams")
        g = load_model(d)
        assert g.source.pir_version == version
        assert [(o.type, o.inputs, o.outputs) for o in g.ops] == [(o.type, o.inputs, o.outputs) for o in ref.ops]
        assert [o.attrs for o in g.ops] == [o.attrs for o in ref.ops]
    base["base_code"]["version"] = 99
    (tmp_path / "v99.json").write_text(json.dumps(base))
    with pytest.raises(ModelFormatError, match="version 99"):
        load_model(tmp_path / "v99.json")


def test_resnet50_params() -> None:
    paths = [zoo.get("resnet50", "pir"), zoo.get("resnet50", "paddle2")]
    views = zoo.paddle_view(paths)
    for path in paths:
        g = load_model(path)
        want = views[str(path)]["params"]
        assert sorted(g.params) == sorted(want)
        assert sum(a.nbytes for a in g.params.values()) > 90e6
        for name, arr in g.params.items():
            assert hashlib.sha256(arr.tobytes()).hexdigest() == want[name][2], name


def _pir_doc(ops: list) -> dict:
    return {"base_code": {"magic": "pir", "version": 4, "trainable": False},
            "program": {"regions": [{"#": "region_0", "blocks": [{"#": "block_0", "args": [], "ops": ops}]}]}}


def _t(dims: list) -> dict:
    return {"#": "0.t_dtensor", "D": [{"#": "0.t_f32"}, dims, "NCHW", [], 0]}


def _attr(name: str, kind: str, value: object) -> dict:
    return {"N": name, "AT": {"#": kind, "D": value}}


def test_pir_fetch_aliases(tmp_path: Path) -> None:
    """A fetched input and a value fetched twice still give Paddle's fetch names, via assign ops."""
    import json

    ops = [
        {"#": "1.data", "A": [_attr("name", "0.a_str", "x")], "I": [], "O": [{"%": 1, "TT": _t([-1, 3])}]},
        {"#": "1.relu", "A": [], "I": [{"%": 1}], "O": [{"%": 2, "TT": _t([-1, 3])}]},
        {"#": "1.fetch", "A": [_attr("name", "0.a_str", "a"), _attr("col", "0.a_i32", 0)], "I": [{"%": 2}],
         "O": [{"%": 3, "TT": _t([-1, 3])}]},
        {"#": "1.fetch", "A": [_attr("name", "0.a_str", "b"), _attr("col", "0.a_i32", 2)], "I": [{"%": 2}],
         "O": [{"%": 4, "TT": _t([-1, 3])}]},
        {"#": "1.fetch", "A": [_attr("name", "0.a_str", "c"), _attr("col", "0.a_i32", 1)], "I": [{"%": 1}],
         "O": [{"%": 5, "TT": _t([-1, 3])}]},
    ]
    (tmp_path / "m.json").write_text(json.dumps(_pir_doc(ops)))
    g = load_model(tmp_path / "m.json")
    assert g.outputs == ["a", "c", "b"]  # col order
    assert [(op.type, op.inputs, op.outputs) for op in g.ops] == [
        ("relu", {"x": ["x"]}, {"out": ["a"]}),
        ("assign", {"x": ["x"]}, {"out": ["c"]}),
        ("assign", {"x": ["a"]}, {"out": ["b"]}),
    ]
    assert all(v.shape == (-1, 3) and v.dtype == "float32" for v in g.output_values())


def test_programdesc_fast_paths_agree_with_general_decoder(monkeypatch: pytest.MonkeyPatch) -> None:
    import repogen.paddle.programdesc as pd

    for model in (m for m in MODELS if "paddle2" in zoo.MODELS[m].formats):
        path = zoo.get(model, "paddle2") / "inference.pdmodel"
        data = path.read_bytes()
        fast = pd.decode_program(data, path)
        with monkeypatch.context() as m:
            m.setattr(pd, "_attr_fast", lambda *a: False)
            m.setattr(pd, "_var_fast", lambda *a: None)
            m.setattr(pd, "_slot", pd._slot_general)
            assert pd.decode_program(data, path) == fast, model


def test_pir_special_float_attributes() -> None:
    # Paddle writes float attributes JSON cannot hold as {"VD": "INF"}: p_norm's porder=inf arrives that way
    import math

    from repogen.ir import ModelSource
    from repogen.paddle.pir import _Reader, attr_value

    r = _Reader(ModelSource("pir", Path("m.json"), Path("m.pdiparams")), 4)
    assert attr_value({"#": "0.a_f32", "VD": "INF"}, r) == math.inf
    assert attr_value({"#": "0.a_f64", "VD": "-INF"}, r) == -math.inf
    assert math.isnan(attr_value({"#": "0.a_f32", "VD": "NAN"}, r))
    # spelled as Paddle 3.3.1 writes them: NaN in mixed case, f64 full values, assign_value array elements
    assert math.isnan(attr_value({"#": "0.a_f64", "VD": "NaN"}, r))
    assert attr_value({"#": "0.a_array", "D": [{"#": "0.a_f64", "VD": "INF"}, {"#": "0.a_f64", "VD": "-INF"},
                                                {"#": "0.a_f64", "D": 1.0}]}, r) == [math.inf, -math.inf, 1.0]
    assert attr_value({"#": "0.a_f32", "D": 2.5}, r) == 2.5
    with pytest.raises(ModelFormatError, match="m.json.*special float"):
        attr_value({"#": "0.a_f32", "VD": "HUGE"}, r)
