"""The Paddle reference: what Paddle Inference (CPU) itself outputs for a model, to compare repogen's results
with. One set of predictor settings (predictor.py), run in a child process with a timeout and a memory cap
(runner.py) by ``check``, ``build`` and ``validate``; the test zoo uses the same settings in-process."""

from repogen.reference.predictor import paddle_outputs
from repogen.reference.runner import ReferenceRunner, prewarm, reference_outputs

__all__ = ["ReferenceRunner", "prewarm", "reference_outputs", "paddle_outputs"]
