"""The numeric check of a partitioned model: the regions as they will run (TensorRT regions on the NumPy
backend, the remainder with Paddle), chained, against Paddle Inference on the whole model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from repogen.partition.plan import Partition, run_regions, sample_feeds

TOLERANCE = {"fp32": 1e-5, "fp16": 1e-2}


def check_partition(part: Partition, source: str | Path, profiles: list[dict], precision: str = "fp32",
                    feeds: dict[str, np.ndarray] | None = None, seed: int = 0) -> dict[str, Any]:
    """{"status": "passed"|"failed", "outputs": {name: {rel_err, tolerance, passed}}, "input_shapes"} at the
    first profile's opt shapes (or ``feeds``). Detection outputs (from an NMS op) compare as sets of rows."""
    from repogen.trt.check import as_detection_set, compare, detection_outputs
    from repogen.zoo import reference_outputs

    g = part.cleaned
    if feeds is None:
        feeds = sample_feeds(g, {n: tuple(rng[1]) for n, rng in profiles[0].items()} if profiles else {}, seed)
    env, _ = run_regions(g, part.regions, feeds)
    reference = reference_outputs(source, {n: feeds[n] for n in g.inputs})
    by_pos = list(reference.values())
    detections = detection_outputs(g)
    tol = TOLERANCE.get(precision, 1e-5)
    outputs, ok = {}, True
    for i, name in enumerate(g.outputs):
        want = reference.get(name, by_pos[i] if len(by_pos) == len(g.outputs) else None)
        got = env[name]
        if name in detections:
            got, want = as_detection_set(got, detections[name]), as_detection_set(want, detections[name])
        r = compare(got, want, tol, name)
        outputs[name] = {"rel_err": float(r.rel_err), "tolerance": float(r.tolerance), "passed": bool(r.passed)}
        ok = ok and r.passed
    return {"status": "passed" if ok else "failed", "outputs": outputs,
            "input_shapes": {n: list(np.shape(feeds[n])) for n in g.inputs}}
