"""One pass through a model for ``repogen build``: read, clean and (int8) calibrate once, and the numeric check
against Paddle on those same forms (the plan builder and the stand-in convert the same cleaned graph)."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any, Callable

from repogen.errors import ConversionError, RepogenError, UnsupportedOpError
from repogen.ir import Graph
from repogen.build.spec import ModelSpec


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
                   warn: Callable[[str], None], stage: Callable[[str], None]) -> dict:
    if not spec.check:
        return {"status": "skipped", "reason": "--no-check"}
    if importlib.util.find_spec("paddle") is None:
        return {"status": "skipped", "reason": "paddlepaddle is not installed"}
    try:
        from repogen.trt.check import check_graph
        from repogen.trt.convert import find_unsupported, unsupported_reasons
    except ImportError as exc:
        msg = f"{spec.name}: numerical check unavailable: {exc}"
        if target == "paddle":
            warn(msg)
            return {"status": "unavailable", "reason": str(exc)}
        raise RepogenError(msg) from exc
    try:
        missing = find_unsupported(forms.cleaned())
        if missing:
            raise UnsupportedOpError(missing, unsupported_reasons(missing))
        quantized = None
        if spec.precision == "int8":
            stage("calibrate")
            quantized = forms.quantized()
        stage("check")
        # inputs at the first profile's opt shapes: the shapes the engine is tuned for
        report = check_graph(forms.graph, profile_objs[:1], spec.precision, cleaned=forms.cleaned(),
                             quantized=quantized, model=spec.name)
    except (UnsupportedOpError, ConversionError) as exc:
        # The paddle target runs Paddle itself and never needs the converter: a gap there is news, not
        # a reason to refuse a model that will serve correctly.
        if target == "paddle":
            warn(f"{spec.name}: the NumPy-backend check could not convert the model (the paddle target does "
                 f"not need it): {' '.join(str(exc).split())}")
            return {"status": "unsupported", "reason": str(exc)}
        raise
    outputs = {o.name: {"rel_err": float(o.rel_err), "tolerance": float(o.tolerance), "passed": bool(o.passed)}
               | ({"top1_agreement": o.top1_agreement} if o.top1_agreement is not None else {})
               for o in report.outputs}
    if not report.passed:
        lines = [f"  {n}: rel err {o['rel_err']:.3g} > {o['tolerance']:g}" for n, o in outputs.items()
                 if not o["passed"]]
        raise RepogenError(f"{spec.name}: numerical check against Paddle failed ({spec.precision}); "
                           "--no-check skips it:\n" + "\n".join(lines))
    return {"status": "passed", "outputs": outputs} | ({"int8": report.int8} if report.int8 else {})
