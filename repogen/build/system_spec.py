"""The spec's top-level ``[ocr_system]`` table: which of the build's models make the PP-OCR system.

```toml
[ocr_system]                 # or: ocr_system = false (no system even with one detector and one recognizer)
name = "ocr_system"          # the system's Triton model name (default ocr_system)
detector = "PP-OCRv5_mobile_det"
recognizer = "PP-OCRv5_server_rec"
classifier = "PP-LCNet_x0_25_textline_ori"   # or false: no text-line orientation classifier
```

A member left out is the build's only model of that kind (an error when there are several); a classifier
left out is the only text-line orientation classifier, or none when the build has none. Every mistake is
one ``ConfigError`` naming the key, checked when the spec is read (the kinds come from the models' deploy
configs), before anything is converted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from repogen.build.deploy_configs import deploy_config
from repogen.errors import ConfigError
from repogen.naming import validate_name
from repogen.pipelines.members import WHAT, member_kind

KEYS = {"name", "detector", "recognizer", "classifier"}
DEFAULT_NAME = "ocr_system"
ROLES = {"detector": "ocr_det", "recognizer": "ocr_rec", "classifier": "textline"}
PIPELINE_SUFFIXES = ("_pre", "_post", "_pipeline", "_pipeline_raw")


@dataclass
class OcrSystemSpec:
    """The members, resolved to model names when the spec is read; ``enabled`` False: build no system."""

    enabled: bool = True
    name: str = DEFAULT_NAME
    detector: str | None = None
    recognizer: str | None = None
    classifier: str | None = None  # None: no classifier
    # set from a PaddleX pipeline config (repogen.build.paddlex_pipeline); None / 0: the system's defaults
    rec_batch_size: int | None = None  # crops recognised together (padded to the widest, as PaddleX batches)
    cls_batch_size: int | None = None
    rec_score_thresh: float = 0.0  # lines whose text score is below it are dropped (PaddleX text_rec_score_thresh)


def parse(value: Any, specs: list[Any], where: str) -> OcrSystemSpec:
    """Check the ``ocr_system`` value against the build's models (``specs``) and resolve every member."""
    where = f"{where}: ocr_system"
    if value is False:
        return OcrSystemSpec(enabled=False)
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a table [ocr_system] (name, detector, recognizer, classifier) or "
                          f"false, got {value!r}")
    unknown = sorted(set(value) - KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(KEYS))})")
    name = validate_name(value.get("name", DEFAULT_NAME), f"{where}.name")
    if name.endswith(PIPELINE_SUFFIXES):
        raise ConfigError(f"{where}.name: {name!r} ends like a pipeline stage ({', '.join(PIPELINE_SUFFIXES)}); "
                          "choose another name")
    taken = {s.name + suffix: s.name for s in specs for suffix in ("",) + PIPELINE_SUFFIXES}
    if name in taken:
        raise ConfigError(f"{where}.name: {name!r} is already a model of this build (from {taken[name]}); "
                          "choose another name")
    kinds = {s.name: member_kind(deploy_config(s)) if getattr(s, "pipeline", True) else None for s in specs}
    out = OcrSystemSpec(name=name)
    for key, kind in ROLES.items():
        found = [n for n, k in kinds.items() if k == kind]
        chosen = value.get(key)
        if key == "classifier" and chosen is False:
            continue
        if chosen is None:
            if len(found) > 1:
                raise ConfigError(f"{where}.{key}: the build holds {len(found)} models that could be the "
                                  f"{WHAT[kind]}: {', '.join(found)}; name one"
                                  + (" (or false for none)" if key == "classifier" else ""))
            if not found and key != "classifier":
                raise ConfigError(f"{where}: the build holds no {WHAT[kind]}")
            setattr(out, key, found[0] if found else None)
            continue
        if not isinstance(chosen, str):
            raise ConfigError(f"{where}.{key}: expected a model name{' or false' if key == 'classifier' else ''}, "
                              f"got {chosen!r}")
        if chosen not in kinds:
            raise ConfigError(f"{where}.{key}: {chosen!r} is not a model of this build (models: "
                              f"{', '.join(kinds)})")
        if kinds[chosen] != kind:
            has = f"its deploy config makes it a {kinds[chosen]} model" if kinds[chosen] else \
                "it has no deploy config (or its pipeline is off)"
            raise ConfigError(f"{where}.{key}: {chosen!r} is not a {WHAT[kind]}: {has}")
        setattr(out, key, chosen)
    return out
