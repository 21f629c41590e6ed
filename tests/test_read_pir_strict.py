"""The PIR JSON reader checks what Paddle's deserializer checks, each failure one ModelFormatError naming
the file and the field; and it refuses what would otherwise reach Paddle as a traceback or a hang."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Callable

import pytest

from tests.support import zoo
from repogen.errors import ModelFormatError
from repogen.paddle import load_model
from tests.support.protobuf_bytes import varint


@pytest.fixture(scope="module")
def base() -> dict:
    return json.loads((zoo.get("convnet", "pir") / "inference.json").read_text())


def _ops(doc: dict) -> list:
    return doc["program"]["regions"][0]["blocks"][0]["ops"]


def _op(doc: dict, name: str) -> dict:
    return next(op for op in _ops(doc) if op["#"] == name)


def _nth(doc: dict, name: str, n: int) -> dict:
    return [op for op in _ops(doc) if op["#"] == name][n]


def _set(path: list, value: Any) -> Callable[[dict], None]:
    def edit(doc: dict) -> None:
        node: Any = doc
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return edit


def _fetch_missing(doc: dict) -> None:
    _op(doc, "1.fetch")["I"][0]["%"] = 987654


def _combine_own_result(doc: dict) -> None:
    comb = {"#": "0.combine", "A": [], "I": [{"%": 1}, {"%": 4242}], "O": [{"%": 4242, "TT": {"#": "0.t_vec", "D": [
        _op(doc, "1.data")["O"][0]["TT"]] * 2}}], "OA": []}
    _ops(doc).insert(1, comb)


def _defined_twice(doc: dict) -> None:
    ops = _ops(doc)
    relu = next(op for op in ops if op["#"] not in ("p", "1.data"))
    relu["O"][0]["%"] = 1  # the data op's result id


def _region_uses_own_result(doc: dict) -> None:
    """An if op whose branch uses the if's own result (defined only after its regions, as Paddle reads it)."""
    data = _op(doc, "1.data")["O"][0]
    tt = data["TT"]
    branch = {"#": "b", "args": [], "ops": [{"#": "2.yield", "A": [], "I": [{"%": 5000}], "O": []}]}
    _ops(doc).insert(1, {"#": "1.if", "A": [], "I": [{"%": data["%"]}], "O": [{"%": 5000, "TT": tt}], "OA": [],
                         "regions": [{"#": "r", "blocks": [branch]}]})


def _vector_of_unknown(doc: dict) -> None:
    """A builtin.combine whose vector type has an element of an unknown dtype (the reader never types it)."""
    data = _op(doc, "1.data")["O"][0]
    elem = copy.deepcopy(data["TT"])
    elem["D"][0]["#"] = "0.t_zz"
    _ops(doc).insert(1, {"#": "0.combine", "A": [], "I": [{"%": data["%"]}],
                         "O": [{"%": 4343, "TT": {"#": "0.t_vec", "D": [elem]}}], "OA": []})


def _region_op(doc: dict, region: dict) -> dict:
    data = _op(doc, "1.data")["O"][0]
    return {"#": "1.if", "A": [], "I": [{"%": data["%"]}], "O": [], "regions": [region]}


def _slice_beyond(doc: dict) -> None:
    data = _op(doc, "1.data")["O"][0]
    vec = {"#": "0.t_vec", "D": [data["TT"], data["TT"]]}
    ops = _ops(doc)
    ops.insert(1, {"#": "0.combine", "A": [], "I": [{"%": data["%"]}, {"%": data["%"]}], "O": [{"%": 4400, "TT": vec}]})
    ops.insert(2, {"#": "0.slice", "A": [{"N": "index", "AT": {"#": "0.a_i32", "D": 5}}], "I": [{"%": 4400}],
                   "O": [{"%": 4401, "TT": data["TT"]}]})


def _nested_regions(doc: dict) -> None:
    inner: dict = {"#": "b", "args": [], "ops": []}
    top = inner
    for _ in range(80):
        inner = {"#": "b", "args": [], "ops": [{"#": "1.if", "A": [], "I": [{"%": 1}], "O": [], "OA": [],
                                                 "regions": [{"#": "r", "blocks": [inner]}]}]}
    _ops(doc).insert(1, inner["ops"][0])
    assert top


def _deep_attr(doc: dict) -> None:
    at: dict = {"#": "0.a_i32", "D": 1}
    for _ in range(100):
        at = {"#": "0.a_array", "D": [at]}
    _op(doc, "1.data")["A"].append({"N": "deep", "AT": at})


def _dims(value: Any) -> Callable[[dict], None]:
    def edit(doc: dict) -> None:
        _op(doc, "1.data")["O"][0]["TT"]["D"][1] = value
    return edit


def _first_attr(name: str, key: str, value: Any) -> Callable[[dict], None]:
    def edit(doc: dict) -> None:
        _op(doc, name)["A"][0]["AT"][key] = value
    return edit


