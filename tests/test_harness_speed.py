"""The speed phase's plan (windows, timeouts and budget from the single-request latency), the one-measurer rule,
and the speed table: one unit, p50/p90/p95/p99, a verdict column, overhead only when both phases were stable,
no wrapped cells. No server here (tests/test_e2e_harness.py times real models)."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from rich.console import Console

import repogen
from repogen.errors import ConfigError
from repogen.harness import speed
from repogen.cli.validate_report import print_speed
from repogen.harness.speed import SpeedResult, plan_level, unmeasured
from repogen.harness.windows import STABLE_WINDOWS


def test_fast_models_are_measured_as_asked():
    plan = plan_level(4, 0.002, window_ms=500, max_windows=10, min_samples=200, budget_s=60)
    assert (plan.window_s, plan.max_windows, plan.min_samples) == (0.5, 10, 200)
    assert not plan.stretched and not plan.too_slow
    assert plan.timeout_s == speed.REQUEST_TIMEOUT_S  # never below the fixed floor


@pytest.mark.parametrize("single_s", [0.05, 0.2, 0.9])
@pytest.mark.parametrize("clients", [1, 4, 16])
def test_slow_models_get_windows_timeouts_and_samples_from_their_latency(single_s, clients):
    plan = plan_level(clients, single_s, window_ms=500, max_windows=10, min_samples=200, budget_s=1000)
    # one request at a time is the slowest a server runs: a window still holds enough completions for the
    # +-1 of counting to stay within the 10 % stability band
    assert plan.window_s / single_s >= 10 / 0.5 - 1e-9
    # the requests of the other clients queue ahead of each one: the timeout covers that with room to spare
    assert plan.timeout_s >= 2 * clients * single_s
    assert not plan.too_slow
    if plan.stretched:  # the samples asked for fit in the stable windows at one request at a time
        assert plan.min_samples <= STABLE_WINDOWS * plan.window_s / single_s + 1e-9


def test_a_level_that_does_not_fit_its_budget_is_too_slow_not_failed():
    # PP-OCRv5 server det + rec on 2 cores (issue 26 item 14): ~15 s per image alone
    for clients in (1, 4):
        plan = plan_level(clients, 15.0, budget_s=60)
        assert plan.too_slow.startswith(f"too slow to measure at {clients} client")
        assert "15000 ms alone" in plan.too_slow and "60 s" in plan.too_slow
        row = unmeasured("grpc", plan, speed.TOO_SLOW, plan.too_slow)
        assert row.verdict == "too slow" and row.requests == 0 and not row.errors
        data = json.loads(json.dumps(row.to_dict(), allow_nan=False))  # standard JSON: null, never NaN
        assert data["p50_ms"] is None and data["note"] == plan.too_slow
    # the boundary: 3 windows exactly fill the budget -> measured; a little slower -> not
    single = 1.0
    ok = plan_level(1, single, budget_s=STABLE_WINDOWS * speed.WINDOW_COMPLETIONS * single)
    assert not ok.too_slow and ok.max_windows == STABLE_WINDOWS
    assert plan_level(1, single * 1.01, budget_s=STABLE_WINDOWS * speed.WINDOW_COMPLETIONS * single).too_slow
    # many clients of a model that fits the windows: a request alone outlasts a third of the budget
    crowded = plan_level(64, 0.5, budget_s=60)
    assert not plan_level(64, 0.5, budget_s=100).too_slow
    assert "64 clients" in crowded.too_slow and "3 such requests in a row exceed" in crowded.too_slow
    with pytest.raises(ConfigError, match="level budget"):
        speed.measure_levels("127.0.0.1:1", [], (1,), level_budget_s=0)


def test_one_speed_measurer():
    """Only repogen/harness/speed.py sends timed inference requests (issue 23: pipelines had their own)."""
    root = Path(repogen.__file__).parent
    timing = [p.relative_to(root).as_posix() for p in sorted(root.rglob("*.py"))
              if "perf_counter" in (text := p.read_text()) and ".infer(" in text]
    assert timing == ["harness/speed.py"]
    pipelines = (root / "harness" / "pipelines.py").read_text()
    assert "measure_levels(" in pipelines and "threading" not in pipelines


def _row(**kw) -> SpeedResult:
    base = dict(protocol="grpc", concurrency=1, requests=300, batch=1, p50_ms=1.25, p90_ms=1.5, p99_ms=2.75,
                mean_ms=1.3, throughput_rps=700.0, raw_throughput_rps=720.0, overhead_ratio=720 / 700,
                server_queue_us=12.0, server_compute_us=450.0, server_compute_input_us=3.0,
                server_compute_output_us=5.0, windows=4, stable=True, raw_stable=True, p95_ms=2.25, verdict="stable")
    return SpeedResult(**{**base, **kw})


def _render(rows: list[SpeedResult], width: int = 60) -> list[str]:
    buf = io.StringIO()
    print_speed("ocr_system", rows, Console(file=buf, width=width, color_system=None))
    return buf.getvalue().splitlines()


def _cells(line: str) -> list[str]:
    return [c.strip() for c in re.split("[│┃]", line)[1:-1]]


def test_speed_table_one_unit_percentiles_verdict_and_no_wrapping():
    rows = [_row(), _row(concurrency=4, p50_ms=60002.0, p90_ms=60002.0, p95_ms=60002.0, p99_ms=60002.0,
                         stable=False, verdict="unstable", overhead_ratio=0.4),
            unmeasured("grpc", plan_level(4, 15.0), speed.TOO_SLOW, plan_level(4, 15.0).too_slow)]
    lines = _render(rows, width=60)  # far narrower than the table
    header = next(_cells(ln) for ln in lines if "protocol" in ln)
    assert header[:9] == ["protocol", "clients", "requests", "windows", "verdict", "p50", "p90", "p95", "p99"]
    assert "(times in ms" in lines[0]
    body = [_cells(ln) for ln in lines if ln.startswith("│")]
    assert len(body) == 3  # one line per level: nothing wrapped onto a row of its own
    assert not any("…" in c for r in body for c in r)  # nor cut
    col = {name: i for i, name in enumerate(header)}
    first, noisy, slow = body
    # client and server times in one unit: 450 us of compute_infer reads as 0.450 (ms), next to p50 1.25 ms
    assert (first[col["p50"]], first[col["p95"]], first[col["infer"]], first[col["queue"]]) == \
        ("1.25", "2.25", "0.450", "0.012")
    assert noisy[col["p99"]] == "60002"  # no exponent
    assert first[col["verdict"]] == "stable" and first[col["overhead"]] == "+2.9%"
    # a figure from unstable windows is noise: the cell says so instead of "-60.0 %"
    assert noisy[col["verdict"]] == "unstable" and noisy[col["overhead"]] == "unstable"
    assert _cells(next(ln for ln in _render([_row(raw_stable=False)]) if ln.startswith("│")))[col["overhead"]] \
        == "unstable"
    assert slow[col["verdict"]] == "too slow" and slow[col["p50"]] == "-"
    note = [ln for ln in lines if "too slow to measure at 4 clients" in ln]
    assert len(note) == 1 and note[0].startswith("  ocr_system grpc x4: ")


def test_pre_post_column_only_for_pipelines():
    assert "pre/post" not in "\n".join(_render([_row()]))
    lines = _render([_row(pre_post_share=0.25)])
    header = next(_cells(ln) for ln in lines if "protocol" in ln)
    body = next(_cells(ln) for ln in lines if ln.startswith("│"))
    assert body[header.index("pre/post")] == "25%"
