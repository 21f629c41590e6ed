"""`repogen check`: convert with the NumPy backend, run, and compare with Paddle Inference (or a reference)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from repogen.errors import ConfigError, UnsupportedOpError
from repogen.trt.profiles import Profile, parse_shapes
from repogen.trt.registry import why_unsupported
from repogen.trt.ties import compare_ties, tie_sources, with_outputs
from repogen.verify import inputs as verify_inputs

if TYPE_CHECKING:
    from repogen.ir import Graph
    from repogen.trt.calibrate import Int8Model

TOLERANCE = {"fp32": 1e-5, "fp16": 1e-2, "int8": 1e-1}  # int8 also needs top-1 >= 0.9
# A model that arrives quantized (Q/DQ or fake-quant ops) is compared with Paddle running the same int8
# simulation, but a float difference of 1e-7 before a quantize op can still move a value across a rounding
# boundary: one int8 step (1/127 of the scale) at that element. Seen on zoo convnet_paddle_ptq: 3.4e-5 for one
# of 24 outputs, 1e-7 for the rest. Under --fp16 the values entering the quantize layers carry FP16 rounding
# (1e-3 relative), so many more of them cross a boundary: 1.3e-2 there.
PREQUANTIZED_TOLERANCE = {"fp32": 1e-3, "fp16": 3e-2}
_QUANTIZE_OPS = ("quantize_linear", "fake_quantize", "fake_channel_wise_quantize")


@dataclass
class OutputCheck:
    name: str
    shape: list[int]
    max_abs_err: float
    rel_err: float  # ||a - b|| / ||b||
    tolerance: float
    passed: bool
    top1_agreement: float | None = None  # int8 checks of [N, C] outputs
    ties: int | None = None  # argmax / top-k indices: positions that differ from Paddle's but are score ties


@dataclass
class CheckReport:
    model: str
    precision: str
    outputs: list[OutputCheck] = field(default_factory=list)
    unsupported: list[tuple[int, str, list[str]]] = field(default_factory=list)
    input_shapes: dict[str, list[int]] = field(default_factory=dict)
    int8: dict | None = None  # calibration summary (method, samples, accuracy change vs FP32) for --int8

    @property
    def passed(self) -> bool:
        return not self.unsupported and bool(self.outputs) and all(o.passed for o in self.outputs)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["passed"] = self.passed
        d["unsupported"] = [{"position": p, "op": t, "outputs": o, "reason": why_unsupported(t)}
                            for p, t, o in self.unsupported]
        return d


def compare(actual: np.ndarray, expected: np.ndarray, tol: float, name: str = "") -> OutputCheck:
    a = np.asarray(actual)
    b = np.asarray(expected)
    if a.shape != b.shape:
        return OutputCheck(name, list(a.shape), float("inf"), float("inf"), tol, False)
    if b.dtype == np.bool_ or a.dtype == np.bool_:
        a, b = a.astype(np.float64), b.astype(np.float64)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    both_nan = np.isnan(a64) & np.isnan(b64)  # Paddle's own NaN (e.g. sqrt of a negative variance) matches
    a64, b64 = np.where(both_nan, 0.0, a64), np.where(both_nan, 0.0, b64)
    diff = a64 - b64
    max_abs = float(np.max(np.abs(diff))) if diff.size else 0.0
    nb = float(np.linalg.norm(b64))
    rel = float(np.linalg.norm(diff)) / nb if nb > 0 else max_abs
    if b.dtype.kind in "iub":
        tol_here = 0.0  # integer outputs (indices, shapes) must match exactly
        ok = max_abs == 0.0
    else:
        tol_here = tol
        ok = bool(np.isfinite(rel) and rel <= tol)
    return OutputCheck(name, list(b.shape), max_abs, rel, tol_here, ok)


def random_inputs(graph: Any, shapes: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded inputs from the one generator (repogen.verify.inputs): floats in [-1, 1), ints in [0, 8)."""
    return verify_inputs.random_inputs(graph, shapes, seed)


def check_model(model_path: str | Path, *, inputs: dict | None = None, reference: dict | None = None,
                fp16: bool = False, shapes: list[str] = (), seed: int = 0, int8: bool = False,
                calib_data: str | Path | None = None, calib_method: str = "max") -> CheckReport:
    """`repogen check`: load and clean the model, calibrate it for ``int8``, then check_graph.

    With ``int8`` the model is calibrated on ``calib_data`` (repogen.trt.calibrate) and checked on the
    held-out samples against Paddle's FP32 outputs: relative error <= 0.1 and, for [N, C] outputs, top-1
    agreement >= 0.9."""
    from repogen.paddle import load_model
    from repogen.trt.convert import find_unsupported
    from repogen.trt.passes import clean_graph

    precision = "int8" if int8 else ("fp16" if fp16 else "fp32")
    if int8 and fp16:
        raise ConfigError("--int8 and --fp16 exclude each other (int8 networks keep FP32 outside Q/DQ pairs)")
    if int8 and not calib_data:
        raise ConfigError("--int8 needs --calib-data DIR|FILE.npz (calibration batches)")
    if reference is None:
        from repogen.reference import prewarm

        prewarm()  # the reference child imports Paddle while this process reads and converts the model
    graph = load_model(model_path)
    cleaned = clean_graph(graph)
    given: dict[str, tuple[int, ...]] = {}
    for spec in shapes:
        given.update(parse_shapes(spec, "--shape"))
    unknown = [n for n in given if n not in graph.inputs]
    if unknown:
        raise ConfigError(f"--shape {unknown[0]}: not an input of {model_path} (inputs: {', '.join(graph.inputs)})")
    profiles = [Profile({n: (s, s, s) for n, s in given.items()})] if given else []
    quantized = None
    if int8 and not find_unsupported(cleaned):  # check_graph reports those
        from repogen.trt.calibrate import quantize_model

        quantized = quantize_model(cleaned, calib_data, calib_method)
    return check_graph(graph, profiles, precision, reference, cleaned=cleaned, quantized=quantized, inputs=inputs,
                       seed=seed, model=str(model_path))


