"""The one place that judges a conversion's outputs against Paddle's.

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
"""
