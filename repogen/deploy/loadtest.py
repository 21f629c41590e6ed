"""A bounded loopback load test over one or more Triton replicas, with the harness's own client.

Used to prove that a rolling update or a lost replica costs no request: every request is counted as ok,
failed (no replica answered), or retried (a replica failed, another answered). Responses carry the model
version that answered, so a test can see exactly when traffic moved to a new version.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from repogen.harness import clients
from repogen.harness.model_files import ModelFolder

MAX_ERRORS = 1000  # kept in words; the counters count every one


@dataclass(frozen=True)
class Replica:
    http_url: str  # host:port, tritonclient's form
    grpc_url: str


@dataclass
class Answer:
    at: float  # seconds since the load started
    replica: int
    protocol: str
    version: str
    outputs: dict[str, np.ndarray]


@dataclass
class LoadResult:
    sent: int = 0
    ok: int = 0
    failed: int = 0  # no replica answered the request
    retried: int = 0  # a replica failed it, another answered
    errors: list[str] = field(default_factory=list)
    versions: Counter = field(default_factory=Counter)
    per_replica: Counter = field(default_factory=Counter)
    answers: list[Answer] = field(default_factory=list)  # the last ``keep`` answers, in order
    seconds: float = 0.0

    def summary(self) -> dict:
        return {"sent": self.sent, "ok": self.ok, "failed": self.failed, "retried": self.retried,
                "versions": dict(self.versions), "per_replica": dict(self.per_replica),
                "seconds": round(self.seconds, 3), "errors": self.errors[:5]}


class LoadTest:
    """Run in a background thread (``start``/``stop``) or to completion (``run``). Bounded by
    ``max_requests`` and ``max_seconds`` whatever happens; ``retries`` > 0 sends a failed request to the
    next replica (a load balancer's retry)."""

    def __init__(self, replicas: Sequence[Replica], model: ModelFolder, feeds: dict[str, np.ndarray], *,
                 protocols: Sequence[str] = ("http", "grpc"), max_requests: int = 5000, max_seconds: float = 120.0,
                 retries: int = 0, keep: int = 200, pause_s: float = 0.0):
        self.replicas = list(replicas)
        self.model, self.feeds = model, feeds
        self.protocols = list(protocols)
        self.max_requests, self.max_seconds = max_requests, max_seconds
        self.retries, self.keep, self.pause_s = retries, keep, pause_s
        self.result = LoadResult()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._clients: dict[tuple[int, str], object] = {}

    def _client(self, i: int, protocol: str):
        key = (i, protocol)
        if key not in self._clients:
            r = self.replicas[i]
            self._clients[key] = clients.make_client(protocol, r.grpc_url if protocol == "grpc" else r.http_url)
        return self._clients[key]

    def _once(self, n: int, started: float) -> None:
        protocol = self.protocols[n % len(self.protocols)]
        first = n % len(self.replicas)
        problems = []
        for attempt in range(1 + self.retries):
            i = (first + attempt) % len(self.replicas)
            try:
                inputs, outputs = clients.build_request(protocol, self.model, self.feeds)
                res = clients.infer(self._client(i, protocol), protocol, self.model, inputs, outputs)
                resp = res.get_response()
                version = str(resp["model_version"] if isinstance(resp, dict) else resp.model_version)
                arrays = {s.name: res.as_numpy(s.name) for s in self.model.outputs}
            except Exception as exc:  # any client error is a failed attempt, recorded in words
                problems.append(f"replica {i} {protocol}: {type(exc).__name__}: {str(exc)[:200]}")
                self._clients.pop((i, protocol), None)  # reconnect next time
                continue
            with self._lock:
                r = self.result
                r.ok += 1
                r.retried += 1 if attempt else 0
                r.versions[version] += 1
                r.per_replica[i] += 1
                r.answers.append(Answer(time.monotonic() - started, i, protocol, version, arrays))
                del r.answers[:-self.keep]
                r.errors.extend(problems[:MAX_ERRORS - len(r.errors)] if attempt else [])
            return
        with self._lock:
            self.result.failed += 1
            self.result.errors.extend(problems[:MAX_ERRORS - len(self.result.errors)])

    def run(self) -> LoadResult:
        started = time.monotonic()
        n = 0
        while not self._stop.is_set() and n < self.max_requests and time.monotonic() - started < self.max_seconds:
            self.result.sent += 1
            self._once(n, started)
            n += 1
            if self.pause_s:
                time.sleep(self.pause_s)
        self.result.seconds = time.monotonic() - started
        return self.result

    def start(self) -> "LoadTest":
        self._thread = threading.Thread(target=self.run, name="repogen-loadtest", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 90.0) -> LoadResult:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        return self.result

    def latest(self, count: int) -> list[Answer]:
        with self._lock:
            return list(self.result.answers[-count:])
