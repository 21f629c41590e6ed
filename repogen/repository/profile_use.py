"""Which optimisation profiles each instance group uses, and the batch sizes they can take.

Triton's TensorRT backend gives every instance the profiles named in its group's ``profile`` list (all of
the engine's when the list is empty) and, per execution, picks a profile whose ranges hold the request.
Auto-complete takes the engine's max batch as the largest, across the profiles in use, of each profile's
smallest max of dim 0 over the inputs. So a profile set split by batch size (profile 0 batch 1-4,
profile 1 batch 5-16) is a normal layout: the instance serves batch 1..16, each batch on the profile
made for it.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

ProfileShapes = Mapping[str, tuple[Sequence[int], Sequence[int], Sequence[int]]]


def batch_range(profile: ProfileShapes, batch_inputs: Sequence[str]) -> tuple[int, int] | None:
    """(lo, hi) batch sizes one profile takes: every batching input must accept the batch."""
    ranges = [(int(profile[n][0][0]), int(profile[n][2][0])) for n in batch_inputs if n in profile]
    if not ranges:
        return None
    lo, hi = max(r[0] for r in ranges), min(r[1] for r in ranges)
    return (lo, hi) if lo <= hi else None


def group_profile_sets(groups: Sequence[Any], n_profiles: int) -> list[list[int]]:
    """Profile indices per instance group; accepts spec groups (ints) and config groups (strings).
    No groups at all means one implicit group with every profile."""
    every = list(range(n_profiles))
    if not groups:
        return [every]
    out = []
    for g in groups:
        chosen = [int(p) for p in getattr(g, "profile", []) if str(p).isdigit() and int(p) < n_profiles]
        out.append(chosen or every)
    return out


def max_batch(profiles: Sequence[ProfileShapes], batch_inputs: Sequence[str],
              indices: Sequence[int] | None = None) -> int | None:
    """Triton's rule: the largest profile max across the profiles in use (``indices``; all when None)."""
    use = range(len(profiles)) if indices is None else indices
    his = [r[1] for i in use if (r := batch_range(profiles[i], batch_inputs)) is not None]
    return max(his) if his else None


def uncovered_batches(profiles: Sequence[ProfileShapes], batch_inputs: Sequence[str], indices: Sequence[int],
                      upto: int) -> list[int]:
    """Batch sizes 1..upto that none of the profiles ``indices`` takes (the dynamic batcher may form any)."""
    ranges = [r for i in indices if (r := batch_range(profiles[i], batch_inputs)) is not None]
    return [b for b in range(1, upto + 1) if not any(lo <= b <= hi for lo, hi in ranges)]


def compress(values: Sequence[int]) -> str:
    """[1, 2, 3, 7] -> "1-3, 7" for messages."""
    parts: list[str] = []
    start = prev = None
    for v in values:
        if start is None:
            start = prev = v
        elif v == prev + 1:
            prev = v
        else:
            parts.append(f"{start}" if start == prev else f"{start}-{prev}")
            start = prev = v
    if start is not None:
        parts.append(f"{start}" if start == prev else f"{start}-{prev}")
    return ", ".join(parts)


def fits(profile: ProfileShapes, shapes: Mapping[str, Sequence[int]]) -> bool:
    """Every given full shape lies inside the profile's [min, max] (inputs the profile lacks are fixed)."""
    for name, shape in shapes.items():
        if name not in profile:
            continue
        lo, _, hi = profile[name]
        if len(lo) != len(shape) or not all(int(a) <= int(d) <= int(b) for a, d, b in zip(lo, shape, hi)):
            return False
    return True
