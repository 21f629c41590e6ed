"""The typed graph IR every reader produces and every converter consumes.

One vocabulary for all three Paddle formats (see docs/ir.md):

* ``Op.type`` is the *canonical* op type: the PIR/phi name without the ``pd_op.`` prefix and without
  the trailing ``_`` of in-place variants (``reshape``, ``add``, ``matmul``, ``conv2d``). Legacy names
  (``reshape2``, ``elementwise_add``, ``matmul_v2``) are mapped to it by the reader; ``Op.source_type``
  keeps the spelling found in the file.
* Input/output slots and attributes use the phi argument names (``x``, ``y``, ``out``, ``input``,
  ``filter`` ...). A slot always holds a list of value names (a PIR ``builtin.combine`` becomes a list).
* An integer-array or scalar argument (reshape's ``shape``, slice's ``starts``, scale's ``scale``) may
  arrive as an attribute ``name``, as a 1-D tensor input ``name``, or as a list of scalar tensors in the
  input ``name + "_tensor_list"``. Converters read it through one helper, never directly.
* Values are named; a value known at conversion time (a parameter, a ``full``/``full_int_array``
  result) carries it in ``Value.const``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

#: dtypes a value may carry, spelled as numpy spells them ("bfloat16" has no numpy twin).
DTYPES = (
    "bool", "int8", "uint8", "int16", "int32", "int64",
    "float16", "bfloat16", "float32", "float64", "complex64", "complex128",
)


@dataclass
class Value:
    name: str
    dtype: str
    shape: tuple[int, ...] | None  # -1 marks an unknown dim; None an unknown rank
    persistable: bool = False
    const: np.ndarray | None = None

    @property
    def rank(self) -> int | None:
        return None if self.shape is None else len(self.shape)

    @property
    def is_static(self) -> bool:
        return self.shape is not None and all(d >= 0 for d in self.shape)


@dataclass
class Op:
    type: str
    source_type: str
    inputs: dict[str, list[str]] = field(default_factory=dict)
    outputs: dict[str, list[str]] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)
    blocks: list[int] = field(default_factory=list)  # indices of sub-blocks this op owns

    def input(self, slot: str) -> str | None:
        names = self.inputs.get(slot) or []
        return names[0] if names else None

    def output(self, slot: str = "out") -> str | None:
        names = self.outputs.get(slot) or []
        return names[0] if names else None

    def input_names(self) -> Iterator[str]:
        for names in self.inputs.values():
            yield from names

    def output_names(self) -> Iterator[str]:
        for names in self.outputs.values():
            yield from names


@dataclass
class Block:
    index: int
    parent: int  # -1 for the main block
    ops: list[Op] = field(default_factory=list)
    values: dict[str, Value] = field(default_factory=dict)


@dataclass
class ModelSource:
    format: str  # "fluid-separate" | "fluid-combined" | "paddle2" | "pir"
    model_file: Path
    params_file: Path | None  # None for fluid-separate (one file per parameter in model_file.parent)
    pir_version: int | None = None


@dataclass
class Graph:
    source: ModelSource
    blocks: list[Block]
    inputs: list[str]  # value names in feed order
    outputs: list[str]  # value names in fetch order
    params: Mapping[str, np.ndarray]

    @property
    def main(self) -> Block:
        return self.blocks[0]

    @property
    def ops(self) -> list[Op]:
        return self.blocks[0].ops

    def value(self, name: str) -> Value:
        for block in self.blocks:
            if name in block.values:
                return block.values[name]
        raise KeyError(name)

    def const(self, name: str | None) -> np.ndarray | None:
        """The value of ``name`` when it is known before running: a folded constant or a parameter."""
        if name is None:
            return None
        for block in self.blocks:
            v = block.values.get(name)
            if v is not None:
                if v.const is not None:
                    return np.asarray(v.const)
                break
        return np.asarray(self.params[name]) if name in self.params else None

    def input_values(self) -> list[Value]:
        return [self.value(n) for n in self.inputs]

    def output_values(self) -> list[Value]:
        return [self.value(n) for n in self.outputs]

    @property
    def sub_blocks(self) -> list[Block]:
        return self.blocks[1:]
