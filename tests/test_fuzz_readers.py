"""Seeded fuzzing of the model readers through ``repogen inspect``: every mutated model must give rc 0 or
rc 2 (one RepogenError line), never a traceback, a hang or a large allocation.

Mutations of zoo models in all four formats: truncations, bit flips, length and varint overflows, huge and
negative dims, bad dtype codes, wire-type changes (mostly in fields the reader skips), block cycles,
parameter-header damage, PIR JSON with wrong types, deleted keys, deep nesting, dangling and cyclic value
ids, NaN/1e400/huge integers. The cases run in a child process (one per batch, restarted after a hang)
under a 1 GiB address-space limit (resource.setrlimit); each case must finish within the hang guard.

Default run: FAST_CASES cases. With REPOGEN_SLOW_TESTS=1: SLOW_CASES cases plus 200,000-op programs, a
60 s hang guard, and the counts written to $REPOGEN_FUZZ_REPORT when set (docs/robustness.md has a run).
"""

from __future__ import annotations

import copy
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from tests.support import zoo
from tests.support.protobuf_bytes import varint

SEED = 20261201
FAST_CASES = 100
SLOW_CASES = 400
SLOW = os.environ.get("REPOGEN_SLOW_TESTS") == "1"
MEMORY_LIMIT = 1 << 30  # address space of the child process, bytes
SOURCES = [("convnet", "pir"), ("convnet", "paddle2"), ("convnet", "fluid-combined"), ("convnet", "fluid-separate"),
           ("ifnet", "pir"), ("ifnet", "paddle2"), ("whilenet", "pir"), ("whilenet", "fluid-combined"),
           ("tensors", "pir"), ("tensors", "paddle2"), ("legacy_ops", "fluid-separate"), ("elementwise", "pir")]
ROOT = Path(__file__).resolve().parents[1]


# --- protobuf wire walking (positions of every field, typed by framework.proto) --------------------------


def _readvarint(data: bytes, pos: int) -> tuple[int, int]:
    v = shift = 0
    while True:
        b = data[pos]
        pos += 1
        v |= (b & 0x7F) << shift
        if b < 0x80:
            return v, pos
        shift += 7


def _fields(data: bytes, start: int, end: int, msg: str, path: tuple, out: list) -> None:
    """Append (path, message, number, wire, key_pos, value_pos, end) for every field, nested ones too."""
    from repogen.paddle.framework_schema import FIELDS

    pos = start
    while pos < end:
        key_pos = pos
        key, pos = _readvarint(data, pos)
        num, wire = key >> 3, key & 7
        if wire == 0:
            _, after = _readvarint(data, pos)
        elif wire == 1:
            after = pos + 8
        elif wire == 5:
            after = pos + 4
        else:
            length, pos = _readvarint(data, pos)
            after = pos + length
        out.append((path + (num,), msg, num, wire, key_pos, pos, after))
        kind = FIELDS.get(msg, {}).get(num, (0, None))[1]
        if wire == 2 and kind in FIELDS:
            _fields(data, pos, after, kind, path + (num,), out)
        pos = after


def _program_fields(data: bytes) -> list:
    out: list = []
    _fields(data, 0, len(data), "ProgramDesc", (), out)
    return out


def _replace(data: bytes, start: int, end: int, new: bytes) -> bytes:
    """Replace data[start:end], fixing the length prefixes of every enclosing message."""
    delta = len(new) - (end - start)
    result = data[:start] + new + data[end:]
    if delta == 0:
        return result
    # enclosing LEN fields: walk the original once and patch lengths from the innermost outwards
    enclosing = [f for f in _program_fields(data) if f[3] == 2 and f[5] <= start and end <= f[6]
                 and (f[5], f[6]) != (start, end)]
    for _, _, _, _, key_pos, value_pos, after in sorted(enclosing, key=lambda f: -f[4]):
        _, len_pos = _readvarint(data, key_pos)
        new_len = varint(after - value_pos + delta)
        old_len_bytes = value_pos - len_pos
        result = result[:len_pos] + new_len + result[len_pos + old_len_bytes:]
        delta += len(new_len) - old_len_bytes
    return result


# --- mutators: each takes (rng, model folder, source format) and returns a description ------------------

