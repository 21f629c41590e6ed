"""The canonical vocabulary: legacy and PIR spellings of one model meet in the same names; docs/ir.md agrees."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

from tests.support import zoo
from repogen.paddle import load_model, opdefs

MODELS = [m for m in zoo.MODELS if m != "resnet50" and {"pir", "paddle2"} <= set(zoo.MODELS[m].formats)]
DOC = Path(__file__).resolve().parents[1] / "docs" / "ir.md"


@pytest.mark.parametrize("model", MODELS)
def test_legacy_names_are_pir_names(model: str) -> None:
    """Every canonical attr/slot a legacy op ends up with is one the PIR twin of the model uses."""
    pir = load_model(zoo.get(model, "pir"))
    legacy = load_model(zoo.get(model, "paddle2"))
    attrs, ins, outs = defaultdict(set), defaultdict(set), defaultdict(set)
    for op in pir.ops:
        attrs[op.type] |= set(op.attrs)
        ins[op.type] |= set(op.inputs)
        outs[op.type] |= set(op.outputs)
    compared = 0
    for op in legacy.ops:
        if op.type not in attrs:
            continue  # the PIR program spells this computation differently (e.g. shape vs shape64)
        compared += 1
        extra_attrs = set(op.attrs) - attrs[op.type] - ins[op.type] - set(opdefs.LEGACY_ONLY_ATTRS)
        extra_ins = {s for s in op.inputs if s.removesuffix("_tensor_list") not in ins[op.type]}
        if op.type == "full":  # PIR spells a fill_constant with a run-time shape or value as full_with_tensor
            extra_ins -= {"shape", "shape_tensor_list", "value"}
        assert not extra_attrs, (op.source_type, op.type, extra_attrs, attrs[op.type])
        assert not extra_ins, (op.source_type, op.type, extra_ins, ins[op.type])
        assert set(op.outputs) <= outs[op.type], (op.source_type, op.outputs, outs[op.type])
    assert compared > 0


def test_legacy_table_consistent() -> None:
    for name, (d, lg) in opdefs.LEGACY.items():
        assert lg.name == name and opdefs.OPS[d.type] is d
        for m in lg.mutables:  # PIR `full` takes shape/value as attributes only
            assert m.name in d.inputs or d.type == "full", (name, m.name)
        for new in lg.slots.values():
            assert new == new.lower()


def test_canonical_type_rules() -> None:
    assert opdefs.canonical_type("pd_op.relu_") == "relu"
    assert opdefs.canonical_type("pd_op.batch_norm_") == "batch_norm"
    assert opdefs.canonical_type("reshape2") == "reshape"
    assert opdefs.canonical_type("elementwise_add") == "add"
    assert opdefs.canonical_type("matmul_v2") == "matmul"
    assert opdefs.canonical_type("pd_op.some_new_op") == "some_new_op"
    assert opdefs.canonical_type("my_custom") == "my_custom"


def test_doc_table_is_generated_from_opdefs() -> None:
    text = DOC.read_text()
    begin, end = opdefs.DOC_BEGIN, opdefs.DOC_END
    table = text[text.index(begin) + len(begin): text.index(end)].strip()
    assert table == opdefs.markdown_table().strip(), "docs/ir.md is stale: python -m repogen.paddle.opdefs docs/ir.md"
    for op_type in opdefs.OPS:
        assert f"| `{op_type}` |" in table


def test_pir_operand_order_matches_paddle_signatures() -> None:
    """Where Paddle's stubs give an op's signature, the table's operands are a subsequence of it."""
    from repogen.paddle.pir_signatures import SIGNATURES

    checked = 0
    for op_type, d in opdefs.OPS.items():
        sig = SIGNATURES.get(op_type)
        if sig is None:
            continue
        it = iter(sig)
        assert all(name in it for name in d.inputs), (op_type, d.inputs, sig)
        checked += 1
    assert checked > 100


def test_unknown_pir_op_slots_from_signature(tmp_path: Path) -> None:
    import json

    doc = {"base_code": {"magic": "pir", "version": 4}, "program": {"regions": [{"#": "region_0", "blocks": [
        {"#": "block_0", "args": [], "ops": [
            {"#": "1.data", "A": [{"N": "name", "AT": {"#": "0.a_str", "D": "x"}}], "I": [],
             "O": [{"%": 1, "TT": {"#": "0.t_dtensor", "D": [{"#": "0.t_f32"}, [-1, 4], "NCHW", [], 0]}}]},
            {"#": "1.fake_quantize_dequantize_moving_average_abs_max",
             "A": [{"N": "moving_rate", "AT": {"#": "0.a_f32", "D": 0.9}}],
             "I": [{"%": 1}, {"%": 0}, {"%": 0}, {"%": 0}],
             "O": [{"%": 2, "TT": {"#": "0.t_dtensor", "D": [{"#": "0.t_f32"}, [-1, 4], "NCHW", [], 0]}}]},
            {"#": "1.fetch", "A": [{"N": "name", "AT": {"#": "0.a_str", "D": "y"}},
                                   {"N": "col", "AT": {"#": "0.a_i32", "D": 0}}],
             "I": [{"%": 2}], "O": [{"%": 3, "TT": {"#": "0.t_dtensor", "D": [{"#": "0.t_f32"}, [-1, 4], "NCHW", [], 0]}}]},
        ]}]}]}}
    (tmp_path / "m.json").write_text(json.dumps(doc))
    g = load_model(tmp_path / "m.json")
    (op,) = g.ops
    assert op.type == "fake_quantize_dequantize_moving_average_abs_max"
    assert op.inputs == {"x": ["x"]} and op.outputs == {"out": ["y"]} and op.attrs == {"moving_rate": 0.9}
    assert g.inputs == ["x"] and g.outputs == ["y"] and g.value("y").shape == (-1, 4)