def _del(get: Callable[[dict], dict], key: str) -> Callable[[dict], None]:
    def edit(doc: dict) -> None:
        del get(doc)[key]
    return edit


# name -> (edit of the parsed document, text the error must contain)
CASES: dict[str, tuple[Callable[[dict], None], str]] = {
    "fetch of a value that exists nowhere": (_fetch_missing, "uses value %987654, which no block argument"),
    "combine consuming its own result": (_combine_own_result, "operand 1 uses value %4242"),
    "value defined twice": (_defined_twice, "value %1 is defined twice"),
    "region using its op's own result": (_region_uses_own_result, "uses value %5000"),
    "op without I": (_del(lambda d: _op(d, "1.fetch"), "I"), "op lacks its 'I' key"),
    "op without O": (_del(lambda d: _op(d, "1.fetch"), "O"), "op lacks its 'O' key"),
    "op without A": (_del(lambda d: _op(d, "1.fetch"), "A"), "op lacks its 'A' key"),
    "attribute without D": (_del(lambda d: _op(d, "1.data")["A"][0]["AT"], "D"), "attribute name (a_str) lacks its 'D'"),
    "tensor type without D": (_del(lambda d: _op(d, "1.data")["O"][0]["TT"], "D"), "(t_dtensor) lacks its 'D'"),
    "block without ops": (_del(lambda d: d["program"]["regions"][0]["blocks"][0], "ops"), "block lacks its 'ops'"),
    "block without args": (_del(lambda d: d["program"]["regions"][0]["blocks"][0], "args"), "block lacks its 'args'"),
    "op # is a number": (lambda d: _op(d, "1.fetch").__setitem__("#", 7), "op name '#' must be a JSON string"),
    "type # is a number": (lambda d: _op(d, "1.data")["O"][0]["TT"].__setitem__("#", 3), "result 0 'TT' '#'"),
    "attribute # is null": (_first_attr("1.data", "#", None), "attribute name '#' must be a JSON string"),
    "TT is a string": (lambda d: _op(d, "1.data")["O"][0].__setitem__("TT", "0.t_dtensor"), "result 0 'TT' must be"),
    "DA is an object": (lambda d: _op(d, "p").__setitem__("DA", {}), "parameter op 'DA' must be a JSON array"),
    "bool attribute D is a string": (lambda d: _op(d, "1.data")["A"].append(
        {"N": "flag", "AT": {"#": "0.a_bool", "D": "yes"}}), "attribute flag (a_bool): 'D' is a string"),
    "i32 attribute beyond int32": (lambda d: _op(d, "1.fetch")["A"].__setitem__(1, {"N": "col", "AT": {
        "#": "0.a_i32", "D": 1 << 40}}), "attribute col (a_i32)"),
    "intarray of floats": (_first_attr("1.data", "D", None), "attribute name (a_str): 'D' is null"),
    "shape with a float": (_dims([-1, 3, 1.5, 4]), "dim must be an integer"),
    "shape with a bool": (_dims([-1, True]), "dim must be an integer"),
    "shape not an array": (_dims("[-1, 3]"), "dims must be a JSON array"),
    "shape rank 40": (_dims([1] * 40), "rank 40"),
    "shape dim 2**50": (_dims([-1, 1 << 50]), "dimension 1125899906842624"),
    "shape dim -2**50": (_dims([-(1 << 50), 3]), "dimension -1125899906842624"),
    "value id is a string": (lambda d: _op(d, "1.fetch")["I"][0].__setitem__("%", "6"), "operand 0 '%' must be an integer"),
    "regions nested 80 deep": (_nested_regions, "nested deeper than 64"),
    "attribute arrays nested 100 deep": (_deep_attr, "nested deeper than 64"),
    "two program regions": (lambda d: d["program"]["regions"].append(d["program"]["regions"][0]), "exactly 1"),
    "parameter op with a short A": (lambda d: _op(d, "p").__setitem__("A", [0, 1]), "has 2 entries"),
    "parameter name not a string": (lambda d: _op(d, "p")["A"].__setitem__(3, 5), "parameter name must be"),
    "unknown element type inside a vector type": (_vector_of_unknown, "unsupported element type '0.t_zz'"),
    "fetch col is a string": (lambda d: _op(d, "1.fetch")["A"].__setitem__(1, {"N": "col", "AT": {
        "#": "0.a_str", "D": "0"}}), "attribute col is '0', not an integer"),
    "element type without its dialect": (lambda d: _op(d, "1.data")["O"][0]["TT"]["D"][0].__setitem__("#", "t_f32"),
                                         "'t_f32', not a dialect id and a name"),
    "attribute of an unknown dialect": (_first_attr("1.data", "#", "9.a_str"), "'9.a_str', not a dialect id"),
    "data op without a name": (lambda d: _op(d, "1.data")["A"].pop(0), "pd_op.data op with 1 results and name None"),
    "slice beyond its vector": (_slice_beyond, "builtin.slice index 5 of a vector of 2 elements"),
    "region without its name": (lambda d: _ops(d).__setitem__(1, _region_op(d, {"blocks": []})), "region lacks its '#'"),
    "bad special float": (lambda d: _op(d, "1.data")["A"].append(
        {"N": "eps", "AT": {"#": "0.a_f32", "VD": "HUGE"}}), "'VD' is 'HUGE'"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_pir_refused(tmp_path: Path, base: dict, case: str) -> None:
    edit, expect = CASES[case]
    doc = copy.deepcopy(base)
    edit(doc)
    (tmp_path / "inference.json").write_text(json.dumps(doc))
    (tmp_path / "inference.pdiparams").write_bytes((zoo.get("convnet", "pir") / "inference.pdiparams").read_bytes())
    with pytest.raises(ModelFormatError) as info:
        load_model(tmp_path)
    msg = str(info.value)
    assert expect in msg and "inference.json" in msg and "\n" not in msg, msg


@pytest.mark.parametrize("text,expect", [
    ("9" * 30, "integer 999999999999999999999999999999 is beyond int64"),
    (str(1 << 63), "beyond int64"),
    ("NaN", "NaN is not a JSON number"),
    ("-Infinity", "-Infinity is not a JSON number"),
    ("1e400", "1e400 is out of the range of a double"),
])
def test_pir_numbers_paddle_cannot_hold(tmp_path: Path, base: dict, text: str, expect: str) -> None:
    doc = copy.deepcopy(base)
    _op(doc, "1.data")["O"][0]["TT"]["D"][1][0] = "@@"
    raw = json.dumps(doc).replace('"@@"', text)
    (tmp_path / "m.json").write_text(raw)
    with pytest.raises(ModelFormatError, match="m.json") as info:
        load_model(tmp_path / "m.json")
    assert expect in str(info.value)


def test_pir_paddles_own_negative_dims_still_read(base: dict) -> None:
    """Paddle's shape inference writes products of unknown dims (instance_norm: [-4] = -1 x 4); they are
    unknown dims, read as -1 as before, not refused."""
    assert any(-4 in o["TT"]["D"][1] for op in _ops(base) if op["#"] == "1.instance_norm" for o in op["O"])
    g = load_model(zoo.get("convnet", "pir"))
    assert all(d >= -1 for b in g.blocks for v in b.values.values() for d in (v.shape or ()))


def test_pir_op_limit(tmp_path: Path, base: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    import repogen.paddle.pir_validate as pv

    monkeypatch.setattr(pv, "MAX_OPS", 20)
    (tmp_path / "m.json").write_text(json.dumps(base))
    with pytest.raises(ModelFormatError, match=r"block 0 has 100 ops \(more than 20\)"):
        load_model(tmp_path / "m.json")
    # ops counted over nested blocks too
    monkeypatch.setattr(pv, "MAX_OPS", 8)
    doc = json.loads((zoo.get("ifnet", "pir") / "inference.json").read_text())
    assert len(_ops(doc)) <= 8
    (tmp_path / "m.json").write_text(json.dumps(doc))
    with pytest.raises(ModelFormatError, match="more than 8 ops"):
        load_model(tmp_path / "m.json")


def test_huge_op_count_refused_fast(tmp_path: Path) -> None:
    """A ProgramDesc with 200,000 ops (a 5 MB file) is refused from its op count, before anything is decoded."""
    import time

    from paddle.base.proto import framework_pb2

    d = tmp_path / "m"
    d.mkdir()
    src = zoo.get("elementwise", "paddle2") / "inference.pdmodel"
    prog = framework_pb2.ProgramDesc.FromString(src.read_bytes())
    relu = framework_pb2.OpDesc(type="relu")
    relu.inputs.add(parameter="X", arguments=["x"])
    relu.outputs.add(parameter="Out", arguments=["x"])
    op = relu.SerializeToString()
    field = b"\x22" + bytes([len(op)]) + op
    block = prog.blocks[0].SerializeToString() + field * 200_000
    rest = framework_pb2.ProgramDesc()
    rest.CopyFrom(prog)
    del rest.blocks[:]
    (d / "inference.pdmodel").write_bytes(b"\x0a" + varint(len(block)) + block + rest.SerializeToString())
    t0 = time.perf_counter()
    with pytest.raises(ModelFormatError, match="more than 100000 ops"):
        load_model(d)
    assert time.perf_counter() - t0 < 5


def test_nesting_within_the_limit_is_read(tmp_path: Path, base: dict) -> None:
    """The validator and the reader agree on the nesting limit: 60 levels of attribute arrays are read."""
    doc = copy.deepcopy(base)
    at: dict = {"#": "0.a_i32", "D": 1}
    for _ in range(60):
        at = {"#": "0.a_array", "D": [at]}
    _op(doc, "1.data")["A"].append({"N": "deep", "AT": at})
    (tmp_path / "m.json").write_text(json.dumps(doc))
    (tmp_path / "m.pdiparams").write_bytes((zoo.get("convnet", "pir") / "inference.pdiparams").read_bytes())
    assert load_model(tmp_path / "m.json").inputs == ["x"]
