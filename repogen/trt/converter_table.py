"""The converter table: canonical op type -> ``converter(ctx, op)`` and what TensorRT can take of that op (its
:class:`Capability`), filled by ``@converter`` and :func:`refuse` as the modules of repogen.trt.converters are
imported. It imports nothing of repogen but the limits, so the converters, the conversion context and the
folding pass can all read it without an import cycle.

Nobody reads these tables directly but the conversion context: repogen.trt.registry imports every converter
family first (one place) and answers every question about them, so no answer depends on what happened to be
imported before."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

#: a layer limit: (op, value name -> shape at the profile's max shapes) -> why the op exceeds it, or None
LimitCheck = Callable[[Any, Mapping[str, tuple]], "str | None"]


@dataclass(frozen=True)
class Refusal:
    """An attribute (or input) value of an op that the converter refuses, or accepts only approximately."""

    ops: tuple[str, ...]
    attribute: str  # the attribute or input, and the value of it that is refused
    why: str
    approximate: bool = False  # accepted, but exact only under the condition ``why`` names


@dataclass(frozen=True)
class Capability:
    """What TensorRT can take of an op, as its converter declares it (as Torch-TensorRT's converter registry
    carries a capability validator per converter)."""

    limit: LimitCheck | None = None  # a layer limit that depends on shapes (TopK's k, NMS candidates)
    layers: frozenset[str] = frozenset()  # data-dependent layers the conversion emits (limits.DATA_DEPENDENT_LAYERS)


#: canonical op type -> converter(ctx, op)
CONVERTERS: dict[str, Callable] = {}
#: canonical op type -> its capability (absent: no limit, no data-dependent layer)
CAPABILITIES: dict[str, Capability] = {}
#: attribute values the converters refuse (docs/refused.md), in the order the families declare them
REFUSALS: list[Refusal] = []

#: op types that never reach a converter: the readers resolve them, or they carry no computation
STRUCTURAL = ("feed", "fetch", "data", "builtin.parameter", "builtin.constant", "builtin.combine",
              "builtin.split", "builtin.slice")


@dataclass
class _Loaded:
    done: bool = False
    families: list[str] = field(default_factory=list)


#: set by repogen.trt.registry once every family is imported; the conversion context refuses to run before
LOADED = _Loaded()


def converter(*canonical_types: str, limit: LimitCheck | None = None,
              layers: tuple[str, ...] = ()) -> Callable[[Callable], Callable]:
    """Register ``fn(ctx, op)`` for each canonical op type, with its capability; a second registration is a bug."""
    capability = Capability(limit, frozenset(layers)) if limit or layers else None

    def register(fn: Callable) -> Callable:
        for op_type in canonical_types:
            if op_type in CONVERTERS and CONVERTERS[op_type] is not fn:
                raise RuntimeError(f"two converters for op type {op_type!r}")
            CONVERTERS[op_type] = fn
            if capability is not None:
                CAPABILITIES[op_type] = capability
        return fn

    return register


def refuse(ops: tuple[str, ...], attribute: str, why: str, *, approximate: bool = False) -> None:
    """Declare, beside the converters of ``ops``, an attribute value they refuse (or accept approximately)."""
    REFUSALS.append(Refusal(tuple(ops), attribute, why, approximate))


#: why an axis computed at run time is refused, for every converter that takes an axis
RUN_TIME_AXIS = ("TensorRT fixes the axis of a concatenation, slice, reduction, gather or TopK when the network is "
                 "built (the output's layout depends on it); an axis tensor that folds to a constant is accepted")