def _program_file(d: Path, fmt: str) -> Path:
    return d / {"pir": "inference.json", "paddle2": "inference.pdmodel"}.get(fmt, "__model__")


def _params_files(d: Path, fmt: str) -> list[Path]:
    if fmt == "fluid-separate":
        return sorted(f for f in d.iterdir() if f.name not in ("__model__", ".complete"))
    f = d / ("__params__" if fmt == "fluid-combined" else "inference.pdiparams")
    return [f] if f.is_file() else []


def _truncate(rng: random.Random, f: Path) -> str:
    data = f.read_bytes()
    cut = rng.randrange(max(len(data), 1))
    f.write_bytes(data[:cut])
    return f"truncate {f.name} at {cut}/{len(data)}"


def _flip(rng: random.Random, f: Path) -> str:
    data = bytearray(f.read_bytes())
    spots = [rng.randrange(len(data)) for _ in range(rng.choice((1, 1, 2, 8)))]
    for p in spots:
        data[p] ^= 1 << rng.randrange(8) if rng.random() < 0.7 else 0xFF
    f.write_bytes(bytes(data))
    return f"flip {f.name} bytes {spots[:4]}"


def _m_truncate(rng: random.Random, d: Path, fmt: str) -> str:
    files = [_program_file(d, fmt)] + _params_files(d, fmt)
    return _truncate(rng, rng.choice(files[:1] * 2 + files[1:]))


def _m_flip(rng: random.Random, d: Path, fmt: str) -> str:
    files = [_program_file(d, fmt)] + _params_files(d, fmt)
    return _flip(rng, rng.choice(files[:1] * 2 + files[1:]))


def _m_length_overflow(rng: random.Random, d: Path, fmt: str) -> str:
    f = _program_file(d, fmt)
    data = f.read_bytes()
    lens = [x for x in _program_fields(data) if x[3] == 2]
    path, msg, num, _, key_pos, value_pos, _ = rng.choice(lens)
    _, len_pos = _readvarint(data, key_pos)
    huge = rng.choice((1 << 31, (1 << 32) - 1, 1 << 62, (1 << 64) - 1, len(data)))
    f.write_bytes(data[:len_pos] + varint(huge) + data[value_pos:])
    return f"length of {msg} field {num} at byte {key_pos} -> {huge}"


def _m_varint_overflow(rng: random.Random, d: Path, fmt: str) -> str:
    f = _program_file(d, fmt)
    data = f.read_bytes()
    ints = [x for x in _program_fields(data) if x[3] == 0]
    _, msg, num, _, _, value_pos, after = rng.choice(ints)
    bad = rng.choice((b"\xff" * 11, b"\xff" * 9 + b"\x7f", b"\x80" * 10 + b"\x00", b"\xff" * 4))
    f.write_bytes(data[:value_pos] + bad + data[after:])
    return f"varint of {msg} field {num} at byte {value_pos} -> {bad.hex()}"


_DIMS = [[1 << 62], [0, 1 << 62], [-5, 3], [2] * 40, [1 << 40, 1 << 40], [-(1 << 63)], [], [0], [-1] * 9]


def _m_huge_dims(rng: random.Random, d: Path, fmt: str) -> str:
    dims = rng.choice(_DIMS)
    if fmt == "pir":
        doc = json.loads(_program_file(d, fmt).read_text())
        tts = [x for x in _walk_json(doc) if isinstance(x, dict) and str(x.get("#", "")).endswith("t_dtensor")]
        tt = rng.choice(tts)
        tt["D"][1] = dims
        _program_file(d, fmt).write_text(json.dumps(doc))
        return f"PIR dims -> {dims}"
    if rng.random() < 0.5 and _params_files(d, fmt):  # a parameter's stored desc
        f = rng.choice(_params_files(d, fmt))
        return _patch_param_desc(f, lambda desc: desc.dims.__setitem__(slice(None), dims)) + f" dims -> {dims}"
    from paddle.base.proto import framework_pb2

    f = _program_file(d, fmt)
    prog = framework_pb2.ProgramDesc.FromString(f.read_bytes())
    var = rng.choice([v for b in prog.blocks for v in b.vars if v.type.type == 7])
    var.type.dense_tensor.tensor.dims[:] = dims
    f.write_bytes(prog.SerializePartialToString())
    return f"var {var.name} dims -> {dims}"