def check_graph(graph: Graph, profiles: Sequence[Profile] = (), precision: str = "fp32",
                reference: dict[str, np.ndarray] | None = None, *, cleaned: Graph | None = None,
                quantized: Int8Model | None = None,
                inputs: dict[str, np.ndarray] | None = None, seed: int = 0, model: str | None = None) -> CheckReport:
    """Convert a loaded model with the NumPy backend, run it, and compare with the Paddle reference.

    graph: the model as read (repogen.paddle.load_model); ``cleaned``: it after passes.clean_graph, when the
    caller has it already (``repogen build`` hands the same one to the plan builder), else cleaned here.
    profiles: random inputs take the first profile's opt shapes (``inputs`` replaces them).
    reference: Paddle's outputs for those inputs; None runs the Paddle reference (repogen.reference) on
    graph.source.
    quantized: with precision "int8", the calibrated model (calibrate.quantize_model of ``cleaned``): its
    held-out samples are checked against Paddle's FP32 outputs.
    """
    from repogen.trt import numpy_trt
    from repogen.trt.convert import convert_graph, find_unsupported

    if cleaned is None:
        from repogen.trt.passes import clean_graph

        cleaned = clean_graph(graph)
    report = CheckReport(model or str(graph.source.model_file), precision)
    report.unsupported = find_unsupported(cleaned)
    if report.unsupported:
        return report
    if precision == "int8":
        if quantized is None:
            raise ConfigError("an int8 check needs the calibrated model (repogen.trt.calibrate.quantize_model)")
        report.int8 = quantized.summary()
        cleaned, inputs, reference = quantized.graph, quantized.heldout, None
    shapes = {n: tuple(rng[1]) for n, rng in profiles[0].shapes.items()} if profiles else {}
    feeds = dict(inputs) if inputs is not None else random_inputs(graph, shapes, seed)
    missing = [n for n in graph.inputs if n not in feeds]
    if missing:
        raise ConfigError(f"inputs file lacks {', '.join(missing)} (model inputs: {', '.join(graph.inputs)})")
    feeds = {n: feeds[n] for n in graph.inputs}
    report.input_shapes = {n: list(np.shape(a)) for n, a in feeds.items()}
    runner = None
    if reference is None:
        from repogen.reference import ReferenceRunner

        runner = ReferenceRunner(graph.source)  # Paddle loads the model in its child while we convert
    try:
        # one profile pinned at the example shapes; the network itself keeps the model's -1 dims
        profile = Profile({n: (tuple(np.shape(a)),) * 3 for n, a in feeds.items()})
        ties = tie_sources(cleaned, graph.outputs) if precision != "int8" else {}
        # indices picked by score compare tie-aware: the network also outputs the scores (repogen/trt/ties.py)
        fetched = with_outputs(cleaned, [t.scores for t in ties.values()]) if ties else cleaned
        conv = convert_graph(fetched, numpy_trt, precision=precision, profiles=[profile], clean=False)
        actual = numpy_trt.execute(conv.network, feeds)
        if runner is not None:
            reference = runner.run(feeds)
    finally:
        if runner is not None:
            runner.close()
    ref_by_pos = list(reference.values())
    detections = detection_outputs(cleaned)
    for i, name in enumerate(graph.outputs):
        expected = reference.get(name)
        if expected is None and len(ref_by_pos) == len(graph.outputs):
            expected = ref_by_pos[i]  # Paddle Inference may rename fetch targets; order is kept
        if expected is None:
            raise ConfigError(f"reference has no output {name!r} (has: {', '.join(reference)})")
        if quantized is not None and precision == "int8":
            report.outputs.append(_compare_int8(actual[conv.outputs[i][0]], expected, name))
        else:
            tol = TOLERANCE[precision]
            if is_prequantized(cleaned):
                tol = PREQUANTIZED_TOLERANCE[precision]
            got = actual[conv.outputs[i][0]]  # the engine's name for it
            if name in detections:
                got, expected = as_detection_set(got, detections[name]), as_detection_set(expected, detections[name])
                if detections[name] == "rows":
                    got = align_detection_rows(got, expected)
            r = compare(got, expected, tol, name)
            if not r.passed and name in ties and np.asarray(expected).dtype.kind in "iu":
                src = ties[name]
                scores = actual[conv.outputs[fetched.outputs.index(src.scores)][0]]
                r.passed, r.ties, _ = compare_ties(got, expected, scores, src, tol)
                r.tolerance = tol  # the score tolerance that decided the ties
            report.outputs.append(r)
    return report


