"""What a new user meets first: help texts, path prefixes, the summary table in a pipe, --fp16 with the
paddle target, and (end to end, real tritonserver) serve -> the printed validate command."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from repogen import cli
from repogen.build.spec import EXAMPLE_DIR

ROOT = Path(__file__).resolve().parent.parent
MINE = ("inspect", "ops", "check", "build", "validate", "serve")


def test_every_option_has_help() -> None:
    parser = cli.build_parser()
    assert "Turn PaddlePaddle inference models into checked Triton" in parser.description
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    missing = [f"{name} {'/'.join(a.option_strings) or a.dest}" for name in MINE
               for a in sub.choices[name]._actions
               if not isinstance(a, argparse._HelpAction) and not (a.help or "").strip()]
    assert missing == []
    build_help = sub.choices["build"].format_help()
    assert "8 when" in build_help and "max_batch_size" in build_help  # the default max batch is explained


def test_build_accepts_a_path_prefix(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "repo"
    rc = cli.main(["build", str(EXAMPLE_DIR / "inference"), "--out", str(out), "--no-check", "--json"])
    assert rc == 0, capsys.readouterr().err
    (model,) = json.loads(capsys.readouterr().out)["models"]
    assert model["name"] == "tiny_cnn" and (out / "tiny_cnn" / "1" / "inference.pdmodel").is_file()
    rc = cli.main(["build", str(EXAMPLE_DIR / "nothing"), "--out", str(tmp_path / "r2")])
    err = capsys.readouterr().err
    assert rc == 2 and f"{EXAMPLE_DIR / 'nothing'} does not exist (expected a model folder, a model file, or a path " \
                       "prefix" in err


def test_fp16_paddle_target_checks_what_is_built(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The paddle target serves fp32: the check runs at fp32 (the fp32 rule; the network's noise floor is
    computed only for an output that misses the elementwise bound), not on an fp16 network."""
    rc = cli.main(["build", "--out", str(tmp_path / "repo"), "--fp16", "--target", "paddle", "--json"])
    assert rc == 0
    (model,) = json.loads(capsys.readouterr().out)["models"]
    assert model["precision"] == "fp32"
    assert model["check"]["status"] == "passed"
    man = json.loads((tmp_path / "repo" / "tiny_cnn" / "repogen.json").read_text())
    assert man["tolerance"]["precision"] == "fp32"
    outputs = model["check"]["outputs"].values()
    assert outputs and all(o["passed"] and o["rel_l2"] < 1e-5 for o in outputs)


def test_summary_table_keeps_full_rows_in_a_pipe(tmp_path: Path) -> None:
    name = "a_model_name_long_enough_to_be_cut_in_eighty_columns_mnv2_pdmodel"
    proc = subprocess.run([sys.executable, "-m", "repogen.cli", "build", "--out", str(tmp_path / "repo"),
                           "--name", name, "--no-check"], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "COLUMNS": "80"}, timeout=300)
    assert proc.returncode == 0, proc.stderr
    row = next(line for line in proc.stdout.splitlines() if name in line)
    assert "paddle" in row and "skipped" in row and "…" not in proc.stdout


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.e2e
@pytest.mark.timeout(300)
def test_serve_prints_the_validate_command_that_passes(tmp_path: Path) -> None:
    """A renamed model and a broken foreign model in one repository; `repogen serve --http-port/--grpc-port`
    prints a validate command; run as printed, it validates the renamed model through the real server
    (answers compared with Paddle via the manifest's name mapping) and reports the broken one (exit 1)."""
    repo = tmp_path / "repo"
    assert cli.main(["build", "--out", str(repo), "--name", "renamed", "--target", "paddle", "--no-check",
                     "--input-names", "image:pixels", "--output-names", "probs:scores", "--max-batch-size", "2",
                     "--json"]) == 0
    (repo / "foreign").mkdir()
    (repo / "foreign" / "config.pbtxt").write_text('name: "foreign"\nbackend: "python"\ninput { name: "x" data_type: ')
    http_port, grpc_port = _free_port(), _free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    # serve refuses a repository Triton cannot fully load, so it serves the renamed model alone
    serve_repo = tmp_path / "serve_repo"
    serve_repo.mkdir()
    (serve_repo / "renamed").symlink_to(repo / "renamed")
    serve = subprocess.Popen([sys.executable, "-m", "repogen.cli", "serve", str(serve_repo),
                              "--http-port", str(http_port), "--grpc-port", str(grpc_port)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    try:
        lines = []
        for line in serve.stdout:
            lines.append(line)
            if "Ctrl-C" in line:
                break
        assert serve.poll() is None, (lines, serve.stderr.read())
        command = next(ln.strip() for ln in lines if " validate " in ln)
        # the program that is running, so the line works without an activated venv (issue 26 item 8)
        program = [sys.executable, "-m", "repogen.cli"]
        assert command == shlex.join([*program, "validate", str(serve_repo), "--server",
                                      f"http://127.0.0.1:{http_port}", "--grpc-url", f"grpc://127.0.0.1:{grpc_port}"])
        argv = shlex.split(command)[len(program):]
        argv[1] = str(repo)  # the same server, asked about the repository that also holds the broken model
        proc = subprocess.run([sys.executable, "-m", "repogen.cli", *argv, "--json", "--concurrency", "1",
                               "--requests", "5"], capture_output=True, text=True, cwd=ROOT, env=env, timeout=240)
    finally:
        serve.send_signal(signal.SIGINT)
        try:
            serve.wait(timeout=60)
        except subprocess.TimeoutExpired:
            serve.kill()
    assert proc.returncode == 1, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    models = {m["model"]: m for m in report["models"]}
    assert models["renamed"]["ok"], models["renamed"]["failures"]
    checks = models["renamed"]["checks"]
    assert {c["protocol"] for c in checks} == {"http", "grpc"} and {c["output"] for c in checks} == {"scores"}
    assert all(c["ok"] and c["rel_err"] <= 1e-5 for c in checks)
    assert not models["foreign"]["ok"]
    assert models["foreign"]["failures"][0].startswith(f"not validated: {repo / 'foreign' / 'config.pbtxt'}")


def test_paddle_target_builds_without_profiles_plans_still_need_them(tmp_path: Path) -> None:
    """Paddle runs any shape: a model with dynamic non-batch dims and no shape flags builds for the paddle target
    (auto's fallback here) with one warning; the stand-in of a plan still needs its profile (issue 26 item 13)."""
    from tests.support import zoo

    src = str(zoo.get("transformer", "pir"))
    proc = subprocess.run([sys.executable, "-m", "repogen.cli", "build", src, "--name", "tr", "--out",
                           str(tmp_path / "a"), "--json"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (model,) = json.loads(proc.stdout)["models"]
    assert model["target"] == "paddle" and model["check"]["status"] == "skipped"
    assert "no optimisation profile" in proc.stderr and "give --shape" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "repogen.cli", "build", src, "--name", "tr", "--out",
                           str(tmp_path / "b"), "--target", "numpy"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "give --shape x:DIMS" in proc.stderr and not (tmp_path / "b").exists()
