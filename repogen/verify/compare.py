"""The one comparator: one output of a converted network (or a served model) against Paddle's, under a Rule.

Metrics (over the positions where both sides are finite): max abs error, max relative error (over the
elements where Paddle's value is not 0), relative L2 ``||a - b|| / ||b||`` and the share of elements outside
``atol * max|b| + rtol * |b|`` (numpy.allclose's test, the count Polygraphy's comparator reports). Which of
them decide is the Rule's business (repogen.verify.tolerances).

NaN / Inf policy: a NaN where Paddle has NaN at the same place matches (Paddle's own NaN, e.g. the square
root of a negative variance, is reproduced, not an error), and so does an infinity of the same sign at the
same place. Any other NaN or infinity on either side fails the output, whatever the tolerances: a NaN or Inf
where Paddle is finite, or a finite value where Paddle has NaN or Inf.

Integer and bool outputs are exact, except outputs selected by score (argmax labels, top-k indices, values
derived from them), which are tie-aware when ``tie`` evidence is given (repogen.verify.ties). Rows gathered
by top-k indices are paired by value and may differ by ties at the cut. Detection outputs of an NMS op
(``detection="rows"`` / ``"index"``) compare as sets (repogen.verify.detections). Reshaping a served output
to Paddle's shape (Triton's [N, 1] for Paddle's [N]) is the caller's business: a shape mismatch fails here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping

import numpy as np

from repogen.verify.detections import detection_pair
from repogen.verify.noise import NoiseFloor, distance
from repogen.verify.ties import TieEvidence, compare_derived, compare_gathered_rows, compare_ties
from repogen.verify.tolerances import Rule


@dataclass
class OutputVerdict:
    """The verdict on one output. ``criterion``: what passed it ("exact", "elementwise", "noise", "rel_l2",
    "ties"), empty when it failed; ``reason``: one line saying why it failed (empty when it passed)."""

    name: str
    shape: list[int]
    passed: bool
    reason: str = ""
    criterion: str = ""
    precision: str = ""
    max_abs: float = 0.0
    max_rel: float = 0.0
    rel_l2: float = 0.0
    outside_share: float = 0.0
    atol: float = 0.0  # the absolute bound used: rule.atol * max|Paddle's output|
    rtol: float = 0.0
    allowed_share: float | None = None
    ties: int | None = None
    noise_rel_l2: float | None = None  # the converted network's float32-vs-float64 distance
    noise_max_abs: float | None = None
    noise_factor: float | None = None
    paddle_to_float64: float | None = None  # Paddle's own relative L2 distance from that float64 run
    top1_agreement: float | None = None
    actual_shape: list[int] | None = None
    twin: dict | None = None  # fp16: the verdict on the same conversion at fp32 (OutputVerdict.to_dict())

    def to_dict(self) -> dict:
        return asdict(self)


def compare(actual: Any, expected: Any, rule: Rule, *, name: str = "", noise: NoiseFloor | None = None,
            tie: TieEvidence | None = None, detection: str | None = None,
            twin: OutputVerdict | None = None) -> OutputVerdict:
    """One output against Paddle's (``expected``) under ``rule``.

    noise: the converted network's noise floor for this output (repogen.verify.noise), used by fp32 rules.
    tie: scores behind an output selected by score (repogen.verify.ties.TieEvidence).
    detection: "rows" / "index" for outputs of an NMS op (repogen.verify.detections.detection_outputs).
    twin: for an fp16 (or int8) conversion, the verdict on the same output of the same graph converted at
    fp32 (under ``rule_for("fp32")``, with its noise floor): the output passes only if that passes too. A
    mistake of the converters is in both networks and shows at fp32 far above the rounding noise, where at
    fp16 it may hide below half precision's own error (docs/precision.md: 1 of 12 seeded mistakes did).
    """
    if noise is not None and detection and np.shape(noise.float64) == np.shape(expected):
        exact, _ = detection_pair(noise.float64, expected, detection)
        noise = NoiseFloor(noise.rel_l2, noise.max_abs, exact)
    v = _compare(actual, expected, rule, name, noise, tie, detection)
    if twin is not None:
        v.twin = twin.to_dict()
        if v.passed and not twin.passed:
            v.passed, v.criterion = False, ""
            v.reason = f"the same conversion at fp32 fails: {twin.reason}"
    return v


def _compare(actual: Any, expected: Any, rule: Rule, name: str, noise: NoiseFloor | None,
             tie: TieEvidence | None, detection: str | None) -> OutputVerdict:
    a, b = np.asarray(actual), np.asarray(expected)
    if detection and a.shape == b.shape:
        a, b = detection_pair(a, b, detection)
    v = OutputVerdict(name, list(b.shape), False, precision=rule.precision, actual_shape=list(a.shape))
    if a.shape != b.shape:
        v.max_abs = v.max_rel = v.rel_l2 = float("inf")
        v.outside_share = 1.0
        v.reason = f"shape {list(a.shape)} != expected {list(b.shape)}"
        return v
    if b.dtype.kind in "iub" or a.dtype.kind in "b":
        return _compare_exact(v, a, b, rule, tie)
    return _compare_float(v, a, b, rule, noise, tie)


def compare_all(actual: Mapping[str, Any], expected: Mapping[str, Any], rule: Rule, *,
                noise: Mapping[str, NoiseFloor] | None = None, ties: Mapping[str, TieEvidence] | None = None,
                detections: Mapping[str, str] | None = None,
                twins: Mapping[str, OutputVerdict] | None = None) -> list[OutputVerdict]:
    """compare for every output of ``expected`` (Paddle's, by name); an output missing from ``actual`` fails.
    ``twins``: fp32 verdicts by name for an fp16 conversion (compare's ``twin``)."""
    out = []
    for name, want in expected.items():
        if name not in actual:
            out.append(OutputVerdict(name, list(np.shape(want)), False, reason="output missing",
                                     precision=rule.precision))
            continue
        out.append(compare(actual[name], want, rule, name=name, noise=(noise or {}).get(name),
                           tie=(ties or {}).get(name), detection=(detections or {}).get(name),
                           twin=(twins or {}).get(name)))
    return out


def fp32_twins(graph: Any, feeds: Mapping[str, np.ndarray], expected: Mapping[str, Any],
               prequantized: bool = False) -> dict[str, OutputVerdict]:
    """The fp32 twin verdicts for an fp16 (or int8) conversion of ``graph`` (cleaned, as converted): the same
    graph converted at fp32 on the NumPy backend, judged against Paddle's ``expected`` (by graph output name)
    under ``rule_for("fp32", prequantized)`` with its noise floor. Hand them to compare as ``twin``."""
    from repogen.trt import numpy_trt
    from repogen.trt.convert import convert_graph
    from repogen.trt.profiles import Profile
    from repogen.verify.detections import detection_outputs
    from repogen.verify.noise import noise_floors
    from repogen.verify.tolerances import rule_for

    profile = Profile({n: (tuple(np.shape(a)),) * 3 for n, a in feeds.items()})
    conv = convert_graph(graph, numpy_trt, precision="fp32", profiles=[profile], clean=False)
    out = numpy_trt.execute(conv.network, dict(feeds))
    floors = noise_floors(conv.network, feeds, out)
    rule, kinds = rule_for("fp32", prequantized), detection_outputs(graph)
    twins = {}
    for i, name in enumerate(graph.outputs):
        engine = conv.outputs[i][0]
        if name in expected:
            twins[name] = compare(out[engine], expected[name], rule, name=name, noise=floors.get(engine),
                                  detection=kinds.get(name))
    return twins


def _compare_exact(v: OutputVerdict, a: np.ndarray, b: np.ndarray, rule: Rule,
                   tie: TieEvidence | None) -> OutputVerdict:
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    diff = np.abs(a64 - b64)
    v.max_abs = float(diff.max(initial=0.0))
    nz = b64 != 0
    v.max_rel = float((diff[nz] / np.abs(b64[nz])).max(initial=0.0))
    nb = float(np.linalg.norm(b64))
    v.rel_l2 = float(np.linalg.norm(a64 - b64)) / nb if nb > 0 else v.max_abs
    differ = int((diff != 0).sum())
    v.outside_share = differ / diff.size if diff.size else 0.0
    if not differ:
        v.passed, v.criterion = True, "exact"
        return v
    if tie is not None and tie.source.kind in ("arg", "topk", "derived"):
        if tie.source.kind == "derived":
            ok, n, problem = compare_derived(a, b, tie.scores, tie.source, rule.tie_tol, tie.values)
        else:
            ok, n, problem = compare_ties(a, b, tie.scores, tie.source, rule.tie_tol)
        v.ties = n
        if ok:
            v.passed, v.criterion = True, "ties"
        else:
            v.reason = problem
        return v
    v.reason = f"{differ} of {diff.size} values differ (integer output: exact; max abs {v.max_abs:g})"
    return v


def _compare_float(v: OutputVerdict, a: np.ndarray, b: np.ndarray, rule: Rule, noise: NoiseFloor | None,
                   tie: TieEvidence | None) -> OutputVerdict:
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    nan_a, nan_b = np.isnan(a64), np.isnan(b64)
    inf_a, inf_b = np.isinf(a64), np.isinf(b64)
    same_special = (nan_a & nan_b) | (inf_a & inf_b & (a64 == b64))
    ours = int(((nan_a | inf_a) & ~(nan_b | inf_b)).sum())
    theirs = int(((nan_b | inf_b) & ~(nan_a | inf_a)).sum())
    mismatched = int(((nan_a | inf_a | nan_b | inf_b) & ~same_special).sum())
    finite = np.isfinite(a64) & np.isfinite(b64)
    peak = float(np.abs(np.where(finite, b64, 0.0)).max(initial=0.0))
    v.atol = rule.atol * (peak if peak > 0 else 1.0)  # an all-zero reference: atol is absolute
    v.rtol = rule.rtol
    v.allowed_share = rule.outside_share
    keep = finite.copy()
    if tie is not None and tie.source.kind == "gather":
        slack = rule.noise_factor or 1.0  # pair rows that differ by precision (fp32: by the noise allowance)
        rows = compare_gathered_rows(a64, b64, tie.values if tie.values is not None else tie.scores,
                                     tie.source.axis if tie.source.axis is not None else 0, rule.tie_tol,
                                     lambda g, w: np.abs(g - w) <= slack * (v.atol + v.rtol * np.abs(w)),
                                     want_scores=tie.want_values, largest=tie.source.largest,
                                     candidates=tie.candidates)
        v.ties = rows.ties
        if not rows.ok:
            _metrics(v, rows.aligned, b64, keep)
            v.reason = rows.problem
            return v
        a64 = rows.aligned
        swapped = rows.swapped.reshape(rows.swapped.shape + (1,) * (a64.ndim - rows.swapped.ndim))
        keep &= ~np.broadcast_to(swapped, a64.shape)
    elif tie is not None and tie.source.kind == "derived":
        off = finite & (np.abs(a64 - b64) > v.atol + v.rtol * np.abs(b64))
        ok, n, problem = compare_derived(np.where(off, 1, 0), np.zeros(off.shape, np.int8), tie.scores,
                                         tie.source, rule.tie_tol, tie.values)
        v.ties = n
        if not ok:
            _metrics(v, a64, b64, keep)
            v.reason = problem
            return v
        keep &= ~off
    _metrics(v, a64, b64, keep)
    if noise is not None:
        v.noise_rel_l2, v.noise_max_abs, v.noise_factor = noise.rel_l2, noise.max_abs, rule.noise_factor
        if np.shape(noise.float64) == b64.shape:
            v.paddle_to_float64 = distance(b64, noise.float64)[0]
    if mismatched:
        v.reason = (f"{ours} NaN/Inf where Paddle is finite" if ours else
                    f"{theirs} finite value(s) where Paddle has NaN/Inf" if theirs else
                    f"{mismatched} NaN/Inf that differ from Paddle's")
        return v
    checks = []
    if rule.outside_share is not None:
        capped = rule.rel_l2_cap is None or v.rel_l2 <= rule.rel_l2_cap
        checks.append(("elementwise", v.outside_share <= rule.outside_share and capped))
    if rule.noise_factor is not None and noise is not None and noise.rel_l2 <= rule.max_noise:
        k = rule.noise_factor
        checks.append(("noise", v.rel_l2 <= k * noise.rel_l2 and v.max_abs <= k * noise.max_abs))
    if rule.max_rel_l2 is not None:
        checks.append(("rel_l2", v.rel_l2 <= rule.max_rel_l2))
    passing = [c for c, ok in checks if ok]
    top1_ok = True
    if rule.min_top1 is not None and b64.ndim == 2 and b64.shape[1] > 1 and b64.shape[0] > 0:
        v.top1_agreement = float(np.mean(np.argmax(a64, 1) == np.argmax(b64, 1)))
        top1_ok = v.top1_agreement >= rule.min_top1
    if passing and top1_ok:
        v.passed = True
        v.criterion = "ties" if v.ties else passing[0]
        return v
    v.reason = _why(v, rule, noise, top1_ok)
    return v


def _metrics(v: OutputVerdict, a64: np.ndarray, b64: np.ndarray, keep: np.ndarray) -> None:
    with np.errstate(invalid="ignore"):  # NaN / Inf positions are masked out by ``keep``
        d = np.where(keep, np.abs(a64 - b64), 0.0)
    ref = np.where(keep, b64, 0.0)
    v.max_abs = float(d.max(initial=0.0))
    nz = keep & (b64 != 0)
    v.max_rel = float((d[nz] / np.abs(b64[nz])).max(initial=0.0))
    nb = float(np.linalg.norm(ref))
    v.rel_l2 = float(np.linalg.norm(d)) / nb if nb > 0 else v.max_abs
    outside = keep & (d > v.atol + v.rtol * np.abs(b64))
    v.outside_share = float(outside.sum()) / d.size if d.size else 0.0


def _why(v: OutputVerdict, rule: Rule, noise: NoiseFloor | None, top1_ok: bool) -> str:
    parts = []
    if rule.outside_share is not None:
        parts.append(f"{v.outside_share:.3%} of elements outside {rule.atol:g}*max|ref| + {rule.rtol:g}*|ref| "
                     f"(allowed {rule.outside_share:g})")
        if rule.rel_l2_cap is not None and v.rel_l2 > rule.rel_l2_cap:
            parts.append(f"rel L2 above the cap {rule.rel_l2_cap:g}")
    if rule.noise_factor is not None and noise is not None:
        if noise.rel_l2 > rule.max_noise:
            parts.append(f"noise floor {noise.rel_l2:.3g} above {rule.max_noise:g}, not used")
        else:
            parts.append(f"rel L2 {v.rel_l2:.3g} / max abs {v.max_abs:.3g} vs {rule.noise_factor:g} x noise floor "
                         f"{noise.rel_l2:.3g} / {noise.max_abs:.3g}")
    if rule.max_rel_l2 is not None:
        parts.append(f"rel L2 {v.rel_l2:.3g} > {rule.max_rel_l2:g}")
    if not top1_ok:
        parts.append(f"top-1 agreement {v.top1_agreement:.3g} < {rule.min_top1:g}")
    return f"max abs {v.max_abs:.3g}, rel L2 {v.rel_l2:.3g}: " + "; ".join(parts)


__all__ = ["OutputVerdict", "compare", "compare_all", "fp32_twins"]
