"""Measurement windows and a stability rule like perf_analyzer's.

perf_analyzer measures in time windows (``--measurement-interval``) and stops once the last 3 windows
agree: each window's throughput and latency within ``--stability-percentage`` (10 %) of the three's
average; it gives up after ``--max-trials`` windows. Here the same rule, with one addition: the stable
windows must together hold at least ``min_samples`` latency samples, so p99 is not just the slowest request
of a hundred (windows keep coming, within the same bound, until they do).

Pure logic on plain numbers, so the rule is tested with synthetic timings; speed.py feeds it real windows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

STABLE_WINDOWS = 3
STABILITY_PCT = 10.0
MAX_WINDOWS = 10


@dataclass
class Window:
    seconds: float  # wall time the window covered
    completed: int  # requests that completed in it
    latencies_ns: list[int] = field(default_factory=list)  # per request, when timed
    server: dict | None = None  # statistics-extension delta over the window
    stages: dict[str, dict] = field(default_factory=dict)  # the same for other models a request runs (pipelines)

    @property
    def throughput(self) -> float:
        return self.completed / self.seconds if self.seconds > 0 else 0.0

    @property
    def p50_ns(self) -> float | None:
        return float(np.percentile(self.latencies_ns, 50)) if self.latencies_ns else None


def within(values: list[float], pct: float) -> bool:
    """Every value within ``pct`` % of the values' average (perf_analyzer's check)."""
    avg = sum(values) / len(values)
    if avg <= 0:
        return False
    return all(abs(v - avg) <= avg * pct / 100.0 for v in values)


def is_stable(windows: list[Window], pct: float = STABILITY_PCT, last: int = STABLE_WINDOWS) -> bool:
    if len(windows) < last:
        return False
    tail = windows[-last:]
    if any(w.completed == 0 for w in tail):
        return False
    if not within([w.throughput for w in tail], pct):
        return False
    lat = [w.p50_ns for w in tail]
    return all(v is None for v in lat) or (all(v is not None for v in lat) and within(lat, pct))


@dataclass
class Measurement:
    windows: list[Window]
    stable: bool
    used: list[Window]  # the windows the result is computed from (the last STABLE_WINDOWS)

    @property
    def throughput(self) -> float:
        secs = sum(w.seconds for w in self.used)
        return sum(w.completed for w in self.used) / secs if secs > 0 else 0.0

    @property
    def latencies_ns(self) -> list[int]:
        return [x for w in self.used for x in w.latencies_ns]


def measure_until_stable(next_window: Callable[[], Window], *, pct: float = STABILITY_PCT,
                         max_windows: int = MAX_WINDOWS, min_samples: int = 0, last: int = STABLE_WINDOWS,
                         should_stop: Callable[[], bool] = lambda: False) -> Measurement:
    """Take windows until the last ``last`` are stable and hold ``min_samples`` latency samples (when the
    windows are timed), or ``max_windows`` were taken, or ``should_stop()`` (an error)."""
    windows: list[Window] = []
    while len(windows) < max_windows and not should_stop():
        windows.append(next_window())
        if not is_stable(windows, pct, last):
            continue
        if not any(w.latencies_ns for w in windows[-last:]):
            return Measurement(windows, True, windows[-last:])
        # the longest stable tail (all its windows within pct of its average) that holds enough samples
        for k in range(last, len(windows) + 1):
            tail = windows[-k:]
            if not is_stable(tail, pct, k):
                break
            if sum(len(w.latencies_ns) for w in tail) >= min_samples:
                return Measurement(windows, True, tail)
    return Measurement(windows, False, windows[-last:])