def _patch_param_desc(f: Path, edit: Callable[[Any], None]) -> str:
    import struct

    from paddle.base.proto import framework_pb2

    data = f.read_bytes()
    (levels,) = struct.unpack_from("<Q", data, 4)
    pos = 12
    for _ in range(min(levels, 4)):
        (n,) = struct.unpack_from("<Q", data, pos)
        pos += 8 + n
    (dlen,) = struct.unpack_from("<i", data, pos + 4)
    desc = framework_pb2.VarType.TensorDesc.FromString(data[pos + 8:pos + 8 + dlen])
    edit(desc)
    raw = desc.SerializePartialToString()
    f.write_bytes(data[:pos + 4] + struct.pack("<i", len(raw)) + raw + data[pos + 8 + dlen:])
    return f"first tensor desc of {f.name}"


def _m_bad_dtype(rng: random.Random, d: Path, fmt: str) -> str:
    code = rng.choice((7, 8, 17, 19, 25, 99, 1 << 31, (1 << 64) - 1))
    if fmt == "pir":
        doc = json.loads(_program_file(d, fmt).read_text())
        elems = [x for x in _walk_json(doc) if isinstance(x, dict) and str(x.get("#", "")).startswith("0.t_")
                 and "D" not in x]
        rng.choice(elems)["#"] = rng.choice(("0.t_zz", "0.t_i128", "t_f32", "", "0.t_dtensor"))
        _program_file(d, fmt).write_text(json.dumps(doc))
        return "PIR element type renamed"
    if rng.random() < 0.5 and _params_files(d, fmt):
        f = rng.choice(_params_files(d, fmt))
        data = f.read_bytes()
        # the TensorDesc starts 20 bytes in for a record without LoD: its first field is data_type
        if len(data) > 22 and data[20] == 0x08:
            f.write_bytes(data[:21] + varint(code) + data[22:])
            return f"dtype code of {f.name} -> {code}"
    f = _program_file(d, fmt)
    data = f.read_bytes()
    spots = [x for x in _program_fields(data) if x[0][-4:] == (2, 3, 1, 1) and x[1] == "VarType.TensorDesc"]
    _, _, _, _, _, value_pos, after = rng.choice(spots)
    f.write_bytes(data[:value_pos] + varint(code) + data[after:])
    return f"var dtype code -> {code}"


_SKIPPED = {("VarDesc", 4), ("VarDesc", 5), ("VarDesc", 6), ("VarDesc", 7), ("BlockDesc", 5), ("OpDesc", 5),
            ("ProgramDesc", 4), ("ProgramDesc", 5), ("VarType.DenseTensorDesc", 2), ("Version", 1),
            ("OpDesc.Attr", 8), ("OpDesc.Attr", 5), ("OpDesc.Attr", 3)}


def _m_wire_type(rng: random.Random, d: Path, fmt: str) -> str:
    f = _program_file(d, fmt)
    data = f.read_bytes()
    fields = _program_fields(data)
    skipped = [x for x in fields if (x[1], x[2]) in _SKIPPED]
    path, msg, num, wire, key_pos, value_pos, after = rng.choice(skipped if skipped and rng.random() < 0.8
                                                                 else fields)
    new_wire = rng.choice([w for w in (0, 1, 2, 5) if w != wire])
    payload = {0: b"\x01", 1: b"\0" * 8, 2: b"\x01\x00", 5: b"\0" * 4}[new_wire]
    f.write_bytes(_replace(data, key_pos, after, varint(num << 3 | new_wire) + payload))
    return f"{msg} field {num} wire type {wire} -> {new_wire}"


