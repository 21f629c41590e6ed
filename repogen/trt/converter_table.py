"""The converter table: canonical op type -> ``converter(ctx, op)``, filled by the ``@converter`` decorator as
the modules of repogen.trt.converters are imported. It imports nothing of repogen, so the converters, the
conversion context and the folding pass can all read it without an import cycle; repogen.trt.registry
loads the converters and answers questions about the table."""

from __future__ import annotations

from typing import Callable

#: canonical op type -> converter(ctx, op)
CONVERTERS: dict[str, Callable] = {}

#: op types that never reach a converter: the readers resolve them, or they carry no computation
STRUCTURAL = ("feed", "fetch", "data", "builtin.parameter", "builtin.constant", "builtin.combine",
              "builtin.split", "builtin.slice")


def converter(*canonical_types: str) -> Callable[[Callable], Callable]:
    """Register ``fn(ctx, op)`` for each canonical op type; a second registration is a bug."""

    def register(fn: Callable) -> Callable:
        for op_type in canonical_types:
            if op_type in CONVERTERS and CONVERTERS[op_type] is not fn:
                raise RuntimeError(f"two converters for op type {op_type!r}")
            CONVERTERS[op_type] = fn
        return fn

    return register
