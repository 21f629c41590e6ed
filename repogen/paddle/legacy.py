"""ProgramDesc formats (Fluid ``__model__`` and 2.x ``.pdmodel``) -> repogen.ir.Graph."""

from __future__ import annotations

from typing import Any

from repogen.errors import ModelFormatError
from repogen.ir import Block, Graph, ModelSource, Op, Value
from repogen.paddle import opdefs
from repogen.paddle.params import ParamSpec, attach, read_combined, read_separate
from repogen.paddle.programdesc import (
    DENSE_TENSOR, DENSE_TENSOR_ARRAY, DTYPE_OF_VARTYPE, FEED_MINIBATCH, FETCH_LIST, BlockDesc, OpDesc,
    decode_program,
)

_DTYPE_ATTRS = ("dtype", "out_dtype", "in_dtype")


def read_legacy(source: ModelSource) -> Graph:
    try:  # small enough to read whole; bytes index faster than an mmap
        data = source.model_file.read_bytes()
    except OSError as exc:
        raise ModelFormatError(source.model_file, f"cannot read: {exc.strerror or exc}") from None
    descs = decode_program(data, source.model_file)
    blocks = [_block(b, source.model_file) for b in descs]
    inputs, outputs = _feeds_fetches(descs[0], source)

    specs = param_specs(descs)
    if source.params_file is not None:
        params = read_combined(source.params_file, specs)
    elif source.format == "fluid-separate":
        params = read_separate(source.model_file.parent, specs)
    elif specs:
        raise ModelFormatError(source.model_file, f"the program has {len(specs)} parameters but there is no "
                                                  f"parameters file ({source.model_file.with_suffix('.pdiparams')})")
    else:
        params = {}
    attach(blocks, params)
    for name in inputs + outputs:
        if not any(name in b.values for b in blocks):
            raise ModelFormatError(source.model_file, f"feed/fetch variable {name!r} is not declared in the program")
    return Graph(source=source, blocks=blocks, inputs=inputs, outputs=outputs, params=params)


def param_specs(descs: list[BlockDesc]) -> list[ParamSpec]:
    """Persistable dense tensors of every block, feed/fetch excluded (what save_inference_model writes)."""
    specs: dict[str, ParamSpec] = {}
    for b in descs:
        for v in b.vars.values():
            if v.persistable and v.type == DENSE_TENSOR and v.name not in ("feed", "fetch") and v.dtype:
                specs.setdefault(v.name, ParamSpec(v.name, v.dtype, tuple(v.dims or ())))
    return list(specs.values())


def _feeds_fetches(b: BlockDesc, source: ModelSource) -> tuple[list[str], list[str]]:
    feeds: dict[int, str] = {}
    fetches: dict[int, str] = {}
    for op in b.ops:
        if op.type == "feed":
            names = op.outputs.get("Out") or []
            table = feeds
        elif op.type == "fetch":
            names = op.inputs.get("X") or []
            table = fetches
        else:
            continue
        if len(names) != 1:
            raise ModelFormatError(source.model_file, f"{op.type} op with {len(names)} variables")
        col = op.attrs.get("col", len(table))
        if isinstance(col, bool) or not isinstance(col, int):
            raise ModelFormatError(source.model_file, f"{op.type} op of {names[0]!r}: attribute col is "
                                                      f"{type(col).__name__} {str(col)[:40]}, not an integer")
        if col in table:
            raise ModelFormatError(source.model_file, f"two {op.type} ops use column {col}")
        table[col] = names[0]
    return [feeds[c] for c in sorted(feeds)], [fetches[c] for c in sorted(fetches)]


def _block(b: BlockDesc, path: object) -> Block:
    block = Block(index=b.idx, parent=b.parent_idx if b.idx > 0 else -1)
    for v in b.vars.values():
        if v.type in (FEED_MINIBATCH, FETCH_LIST) or v.dtype is None:
            continue
        shape = tuple(v.dims) if v.dims is not None else None
        if v.type == DENSE_TENSOR_ARRAY:
            shape = None
        block.values[v.name] = Value(v.name, v.dtype, shape, persistable=v.persistable)
    # scopes, readers and other non-tensor variables are runtime bookkeeping (conditional_block's Scope
    # output): they carry no data, so slots referring to them are dropped and every slot name resolves
    bookkeeping = {v.name for v in b.vars.values() if v.dtype is None and v.type not in (FEED_MINIBATCH, FETCH_LIST)}
    for i, op in enumerate(b.ops):
        if op.type in ("feed", "fetch"):
            continue
        try:
            new = convert_op(op)
        except (TypeError, ValueError, KeyError, IndexError, AttributeError) as exc:
            # renaming reads a few attributes (split's num, interp's scale, dtype codes) by their usual type
            raise ModelFormatError(path, f"op #{i} {op.type} in block {b.idx}: attributes of unexpected types "
                                         f"({type(exc).__name__}: {str(exc)[:100]})") from None
        if bookkeeping:
            for slots in (new.inputs, new.outputs):
                for key in list(slots):
                    slots[key] = [n for n in slots[key] if n not in bookkeeping]
                    if not slots[key]:
                        del slots[key]
        block.ops.append(new)
    return block


