"""Rich tables for a validation report: correctness per model and protocol, then speed."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.table import Table


def _num(x: float | None, fmt: str = "{:.3g}") -> str:
    return "-" if x is None else fmt.format(x)


def print_report(report, console: Console | None = None) -> None:
    console = console or Console(width=None if sys.stdout.isatty() else 150)
    console.print(f"[bold]repository[/bold] {report.repo}  server {report.server}  "
                  f"http {report.http_url}  grpc {report.grpc_url}")
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
            t = Table(title=f"{m.model} - speed")
            for col in ("protocol", "conc.", "requests", "windows", "p50 ms", "p90 ms", "p99 ms", "req/s",
                        "raw req/s", "overhead", "queue us", "input us", "infer us", "output us"):
                t.add_column(col, justify="right")
            for s in m.speed:
                over = "-" if s.overhead_ratio is None else f"{(s.overhead_ratio - 1) * 100:+.1f}%"
                windows = f"{s.windows} x {s.window_ms} ms" + ("" if s.stable else " [yellow]unstable[/yellow]")
                t.add_row(s.protocol, str(s.concurrency), str(s.requests), windows, _num(s.p50_ms, "{:.2f}"),
                          _num(s.p90_ms, "{:.2f}"), _num(s.p99_ms, "{:.2f}"), _num(s.throughput_rps, "{:.1f}"),
                          _num(s.raw_throughput_rps, "{:.1f}"), over, _num(s.server_queue_us, "{:.0f}"),
                          _num(s.server_compute_input_us, "{:.0f}"), _num(s.server_compute_us, "{:.0f}"),
                          _num(s.server_compute_output_us, "{:.0f}"))
            console.print(t)
        for run in (m.dynamic_batching or {}).get("pipeline_speed", []):  # repogen.pipelines' timed runs
            console.print(f"{m.model}: {run['concurrency']} clients: {run['images_per_s']:.1f} images/s, p50 "
                          f"{run['p50_ms']:.1f} ms, p99 {run['p99_ms']:.1f} ms, {run['pre_post_share']:.0%} of server "
                          "time in pre/post-processing")
        status = "[green]PASS[/green]" if m.ok else "[red]FAIL[/red]"
        console.print(f"{m.model}: {status}")
        for f in m.failures:
            console.print(f"  - {f}", markup=False)
    for f in report.failures:
        console.print(f"  - {f}", markup=False)
    console.print("[bold green]all models valid[/bold green]" if report.ok else "[bold red]validation failed[/bold red]")
