"""Converter families; importing this package registers every converter (see repogen.trt.registry)."""

from repogen.trt.converters import (  # noqa: F401
    activation,
    control,
    conv,
    creation,
    deform,
    elementwise,
    gather,
    grid_sample,
    indexing,
    interp,
    logic,
    matmul,
    norm,
    pool,
    quant,
    rearrange,
    reduce,
    rnn,
    sequence,
    shape_ops,
)
