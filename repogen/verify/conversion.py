"""The conversion check (what ``repogen check`` and the build's numeric check run): convert with the NumPy
backend, run, and judge every output against Paddle Inference (or a given reference) through the one
verification core (repogen.verify.compare): elementwise bounds, the network's own noise floor at fp32, the
fp32 twin at fp16, tie-aware selections and detection sets."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from repogen.errors import ConfigError
from repogen.trt import numpy_trt
from repogen.trt import convert
from repogen.trt.convert import find_unsupported
from repogen.trt.profiles import Profile, parse_shapes
from repogen.trt.registry import why_unsupported
from repogen.verify.compare import OutputVerdict, compare
from repogen.verify.detections import detection_outputs
from repogen.verify.inputs import random_inputs
from repogen.verify.noise import noise_floors
from repogen.verify.ties import TieEvidence, evidence_names, tie_sources, with_outputs
from repogen.verify.tolerances import is_prequantized, rule_for

if TYPE_CHECKING:
    from repogen.ir import Graph
    from repogen.trt.calibrate import Int8Model


@dataclass
class CheckReport:
    model: str
    precision: str
    outputs: list[OutputVerdict] = field(default_factory=list)
    unsupported: list[tuple[int, str, list[str]]] = field(default_factory=list)
    input_shapes: dict[str, list[int]] = field(default_factory=dict)
    int8: dict | None = None  # calibration summary (method, samples, accuracy change vs FP32) for --int8
    tasks: list[Any] = field(default_factory=list)  # task-level verdicts (repogen.verify.tasks) where a deploy config exists
    inputs: str = "random"  # "random" tensors, "given" (--inputs), or "realistic" (the deploy config's images)
    # the last run's arrays by graph output name: (ours, Paddle's), for the task check; never serialized
    arrays: tuple[dict, dict] | None = field(default=None, repr=False, compare=False)

    @property
    def passed(self) -> bool:
        if self.unsupported or not self.outputs:
            return False
        if all(o.passed for o in self.outputs):
            return True
        # fp16 / int8: elementwise bounds cannot fit every output of every model (a near-empty DB map, a detector's
        # near-threshold boxes); there the answers the user reads decide, provided the fp32 twin passes, which is
        # where a mistake of the converters shows
        return (self.precision != "fp32" and bool(self.tasks) and all(t.passed for t in self.tasks)
                and all(o.twin is not None and o.twin.get("passed") for o in self.outputs))

    def failures(self) -> list[str]:
        """One line per failing output: its name and why."""
        return [f"{o.name}: {o.reason}" for o in self.outputs if not o.passed]

    def to_dict(self) -> dict:
        d = asdict(replace(self, arrays=None))
        d.pop("arrays")
        d["passed"] = self.passed
        d["unsupported"] = [{"position": p, "op": t, "outputs": o, "reason": why_unsupported(t)}
                            for p, t, o in self.unsupported]
        d["tasks"] = [t.to_dict() for t in self.tasks]
        return d


def check_model(model_path: str | Path, *, inputs: dict | None = None, reference: dict | None = None,
                fp16: bool = False, shapes: list[str] = (), seed: int = 0, int8: bool = False,
                calib_data: str | Path | None = None, calib_method: str = "max",
                deploy_config: Any = None) -> CheckReport:
    """`repogen check`: load and clean the model, calibrate it for ``int8``, then check_graph.

    ``deploy_config`` (a repogen.pipelines.deploy_config.DeployConfig, as the build reads it beside the model):
    without inputs, a reference or shapes of the user's, the model is checked on the images its task is for,
    and the task-level answers are compared too (check_tasks).

    With ``int8`` the model is calibrated on ``calib_data`` (repogen.trt.calibrate) and checked on the
    held-out samples against Paddle's FP32 outputs: relative error <= 0.1 and, for [N, C] outputs, top-1
    agreement >= 0.9."""
    from repogen.paddle import load_model
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
    if deploy_config is not None and not (given or inputs is not None or reference is not None or int8):
        return check_tasks(graph, deploy_config, precision, cleaned=cleaned, seed=seed, model=str(model_path))
    quantized = None
    if int8 and not find_unsupported(cleaned):  # check_graph reports those
        from repogen.trt.calibrate import quantize_model

        quantized = quantize_model(cleaned, calib_data, calib_method)
    report = check_graph(graph, profiles, precision, reference, cleaned=cleaned, quantized=quantized, inputs=inputs,
                         seed=seed, model=str(model_path))
    report.inputs = "given" if inputs is not None else "random"
    return report


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
    if cleaned is None:
        from repogen.trt.passes import clean_graph

        cleaned = clean_graph(graph)
    report = CheckReport(model or str(graph.source.model_file), precision)
    report.unsupported = find_unsupported(cleaned)
    if report.unsupported:
        return report
    prequantized = is_prequantized(cleaned)
    judged = cleaned
    if precision == "int8":
        if quantized is None:
            raise ConfigError("an int8 check needs the calibrated model (repogen.trt.calibrate.quantize_model)")
        report.int8 = quantized.summary()
        judged, inputs, reference = quantized.graph, quantized.heldout, None
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
        # indices and rows picked by score are judged tie-aware: the network also outputs the scores
        sources = tie_sources(judged, graph.outputs) if precision != "int8" else {}
        ours = _run(judged, sources, feeds, precision)
        # fp32: the network's own rounding noise (float32 vs float64 runs of the same network);
        # fp16 / int8: the same graph at fp32, judged on its own, is the twin that shows the converters' mistakes
        twin = _run(cleaned, sources, feeds, "fp32") if precision != "fp32" else ours
        if runner is not None:
            reference = runner.run(feeds)
    finally:
        if runner is not None:
            runner.close()
    expected = _by_graph_name(reference, graph.outputs)
    kinds = detection_outputs(cleaned)
    rule32 = rule_for("fp32", prequantized)
    rule = rule_for(precision, prequantized and precision != "int8")
    for name in graph.outputs:
        tie = TieEvidence.from_arrays(sources[name], twin.values, expected) if name in sources else None
        twin_verdict = compare(twin.values[name], expected[name], rule32, name=name, tie=tie,
                               detection=kinds.get(name))
        if not twin_verdict.passed and twin.floor(name) is not None:  # the noise allowance, only where needed
            twin_verdict = compare(twin.values[name], expected[name], rule32, name=name, noise=twin.floor(name),
                                   tie=tie, detection=kinds.get(name))
        if precision == "fp32":
            report.outputs.append(twin_verdict)
            continue
        tie = TieEvidence.from_arrays(sources[name], ours.values, expected) if name in sources else None
        report.outputs.append(compare(ours.values[name], expected[name], rule, name=name, tie=tie,
                                      detection=kinds.get(name), twin=twin_verdict))
    report.arrays = ({n: ours.values[n] for n in graph.outputs}, expected)
    return report


def check_tasks(graph: Graph, cfg: Any, precision: str = "fp32", *, cleaned: Graph | None = None,
                count: int | None = None, seed: int = 0, model: str | None = None) -> CheckReport:
    """The conversion check on the inputs the model is for: images generated for the deploy config's task
    (repogen.verify.inputs.task_inputs: text pages, text lines, shapes) through its own pre-processing. Every
    output of every input is judged elementwise, and the answers the deploy config's post-processing reads from
    them are compared (repogen.verify.tasks)."""
    from repogen.verify.inputs import task_inputs
    from repogen.verify.tasks import combine, task_check

    if cleaned is None:
        from repogen.trt.passes import clean_graph

        cleaned = clean_graph(graph)
    report = CheckReport(model or str(graph.source.model_file), precision, inputs="realistic")
    report.unsupported = find_unsupported(cleaned)
    if report.unsupported:
        return report
    nms = bool(detection_outputs(cleaned))
    verdicts = []
    for task_input in task_inputs(cfg, graph.inputs, count=count, seed=seed):
        one = check_graph(graph, precision=precision, cleaned=cleaned, inputs=task_input.feeds, model=model)
        for o in one.outputs:
            o.name = f"{o.name} [{task_input.label}]"
        report.outputs += one.outputs
        report.input_shapes = one.input_shapes
        ours, paddle = one.arrays
        verdicts.append(task_check(cfg, task_input, ours, paddle, precision=precision, nms=nms))
    report.tasks = [combine(verdicts)]
    return report


@dataclass
class _Run:
    values: dict[str, np.ndarray]  # graph value name -> array (outputs and tie evidence)
    network: Any  # the NumPy-backend network that ran
    feeds: dict[str, np.ndarray]
    raw: dict[str, np.ndarray]  # engine output name -> array
    engine_names: dict[str, str]  # graph output name -> engine output name
    precision: str
    _floors: dict[str, Any] | None = None

    def floor(self, name: str) -> Any:
        """The fp32 network's noise floor for graph output ``name`` (None for integer or data-dependent outputs).
        A float64 run of the whole network, made once and only when an output needs it: most outputs pass the
        elementwise bound, and the float64 run costs as much as the float32 one."""
        if self.precision != "fp32":
            return None
        if self._floors is None:
            self._floors = noise_floors(self.network, self.feeds, self.raw)
        return self._floors.get(self.engine_names.get(name, ""))


def _run(graph: Any, sources: dict, feeds: dict[str, np.ndarray], precision: str) -> _Run:
    """``graph`` converted at ``precision`` on the NumPy backend and run on ``feeds`` (at fp32 its noise floor on
    demand: ``_Run.floor``)."""
    fetched = with_outputs(graph, evidence_names(sources)) if sources else graph
    # one profile pinned at the example shapes; the network itself keeps the model's -1 dims
    profile = Profile({n: (tuple(np.shape(a)),) * 3 for n, a in feeds.items()})
    conv = convert.convert_graph(fetched, numpy_trt, precision=precision, profiles=[profile], clean=False)
    out = numpy_trt.execute(conv.network, feeds)
    engine = {fetched.outputs[i]: e for i, (e, _, _) in enumerate(conv.outputs)}
    return _Run({n: out[e] for n, e in engine.items()}, conv.network, feeds, out,
                {n: e for n, e in engine.items() if n in graph.outputs}, precision)


def _by_graph_name(reference: dict[str, np.ndarray], outputs: Sequence[str]) -> dict[str, np.ndarray]:
    """The reference's arrays by the graph's output names (Paddle Inference may rename fetch targets; order is
    kept)."""
    by_pos = list(reference.values())
    out = {}
    for i, name in enumerate(outputs):
        if name in reference:
            out[name] = reference[name]
        elif len(by_pos) == len(outputs):
            out[name] = by_pos[i]
        else:
            raise ConfigError(f"reference has no output {name!r} (has: {', '.join(reference)})")
    return out
