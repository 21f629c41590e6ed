"""Find which Paddle format a path holds and load it into a repogen.ir.Graph."""

from __future__ import annotations

import contextlib
import gc
from pathlib import Path
from typing import Iterator

from repogen.errors import ModelFormatError
from repogen.ir import Graph, ModelSource

MODEL_SUFFIXES = (".json", ".pdmodel")
_NOT_PARAMS = {".json", ".pdmodel", ".info", ".yml", ".yaml", ".txt", ".md", ".py", ".npz", ".npy", ".pbtxt"}


def detect(path: str | Path, params_file: str | Path | None = None) -> ModelSource:
    """Work out the format and the model/params files of a directory, path prefix or file."""
    p = Path(path)
    if p.is_dir():
        return _detect_dir(p, params_file)
    if p.is_file():
        if p.name == "__model__":
            return _fluid(p, params_file)
        if p.suffix in MODEL_SUFFIXES:
            return _prefixed(p, params_file)
        if p.suffix == ".pdiparams":
            for suffix in (".json", ".pdmodel"):
                if p.with_suffix(suffix).is_file():
                    return _prefixed(p.with_suffix(suffix), params_file)
            raise ModelFormatError(p, "no .json or .pdmodel next to this parameters file")
        raise ModelFormatError(p, "not a Paddle model file (expected __model__, *.pdmodel or *.json)")
    # a prefix such as dir/inference
    for suffix in (".json", ".pdmodel"):
        cand = p.parent / (p.name + suffix)
        if cand.is_file():
            return _prefixed(cand, params_file)
    raise ModelFormatError(p, "no such model: not a directory, a model file, or a prefix of "
                              f"{p.name}.json / {p.name}.pdmodel")


def _detect_dir(d: Path, params_file: str | Path | None) -> ModelSource:
    if (d / "__model__").is_file():
        return _fluid(d / "__model__", params_file)
    models = sorted(f for f in d.iterdir() if f.is_file() and f.suffix in MODEL_SUFFIXES
                    and (f.suffix == ".pdmodel" or f.with_suffix(".pdiparams").is_file() or _looks_pir(f)))
    # prefer PIR when both a .json and a .pdmodel of the same prefix exist: Paddle 3 loads the .json
    by_prefix: dict[str, Path] = {}
    for f in models:
        if f.stem not in by_prefix or f.suffix == ".json":
            by_prefix[f.stem] = f
    if len(by_prefix) == 1:
        return _prefixed(next(iter(by_prefix.values())), params_file)
    if not by_prefix:
        raise ModelFormatError(d, "no __model__, *.pdmodel or *.json model file in this directory")
    raise ModelFormatError(d, f"several models in this directory ({', '.join(sorted(by_prefix))}); "
                              "pass the path prefix or the model file")


def _looks_pir(f: Path) -> bool:
    try:
        with open(f, "rb") as fh:
            head = fh.read(256)
    except OSError:
        return False
    return b'"base_code"' in head or b'"program"' in head


def _prefixed(model: Path, params_file: str | Path | None) -> ModelSource:
    fmt = "pir" if model.suffix == ".json" else "paddle2"
    if params_file is not None:
        params = Path(params_file)
    else:
        params = model.with_suffix(".pdiparams")
    if not params.is_file():
        # a model without parameters is legal; the program then declares no persistable tensors
        params_or_none = None
    else:
        params_or_none = params
    return ModelSource(format=fmt, model_file=model, params_file=params_or_none)


def _fluid(model: Path, params_file: str | Path | None) -> ModelSource:
    d = model.parent
    if params_file is not None:
        pf = Path(params_file)
        if not pf.is_absolute() and not pf.exists():
            pf = d / pf
        return ModelSource(format="fluid-combined", model_file=model, params_file=pf)
    if (d / "__params__").is_file():
        return ModelSource(format="fluid-combined", model_file=model, params_file=d / "__params__")
    others = [f for f in d.iterdir() if f.is_file() and f.name != "__model__" and not f.name.startswith(".")
              and f.suffix not in _NOT_PARAMS]
    if len(others) == 1 and not _is_var_file_of(model, others[0].name):
        return ModelSource(format="fluid-combined", model_file=model, params_file=others[0])
    return ModelSource(format="fluid-separate", model_file=model, params_file=None)


def _is_var_file_of(model: Path, name: str) -> bool:
    """A single-parameter Fluid model has exactly one file named after its variable: that is not combined."""
    try:
        data = model.read_bytes()
    except OSError:
        return False
    return name.encode() in data


def load_model(path: str | Path, params_file: str | Path | None = None) -> Graph:
    """Read a Paddle inference model (Fluid, 2.x .pdmodel or 3.x PIR .json) into the repogen IR.

    path: a model directory, a path prefix (``dir/inference``), or the model file itself.
    params_file: the combined parameters file when it has an unusual name (Fluid ``__params__`` etc.).
    """
    source = detect(path, params_file)
    with _gc_paused():
        if source.format == "pir":
            from repogen.paddle.pir import read_pir

            return read_pir(source)
        from repogen.paddle.legacy import read_legacy

        return read_legacy(source)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """The readers build millions of small acyclic objects; the cyclic collector would rescan them again and
    again (a 200,000-op program read 5-10x slower with it on). Reference counting frees them as usual."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


__all__ = ["load_model", "detect"]
