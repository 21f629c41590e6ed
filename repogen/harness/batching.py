"""Proof from Triton's statistics that the dynamic batcher merged requests.

A config with ``dynamic_batching`` promises that concurrent requests are executed together; if the
statistics extension shows as many executions as requests, the batcher never merged anything (the
instance was never busy, the shapes never matched, or the block is not what the server loaded), and the
throughput the config was written for is not there. Validation fails in that case.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from repogen.harness import clients

BURST_THREADS = 16
BURST_PER_THREAD = 8


def configured(model: Any) -> bool:
    return model.config is not None and model.config.HasField("dynamic_batching")


def merged(delta: dict, requests: int) -> bool:
    """Fewer executions than requests: at least one execution ran several requests."""
    return 0 < delta["execution_count"] < requests


def burst(server: Any, model: Any, feeds: dict[str, np.ndarray], threads: int = BURST_THREADS,
          per_thread: int = BURST_PER_THREAD) -> tuple[dict, int, list[str]]:
    """Batch-1 requests from ``threads`` clients at once; (statistics delta, requests sent, errors)."""
    one = {k: v[:1] for k, v in feeds.items()}
    errors: list[str] = []
    barrier = threading.Barrier(threads)

    def loop() -> None:
        client = clients.make_client("grpc", server.grpc_url)
        try:
            inputs, outputs = clients.build_request("grpc", model, one)
            barrier.wait()
            for _ in range(per_thread):
                clients.infer(client, "grpc", model, inputs, outputs)
        except Exception as exc:  # reported below; the verdict then rests on what did run
            errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            client.close()

    stats = clients.make_client("grpc", server.grpc_url)
    try:
        before = clients.model_stats(stats, model.name)
        workers = [threading.Thread(target=loop, daemon=True) for _ in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        delta = clients.stats_delta(before, clients.model_stats(stats, model.name))
    finally:
        stats.close()
    return delta, threads * per_thread - len(errors), errors


def require_merging(server: Any, model: Any, feeds: dict[str, np.ndarray], report: Any) -> None:
    """After the mixed-size check: a model with dynamic batching must show merged executions; when the
    mixed check happened not to merge, a denser burst gets one more chance before validation fails."""
    info = report.dynamic_batching
    info["configured"] = configured(model)
    if not info["configured"]:
        return
    if info.get("merged"):
        return
    delta, sent, errors = burst(server, model, feeds)
    info["burst"] = {"requests": sent, "server_executions": delta["execution_count"],
                     "executed_batch_sizes": {str(k): v for k, v in sorted(delta["batch_counts"].items())}}
    for e in errors[:3]:
        report.fail(f"dynamic batching burst: {e}")
    if merged(delta, sent):
        info["merged"] = True
        return
    report.fail(f"dynamic batching never merged requests: {info['requests']} concurrent requests ran as "
                f"{info['server_executions']} executions and a burst of {sent} batch-1 requests from "
                f"{BURST_THREADS} clients as {delta['execution_count']} (Triton's statistics); the config's "
                "dynamic_batching has no effect on this server")
