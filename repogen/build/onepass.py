"""One pass through a model for ``repogen build``: read, clean and (int8) calibrate once, and the numeric check
against Paddle on those same forms (the plan builder and the stand-in convert the same cleaned graph)."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any, Callable

from repogen.errors import ConversionError, RepogenError, UnsupportedOpError
from repogen.ir import Graph
from repogen.build.spec import ModelSpec
from repogen.trt.convert import find_unsupported, unsupported_reasons
from repogen.verify.conversion import check_graph, check_tasks
from repogen.verify.tasks import TASK_KINDS


@dataclass
class ModelForms:
    """The model as read, cleaned and (int8) calibrated: each made once, on first use, and shared by the numeric
    check and the plan builder."""
    spec: ModelSpec
    graph: Graph
    _cleaned: Graph | None = None
    _quantized: Any = None

    def cleaned(self) -> Graph:
        if self._cleaned is None:
            from repogen.trt.passes import clean_graph

            self._cleaned = clean_graph(self.graph)
        return self._cleaned

    def quantized(self) -> Any:
        """calibrate.Int8Model of the cleaned graph."""
        if self._quantized is None:
            from repogen.trt.calibrate import quantize_model

            self._quantized = quantize_model(self.cleaned(), self.spec.calib_data, self.spec.calib_method)
        return self._quantized

    def for_plan(self) -> Graph:
        """What the plan builder converts: cleaned, with the Q/DQ ops of calibration for int8."""
        return self.quantized().graph if self.spec.precision == "int8" else self.cleaned()


def numeric_check(spec: ModelSpec, target: str, forms: ModelForms, profile_objs: list[Any],
                  warn: Callable[[str], None], stage: Callable[[str], None], deploy: Any = None) -> dict:
    """The conversion check (repogen.verify.conversion) as the build's report records it.

    It gates the artifacts it concerns: a plan or a NumPy stand-in that fails it is not written. The paddle
    target deploys Paddle itself, so there a failing (or impossible) conversion is a warning naming the outputs
    and the verdict, not a failed build."""
    if not spec.check:
        return {"status": "skipped", "reason": "--no-check"}
    if importlib.util.find_spec("paddle") is None:
        return {"status": "skipped", "reason": "paddlepaddle is not installed"}
    try:
        missing = find_unsupported(forms.cleaned())
        if missing:
            raise UnsupportedOpError(missing, unsupported_reasons(missing))
        quantized = None
        if spec.precision == "int8":
            stage("calibrate")
            quantized = forms.quantized()
        stage("check")
        if deploy is not None and deploy.kind in TASK_KINDS and quantized is None:
            # the images the model is for, through its deploy config, and the answers its pipeline reads
            report = check_tasks(forms.graph, deploy, spec.precision, cleaned=forms.cleaned(), count=2,
                                 model=spec.name)
        elif not profile_objs and any(d < 0 for v in forms.graph.input_values() for d in (v.shape or [])[1:]):
            return {"status": "skipped", "reason": "no input shapes to check at (no profile, no deploy config)"}
        else:  # inputs at the first profile's opt shapes: the shapes the engine is tuned for
            report = check_graph(forms.graph, profile_objs[:1], spec.precision, cleaned=forms.cleaned(),
                                 quantized=quantized, model=spec.name)
    except (UnsupportedOpError, ConversionError) as exc:
        if target == "paddle":
            warn(f"{spec.name}: the NumPy-backend check could not convert the model (the paddle target does "
                 f"not need it): {' '.join(str(exc).split())}")
            return {"status": "unsupported", "reason": str(exc)}
        raise
    outputs = {o.name: {"passed": bool(o.passed), "criterion": o.criterion, "reason": o.reason,
                        "rel_l2": float(o.rel_l2), "max_abs": float(o.max_abs),
                        "outside_share": float(o.outside_share)}
               | ({"noise_rel_l2": o.noise_rel_l2} if o.noise_rel_l2 is not None else {})
               | ({"top1_agreement": o.top1_agreement} if o.top1_agreement is not None else {})
               | ({"ties": o.ties} if o.ties else {})
               for o in report.outputs}
    result = {"status": "passed" if report.passed else "failed", "outputs": outputs, "inputs": report.inputs} | (
        {"int8": report.int8} if report.int8 else {}) | (
        {"tasks": [t.to_dict() for t in report.tasks]} if report.tasks else {})
    if not report.passed:
        lines = "\n".join(f"  {line}" for line in report.failures() + [f"{t.kind}: {t.summary}" for t in report.tasks
                                                                          if not t.passed])
        if target == "paddle":
            warn(f"WARNING: {spec.name}: the NumPy-backend conversion differs from Paddle ({spec.precision}); the "
                 f"paddle target serves Paddle itself and is built, but a TensorRT build of it would not be:\n{lines}")
            return result
        raise RepogenError(f"{spec.name}: numerical check against Paddle failed ({spec.precision}); "
                           f"--no-check skips it:\n{lines}")
    return result
