"""Latency / throughput at fixed concurrency, and the same load through bare tritonclient calls.

Each level runs rounds alternately through the harness loop (per-request timing) and a raw loop
(nothing but ``client.infer``), on the same server with the same prebuilt requests, so the ratio of their
throughputs is the harness's own overhead rather than server noise between separate runs.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import asdict, dataclass, field

import numpy as np

from repogen.harness.clients import (REQUEST_TIMEOUT_S, build_request, make_client, model_stats,
                                     stats_delta)
from repogen.harness.model_files import ModelFolder

ROUNDS = 2  # per loop kind; the best round of each is compared (least disturbed by the shared machine)


@dataclass
class SpeedResult:
    protocol: str
    concurrency: int
    requests: int
    batch: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    throughput_rps: float
    raw_throughput_rps: float | None
    overhead_ratio: float | None  # raw throughput / harness throughput; 1.00 = no overhead
    server_queue_us: float
    server_compute_us: float
    server_batches: dict = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


class _Worker:
    """One client and one prebuilt request per thread, as a real caller would have."""

    def __init__(self, protocol: str, url: str, model: ModelFolder, feeds: dict[str, np.ndarray], shm: bool):
        self.client = make_client(protocol, url)
        self.model = model
        self.protocol = protocol
        self.inputs, self.outputs = build_request(protocol, model, feeds)
        self.regions: list[tuple[str, object]] = []
        if shm:
            self._use_shared_memory(feeds)
        # the raw loop calls this bound method directly: no harness code between calls
        if protocol == "grpc":
            self.kwargs = {"outputs": self.outputs, "client_timeout": REQUEST_TIMEOUT_S}
        else:
            self.kwargs = {"outputs": self.outputs}

    def _use_shared_memory(self, feeds: dict[str, np.ndarray]) -> None:
        import tritonclient.utils.shared_memory as shm

        probe = self.client.infer(self.model.name, self.inputs, outputs=self.outputs)
        for spec, inp in zip(self.model.inputs, self.inputs):
            arr = np.ascontiguousarray(feeds[spec.name], dtype=spec.dtype)
            key = f"repogen_{uuid.uuid4().hex[:10]}"
            handle = shm.create_shared_memory_region(key, f"/{key}", arr.nbytes)
            shm.set_shared_memory_region(handle, [arr])
            self.client.register_system_shared_memory(key, f"/{key}", arr.nbytes)
            inp.set_shared_memory(key, arr.nbytes)
            self.regions.append((key, handle))
        for spec, out in zip(self.model.outputs, self.outputs):
            nbytes = max(probe.as_numpy(spec.name).nbytes, 1)
            key = f"repogen_{uuid.uuid4().hex[:10]}"
            handle = shm.create_shared_memory_region(key, f"/{key}", nbytes)
            self.client.register_system_shared_memory(key, f"/{key}", nbytes)
            out.set_shared_memory(key, nbytes)
            self.regions.append((key, handle))

    def close(self) -> None:
        import tritonclient.utils.shared_memory as shm

        for key, handle in self.regions:
            try:
                self.client.unregister_system_shared_memory(key)
            except Exception:  # the server may be gone already; the local region must still go
                pass
            shm.destroy_shared_memory_region(handle)
        self.client.close()


def _run_threads(workers: list[_Worker], counts: list[int], timed: bool) -> tuple[float, list[int], list[str]]:
    latencies: list[list[int]] = [[] for _ in workers]
    errors: list[str] = []
    barrier = threading.Barrier(len(workers) + 1)

    def timed_loop(i: int) -> None:
        w, lat = workers[i], latencies[i]
        infer, name, inputs, kwargs, clock = w.client.infer, w.model.name, w.inputs, w.kwargs, time.perf_counter_ns
        barrier.wait()
        try:
            for _ in range(counts[i]):
                t0 = clock()
                infer(name, inputs, **kwargs)
                lat.append(clock() - t0)
        except Exception as exc:  # reported, and the level fails
            errors.append(f"{type(exc).__name__}: {exc}")

    def raw_loop(i: int) -> None:
        w = workers[i]
        infer, name, inputs, kwargs = w.client.infer, w.model.name, w.inputs, w.kwargs
        barrier.wait()
        try:
            for _ in range(counts[i]):
                infer(name, inputs, **kwargs)
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")

    target = timed_loop if timed else raw_loop
    threads = [threading.Thread(target=target, args=(i,), daemon=True) for i in range(len(workers))]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    return wall, [x for lat in latencies for x in lat], errors


def measure(url: str, model: ModelFolder, feeds: dict[str, np.ndarray], concurrency: int, requests: int,
            protocol: str = "grpc", shm: bool = False, stats_url: str | None = None, raw: bool = True,
            rounds: int = ROUNDS) -> SpeedResult:
    """Time ``requests`` requests per round at ``concurrency``; ``stats_url`` is the gRPC endpoint for statistics."""
    requests = max(requests, concurrency)
    workers = [_Worker(protocol, url, model, feeds, shm) for _ in range(concurrency)]
    stats_client = make_client("grpc", stats_url or url) if (stats_url or protocol == "grpc") else None
    counts = _split(requests, concurrency)
    try:
        _run_threads(workers, _split(2 * concurrency, concurrency), timed=False)  # warm-up: connections, caches
        before = model_stats(stats_client, model.name) if stats_client else None
        harness_best, raw_best, lat_all, errors = float("inf"), float("inf"), [], []
        harness_rounds = 0
        for _ in range(rounds):
            if raw:
                wall, _, errs = _run_threads(workers, counts, timed=False)
                errors += errs
                raw_best = min(raw_best, wall)
            wall, lat, errs = _run_threads(workers, counts, timed=True)
            errors += errs
            harness_best = min(harness_best, wall)
            lat_all += lat
            harness_rounds += 1
            if errors:
                break
        after = model_stats(stats_client, model.name) if stats_client else None
    finally:
        for w in workers:
            w.close()
        if stats_client is not None:
            stats_client.close()
    delta = stats_delta(before, after) if before and after else None
    lat_ms = np.array(lat_all, dtype=np.float64) / 1e6 if lat_all else np.array([np.nan])
    thr = requests / harness_best if harness_best != float("inf") else 0.0
    raw_thr = requests / raw_best if raw and raw_best != float("inf") else None
    n = max(delta["success_count"], 1) if delta else 1
    batch = next(iter(feeds.values())).shape[0] if model.max_batch_size > 0 and feeds else 1
    return SpeedResult(
        protocol=protocol + ("+shm" if shm else ""), concurrency=concurrency, requests=requests, batch=batch,
        p50_ms=float(np.percentile(lat_ms, 50)), p90_ms=float(np.percentile(lat_ms, 90)),
        p99_ms=float(np.percentile(lat_ms, 99)), mean_ms=float(lat_ms.mean()), throughput_rps=thr,
        raw_throughput_rps=raw_thr, overhead_ratio=(raw_thr / thr if raw_thr and thr else None),
        server_queue_us=(delta["queue_ns"] / n / 1e3 if delta else float("nan")),
        server_compute_us=(delta["compute_infer_ns"] / n / 1e3 if delta else float("nan")),
        server_batches=(delta["batch_counts"] if delta else {}), errors=errors[:5])


__all__ = ["SpeedResult", "measure"]
