"""Paddle 3.x PIR JSON programs (``NAME.json``) -> repogen.ir.Graph.

Serialization versions differ only in attribute/type spellings (float vs double attrs, int32 vs int64
arrays, see docs/ir.md); values are read by their data, so one reader serves versions 1 to 4. Attributes
added by later versions are filled with the defaults Paddle's upgrade patches use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from repogen.errors import ModelFormatError
from repogen.ir import Block, Graph, ModelSource, Op, Value
from repogen.paddle import opdefs
from repogen.paddle.limits import MAX_NESTING, MAX_OPS
from repogen.paddle.params import ParamSpec, attach, read_combined
from repogen.paddle.pir_validate import DTYPE_TYPES as _DTYPE_TYPES
from repogen.paddle.pir_validate import check_program, load_json

KNOWN_VERSIONS = (1, 2, 3, 4)
DIALECTS = {"0": "builtin", "1": "pd_op", "2": "cf", "3": "custom_op", "4": "dist"}
_DROP_ATTRS = frozenset({"stop_gradient", "persistable", "struct_name", "place", "trainable", "op_callstack",
                         "op_role", "chunk_id", "op_namescope"})
# control-flow ops: (slot, operand count or None for the rest); all results go to the list slot "out"
VARIADIC = {"if": (("cond", 1),), "while": (("cond", 1), ("inputs", None)), "yield": (("x", None),),
            "pylayer": (("inputs", None),)}
# (op, attr) -> (first version that writes it, value Paddle's upgrade patch fills in for older files)
ADDED_ATTRS = {
    ("repeat_interleave", "output_size"): (3, -1),
    ("repeat_interleave_with_tensor_index", "output_size"): (3, -1),
}


class _Reader:
    def __init__(self, source: ModelSource, version: int):
        self.path = source.model_file
        self.version = version
        self.names: dict[int, str] = {}
        self.types: dict[int, Any] = {}
        self.combine: dict[int, list[int]] = {}
        self.unpack: dict[int, dict[int, int]] = {}  # vector value id -> element index -> value id
        self.blocks: list[Block] = []
        self.params: dict[str, ParamSpec] = {}
        self.feeds: list[tuple[int, str]] = []
        self.fetches: list[tuple[int, str, int]] = []

    def fail(self, detail: str) -> ModelFormatError:
        return ModelFormatError(self.path, detail)

    # --- pre-pass: names of values, builtin.combine / split / slice ------------------------------
    def scan(self, ops: list, depth: int = 0) -> None:
        if depth > MAX_NESTING:
            raise self.fail(f"control flow nested deeper than {MAX_NESTING} levels")
        for op in _list(ops, self, "block ops"):
            name = op_name(op, self)
            outs = _results(op, self)
            ins = [_vid(x, self) for x in _list(op.get("I", []), self, "op inputs")]
            if name in ("p", "builtin.parameter", "builtin.constant"):
                pname = _param_name(op, self)
                if len(outs) != 1:
                    raise self.fail(f"parameter op {pname!r} with {len(outs)} results")
                self.names[outs[0][0]] = pname
            elif name in ("pd_op.data", "pd_op.feed"):
                feed = _attrs(op, self).get("name")
                if len(outs) != 1 or not isinstance(feed, str):
                    raise self.fail(f"{name} op with {len(outs)} results and name {repr(feed)[:40]} (expected "
                                    "one result and a string name)")
                self.names[outs[0][0]] = feed
                self.feeds.append((len(self.feeds), self.names[outs[0][0]]))
            elif name == "pd_op.fetch":
                a = _attrs(op, self)
                if len(ins) != 1:
                    raise self.fail("fetch op without exactly one input")
                col = a.get("col", len(self.fetches))
                if isinstance(col, bool) or not isinstance(col, int):
                    raise self.fail(f"fetch op of value %{ins[0]}: attribute col is {str(col)[:40]!r}, "
                                    "not an integer")
                self.fetches.append((col, str(a.get("name")), ins[0]))
            elif name == "builtin.combine":
                if len(outs) != 1:
                    raise self.fail(f"builtin.combine with {len(outs)} results (expected 1)")
                self.combine[outs[0][0]] = ins
            elif name == "builtin.split":
                if len(ins) != 1:
                    raise self.fail(f"builtin.split with {len(ins)} operands (expected 1)")
                self.unpack.setdefault(ins[0], {}).update({i: o[0] for i, o in enumerate(outs)})
            elif name == "builtin.slice":
                idx = _attrs(op, self).get("index", 0)
                if len(ins) != 1 or len(outs) != 1 or isinstance(idx, bool) or not isinstance(idx, int) \
                        or not 0 <= idx < MAX_OPS:
                    raise self.fail(f"builtin.slice with {len(ins)} operands, {len(outs)} results and index "
                                    f"{str(idx)[:40]!r} (expected 1, 1 and an index)")
                elems = _vector_elems(self.types.get(ins[0]))
                if elems and idx >= len(elems):
                    raise self.fail(f"builtin.slice index {idx} of a vector of {len(elems)} elements")
                self.unpack.setdefault(ins[0], {})[idx] = outs[0][0]
            for vid, tt in outs:
                self.types[vid] = tt
            for region in _list(op.get("regions", []), self, "regions"):
                for blk in _list(_dict(region, self).get("blocks", []), self, "blocks"):
                    blk = _dict(blk, self)
                    for arg in list(blk.get("args", [])) + list(blk.get("kwargs", [])):
                        arg = _dict(arg, self)
                        self.types[_int(arg.get("#"), self)] = arg.get("TT")
                        if "key" in arg:
                            self.names[_int(arg.get("#"), self)] = str(arg["key"])
                    self.scan(blk.get("ops", []), depth + 1)
        # a fetched value is named by the fetch (that is what Paddle Inference reports), once
        for _, fname, vid in sorted(self.fetches):
            if vid not in self.names:
                self.names[vid] = fname

    def name(self, vid: int) -> str:
        return self.names.get(vid) or f"%{vid}"

    def element_names(self, vid: int) -> list[str]:
        """Names of the elements of a vector value (combine inputs, or what split/slice unpack)."""
        if vid in self.combine:
            return [self.name(v) for v in self.combine[vid]]
        elems = _vector_elems(self.types.get(vid))
        got = self.unpack.get(vid, {})
        count = max(len(elems), max(got, default=-1) + 1)
        return [self.name(got[i]) if i in got else f"%{vid}.{i}" for i in range(count)]

    # --- main pass ------------------------------------------------------------------------------
    def block(self, blk: dict, parent: int) -> int:
        index = len(self.blocks)
        block = Block(index=index, parent=parent)
        self.blocks.append(block)
        for arg in list(blk.get("args", [])) + list(blk.get("kwargs", [])):
            vid = _int(arg.get("#"), self)
            self.add_value(block, vid, arg.get("TT"))
        for op in blk.get("ops", []):
            self.op(block, op)
        return index

    def add_value(self, block: Block, vid: int, tt: Any, persistable: bool = False) -> None:
        if _is_vector(tt):
            for name, elem in zip(self.element_names(vid), _vector_elems(tt)):
                if name not in block.values:
                    dtype, shape = tensor_type(elem, self)
                    block.values[name] = Value(name, dtype, shape)
            return
        dtype, shape = tensor_type(tt, self)
        name = self.name(vid)
        block.values[name] = Value(name, dtype, shape, persistable=persistable)

    def op(self, block: Block, op: dict) -> None:
        src = op_name(op, self)
        outs = _results(op, self)
        if src in ("p", "builtin.parameter", "builtin.constant"):
            vid, tt = outs[0]
            self.add_value(block, vid, tt, persistable=True)
            dtype, shape = tensor_type(tt, self)
            pname = self.name(vid)
            self.params[pname] = ParamSpec(pname, dtype, shape)
            return
        if src in ("pd_op.data", "pd_op.feed"):
            self.add_value(block, outs[0][0], outs[0][1])
            return
        if src in ("builtin.combine", "builtin.split", "builtin.slice", "pd_op.fetch"):
            if src != "builtin.combine":
                for vid, tt in outs:
                    if src != "pd_op.fetch":
                        self.add_value(block, vid, tt)
            return
        ctype = opdefs.canonical_type(src)
        d = opdefs.OPS.get(ctype)
        ins = [_vid(x, self) for x in op.get("I", [])]
        attrs = {k: v for k, v in _attrs(op, self).items() if k not in _DROP_ATTRS}
        for (aop, aname), (since, default) in ADDED_ATTRS.items():
            if aop == ctype and self.version < since:
                attrs.setdefault(aname, default)
        inputs: dict[str, list[str]] = {}
        outputs: dict[str, list[str]] = {}
        if ctype in VARIADIC:  # control flow: operand/result counts vary, so slots hold lists
            for slot, count in VARIADIC[ctype]:
                taken, ins = (ins, []) if count is None else (ins[:count], ins[count:])
                inputs[slot] = [self.name(v) for v in taken if v != 0]
            for vid, tt in outs:
                self.add_value(block, vid, tt)
            outputs = {"out": [self.name(vid) for vid, _ in outs]} if outs else {}
        in_slots = _slot_names(d.inputs if d else _signature_operands(ctype, attrs), len(ins), "x", "input")
        for slot, vid in zip(in_slots, ins):
            if vid == 0:  # the null value: an optional input left out
                continue
            inputs[slot] = self.element_names(vid) if _is_vector(self.types.get(vid)) else [self.name(vid)]
        out_slots = _slot_names(d.outputs if d else (), len(outs), "out", "out") if ctype not in VARIADIC else []
        for slot, (vid, tt) in zip(out_slots, outs):
            self.add_value(block, vid, tt)
            outputs[slot] = self.element_names(vid) if _is_vector(tt) else [self.name(vid)]
        new = Op(type=ctype, source_type=src, inputs=inputs, outputs=outputs, attrs=attrs)
        if ctype in ("full", "full_int_array") and len(outs) == 1:
            _set_const(block.values[self.name(outs[0][0])], ctype, attrs)
        block.ops.append(new)
        for region in op.get("regions", []):
            for blk in region.get("blocks", []):
                new.blocks.append(self.block(blk, block.index))


def _signature_operands(ctype: str, attrs: dict) -> tuple[str, ...]:
    """Operand names of an op outside opdefs: its phi arguments that the program did not give as attributes."""
    from repogen.paddle.pir_signatures import SIGNATURES

    return tuple(a for a in SIGNATURES.get(ctype, ()) if a not in attrs)


def _slot_names(known: tuple[str, ...], count: int, single: str, prefix: str) -> list[str]:
    if count <= len(known):
        return list(known[:count])
    if not known and count == 1:
        return [single]
    return list(known) + [f"{prefix}{i}" for i in range(len(known), count)]


def _set_const(value: Value, ctype: str, attrs: dict) -> None:
    dtype = attrs.get("dtype")
    if not isinstance(dtype, str) or dtype in ("bfloat16",) or dtype not in np.sctypeDict:
        return
    try:
        if ctype == "full_int_array":
            value.const = np.asarray(attrs.get("value", []), dtype=dtype)
        else:
            shape = [int(s) for s in attrs.get("shape", [])]
            if any(s < 0 for s in shape) or int(np.prod(shape, dtype=np.int64)) > (1 << 20):
                return  # dynamic or huge: leave it to the converter
            value.const = np.full(shape, attrs.get("value", 0), dtype=dtype)
    except (TypeError, ValueError, OverflowError):
        return


# --- JSON helpers: every access checked, so garbage JSON is a ModelFormatError ---------------------

def _dict(x: Any, r: _Reader) -> dict:
    if not isinstance(x, dict):
        raise r.fail(f"expected a JSON object, found {type(x).__name__}")
    return x


def _list(x: Any, r: _Reader, what: str) -> list:
    if not isinstance(x, list):
        raise r.fail(f"{what}: expected a JSON array, found {type(x).__name__}")
    return x


def _int(x: Any, r: _Reader) -> int:
    if isinstance(x, bool) or not isinstance(x, int):
        raise r.fail(f"expected an integer value id, found {x!r:.40}")
    return x


def _vid(x: Any, r: _Reader) -> int:
    return _int(_dict(x, r).get("%"), r)


def op_name(op: Any, r: _Reader) -> str:
    name = _dict(op, r).get("#")
    if not isinstance(name, str):
        raise r.fail("op without a name")
    if name == "p":
        return name
    dialect, dot, rest = name.partition(".")
    if dot and dialect in DIALECTS:
        return f"{DIALECTS[dialect]}.{rest}"
    return name


def _results(op: dict, r: _Reader) -> list[tuple[int, Any]]:
    outs = op.get("O", [])
    if isinstance(outs, dict):  # the compressed parameter op stores its single result bare
        outs = [outs]
    return [(_vid(o, r), o.get("TT")) for o in _list(outs, r, "op results")]


def _param_name(op: dict, r: _Reader) -> str:
    a = op.get("A")
    if op.get("#") == "p":
        if not isinstance(a, list) or len(a) < 4 or not isinstance(a[3], str):
            raise r.fail("parameter op without a name")
        return a[3]
    name = _attrs(op, r).get("parameter_name") or _attrs(op, r).get("name")
    if not isinstance(name, str):
        raise r.fail("parameter op without a name")
    return name


def _attrs(op: dict, r: _Reader) -> dict[str, Any]:
    out = {}
    for group in ("A", "OA"):
        items = op.get(group, [])
        if op.get("#") == "p":
            continue
        for item in _list(items, r, "attributes"):
            item = _dict(item, r)
            name = item.get("N")
            if not isinstance(name, str):
                raise r.fail("attribute without a name")
            out[name] = attr_value(item.get("AT"), r)
    return out


_FLOAT_SPECIALS = {"INF": float("inf"), "-INF": float("-inf"), "NAN": float("nan")}


def attr_value(at: Any, r: _Reader, depth: int = 0) -> Any:
    if depth > MAX_NESTING:
        raise r.fail("attribute nested too deeply")
    if not isinstance(at, dict) or "#" not in at:
        raise r.fail(f"malformed attribute {str(at)[:60]}")
    kind = str(at["#"]).partition(".")[2] or str(at["#"])
    if "VD" in at:  # float attributes JSON cannot hold are written as {"VD": "INF" | "-INF" | "NAN"}
        special = _FLOAT_SPECIALS.get(str(at["VD"]).upper())
        if special is None:
            raise r.fail(f"unknown special float {str(at['VD'])[:20]!r} in a {kind} attribute")
        return special
    data = at.get("D")
    if kind == "a_array":
        return [attr_value(x, r, depth + 1) for x in _list(data, r, "array attribute")]
    if kind == "a_tensor_name":
        return data
    if isinstance(data, dict) and "#" in data:
        return attr_value(data, r, depth + 1)
    return data


def _is_vector(tt: Any) -> bool:
    return isinstance(tt, dict) and str(tt.get("#", "")).endswith("t_vec")


def _vector_elems(tt: Any) -> list:
    if _is_vector(tt) and isinstance(tt.get("D"), list):
        return tt["D"]
    return []


def tensor_type(tt: Any, r: _Reader) -> tuple[str, tuple[int, ...] | None]:
    """(dtype, shape) of a ``t_dtensor`` (D = [dtype, dims, layout, lod, offset]) or scalar type."""
    if not isinstance(tt, dict):
        return "float32", None
    kind = str(tt.get("#", "")).partition(".")[2]
    if kind in _DTYPE_TYPES:
        return _DTYPE_TYPES[kind], ()
    data = tt.get("D")
    if kind in ("t_dtensor", "t_selected_rows", "t_dense_tensor_array") and isinstance(data, list) and data:
        elem = data[0]
        ekind = str(elem.get("#", "")).partition(".")[2] if isinstance(elem, dict) else ""
        dtype = _DTYPE_TYPES.get(ekind)
        if dtype is None:
            raise r.fail(f"unsupported element type {elem!r:.60}")
        if kind == "t_dense_tensor_array":
            return dtype, None
        dims = data[1] if len(data) > 1 else None
        if not isinstance(dims, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in dims):
            raise r.fail(f"malformed dims {dims!r:.60}")
        return dtype, tuple(max(d, -1) for d in dims)
    if kind == "t_null" or tt.get("#") == "NULL":
        return "float32", None
    return "float32", None


def read_pir(source: ModelSource) -> Graph:
    path = source.model_file
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ModelFormatError(path, f"cannot read: {exc.strerror or exc}") from None
    doc = load_json(raw, path)
    if not isinstance(doc, dict) or not isinstance(doc.get("base_code"), dict):
        raise ModelFormatError(path, "not a PIR program: no base_code object")
    base = doc["base_code"]
    if base.get("magic") != "pir":
        raise ModelFormatError(path, f"not a PIR program: magic is {base.get('magic')!r}, expected 'pir'")
    version = base.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise ModelFormatError(path, f"bad PIR version {version!r}")
    if version > max(KNOWN_VERSIONS):
        raise ModelFormatError(path, f"PIR serialization version {version} is newer than the versions repogen "
                                     f"reads ({', '.join(map(str, KNOWN_VERSIONS))})")
    source.pir_version = version
    check_program(doc.get("program"), path)
    r = _Reader(source, version)
    try:
        program = _dict(doc.get("program"), r)
        regions = _list(program.get("regions"), r, "program regions")
        if not regions:
            raise r.fail("program has no regions")
        blocks = _list(_dict(regions[0], r).get("blocks"), r, "region blocks")
        if not blocks:
            raise r.fail("program region has no blocks")
        top = _dict(blocks[0], r)
        r.scan(top.get("ops", []))
        r.block(top, -1)
    except (KeyError, TypeError, AttributeError, IndexError, ValueError) as exc:
        raise ModelFormatError(path, f"malformed PIR program ({type(exc).__name__}: {str(exc)[:100]})") from None

    main = r.blocks[0]
    inputs = [name for _, name in sorted(r.feeds)]
    outputs = []
    for _, fname, vid in sorted(r.fetches):
        vname = r.name(vid)
        if vname != fname:  # fetched twice, or a named value (input/parameter) fetched: alias it
            src = main.values.get(vname)
            main.values[fname] = Value(fname, src.dtype if src else "float32", src.shape if src else None)
            main.ops.append(Op(type="assign", source_type="pd_op.fetch", inputs={"x": [vname]},
                               outputs={"out": [fname]}))
        outputs.append(fname)
    specs = list(r.params.values())
    if source.params_file is not None:
        params = read_combined(source.params_file, specs)
    elif specs:
        raise ModelFormatError(path, f"the program has {len(specs)} parameters but there is no parameters file "
                                     f"({path.with_suffix('.pdiparams')})")
    else:
        params = {}
    attach(r.blocks, params)
    return Graph(source=source, blocks=r.blocks, inputs=inputs, outputs=outputs, params=params)