def convert_op(op: OpDesc) -> Op:
    """Rename one legacy op, its slots and attrs into the canonical vocabulary (docs/ir.md)."""
    found = opdefs.LEGACY.get(op.type)
    blocks = [i for idxs in op.block_attrs.values() for i in idxs]
    attrs = {k: v for k, v in op.attrs.items() if k not in opdefs.LEGACY_NOISE_ATTRS and k not in op.block_attrs}
    if found is None:
        return Op(type=op.type, source_type=op.type,
                  inputs={opdefs.snake(k): list(v) for k, v in op.inputs.items() if v},
                  outputs={opdefs.snake(k): list(v) for k, v in op.outputs.items() if v},
                  attrs=attrs, blocks=blocks)
    d, lg = found
    canon = d.type
    inputs: dict[str, list[str]] = {}
    outputs: dict[str, list[str]] = {}
    out_attrs: dict[str, Any] = {}
    mut_slots = set()
    mut_attrs = set()
    for m in lg.mutables:
        if m.tensor and op.inputs.get(m.tensor):
            inputs[m.name] = list(op.inputs[m.tensor])
        elif m.tensor_list and op.inputs.get(m.tensor_list):
            inputs[m.name + "_tensor_list"] = list(op.inputs[m.tensor_list])
        if m.attr and m.attr in attrs:
            out_attrs[m.name] = attrs[m.attr]
        mut_slots.update(s for s in (m.tensor, m.tensor_list) if s)
        if m.attr:
            mut_attrs.add(m.attr)
    for slot, names in op.inputs.items():
        if names and slot not in mut_slots:
            inputs[lg.slots.get(slot, opdefs.snake(slot))] = list(names)
    for slot, names in op.outputs.items():
        if names and slot not in opdefs.LEGACY_NOISE_SLOTS:
            outputs[lg.slots.get(slot, opdefs.snake(slot))] = list(names)
    for key, value in attrs.items():
        if key in mut_attrs:
            continue
        new = lg.attrs.get(key, key)
        if new is None:
            continue
        out_attrs[new] = value
    out_attrs.update(lg.set_attrs)
    for key in _DTYPE_ATTRS:
        if isinstance(out_attrs.get(key), int):
            code = out_attrs[key]
            out_attrs[key] = DTYPE_OF_VARTYPE.get(code, code) if code >= 0 else None
    canon = _special(op, canon, inputs, out_attrs)
    # slots in the canonical (phi) order whatever order the file lists them in (ProgramDesc sorts them by
    # name): code that pairs a kernel's results with the op's outputs relies on it
    order = {slot: i for i, slot in enumerate(d.outputs)}
    outputs = dict(sorted(outputs.items(), key=lambda kv: order.get(kv[0], len(order))))
    return Op(type=canon, source_type=op.type, inputs=inputs, outputs=outputs, attrs=out_attrs, blocks=blocks)


def _special(op: OpDesc, canon: str, inputs: dict, attrs: dict) -> str:
    """Legacy ops whose canonical twin depends on an attribute or an optional input."""
    if op.type == "split" and attrs.get("num", 0) > 0:
        attrs.pop("sections", None)
        return "split_with_num"
    if op.type == "split":
        attrs.pop("num", None)
    if op.type == "set_value" and op.inputs.get("ValueTensor"):
        inputs["values"] = inputs.pop("value_tensor")
        return "set_value_with_tensor"
    if op.type.startswith("reduce_") and op.type != "reduce_prod":
        # phi reductions have no reduce_all: an empty axis list means every axis
        if attrs.pop("reduce_all", False):
            attrs["axis"] = []
    if "dtype" in attrs and attrs["dtype"] is None and canon in ("sum", "mean", "max", "min", "prod", "all", "any"):
        del attrs["dtype"]
    if op.type.endswith("_interp") and isinstance(attrs.get("scale"), float):  # v1: one float for all dims
        rank = {"linear": 1, "trilinear": 3}.get(op.type[: -len("_interp")], 2)
        attrs["scale"] = [attrs["scale"]] * rank if attrs["scale"] > 0 else []
    if op.type == "tril_triu":
        return "tril" if attrs.pop("lower", True) else "triu"
    if op.type == "assign_value":
        for key in ("fp32_values", "int32_values", "int64_values", "bool_values", "fp64_values"):
            if op.attrs.get(key):
                attrs["values"] = list(op.attrs[key])
        attrs.pop("fp64_values", None)
    return canon
