"""Check a PIR JSON program as Paddle's deserializer reads it, before repogen's reader relies on it.

Paddle's ProgramReader (paddle/fluid/pir/serialize_deserialize) requires, for every block, ``#``, ``args``
and ``ops``; for every op ``#``, ``I``, ``O`` and ``A`` (the compressed parameter op ``p`` has its own
layout); it looks every operand up among the values defined so far (block arguments, results of earlier
ops; an op's own results are defined only after its regions) and parses each type and attribute by its
``#``. Here the same structure is checked with JSON types, value ids are defined once and used only after
their definition (so a fetch of a value that exists nowhere, or a ``builtin.combine`` consuming its own
result, is refused), and the limits of repogen/paddle/limits.py bound ops, blocks, nesting and shapes.
Integers beyond int64 and non-finite numbers are refused while the JSON is parsed (see ``load_json``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from repogen.errors import ModelFormatError
from repogen.paddle.limits import MAX_BLOCKS, MAX_DIM, MAX_NAME, MAX_NESTING, MAX_OPS, check_shape

DTYPE_TYPES = {
    "t_bool": "bool", "t_i8": "int8", "t_ui8": "uint8", "t_i16": "int16", "t_i32": "int32", "t_i64": "int64",
    "t_f16": "float16", "t_bf16": "bfloat16", "t_f32": "float32", "t_f64": "float64", "t_c64": "complex64",
    "t_c128": "complex128",
}
"""PIR element types -> repogen.ir dtype names."""
_INT64 = (-(1 << 63), 1 << 63)
_INT32 = (-(1 << 31), 1 << 31)
_TENSOR_TYPES = ("t_dtensor", "t_selected_rows", "t_dense_tensor_array")
_SPECIAL_FLOATS = ("INF", "-INF", "NAN")


class _BadNumber(ValueError):
    pass


def _parse_int(text: str) -> int:
    v = int(text)
    if not _INT64[0] <= v < _INT64[1]:
        raise _BadNumber(f"integer {text[:30]}{'...' if len(text) > 30 else ''} is beyond int64")
    return v


def _parse_float(text: str) -> float:
    v = float(text)
    if not math.isfinite(v):
        raise _BadNumber(f"number {text[:30]} is out of the range of a double")
    return v


def _parse_constant(text: str) -> float:
    raise _BadNumber(f"{text} is not a JSON number (Paddle writes such floats as {{\"VD\": ...}})")


def load_json(raw: bytes, path: Path) -> Any:
    """json.loads refusing what Paddle's JSON library refuses: NaN/Infinity literals, numbers overflowing a
    double (1e400), integers beyond int64."""
    try:
        return json.loads(raw, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant)
    except _BadNumber as exc:
        raise ModelFormatError(path, f"not a valid PIR program: {exc}") from None
    except (ValueError, RecursionError) as exc:
        raise ModelFormatError(path, f"not valid JSON ({str(exc)[:120]})") from None


_DIALECT_IDS = ("0", "1", "2", "3", "4")  # builtin, pd_op, cf, custom_op, dist (pir.DIALECTS)


class Checker:
    def __init__(self, path: Path):
        self.path = path
        self.defined: set[int] = {0}  # id 0 is the null value (an optional operand left out)
        self.ops = 0
        self.blocks = 0
        self.where = "program"

    def fail(self, detail: str) -> ModelFormatError:
        return ModelFormatError(self.path, f"{self.where}: {detail}")

    # --- JSON shapes --------------------------------------------------------------------------------
    def obj(self, x: Any, what: str) -> dict:
        if not isinstance(x, dict):
            raise self.fail(f"{what} must be a JSON object, found {_json_type(x)}")
        return x

    def arr(self, x: Any, what: str) -> list:
        if not isinstance(x, list):
            raise self.fail(f"{what} must be a JSON array, found {_json_type(x)}")
        return x

    def key(self, d: dict, key: str, what: str) -> Any:
        if key not in d:
            raise self.fail(f"{what} lacks its {key!r} key")
        return d[key]

    def string(self, x: Any, what: str) -> str:
        if not isinstance(x, str):
            raise self.fail(f"{what} must be a JSON string, found {_json_type(x)}")
        if len(x) > MAX_NAME:
            raise self.fail(f"{what} is {len(x)} characters long (more than {MAX_NAME})")
        return x

    def integer(self, x: Any, what: str, bounds: tuple[int, int] = _INT64) -> int:
        if isinstance(x, bool) or not isinstance(x, int):
            raise self.fail(f"{what} must be an integer, found {_json_type(x)} {str(x)[:40]}")
        if not bounds[0] <= x < bounds[1]:
            raise self.fail(f"{what} {x} is out of range")
        return x

    # --- program structure ----------------------------------------------------------------------------
    def program(self, program: Any) -> None:
        program = self.obj(program, "program")
        regions = self.arr(self.key(program, "regions", "program"), "program regions")
        if len(regions) != 1:  # Paddle's ReadProgram enforces exactly one
            raise self.fail(f"the program has {len(regions)} regions; a PIR program has exactly 1")
        blocks = self.arr(self.key(self.obj(regions[0], "program region"), "blocks", "program region"),
                          "program region blocks")
        if not blocks:
            raise self.fail("the program region has no blocks")
        top = self.obj(blocks[0], "block")
        if isinstance(top.get("ops"), list) and len(top["ops"]) > MAX_OPS:  # refuse before walking them
            raise self.fail(f"block 0 has {len(top['ops'])} ops (more than {MAX_OPS})")
        self.block(top, "block 0", 0)

    def block(self, blk: Any, label: str, depth: int) -> None:
        self.blocks += 1
        if self.blocks > MAX_BLOCKS:
            raise self.fail(f"more than {MAX_BLOCKS} blocks")
        self.where = label
        blk = self.obj(blk, "block")
        self.string(self.key(blk, "#", "block"), "block '#'")
        for i, arg in enumerate(self.arr(self.key(blk, "args", "block"), "block 'args'")):
            self.where = f"{label} argument {i}"
            arg = self.obj(arg, "block argument")
            self.define(self.key(arg, "#", "block argument"), "block argument '#'")
            self.type_(self.key(arg, "TT", "block argument"), "block argument 'TT'", 0)
        for i, arg in enumerate(self.arr(blk.get("kwargs", []), "block 'kwargs'")):
            self.where = f"{label} keyword argument {i}"
            arg = self.obj(arg, "block keyword argument")
            self.define(self.key(arg, "#", "block keyword argument"), "block keyword argument '#'")
            self.type_(self.key(arg, "TT", "block keyword argument"), "block keyword argument 'TT'", 0)
            self.string(self.key(arg, "key", "block keyword argument"), "block keyword argument 'key'")
        for i, op in enumerate(self.arr(self.key(blk, "ops", "block"), "block 'ops'")):
            self.op(op, f"{label} op #{i}", depth)

    def op(self, op: Any, where: str, depth: int) -> None:
        self.ops += 1
        if self.ops > MAX_OPS:
            raise self.fail(f"more than {MAX_OPS} ops")
        self.where = where
        op = self.obj(op, "op")
        name = self.string(self.key(op, "#", "op"), "op name '#'")
        self.where = f"{where} ({name})"
        if name == "p":  # compressed parameter op: A = [.., .., .., name], O = the one result
            attrs = self.arr(self.key(op, "A", "parameter op"), "parameter op 'A'")
            if len(attrs) < 4:
                raise self.fail(f"parameter op 'A' has {len(attrs)} entries, expected 4")
            self.string(attrs[3], "parameter name")
            for key in ("DA", "OA", "QA"):
                if key in op:
                    self.arr(op[key], f"parameter op {key!r}")
            result = self.obj(self.key(op, "O", "parameter op"), "parameter op 'O'")
            self.type_(self.key(result, "TT", "parameter op result"), "parameter op 'TT'", 0)
            self.define(self.key(result, "%", "parameter op result"), "parameter op result '%'")
            return
        for i, operand in enumerate(self.arr(self.key(op, "I", "op"), "op 'I'")):
            vid = self.integer(self.key(self.obj(operand, f"operand {i}"), "%", f"operand {i}"), f"operand {i} '%'")
            if vid not in self.defined:
                raise self.fail(f"operand {i} uses value %{vid}, which no block argument or earlier op defines")
        results = self.arr(self.key(op, "O", "op"), "op 'O'")
        for i, result in enumerate(results):
            result = self.obj(result, f"result {i}")
            self.type_(self.key(result, "TT", f"result {i}"), f"result {i} 'TT'", 0)
            self.integer(self.key(result, "%", f"result {i}"), f"result {i} '%'")
        for group in ("A", "OA"):
            items = self.key(op, group, "op") if group == "A" else op.get(group, [])
            for item in self.arr(items, f"op {group!r}"):
                item = self.obj(item, f"an item of {group!r}")
                attr = self.string(self.key(item, "N", "attribute"), "attribute name 'N'")
                self.attr(self.key(item, "AT", f"attribute {attr}"), attr, 0)
        if "DA" in op:
            self.arr(op["DA"], "op 'DA'")
        regions = self.arr(op.get("regions", []), "op 'regions'")
        if regions and depth >= MAX_NESTING:
            raise self.fail(f"control flow nested deeper than {MAX_NESTING} levels")
        label = self.where
        for r, region in enumerate(regions):
            self.where = f"{label} region {r}"
            region = self.obj(region, "region")
            self.string(self.key(region, "#", "region"), "region '#'")  # Paddle's ReadRegion reads its name
            for b, blk in enumerate(self.arr(self.key(region, "blocks", "region"), "region 'blocks'")):
                self.block(blk, f"{label} region {r} block {b}", depth + 1)
        self.where = label
        # an op's results exist only after its regions (Paddle's ReadOp): a region cannot use them
        for i, result in enumerate(results):
            self.define(result["%"], f"result {i} '%'")

    def define(self, vid: Any, what: str) -> None:
        vid = self.integer(vid, what)
        if vid == 0:  # results count up from 1, block arguments down from -1
            raise self.fail(f"{what} is 0, the id of the null value")
        if vid in self.defined:
            raise self.fail(f"value %{vid} is defined twice")
        self.defined.add(vid)

    # --- types and attributes -------------------------------------------------------------------------
    def dialect_kind(self, x: Any, what: str) -> str:
        """The kind of a type or attribute name, which must carry the id of its dialect ('0.t_f32'), as
        Paddle's parser looks the dialect up before the name."""
        name = self.string(x, what)
        dialect, dot, kind = name.partition(".")
        if not dot or dialect not in _DIALECT_IDS or not kind:
            raise self.fail(f"{what} is {name[:40]!r}, not a dialect id and a name such as '0.t_f32'")
        return kind

    def type_(self, tt: Any, what: str, depth: int) -> None:
        if depth > MAX_NESTING:
            raise self.fail(f"{what} nested deeper than {MAX_NESTING} levels")
        tt = self.obj(tt, what)
        kind = self.dialect_kind(self.key(tt, "#", what), f"{what} '#'")
        if kind in _TENSOR_TYPES:
            data = self.arr(self.key(tt, "D", f"{what} ({kind})"), f"{what} 'D'")
            if len(data) < (1 if kind == "t_dense_tensor_array" else 2):
                raise self.fail(f"{what} 'D' has {len(data)} entries")
            elem = self.obj(data[0], f"{what} element type")
            ekind = self.dialect_kind(self.key(elem, "#", f"{what} element type"), f"{what} element type '#'")
            if ekind not in DTYPE_TYPES:
                raise self.fail(f"{what}: unsupported element type {elem['#'][:40]!r}")
            if kind != "t_dense_tensor_array" or len(data) > 1:
                dims = self.arr(data[1], f"{what} dims")
                for d in dims:
                    self.integer(d, f"{what} dim")
                bad = check_shape(dims, f"{what} shape", min_dim=-MAX_DIM)
                if bad:
                    raise self.fail(bad)
        elif kind == "t_vec":
            for elem in self.arr(self.key(tt, "D", f"{what} (t_vec)"), f"{what} 'D'"):
                self.type_(elem, f"{what} element", depth + 1)

    def attr(self, at: Any, name: str, depth: int) -> None:
        if depth > MAX_NESTING:
            raise self.fail(f"attribute {name} nested deeper than {MAX_NESTING} levels")
        at = self.obj(at, f"attribute {name}")
        kind = self.dialect_kind(self.key(at, "#", f"attribute {name}"), f"attribute {name} '#'")
        if "VD" in at:  # a float JSON cannot hold
            if at["VD"] not in _SPECIAL_FLOATS:
                raise self.fail(f"attribute {name}: 'VD' is {str(at['VD'])[:20]!r}, not one of {_SPECIAL_FLOATS}")
            return
        data = self.key(at, "D", f"attribute {name} ({kind})")
        want = _ATTR_DATA.get(kind)
        if want is not None and not want(data):
            raise self.fail(f"attribute {name} ({kind}): 'D' is {_json_type(data)} {str(data)[:40]}")
        if kind == "a_array":
            for x in data:
                self.attr(x, name, depth + 1)
        elif isinstance(data, dict) and "#" in data:
            self.attr(data, name, depth + 1)


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


_ATTR_DATA = {
    "a_bool": lambda x: isinstance(x, bool),
    "a_i32": lambda x: _is_int(x) and _INT32[0] <= x < _INT32[1],
    "a_i64": _is_int,
    "a_index": _is_int,
    "a_f32": lambda x: _is_int(x) or isinstance(x, float),
    "a_f64": lambda x: _is_int(x) or isinstance(x, float),
    "a_str": lambda x: isinstance(x, str),
    "a_dtype": lambda x: isinstance(x, str),
    "a_tensor_name": lambda x: isinstance(x, str),
    "a_array": lambda x: isinstance(x, list),
    "a_intarray": lambda x: isinstance(x, list) and all(_is_int(v) for v in x),
    "a_place": lambda x: isinstance(x, list),
}


def _json_type(x: Any) -> str:
    if x is None:
        return "null"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array",
            dict: "an object"}.get(type(x), type(x).__name__)


def check_program(program: Any, path: Path) -> None:
    Checker(path).program(program)
