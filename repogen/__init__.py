"""repogen: PaddlePaddle inference models -> TensorRT plans inside Triton model repositories."""

__version__ = "0.1.0"
