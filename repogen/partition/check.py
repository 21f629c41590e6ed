"""The numeric check of a partitioned model: the regions as they will run (TensorRT regions on the NumPy
backend, the remainder with Paddle), chained, against Paddle Inference on the whole model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from repogen.partition.plan import Partition, run_regions, sample_feeds
from repogen.reference import reference_outputs  # Paddle in the runner's child: its timeout and memory cap
from repogen.trt.check import align_detection_rows, as_detection_set, compare, detection_outputs

TOLERANCE = {"fp32": 1e-5, "fp16": 1e-2}


def check_partition(part: Partition, source: str | Path, profiles: list[dict], precision: str = "fp32",
                    feeds: dict[str, np.ndarray] | None = None, seed: int = 0) -> dict[str, Any]:
    """{"status": "passed"|"failed", "outputs": {name: {rel_err, tolerance, passed}}, "input_shapes"} at the
    first profile's opt shapes (or ``feeds``). Detection outputs (from an NMS op) compare as sets of rows,
    each Paddle row paired with the closest row of its label."""
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
            if detections[name] == "rows":  # near-equal scores may sort apart: pair rows as check/validate do
                got = align_detection_rows(got, want)
        r = compare(got, want, tol, name)
        outputs[name] = {"rel_err": float(r.rel_err), "tolerance": float(r.tolerance), "passed": bool(r.passed)}
        ok = ok and r.passed
    return {"status": "passed" if ok else "failed", "outputs": outputs,
            "input_shapes": {n: list(np.shape(feeds[n])) for n in g.inputs}}


def check_partitioned_model(model: str | Path, *, shape: list[str] = (), min_shapes: list[str] = (),
                            opt_shapes: list[str] = (), max_shapes: list[str] = (), precision: str = "fp32",
                            feeds: dict[str, np.ndarray] | None = None, seed: int = 0) -> dict[str, Any]:
    """``repogen check --partition``: what a partitioned build would deploy, against Paddle; check_partition's
    result plus "partition" (the partition's summary)."""
    from repogen.paddle import load_model
    from repogen.partition.plan import partition_graph
    from repogen.trt.passes import clean_graph
    from repogen.trt.profiles import make_profiles

    graph = load_model(model)
    objs = make_profiles(graph.input_values(), shape=list(shape), min_shapes=list(min_shapes),
                         opt_shapes=list(opt_shapes), max_shapes=list(max_shapes))
    profiles = [{n: tuple(tuple(int(d) for d in s) for s in rng) for n, rng in p.shapes.items()} for p in objs]
    part = partition_graph(clean_graph(graph), profiles, precision)
    result = check_partition(part, model, profiles, precision, feeds=feeds, seed=seed)
    result["partition"] = part.summary()
    return result
