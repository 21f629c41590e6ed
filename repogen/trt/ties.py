"""Tie-aware comparison of integer outputs that pick an index by score: argmax / argmin label maps and top-k
indices (``repogen check`` and ``repogen validate``).

Two scores within the tolerance of each other are a tie: Paddle and TensorRT may each pick either index
(a segmentation pixel whose two best classes differ by 1e-7, FP16 scores that round to one value). Such an
output matches when, at every position where the indices differ, the score of the index we picked is within
``tol * max |score|`` (over the reduced axis) of the score of Paddle's index. The scores are the pre-argmax
tensor, taken as an extra output of a NumPy-backend network of the same graph; positions that were ties
are counted and reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from repogen.ir import Graph


@dataclass(frozen=True)
class TieSource:
    """Where an integer output's indices come from."""

    kind: str  # "arg" (argmax / argmin) or "topk"
    scores: str  # graph value holding the scores the index was picked from
    axis: int | None  # None: over the flattened scores
    keepdim: bool = False


def tie_sources(graph: Graph, outputs: Sequence[str] | None = None) -> dict[str, TieSource]:
    """Graph outputs (default: all) produced by argmax / argmin / topk's indices, through assign and cast."""
    producer = {n: op for op in graph.ops for names in op.outputs.values() for n in names}
    found = {}
    for name in graph.outputs if outputs is None else outputs:
        source = name
        while source in producer and producer[source].type in ("assign", "cast"):
            source = producer[source].input("x")
        op = producer.get(source)
        if op is None:
            continue
        scores = op.input("x")
        if op.type in ("argmax", "argmin"):
            axis = op.attrs.get("axis")
            c = graph.const(op.input("axis")) if op.input("axis") is not None else None
            if c is not None:
                axis = int(np.asarray(c).reshape(-1)[0])
            flat = bool(op.attrs.get("flatten", False))
            if axis is None and not flat:
                continue  # an axis known only at run time: compared exactly
            keep = bool(op.attrs.get("keepdims", op.attrs.get("keepdim", False)))
            found[name] = TieSource("arg", scores, None if flat else int(axis), keep)
        elif op.type == "topk" and source in (op.outputs.get("indices") or []):
            found[name] = TieSource("topk", scores, int(op.attrs.get("axis", -1)), True)
    return found


def compare_ties(got: np.ndarray, want: np.ndarray, scores: np.ndarray, src: TieSource,
                 tol: float) -> tuple[bool, int, str]:
    """(ok, positions that differ but are ties, problem). ``scores``: the tensor the indices were picked from."""
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:
        return False, 0, f"shape {list(got.shape)} != expected {list(want.shape)}"
    s = np.asarray(scores, dtype=np.float64)
    axis = src.axis
    if axis is None:
        s, axis = s.reshape(-1), 0
    axis = axis + s.ndim if axis < 0 else axis
    if not 0 <= axis < max(s.ndim, 1):
        return False, 0, f"axis {src.axis} outside the scores' rank {s.ndim}"
    g, w = got.astype(np.int64), want.astype(np.int64)
    if src.axis is None:  # one index into the flattened scores
        g, w = g.reshape(1), w.reshape(1)
    elif src.kind == "arg" and not src.keepdim:
        g, w = np.expand_dims(g, axis), np.expand_dims(w, axis)
    n = s.shape[axis] if s.ndim else 1
    expect_shape = s.shape[:axis] + (g.shape[axis],) + s.shape[axis + 1:]
    if g.shape != expect_shape:
        return False, 0, f"indices {list(got.shape)} do not fit scores {list(s.shape)} along axis {axis}"
    if ((g < 0) | (g >= n) | (w < 0) | (w >= n)).any():
        return False, 0, f"index outside [0, {n})"
    differ = g != w
    if not differ.any():
        return True, 0, ""
    sg, sw = np.take_along_axis(s, g, axis), np.take_along_axis(s, w, axis)
    scale = np.max(np.abs(s), axis=axis, keepdims=True)
    tie = differ & np.isfinite(sg) & np.isfinite(sw) & (np.abs(sg - sw) <= tol * scale)
    ties, bad = int(tie.sum()), int((differ & ~tie).sum())
    if bad:
        return False, ties, f"{bad} index(es) differ beyond a tie (scores apart by more than {tol:g} x max |score|)"
    return True, ties, ""


def with_outputs(graph: Graph, extra: Sequence[str]) -> Graph:
    """The same graph fetching ``extra`` values too (appended after its own outputs)."""
    add = [n for n in dict.fromkeys(extra) if n not in graph.outputs]
    return Graph(graph.source, graph.blocks, list(graph.inputs), list(graph.outputs) + add, graph.params)


def network_scores(graph: Graph, feeds: Mapping[str, np.ndarray], names: Sequence[str],
                   precision: str = "fp32") -> dict[str, np.ndarray]:
    """The values ``names`` of a cleaned graph on ``feeds`` (NumPy backend), for tie decisions in validate."""
    from repogen.trt import numpy_trt
    from repogen.trt.convert import convert_graph
    from repogen.trt.profiles import Profile

    g = with_outputs(graph, names)
    profile = Profile({n: (tuple(np.shape(a)),) * 3 for n, a in feeds.items()})
    conv = convert_graph(g, numpy_trt, precision="fp16" if precision == "fp16" else "fp32", profiles=[profile],
                         clean=False)
    out = numpy_trt.execute(conv.network, dict(feeds))
    engine = {v: conv.outputs[i][0] for i, v in enumerate(g.outputs)}
    return {n: out[engine[n]] for n in names}




class TieScorer:
    """validate's view: the scores behind a served model's index outputs, from a NumPy-backend FP32 network of
    the source model (the served engine does not output them). Names are Triton's; ``in_names`` /
    ``out_names`` map them to Paddle's (harness.reference.PaddleReference)."""

    def __init__(self, source: object, in_names: Mapping[str, str], out_names: Mapping[str, str]):
        from repogen.paddle import load_model
        from repogen.trt.passes import clean_graph

        self.graph = clean_graph(load_model(source.model_file, source.params_file))
        found = tie_sources(self.graph)
        self.sources = {t: found[p] for t, p in out_names.items() if p in found}
        self.in_names = dict(in_names)
        self._cache: dict[int, dict[str, np.ndarray]] = {}

    def check(self, name: str, feeds: Mapping[str, np.ndarray], got: np.ndarray, want: np.ndarray,
              tol: float) -> tuple[bool, int, str] | None:
        """compare_ties for Triton output ``name`` on ``feeds``; None when it is not an index output."""
        src = self.sources.get(name)
        if src is None or np.asarray(want).dtype.kind not in "iu":
            return None
        key = id(feeds)
        if key not in self._cache:
            paddle_feeds = {p: np.asarray(feeds[t]) for t, p in self.in_names.items()}
            names = sorted({s.scores for s in self.sources.values()})
            self._cache[key] = network_scores(self.graph, paddle_feeds, names)
        return compare_ties(got, want, self._cache[key][src.scores], src, tol)


__all__ = ["TieScorer", "TieSource", "tie_sources", "compare_ties", "with_outputs", "network_scores"]
