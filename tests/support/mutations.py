"""Seeded wrong conversions: converters of repogen's table wrapped so that they make one classic mistake each
(a bias sign, a channel order, an epsilon, an activation slope, a transposed weight, a dropped residual add, a
pooling pad, a softmax axis, an off-by-one resize...). The verification rules must fail every one of them at
fp32 and fp16 while the unmutated conversion passes (tests/test_mutations.py; docs/precision.md has the table
this module prints with ``python -m tests.support.mutations``).

A mutation wraps the entries of ``repogen.trt.converter_table.CONVERTERS`` for its op types inside
``applied(mutation)`` only; ``judge`` converts a model with the NumPy backend (under a mutation or not), runs it
and judges every output against Paddle Inference with repogen.verify, and also with the old whole-tensor rule
(relative L2 <= 1e-5 at fp32, <= 1e-2 at fp16) for the comparison of catch rates.
"""

from __future__ import annotations

import dataclasses
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

OLD_TOLERANCE = {"fp32": 1e-5, "fp16": 1e-2}
OLD_PREQUANTIZED = {"fp32": 1e-3, "fp16": 3e-2}


@dataclass(frozen=True)
class Mutation:
    name: str
    op_types: tuple[str, ...]
    what: str
    # wrap(original_converter, ctx, op) -> whether this op was converted wrongly
    wrap: Callable[[Callable, Any, Any], bool]


def _with_attrs(op: Any, **attrs: Any) -> Any:
    return dataclasses.replace(op, attrs={**op.attrs, **attrs})


def _with_const(fn: Callable, ctx: Any, op: Any, name: str, array: np.ndarray) -> None:
    """Convert ``op`` with the graph constant ``name`` replaced by ``array`` (converters read weights through
    ctx.const_value or ctx.get; both consult the instance attribute set here)."""
    original = ctx.const_value
    ctx.const_value = lambda n: np.asarray(array) if n == name else original(n)
    try:
        fn(ctx, op)
    finally:
        del ctx.const_value


def _new_layers(ctx: Any, fn: Callable, op: Any) -> list:
    before = ctx.network.num_layers
    fn(ctx, op)
    return [ctx.network.get_layer(i) for i in range(before, ctx.network.num_layers)]


def _bias_sign(fn, ctx, op) -> bool:
    y = op.input("y")
    b = ctx.const_value(y) if y else None
    if b is None or np.asarray(b).size < 2 or np.count_nonzero(np.asarray(b).shape != 1) > 1:
        fn(ctx, op)
        return False
    _with_const(fn, ctx, op, y, -np.asarray(b))
    return True


def _channel_order(fn, ctx, op) -> bool:
    name = op.input("filter") or op.input("weight")
    w = ctx.const_value(name) if name else None
    if op.input("input") not in ctx.graph.inputs or w is None or np.asarray(w).shape[1] < 2:
        fn(ctx, op)
        return False
    _with_const(fn, ctx, op, name, np.ascontiguousarray(np.asarray(w)[:, ::-1]))  # RGB read as BGR
    return True


def _deconv_unflipped(fn, ctx, op) -> bool:
    name = op.input("filter")
    w = ctx.const_value(name) if name else None
    if w is None:
        fn(ctx, op)
        return False
    _with_const(fn, ctx, op, name, np.ascontiguousarray(np.asarray(w)[:, :, ::-1, ::-1]))
    return True


def _epsilon(fn, ctx, op) -> bool:
    eps = float(op.attrs.get("epsilon", 1e-5))
    fn(ctx, _with_attrs(op, epsilon=1e-3 if eps < 1e-3 else eps * 10))  # Keras' batch-norm default for Paddle's
    return True


def _activation_slope(fn, ctx, op) -> bool:
    if op.type == "hardsigmoid":  # the other common slope: ONNX's 0.2 for Paddle's 1/6, or the reverse
        slope = float(op.attrs.get("slope", 0.2))
        fn(ctx, _with_attrs(op, slope=1 / 6 if abs(slope - 0.2) < 1e-6 else 0.2))
    else:  # leaky_relu
        fn(ctx, _with_attrs(op, negative_slope=2 * float(op.attrs.get("negative_slope", op.attrs.get("alpha", 0.02)))))
    return True


def _hardswish_as_swish(fn, ctx, op) -> bool:
    from repogen.trt.converter_table import CONVERTERS

    CONVERTERS["swish"](ctx, dataclasses.replace(op, type="swish", attrs={"beta": 1.0}))
    return True


