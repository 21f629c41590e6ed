"""What a validation found: per output and protocol (:class:`OutputCheck`), per model (:class:`ModelReport`), for
the repository (:class:`Report`); plain data the command line prints and ``--json`` dumps."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from repogen.harness.speed import SpeedResult


@dataclass
class OutputCheck:
    protocol: str
    case: str
    output: str
    shape: list[int] | None
    expected_shape: list[int]
    max_abs: float | None
    rel_err: float | None  # ||got - want|| / ||want||
    tolerance: float
    ok: bool
    problem: str = ""
    ties: int | None = None  # selected by score: positions that differ from Paddle's but are score ties
    criterion: str = ""  # what passed it (repogen.verify.compare: exact, elementwise, noise, rel_l2, ties)


@dataclass
class ModelReport:
    model: str
    ok: bool = True
    failures: list[str] = field(default_factory=list)
    config_diffs: list[str] = field(default_factory=list)
    checks: list[OutputCheck] = field(default_factory=list)
    dynamic_batching: dict = field(default_factory=dict)
    speed: list[SpeedResult] = field(default_factory=list)

    def fail(self, message: str) -> None:
        self.ok = False
        self.failures.append(message)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["speed"] = [s.to_dict() for s in self.speed]
        return d


@dataclass
class Report:
    repo: str
    server: str
    http_url: str
    grpc_url: str
    models: list[ModelReport] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the launch had to adapt (server.TritonServer.notes)

    @property
    def ok(self) -> bool:
        return not self.failures and all(m.ok for m in self.models)

    def to_dict(self) -> dict:
        return {"repo": self.repo, "server": self.server, "http_url": self.http_url, "grpc_url": self.grpc_url,
                "ok": self.ok, "failures": self.failures, "notes": self.notes,
                "models": [m.to_dict() for m in self.models]}
