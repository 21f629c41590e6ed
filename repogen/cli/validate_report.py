"""Rich tables for a validation report: correctness per model and protocol, then speed."""

from __future__ import annotations

import math
import sys

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table


def _num(x: float | None, fmt: str = "{:.3g}") -> str:
    return "-" if x is None else fmt.format(x)


_VERDICT_STYLE = {"stable": "green", "unstable": "yellow", "too slow": "yellow", "error": "red"}


def ms(x: float | None) -> str:
    """Milliseconds with about three significant digits and no exponent (60002 ms stays 60002)."""
    if x is None or math.isnan(x):
        return "-"
    for limit, fmt in ((100, "{:.0f}"), (10, "{:.1f}"), (1, "{:.2f}")):
        if abs(x) >= limit:
            return fmt.format(x)
    return "{:.3f}".format(x)


def overhead_cell(s) -> str:
    """The harness's overhead only where both phases were stable; a figure from unstable windows is noise."""
    if s.overhead_ratio is None:
        return "-"
    if not (s.stable and s.raw_stable):
        return "unstable"
    return f"{(s.overhead_ratio - 1) * 100:+.1f}%"


def speed_table(model: str, rows: list) -> Table:
    """One row per level: client latencies and the server's times per request, all in milliseconds."""
    t = Table(title=f"{model} - speed (times in ms; server times per request)")
    columns = ["protocol", "clients", "requests", "windows", "verdict", "p50", "p90", "p95", "p99", "req/s",
               "raw req/s", "overhead", "queue", "input", "infer", "output"]
    shares = any(s.pre_post_share is not None for s in rows)
    for col in columns + (["pre/post"] if shares else []):
        t.add_column(col, justify="left" if col in ("protocol", "verdict") else "right", no_wrap=True)
    for s in rows:
        timed = s.requests > 0
        style = _VERDICT_STYLE.get(s.verdict, "white")
        cells = [s.protocol, str(s.concurrency), str(s.requests) if timed else "-",
                 f"{s.windows} x {s.window_ms}" if timed else "-", f"[{style}]{s.verdict}[/{style}]",
                 ms(s.p50_ms), ms(s.p90_ms), ms(s.p95_ms), ms(s.p99_ms),
                 f"{s.throughput_rps:.1f}" if timed else "-",
                 "-" if s.raw_throughput_rps is None else f"{s.raw_throughput_rps:.1f}", overhead_cell(s),
                 *(ms(us / 1e3) for us in (s.server_queue_us, s.server_compute_input_us, s.server_compute_us,
                                           s.server_compute_output_us))]
        if shares:
            cells.append("-" if s.pre_post_share is None else f"{s.pre_post_share:.0%}")
        t.add_row(*cells)
    return t


def print_speed(model: str, rows: list, console: Console) -> None:
    """The speed table at its natural width (cells never wrap), then the levels' notes, one line each."""
    table = speed_table(model, rows)
    natural = Measurement.get(console, console.options.update_width(10_000), table).maximum
    narrow = console.width
    console.width = max(narrow, natural)  # rich caps print(width=...) at the console's width
    try:
        console.print(table)
    finally:
        console.width = narrow
    for s in rows:
        if s.note:
            console.print(f"  {model} {s.protocol} x{s.concurrency}: {s.note}", markup=False, crop=False,
                          soft_wrap=True)


def print_report(report, console: Console | None = None) -> None:
    console = console or Console(width=None if sys.stdout.isatty() else 150)
    console.print(f"[bold]repository[/bold] {report.repo}  server {report.server}  "
                  f"http {report.http_url}  grpc {report.grpc_url}")
    for note in report.notes:
        console.print(f"note: {note}", markup=False, soft_wrap=True)
    for m in report.models:
        for protocol in sorted({c.protocol for c in m.checks if not c.case.startswith("mixed")}):
            t = Table(title=f"{m.model} - {protocol}")
            for col in ("case", "output", "shape", "max abs err", "rel err", "tolerance", "result"):
                t.add_column(col)
            for c in m.checks:
                if c.protocol != protocol or c.case.startswith("mixed"):
                    continue
                t.add_row(c.case, c.output, "x".join(map(str, c.shape or [])) or "-", _num(c.max_abs),
                          _num(c.rel_err), f"{c.tolerance:g}",
                          "[green]ok[/green]" if c.ok else f"[red]FAIL[/red] {c.problem}")
            console.print(t)
        if m.dynamic_batching and m.dynamic_batching.get("configured", True):  # no batching line without batching
            d = m.dynamic_batching
            console.print(f"{m.model}: dynamic batching: {d['requests']} concurrent requests, batch sizes "
                          f"{min(d['batch_sizes'])}..{max(d['batch_sizes'])}, {d['failed']} wrong; server ran "
                          f"{d['server_executions']} executions, batch sizes {d['executed_batch_sizes']}"
                          + (f"; burst of {d['burst']['requests']}: {d['burst']['server_executions']} executions"
                             if d.get("burst") else "") + ("" if d.get("merged") else " - never merged"))
        if m.speed:
            print_speed(m.model, m.speed, console)
        status = "[green]PASS[/green]" if m.ok else "[red]FAIL[/red]"
        console.print(f"{m.model}: {status}")
        for f in m.failures:
            console.print(f"  - {f}", markup=False)
    for f in report.failures:
        console.print(f"  - {f}", markup=False)
    console.print("[bold green]all models valid[/bold green]" if report.ok else "[bold red]validation failed[/bold red]")
