"""Renaming a model's inputs and outputs for Triton (``--input-names/--output-names``, spec
``input_names``/``output_names``).

Paddle's tensor names are often internal (``linear_0.tmp_1``, ``fetch_name_0``). A rename changes the names
clients see: config.pbtxt, the TensorRT network's input/output tensors (so the plan's bindings), the
manifest, and the paddle target's model.py, which still feeds and fetches Paddle's own names. The
manifest records ``paddle_names`` (Triton name -> Paddle name) so the validation harness feeds the Paddle
reference with the right tensors. Inside the converter the graph keeps Paddle's names; only its
boundary is renamed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

from repogen.errors import ConfigError

# Triton takes any string, but a tensor name also appears in URLs, text-format configs and shell lines
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-/]{0,127}$")


def parse_renames(text: str | None, option: str) -> dict[str, str]:
    """``"old:new,old2:new2"`` -> {old: new}. The last ``:`` splits, so Paddle names keep any ``:``."""
    if not text:
        return {}
    out: dict[str, str] = {}
    for part in text.split(","):
        old, sep, new = part.strip().rpartition(":")
        if not sep or not old or not new:
            raise ConfigError(f"{option}: {part.strip()!r} is not OLD:NEW (for example linear_0.tmp_1:scores)")
        if old in out:
            raise ConfigError(f"{option}: {old!r} is renamed twice")
        out[old] = new
    return out


def check_table(value: Any, where: str) -> dict[str, str]:
    """A spec file's ``input_names = { old = "new" }`` table."""
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ConfigError(f"{where}: expected a table of old = \"new\" names, got {value!r}")
    return dict(value)


@dataclass
class Renames:
    """Paddle name -> Triton name for the inputs and outputs of one model (identity where not renamed)."""

    inputs: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return any(k != v for k, v in (*self.inputs.items(), *self.outputs.items()))

    @property
    def all(self) -> dict[str, str]:
        return {**self.inputs, **self.outputs}

    def paddle_names(self) -> dict[str, str]:
        """Triton name -> Paddle name, for the tensors that were renamed (manifest, model.py)."""
        return {new: old for old, new in self.all.items() if old != new}

    def profiles(self, profiles: list[dict]) -> list[dict]:
        return [{self.inputs.get(k, k): v for k, v in p.items()} for p in profiles]

    def engine(self, engine: Any) -> Any:
        """An EngineDesc with Triton's names (the paddle target's engine is the graph's)."""
        return replace(engine,
                       inputs=[replace(t, name=self.inputs.get(t.name, t.name)) for t in engine.inputs],
                       outputs=[replace(t, name=self.outputs.get(t.name, t.name)) for t in engine.outputs],
                       profiles=self.profiles(engine.profiles))

    def paddle_shapes(self, shapes: list[str]) -> list[str]:
        """Shape options written with the new input names -> Paddle's names (make_profiles takes those)."""
        back = {new: old for old, new in self.inputs.items()}
        out = []
        for profile in shapes:
            parts = []
            for part in profile.split(","):
                name, sep, dims = part.rpartition(":")
                parts.append(f"{back.get(name.strip(), name.strip())}{sep}{dims}" if sep else part)
            out.append(",".join(parts))
        return out


def resolve(spec: Any, inputs: list[str], outputs: list[str]) -> Renames:
    """Check ``spec.input_names``/``spec.output_names`` against the model's own I/O names."""
    renames = Renames()
    for what, given, names, into in (("input", spec.input_names, inputs, renames.inputs),
                                     ("output", spec.output_names, outputs, renames.outputs)):
        unknown = [old for old in given if old not in names]
        if unknown:
            raise ConfigError(f"{spec.name}: {what}_names renames {unknown[0]!r}, which is not a model {what} "
                              f"(the model's {what}s: {', '.join(names)})")
        for old in names:
            into[old] = given.get(old, old)
    final = list(renames.inputs.values()) + list(renames.outputs.values())
    for old, new in renames.all.items():
        if old != new and not _NAME_RE.match(new):
            raise ConfigError(f"{spec.name}: new name {new!r} for {old!r} may only use letters, digits, "
                              "'_', '-', '.', '/' (at most 128 characters)")
    dupes = sorted({n for n in final if final.count(n) > 1})
    if dupes:
        raise ConfigError(f"{spec.name}: after renaming, {dupes[0]!r} names more than one input/output")
    return renames


def apply_to_spec(spec: Any, renames: Renames) -> Any:
    """The spec with its shape options in Paddle's names (a user may write them with either name)."""
    if not renames:
        return spec
    return replace(spec, shape=renames.paddle_shapes(spec.shape), min_shapes=renames.paddle_shapes(spec.min_shapes),
                   opt_shapes=renames.paddle_shapes(spec.opt_shapes), max_shapes=renames.paddle_shapes(spec.max_shapes))


def rename_map(names: Mapping[str, str] | None, name: str) -> str:
    return names.get(name, name) if names else name


# Triton refuses nothing in particular here, but a model name is a folder name, a URL path segment and a
# metric label: keep to characters that are safe in all three.
_MODEL_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$")


def validate_name(name: str, where: str = "model name") -> str:
    if not isinstance(name, str):
        raise ConfigError(f"{where}: model name must be a string, got {type(name).__name__} {name!r}")
    if not name:
        raise ConfigError(f"{where}: empty model name")
    if "/" in name or "\\" in name or name in (".", ".."):
        raise ConfigError(f"{where}: model name {name!r} contains a path separator")
    if name.startswith("."):
        raise ConfigError(f"{where}: model name {name!r} starts with a dot (Triton skips hidden folders)")
    if not _MODEL_NAME_RE.match(name):
        raise ConfigError(f"{where}: model name {name!r} may only use letters, digits, '_', '-', '.' "
                          "(at most 128 characters)")
    return name
