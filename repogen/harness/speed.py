"""Latency / throughput at fixed concurrency, measured in time windows until they are stable: repogen's one
speed measurer (validate's models and pipelines, the benches).

``concurrency`` clients (one thread and prebuilt requests each) send back to back. Completed requests
are counted per time window; measurement stops when the last 3 windows agree within ``stability_pct`` on
throughput and p50 latency (perf_analyzer's rule, repogen/harness/windows.py) and hold at least
``min_samples`` latencies, or after ``max_windows``. p50/p90/p95/p99 come from the stable windows; the
server's queue / compute_input / compute_infer / compute_output times per request come from the statistics
extension over the same windows. A second, raw phase (bare ``client.infer``, no timing code) measures
throughput the same way, so raw / harness throughput is the harness's own overhead.

Slow models (issue 26 item 14: PP-OCRv5 server det + rec at 4 clients on 2 cores ran into a fixed 60 s
request timeout and failed a repository that answered correctly). ``probe_latency`` times a few requests
alone; ``plan_level`` sizes each level from that latency: a window is long enough for
``WINDOW_COMPLETIONS`` completions even when the server runs one request at a time, a request may take
``TIMEOUT_FACTOR`` x clients x the single latency before it counts as timed out (never less than
``REQUEST_TIMEOUT_S``), and a level whose 3 windows do not fit its time budget is not run but reported as
"too slow to measure at N clients". Timeouts and errors while timing are the level's verdict and note;
the speed phase never decides whether a model is correct.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np

from repogen.errors import ConfigError
from repogen.harness.clients import (REQUEST_TIMEOUT_S, Request, make_client, model_stats, stats_delta,
                                     tensor_request, to_protocol)
from repogen.harness.windows import (MAX_WINDOWS, STABILITY_PCT, STABLE_WINDOWS, Measurement, Window,
                                     measure_until_stable)

WINDOW_MS = 500  # perf_analyzer's default is 5000 ms; validate measures several levels per model
MIN_SAMPLES = 200  # latency samples the stable windows must hold (p99 of fewer is little more than the max)
PROBE_REQUESTS = 3  # timed one at a time (after one warm-up) for the single-request latency
# a window must hold this many completions when the server runs one request at a time: counted completions
# move by +-1 between windows, which stays inside a 10 % stability band only from about 20 on
WINDOW_COMPLETIONS = 20
TIMEOUT_FACTOR = 4.0  # a request may take this many times its expected latency at the level's concurrency
LEVEL_BUDGET_S = 60.0  # longest a level's timed phase may take; slower levels are reported, not run

STABLE, UNSTABLE, TOO_SLOW, ERROR = "stable", "unstable", "too slow", "error"


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
    p95_ms: float = float("nan")
    verdict: str = UNSTABLE  # stable | unstable | too slow | error (a speed verdict, never a correctness one)
    note: str = ""  # why a level is "too slow" or "error", in one line
    single_request_ms: float | None = None  # one request alone (probe_latency), when measured
    request_timeout_s: float = REQUEST_TIMEOUT_S
    stage_server_us: dict[str, float] = field(default_factory=dict)  # server time per request in each stage model
    pre_post_share: float | None = None  # pipelines: share of server time outside the model(s)

    def to_dict(self) -> dict:
        """Plain data; a figure that was not measured (NaN) is None, so the JSON stays standard."""
        def plain(value):
            if isinstance(value, float) and math.isnan(value):
                return None
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            return value

        return {k: plain(v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class LevelPlan:
    """How one concurrency level is measured, sized from the single-request latency."""

    concurrency: int
    window_s: float
    max_windows: int
    min_samples: int
    timeout_s: float
    stretched: bool = False  # windows longer than asked because a request is slow
    too_slow: str = ""  # why the level is not run; empty: run it


def plan_level(concurrency: int, single_s: float | None = None, *, window_ms: int = WINDOW_MS,
               max_windows: int = MAX_WINDOWS, min_samples: int = MIN_SAMPLES,
               budget_s: float = LEVEL_BUDGET_S) -> LevelPlan:
    """The windows, sample count and request timeout for ``concurrency`` clients of a model whose requests
    take ``single_s`` alone (None: not measured, the plan as asked)."""
    window_s = window_ms / 1e3
    if single_s is None:
        return LevelPlan(concurrency, window_s, max_windows, min_samples, REQUEST_TIMEOUT_S)
    # the slowest a level can run is one request at a time: throughput 1 / single_s whatever the clients
    needed = WINDOW_COMPLETIONS * single_s
    stretched = needed > window_s
    window_s = max(window_s, needed)
    worst_latency = concurrency * single_s  # each request waits behind the other clients' ones
    timeout_s = max(REQUEST_TIMEOUT_S, TIMEOUT_FACTOR * worst_latency)
    fits = int(budget_s // window_s)
    too_slow = ""
    head = (f"too slow to measure at {concurrency} client{'s' if concurrency > 1 else ''}: one request takes "
            f"{single_s * 1e3:.0f} ms alone (up to {worst_latency:.1f} s with {concurrency} clients); ")
    if fits < STABLE_WINDOWS:
        too_slow = head + f"{STABLE_WINDOWS} windows of {window_s:.1f} s exceed the level budget of {budget_s:g} s"
    elif worst_latency * STABLE_WINDOWS > budget_s:  # many clients: each window would hold a request or two
        too_slow = head + f"{STABLE_WINDOWS} such requests in a row exceed the level budget of {budget_s:g} s"
    if stretched:  # what fits in the windows the budget allows, at one request at a time
        min_samples = min(min_samples, STABLE_WINDOWS * WINDOW_COMPLETIONS)
    return LevelPlan(concurrency, window_s, max(STABLE_WINDOWS, min(max_windows, fits)), min_samples, timeout_s,
                     stretched, too_slow)


def _is_timeout(exc: BaseException) -> bool:
    text = f"{type(exc).__name__} {exc}".lower()
    return isinstance(exc, TimeoutError) or "deadline_exceeded" in text or "deadline exceeded" in text \
        or "timed out" in text or "timeout" in type(exc).__name__.lower()


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"


class _Worker:
    """One client and prebuilt requests per thread, as a real caller would have; ``offset`` staggers which of
    several requests (a pipeline's images) each thread starts with."""

    def __init__(self, protocol: str, url: str, requests: Sequence[Request], shm: bool,
                 timeout_s: float = REQUEST_TIMEOUT_S, offset: int = 0):
        self.client = make_client(protocol, url, timeout_s)
        self.model = requests[0].model
        self.regions: list[tuple[str, object]] = []
        self.calls: list[tuple[list, dict]] = []  # (inputs, kwargs): the loops pass them on untouched
        for r in list(requests[offset % len(requests):]) + list(requests[:offset % len(requests)]):
            inputs, outputs = to_protocol(protocol, r)
            # gRPC has no client-wide timeout: each call carries it (HTTP: the client's network_timeout)
            self.calls.append((inputs, {"outputs": outputs, "client_timeout": timeout_s} if protocol == "grpc"
                               else {"outputs": outputs}))
        if shm:
            if len(requests) != 1 or not requests[0].outputs:
                raise ValueError("shared-memory timing needs one request that names its outputs")
            self._use_shared_memory(requests[0])

    def send(self, k: int) -> None:
        inputs, kwargs = self.calls[k % len(self.calls)]
        self.client.infer(self.model, inputs, **kwargs)

    def _use_shared_memory(self, request: Request) -> None:
        import tritonclient.utils.shared_memory as shm

        inputs, kwargs = self.calls[0]
        probe = self.client.infer(self.model, inputs, **kwargs)
        for (_, _, arr), inp in zip(request.inputs, inputs):
            key = f"repogen_{uuid.uuid4().hex[:10]}"
            handle = shm.create_shared_memory_region(key, f"/{key}", arr.nbytes)
            shm.set_shared_memory_region(handle, [arr])
            self.client.register_system_shared_memory(key, f"/{key}", arr.nbytes)
            inp.set_shared_memory(key, arr.nbytes)
            self.regions.append((key, handle))
        for name, out in zip(request.outputs, kwargs["outputs"]):
            nbytes = max(probe.as_numpy(name).nbytes, 1)
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
    window boundaries by index (no lock on the request path). A thread stops at its first error."""

    def __init__(self, workers: list[_Worker], timed: bool, timeout_s: float = REQUEST_TIMEOUT_S):
        self.workers, self.timed, self.timeout_s = workers, timed, timeout_s
        self.stop = threading.Event()
        self.latencies: list[list[int]] = [[] for _ in workers]
        self.counts = [0] * len(workers)
        self.errors: list[str] = []
        self.timeouts = 0
        self.threads = [threading.Thread(target=self._timed if timed else self._raw, args=(i,), daemon=True)
                        for i in range(len(workers))]

    def _failed(self, exc: Exception) -> None:
        if _is_timeout(exc):
            self.timeouts += 1
        self.errors.append(_describe(exc))

    def _timed(self, i: int) -> None:
        w, lat, stop, clock = self.workers[i], self.latencies[i], self.stop, time.perf_counter_ns
        infer, name, calls = w.client.infer, w.model, w.calls
        n, k = len(calls), 0
        try:
            while not stop.is_set():
                inputs, kwargs = calls[k % n]
                k += 1
                t0 = clock()
                infer(name, inputs, **kwargs)
                lat.append(clock() - t0)
        except Exception as exc:  # the level's verdict and note
            self._failed(exc)

    def _raw(self, i: int) -> None:
        w, counts, stop = self.workers[i], self.counts, self.stop
        infer, name, calls = w.client.infer, w.model, w.calls
        n, k = len(calls), 0
        try:
            while not stop.is_set():
                inputs, kwargs = calls[k % n]
                k += 1
                infer(name, inputs, **kwargs)
                counts[i] += 1
        except Exception as exc:
            self._failed(exc)

    def __enter__(self) -> "_Load":
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(self.timeout_s + 5)

    def marks(self) -> list[int]:
        return [len(x) for x in self.latencies] if self.timed else list(self.counts)


def _windows(load: _Load, window_s: float, stats, models: Sequence[str], **rule) -> Measurement:
    """Windows of ``load``; with a statistics client, each window carries the server's counters of
    ``models[0]`` (``server``) and of the others (``stages``) over the window."""
    def snapshot() -> dict[str, dict] | None:
        return {m: model_stats(stats, m) for m in models} if stats else None

    state = {"t": time.perf_counter(), "marks": load.marks(), "stats": snapshot()}

    def next_window() -> Window:
        deadline = state["t"] + window_s
        while (left := deadline - time.perf_counter()) > 0 and not load.errors:
            time.sleep(min(left, 0.05))
        now, marks = time.perf_counter(), load.marks()
        after = snapshot()
        lat = [x for i, (a, b) in enumerate(zip(state["marks"], marks)) for x in load.latencies[i][a:b]] \
            if load.timed else []
        delta = {m: stats_delta(state["stats"][m], after[m]) for m in models} if after else {}
        w = Window(now - state["t"], sum(b - a for a, b in zip(state["marks"], marks)), lat,
                   delta.get(models[0]), {m: d for m, d in delta.items() if m != models[0]})
        state.update(t=now, marks=marks, stats=after)
        return w

    return measure_until_stable(next_window, should_stop=lambda: bool(load.errors), **rule)


def _sum_server(deltas: list[dict | None]) -> dict | None:
    if not deltas or any(d is None for d in deltas):
        return None
    total: dict = {"batch_counts": {}}
    for d in deltas:
        for k, v in d.items():
            if k == "batch_counts":
                for size, n in v.items():
                    total["batch_counts"][size] = total["batch_counts"].get(size, 0) + n
            else:
                total[k] = total.get(k, 0) + v
    return total


_SERVER_NS = ("queue_ns", "compute_input_ns", "compute_infer_ns", "compute_output_ns")


def probe_latency(url: str, requests: Sequence[Request], protocol: str = "grpc",
                  timeout_s: float = REQUEST_TIMEOUT_S) -> tuple[float | None, str]:
    """(median seconds of ``PROBE_REQUESTS`` requests sent one at a time after a warm-up one, "") or
    (None, why) when a request failed or timed out."""
    worker = _Worker(protocol, url, requests, False, timeout_s)
    try:
        seconds = []
        for k in range(PROBE_REQUESTS + 1):
            t0 = time.perf_counter()
            worker.send(k)
            seconds.append(time.perf_counter() - t0)
    except Exception as exc:
        why = f"one request alone took longer than {timeout_s:g} s" if _is_timeout(exc) else _describe(exc)
        return None, why
    finally:
        worker.close()
    return float(np.median(seconds[1:])), ""


def unmeasured(protocol: str, plan: LevelPlan, verdict: str, note: str, batch: int = 1,
               single_s: float | None = None) -> SpeedResult:
    """The result of a level that was not timed (too slow, or the probe failed)."""
    nan = float("nan")
    return SpeedResult(protocol=protocol, concurrency=plan.concurrency, requests=0, batch=batch, p50_ms=nan,
                       p90_ms=nan, p99_ms=nan, mean_ms=nan, throughput_rps=0.0, raw_throughput_rps=None,
                       overhead_ratio=None, server_queue_us=nan, server_compute_us=nan,
                       window_ms=int(plan.window_s * 1e3), verdict=verdict, note=note,
                       single_request_ms=None if single_s is None else single_s * 1e3,
                       request_timeout_s=plan.timeout_s)


def measure_level(url: str, requests: Sequence[Request], plan: LevelPlan, *, protocol: str = "grpc",
                  shm: bool = False, stats_url: str | None = None, raw: bool = True,
                  stability_pct: float = STABILITY_PCT, stage_models: Sequence[str] = (), batch: int = 1,
                  single_s: float | None = None) -> SpeedResult:
    """Measure one concurrency level as ``plan`` says; ``requests`` are sent in turn by every client (each
    starting at another one); ``stats_url`` is the gRPC endpoint for statistics; ``stage_models`` are the
    other models one request runs (their server time per request lands in ``stage_server_us``)."""
    label = protocol + ("+shm" if shm else "")
    if plan.too_slow:
        return unmeasured(label, plan, TOO_SLOW, plan.too_slow, batch, single_s)
    c = plan.concurrency
    workers = [_Worker(protocol, url, requests, shm, plan.timeout_s, offset=k) for k in range(c)]
    stats = make_client("grpc", stats_url or url) if (stats_url or protocol == "grpc") else None
    models = [requests[0].model, *[m for m in stage_models if m != requests[0].model]]
    rule = {"pct": stability_pct, "max_windows": plan.max_windows, "min_samples": plan.min_samples}
    raw_m: Measurement | None = None
    timeouts = 0
    try:
        with _Load(workers, True, plan.timeout_s) as load:
            time.sleep(min(plan.window_s, 1.0) / 2)  # warm-up: connections, caches, the batcher's rhythm
            m = _windows(load, plan.window_s, stats, models, **rule)
        errors, timeouts = list(load.errors), load.timeouts
        # slow requests: the harness's microseconds per request are far below the noise; no raw phase
        if raw and not errors and not plan.stretched:
            with _Load(workers, False, plan.timeout_s) as raw_load:
                time.sleep(min(plan.window_s, 1.0) / 4)
                raw_m = _windows(raw_load, plan.window_s, None, models, **rule)
            errors += raw_load.errors
            timeouts += raw_load.timeouts
    finally:
        for w in workers:
            w.close()
        if stats is not None:
            stats.close()
    lat_ms = np.array(m.latencies_ns, dtype=np.float64) / 1e6 if m.latencies_ns else np.array([np.nan])
    thr = m.throughput
    raw_thr = raw_m.throughput if raw_m is not None and raw_m.used else None
    server = _sum_server([w.server for w in m.used])
    done = server["success_count"] if server else 0

    def per_request(key: str) -> float:
        return server[key] / done / 1e3 if server and done else float("nan")

    stages = {}
    if server and done:
        for name in models[1:]:
            total = _sum_server([w.stages.get(name) for w in m.used])
            stages[name] = sum(total[k] for k in _SERVER_NS) / done / 1e3 if total else float("nan")
        stages[models[0]] = sum(server[k] for k in _SERVER_NS) / done / 1e3
    if timeouts:
        verdict = TOO_SLOW
        note = (f"too slow to measure at {c} client{'s' if c > 1 else ''}: {timeouts} request(s) took longer "
                f"than the {plan.timeout_s:g} s timeout")
    elif errors:
        verdict, note = ERROR, f"timing at {c} client{'s' if c > 1 else ''} stopped: {errors[0]}"
    else:
        verdict, note = (STABLE if m.stable else UNSTABLE), ""
    return SpeedResult(
        protocol=label, concurrency=c, requests=sum(w.completed for w in m.used),
        batch=batch, p50_ms=float(np.percentile(lat_ms, 50)), p90_ms=float(np.percentile(lat_ms, 90)),
        p99_ms=float(np.percentile(lat_ms, 99)), mean_ms=float(lat_ms.mean()), throughput_rps=thr,
        raw_throughput_rps=raw_thr, overhead_ratio=(raw_thr / thr if raw_thr and thr else None),
        server_queue_us=per_request("queue_ns"), server_compute_us=per_request("compute_infer_ns"),
        server_compute_input_us=per_request("compute_input_ns"),
        server_compute_output_us=per_request("compute_output_ns"),
        server_batches=(server["batch_counts"] if server else {}), window_ms=int(round(plan.window_s * 1e3)),
        windows=len(m.windows), stable=m.stable, raw_windows=len(raw_m.windows) if raw_m else 0,
        raw_stable=raw_m.stable if raw_m else None,
        window_throughputs=[round(w.throughput, 2) for w in m.windows], errors=errors[:5],
        p95_ms=float(np.percentile(lat_ms, 95)), verdict=verdict, note=note,
        single_request_ms=None if single_s is None else single_s * 1e3, request_timeout_s=plan.timeout_s,
        stage_server_us=stages)


def measure_levels(url: str, requests: Sequence[Request], concurrency: Sequence[int], *, protocol: str = "grpc",
                   stats_url: str | None = None, raw: bool = True, shm: bool = False,
                   stage_models: Sequence[str] = (), batch: int = 1, min_samples: int = MIN_SAMPLES,
                   window_ms: int = WINDOW_MS, stability_pct: float = STABILITY_PCT, max_windows: int = MAX_WINDOWS,
                   level_budget_s: float = LEVEL_BUDGET_S) -> list[SpeedResult]:
    """Every level of ``concurrency``, each sized from one probe of the single-request latency; with ``shm``
    a shared-memory row after each gRPC one. Never raises for slowness: a level it cannot time is a row whose
    verdict says why."""
    if not level_budget_s > 0:
        raise ConfigError(f"level budget {level_budget_s} s: must be > 0 (--level-budget-s)")
    single_s, why = probe_latency(url, requests, protocol)
    results = []
    for c in concurrency:
        plan = plan_level(c, single_s, window_ms=window_ms, max_windows=max_windows, min_samples=min_samples,
                          budget_s=level_budget_s)
        if single_s is None:
            results.append(unmeasured(protocol, plan, TOO_SLOW if "longer than" in why else ERROR,
                                      f"not timed at {c} client{'s' if c > 1 else ''}: {why}", batch))
            continue
        kw = {"protocol": protocol, "stats_url": stats_url, "stability_pct": stability_pct, "batch": batch,
              "single_s": single_s}
        results.append(measure_level(url, requests, plan, raw=raw, stage_models=stage_models, **kw))
        if shm and protocol == "grpc":
            results.append(measure_level(url, requests, plan, shm=True, raw=False, **kw))
    return results


def measure(url: str, model, feeds: dict[str, np.ndarray], concurrency: int,
            min_samples: int = MIN_SAMPLES, protocol: str = "grpc", shm: bool = False, stats_url: str | None = None,
            raw: bool = True, window_ms: int = WINDOW_MS, stability_pct: float = STABILITY_PCT,
            max_windows: int = MAX_WINDOWS) -> SpeedResult:
    """One level of a tensor model (a ``ModelFolder`` and its feeds) with the windows as asked (the benches)."""
    batch = next(iter(feeds.values())).shape[0] if model.max_batch_size > 0 and feeds else 1
    plan = plan_level(concurrency, None, window_ms=window_ms, max_windows=max_windows, min_samples=min_samples)
    return measure_level(url, [tensor_request(model, feeds)], plan, protocol=protocol, shm=shm, stats_url=stats_url,
                         raw=raw, stability_pct=stability_pct, batch=batch)


__all__ = ["LevelPlan", "SpeedResult", "measure", "measure_level", "measure_levels", "plan_level", "probe_latency"]