def detection_outputs(graph: Any) -> dict[str, str]:
    """Graph outputs that come from an NMS op: name -> "rows" (label, score, box) or "index". Their row order
    is an implementation choice (Paddle groups by class, TensorRT's NMS by score), so they compare as sets."""
    from repogen.trt.registry import NMS_OPS

    producer = {n: op for op in graph.ops for names in op.outputs.values() for n in names}
    found = {}
    for name in graph.outputs:
        source = name
        while source in producer and producer[source].type == "assign":
            source = producer[source].input("x")
        op = producer.get(source)
        if op is not None and op.type in NMS_OPS:
            kind = "rows" if source in (op.outputs.get("out") or []) else \
                "index" if source in (op.outputs.get("index") or []) else None
            if kind:
                found[name] = kind
    return found


def as_detection_set(x: np.ndarray, kind: str) -> np.ndarray:
    """Rows in a canonical order: by label, then decreasing score, then x1 (index values: sorted)."""
    x = np.asarray(x)
    if kind == "index" or x.ndim != 2 or x.shape[1] < 3:
        return np.sort(x.reshape(-1))
    return x[np.lexsort((x[:, 2], -x[:, 1], x[:, 0]))]


def align_detection_rows(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    """got's rows reordered to pair with want's (both as_detection_set'ed): per row of want, the unused row of
    got with the same label closest in score and box. Sorting alone pairs the wrong rows where two scores
    are nearly equal (FP16: 0.4390 vs 0.4391 swap places), though the two sets are the same."""
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape or got.ndim != 2 or got.shape[1] < 3 or not len(got):
        return got
    scale = np.maximum(np.abs(want[:, 1:]).max(axis=0), 1e-12)
    used = np.zeros(len(got), bool)
    order = []
    for row in want:
        cand = np.flatnonzero(~used & (got[:, 0] == row[0]))
        if not cand.size:
            cand = np.flatnonzero(~used)
        k = cand[np.argmin(np.abs((got[cand, 1:] - row[1:]) / scale).max(axis=1))]
        used[k] = True
        order.append(k)
    return got[order]


def is_prequantized(graph: Any) -> bool:
    """Whether the model quantizes activations itself (observer-only pairs are identities and do not count)."""
    return any(op.type.startswith(_QUANTIZE_OPS) and not op.attrs.get("only_observer")
               for block in graph.blocks for op in block.ops)


def _compare_int8(actual: np.ndarray, expected: np.ndarray, name: str) -> OutputCheck:
    from repogen.trt.calibrate import INT8_REL_ERR, accuracy, passes

    r = compare(actual, expected, INT8_REL_ERR, name)
    if np.asarray(expected).dtype.kind not in "iub" and r.max_abs_err != float("inf"):
        metrics = accuracy({name: [actual]}, {name: [expected]})[name]
        r.passed = passes(metrics)
        r.top1_agreement = metrics["top1_agreement"]
    return r


def _load_npz(path: str | None, option: str) -> dict | None:
    from repogen.npz import load_npz

    return load_npz(path, option) if path else None


def run(args: Any) -> int:
    if getattr(args, "partition", False):
        from repogen.partition.check import run as run_partitioned

        return run_partitioned(args)
    try:
        report = check_model(args.model, inputs=_load_npz(args.inputs, "--inputs"),
                             reference=_load_npz(args.reference, "--reference"),
                             fp16=args.fp16, shapes=list(args.shape or []), seed=args.seed,
                             int8=getattr(args, "int8", False), calib_data=getattr(args, "calib_data", None),
                             calib_method=getattr(args, "calib_method", "max"))
    except UnsupportedOpError as exc:  # pragma: no cover - check_model reports these itself
        raise exc
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        _print_table(report)
    return 0 if report.passed else 1


def _print_table(report: CheckReport) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if report.unsupported:
        t = Table(title=f"{report.model}: ops without a converter")
        for col in ("position", "op", "outputs", "why"):
            t.add_column(col)
        for pos, op_type, outs in report.unsupported:
            t.add_row(str(pos), op_type, ", ".join(outs), why_unsupported(op_type) or "no converter yet")
        console.print(t)
        return
    t = Table(title=f"{report.model} ({report.precision}, inputs {report.input_shapes})")
    for col in ("output", "shape", "max abs err", "rel err", "tolerance", "result"):
        t.add_column(col)
    for o in report.outputs:
        t.add_row(o.name, "x".join(map(str, o.shape)), f"{o.max_abs_err:.3g}", f"{o.rel_err:.3g}",
                  f"{o.tolerance:g}", ("[green]pass[/]" + (f" ({o.ties} ties)" if o.ties else "")) if o.passed
                  else "[red]FAIL[/]")
    console.print(t)