def _m_block_cycle(rng: random.Random, d: Path, fmt: str) -> str:
    if fmt == "pir":
        return _m_json_ids(rng, d, fmt)
    from paddle.base.proto import framework_pb2

    f = _program_file(d, fmt)
    prog = framework_pb2.ProgramDesc.FromString(f.read_bytes())
    if len(prog.blocks) == 1 or rng.random() < 0.3:
        b = prog.blocks.add()
        b.idx = len(prog.blocks) - 1
        b.parent_idx = rng.choice((b.idx, b.idx + 1, -1, 1 << 30))
        f.write_bytes(prog.SerializePartialToString())
        return f"extra block {b.idx} with parent {b.parent_idx}"
    i = rng.randrange(1, len(prog.blocks))
    if rng.random() < 0.5:
        prog.blocks[i].parent_idx = rng.choice((i, i + 1, -1, -2, 1 << 31 - 1))
        f.write_bytes(prog.SerializePartialToString())
        return f"block {i} parent -> {prog.blocks[i].parent_idx}"
    attrs = [a for b in prog.blocks for op in b.ops for a in op.attrs if a.type == 8]
    a = rng.choice(attrs)
    a.block_idx = rng.choice((0, 1, len(prog.blocks), -1))
    f.write_bytes(prog.SerializePartialToString())
    return f"sub_block attr -> {a.block_idx}"


def _m_attr_type(rng: random.Random, d: Path, fmt: str) -> str:
    """An op attribute of another type than the op expects (a string col, an int list scale, ...)."""
    if fmt == "pir":
        def edit(doc: dict) -> str:
            attrs = [a for a in _walk_json(doc["program"]) if isinstance(a, dict) and "N" in a and "AT" in a]
            a = rng.choice(attrs)
            a["AT"] = copy.deepcopy(rng.choice([{"#": "0.a_str", "D": "x"}, {"#": "0.a_i32", "D": -3},
                                                {"#": "0.a_array", "D": []}, {"#": "0.a_bool", "D": True},
                                                {"#": "0.a_f64", "D": 1e300}, {"#": "1.a_intarray", "D": [-1]},
                                                {"#": "1.a_dtype", "D": "zz"}]))
            return f"PIR attribute {a['N']} -> {a['AT']}"
        return _pir_edit(rng, d, fmt, edit)
    from paddle.base.proto import framework_pb2

    f = _program_file(d, fmt)
    prog = framework_pb2.ProgramDesc.FromString(f.read_bytes())
    attrs = [a for b in prog.blocks for op in b.ops for a in op.attrs if a.type != 8]
    a = rng.choice(attrs)
    keep = a.name
    a.Clear()
    a.name = keep
    kind = rng.choice(("s", "i", "ints", "f", "b", "l", "strings", "floats"))
    if kind == "s":
        a.type, a.s = 2, "x"
    elif kind == "i":
        a.type, a.i = 0, rng.choice((-1, 1 << 30, 0))
    elif kind == "ints":
        a.type = 3
        a.ints.extend([-1, 1 << 30])
    elif kind == "f":
        a.type, a.f = 1, float("nan")
    elif kind == "b":
        a.type, a.b = 6, True
    elif kind == "l":
        a.type, a.l = 9, -(1 << 62)
    elif kind == "strings":
        a.type = 5
        a.strings.extend(["a", "b"])
    else:
        a.type = 4
        a.floats.extend([1.0, -2.0])
    f.write_bytes(prog.SerializePartialToString())
    return f"attribute {keep} -> {kind}"


def _m_params_header(rng: random.Random, d: Path, fmt: str) -> str:
    import struct

    if not _params_files(d, fmt):
        return _m_flip(rng, d, fmt)
    f = rng.choice(_params_files(d, fmt))
    data = bytearray(f.read_bytes())
    field, spec = rng.choice([(0, "<I"), (4, "<Q"), (12, "<I"), (16, "<i")])
    value = rng.choice((1, 7, 1 << 31, (1 << 32) - 1, -1, 1 << 62)) if spec != "<Q" else rng.choice(
        (1, 1 << 40, (1 << 64) - 1, 3))
    try:
        struct.pack_into(spec, data, field, value)
    except struct.error:
        struct.pack_into(spec, data, field, 1)
    f.write_bytes(bytes(data))
    return f"{f.name} header at {field} -> {value}"


# --- PIR JSON -----------------------------------------------------------------------------------------------

def _walk_json(x: Any) -> list:
    out = [x]
    stack = [x]
    while stack:
        node = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        for c in children:
            if isinstance(c, (dict, list)):
                out.append(c)
                stack.append(c)
    return out


_JUNK: list[Any] = [None, True, 0, -1, 7, 1 << 70, 1.5, "x", "", [], {}, [[[]]], {"#": 3}, [None], {"%": "1"}]


