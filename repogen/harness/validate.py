"""``repogen validate``: serve a repository, prove every model answers like Paddle, and time it."""

from __future__ import annotations

import json
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from repogen.errors import ConfigError, PaddleReferenceError, RepogenError, ServerError
from repogen.extras import require
from repogen.harness import batching, clients
from repogen.harness.endpoints import probe_grpc, probe_http, server_urls
from repogen.harness.model_files import ModelFolder, list_models, make_cases, read_model_folder
from repogen.harness.reference import PaddleReference, source_model
from repogen.harness.server import TritonServer, launch
from repogen.harness.report import ModelReport, OutputCheck, Report
from repogen.harness.speed import ERROR, LEVEL_BUDGET_S, SpeedResult, measure_levels
from repogen.npz import load_npz
from repogen.harness.pipelines import pipeline_folders, pipeline_ops, validate_pipelines
from repogen.verify.compare import compare
from repogen.verify.ties import TieEvidence, TieScorer
from repogen.verify.tolerances import Rule

DYNAMIC_BATCH_REQUESTS = 24


# -- config comparison ---------------------------------------------------------------------------------------------

def config_differences(generated, served, prefix: str = "") -> list[str]:
    """Every field set in the generated config that the server reports differently (server extras allowed:
    Triton fills in defaults such as instance-group names)."""
    diffs = []
    for fd, value in generated.ListFields():
        path = prefix + fd.name
        other = getattr(served, fd.name)
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            for k, v in value.items():
                if k not in other:
                    diffs.append(f"{path}[{k!r}]: in config.pbtxt, missing on the server")
                elif hasattr(v, "ListFields"):
                    diffs += config_differences(v, other[k], f"{path}[{k!r}].")
                elif v != other[k]:
                    diffs.append(f"{path}[{k!r}]: file {v!r}, server {other[k]!r}")
        elif fd.is_repeated if hasattr(fd, "is_repeated") else fd.label == fd.LABEL_REPEATED:
            if len(value) != len(other):
                diffs.append(f"{path}: file has {len(value)} entries, server {len(other)}")
            elif fd.message_type is not None:
                for i, (a, b) in enumerate(zip(value, other)):
                    diffs += config_differences(a, b, f"{path}[{i}].")
            elif list(value) != list(other):
                diffs.append(f"{path}: file {list(value)}, server {list(other)}")
        elif fd.message_type is not None:
            diffs += config_differences(value, other, path + ".")
        elif value != other:
            diffs.append(f"{path}: file {value!r}, server {other!r}")
    return diffs


# -- output comparison ---------------------------------------------------------------------------------------------

def compare_output(protocol: str, case: str, name: str, got: np.ndarray | None, want: np.ndarray, rule: Rule,
                   detection: str | None = None, tie: TieEvidence | None = None, noise: Any = None) -> OutputCheck:
    """One served output against Paddle's through the verification core (repogen.verify.compare)."""
    base = dict(protocol=protocol, case=case, output=name, expected_shape=list(want.shape), tolerance=rule.rtol)
    if got is None:
        return OutputCheck(shape=None, max_abs=None, rel_err=None, ok=False, problem="output missing", **base)
    if got.shape == (*want.shape, 1) and got.ndim == 2:
        # a batch-only output ([N] in Paddle) is dims [1] + reshape [] in the config, which Triton reports as [N, 1]
        got = got.reshape(want.shape)
    v = compare(got, want, rule, name=name, detection=detection, tie=tie, noise=noise)
    return OutputCheck(shape=list(got.shape), max_abs=v.max_abs, rel_err=v.rel_l2, ok=v.passed, problem=v.reason,
                       ties=v.ties, criterion=v.criterion, **base)


def _tie_scorer(model: ModelFolder, ref: PaddleReference) -> TieScorer | bool:
    """Scores for tie-aware comparison of selected outputs, or False when the source model cannot be converted
    for them."""
    try:
        return TieScorer(source_model(model), ref.in_names, ref.out_names)
    except Exception:  # a model the NumPy backend cannot run: its selected outputs compare exactly
        return False


