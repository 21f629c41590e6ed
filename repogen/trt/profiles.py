"""Optimization profiles from trtexec-style options.

Each of ``--min-shapes``/``--opt-shapes``/``--max-shapes`` is a list of "name:DxDxD" items separated by
commas; its N-th repetition belongs to profile N. ``--shape name:D...`` fixes min = opt = max for that
input in every profile. Defaults for an input nobody named: its static dims; a dynamic batch dim
(dim 0 = -1) ranges over 1..max_batch (8) with opt = max_batch, because Triton's dynamic batcher fills
batches under load, which is when kernel choice matters most. A dynamic non-batch dim has no default.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from repogen.errors import ConfigError
from repogen.ir import Value

DEFAULT_MAX_BATCH = 8

Dims = tuple[int, ...]


@dataclass
class Profile:
    shapes: dict[str, tuple[Dims, Dims, Dims]] = field(default_factory=dict)  # name -> (min, opt, max)


def parse_shapes(spec: str, option: str = "--shape") -> dict[str, Dims]:
    """"x:1x3x224x224,y:1x10" -> {"x": (1, 3, 224, 224), "y": (1, 10)}."""
    out: dict[str, Dims] = {}
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        name, sep, dims = item.rpartition(":")
        if not sep or not name:
            raise ConfigError(f"{option} {item!r}: expected NAME:DIMS such as x:1x3x224x224")
        try:
            shape = tuple(int(d) for d in dims.lower().split("x")) if dims.strip() else ()
        except ValueError:
            raise ConfigError(f"{option} {item!r}: dims must be integers joined by 'x'") from None
        if any(d < 0 for d in shape):
            raise ConfigError(f"{option} {item!r}: dims must not be negative")
        out[name] = shape
    return out


def _merge(specs, option: str) -> dict[str, Dims]:
    out: dict[str, Dims] = {}
    for spec in specs:
        out.update(parse_shapes(spec, option))
    return out


def make_profiles(graph_inputs: list[Value], *, shape: list[str] = (), min_shapes: list[str] = (),
                  opt_shapes: list[str] = (), max_shapes: list[str] = (),
                  max_batch: int | None = None) -> list[Profile]:
    names = {v.name: v for v in graph_inputs}
    fixed = _merge(shape, "--shape")
    per = [[parse_shapes(s, opt) for s in specs]
           for specs, opt in ((min_shapes, "--min-shapes"), (opt_shapes, "--opt-shapes"), (max_shapes, "--max-shapes"))]
    count = max(1, *(len(p) for p in per))
    for specs, opt in zip(per, ("--min-shapes", "--opt-shapes", "--max-shapes")):
        if specs and len(specs) != count:
            raise ConfigError(f"{opt} given {len(specs)} times but {count} profiles are described")
    for d in [fixed] + [s for p in per for s in p]:
        for n in d:
            if n not in names:
                raise ConfigError(f"shape given for {n!r}, which is not a model input (inputs: {', '.join(names)})")
    mb = DEFAULT_MAX_BATCH if max_batch is None else int(max_batch)
    if mb < 1:
        raise ConfigError(f"max batch must be >= 1, not {mb}")
    profiles = []
    for i in range(count):
        prof = Profile()
        for v in graph_inputs:
            got = [p[i].get(v.name) if p else None for p in per]
            if v.name in fixed:
                got = [fixed[v.name]] * 3
            prof.shapes[v.name] = _resolve(v, got, mb, i)
        profiles.append(prof)
    return profiles


def _resolve(v: Value, got: list, max_batch: int, index: int) -> tuple[Dims, Dims, Dims]:
    if v.shape is None:
        if all(g is not None for g in got):
            return tuple(got)  # type: ignore[return-value]
        raise ConfigError(f"input {v.name!r} has unknown rank: give --min/--opt/--max-shapes or --shape for it")
    rank = len(v.shape)
    for g in got:
        if g is not None and len(g) != rank:
            raise ConfigError(f"input {v.name!r} has rank {rank} {list(v.shape)}, but a shape of rank {len(g)} "
                              f"{list(g)} was given")
        if g is not None:
            for axis, (want, have) in enumerate(zip(v.shape, g)):
                if want >= 0 and want != have:
                    raise ConfigError(f"input {v.name!r} dim {axis} is fixed at {want} in the model, "
                                      f"but {have} was given")
    lo, opt, hi = [], [], []
    for axis, d in enumerate(v.shape):
        given = [g[axis] if g is not None else None for g in got]
        if d >= 0:
            lo.append(d), opt.append(d), hi.append(d)
            continue
        gmin, gopt, gmax = given
        if axis == 0:
            gmin = 1 if gmin is None else gmin
            gmax = max_batch if gmax is None else gmax
        if gmin is None and gmax is None and gopt is None:
            raise ConfigError(f"input {v.name!r} dim {axis} is dynamic ({list(v.shape)}) and has no range: give "
                              f"--shape {v.name}:DIMS or --min/--opt/--max-shapes {v.name}:DIMS (profile {index})")
        gmin = gmin if gmin is not None else (gopt if gopt is not None else gmax)
        gmax = gmax if gmax is not None else (gopt if gopt is not None else gmin)
        gopt = gopt if gopt is not None else gmax
        if not gmin <= gopt <= gmax:
            raise ConfigError(f"input {v.name!r} dim {axis}: need min <= opt <= max, got {gmin}, {gopt}, {gmax}")
        if gmin < 1 and axis == 0:
            raise ConfigError(f"input {v.name!r}: batch dim must be >= 1")
        lo.append(gmin), opt.append(gopt), hi.append(gmax)
    return tuple(lo), tuple(opt), tuple(hi)
