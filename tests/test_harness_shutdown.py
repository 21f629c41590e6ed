"""Harness behaviour a Triton engineer expects, against the real bundled tritonserver (CPU):
finalize() runs on shutdown, metrics on loopback, no load calls on a server repogen did not start,
and validate proves (or refutes) dynamic batching from the statistics extension."""

from __future__ import annotations

import io
import urllib.request
from pathlib import Path

import pytest
from rich.console import Console

from repogen.harness.model_files import read_model_folder
from repogen.cli.validate_report import print_report
from repogen.harness.server import group_members, launch
from repogen.harness.validate import Report, validate_model
from repogen.build.spec import EXAMPLE_DIR, ModelSpec
from tests.support.harness_repos import derive

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

FINALIZE = '''

def _repogen_test_finalize(self):
    with open({path!r}, "w") as f:
        f.write("finalized")


TritonPythonModel.finalize = _repogen_test_finalize
'''


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    from repogen.build.flow import build_repository

    root = tmp_path_factory.mktemp("repo")
    build_repository([ModelSpec(source=EXAMPLE_DIR, name="tiny_cnn", target="paddle", check=False)], root,
                     progress=False)
    derive(root, "tiny_cnn", "other")
    derive(root, "tiny_cnn", "nobatch", config_edit=("dynamic_batching { }\n", ""))
    return root


def test_finalize_runs_on_shutdown(repo: Path, tmp_path: Path) -> None:
    marker = tmp_path / "finalized.txt"
    derive(repo, "tiny_cnn", "fin", model_py_append=FINALIZE.format(path=str(marker)))
    try:
        with launch(repo, models=["fin"], require_models=True) as srv:
            assert not marker.exists()
            pgid = srv.proc.pid
        assert marker.read_text() == "finalized", "the Python-backend stub never ran finalize()"
        assert srv.proc.returncode == 0, "tritonserver did not exit on its own after SIGTERM"
        assert not group_members(pgid)
    finally:
        import shutil
        shutil.rmtree(repo / "fin")


def test_metrics_loopback_attach_without_load_and_batching(repo: Path) -> None:
    with launch(repo, models=["tiny_cnn", "nobatch"], require_models=True) as srv:
        cmdline = Path(f"/proc/{srv.proc.pid}/cmdline").read_bytes().split(b"\0")
        assert b"--allow-metrics=true" in cmdline and b"--metrics-address=127.0.0.1" in cmdline
        assert srv.metrics_url.startswith("127.0.0.1:")

        report = validate_model(srv, read_model_folder(repo / "tiny_cnn"), speed=False)
        assert report.ok, report.failures
        d = report.dynamic_batching
        assert d["configured"] and d["merged"]
        ran = d.get("burst", d)
        assert ran["server_executions"] < ran.get("requests", d["requests"])

        plain = validate_model(srv, read_model_folder(repo / "nobatch"), speed=False)
        assert plain.ok, plain.failures
        assert plain.dynamic_batching["configured"] is False
        out = io.StringIO()
        print_report(Report(str(repo), "local", srv.http_url, srv.grpc_url, [report, plain]),
                     Console(file=out, width=200))
        lines = [line for line in out.getvalue().splitlines() if "dynamic batching" in line]
        assert len(lines) == 1 and lines[0].startswith("tiny_cnn:")

        with urllib.request.urlopen(f"http://{srv.metrics_url}/metrics", timeout=10) as resp:
            text = resp.read().decode()
        assert 'nv_inference_request_success{model="tiny_cnn",version="1"}' in text

        # attached to a running server: readiness only, no load call; "other" stays unloaded
        with launch(repo, f"http://{srv.http_url}", models=["tiny_cnn", "other"]) as attached:
            assert attached.proc is None and attached.loaded["tiny_cnn"] is None
            assert "--load" in attached.loaded["other"]
        states = {r["name"]: r.get("state") for r in srv.repository_index()}
        assert states.get("other") != "READY"
        with launch(repo, f"http://{srv.http_url}", models=["other"], load_on_attach=True) as attached:
            assert attached.loaded["other"] is None
        assert {r["name"]: r.get("state") for r in srv.repository_index()}["other"] == "READY"
