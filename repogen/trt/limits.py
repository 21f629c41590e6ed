"""TensorRT's documented layer limits, in one place: the converters declare them as capabilities
(repogen.trt.converter_table), the NumPy backend enforces them as TensorRT does, and the partitioner reads
them through the registry."""

from __future__ import annotations

#: ITopKLayer: the largest k (TensorRT 10)
TOPK_MAX_K = 3840

#: INMSLayer: the most (box, class) candidates that enter its TopK (2000 on SM 5.3 / 6.2)
NMS_MAX_BOXES = 5000

#: data-dependent layers that builders of the TensorRT family may have no runners for: TensorRT-RTX 1.7 builds
#: neither (docs/gpu-validation.md); standard TensorRT builds both
DATA_DEPENDENT_LAYERS = frozenset({"NMS", "NonZero"})