def _record(report: ModelReport, check: OutputCheck) -> None:
    report.checks.append(check)
    if not check.ok:
        report.fail(f"{check.protocol} {check.case} output {check.output}: {check.problem}")


def _check_dynamic_batching(server: TritonServer, model: ModelFolder, big: dict[str, np.ndarray],
                            want: dict[str, np.ndarray], report: ModelReport, concurrency: int,
                            ref: PaddleReference | None = None) -> None:
    """Concurrent requests of mixed batch sizes; each response must equal the matching rows of the reference."""
    rng = np.random.default_rng(1)
    top = next(iter(big.values())).shape[0]
    sizes = [int(s) for s in rng.integers(1, top + 1, DYNAMIC_BATCH_REQUESTS)]
    sizes[:2] = [1, top]
    local = threading.local()

    def one(i: int, size: int) -> tuple[int, int, dict | str]:
        if not hasattr(local, "client"):
            local.client = clients.make_client("grpc", server.grpc_url)
        start = (i * 7) % (top - size + 1)
        feeds = {k: v[start:start + size] for k, v in big.items()}
        try:
            return start, size, clients.infer_arrays(local.client, "grpc", model, feeds)
        except Exception as exc:
            return start, size, f"{type(exc).__name__}: {exc}"

    stats = clients.make_client("grpc", server.grpc_url)
    before = clients.model_stats(stats, model.name)
    with ThreadPoolExecutor(max(concurrency, 4)) as pool:
        results = list(pool.map(lambda a: one(*a), enumerate(sizes)))
    delta = clients.stats_delta(before, clients.model_stats(stats, model.name))
    stats.close()
    bad = 0
    for n, (start, size, got) in enumerate(results):
        if isinstance(got, str):
            bad += 1
            report.fail(f"dynamic batching request {n} (batch {size}): {got}")
            continue
        detections = model.manifest.get("detections") or {}
        # detection rows do not line up with batch rows: such a request gets its own reference run
        mine = ref.run({k: v[start:start + size] for k, v in big.items()}) if detections and ref else None
        for spec in model.outputs:
            check = compare_output("grpc", f"mixed #{n} batch {size}", spec.name, got[spec.name],
                                   mine[spec.name] if mine else want[spec.name][start:start + size], model.rule,
                                   detections.get(spec.name))
            if not check.ok:
                bad += 1
                _record(report, check)
    report.dynamic_batching = {
        "requests": len(sizes), "batch_sizes": sizes, "failed": bad,
        "server_executions": delta["execution_count"], "server_inferences": delta["inference_count"],
        "executed_batch_sizes": {str(k): v for k, v in sorted(delta["batch_counts"].items())},
        "merged": delta["execution_count"] < len(sizes),
    }