def _transposed_weight(fn, ctx, op) -> bool:
    y = op.input("y")
    w = ctx.const_value(y) if y else None
    if w is None or np.asarray(w).ndim != 2 or min(np.asarray(w).shape) < 2:
        fn(ctx, op)
        return False
    w = np.asarray(w)
    _with_const(fn, ctx, op, y, np.ascontiguousarray(w.T).reshape(w.shape))  # weights read in the wrong order
    return True


def _residual_dropped(fn, ctx, op) -> bool:
    x, y = op.input("x"), op.input("y")
    if ctx.const_value(x) is not None or ctx.const_value(y) is not None:
        fn(ctx, op)
        return False
    tx, ty = ctx.get(x), ctx.get(y)
    if tuple(tx.shape) != tuple(ty.shape):
        fn(ctx, op)
        return False
    ctx.output(op, tx)
    return True


def _pool_padding(fn, ctx, op) -> bool:
    changed = False
    for layer in _new_layers(ctx, fn, op):
        if type(layer).__name__ == "IPoolingLayer" and any(p > 0 for p in layer.pre_padding):
            pre, post = list(layer.pre_padding), list(layer.post_padding)
            layer.pre_padding = tuple(max(p - 1, 0) for p in pre)  # the padding moved to the end
            layer.post_padding = tuple(q + (1 if p > 0 else 0) for p, q in zip(pre, post))
            changed = True
    return changed


def _softmax_axis(fn, ctx, op) -> bool:
    rank = len(ctx.get(op.input("x")).shape)
    axis = int(op.attrs.get("axis", -1)) % max(rank, 1)
    if rank < 2:
        fn(ctx, op)
        return False
    fn(ctx, _with_attrs(op, axis=(axis - 1) % rank))
    return True


def _resize_off_by_one(fn, ctx, op) -> bool:
    import repogen.trt.numpy_trt as trt

    changed = False
    for layer in _new_layers(ctx, fn, op):
        if type(layer).__name__ != "IResizeLayer":
            continue
        if trt.InterpolationMode(layer.resize_mode) == trt.InterpolationMode.NEAREST:
            floor = trt.ResizeRoundMode(layer.nearest_rounding) == trt.ResizeRoundMode.FLOOR
            layer.nearest_rounding = trt.ResizeRoundMode.CEIL if floor else trt.ResizeRoundMode.FLOOR
        else:
            T = trt.ResizeCoordinateTransformation
            align = T(layer.coordinate_transformation) == T.ALIGN_CORNERS
            layer.coordinate_transformation = T.HALF_PIXEL if align else T.ALIGN_CORNERS
        changed = True
    return changed


def _concat_order(fn, ctx, op) -> bool:
    names = list(op.inputs.get("x") or [])
    shapes = {tuple(ctx.get(n).shape) for n in names}
    if len(names) < 2 or len(shapes) != 1:
        fn(ctx, op)
        return False
    fn(ctx, dataclasses.replace(op, inputs={**op.inputs, "x": names[::-1]}))
    return True


MUTATIONS: dict[str, Mutation] = {m.name: m for m in (
    Mutation("bias_sign", ("add",), "a per-channel bias added with its sign flipped", _bias_sign),
    Mutation("channel_order", ("conv2d", "depthwise_conv2d"), "the first convolution reads its input channels "
             "in reverse order (RGB as BGR)", _channel_order),
    Mutation("deconv_unflipped", ("conv2d_transpose", "depthwise_conv2d_transpose"),
             "a transposed convolution's kernel flipped spatially", _deconv_unflipped),
    Mutation("norm_epsilon", ("batch_norm", "layer_norm", "group_norm", "instance_norm"),
             "normalization epsilon 1e-3 (Keras' default) instead of the model's", _epsilon),
    Mutation("activation_slope", ("hardsigmoid", "leaky_relu"), "hard-sigmoid slope 0.2 (ONNX's default) for "
             "Paddle's 1/6 or 1/6 for PaddleOCR's 0.2; leaky-ReLU slope doubled", _activation_slope),
    Mutation("hardswish_as_swish", ("hardswish",), "hard-swish converted as swish", _hardswish_as_swish),
    Mutation("transposed_weight", ("matmul",), "a constant [K, N] weight read in transposed memory order",
             _transposed_weight),
    Mutation("residual_dropped", ("add",), "a residual add (two activations) that keeps only its first input",
             _residual_dropped),
    Mutation("pool_padding", ("pool2d",), "a pooling window's padding moved from the start to the end",
             _pool_padding),
    Mutation("softmax_axis", ("softmax",), "softmax over the axis before the model's", _softmax_axis),
    Mutation("resize_off_by_one", ("nearest_interp", "bilinear_interp"), "resize sampling one pixel off (nearest "
             "rounds up; bilinear maps corners)", _resize_off_by_one),
    Mutation("concat_order", ("concat",), "a concat of equally shaped inputs in reverse order", _concat_order),
)}


