"""A per-request pixel budget for pipelines whose model takes the image at (or near) its source size.

A segmentation export without a resize gets every image at full size: its memory grows with the image's pixels
(a DeepLabV3+ used 10.5 GB for one 1400x1000 image, and a 4000x4000 one aborted the Python stub and then the
server). The 10,000-pixel side limit bounds decoding, not the model. So the build measures what one input pixel
costs the model and refuses, per request and before the model runs, images it cannot afford:

* cost: Paddle Inference (the paddle target's runtime, with the reference's predictor settings) runs the model
  in a fresh child process (a timeout, a memory cap) on two small square images; the growth of the child's peak
  RSS (``/proc/self/status`` VmHWM, reset between the runs through ``clear_refs``) between them, per added
  pixel, is the cost per pixel, the rest of the peak the base;
* budget: (instance memory - base) / (cost x SAFETY x batch), where batch is the model's max_batch_size when the
  dynamic batcher may put that many same-size images together, else 1; the instance memory is
  ``instance_memory_mb`` (spec key, ``--instance-memory-mb``), by default half of this machine's memory shared
  by the model's instances;
* TensorRT plans allocate for their profiles when they load: their budget is the profile's largest image.

The result goes into the pipeline's ``pipeline.json`` (``budget``); ``served/common.py`` enforces it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import resource
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from repogen.errors import ConfigError
from repogen.verify.inputs import random_array
from repogen.ir import ModelSource
from repogen.reference.predictor import make_predictor, run_predictor, source_of
from repogen.reference.runner import default_memory_mb

# ops that make the model's input size independent of (or only bounded by) the source size
SIZING_OPS = {"det_resize", "resize_short", "center_crop", "rec_resize", "fluid_resize", "topdown_affine",
              "cls_resize"}
MEASURE_SIDES = (128, 256)  # the two square sizes the cost is measured at (a few seconds even for big networks)
SAFETY = 1.5  # the served predictor (IR passes, oneDNN, other sizes) may need more than the measuring one
MEASURE_TIMEOUT_S = 120.0


@dataclass
class PixelCost:
    """What the model's peak memory is, as base + per_pixel * (input height x width), measured at batch 1."""

    base_bytes: int
    per_pixel: float
    sides: tuple[int, int]


def image_layout(transforms: list[dict]) -> str:
    return "chw" if any(t["op"] == "to_chw" for t in transforms) else "hwc"


def fixed_size(transforms: list[dict]) -> bool:
    """True when the transforms give the model one image size whatever the source's (the last sizing op decides)."""
    fixed = False
    for t in transforms:
        if t["op"] == "resize" and t.get("target_wh"):
            fixed = not t.get("keep_ratio")
        elif t["op"] in ("center_crop", "topdown_affine", "cls_resize"):  # a keypoint crop is warped to trainsize; the
            # direction classifier always gets its one size
            fixed = True
        elif t["op"] == "fluid_resize":
            # PaddleDetection 0.x: target_size square (YOLO), max_size square (padded), or at most
            # max(target_size, max_size) a side (R-CNN): bounded by the config, so a per-request budget has
            # nothing to refuse that the build did not already admit
            fixed = True
        elif t["op"] == "det_resize":
            fixed = t.get("input_shape") is not None or (t.get("image_shape") is not None and not t.get("keep_ratio"))
        elif t["op"] in SIZING_OPS:
            fixed = False
    return fixed


def source_sized(transforms: list[dict]) -> bool:
    """True when the model gets the decoded image at its own size (a stride padding aside)."""
    for t in transforms:
        if t["op"] in SIZING_OPS or (t["op"] == "resize" and t.get("target_wh")):
            return False
    return True


