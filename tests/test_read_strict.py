"""The ProgramDesc reader is as strict as framework.proto: wire types of used and skipped fields, required
fields, block parents and sub-block references, and the size limits of repogen/paddle/limits.py."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.support import zoo
from repogen.errors import ModelFormatError
from repogen.paddle import load_model
from repogen.paddle import framework_schema, gen_framework_schema
from tests.support.protobuf_bytes import key, varint


@pytest.fixture(scope="module")
def pb() -> Any:
    from paddle.base.proto import framework_pb2

    return framework_pb2


def _len(num: int, payload: bytes) -> bytes:
    return key(num, 2) + varint(len(payload)) + payload


def _inject(msg: Any, path: list[tuple[str, int]], extra: bytes) -> bytes:
    """msg serialized with raw bytes appended to the sub-message at path, other elements kept in order."""
    if not path:
        return msg.SerializePartialToString() + extra
    (fname, idx), rest = path[0], path[1:]
    fd = msg.DESCRIPTOR.fields_by_name[fname]
    items = list(getattr(msg, fname)) if fd.is_repeated else [getattr(msg, fname)]
    copy = type(msg)()
    copy.CopyFrom(msg)
    copy.ClearField(fname)
    out = copy.SerializePartialToString()
    for i, item in enumerate(items):
        out += _len(fd.number, _inject(item, rest, extra) if i == idx else item.SerializePartialToString())
    return out


def _model(tmp_path: Path, name: str = "whilenet") -> tuple[Path, Any]:
    from paddle.base.proto import framework_pb2

    d = tmp_path / "m"
    shutil.copytree(zoo.get(name, "paddle2"), d)
    return d, framework_pb2.ProgramDesc.FromString((d / "inference.pdmodel").read_bytes())


def _first(items: Any, pred: Any) -> int:
    return next(i for i, x in enumerate(items) if pred(x))


def test_schema_is_generated_from_paddles_descriptor(pb: Any) -> None:
    text = Path(framework_schema.__file__).read_text()
    assert text == gen_framework_schema.render(pb.DESCRIPTOR)
    assert framework_schema.FIELDS["OpDesc.Attr"][6] == (0b101, "varint")  # repeated int32: plain or packed
    assert framework_schema.REQUIRED["BlockDesc"] == {1, 2}


def _attr(name: str, atype: int, *fields: bytes) -> bytes:
    return _len(1, name.encode()) + key(2, 0) + varint(atype) + b"".join(fields)


# (where, extra bytes, what the error names); each breaks the schema in a field the reader does not use
_BAD = {
    "program version as varint": ([], key(4, 0) + b"\x01", "ProgramDesc field 4"),
    "op_version_map as fixed32": ([], key(5, 5) + b"\0\0\0\0", "ProgramDesc field 5"),
    "op_version_map pair lacks op_version": ([], _len(5, _len(1, _len(1, b"relu"))), "OpVersionPair lacks"),
    "block forward_block_idx as LEN": ([("blocks", 0)], _len(5, b"\0"), "BlockDesc field 5"),
    "op is_target as LEN": ([("blocks", 0), ("ops", 2)], _len(5, b"\1"), "OpDesc field 5"),
    "op is_target as fixed64": ([("blocks", 0), ("ops", 2)], key(5, 1) + b"\0" * 8, "OpDesc field 5"),
    "var need_check_feed as fixed32": ([("blocks", 0), ("vars", 1)], key(4, 5) + b"\0" * 4, "VarDesc field 4"),
    "var stop_gradient as LEN": ([("blocks", 0), ("vars", 1)], _len(6, b""), "VarDesc field 6"),
    "var attrs as varint": ([("blocks", 0), ("vars", 1)], key(7, 0) + b"\x01", "VarDesc field 7"),
    "var attr lacks name and type": ([("blocks", 0), ("vars", 1)], _len(7, b""), "VarDesc.Attr lacks"),
    "var attr ints as fixed64": ([("blocks", 0), ("vars", 1)], _len(7, _attr("a", 1) + key(5, 1) + b"\0" * 8),
                                 "VarDesc.Attr field 5"),
    "var type reader with a bad tensor": ([("blocks", 0), ("vars", 1), ("type", 0)],
                                          _len(5, _len(1, _len(1, key(1, 5) + b"\0" * 4))),
                                          "TensorDesc field 1"),
    "var type tuple as fixed32": ([("blocks", 0), ("vars", 1), ("type", 0)], key(7, 5) + b"\0" * 4,
                                  "VarType field 7"),
    "lod level as LEN": ([("blocks", 0), ("vars", 1), ("type", 0), ("dense_tensor", 0)], _len(2, b"\1"),
                         "DenseTensorDesc field 2"),
    "skipped op_callstack with a varint string": ([("blocks", 0), ("ops", 2)],
                                                  _len(4, _attr("op_callstack", 5, _len(8, b"f.py"),
                                                                key(8, 0) + b"\x05")),
                                                  "OpDesc.Attr field 8"),
    "skipped op_role as LEN": ([("blocks", 0), ("ops", 2)], _len(4, _attr("op_role", 0, _len(3, b"\0"))),
                               "OpDesc.Attr field 3"),
    "skipped op_device lacks its type": ([("blocks", 0), ("ops", 2)], _len(4, _len(1, b"op_device")),
                                         "OpDesc.Attr lacks"),
    "attr with a group wire type": ([("blocks", 0), ("ops", 2)], _len(4, _attr("zz", 0, key(9, 3))),
                                    "wire type"),
    "attr floats as varint": ([("blocks", 0), ("ops", 2)], _len(4, _attr("zz", 4, key(7, 0) + b"\x01")),
                              "OpDesc.Attr field 7"),
    "scalar type as fixed32": ([("blocks", 0), ("ops", 2)],
                               _len(4, _attr("zz", 16, _len(20, key(1, 5) + b"\0" * 4))), "Scalar field 1"),
    "complex lacks its imaginary part": ([("blocks", 0), ("ops", 2)],
                                         _len(4, _attr("zz", 16, _len(20, key(1, 0) + b"\x04"
                                                                      + _len(5, key(1, 1) + b"\0" * 8)))),
                                         "Complex lacks"),
    "var attr type not an AttrType": ([("blocks", 0), ("vars", 1)], _len(7, _attr("a", 99)),
                                      "VarDesc.Attr field 2: 99 is not a value of its enum"),
    "skipped op_role with an unknown attr type": ([("blocks", 0), ("ops", 2)], _len(4, _attr("op_role", 40)),
                                                  "OpDesc.Attr field 2: 40 is not a value"),
    "tuple element type not a VarType.Type": ([("blocks", 0), ("vars", 1), ("type", 0)],
                                              _len(7, _len(1, varint(16))), "VarType.Tuple field 1: 16"),
    "slot argument as varint": ([("blocks", 0), ("ops", 2), ("inputs", 0)], key(2, 0) + b"\x01",
                                "OpDesc.Var field 2"),
}


@pytest.mark.parametrize("case", sorted(_BAD))
def test_wrong_wire_types_refused(tmp_path: Path, pb: Any, case: str) -> None:
    d, prog = _model(tmp_path)
    path, extra, expect = _BAD[case]
    (d / "inference.pdmodel").write_bytes(_inject(prog, path, extra))
    with pytest.raises(ModelFormatError) as info:
        load_model(d)
    assert expect in str(info.value) and "inference.pdmodel" in str(info.value), str(info.value)


@pytest.mark.parametrize("extra", [
    key(5, 0) + b"\x01",  # is_target, as framework.proto declares it
    key(99, 0) + b"\x07" + _len(100, b"future") + key(101, 5) + b"\0" * 4,  # unknown fields: protobuf keeps them
    _len(4, _attr("op_callstack", 5, _len(8, b"a.py:1"), _len(8, b"b.py:2"))),
    _len(4, _attr("zz", 16, _len(20, key(1, 0) + b"\x04" + _len(5, key(1, 1) + b"\0" * 8 + key(2, 1)
                                                                  + b"\0" * 8)))),
])
def test_valid_extra_fields_accepted(tmp_path: Path, extra: bytes) -> None:
    d, prog = _model(tmp_path)
    want = load_model(d)
    (d / "inference.pdmodel").write_bytes(_inject(prog, [("blocks", 0), ("ops", 2)], extra))
    got = load_model(d)
    assert [op.type for op in got.ops] == [op.type for op in want.ops]


def test_unknown_var_type_refused(tmp_path: Path) -> None:
    d, prog = _model(tmp_path)
    prog.blocks[0].vars[1].type.type = 7
    data = prog.SerializeToString()
    # proto2 enums are closed: Paddle's parser would find VarType.type missing; 34 is not a VarType.Type
    data = data.replace(key(1, 0) + b"\x07" + key(3, 2), key(1, 0) + b"\x22" + key(3, 2), 1)
    (d / "inference.pdmodel").write_bytes(data)
    with pytest.raises(ModelFormatError, match="has type 34, not a VarType.Type value"):
        load_model(d)


def test_block_parent_cycles_refused(tmp_path: Path) -> None:
    d, prog = _model(tmp_path)
    assert len(prog.blocks) == 2 and prog.blocks[1].parent_idx == 0
    for parent in (1, 2, -1, -7):  # itself, a later block, none, garbage
        prog.blocks[1].parent_idx = parent
        (d / "inference.pdmodel").write_bytes(prog.SerializeToString())
        with pytest.raises(ModelFormatError, match="parent index"):
            load_model(d)
    prog.blocks[1].parent_idx = 0
    prog.blocks[0].parent_idx = 1  # the main block has no parent
    (d / "inference.pdmodel").write_bytes(prog.SerializeToString())
    with pytest.raises(ModelFormatError, match="block 0 has parent index 1"):
        load_model(d)
    prog.blocks[0].parent_idx = 0  # 0 for the main block is accepted, as Paddle does
    (d / "inference.pdmodel").write_bytes(prog.SerializeToString())
    assert len(load_model(d).blocks) == 2


def test_sub_block_attr_cycles_refused(tmp_path: Path) -> None:
    d, prog = _model(tmp_path)
    block0 = prog.blocks[0]
    op = block0.ops[_first(block0.ops, lambda o: o.type == "while")]
    attr = op.attrs[_first(op.attrs, lambda a: a.name == "sub_block")]
    for target in (0, 2):  # the op's own block (a cycle), a block that does not exist
        attr.block_idx = target
        (d / "inference.pdmodel").write_bytes(prog.SerializeToString())
        with pytest.raises(ModelFormatError, match="sub_block names block"):
            load_model(d)
    # a block 1 op owning block 1 (its own block)
    attr.block_idx = 1
    inner = prog.blocks[1].ops.add()
    inner.CopyFrom(op)
    (d / "inference.pdmodel").write_bytes(prog.SerializeToString())
    with pytest.raises(ModelFormatError, match="in block 1: attribute sub_block names block 1"):
        load_model(d)


def test_limits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import repogen.paddle.programdesc as pd

    d, prog = _model(tmp_path)
    (d / "inference.pdmodel").write_bytes(prog.SerializeToString())
    for name, match in (("MAX_OPS", "more than 5 ops"), ("MAX_BLOCKS", "more than 1 blocks"),
                        ("MAX_VARS", "more than 5 variables")):
        with monkeypatch.context() as m:
            m.setattr(pd, name, 1 if name == "MAX_BLOCKS" else 5)
            with pytest.raises(ModelFormatError, match=match):
                load_model(d)
    var = prog.blocks[0].vars[_first(prog.blocks[0].vars, lambda v: v.name == "x")]
    for dims, match in (([2] * 33, "rank 33"), ([1 << 41], "more than"), ([-(1 << 41)], "dimension")):
        var.type.dense_tensor.tensor.dims[:] = dims
        (d / "inference.pdmodel").write_bytes(prog.SerializeToString())
        with pytest.raises(ModelFormatError, match=match):
            load_model(d)
    var.type.dense_tensor.tensor.dims[:] = [-1, 4]
    var.name = "x" * 70000
    (d / "inference.pdmodel").write_bytes(prog.SerializeToString())
    with pytest.raises(ModelFormatError, match="variable name of 70000 bytes"):
        load_model(d)


def test_feed_fetch_col_must_be_an_integer(tmp_path: Path) -> None:
    """Found by the fuzzer: a fetch op whose col attribute is a list crashed with a TypeError."""
    d, prog = _model(tmp_path)
    fetch = prog.blocks[0].ops[_first(prog.blocks[0].ops, lambda o: o.type == "fetch")]
    col = fetch.attrs[_first(fetch.attrs, lambda a: a.name == "col")]
    col.type = 3  # INTS
    col.ints.extend([0, 1])
    (d / "inference.pdmodel").write_bytes(prog.SerializeToString())
    with pytest.raises(ModelFormatError, match="attribute col is list"):
        load_model(d)


def test_op_attribute_of_unexpected_type(tmp_path: Path) -> None:
    """split's num as a string: renaming the op reads it as a number; one error naming the op."""
    d, prog = _model(tmp_path)
    op = prog.blocks[0].ops.add(type="split")
    op.inputs.add(parameter="X", arguments=["x"])
    op.outputs.add(parameter="Out", arguments=["x"])
    op.attrs.add(name="num", type=2, s="2")  # STRING
    (d / "inference.pdmodel").write_bytes(prog.SerializeToString())
    with pytest.raises(ModelFormatError, match=rf"op #{len(prog.blocks[0].ops) - 1} split in block 0: attributes"):
        load_model(d)
