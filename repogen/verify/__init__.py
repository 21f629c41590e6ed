"""The one place that judges a conversion's outputs against Paddle's (check, build, partition check, validate and
pipeline validate all use it).

Layer: imports errors/ir and repogen.trt (the NumPy backend for noise floors and tie scores), never the layers
above (partition, pipelines, triton, harness, cli).

API
---
``rule_for(precision, prequantized=False) -> Rule``  (tolerances.py)
    The one tolerance table (``TOLERANCES``): per precision ("fp32", "fp16", "int8") and for models that
    quantize themselves (``is_prequantized(graph)``): ``atol`` (a fraction of max|ref|), ``rtol``,
    ``outside_share``, ``noise_factor``, ``tie_tol``, and int8's ``max_rel_l2`` / ``min_top1``.
    ``Rule.to_dict()`` is what a manifest records.

``compare(actual, expected, rule, *, name="", noise=None, tie=None, detection=None) -> OutputVerdict``
    One output (compare.py). ``noise``: a ``NoiseFloor`` (fp32 rules); ``tie``: a ``TieEvidence`` for outputs
    selected by score; ``detection``: "rows" / "index" for NMS outputs. ``OutputVerdict`` has ``passed``,
    ``reason`` (one line), ``criterion``, ``max_abs``, ``max_rel``, ``rel_l2``, ``outside_share``, ``atol``,
    ``rtol``, ``ties``, ``noise_*``, ``paddle_to_float64``, ``top1_agreement`` and ``to_dict()``.
``compare_all(actual, expected, rule, *, noise=None, ties=None, detections=None) -> list[OutputVerdict]``
    The same over dicts keyed by output name (the keys of ``expected``).

``noise_floors(network, feeds, fp32_outputs=None) -> {engine output: NoiseFloor}``  (noise.py)
    fp32-vs-float64 distance of an fp32 NumPy-backend network (``numpy_trt.execute(..., float64=True)``);
    ``fp32_outputs`` only ever the same network's float32 run.
``graph_noise_floors(cleaned_graph, feeds) -> {graph output: NoiseFloor}``: the same, converting the graph
    (for a plan, a served model, partition regions judged at fp32).

fp16 (and int8) conversions are judged together with their fp32 twin: the same graph converted at fp32 and
judged under ``rule_for("fp32")`` with its noise floor, passed as ``compare(..., twin=verdict32)``; a mistake
of the converters shows there far above the rounding noise even where fp16's own error hides it.
``fp32_twins(cleaned_graph, feeds, paddle_by_name, prequantized=False) -> {graph output: OutputVerdict}``
builds them where the caller has no fp32 network of its own (validate of an fp16 plan).

``tie_sources(graph, outputs=None) -> {output: TieSource}``  (ties.py)
    Outputs selected by score: "arg"/"topk" indices, "gather" rows (through top-k indices), "derived" values.
    ``with_outputs(graph, evidence_names(sources))`` makes the network output the scores too;
    ``TieEvidence.from_arrays(source, ours_by_graph_name, paddle_by_graph_name=None)`` builds compare's ``tie``.
    ``TieScorer`` (validate): scores recomputed from the source model for a served model's outputs.

``detection_outputs(graph) -> {output: "rows"|"index"}``  (detections.py), plus ``as_detection_set``,
``align_detection_rows`` and ``detection_pair``.

Inputs (inputs.py; random tensors need NumPy only, images need OpenCV - the pipelines extra)
------------------------------------------------------------------------------------------
``random_inputs(graph, shapes, seed=0) -> {input: array}``
    Seeded feeds for a graph's inputs: floats uniform in [-1, 1), integers in [0, 8), booleans 0/1.
``random_array(rng, dtype, shape) -> array``: one such tensor (harness's ``random_tensor``).
``task_inputs(deploy_config, input_names, count=None, seed=0) -> [TaskInput]``
    Realistic feeds where a deploy config exists: generated images (``generated_images``: tinted text pages
    with upside-down lines, text-line crops from the recognizer's dictionary, drawn shapes) through the config's
    own pre-processing. ``TaskInput``: ``feeds``, ``infos`` (per batch row ``[src_h, src_w, ratio_h, ratio_w]``),
    ``images`` (``GeneratedImage``: the BGR image and the ``TextLine``s drawn), ``label``.
``text_page``, ``text_line``, ``sample_texts``, ``text_image``, ``shapes_image``, ``encode``: the generators.

Task-level checks (tasks.py; the pipeline's own post-processing, then the answers compared)
--------------------------------------------------------------------------------------------
``task_check(deploy_config, task_input, got_outputs, want_outputs, *, precision="fp32", tolerance=None,
tie_scores=None, nms=False) -> TaskVerdict`` (``kind``, ``passed``, one-line ``summary``, ``details``,
``to_dict()``), one per TaskInput; ``combine(verdicts)`` merges them. One function per kind on raw outputs:
``check_ocr_det``, ``check_ocr_rec``, ``check_classification``, ``check_detection``, ``check_segmentation``,
``check_keypoints``; ``compare_answers(kind, got, want, ...)`` applies the same rules to post-processed answers
(what a served pipeline or the OCR system returns). ``task_tolerance(precision) -> TaskTolerance``.

How callers use it (``repogen check``, sketched)::

    rule = rule_for(precision, is_prequantized(cleaned))
    sources = tie_sources(cleaned, graph.outputs)
    fetched = with_outputs(cleaned, evidence_names(sources))
    conv = convert_graph(fetched, numpy_trt, precision=precision, ...)
    ours = numpy_trt.execute(conv.network, feeds)          # by engine name
    by_graph = {v: ours[conv.outputs[i][0]] for i, v in enumerate(fetched.outputs)}
    noise = noise_floors(conv.network, feeds, ours) if precision == "fp32" else {}
    twins = {} if precision == "fp32" else {v.name: v for v in <the same steps at "fp32">}
    for i, name in enumerate(graph.outputs):
        engine = conv.outputs[i][0]
        tie = TieEvidence.from_arrays(sources[name], by_graph, paddle) if name in sources else None
        verdict = compare(ours[engine], paddle[name], rule, name=name, noise=noise.get(engine), tie=tie,
                          detection=detection_outputs(cleaned).get(name), twin=twins.get(name))
"""

from repogen.verify.compare import OutputVerdict, compare, compare_all, fp32_twins
from repogen.verify.detections import align_detection_rows, as_detection_set, detection_outputs, detection_pair
from repogen.verify.noise import NoiseFloor, graph_noise_floors, noise_floors
from repogen.verify.ties import (
    TieEvidence,
    TieScorer,
    TieSource,
    compare_ties,
    evidence_names,
    network_scores,
    tie_sources,
    with_outputs,
)
from repogen.verify.tolerances import TOLERANCES, Rule, is_prequantized, rule_for

__all__ = [
    "OutputVerdict", "compare", "compare_all", "fp32_twins",
    "Rule", "TOLERANCES", "rule_for", "is_prequantized",
    "NoiseFloor", "noise_floors", "graph_noise_floors",
    "TieSource", "TieEvidence", "TieScorer", "tie_sources", "compare_ties", "evidence_names", "network_scores",
    "with_outputs",
    "detection_outputs", "as_detection_set", "align_detection_rows", "detection_pair",
]
