"""``model_warmup`` samples that every instance can run, and the check that refuses one it cannot.

Triton runs each warmup sample on every model instance before the model is served; an instance whose
TensorRT profiles cannot hold the sample fails its warmup and the model does not load. A sample of
``batch_size`` B is B batch-1 requests executed together, so the engine sees batch B. The sample is
therefore taken from an instance group's own profiles (its opt dims), and kept only if every other group
has a profile that holds it too.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from repogen.errors import ConfigError
from repogen.repository import profile_use
def _full_shape(shape: Sequence[int], profile: Any, name: str, batch: int | None) -> list[int]:
    """Concrete dims: fixed ones as they are, dynamic ones from the profile's opt (1 without a profile),
    the batch dim (when ``batch`` is given) set to ``batch``."""
    opt = profile.get(name, (None, None, None))[1] if profile is not None else None
    full = [d if d >= 0 else (int(opt[i]) if opt is not None else 1) for i, d in enumerate(shape)]
    if batch is not None and full:
        full[0] = batch
    return full


def _fits_group(profiles: Sequence[Any], indices: Sequence[int], shapes: dict[str, list[int]]) -> bool:
    return any(profile_use.fits(profiles[i], shapes) for i in indices)


def warmup_shapes(engine: Any, max_batch_size: int, groups: Sequence[Any], batch_size: int,
                  where: str) -> dict[str, list[int]]:
    """Full input shapes (batch dim included when ``max_batch_size`` > 0) of one warmup sample that every
    instance group's profiles hold; ConfigError when no group's opt shapes fit all the others."""
    profiles = engine.profiles
    batch = batch_size if max_batch_size > 0 else None
    if not profiles:
        return {t.name: _full_shape(t.shape, None, t.name, batch) for t in engine.inputs}
    sets = profile_use.group_profile_sets(groups, len(profiles))
    tried: list[int] = []
    for indices in sets:
        for i in indices:
            if i in tried:
                continue
            tried.append(i)
            shapes = {t.name: _full_shape(t.shape, profiles[i], t.name, batch) for t in engine.inputs}
            if all(_fits_group(profiles, s, shapes) for s in sets):
                return shapes
    raise ConfigError(
        f"{where}: no warmup sample fits every instance group: Triton runs each warmup sample on every instance, "
        f"and with batch_size {batch_size} the opt shapes of profiles {tried} do not fit all of the groups' "
        f"profile sets {sets}; change warmup.batch_size, bind the groups to overlapping profiles, or drop warmup")


def check_warmup(config: Any, engine: Any, add: Callable[[str], None]) -> None:
    """Each warmup sample must name every engine input with the right rank and lie inside a profile of
    every instance group (the profiles its instances use)."""
    mbs = config.max_batch_size
    profiles = engine.profiles
    sets = profile_use.group_profile_sets(list(config.instance_group), len(profiles))
    for warm in config.model_warmup:
        label = f"model_warmup {warm.name!r}"
        if mbs > 0 and warm.batch_size > mbs:
            add(f"{label} batch_size {warm.batch_size} exceeds max_batch_size {mbs}")
        shapes: dict[str, list[int]] = {}
        for key, value in warm.inputs.items():
            t = engine.input(key)
            if t is None:
                add(f"{label} input {key!r} is not an engine input")
                continue
            dims = [int(d) for d in value.dims]
            rank = len(t.shape) - (1 if mbs > 0 else 0)
            if rank == 0 and dims == [1]:
                dims = []  # a scalar travels as [1] reshaped to []
            if len(dims) != rank:
                add(f"{label} input {key}: dims {dims} have rank {len(dims)}, the engine's "
                    f"{'non-batch ' if mbs > 0 else ''}rank is {rank}")
                continue
            shapes[key] = ([max(warm.batch_size, 1)] if mbs > 0 else []) + dims
        missing = [t.name for t in engine.inputs if t.name not in warm.inputs]
        if missing:
            add(f"{label} gives no data for engine input(s) {', '.join(missing)}")
        if not profiles or not shapes:
            continue
        for gi, indices in enumerate(sets):
            if not _fits_group(profiles, indices, shapes):
                which = f"instance_group[{gi}]" if config.instance_group else "the model's instances"
                shown = ", ".join(f"{k} {v}" for k, v in shapes.items())
                add(f"{label} ({shown}) lies outside every profile {indices} that {which} uses; Triton "
                    "runs each warmup sample on every instance and an instance that cannot run it is not served")
