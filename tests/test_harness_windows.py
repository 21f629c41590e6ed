"""The measurement-window stability rule (repogen/harness/windows.py) on synthetic timings."""

from __future__ import annotations

from repogen.harness.windows import Window, is_stable, measure_until_stable, within


def w(rps: float, p50_ms: float | None = None, seconds: float = 1.0, samples: int | None = None) -> Window:
    n = int(rps * seconds)
    lat = [] if p50_ms is None else [int(p50_ms * 1e6)] * (samples if samples is not None else n)
    return Window(seconds, n, lat)


def feed(windows: list[Window]):
    it = iter(windows)
    return lambda: next(it)


def test_within_is_relative_to_the_average() -> None:
    assert within([100, 105, 95], 10) and not within([100, 100, 125], 10)
    assert not within([0, 0, 0], 10)


def test_stops_at_the_first_three_agreeing_windows() -> None:
    # warm-up windows first (slow, then fast), then three within 10 % of their average
    m = measure_until_stable(feed([w(50, 20), w(400, 3), w(300, 3.3), w(310, 3.2), w(295, 3.4), w(999, 1)]))
    assert m.stable and len(m.windows) == 5 and [x.completed for x in m.used] == [300, 310, 295]
    assert abs(m.throughput - (300 + 310 + 295) / 3) < 1e-9


def test_latency_must_agree_too() -> None:
    windows = [w(300, 3.0), w(300, 3.0), w(300, 4.0), w(300, 3.0), w(300, 3.1), w(300, 3.0)]
    assert not is_stable(windows[:3])  # p50 4.0 vs average 3.33: 20 % off
    m = measure_until_stable(feed(windows))
    assert m.stable and len(m.windows) == 6


def test_bounded_when_never_stable() -> None:
    noisy = [w(100 if i % 2 else 300, 3.0) for i in range(20)]
    m = measure_until_stable(feed(noisy), max_windows=7)
    assert not m.stable and len(m.windows) == 7 and len(m.used) == 3


def test_too_few_samples_widen_the_stable_tail() -> None:
    # each window holds 40 samples: three are not enough for 150, four stable ones are (160)
    windows = [w(40, 5.0, samples=40) for _ in range(6)]
    m = measure_until_stable(feed(windows), min_samples=150)
    assert m.stable and len(m.windows) == 4 and len(m.used) == 4 and len(m.latencies_ns) == 160
    # an early window that disagrees is not taken into the tail
    windows = [w(80, 5.0, samples=40)] + [w(40, 5.0, samples=40) for _ in range(6)]
    m = measure_until_stable(feed(windows), min_samples=150)
    assert m.stable and len(m.windows) == 5 and len(m.used) == 4


def test_untimed_windows_use_throughput_only() -> None:
    m = measure_until_stable(feed([w(10), w(100), w(104), w(98)]), min_samples=10_000)
    assert m.stable and len(m.windows) == 4


def test_error_stops_measuring() -> None:
    calls = []

    def nxt():
        calls.append(1)
        return w(100, 1.0)
    m = measure_until_stable(nxt, should_stop=lambda: len(calls) >= 2)
    assert not m.stable and len(m.windows) == 2