@contextmanager
def applied(mutation: Mutation | None) -> Iterator[list[int]]:
    """Within the block, the converters of ``mutation.op_types`` make its mistake; yields [ops it changed]."""
    from repogen.trt.converter_table import CONVERTERS
    from repogen.trt.registry import load_converters

    load_converters()
    hits = [0]
    saved = {t: CONVERTERS[t] for t in (mutation.op_types if mutation else ()) if t in CONVERTERS}

    def wrapped(original: Callable) -> Callable:
        def convert(ctx: Any, op: Any) -> None:
            if mutation.wrap(original, ctx, op):
                hits[0] += 1
        return convert

    for op_type, fn in saved.items():
        CONVERTERS[op_type] = wrapped(fn)
    try:
        yield hits
    finally:
        CONVERTERS.update(saved)


@dataclass
class Judged:
    """One conversion judged: the new verdicts and the old rule's pass/fail per output."""

    model: str
    precision: str
    mutation: str | None
    changed_ops: int
    verdicts: list = field(default_factory=list)
    old_passed: list[bool] = field(default_factory=list)
    outputs: dict = field(default_factory=dict, repr=False)  # ours, by graph output name
    alone_passed: list[bool] = field(default_factory=list)  # fp16: the fp16 outputs' own verdicts, twin aside

    @property
    def passed(self) -> bool:
        return bool(self.verdicts) and all(v.passed for v in self.verdicts)

    @property
    def alone_pass(self) -> bool:
        return bool(self.alone_passed) and all(self.alone_passed)

    @property
    def old_pass(self) -> bool:
        return bool(self.old_passed) and all(self.old_passed)


_REFERENCES: dict[tuple[str, bytes], dict[str, np.ndarray]] = {}


