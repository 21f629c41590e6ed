"""Print the network-definition API a TensorRT-family module offers, and build one tiny network.

Run on a GPU machine: python tests/gpu/trt_api_probe.py [tensorrt|tensorrt_rtx_bindings]
"""

import importlib
import sys

import numpy as np

name = sys.argv[1] if len(sys.argv) > 1 else "tensorrt"
trt = importlib.import_module(name)
print("module", name, getattr(trt, "__version__", "?"))
logger = trt.Logger(trt.Logger.WARNING)
builder = trt.Builder(logger)
flags = 0
if hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
print("creation flags", list(trt.NetworkDefinitionCreationFlag.__members__))
net = builder.create_network(flags)
print("add_ methods", sorted(m for m in dir(net) if m.startswith("add_")))
for enum in ("DataType", "ElementWiseOperation", "UnaryOperation", "ActivationType", "ReduceOperation",
             "SampleMode", "InterpolationMode", "ResizeCoordinateTransformation", "ResizeRoundMode",
             "ResizeSelector", "PaddingMode", "PoolingType", "MatrixOperation", "GatherMode", "ScaleMode",
             "TopKOperation", "FillOperation", "ScatterMode", "BuilderFlag", "MemoryPoolType"):
    e = getattr(trt, enum, None)
    print(enum, list(e.__members__) if e is not None else "MISSING")
x = net.add_input("x", trt.float32, (-1, 3, 8, 8))
w = np.random.rand(4, 3, 3, 3).astype(np.float32)
conv = net.add_convolution_nd(x, 4, (3, 3), trt.Weights(w), trt.Weights(np.zeros(4, np.float32)))
conv.padding_nd = (1, 1)
shp = net.add_shape(conv.get_output(0))
print("shape layer out dtype", shp.get_output(0).dtype)
sh = net.add_shuffle(conv.get_output(0))
sh.reshape_dims = (0, -1)
out = sh.get_output(0)
out.name = "y"
net.mark_output(out)
print("y shape at build", out.shape, out.dtype)
profile = builder.create_optimization_profile()
profile.set_shape("x", (1, 3, 8, 8), (2, 3, 8, 8), (8, 3, 8, 8))
config = builder.create_builder_config()
config.add_optimization_profile(profile)
plan = builder.build_serialized_network(net, config)
print("plan bytes", None if plan is None else plan.nbytes)
