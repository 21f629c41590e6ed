"""Shared by the generated pipeline models: configuration loading, request admission and per-request errors.

Copied beside ``model.py`` as ``pipeline_common.py``; with ``pipeline_ops.py`` it is all the model needs.

Every refusal of a request's own input (not an image, too small or too large, over the pixel budget) is an
``ops.InputError`` and reaches the client as Triton's INVALID_ARG (HTTP 400, gRPC INVALID_ARGUMENT), for that
request alone; the ensembles pass the code on. Anything else is the server's fault: INTERNAL (HTTP 500).
"""

import json
import os
import sys

import triton_python_backend_utils as pb_utils

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)


def load_config():
    with open(os.path.join(HERE, "pipeline.json"), encoding="utf-8") as f:
        return json.load(f)


def _cap_opencv_decoding():
    """OpenCV reads its decode-size limit once, when the library loads, so it is set here, before
    ``pipeline_ops`` imports cv2: even an image whose header reads differently to OpenCV than to
    ``ops.image_header`` cannot make a decoder allocate more than the pipeline admits. A lower limit already
    in the server's environment stays."""
    cap = load_config().get("max_pixels")
    if cap:
        given = os.environ.get("OPENCV_IO_MAX_IMAGE_PIXELS", "")
        os.environ["OPENCV_IO_MAX_IMAGE_PIXELS"] = str(min(int(cap), int(given)) if given.isdigit() else int(cap))


_cap_opencv_decoding()
import pipeline_ops as ops  # noqa: E402

def error_response(exc):
    """A client's bad input -> INVALID_ARG with the message as is; anything else -> INTERNAL, named by type."""
    if isinstance(exc, ops.InputError):
        # looked up here: the stub binds TritonError after the model's modules are imported. INVALID_ARG exists in
        # the Python backends of Triton 23.x and later (the bundled 2.51 server has it)
        code = getattr(pb_utils.TritonError, "INVALID_ARG", None)
        error = pb_utils.TritonError(str(exc), code) if code is not None else pb_utils.TritonError(str(exc))
    else:
        error = pb_utils.TritonError(f"{type(exc).__name__}: {exc}")
    return pb_utils.InferenceResponse(output_tensors=[], error=error)


def each_request(requests, handle):
    """One response per request, in order; one bad request never fails the others."""
    responses = []
    for request in requests:
        try:
            responses.append(pb_utils.InferenceResponse(output_tensors=handle(request)))
        except Exception as exc:  # noqa: BLE001 - reported to that request's client
            responses.append(error_response(exc))
    return responses


# -- pixel budget (pipeline.json "budget", written by repogen/build/budget.py) ---------------------------------

def check_budget(budget, pixels, what):
    """Refuse a request whose model input would have more pixels than the budget the build measured."""
    if budget and pixels > budget["max_pixels"]:
        why = budget.get("why", "")
        raise ops.InputError(f"{what}: {pixels} pixels at the model; this pipeline accepts at most "
                             f"{budget['max_pixels']} per request{' (' + why + ')' if why else ''}")


def feed_pixels(feed, layout):
    """Height x width of an image feed [N, C, H, W] (``chw``) or [N, H, W, C]."""
    return int(feed.shape[-2]) * int(feed.shape[-1]) if layout == "chw" else int(feed.shape[1]) * int(feed.shape[2])


def admit(cfg, budget, h, w):
    """Checks that need only the source size, before anything is decoded or converted: side and pixel limits,
    and the budget where the model gets the image at its source size (padded to the stride)."""
    ops.check_size(h, w, cfg["min_side"], cfg["max_side"], cfg.get("max_pixels", ops.MAX_PIXELS))
    if budget and budget.get("source_size"):
        stride = max(1, int(budget.get("stride") or 1))
        ph, pw = -(-h // stride) * stride, -(-w // stride) * stride
        check_budget(budget, ph * pw, f"image is {w}x{h}" + (f" (padded to {pw}x{ph})" if (ph, pw) != (h, w) else ""))


def check_feeds(budget, feeds, image_inputs):
    """After pre-processing: the image feed the model would get, whatever the transforms made of the source."""
    if budget:
        for name in image_inputs:
            feed = feeds[name]
            check_budget(budget, feed_pixels(feed, budget.get("layout", "chw")),
                         f"input {name} {list(feed.shape)}")


def read_image(request, cfg, budget=None):
    """The request's image: encoded bytes in ``image`` or a raw UINT8 HWC (BGR) array in ``image_raw``; its size
    is admitted (``admit``) before it is decoded or converted."""
    enc = pb_utils.get_input_tensor_by_name(request, "image")
    raw = pb_utils.get_input_tensor_by_name(request, "image_raw")
    if enc is not None and raw is not None:
        raise ops.InputError("send either 'image' (encoded bytes) or 'image_raw' (UINT8 pixels), not both")
    lim = (cfg["min_side"], cfg["max_side"], cfg.get("max_pixels", ops.MAX_PIXELS))
    if enc is not None:
        items = enc.as_numpy().reshape(-1)
        if items.size != 1:
            raise ops.InputError(f"send exactly one encoded image per request, got {items.size}")
        data = items[0]
        data = data if isinstance(data, bytes) else bytes(data)
        if data:
            head = ops.image_header(data)
            admit(cfg, budget, head.height, head.width)
        return ops.decode_image(data, cfg["color"], *lim)
    if raw is not None:
        arr = raw.as_numpy()
        if arr.ndim in (3, 4):
            admit(cfg, budget, int(arr.shape[-3]), int(arr.shape[-2]))
        return ops.raw_image(arr, cfg["color"], *lim)
    raise ops.InputError("send the image as 'image' (encoded bytes, BYTES) or 'image_raw' (UINT8 [H, W, 3], BGR)")
