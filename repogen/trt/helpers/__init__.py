"""Helpers shared by the converters (converters import these, never each other), one module per theme:

- ``tensors``: building blocks on network tensors: elementwise, shape arithmetic on dims, shuffles, slices,
  matrix products, fills and op arguments (every converter imports it as ``H``);
- ``layout``: channels-last <-> channels-first and Paddle's spatial padding attributes (conv, pool, interp...);
- ``slicing``: Python-style slices with clamped, possibly run-time, bounds;
- ``weights``: constant parameters turned into weights, and batch-norm coefficients (converters and passes).
"""
