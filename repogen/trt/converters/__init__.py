"""Converter families; importing this package registers every converter (see repogen.trt.converter_table).

A family module registers ``fn(ctx, op)`` with ``@converter`` from repogen.trt.converter_table and builds
layers through the ConversionContext (repogen.trt.context: inputs, attributes, constants, casts, outputs,
``keep_alive`` for weights, ``convert_ops`` for sub-blocks) and the shared helpers of repogen.trt.helpers
(``tensors`` as ``H``, ``layout``, ``slicing``, ``weights``). It never imports another family module: a piece
two families need moves into repogen.trt.helpers (tests/test_import_graph.py checks both rules).
"""

from repogen.trt.converters import (  # noqa: F401
    activation,
    boxes,
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
    multiclass_nms,
    norm,
    pool,
    quant,
    rearrange,
    reduce,
    rnn,
    sequence,
    shape_ops,
)
