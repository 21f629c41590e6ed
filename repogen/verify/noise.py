"""The noise floor of a converted network: how far its float32 run is from a float64 run of the same network.

A deep trained network can be ill-conditioned: PP-OCRv4's text detector at 640x640 on uniform inputs moves
by 2.3e-5 (relative L2) between float32 and float64, more than the 1e-5 that a whole-tensor rule allowed,
so Paddle's own float32 result is no closer to the exact one than that. The converted network is run twice
on the NumPy backend (``numpy_trt.execute(..., float64=True)`` keeps every FLOAT tensor in float64; the
weights are the same float32 values), and the distance is that network's own rounding noise.

Why the converted network and not Paddle: a float64 run built by the same converters carries a converter's
mistake too, so "as close to float64 as Paddle is" would let a wrong conversion pass (Paddle is then far
from that float64 run, and the wrong float32 run close to it). The rounding noise of the converted network
does not grow with a wrong converter, so an error against Paddle far beyond it stays an error; Paddle's own
distance from the float64 run is reported beside it (``OutputVerdict.paddle_to_float64``): when the
conversion is right, the two are of one size (docs/precision.md has the numbers).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np


@dataclass
class NoiseFloor:
    """One output's float32-vs-float64 distance on the converted network (relative L2 and max abs), with the
    float64 result (not serialized) so that compare can report Paddle's own distance from it."""

    rel_l2: float
    max_abs: float
    float64: np.ndarray = field(repr=False)

    def to_dict(self) -> dict:
        return {"rel_l2": self.rel_l2, "max_abs": self.max_abs}


def distance(a: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    """(relative L2, max abs) of a against ref over the positions where both are finite."""
    a64, r64 = np.asarray(a, np.float64), np.asarray(ref, np.float64)
    ok = np.isfinite(a64) & np.isfinite(r64)
    d = np.where(ok, a64 - r64, 0.0)
    max_abs = float(np.abs(d).max(initial=0.0))
    norm = float(np.linalg.norm(np.where(ok, r64, 0.0)))
    return (float(np.linalg.norm(d)) / norm if norm > 0 else max_abs), max_abs


def noise_floors(network: Any, feeds: Mapping[str, np.ndarray],
                 fp32_outputs: Mapping[str, np.ndarray] | None = None) -> dict[str, NoiseFloor]:
    """Float outputs of an fp32 NumPy-backend network (repogen.trt.numpy_trt) -> NoiseFloor, keyed by the
    network's output names. ``fp32_outputs``: the float32 run of this same network on ``feeds`` when the caller
    has it already (``repogen check`` does), else it is run here.

    Only ever the same network's own float32 run: the distance of another engine's outputs (a plan, an fp16
    network) from this float64 run would contain that engine's mistakes and excuse them. To judge a plan or a
    served model at fp32, use this network's floor (``graph_noise_floors``) and compare the plan with Paddle."""
    from repogen.trt import numpy_trt

    runs = dict(fp32_outputs) if fp32_outputs is not None else numpy_trt.execute(network, dict(feeds))
    f64 = numpy_trt.execute(network, dict(feeds), float64=True)
    floors = {}
    for name, exact in f64.items():
        if exact.dtype.kind != "f" or name not in runs or np.shape(runs[name]) != exact.shape:
            continue  # integer outputs are compared exactly; data-dependent shapes have no elementwise floor
        floors[name] = NoiseFloor(*distance(runs[name], exact), exact)
    return floors


def graph_noise_floors(graph: Any, feeds: Mapping[str, np.ndarray]) -> dict[str, NoiseFloor]:
    """noise_floors for a cleaned graph (repogen.trt.passes.clean_graph), converted here at fp32, keyed by the
    graph's output names: for callers that judge another engine at fp32 (a plan, a served model, partition
    regions) and have no fp32 NumPy network of their own."""
    from repogen.trt import numpy_trt
    from repogen.trt.convert import convert_graph
    from repogen.trt.profiles import Profile

    profile = Profile({n: (tuple(np.shape(a)),) * 3 for n, a in feeds.items()})
    conv = convert_graph(graph, numpy_trt, precision="fp32", profiles=[profile], clean=False)
    floors = noise_floors(conv.network, feeds)
    return {graph.outputs[i]: floors[e] for i, (e, _, _) in enumerate(conv.outputs) if e in floors}


__all__ = ["NoiseFloor", "distance", "noise_floors", "graph_noise_floors"]