def _pir_edit(rng: random.Random, d: Path, fmt: str, edit: Callable[[dict], str]) -> str:
    if fmt != "pir":
        return _m_wire_type(rng, d, fmt)
    f = _program_file(d, fmt)
    doc = json.loads(f.read_text())
    what = edit(doc)
    f.write_text(json.dumps(doc))
    return what


def _m_json_wrong_type(rng: random.Random, d: Path, fmt: str) -> str:
    def edit(doc: dict) -> str:
        node = rng.choice([x for x in _walk_json(doc["program"]) if isinstance(x, dict) and x])
        key = rng.choice(sorted(node))
        node[key] = copy.deepcopy(rng.choice(_JUNK))
        return f"PIR {key!r} -> {json.dumps(node[key])}"
    return _pir_edit(rng, d, fmt, edit)


def _m_json_delete(rng: random.Random, d: Path, fmt: str) -> str:
    def edit(doc: dict) -> str:
        node = rng.choice([x for x in _walk_json(doc["program"]) if isinstance(x, dict) and x])
        key = rng.choice(sorted(node))
        del node[key]
        return f"PIR key {key!r} deleted"
    return _pir_edit(rng, d, fmt, edit)


def _m_json_deep(rng: random.Random, d: Path, fmt: str) -> str:
    if fmt != "pir":
        return _m_varint_overflow(rng, d, fmt)
    f = _program_file(d, fmt)
    doc = json.loads(f.read_text())
    node = rng.choice([x for x in _walk_json(doc["program"]) if isinstance(x, dict) and x])
    key = rng.choice(sorted(node))
    depth = rng.choice((70, 300, 5000, 200000))
    node[key] = "@@DEEP@@"
    f.write_text(json.dumps(doc).replace('"@@DEEP@@"', "[" * depth + "1" + "]" * depth))
    return f"PIR {key!r} nested {depth} deep"


def _m_json_ids(rng: random.Random, d: Path, fmt: str) -> str:
    def edit(doc: dict) -> str:
        refs = [x for x in _walk_json(doc["program"]) if isinstance(x, dict) and "%" in x]
        ops = [x for x in _walk_json(doc["program"]) if isinstance(x, dict) and isinstance(x.get("I"), list)
               and x["I"] and isinstance(x.get("O"), list) and x["O"]]
        if ops and rng.random() < 0.4:  # an op consuming its own result (a cycle)
            op = rng.choice(ops)
            op["I"][0]["%"] = op["O"][0]["%"]
            return f"PIR {op['#']} consumes its own result"
        ref = rng.choice(refs)
        ref["%"] = rng.choice((0, -5, 99999, 1, (1 << 63) - 1))
        return f"PIR value id -> {ref['%']}"
    return _pir_edit(rng, d, fmt, edit)


