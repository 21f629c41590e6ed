"""Converter registry: one function per canonical op type (the reader maps legacy names onto it), and what
TensorRT can take of each op.

Importing this module imports every converter family, once, here: whatever was imported before, every
question below (and constant folding, which runs ops through their converters) sees the full table. The
partitioner, ``repogen ops --refused``, ``check`` and the build ask this module, never a table of their own.
"""

from __future__ import annotations

from typing import Any, Mapping

import repogen.trt.converters  # noqa: F401 - the one place the converter families are loaded
from repogen.paddle import opdefs
from repogen.trt.converter_table import CAPABILITIES, CONVERTERS, LOADED, REFUSALS, STRUCTURAL, Capability, Refusal
from repogen.trt.limits import DATA_DEPENDENT_LAYERS

LOADED.done = True

#: op types whose outputs are detections (converters/multiclass_nms.py): their row order is an implementation
#: choice, so checks compare them as sets
NMS_OPS = ("multiclass_nms", "multiclass_nms2", "multiclass_nms3", "matrix_nms")

#: op families TensorRT cannot express at all, and why (a missing converter elsewhere is just not written yet):
#: (name prefixes, exact names, reason). fluid's lstm / gru run over LoD batches (paddle.nn.LSTM / GRU save
#: `rnn`, which converts).
_INEXPRESSIBLE = (
    (("sequence_", "lod_", "im2sequence", "linear_chain_crf", "crf_decoding", "ctc_align", "warpctc"),
     frozenset({"lstm", "gru", "lstmp", "dynamic_lstm", "dynamic_gru"}),
     "works on LoD (variable-length sequence) tensors, which TensorRT has no notion of; serve this model with "
     "--target paddle"),
)

_NO_CAPABILITY = Capability()


def load_converters() -> None:
    """Kept for callers that want to say so: importing this module already loaded every converter family."""


def converter_for(op_type: str) -> Any:
    """The converter function of a canonical op type, or None."""
    return CONVERTERS.get(op_type)


def canonical(op_type: str) -> str:
    """Canonical spelling of any op name a user may type (legacy, PIR with or without ``pd_op.``)."""
    name = op_type[len("pd_op."):] if op_type.startswith("pd_op.") else op_type
    if name in CONVERTERS or name in STRUCTURAL:
        return name
    legacy = _legacy_map()
    if name in legacy:
        return legacy[name]
    if name.endswith("_") and name[:-1] in CONVERTERS:
        return name[:-1]
    return name


def _legacy_map() -> dict[str, str]:
    """legacy name -> canonical name, from the readers' op vocabulary (repogen/paddle/opdefs.py)."""
    return {legacy: opdef.type for legacy, (opdef, _) in opdefs.LEGACY.items()}


def why_unsupported(op_type: str) -> str | None:
    """The reason an op can never get a TensorRT converter, or None if it simply has none yet."""
    for prefixes, names, reason in _INEXPRESSIBLE:
        if op_type.startswith(prefixes) or op_type in names:
            return reason
    return None


def has_converter(op_type: str) -> bool:
    name = canonical(op_type)
    return name in CONVERTERS or name in STRUCTURAL


def supported_op_names() -> list[str]:
    """Every spelling with a converter: canonical, ``pd_op.`` + canonical, and the legacy names."""
    names: set[str] = set()
    for name in CONVERTERS:
        names.add(name)
        if "." not in name:
            names.add("pd_op." + name)
    for legacy, canon in _legacy_map().items():
        if canon in CONVERTERS:
            names.add(legacy)
    return sorted(names)


# -- capabilities ----------------------------------------------------------------------------------------------------

def capability(op_type: str) -> Capability:
    """What the converter of ``op_type`` declared TensorRT can take of it (no limit, no layer: the default)."""
    return CAPABILITIES.get(canonical(op_type), _NO_CAPABILITY)


def has_limit(op_type: str) -> bool:
    """Whether a layer limit that depends on shapes applies to the op (it must be observed at max shapes)."""
    return capability(op_type).limit is not None


def limit_reason(op: Any, shapes: Mapping[str, tuple]) -> str | None:
    """Why ``op`` exceeds a TensorRT layer limit at these (max-profile) shapes, or None."""
    check = capability(op.type).limit
    return check(op, shapes) if check is not None else None


def needs_data_dependent_layers(op_type: str, layers: frozenset[str] = DATA_DEPENDENT_LAYERS) -> bool:
    """Whether the op's conversion emits one of ``layers`` (by default those some builders have no runners for)."""
    return bool(capability(op_type).layers & layers)


def refusals() -> list[Refusal]:
    """The attribute values the converters refuse or accept approximately, as the families declared them."""
    return list(REFUSALS)
