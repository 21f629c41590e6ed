"""Shared by the generated pipeline models: configuration loading and per-request error isolation.

Copied beside ``model.py`` as ``pipeline_common.py``; with ``pipeline_ops.py`` it is all the model needs.
"""

import json
import os
import sys

import triton_python_backend_utils as pb_utils

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import pipeline_ops as ops  # noqa: E402


def load_config():
    with open(os.path.join(HERE, "pipeline.json"), encoding="utf-8") as f:
        return json.load(f)


def error_response(exc):
    # an InputError is the client's problem and says so; anything else is named with its type
    text = str(exc) if isinstance(exc, ops.InputError) else f"{type(exc).__name__}: {exc}"
    return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(text))


def each_request(requests, handle):
    """One response per request, in order; one bad request never fails the others."""
    responses = []
    for request in requests:
        try:
            responses.append(pb_utils.InferenceResponse(output_tensors=handle(request)))
        except Exception as exc:  # noqa: BLE001 - reported to that request's client
            responses.append(error_response(exc))
    return responses


def read_image(request, cfg):
    """The request's image: encoded bytes in ``image`` or a raw UINT8 HWC (BGR) array in ``image_raw``."""
    enc = pb_utils.get_input_tensor_by_name(request, "image")
    raw = pb_utils.get_input_tensor_by_name(request, "image_raw")
    lim = (cfg["min_side"], cfg["max_side"])
    if enc is not None:
        items = enc.as_numpy().reshape(-1)
        if items.size != 1:
            raise ops.InputError(f"send exactly one encoded image per request, got {items.size}")
        data = items[0]
        data = data if isinstance(data, bytes) else bytes(data)
        return ops.decode_image(data, cfg["color"], *lim)
    if raw is not None:
        return ops.raw_image(raw.as_numpy(), cfg["color"], *lim)
    raise ops.InputError("send the image as 'image' (encoded bytes, BYTES) or 'image_raw' (UINT8 [H, W, 3], BGR)")