def validate_model(server: TritonServer, model: ModelFolder, *, protocols: tuple[str, ...] = ("http", "grpc"),
                   inputs: dict[str, np.ndarray] | None = None, concurrency: tuple[int, ...] = (1, 4),
                   requests: int = 200, shm: bool = False, speed: bool = True,
                   timing: dict | None = None) -> ModelReport:
    """Check one loaded model against its config and Paddle; fills and returns its report."""
    report = ModelReport(model.name)
    load_error = server.loaded.get(model.name)
    if load_error:
        report.fail(f"Triton did not load {model.name}: {load_error}")
        return report
    grpc = clients.make_client("grpc", server.grpc_url)
    try:
        served = grpc.get_model_config(model.name).config
        report.config_diffs = config_differences(model.config, served)
        for d in report.config_diffs:
            report.fail(f"server config differs from {model.path / 'config.pbtxt'}: {d}")
        ref = PaddleReference(model)
        # the largest batch is the one the reference can run within its memory cap (measured on one sample)
        cases = make_cases(model, inputs, probe=lambda feeds: ref.runner.measure_run_mb(feeds, ref.run),
                           memory_mb=ref.runner.memory_mb)
        expected = {case: ref.run(feeds) for case, feeds in cases.items()}
        scorer = None
        for protocol in protocols:
            client = grpc if protocol == "grpc" else clients.make_client(protocol, server.http_url)
            for case, feeds in cases.items():
                try:
                    got = clients.infer_arrays(client, protocol, model, feeds)
                except Exception as exc:
                    _raise_if_dead(server, exc)
                    report.fail(f"{protocol} {case}: inference failed: {exc}")
                    continue
                for spec in model.outputs:
                    detection = (model.manifest.get("detections") or {}).get(spec.name)
                    check = compare_output(protocol, case, spec.name, got[spec.name], expected[case][spec.name],
                                           model.rule, detection)
                    if not check.ok and check.shape == check.expected_shape:
                        # selected by score: ties decide; fp32 floats: the network's own rounding noise allows
                        scorer = _tie_scorer(model, ref) if scorer is None else scorer
                        found = scorer.evidence(spec.name, feeds) if scorer else None
                        floor = scorer.floor(spec.name, feeds) if scorer and model.rule.noise_factor else None
                        if found is not None or floor is not None:
                            check = compare_output(protocol, case, spec.name, got[spec.name],
                                                   expected[case][spec.name], model.rule, detection,
                                                   TieEvidence.from_arrays(*found) if found else None, floor)
                    _record(report, check)
            if client is not grpc:
                client.close()
        biggest = max(cases, key=lambda c: next(iter(cases[c].values())).shape[0] if cases[c] else 0)
        if model.max_batch_size > 1 and "grpc" in protocols:
            _check_dynamic_batching(server, model, cases[biggest], expected[biggest], report, max(concurrency), ref)
            batching.require_merging(server, model, cases[biggest], report)
        if speed and report.ok:
            sp = "grpc" if "grpc" in protocols else protocols[0]
            report.speed = time_model(server, model, next(iter(cases.values())), concurrency, protocol=sp,
                                      requests=requests, shm=shm, timing=timing)
    except (ServerError, PaddleReferenceError):
        # Paddle's own failure gives no verdict on the served model: one error for the CLI (rc 2), as check
        # and build report it; validate_repository's `with launch(...)` still tears the server down
        raise
    except RepogenError as exc:
        report.fail(str(exc))
    except Exception as exc:
        _raise_if_dead(server, exc)
        report.fail(f"{type(exc).__name__}: {exc}")
    finally:
        grpc.close()
    return report


def time_model(server: TritonServer, model: ModelFolder, feeds: dict[str, np.ndarray], concurrency: tuple[int, ...],
               *, protocol: str = "grpc", requests: int = 200, shm: bool = False,
               timing: dict | None = None) -> list[SpeedResult]:
    """The speed rows of a model that answered correctly: never a failure of the model (a level too slow to
    time, or one whose requests failed, says so in its row); a server that died meanwhile is a ServerError."""
    batch = next(iter(feeds.values())).shape[0] if model.max_batch_size > 0 and feeds else 1
    url = server.grpc_url if protocol == "grpc" else server.http_url
    rows = measure_levels(url, [clients.tensor_request(model, feeds)], concurrency, protocol=protocol,
                          stats_url=server.grpc_url, shm=shm, batch=batch, min_samples=requests, **(timing or {}))
    if any(r.errors or r.verdict == ERROR for r in rows) and not server.alive():
        raise server.error_with_log(f"tritonserver died while timing {model.name}")
    return rows


def _raise_if_dead(server: TritonServer, exc: BaseException) -> None:
    if not server.alive():
        raise server.error_with_log(f"tritonserver died during validation ({type(exc).__name__}: {exc})") from exc


