"""Converter families; importing this package registers every converter (see repogen.trt.registry)."""

from repogen.trt.converters import (  # noqa: F401
    activation,
    conv,
    creation,
    elementwise,
    gather,
    interp,
    matmul,
    norm,
    pool,
    reduce,
    shape_ops,
)