def _m_json_numbers(rng: random.Random, d: Path, fmt: str) -> str:
    if fmt != "pir":
        return _m_huge_dims(rng, d, fmt)
    f = _program_file(d, fmt)
    doc = json.loads(f.read_text())
    nums = [(node, k) for node in _walk_json(doc["program"]) if isinstance(node, dict)
            for k, v in node.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    nums += [(node, i) for node in _walk_json(doc["program"]) if isinstance(node, list)
             for i, v in enumerate(node) if isinstance(v, (int, float)) and not isinstance(v, bool)]
    node, k = rng.choice(nums)
    text = rng.choice(("NaN", "Infinity", "1e400", "-1e400", str(1 << 64), str(-(1 << 70)), "1.5", "-7"))
    node[k] = "@@NUM@@"
    f.write_text(json.dumps(doc).replace('"@@NUM@@"', text))
    return f"PIR number -> {text}"


def _m_json_dup_op(rng: random.Random, d: Path, fmt: str) -> str:
    def edit(doc: dict) -> str:
        blocks = [x for x in _walk_json(doc["program"]) if isinstance(x, dict) and isinstance(x.get("ops"), list)
                  and x["ops"]]
        ops = rng.choice(blocks)["ops"]
        i = rng.randrange(len(ops))
        ops.insert(i, copy.deepcopy(ops[i]))
        return f"PIR op {ops[i].get('#')} duplicated"
    return _pir_edit(rng, d, fmt, edit)


def _m_json_text(rng: random.Random, d: Path, fmt: str) -> str:
    f = _program_file(d, fmt)
    return _truncate(rng, f) if rng.random() < 0.5 else _flip(rng, f)


MUTATORS: dict[str, Callable[[random.Random, Path, str], str]] = {
    "truncate": _m_truncate, "flip": _m_flip, "length-overflow": _m_length_overflow,
    "varint-overflow": _m_varint_overflow, "huge-dims": _m_huge_dims, "bad-dtype": _m_bad_dtype,
    "wire-type": _m_wire_type, "block-cycle": _m_block_cycle, "params-header": _m_params_header,
    "attr-type": _m_attr_type,
    "json-wrong-type": _m_json_wrong_type, "json-delete": _m_json_delete, "json-deep": _m_json_deep,
    "json-ids": _m_json_ids, "json-numbers": _m_json_numbers, "json-dup-op": _m_json_dup_op,
    "json-text": _m_json_text,
}
_PIR_ONLY = {"json-wrong-type", "json-delete", "json-deep", "json-ids", "json-numbers", "json-dup-op", "json-text"}
_PROTO_ONLY = {"length-overflow", "varint-overflow", "wire-type", "block-cycle"}


def make_cases(root: Path, count: int, seed: int = SEED) -> list[tuple[str, str]]:
    """count mutated model folders under root: [(folder, description)]."""
    cases = []
    for i in range(count):
        rng = random.Random(seed * 1_000_003 + i)
        model, fmt = SOURCES[i % len(SOURCES)]
        names = [n for n in MUTATORS if not (fmt == "pir" and n in _PROTO_ONLY)
                 and not (fmt != "pir" and n in _PIR_ONLY)]
        name = names[(i // len(SOURCES) + rng.randrange(3)) % len(names)]
        d = root / f"case{i:04d}"
        shutil.copytree(zoo.get(model, fmt), d)
        what = MUTATORS[name](rng, d, fmt)
        cases.append((str(d), f"#{i} {model}/{fmt} {name}: {what}"))
    return cases


def make_huge_cases(root: Path) -> list[tuple[str, str]]:
    """Programs of 200,000 ops in both program formats (above limits.MAX_OPS)."""
    from paddle.base.proto import framework_pb2

    out = []
    d = root / "huge-pdmodel"
    shutil.copytree(zoo.get("elementwise", "paddle2"), d)
    prog = framework_pb2.ProgramDesc.FromString((d / "inference.pdmodel").read_bytes())
    relu = framework_pb2.OpDesc(type="relu")
    relu.inputs.add(parameter="X", arguments=["x"])
    relu.outputs.add(parameter="Out", arguments=["x"])
    op = relu.SerializeToString()
    block = prog.blocks[0].SerializeToString() + (b"\x22" + bytes([len(op)]) + op) * 200_000
    del prog.blocks[:]
    (d / "inference.pdmodel").write_bytes(b"\x0a" + varint(len(block)) + block + prog.SerializeToString())
    out.append((str(d), "huge: 200,000-op ProgramDesc"))
    d = root / "huge-pir"
    shutil.copytree(zoo.get("elementwise", "pir"), d)
    doc = json.loads((d / "inference.json").read_text())
    ops = doc["program"]["regions"][0]["blocks"][0]["ops"]
    fetch = next(o for o in ops if o["#"] == "1.fetch")
    v, tt = fetch["I"][0]["%"], fetch["O"][0]["TT"]
    relus = []
    for i in range(200_000):
        relus.append({"#": "1.relu", "A": [], "I": [{"%": v}], "O": [{"%": 10**7 + i, "TT": tt}], "OA": []})
        v = 10**7 + i
    fetch["I"][0]["%"] = v
    ops[ops.index(fetch):ops.index(fetch)] = relus
    (d / "inference.json").write_text(json.dumps(doc))
    out.append((str(d), "huge: 200,000-op PIR program"))
    return out


# --- running: a child process under a memory limit, restarted after a hang -----------------------------

def _child() -> None:
    """Read case folders from stdin, run `repogen inspect --json` on each, report one JSON line per case."""
    import contextlib
    import io
    import traceback

    from repogen.cli import main

    report = sys.stdout
    for line in sys.stdin:
        path = line.rstrip("\n")
        report.write(json.dumps({"start": path}) + "\n")
        report.flush()
        out, err = io.StringIO(), io.StringIO()
        t0 = time.perf_counter()
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                rc: Any = main(["inspect", path, "--json"])
            detail = err.getvalue().strip()
        except BaseException as exc:  # noqa: BLE001 - anything but rc 0/2 is the finding
            rc = f"traceback:{type(exc).__name__}"
            detail = "".join(traceback.format_exception(exc))[-1500:]
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        report.write(json.dumps({"path": path, "rc": rc, "seconds": time.perf_counter() - t0, "peak": peak,
                                 "lines": len(err.getvalue().splitlines()), "detail": detail[:1500]}) + "\n")
        report.flush()


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def run_cases(cases: list[tuple[str, str]], hang_s: float) -> list[dict]:
    import selectors

    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               GLOG_minloglevel="3")
    results: list[dict] = []
    todo = list(cases)
    while todo:
        proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--child"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
                                preexec_fn=_limit_memory)
        assert proc.stdin and proc.stdout
        proc.stdin.write("".join(p + "\n" for p, _ in todo))
        proc.stdin.close()
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        started = 0
        while todo:
            path, what = todo[0]
            deadline = time.monotonic() + hang_s + (30 if started == 0 else 0)  # first case: interpreter start
            line = ""
            while not line and time.monotonic() < deadline:
                if sel.select(timeout=max(0.0, deadline - time.monotonic())):
                    line = proc.stdout.readline()
                    if not line:  # the child died (a crash or the memory limit)
                        break
                    msg = json.loads(line)
                    if "start" in msg:
                        started += 1
                        deadline = time.monotonic() + hang_s
                        line = ""
            if not line:
                timed_out = time.monotonic() >= deadline
                proc.kill()
                proc.wait()
                results.append({"path": path, "what": what, "rc": "hang" if timed_out else "died",
                                "seconds": hang_s if timed_out else None, "peak": None, "lines": 0, "detail": ""})
                todo.pop(0)
                break
            msg["what"] = what
            results.append(msg)
            todo.pop(0)
        else:
            proc.wait()
        sel.close()
    return results


def summarize(results: list[dict]) -> dict:
    rcs: dict[str, int] = {}
    for r in results:
        rcs[str(r["rc"])] = rcs.get(str(r["rc"]), 0) + 1
    by_mutator: dict[str, dict[str, int]] = {}
    for r in results:
        name = r["what"].split(":")[0].split()[-1] if not r["what"].startswith("huge") else "huge-ops"
        counts = by_mutator.setdefault(name, {})
        counts[str(r["rc"])] = counts.get(str(r["rc"]), 0) + 1
    timed = [r for r in results if r.get("seconds") is not None]
    slowest = max(timed, key=lambda r: r["seconds"]) if timed else None
    small = [r["peak"] or 0 for r in results if not r["what"].startswith("huge")]
    return {"cases": len(results), "rc": rcs, "by_mutator": dict(sorted(by_mutator.items())),
            "max_seconds": round(slowest["seconds"], 2) if slowest else None,
            "slowest": slowest["what"] if slowest else None,
            "max_peak_mib": round(max((r["peak"] or 0) for r in results) / 2**20, 1),
            "max_peak_mib_mutated_zoo_files": round(max(small, default=0) / 2**20, 1)}


def _check(results: list[dict]) -> None:
    bad = [r for r in results if r["rc"] not in (0, 2) or (r["rc"] == 2 and r["lines"] != 1)]
    assert not bad, "\n".join(f"{r['what']}: rc {r['rc']}\n{r['detail']}" for r in bad[:5])


def test_fuzz_readers(tmp_path: Path) -> None:
    zoo.ensure(sorted({m for m, _ in SOURCES}))
    cases = make_cases(tmp_path, SLOW_CASES if SLOW else FAST_CASES)
    if SLOW:
        cases += make_huge_cases(tmp_path)
    t0 = time.perf_counter()
    results = run_cases(cases, hang_s=60 if SLOW else 20)
    summary = summarize(results)
    summary["total_seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(summary))
    if os.environ.get("REPOGEN_FUZZ_REPORT"):
        Path(os.environ["REPOGEN_FUZZ_REPORT"]).write_text(json.dumps(
            {"summary": summary, "cases": [{k: r.get(k) for k in ("what", "rc", "seconds", "peak", "detail")}
                                           for r in results]}, indent=1))
    _check(results)
    assert summary["cases"] == len(cases)
    # the mutations reach the checks: most are refused, a few (valid after all) still load
    assert summary["rc"].get("2", 0) >= len(cases) * 0.6, summary
    assert summary["max_peak_mib"] < MEMORY_LIMIT / 2**20


def test_fuzz_cases_are_seeded(tmp_path: Path) -> None:
    a = make_cases(tmp_path / "a", 12)
    b = make_cases(tmp_path / "b", 12)
    assert [w for _, w in a] == [w for _, w in b]
    for (pa, _), (pb, _) in zip(a, b):
        for f in Path(pa).iterdir():
            assert f.read_bytes() == (Path(pb) / f.name).read_bytes(), f


def test_hang_guard_and_memory_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The runner itself: a case that hangs is reported as a hang, the next case still runs; an allocation over
    the limit kills nothing but that case's outcome."""
    d = zoo.get("convnet", "pir")
    monkeypatch.setenv("REPOGEN_FUZZ_SELFTEST", "1")
    results = run_cases([("HANG", "hang"), (str(d), "ok"), ("ALLOC", "alloc"), (str(d), "ok again")], hang_s=3)
    assert [r["rc"] for r in results] == ["hang", 0, "traceback:MemoryError", 0], results


@pytest.mark.parametrize("kind", ["traversal", "pir-fetch", "block-cycle", "wire-type"])
def test_cli_inspect_rc2_one_line(tmp_path: Path, kind: str) -> None:
    """`repogen inspect BADFILE` as a user runs it: rc 2 and one line on stderr, no traceback."""
    from paddle.base.proto import framework_pb2

    if kind == "pir-fetch":
        d = tmp_path / "m"
        shutil.copytree(zoo.get("convnet", "pir"), d)
        doc = json.loads((d / "inference.json").read_text())
        next(o for o in doc["program"]["regions"][0]["blocks"][0]["ops"] if o["#"] == "1.fetch")["I"][0]["%"] = 4444
        (d / "inference.json").write_text(json.dumps(doc))
    else:
        d = tmp_path / "m"
        shutil.copytree(zoo.get("whilenet" if kind == "block-cycle" else "convnet", "fluid-separate"), d)
        model = d / "__model__"
        prog = framework_pb2.ProgramDesc.FromString(model.read_bytes())
        if kind == "traversal":
            var = next(v for v in prog.blocks[0].vars if v.persistable and v.name not in ("feed", "fetch"))
            old, var.name = var.name, "../outside_param"
            shutil.copy(d / old, tmp_path / "outside_param")
            for op in prog.blocks[0].ops:
                for slot in op.inputs:
                    slot.arguments[:] = ["../outside_param" if a == old else a for a in slot.arguments]
            model.write_bytes(prog.SerializeToString())
        elif kind == "block-cycle":
            prog.blocks[1].parent_idx = 1
            model.write_bytes(prog.SerializeToString())
        else:
            model.write_bytes(prog.SerializeToString() + varint(4 << 3 | 0) + b"\x01")
    proc = subprocess.run([sys.executable, "-m", "repogen.cli", "inspect", str(d)], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("repogen inspect: error:") and "Traceback" not in proc.stderr, lines
    assert str(d) in lines[0]


if __name__ == "__main__" and sys.argv[1:] == ["--child"]:
    if os.environ.get("REPOGEN_FUZZ_SELFTEST") == "1":  # the runner's own test: stand-ins for a hang, an allocation
        import repogen.cli as _cli

        _real_main = _cli.main

        def _selftest_main(argv: list[str]) -> int:
            if argv[1] == "HANG":
                time.sleep(3600)
            if argv[1] == "ALLOC":
                bytearray(2 * MEMORY_LIMIT)
            return _real_main(argv)

        _cli.main = _selftest_main  # type: ignore[assignment]
    _child()