def _read_folders(root: Path, names: list[str]) -> tuple[dict[str, ModelFolder], dict[str, ModelReport]]:
    """A folder the harness cannot read (someone else's model, a broken config) is reported and skipped;
    it does not keep the other models of the repository from being validated."""
    folders, unreadable = {}, {}
    for n in names:
        try:
            folders[n] = read_model_folder(root / n)
        except RepogenError as exc:
            unreadable[n] = ModelReport(n, ok=False, failures=[f"not validated: {exc}"])
    return folders, unreadable


def validate_repository(repo: str | Path, *, models: list[str] | None = None, server: str = "local",
                        image: str | None = None, tritonserver: str | None = None,
                        protocols: tuple[str, ...] = ("http", "grpc"), inputs: str | Path | None = None,
                        concurrency: tuple[int, ...] = (1, 4), requests: int = 200, shm: bool = False,
                        speed: bool = True, ready_timeout: float = 60.0, grpc_url: str | None = None,
                        engine: str | None = None, load: bool = False, timing: dict | None = None) -> Report:
    """Launch (or attach to) Triton on ``repo``, validate each model, tear the server down; returns the report.

    Raises ServerError when the server cannot start or dies; per-model problems land in the report."""
    remote = "://" in str(repo)  # s3://...: launch() mirrors the objects Triton reads into srv.repo
    repo = str(repo) if remote else Path(repo)
    if not remote and not repo.is_dir():
        raise ConfigError(f"{repo}: model repository folder not found")
    bad = [p for p in protocols if p not in ("http", "grpc")]
    if bad or not protocols:
        raise ConfigError(f"--protocol: expected http and/or grpc, got {','.join(protocols)}")
    names = models if remote else list_models(repo, models)
    folders, unreadable = ({}, {}) if remote else _read_folders(repo, names)
    # pipeline models (repogen.pipelines: image bytes in, texts/boxes out) are checked by their own hook
    pipelines = [] if remote else pipeline_folders(repo, names)
    for n in pipelines:
        unreadable.pop(n, None)
    if pipelines:
        pipeline_ops()  # OpenCV and pyclipper, before a server starts
    feeds = load_npz(inputs, "--inputs") if inputs else None
    # Import Paddle before any server exists: a Ctrl-C inside paddle's import surfaces as an ImportError
    # ("Can not import paddle core"), which must not be mistaken for a per-model failure.
    require("paddle.inference", extra="serve", for_what="comparing served answers with Paddle's")

    if server not in ("local", "docker"):
        probe_http(server_urls(server, grpc_url)[0])  # malformed URL: exit 2 at once; refused: server error
    if not remote and not folders and not pipelines:
        return Report(str(repo), server, "-", "-", models=[unreadable[n] for n in names])
    with launch(repo, server, models=names if remote else list(folders) + pipelines, image=image, tritonserver=tritonserver,
                ready_timeout=ready_timeout, grpc_url=grpc_url, engine=engine, load_on_attach=load) as srv:
        if remote:
            names = list_models(srv.repo, models)
            folders, unreadable = _read_folders(srv.repo, names)
        if srv.kind == "url":
            probe_grpc(srv.grpc_url, explicit=bool(grpc_url) or "," in server)
        report = Report(str(repo), server, srv.http_url, srv.grpc_url, notes=list(srv.notes))
        if remote:
            pipelines = pipeline_folders(srv.repo, names)
        piped = {r.model: r for r in validate_pipelines(
            srv, Path(srv.repo) if remote else repo, pipelines, protocols=protocols, concurrency=concurrency,
            requests=min(requests, 40), speed=speed, timing=timing)} if pipelines else {}
        for name in names:
            if name in piped:
                report.models.append(piped[name])
                continue
            if name in unreadable:
                report.models.append(unreadable[name])
                continue
            report.models.append(validate_model(srv, folders[name], protocols=protocols, inputs=feeds,
                                                concurrency=concurrency, requests=requests, shm=shm, speed=speed,
                                                timing=timing))
    return report


__all__ = ["Report", "ModelReport", "OutputCheck", "config_differences", "compare_output", "validate_model",
           "validate_repository", "time_model"]
