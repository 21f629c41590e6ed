"""Decode a serialized ``ProgramDesc`` (``__model__`` / ``.pdmodel``) without Paddle or generated protos.

Field numbers follow paddle/fluid/framework/framework.proto. The result is a faithful, un-canonicalized
view of the file (legacy op names, slots and attrs); repogen.paddle.legacy turns it into the IR.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

from repogen.paddle.framework_schema import ENUMS
from repogen.paddle.limits import MAX_BLOCKS, MAX_DIM, MAX_NAME, MAX_OPS, MAX_VARS, check_shape
from repogen.paddle.wire import LEN, Wire, decode_varint, f32, f64, signed

# VarType.Type values that are tensor element types -> ir.DTYPES names.
DTYPE_OF_VARTYPE = {
    0: "bool", 1: "int16", 2: "int32", 3: "int64", 4: "float16", 5: "float32", 6: "float64",
    20: "uint8", 21: "int8", 22: "bfloat16", 23: "complex64", 24: "complex128",
}
VARTYPE_OF_DTYPE = {v: k for k, v in DTYPE_OF_VARTYPE.items()}
DENSE_TENSOR, FEED_MINIBATCH, FETCH_LIST, DENSE_TENSOR_ARRAY = 7, 9, 10, 13

# AttrType enum
INT, FLOAT, STRING, INTS, FLOATS, STRINGS, BOOLEAN, BOOLEANS, BLOCK, LONG, BLOCKS, LONGS, FLOAT64S, VAR, \
    VARS, FLOAT64, SCALAR, SCALARS = range(18)


# framework bookkeeping no reader uses; skipping them at the name saves a quarter of the decode time
_SKIPPED_ATTRS = frozenset({"op_callstack", "op_namescope", "op_role_var", "op_role", "op_device"})


@dataclass
class VarDesc:
    name: str
    type: int  # VarType.Type of the variable itself (DENSE_TENSOR, FEED_MINIBATCH, ...)
    dtype: str | None = None
    dims: list[int] | None = None
    persistable: bool = False


@dataclass
class OpDesc:
    type: str
    inputs: dict[str, list[str]] = field(default_factory=dict)
    outputs: dict[str, list[str]] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)
    block_attrs: dict[str, list[int]] = field(default_factory=dict)  # BLOCK/BLOCKS attrs: sub-block indices


@dataclass
class BlockDesc:
    idx: int
    parent_idx: int
    vars: dict[str, VarDesc] = field(default_factory=dict)
    ops: list[OpDesc] = field(default_factory=list)


class _Wire(Wire):
    """A Wire that bounds the names it decodes (limits.py)."""

    def name(self, start: int, end: int, what: str) -> str:
        if end - start > MAX_NAME:
            raise self.fail(f"{what} of {end - start} bytes (more than {MAX_NAME})", start)
        return self.string(start, end)


def _count(w: Wire) -> None:
    """Refuse a program with more blocks, ops or variables than limits.py allows, before decoding any: the
    count walks only the keys and lengths of the top two levels."""
    blocks = ops = variables = 0
    for num, _, val, end in w.fields(0, len(w.data), "ProgramDesc"):
        if num != 1:
            continue
        blocks += 1
        if blocks > MAX_BLOCKS:
            raise w.fail(f"more than {MAX_BLOCKS} blocks", val)
        for n2, _, v2, _ in w.fields(val, end, "BlockDesc"):
            if n2 == 4:
                ops += 1
                if ops > MAX_OPS:
                    raise w.fail(f"more than {MAX_OPS} ops", v2)
            elif n2 == 3:
                variables += 1
                if variables > MAX_VARS:
                    raise w.fail(f"more than {MAX_VARS} variables", v2)


def decode_program(data: bytes | memoryview, path: object) -> list[BlockDesc]:
    w = _Wire(data, path)
    _count(w)
    blocks = []
    starts = []
    for num, wt, val, end in w.fields(0, len(data), "ProgramDesc"):
        if num == 1:
            starts.append(val)
            blocks.append(_block(w, val, end))
        elif wt == LEN:
            w.check_payload("ProgramDesc", num, val, end)
    if not blocks:
        raise w.fail("ProgramDesc has no blocks (not a Paddle model?)", 0)
    for i, b in enumerate(blocks):
        if b.idx != i:
            raise w.fail(f"block #{i} says its index is {b.idx}", starts[i])
        # a parent precedes its child (Paddle creates sub-blocks after their parent), so the parent chain
        # cannot loop; Paddle would hang walking such a chain. The main block's parent is -1 (or 0).
        if (i == 0 and b.parent_idx not in (-1, 0)) or (i > 0 and not 0 <= b.parent_idx < i):
            raise w.fail(f"block {i} has parent index {b.parent_idx}: a parent must be an earlier block "
                         f"(of {len(blocks)})", starts[i])
    for b in blocks:
        for op in b.ops:
            for name, idxs in op.block_attrs.items():
                for i in idxs:
                    # an op owns later blocks only: an earlier one (or its own) would be a cycle
                    if not b.idx < i < len(blocks):
                        raise w.fail(f"op {op.type} in block {b.idx}: attribute {name} names block {i} "
                                     f"(sub-blocks come after their owner's block, {len(blocks)} blocks)",
                                     starts[b.idx])
    return blocks


def _block(w: _Wire, start: int, end: int) -> BlockDesc:
    b = BlockDesc(idx=-1, parent_idx=-1)
    seen = set()
    for num, wt, val, vend in w.fields(start, end, "BlockDesc"):
        if num in (1, 2):
            if num == 1:
                b.idx = _int32(w, val, "BlockDesc.idx", start)
            else:
                b.parent_idx = _int32(w, val, "BlockDesc.parent_idx", start)
            seen.add(num)
        elif num == 3:
            v = _var(w, val, vend)
            b.vars[v.name] = v
        elif num == 4:
            b.ops.append(_op(w, val, vend))
        elif wt == LEN:
            w.check_payload("BlockDesc", num, val, vend)
    if seen != {1, 2}:
        raise w.fail("BlockDesc lacks idx/parent_idx", start)
    return b


def _int32(w: Wire, val: int, what: str, pos: int) -> int:
    v = signed(val)
    if not -(1 << 31) <= v < 1 << 31:
        raise w.fail(f"{what} {v} does not fit the int32 framework.proto gives it", pos)
    return v


def _var(w: _Wire, start: int, end: int) -> VarDesc:
    v = _var_fast(w.data, start, end) or _var_general(w, start, end)
    if v.type not in _VAR_TYPES:
        raise w.fail(f"variable {v.name[:200]!r} has type {signed(v.type)}, not a VarType.Type value", start)
    if len(v.name.encode()) > MAX_NAME:
        raise w.fail(f"variable name of {len(v.name.encode())} bytes (more than {MAX_NAME})", start)
    if v.dims is not None:
        bad = check_shape(v.dims, f"variable {v.name[:200]!r}", min_dim=-MAX_DIM)
        if bad:
            raise w.fail(bad, start)
    return v


def _var_fast(data: bytes, start: int, end: int) -> VarDesc | None:
    """VarDesc in the layout Paddle writes (one-byte keys and lengths, a dense tensor type); None otherwise,
    and the general decoder then parses it (or reports what is wrong)."""
    try:
        pos = start
        if data[pos] != 0x0A or data[pos + 1] >= 0x80:
            return None
        n = data[pos + 1]
        name = str(data[pos + 2:pos + 2 + n], "utf-8")
        pos += 2 + n
        if data[pos] != 0x12 or data[pos + 1] >= 0x80 or data[pos + 2] != 0x08 or data[pos + 3] >= 0x80:
            return None
        type_end = pos + 2 + data[pos + 1]
        vtype = data[pos + 3]
        pos += 4
        dtype = dims = None
        if pos < type_end:
            if data[pos] != 0x1A or data[pos + 1] >= 0x80 or data[pos + 2] != 0x0A or data[pos + 3] >= 0x80:
                return None
            dense_end = pos + 2 + data[pos + 1]
            desc_end = pos + 4 + data[pos + 3]
            pos += 4
            if data[pos] != 0x08 or data[pos + 1] not in DTYPE_OF_VARTYPE or desc_end > dense_end:
                return None
            dtype = DTYPE_OF_VARTYPE[data[pos + 1]]
            pos += 2
            dims = []
            while pos < desc_end:
                if data[pos] != 0x10:
                    return None
                v, pos = decode_varint(data, pos + 1, desc_end)
                dims.append(v - (1 << 64) if v >= 1 << 63 else v)
            if pos != desc_end or dense_end > type_end:
                return None
            while pos < dense_end:  # legacy_lod_level (not needed, but it must be a varint)
                if data[pos] != 0x10:
                    return None
                _, pos = decode_varint(data, pos + 1, dense_end)
            if pos != dense_end:
                return None
        if pos != type_end or type_end > end:
            return None
        persistable = False
        while pos < end:  # bool flags: persistable = 3, need_check_feed = 4, is_parameter = 5, stop_gradient = 6
            key = data[pos]
            if key not in _VAR_FLAG_KEYS or data[pos + 1] >= 0x80:
                return None
            if key == 0x18:
                persistable = bool(data[pos + 1])
            pos += 2
        if pos != end:
            return None
        return VarDesc(name, vtype, dtype, dims, persistable)
    except (IndexError, UnicodeDecodeError, ValueError):
        return None


_VAR_TYPES = ENUMS["VarType"][1]
_VAR_FLAG_KEYS = frozenset({0x18, 0x20, 0x28, 0x30})  # fields 3-6 of VarDesc as varints


def _var_general(w: Wire, start: int, end: int) -> VarDesc:
    name = None
    vtype = None
    dtype = dims = None
    persistable = False
    for num, wt, val, vend in w.fields(start, end, "VarDesc"):
        if num == 1:
            name = w.name(val, vend, "variable name")
        elif num == 2:
            vtype, dtype, dims = _vartype(w, val, vend)
        elif num == 3:
            persistable = bool(val)
        elif wt == LEN:
            w.check_payload("VarDesc", num, val, vend)
    if name is None or vtype is None:
        raise w.fail("VarDesc lacks name or type", start)
    return VarDesc(name, vtype, dtype, dims, persistable)


def _vartype(w: Wire, start: int, end: int) -> tuple[int, str | None, list[int] | None]:
    vtype = None
    dtype = dims = None
    for num, wt, val, vend in w.fields(start, end, "VarType"):
        if num == 1:
            vtype = val
        elif num in (2, 8, 9, 10, 11, 12):  # TensorDesc directly
            dtype, dims = tensor_desc(w, val, vend)
        elif num in (3, 4):  # DenseTensorDesc / DenseTensorArrayDesc { TensorDesc tensor = 1; lod = 2 }
            msg = "VarType.DenseTensorDesc" if num == 3 else "VarType.DenseTensorArrayDesc"
            found = False
            for n2, _, v2, e2 in w.fields(val, vend, msg):
                if n2 == 1:
                    dtype, dims = tensor_desc(w, v2, e2)
                    found = True
            if not found:
                raise w.fail(f"{msg} lacks its tensor", val)
        elif wt == LEN:
            w.check_payload("VarType", num, val, vend)
    if vtype is None:
        raise w.fail("VarType lacks its type", start)
    return vtype, dtype, dims


def tensor_desc(w: Wire, start: int, end: int) -> tuple[str, list[int]]:
    """TensorDesc { required Type data_type = 1; repeated int64 dims = 2; }"""
    code = None
    dims: list[int] = []
    for num, wt, val, vend in w.fields(start, end, "VarType.TensorDesc"):
        if num == 1:
            code = val
        elif num == 2:
            w.append_ints(dims, wt, val, vend)
    if code is None:
        raise w.fail("TensorDesc lacks data_type", start)
    if code not in DTYPE_OF_VARTYPE:
        raise w.fail(f"unsupported tensor data type code {code}", start)
    return DTYPE_OF_VARTYPE[code], dims


def _slot(w: Wire, start: int, end: int) -> tuple[str, list[str]]:
    """OpDesc.Var { required string parameter = 1; repeated string arguments = 2; }"""
    # fast path for the usual encoding (one-byte keys and lengths); anything else takes the general path
    data = w.data
    pos = start
    name = None
    args = []
    try:
        while pos < end:
            key = data[pos]
            length = data[pos + 1]
            if length >= 0x80 or key not in (0x0A, 0x12) or pos + 2 + length > end:
                break
            text = str(data[pos + 2:pos + 2 + length], "utf-8")
            if key == 0x0A:
                name = text
            else:
                args.append(text)
            pos += 2 + length
        else:
            if name is not None:
                return name, args
    except (IndexError, UnicodeDecodeError):
        pass
    return _slot_general(w, start, end)


def _slot_general(w: Wire, start: int, end: int) -> tuple[str, list[str]]:
    name = None
    args = []
    for num, wt, val, vend in w.fields(start, end, "OpDesc.Var"):
        if num == 1:
            name = w.name(val, vend, "slot name")
        elif num == 2:
            args.append(w.name(val, vend, "argument name"))
    if name is None:
        raise w.fail("OpDesc.Var lacks its parameter name", start)
    return name, args


def _op(w: _Wire, start: int, end: int) -> OpDesc:
    op = OpDesc(type="")
    for num, wt, val, vend in w.fields(start, end, "OpDesc"):
        if num == 3:
            op.type = w.name(val, vend, "op type")
        elif num in (1, 2):
            slot, args = _slot(w, val, vend)
            (op.inputs if num == 1 else op.outputs)[slot] = args
        elif num == 4:
            _attr(w, val, vend, op)
        elif wt == LEN:
            w.check_payload("OpDesc", num, val, vend)
    if not op.type:
        raise w.fail("OpDesc lacks its type", start)
    return op


def _scalar(w: Wire, start: int, end: int) -> Any:
    """Scalar { Type type = 1 (BOOLEAN 1, LONG 2, FLOAT64 3, COMPLEX128 4); b = 2; i = 3; r = 4; c = 5 }"""
    kind = None
    vals: dict[int, Any] = {}
    for num, wt, val, vend in w.fields(start, end, "Scalar"):
        if num == 1:
            kind = val
        elif num == 2:
            vals[2] = bool(val)
        elif num == 3:
            vals[3] = signed(val)
        elif num == 4:
            vals[4] = f64(val)
        elif num == 5:
            w.check_message("Complex", val, vend)
            parts = {1: 0.0, 2: 0.0}
            for n2, _, v2, _ in w.fields(val, vend, "Complex"):
                if n2 in parts:
                    parts[n2] = f64(v2)
            vals[5] = complex(parts[1], parts[2])
        elif wt == LEN:
            w.check_payload("Scalar", num, val, vend)
    field_of_kind = {1: 2, 2: 3, 3: 4, 4: 5}
    if kind not in field_of_kind:
        raise w.fail(f"Scalar has unknown type {kind}", start)
    default = {2: False, 3: 0, 4: 0.0, 5: 0j}[field_of_kind[kind]]
    return vals.get(field_of_kind[kind], default)


_F32 = struct.Struct("<f")


def _attr(w: _Wire, start: int, end: int, op: OpDesc) -> None:
    if not _attr_fast(w, start, end, op):
        _attr_general(w, start, end, op)


def _attr_fast(w: Wire, start: int, end: int, op: OpDesc) -> bool:
    """Attr in the layout Paddle writes: name, type, then the one value field for INT, FLOAT, STRING,
    BOOLEAN, LONG or (unpacked) INTS. Returns False to leave anything else to the general decoder."""
    data = w.data
    try:
        if data[start] != 0x0A or data[start + 1] >= 0x80:
            return False
        pos = start + 2 + data[start + 1]
        name = str(data[start + 2:pos], "utf-8")
        if name in _SKIPPED_ATTRS:
            w.check_message("OpDesc.Attr", start, end)  # not kept, but it must still be a valid Attr
            return True
        if data[pos] != 0x10 or data[pos + 1] >= 0x80:
            return False
        atype = data[pos + 1]
        pos += 2
        if atype == INTS:
            ints = []
            while pos < end:
                if data[pos] != 0x30:
                    return False
                v, pos = decode_varint(data, pos + 1, end)
                ints.append(v - (1 << 64) if v >= 1 << 63 else v)
            if pos != end:
                return False
            op.attrs[name] = ints
            return True
        if pos == end:
            return False  # value left at its default: the general path knows the defaults
        key = data[pos]
        if atype == FLOAT and key == 0x25 and pos + 5 == end:
            op.attrs[name] = _F32.unpack_from(data, pos + 1)[0]
            return True
        if atype == STRING and key == 0x2A and data[pos + 1] < 0x80 and pos + 2 + data[pos + 1] == end:
            op.attrs[name] = str(data[pos + 2:end], "utf-8")
            return True
        if (atype, key) in ((INT, 0x18), (BOOLEAN, 0x50), (LONG, 0x68)):
            v, pos = decode_varint(data, pos + 1, end)
            if pos != end:
                return False
            op.attrs[name] = bool(v) if atype == BOOLEAN else (v - (1 << 64) if v >= 1 << 63 else v)
            return True
        return False
    except (IndexError, UnicodeDecodeError, ValueError):
        return False


def _attr_general(w: Wire, start: int, end: int, op: OpDesc) -> None:
    name = None
    atype = None
    single: dict[int, Any] = {}
    lists: dict[int, list] = {}
    for num, wt, val, vend in w.fields(start, end, "OpDesc.Attr"):
        if num == 1:
            name = w.name(val, vend, "attribute name")
            if name in _SKIPPED_ATTRS:  # call stacks are most of a program's bytes and never used
                w.check_message("OpDesc.Attr", start, end)  # not kept, but it must still be a valid Attr
                return
        elif num == 2:
            atype = val
        elif num in (3, 10, 12, 13):  # i, b, block_idx, l
            single[num] = bool(val) if num == 10 else signed(val)
        elif num == 4:
            single[4] = f32(val)
        elif num == 19:
            single[19] = f64(val)
        elif num in (5, 17):
            single[num] = w.string(val, vend)
        elif num in (6, 11, 14, 15):  # ints, bools, blocks_idx, longs
            out = lists.setdefault(num, [])
            w.append_ints(out, wt, val, vend)
        elif num == 7:
            w.append_floats(lists.setdefault(7, []), wt, val, vend, double=False)
        elif num == 16:
            w.append_floats(lists.setdefault(16, []), wt, val, vend, double=True)
        elif num in (8, 18):
            lists.setdefault(num, []).append(w.string(val, vend))
        elif num == 20:
            single[20] = _scalar(w, val, vend)
        elif num == 21:
            lists.setdefault(21, []).append(_scalar(w, val, vend))
        elif wt == LEN:
            w.check_payload("OpDesc.Attr", num, val, vend)
    if name is None or atype is None:
        raise w.fail(f"attribute of op {op.type or '?'} lacks its name or type", start)
    single_field = {INT: (3, 0), FLOAT: (4, 0.0), STRING: (5, ""), BOOLEAN: (10, False), BLOCK: (12, 0),
                    LONG: (13, 0), VAR: (17, ""), FLOAT64: (19, 0.0), SCALAR: (20, 0)}
    list_field = {INTS: 6, FLOATS: 7, STRINGS: 8, BOOLEANS: 11, BLOCKS: 14, LONGS: 15, FLOAT64S: 16,
                  VARS: 18, SCALARS: 21}
    if atype in single_field:
        num, default = single_field[atype]
        value = single.get(num, default)
    elif atype in list_field:
        value = lists.get(list_field[atype], [])
        if atype == BOOLEANS:
            value = [bool(v) for v in value]
    else:
        raise w.fail(f"attribute {name} of op {op.type or '?'} has unknown type {atype}", start)
    if atype == BLOCK:
        op.block_attrs[name] = [value]
    elif atype == BLOCKS:
        op.block_attrs[name] = list(value)
    op.attrs[name] = value
