"""Tie-aware comparison of what a network selects by score: argmax / argmin label maps, top-k / argsort indices,
rows gathered through those indices (RT-DETR's post-processing: 300 of thousands of query-class pairs whose
scores lie within 1e-4 of each other), and values computed from the indices (keypoint coordinates from an
argmax over a flattened heatmap).

Two candidates whose scores lie within ``tol * max|score|`` of each other are a tie: Paddle and the converted
network may each pick either (a segmentation pixel whose two best classes differ by 1e-7, FP16 scores that
round to one value). The scores are the tensor the index was picked from, taken as an extra output of a
NumPy-backend network of the same graph (``with_outputs`` / ``network_scores``).

* index outputs (``kind`` "arg" / "topk"): at every position where the indices differ, the score of our index
  must be within the tolerance of the score of Paddle's (``compare_ties``);
* gathered rows (``kind`` "gather"): rows are paired by value, in any order; a row of one side that pairs with
  no row of the other is a tie only if its score is within the tolerance of the cut, the lowest selected score
  (``compare_gathered_rows``): a different but equally valid selection passes, a wrong box does not;
* derived values (``kind`` "derived", e.g. ``idx % W``): Paddle's index is not observable, so a differing
  position passes only where our scores make the choice ambiguous there (``compare_derived``).

Positions or rows that differ but are ties are counted and reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from repogen.ir import Graph

# ops that keep an index value's meaning (a cast, a copy, an added unit axis, a broadcast)
_INDEX_KEEPING = ("assign", "cast", "unsqueeze", "unsqueeze2", "expand", "expand_v2", "expand_as", "tile",
                  "reshape", "reshape2", "squeeze", "squeeze2", "flatten")
# ops that derive a value from indices position by position (coordinates from a flat index)
_INDEX_DERIVING = ("floor_divide", "remainder", "scale", "add", "subtract", "multiply", "divide", "floor",
                   "elementwise_floordiv", "elementwise_mod", "elementwise_add", "elementwise_mul",
                   "elementwise_sub", "elementwise_div", "stack", "concat")
_GATHERS = {"take_along_axis": ("arr", "indices"), "gather": ("x", "index"), "index_select": ("x", "index")}
# ops between a gather and an output that keep rows apart (each output row depends on one gathered row)
_ROW_KEEPING = ("assign", "cast", "scale", "sigmoid", "clip", "relu")


@dataclass(frozen=True)
class TieSource:
    """Where an output's selection comes from.

    kind: "arg" (argmax / argmin indices), "topk" (top-k / argsort indices), "gather" (rows gathered by top-k
    indices), "derived" (values computed from arg / top-k indices). scores: the graph value holding the scores
    the selection was made from. axis: the reduced axis (None: over the flattened scores). keepdim: the index
    output keeps the reduced axis. values: for "gather" / "derived" from top-k, the graph value of the
    selected scores (the top-k values), fetched from the converted network. largest: top-k keeps the largest.
    """

    kind: str
    scores: str
    axis: int | None
    keepdim: bool = False
    values: str | None = None
    largest: bool = True
    base: str = "arg"  # for "derived": the kind of the index it derives from ("arg" or "topk")
    candidates: str | None = None  # for "gather": the rows gathered from, where the output is them unchanged


def _producers(graph: Graph) -> dict[str, Any]:
    return {n: op for op in graph.ops for names in op.outputs.values() for n in names}


def _trace(name: str, producer: Mapping[str, Any], through: Sequence[str]) -> str:
    while name in producer and producer[name].type in through:
        op = producer[name]
        nxt = op.input("x") or op.input("input")
        if nxt is None:
            break
        name = nxt
    return name


def _index_source(graph: Graph, producer: Mapping[str, Any], source: str) -> TieSource | None:
    """The arg / topk TieSource of an index value produced directly by argmax / argmin / topk / argsort."""
    op = producer.get(source)
    if op is None:
        return None
    if op.type in ("argmax", "argmin"):
        axis = op.attrs.get("axis")
        c = graph.const(op.input("axis")) if op.input("axis") is not None else None
        if c is not None:
            axis = int(np.asarray(c).reshape(-1)[0])
        flat = bool(op.attrs.get("flatten", False))
        if axis is None and not flat:
            return None  # an axis known only at run time: compared exactly
        keep = bool(op.attrs.get("keepdims", op.attrs.get("keepdim", False)))
        return TieSource("arg", op.input("x"), None if flat else int(axis), keep, largest=op.type == "argmax")
    if op.type in ("topk", "argsort") and source in (op.outputs.get("indices") or []):
        largest = bool(op.attrs.get("largest", True)) if op.type == "topk" else bool(op.attrs.get("descending", False))
        values = op.output("out")
        return TieSource("topk", op.input("x"), int(op.attrs.get("axis", -1)), True, values, largest)
    return None


def tie_sources(graph: Graph, outputs: Sequence[str] | None = None) -> dict[str, TieSource]:
    """Graph outputs (default: all) whose values are selected by score: index outputs of argmax / argmin /
    topk / argsort (through assign and cast), rows gathered by top-k indices, and values derived from such
    indices position by position."""
    producer = _producers(graph)
    found = {}
    for name in graph.outputs if outputs is None else outputs:
        direct = _index_source(graph, producer, _trace(name, producer, ("assign", "cast")))
        if direct is not None:
            found[name] = direct
            continue
        row_source = _trace(name, producer, _ROW_KEEPING)
        op = producer.get(row_source)
        if op is not None and op.type in _GATHERS:
            # RT-DETR's post-processing gathers boxes by ``topk index // classes``: the row of rank r still
            # belongs to the r-th selected score, so derived indices count as well
            index = _trace(op.input(_GATHERS[op.type][1]), producer, _INDEX_KEEPING + _INDEX_DERIVING)
            src = _index_source(graph, producer, index)
            if src is not None and src.kind == "topk":
                plain = _trace(name, producer, ("assign", "cast")) == row_source
                pool = op.input(_GATHERS[op.type][0]) if plain else None
                found[name] = TieSource("gather", src.scores, src.axis, True, src.values, src.largest,
                                        candidates=pool)
            continue
        derived = _trace(name, producer, _INDEX_KEEPING + _INDEX_DERIVING)
        src = _index_source(graph, producer, derived)
        if src is not None and derived != name:
            found[name] = TieSource("derived", src.scores, src.axis, src.keepdim, src.values, src.largest, src.kind)
    return found


def _along(s: np.ndarray, axis: int | None) -> tuple[np.ndarray, int]:
    if axis is None:
        return s.reshape(-1), 0
    return s, axis + s.ndim if axis < 0 else axis


def compare_ties(got: np.ndarray, want: np.ndarray, scores: np.ndarray, src: TieSource,
                 tol: float) -> tuple[bool, int, str]:
    """(ok, positions that differ but are ties, problem) for an index output ("arg" / "topk").
    ``scores``: the tensor the indices were picked from (our network's)."""
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:
        return False, 0, f"shape {list(got.shape)} != expected {list(want.shape)}"
    s, axis = _along(np.asarray(scores, dtype=np.float64), src.axis)
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


def ambiguous_positions(scores: np.ndarray, src: TieSource, tol: float,
                        values: np.ndarray | None = None) -> np.ndarray:
    """Where our scores leave the selection open, shaped like an index output of ``src``: for an argmax, the
    two best candidates within ``tol * max|score|``; for a top-k rank, its score within the tolerance of a
    neighbouring rank's or of the cut (``values``: our selected scores, sorted as top-k returns them)."""
    s, axis = _along(np.asarray(scores, dtype=np.float64), src.axis)
    if src.base == "topk" and values is not None:
        sm = np.moveaxis(s, axis, -1)
        vm = np.moveaxis(np.asarray(values, dtype=np.float64), axis, -1)
        limit = tol * np.abs(sm).max(axis=-1, keepdims=True)
        step = np.abs(np.diff(vm, axis=-1)) <= limit
        m = np.abs(vm - vm[..., -1:]) <= limit  # a candidate at the cut may be swapped for an unselected one
        m[..., 1:] |= step  # two neighbouring ranks may swap places
        m[..., :-1] |= step
        return np.moveaxis(m, -1, axis)
    ordered = np.sort(s, axis=axis)
    lo, hi = np.take(ordered, [-2], axis=axis), np.take(ordered, [-1], axis=axis)
    if not src.largest:
        lo, hi = np.take(ordered, [1], axis=axis), np.take(ordered, [0], axis=axis)
    scale = np.max(np.abs(s), axis=axis, keepdims=True)
    amb = np.abs(hi - lo) <= tol * scale
    if src.axis is None:
        return amb.reshape(())
    return amb if src.keepdim else np.squeeze(amb, axis)


def compare_derived(got: np.ndarray, want: np.ndarray, scores: np.ndarray, src: TieSource, tol: float,
                    values: np.ndarray | None = None) -> tuple[bool, int, str]:
    """(ok, ties, problem) for values computed position by position from indices (``kind`` "derived"): where
    got and want differ, our scores must make the selection ambiguous at that position (broadcast over the
    trailing axes a derivation such as ``stack([idx % W, idx // W], -1)`` adds)."""
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:
        return False, 0, f"shape {list(got.shape)} != expected {list(want.shape)}"
    differ = got != want
    if got.dtype.kind == "f":
        differ &= ~(np.isnan(got) & np.isnan(want))
    if not differ.any():
        return True, 0, ""
    amb = ambiguous_positions(scores, src, tol, values)
    while amb.ndim < differ.ndim:
        amb = amb[..., None]
    try:
        amb = np.broadcast_to(amb, differ.shape)
    except ValueError:
        return False, 0, f"selection of shape {list(amb.shape)} does not fit output {list(got.shape)}"
    tie = differ & amb
    ties, bad = int(tie.sum()), int((differ & ~amb).sum())
    if bad:
        return False, ties, f"{bad} value(s) differ where the scores leave no tie (>{tol:g} x max |score| apart)"
    return True, ties, ""


@dataclass
class GatheredRows:
    """compare_gathered_rows' answer: ``aligned``: got's rows in want's order; ``swapped``: want's rows (as a
    mask over the leading and row axes) that pair with no row of got but are ties at the cut."""

    ok: bool
    ties: int
    problem: str
    aligned: np.ndarray
    swapped: np.ndarray


def compare_gathered_rows(got: np.ndarray, want: np.ndarray, got_scores: np.ndarray, axis: int, tol: float,
                          bound: Any, *, want_scores: np.ndarray | None = None, largest: bool = True,
                          candidates: np.ndarray | None = None) -> GatheredRows:
    """Rows selected by top-k and gathered (``axis``: the row axis; axes before it are batch axes): each of
    want's rows pairs with the unused row of got nearest to it; a pair counts when every element is within
    ``bound(got_row, want_row)`` (a boolean array: repogen.verify.compare's elementwise bound, loosened).
    Unpaired rows of got must have a score (``got_scores``: our top-k values, [batch..., K]) within ``tol *
    max|score|`` of the cut (our lowest selected score); so must unpaired rows of want, where Paddle's own
    selected scores are known (``want_scores``, e.g. the model also outputs them). ``candidates``: the rows
    selected from ([batch..., N, row...], our network's): every unpaired row of either side must be one of them
    (a swapped row is another valid candidate, never a new box)."""
    got, want = np.asarray(got), np.asarray(want)
    gs = np.asarray(got_scores, dtype=np.float64)
    if got.shape != want.shape:
        return GatheredRows(False, 0, f"shape {list(got.shape)} != expected {list(want.shape)}", got,
                            np.zeros(0, bool))
    axis = axis + got.ndim if axis < 0 else axis
    lead = got.shape[:axis]
    k = got.shape[axis]
    g = got.reshape((-1, k, int(np.prod(got.shape[axis + 1:], dtype=np.int64))))
    w = want.reshape(g.shape)
    try:
        gs = np.broadcast_to(gs.reshape((-1, gs.shape[-1]) if gs.ndim else (1, 1)), (g.shape[0], k))
        ws = None if want_scores is None else np.broadcast_to(
            np.asarray(want_scores, np.float64).reshape(-1, k), (g.shape[0], k))
    except ValueError:
        return GatheredRows(False, 0, f"selected scores {list(np.shape(got_scores))} do not fit rows "
                            f"{list(got.shape)} along axis {axis}", got, np.zeros(0, bool))
    pool = None
    if candidates is not None:
        c = np.asarray(candidates, np.float64)
        if c.ndim == got.ndim and c.shape[:axis] == lead and c.shape[axis + 1:] == got.shape[axis + 1:]:
            pool = c.reshape((g.shape[0], c.shape[axis], g.shape[2]))
    aligned = np.empty_like(g)
    swapped = np.zeros((g.shape[0], k), bool)
    ties, bad = 0, 0
    for b in range(g.shape[0]):
        gb, wb = g[b].astype(np.float64), w[b].astype(np.float64)
        scale = max(float(np.abs(wb).max(initial=0.0)), 1e-30)
        used = np.zeros(k, bool)
        order = np.full(k, -1)
        for i in range(k):
            free = np.flatnonzero(~used)
            dist = np.abs(gb[free] - wb[i]).max(axis=1) / scale
            j = free[int(np.argmin(dist))]
            if np.all(bound(gb[j], wb[i])):
                used[j], order[i] = True, j
        cut = gs[b].min() if largest else gs[b].max()
        score_scale = max(float(np.abs(gs[b]).max(initial=0.0)), 1e-30)
        near = lambda v: np.abs(v - cut) <= tol * score_scale  # noqa: E731 - one use, reads as the rule
        spare = np.flatnonzero(~used)
        tied = near(gs[b][spare])
        lonely = np.flatnonzero(order < 0)
        if ws is not None:
            tied &= near(ws[b][lonely])
        if pool is not None:  # a swapped row on either side must be a row the selection chose from
            known = lambda row: bool(np.any(np.all(bound(pool[b], row), axis=1)))  # noqa: E731
            tied &= np.array([known(gb[j]) for j in spare], bool).reshape(tied.shape)
            tied &= np.array([known(wb[i]) for i in lonely], bool).reshape(tied.shape)
        bad += int((~tied).sum())
        ties += int(tied.sum())
        order[lonely] = spare
        swapped[b, lonely] = True
        aligned[b] = g[b][order]
    aligned = aligned.reshape(got.shape)
    swapped = swapped.reshape(lead + (k,))
    if bad:
        return GatheredRows(False, ties, f"{bad} selected row(s) match no row of the other side and are not ties at "
                            f"the cut (scores more than {tol:g} x max |score| from it)", aligned, swapped)
    return GatheredRows(True, ties, "", aligned, swapped)


@dataclass
class TieEvidence:
    """What repogen.verify.compare needs to judge a selected output: its TieSource and our network's arrays
    for ``source.scores`` and (top-k) ``source.values``; ``want_values``: Paddle's selected scores where the
    model outputs them too (gathered rows then check Paddle's side of a swap as well)."""

    source: TieSource
    scores: np.ndarray
    values: np.ndarray | None = None
    want_values: np.ndarray | None = None
    candidates: np.ndarray | None = None

    @classmethod
    def from_arrays(cls, source: TieSource, ours: Mapping[str, np.ndarray],
                    paddle: Mapping[str, np.ndarray] | None = None) -> "TieEvidence":
        """From our network's values by graph name (``network_scores``, or a check's extra outputs) and,
        optionally, Paddle's outputs by graph name."""
        values = ours.get(source.values) if source.values else None
        want = paddle.get(source.values) if paddle is not None and source.values else None
        pool = ours.get(source.candidates) if source.candidates else None
        return cls(source, np.asarray(ours[source.scores]), values, want, pool)


def with_outputs(graph: Graph, extra: Sequence[str]) -> Graph:
    """The same graph fetching ``extra`` values too (appended after its own outputs)."""
    add = [n for n in dict.fromkeys(extra) if n not in graph.outputs]
    return Graph(graph.source, graph.blocks, list(graph.inputs), list(graph.outputs) + add, graph.params)


def evidence_names(sources: Mapping[str, TieSource]) -> list[str]:
    """The graph values a network must also output to decide the ties of ``sources``."""
    names = [s.scores for s in sources.values()] + [s.values for s in sources.values() if s.values] + \
        [s.candidates for s in sources.values() if s.candidates]
    return list(dict.fromkeys(names))


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
    """validate's view of the source model as a NumPy-backend FP32 network: the scores behind a served model's
    selected outputs (the served engine does not output them) and each output's noise floor. Names are Triton's;
    ``in_names`` / ``out_names`` map them to Paddle's (harness.reference.PaddleReference)."""

    def __init__(self, source: object, in_names: Mapping[str, str], out_names: Mapping[str, str]):
        from repogen.paddle import load_model
        from repogen.trt.passes import clean_graph

        self.graph = clean_graph(load_model(source.model_file, source.params_file))
        found = tie_sources(self.graph)
        self.sources = {t: found[p] for t, p in out_names.items() if p in found}
        self.in_names = dict(in_names)
        self.out_names = dict(out_names)
        self._cache: dict[int, dict[str, np.ndarray]] = {}
        self._floors: dict[tuple, dict[str, Any]] = {}

    def evidence(self, name: str, feeds: Mapping[str, np.ndarray]) -> tuple[TieSource, dict[str, np.ndarray]] | None:
        """(source, {graph value: our array}) for Triton output ``name`` on ``feeds``; None when it is not
        selected by score. ``TieEvidence.from_arrays(*found)`` is what repogen.verify.compare takes."""
        src = self.sources.get(name)
        if src is None:
            return None
        key = id(feeds)
        if key not in self._cache:
            paddle_feeds = {p: np.asarray(feeds[t]) for t, p in self.in_names.items()}
            self._cache[key] = network_scores(self.graph, paddle_feeds, evidence_names(self.sources))
        return src, self._cache[key]

    def floor(self, name: str, feeds: Mapping[str, np.ndarray]) -> Any:
        """The fp32 NumPy network's noise floor (repogen.verify.noise) for Triton output ``name`` on ``feeds``:
        how far float32 rounding alone moves that output, the allowance of an fp32 rule (a served Paddle or plan
        differs from the reference by its own rounding, not by a converter's). None for outputs without one."""
        from repogen.verify.noise import graph_noise_floors

        key = ("floor", id(feeds))
        if key not in self._floors:
            paddle_feeds = {p: np.asarray(feeds[t]) for t, p in self.in_names.items()}
            self._floors[key] = graph_noise_floors(self.graph, paddle_feeds)
        return self._floors[key].get(self.out_names.get(name, ""))

    def check(self, name: str, feeds: Mapping[str, np.ndarray], got: np.ndarray, want: np.ndarray,
              tol: float) -> tuple[bool, int, str] | None:
        """compare_ties for Triton index output ``name`` on ``feeds``; None when it is not an index output."""
        found = self.evidence(name, feeds)
        if found is None or found[0].kind not in ("arg", "topk") or np.asarray(want).dtype.kind not in "iu":
            return None
        src, values = found
        return compare_ties(got, want, values[src.scores], src, tol)


__all__ = ["TieSource", "TieEvidence", "TieScorer", "GatheredRows", "tie_sources", "compare_ties", "compare_derived",
           "compare_gathered_rows", "ambiguous_positions", "with_outputs", "evidence_names", "network_scores"]
