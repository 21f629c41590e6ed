"""Converter registry: one function per canonical op type (the reader maps legacy names onto it).

The table itself is repogen.trt.converter_table (the converters register there); this module loads every
converter family and answers questions about names: canonical spellings, support, why an op never converts."""

from __future__ import annotations

from repogen.trt.converter_table import CONVERTERS, STRUCTURAL, converter  # noqa: F401 - the registry's API

#: op types whose outputs are detections (converters/multiclass_nms.py): their row order is an implementation
#: choice, so checks compare them as sets
NMS_OPS = ("multiclass_nms", "multiclass_nms2", "multiclass_nms3", "matrix_nms")


def load_converters() -> None:
    """Fill the converter table (importing the family modules registers them)."""
    import repogen.trt.converters  # noqa: F401


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
    from repogen.paddle import opdefs

    return {legacy: opdef.type for legacy, (opdef, _) in opdefs.LEGACY.items()}


#: op families TensorRT cannot express at all, and why (a missing converter elsewhere is just not written yet):
#: (name prefixes, exact names, reason). fluid's lstm / gru run over LoD batches (paddle.nn.LSTM / GRU save
#: `rnn`, which converts).
_INEXPRESSIBLE = (
    (("sequence_", "lod_", "im2sequence", "linear_chain_crf", "crf_decoding", "ctc_align", "warpctc"),
     frozenset({"lstm", "gru", "lstmp", "dynamic_lstm", "dynamic_gru"}),
     "works on LoD (variable-length sequence) tensors, which TensorRT has no notion of; serve this model with "
     "--target paddle"),
)


def why_unsupported(op_type: str) -> str | None:
    """The reason an op can never get a TensorRT converter, or None if it simply has none yet."""
    for prefixes, names, reason in _INEXPRESSIBLE:
        if op_type.startswith(prefixes) or op_type in names:
            return reason
    return None


def has_converter(op_type: str) -> bool:
    load_converters()
    name = canonical(op_type)
    return name in CONVERTERS or name in STRUCTURAL


def supported_op_names() -> list[str]:
    """Every spelling with a converter: canonical, ``pd_op.`` + canonical, and the legacy names."""
    load_converters()
    names: set[str] = set()
    for name in CONVERTERS:
        names.add(name)
        if "." not in name:
            names.add("pd_op." + name)
    for legacy, canon in _legacy_map().items():
        if canon in CONVERTERS:
            names.add(legacy)
    return sorted(names)
