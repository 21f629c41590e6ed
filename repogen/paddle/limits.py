"""Size limits the readers enforce before allocating, so a hostile model file is refused fast.

Each limit is far above what real inference models use (docs/robustness.md lists the numbers and what the
largest models need); a file beyond one is refused with a ModelFormatError naming the limit.
"""

from __future__ import annotations

MAX_OPS = 100_000
"""Ops over all blocks: twice the 10-50k ops of the largest real inference models. Counted before anything
is decoded, so a program with more is refused in well under a second."""

MAX_BLOCKS = 10_000
"""Blocks (ProgramDesc) or regions' blocks (PIR): one per control-flow branch or loop body."""

MAX_VARS = 400_000
"""Variables declared over all blocks of a ProgramDesc (one to three per op in practice)."""

MAX_RANK = 32
"""Dims of one tensor: numpy's own maximum (NPY_MAXDIMS); Paddle itself stops at 9."""

MAX_DIM = 1 << 40
"""One dimension; dims beyond it cannot describe a tensor that fits in any memory."""

MAX_ELEMENTS = 1 << 40
"""Elements of one parameter tensor (product of its dims)."""

MAX_NESTING = 64
"""Control flow nested in control flow (blocks within blocks), and JSON arrays within attributes."""

MAX_NAME = 1 << 16
"""Bytes of one name: variable, op type, slot, attribute, PIR op/value name (real names are under 200)."""

MAX_JSON_DEPTH = 200
"""JSON nesting of a PIR program file (a real program nests about 20 levels deep)."""


def check_shape(dims: list[int] | tuple[int, ...], what: str, min_dim: int = -1) -> str | None:
    """Why dims are not a sane tensor shape, or None. Dims below min_dim are refused: 0 for stored tensors,
    -1 (unknown) for PIR types; ProgramDesc variables also use other negative placeholders (-4, ...)."""
    if len(dims) > MAX_RANK:
        return f"{what} has rank {len(dims)} (more than {MAX_RANK} dims)"
    for d in dims:
        if d < min_dim or d < -MAX_DIM:
            return f"{what} has dimension {d} in {list(dims)}"
        if d > MAX_DIM:
            return f"{what} has dimension {d} (more than {MAX_DIM})"
    return None