def paddle_reference(model: Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Paddle Inference's outputs (in order) for ``feeds``, through repogen.reference, cached per process."""
    from repogen.reference import reference_outputs

    key = (str(model), b"".join(np.ascontiguousarray(a).tobytes() for a in feeds.values()))
    if key not in _REFERENCES:
        _REFERENCES[key] = reference_outputs(model, feeds)
    return list(_REFERENCES[key].values())


def convert(model: Path, feeds: dict[str, np.ndarray], precision: str,
            mutation: Mutation | None = None) -> tuple[Any, Any, int, dict]:
    """(cleaned graph that also outputs the tie evidence, conversion, ops the mutation changed, tie sources)."""
    from repogen.paddle import load_model
    from repogen.trt import numpy_trt
    from repogen.trt.convert import convert_graph
    from repogen.trt.passes import clean_graph
    from repogen.trt.profiles import Profile
    from repogen.verify import evidence_names, tie_sources, with_outputs

    graph = load_model(model)
    cleaned = clean_graph(graph)
    sources = tie_sources(cleaned, graph.outputs)
    fetched = with_outputs(cleaned, evidence_names(sources))
    profile = Profile({n: (tuple(np.shape(a)),) * 3 for n, a in feeds.items()})
    with applied(mutation) as hits:
        conv = convert_graph(fetched, numpy_trt, precision=precision, profiles=[profile], clean=False)
    return fetched, conv, hits[0], sources


_JUDGED: dict[tuple, Judged] = {}


def judge(model: Path, feeds: dict[str, np.ndarray], precision: str, mutation: Mutation | None = None,
          label: str = "") -> Judged:
    """judge_once, remembered per process (an fp16 judgement needs the fp32 one of the same conversion)."""
    key = (str(model), precision, mutation.name if mutation else None,
           b"".join(np.ascontiguousarray(a).tobytes() for a in feeds.values()))
    if key not in _JUDGED:
        _JUDGED[key] = judge_once(model, feeds, precision, mutation, label)
    return _JUDGED[key]


def judge_once(model: Path, feeds: dict[str, np.ndarray], precision: str, mutation: Mutation | None = None,
               label: str = "") -> Judged:
    """Convert (mutated or not), run, and judge every output against Paddle with repogen.verify (noise floor
    from the float64 run of the fp32 network under the same mutation, as a real converter bug would be in
    both) and with the old whole-tensor rule."""
    from repogen.trt import numpy_trt
    from repogen.verify import (TieEvidence, compare, detection_outputs, detection_pair, is_prequantized,
                                noise_floors, rule_for)
    from repogen.verify.noise import distance

    graph, conv, changed, sources = convert(model, feeds, precision, mutation)
    out = numpy_trt.execute(conv.network, feeds)
    ours = {v: out[conv.outputs[i][0]] for i, v in enumerate(graph.outputs)}
    want = paddle_reference(model, feeds)
    prequantized = is_prequantized(graph)
    twins: dict = {}
    if precision != "fp32":  # the same conversion at fp32 must pass as well (compare's twin)
        twins = {v.name: v for v in judge(model, feeds, "fp32", mutation, label).verdicts}
    noise = {}
    if precision == "fp32":
        floors = noise_floors(conv.network, feeds, out)
        noise = {v: floors.get(conv.outputs[i][0]) for i, v in enumerate(graph.outputs)}
    rule = rule_for(precision, prequantized)
    detections = detection_outputs(graph)
    result = Judged(label or Path(model).name, precision, mutation.name if mutation else None, changed)
    result.outputs = ours
    n_out = len(want)
    paddle_by_name = dict(zip(graph.outputs[:n_out], want))
    for name, expected in zip(graph.outputs[:n_out], want):
        tie = TieEvidence.from_arrays(sources[name], ours, paddle_by_name) if name in sources else None
        v = compare(ours[name], expected, rule, name=name, noise=noise.get(name), tie=tie,
                    detection=detections.get(name), twin=twins.get(name))
        result.verdicts.append(v)
        alone = v.passed or (v.twin is not None and v.reason.startswith("the same conversion at fp32"))
        result.alone_passed.append(alone)
        got = np.asarray(ours[name])
        if name in detections and got.shape == np.shape(expected):  # the old check compared these as sets too
            got, expected = detection_pair(got, expected, detections[name])
        if got.shape != np.shape(expected):
            result.old_passed.append(False)
        elif np.asarray(expected).dtype.kind in "iub":
            result.old_passed.append(bool(np.array_equal(got, expected)) or v.criterion == "ties")
        else:
            old = (OLD_PREQUANTIZED if prequantized else OLD_TOLERANCE)[precision]
            result.old_passed.append(distance(got, expected)[0] <= old)
    return result


# -- the cases -------------------------------------------------------------------------------------------------------

def trained_cases() -> dict[str, tuple[Path, dict[str, np.ndarray]]]:
    """The official PP-OCR exports on seeded uniform inputs in [-1, 1), as ``repogen check`` feeds them."""
    from tests.support.trained_models import official_exports

    found = official_exports()
    shapes = {"det": (1, 3, 640, 640), "rec": (1, 3, 48, 320), "cls": (1, 3, 48, 192)}
    rng = np.random.default_rng(0)
    return {f"PP-OCR {role}": (found[role], {"x": rng.uniform(-1, 1, shape).astype(np.float32)})
            for role, shape in shapes.items()}


ZOO_CASES = ("convnet", "resnet18", "mobilenet_v3_small", "transformer", "rtdetr_head", "crnn", "yolo_head")


def zoo_cases(names: tuple[str, ...] = ZOO_CASES) -> dict[str, tuple[Path, dict[str, np.ndarray]]]:
    from tests.support import zoo

    return {f"zoo {n}": (zoo.get(n, "pir"), zoo.sample_feeds(n)) for n in names}


def same_outputs(a: Judged, b: Judged) -> bool:
    return a.outputs.keys() == b.outputs.keys() and all(
        np.shape(a.outputs[k]) == np.shape(b.outputs[k]) and np.array_equal(a.outputs[k], b.outputs[k], equal_nan=True)
        for k in a.outputs)


def catch_table(cases: dict[str, tuple[Path, dict[str, np.ndarray]]],
                mutations: dict[str, Mutation] = MUTATIONS) -> list[dict]:
    """Every mutation on every case where it changes an op: new and old verdicts at fp32 and fp16, plus the
    unmutated baseline (mutation None)."""
    rows = []
    for label, (model, feeds) in cases.items():
        baseline: dict[str, Judged] = {}
        for mutation in [None, *mutations.values()]:
            row: dict[str, Any] = {"case": label, "mutation": mutation.name if mutation else None}
            for precision in ("fp32", "fp16"):
                j = judge(model, feeds, precision, mutation, label)
                if mutation is None:
                    baseline[precision] = j
                elif not j.changed_ops or same_outputs(j, baseline[precision]):
                    row = {}  # the mistake changes nothing this model computes: not a wrong conversion here
                    break
                worst = max(j.verdicts, key=lambda v: (not v.passed, v.rel_l2))
                row[precision] = {"new": j.passed, "old": j.old_pass, "alone": j.alone_pass, "ops": j.changed_ops,
                                  "rel_l2": worst.rel_l2, "outside": worst.outside_share, "max_abs": worst.max_abs,
                                  "noise_abs": worst.noise_max_abs, "criterion": worst.criterion,
                                  "noise": worst.noise_rel_l2, "paddle_f64": worst.paddle_to_float64,
                                  "reason": next((v.reason for v in j.verdicts if not v.passed), "")}
            if row:
                rows.append(row)
    return rows


def _main() -> int:
    import sys

    which = sys.argv[1:] or ["trained", "zoo"]
    cases = {}
    if "trained" in which:
        cases.update(trained_cases())
    if "zoo" in which:
        cases.update(zoo_cases())
    rows = catch_table(cases)
    print("| case | mutation | ops | fp32 new | fp32 old | fp16 new | fp16 alone | fp16 old | fp32 rel L2 | "
          "fp32 noise | fp16 rel L2 | fp16 outside |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    f = lambda ok, want_fail: ("caught" if not ok else "MISSED") if want_fail else ("pass" if ok else "FAIL")  # noqa: E731
    for r in rows:
        m = r["mutation"]
        a, b = r["fp32"], r["fp16"]
        print(f"| {r['case']} | {m or '(none)'} | {a['ops']} | {f(a['new'], m)} | {f(a['old'], m)} | "
              f"{f(b['new'], m)} | {f(b['alone'], m)} | {f(b['old'], m)} | {a['rel_l2']:.2g} | "
              f"{a['noise'] if a['noise'] is None else format(a['noise'], '.2g')} | {b['rel_l2']:.2g} | "
              f"{b['outside']:.2g} |")
    print()
    print("| case | output | fp32 rel L2 | fp32 max abs | noise rel L2 | noise max abs | rel L2 / noise | max abs / "
          "noise | Paddle to float64 | fp16 rel L2 | fp16 outside |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for label, (model, feeds) in cases.items():
        v32s, v16s = judge(model, feeds, "fp32").verdicts, judge(model, feeds, "fp16").verdicts
        for v, w in zip(v32s, v16s):
            if v.noise_rel_l2 is None:
                continue
            ratio = lambda e, n: f"{e / n:.2g}" if n else "-"  # noqa: E731
            print(f"| {label} | {v.name} | {v.rel_l2:.2g} | {v.max_abs:.2g} | {v.noise_rel_l2:.2g} | "
                  f"{v.noise_max_abs:.2g} | {ratio(v.rel_l2, v.noise_rel_l2)} | {ratio(v.max_abs, v.noise_max_abs)} | "
                  f"{v.paddle_to_float64:.2g} | {w.rel_l2:.2g} | {w.outside_share:.2g} |")
    mutated = [r for r in rows if r["mutation"]]
    for p in ("fp32", "fp16"):
        new = sum(not r[p]["new"] for r in mutated)
        old = sum(not r[p]["old"] for r in mutated)
        alone = sum(not r[p]["alone"] for r in mutated)
        print(f"{p}: new criteria catch {new}/{len(mutated)} (outputs alone, without the fp32 twin: {alone}), "
              f"old criteria catch {old}/{len(mutated)}")
    base = [r for r in rows if not r["mutation"]]
    for p in ("fp32", "fp16"):
        print(f"{p} unmutated: new passes {sum(r[p]['new'] for r in base)}/{len(base)}, "
              f"old passes {sum(r[p]['old'] for r in base)}/{len(base)}")
    for r in mutated:
        for p in ("fp32", "fp16"):
            if r[p]["new"]:
                print(f"MISSED {r['case']} {r['mutation']} {p}")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
