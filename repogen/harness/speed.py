"""Latency / throughput at fixed concurrency, measured in time windows until they are stable.

``concurrency`` clients (one thread and one prebuilt request each) send back to back. Completed requests
are counted per time window (``window_ms``); measurement stops when the last 3 windows agree within
``stability_pct`` on throughput and p50 latency (perf_analyzer's rule, repogen/harness/windows.py) and hold
at least ``min_samples`` latencies, or after ``max_windows``. p50/p90/p99 come from the stable windows;
the server's queue / compute_input / compute_infer / compute_output times per request come from the
statistics extension over the same windows. A second, raw phase (bare ``client.infer``, no timing code)
measures throughput the same way, so raw / harness throughput is the harness's own overhead.
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
from repogen.harness.windows import MAX_WINDOWS, STABILITY_PCT, Measurement, Window, measure_until_stable

WINDOW_MS = 500  # perf_analyzer's default is 5000 ms; validate measures several levels per model
MIN_SAMPLES = 200  # latency samples the stable windows must hold (p99 of fewer is little more than the max)


@dataclass
class SpeedResult:
    protocol: str
    concurrency: int
    requests: int  # requests completed in the windows the numbers come from
    batch: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    throughput_rps: float
    raw_throughput_rps: float | None
    overhead_ratio: float | None  # raw throughput / harness throughput; 1.00 = no overhead
    server_queue_us: float
    server_compute_us: float  # compute_infer per request
    server_compute_input_us: float = float("nan")
    server_compute_output_us: float = float("nan")
    server_batches: dict = field(default_factory=dict)
    window_ms: int = WINDOW_MS
    windows: int = 0  # windows taken (harness phase)
    stable: bool = False  # the last windows met the stability rule
    raw_windows: int = 0
    raw_stable: bool | None = None
    window_throughputs: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


class _Worker:
    """One client and one prebuilt request per thread, as a real caller would have."""

    def __init__(self, protocol: str, url: str, model: ModelFolder, feeds: dict[str, np.ndarray], shm: bool):
        self.client = make_client(protocol, url)
        self.model = model
        self.protocol = protocol
        self.inputs, self.outputs = build_request(protocol, model, feeds)
        self.regions: list[tuple[str, object]] = []
        # the raw loop calls this bound method directly: no harness code between calls
        if protocol == "grpc":
            self.kwargs = {"outputs": self.outputs, "client_timeout": REQUEST_TIMEOUT_S}
        else:
            self.kwargs = {"outputs": self.outputs}
        if shm:
            self._use_shared_memory(feeds)

    def _use_shared_memory(self, feeds: dict[str, np.ndarray]) -> None:
        import tritonclient.utils.shared_memory as shm

        probe = self.client.infer(self.model.name, self.inputs, **self.kwargs)
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


class _Load:
    """``concurrency`` threads sending back to back until stopped; per-thread append-only records, read at
    window boundaries by index (no lock on the request path)."""

    def __init__(self, workers: list[_Worker], timed: bool):
        self.workers, self.timed = workers, timed
        self.stop = threading.Event()
        self.latencies: list[list[int]] = [[] for _ in workers]
        self.counts = [0] * len(workers)
        self.errors: list[str] = []
        self.threads = [threading.Thread(target=self._timed if timed else self._raw, args=(i,), daemon=True)
                        for i in range(len(workers))]

    def _timed(self, i: int) -> None:
        w, lat, stop = self.workers[i], self.latencies[i], self.stop
        infer, name, inputs, kwargs, clock = w.client.infer, w.model.name, w.inputs, w.kwargs, time.perf_counter_ns
        try:
            while not stop.is_set():
                t0 = clock()
                infer(name, inputs, **kwargs)
                lat.append(clock() - t0)
        except Exception as exc:  # reported, and the level fails
            self.errors.append(f"{type(exc).__name__}: {exc}")

    def _raw(self, i: int) -> None:
        w, counts, stop = self.workers[i], self.counts, self.stop
        infer, name, inputs, kwargs = w.client.infer, w.model.name, w.inputs, w.kwargs
        try:
            while not stop.is_set():
                infer(name, inputs, **kwargs)
                counts[i] += 1
        except Exception as exc:
            self.errors.append(f"{type(exc).__name__}: {exc}")

    def __enter__(self) -> "_Load":
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(REQUEST_TIMEOUT_S + 5)

    def marks(self) -> list[int]:
        return [len(x) for x in self.latencies] if self.timed else list(self.counts)


def _windows(load: _Load, window_s: float, stats, model_name: str, **rule) -> Measurement:
    state = {"t": time.perf_counter(), "marks": load.marks(),
             "stats": model_stats(stats, model_name) if stats else None}

    def next_window() -> Window:
        deadline = state["t"] + window_s
        while (left := deadline - time.perf_counter()) > 0 and not load.errors:
            time.sleep(min(left, 0.05))
        now, marks = time.perf_counter(), load.marks()
        after = model_stats(stats, model_name) if stats else None
        lat = [x for i, (a, b) in enumerate(zip(state["marks"], marks)) for x in load.latencies[i][a:b]] \
            if load.timed else []
        w = Window(now - state["t"], sum(b - a for a, b in zip(state["marks"], marks)), lat,
                   stats_delta(state["stats"], after) if stats else None)
        state.update(t=now, marks=marks, stats=after)
        return w

    return measure_until_stable(next_window, should_stop=lambda: bool(load.errors), **rule)


def _sum_server(windows: list[Window]) -> dict | None:
    if not windows or any(w.server is None for w in windows):
        return None
    total: dict = {"batch_counts": {}}
    for w in windows:
        for k, v in w.server.items():
            if k == "batch_counts":
                for size, n in v.items():
                    total["batch_counts"][size] = total["batch_counts"].get(size, 0) + n
            else:
                total[k] = total.get(k, 0) + v
    return total


def measure(url: str, model: ModelFolder, feeds: dict[str, np.ndarray], concurrency: int,
            min_samples: int = MIN_SAMPLES, protocol: str = "grpc", shm: bool = False, stats_url: str | None = None,
            raw: bool = True, window_ms: int = WINDOW_MS, stability_pct: float = STABILITY_PCT,
            max_windows: int = MAX_WINDOWS) -> SpeedResult:
    """Measure one concurrency level; ``stats_url`` is the gRPC endpoint for statistics."""
    workers = [_Worker(protocol, url, model, feeds, shm) for _ in range(concurrency)]
    stats = make_client("grpc", stats_url or url) if (stats_url or protocol == "grpc") else None
    rule = {"pct": stability_pct, "max_windows": max_windows, "min_samples": min_samples}
    window_s = window_ms / 1e3
    raw_m: Measurement | None = None
    try:
        with _Load(workers, timed=True) as load:
            time.sleep(min(window_s, 1.0) / 2)  # warm-up: connections, caches, the batcher's rhythm
            m = _windows(load, window_s, stats, model.name, **rule)
        errors = list(load.errors)
        if raw and not errors:
            with _Load(workers, timed=False) as raw_load:
                time.sleep(min(window_s, 1.0) / 4)
                raw_m = _windows(raw_load, window_s, None, model.name, **rule)
            errors += raw_load.errors
    finally:
        for w in workers:
            w.close()
        if stats is not None:
            stats.close()
    lat_ms = np.array(m.latencies_ns, dtype=np.float64) / 1e6 if m.latencies_ns else np.array([np.nan])
    thr = m.throughput
    raw_thr = raw_m.throughput if raw_m is not None and raw_m.used else None
    server = _sum_server(m.used)

    def per_request(key: str) -> float:
        n = server["success_count"] if server else 0
        return server[key] / n / 1e3 if server and n else float("nan")

    batch = next(iter(feeds.values())).shape[0] if model.max_batch_size > 0 and feeds else 1
    return SpeedResult(
        protocol=protocol + ("+shm" if shm else ""), concurrency=concurrency, requests=sum(w.completed for w in m.used),
        batch=batch, p50_ms=float(np.percentile(lat_ms, 50)), p90_ms=float(np.percentile(lat_ms, 90)),
        p99_ms=float(np.percentile(lat_ms, 99)), mean_ms=float(lat_ms.mean()), throughput_rps=thr,
        raw_throughput_rps=raw_thr, overhead_ratio=(raw_thr / thr if raw_thr and thr else None),
        server_queue_us=per_request("queue_ns"), server_compute_us=per_request("compute_infer_ns"),
        server_compute_input_us=per_request("compute_input_ns"),
        server_compute_output_us=per_request("compute_output_ns"),
        server_batches=(server["batch_counts"] if server else {}), window_ms=window_ms, windows=len(m.windows),
        stable=m.stable, raw_windows=len(raw_m.windows) if raw_m else 0,
        raw_stable=raw_m.stable if raw_m else None,
        window_throughputs=[round(w.throughput, 2) for w in m.windows], errors=errors[:5])


__all__ = ["SpeedResult", "measure"]