def default_instance_memory_mb(instances: int) -> int:
    """Half of this machine's memory, shared by the model's instances."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return max(1, int(total / 2 / max(1, instances)) >> 20)


def _spatial(shape: list[int], layout: str) -> tuple[int, int]:
    return (int(shape[2]), int(shape[3])) if layout == "chw" else (int(shape[1]), int(shape[2]))


def _status_kb(pid: int | str, key: str) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise OSError(f"/proc/{pid}/status has no {key}")


def _feeds(inputs: list[Any], roles: dict[str, str], layout: str, channels: int, side: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(side)
    feeds = {}
    for t in inputs:
        role = roles[t.name]
        if role == "image":
            shape = (1, channels, side, side) if layout == "chw" else (1, side, side, channels)
            feeds[t.name] = random_array(rng, np.float32, shape)
        elif role == "im_shape":
            feeds[t.name] = np.array([[side, side]], np.float32)
        else:  # scale_factor
            feeds[t.name] = np.ones((1, 2), np.float32)
    return feeds


def measure_pixel_cost(source: Any, inputs: list[Any], roles: dict[str, str], layout: str, channels: int,
                       sides: tuple[int, int] = MEASURE_SIDES, timeout: float = MEASURE_TIMEOUT_S) -> PixelCost:
    """Run Paddle on ``sides`` (small, then larger) square images in a fresh child process and fit its peak RSS.

    A fresh process, not the reference runner's reusable child: memory a previous model left in the allocator's
    cache would be reused and read as free. Raises ConfigError naming the model when the child fails."""
    src = source_of(source)
    job = {"format": src.format, "model_file": str(src.model_file),
           "params_file": str(src.params_file) if src.params_file else None, "layout": layout, "channels": channels,
           "sides": list(sides), "inputs": [[t.name, roles[t.name]] for t in inputs]}
    root = str(Path(__file__).resolve().parents[2])  # the folder holding the repogen package
    env = dict(os.environ, GLOG_minloglevel="2",
               PYTHONPATH=os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p))
    cap = default_memory_mb() << 20
    try:
        proc = subprocess.run([sys.executable, "-m", "repogen.build.budget", json.dumps(job), str(cap)],
                              capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        raise ConfigError(f"{src.model_file}: measuring the memory per input pixel took over {timeout:g} s") from None
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines or not lines[-1].startswith("{"):
        tail = " ".join(proc.stderr.strip().splitlines()[-3:])[-400:]
        raise ConfigError(f"{src.model_file}: Paddle could not run the model to measure its memory per input pixel "
                          f"(exit status {proc.returncode}): {tail}")
    peaks = json.loads(lines[-1])["peaks"]
    small, large = sides[0] ** 2, sides[1] ** 2
    # at least the input tensor itself per pixel: a run too small to move the peak must not read as free
    per_pixel = max((peaks[1] - peaks[0]) / (large - small), 4.0 * channels)
    return PixelCost(base_bytes=int(max(peaks[0] - per_pixel * small, 0)), per_pixel=per_pixel, sides=sides)


def _child(job: dict[str, Any], cap: int) -> dict[str, Any]:
    """In the measuring process: load, run once to warm up, then per side reset the peak RSS, run, read it."""
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    predictor = make_predictor(ModelSource(job["format"], Path(job["model_file"]),
                                           Path(job["params_file"]) if job["params_file"] else None))
    inputs = [SimpleNamespace(name=n) for n, _ in job["inputs"]]
    roles = dict(job["inputs"])
    sides = job["sides"]

    def run(side: int) -> None:
        run_predictor(predictor, _feeds(inputs, roles, job["layout"], job["channels"], side))

    run(sides[0])
    peaks = []
    for side in sides:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")  # resets the peak (VmHWM) to the current RSS
        run(side)
        peaks.append(_status_kb("self", "VmHWM") << 10)
    return {"peaks": peaks}


def _image_input(engine: Any, roles: dict[str, str]) -> Any | None:
    images = [t for t in engine.inputs if roles.get(t.name) == "image"]
    return images[0] if len(images) == 1 else None


def _profile_max_pixels(engine: Any, name: str, layout: str) -> int | None:
    sizes = [_spatial(p[name][2], layout) for p in engine.profiles if name in p and len(p[name][2]) == 4]
    return max(h * w for h, w in sizes) if sizes else None


def pixel_budget(spec: Any, cfg: Any, engine: Any, max_batch_size: int, roles: dict[str, str], target: str | None,
                 instances: int) -> dict[str, Any] | None:
    """The ``budget`` entry of pipeline.json, or None when the model's image size is fixed (nothing to bound).

    ``target`` is the built target (tensorrt: the profile bounds it; paddle, numpy and unknown: measured)."""
    image = _image_input(engine, roles)
    if image is None or len(image.shape) != 4:
        return None
    layout = image_layout(cfg.transforms)
    if all(d > 0 for d in _spatial(image.shape, layout)) or fixed_size(cfg.transforms):
        return None  # a fixed-size input costs the same for every request
    budget: dict[str, Any] = {"layout": layout, "source_size": source_sized(cfg.transforms),
                              "stride": next((int(t["stride"]) for t in cfg.transforms if t["op"] == "pad_stride"), 1)}
    if target == "tensorrt":
        most = _profile_max_pixels(engine, image.name, layout)
        if most is None:
            return None
        return {**budget, "max_pixels": most, "why": "the TensorRT profile's largest image"}
    memory_mb = getattr(spec, "instance_memory_mb", None) or default_instance_memory_mb(instances)
    db = getattr(spec, "dynamic_batching", None)
    batch = max_batch_size if max_batch_size > 0 and not (db is not None and not db.enabled) else 1
    channels = int(image.shape[1] if layout == "chw" else image.shape[3])
    channels = channels if channels > 0 else 3
    lo, hi = _measure_range(engine, image.name, layout)
    small = max(lo, min(MEASURE_SIDES[0], hi))
    sides = (small, min(hi, max(2 * small, MEASURE_SIDES[1])))
    if sides[1] <= sides[0]:
        return None  # the profile leaves no room: the size is as good as fixed
    if importlib.util.find_spec("paddle") is None:
        return None  # nothing to measure with (a build for another machine); docs/pipelines.md says so
    cost = measure_pixel_cost(Path(spec.source), engine.inputs, roles, layout, channels, sides)
    left = (memory_mb << 20) - cost.base_bytes
    if left <= 0:
        raise ConfigError(f"{spec.name}: instance_memory_mb {memory_mb} is below what the model needs for a tiny "
                          f"image ({cost.base_bytes >> 20} MiB measured with Paddle); give it more memory")
    most = int(left / (cost.per_pixel * SAFETY * batch))
    return {**budget, "max_pixels": most, "instance_memory_mb": memory_mb, "bytes_per_pixel": round(cost.per_pixel, 1),
            "base_mb": cost.base_bytes >> 20, "batch": batch,
            "why": f"instance memory {memory_mb} MiB; the model needs {cost.base_bytes >> 20} MiB plus "
                   f"{cost.per_pixel:.0f} bytes per input pixel (measured), x{SAFETY} margin, in batches of up to "
                   f"{batch}: rebuild with a larger --instance-memory-mb or a smaller --max-batch-size"}


def _measure_range(engine: Any, name: str, layout: str) -> tuple[int, int]:
    """The smallest and largest square side the profiles admit for the image input (32 .. 4096 without them)."""
    lo, hi = 32, 4096
    for p in engine.profiles:
        if name in p and len(p[name][0]) == 4 and len(p[name][2]) == 4:
            lo = max(lo, *_spatial(p[name][0], layout))
            hi = min(hi, *_spatial(p[name][2], layout))
    return lo, hi


if __name__ == "__main__":  # the measuring child: argv = the job (JSON), the address-space cap in bytes
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # Paddle's prints must not mix with the answer
    out.write(json.dumps(_child(json.loads(sys.argv[1]), int(sys.argv[2]))) + "\n")
    out.flush()
