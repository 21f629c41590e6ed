"""The numeric check of a partitioned model: the regions as they will run (TensorRT regions on the NumPy
backend, the remainder with Paddle), chained, against Paddle Inference on the whole model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from repogen.partition.plan import Partition, run_regions, sample_feeds
from repogen.reference import reference_outputs  # Paddle in the runner's child: its timeout and memory cap
from repogen.verify.compare import compare
from repogen.verify.detections import detection_outputs
from repogen.verify.tolerances import is_prequantized, rule_for


def check_partition(part: Partition, source: str | Path, profiles: list[dict], precision: str = "fp32",
                    feeds: dict[str, np.ndarray] | None = None, seed: int = 0) -> dict[str, Any]:
    """{"status": "passed"|"failed", "outputs": {name: verdict}, "input_shapes"} at the first profile's opt shapes
    (or ``feeds``), judged by the verification core (repogen.verify): detection outputs (from an NMS op) as
    sets of rows. The partitioned model holds ops no converter takes, so there is no whole-model fp32 network
    to measure a noise floor or an fp32 twin on: the elementwise criteria decide."""
    g = part.cleaned
    if feeds is None:
        feeds = sample_feeds(g, {n: tuple(rng[1]) for n, rng in profiles[0].items()} if profiles else {}, seed)
    env, _ = run_regions(g, part.regions, feeds)
    reference = reference_outputs(source, {n: feeds[n] for n in g.inputs})
    by_pos = list(reference.values())
    detections = detection_outputs(g)
    rule = rule_for(precision, is_prequantized(g))
    outputs, ok = {}, True
    for i, name in enumerate(g.outputs):
        want = reference.get(name, by_pos[i] if len(by_pos) == len(g.outputs) else None)
        verdict = compare(env[name], want, rule, name=name, detection=detections.get(name))
        outputs[name] = {"passed": verdict.passed, "criterion": verdict.criterion, "reason": verdict.reason,
                         "rel_l2": verdict.rel_l2, "max_abs": verdict.max_abs}
        ok = ok and verdict.passed
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
