"""Bad input of every kind the CLI meets gives exit code 2 and one line naming the file, option or field;
never a Python traceback (issue 12, "Tracebacks where a clear error belongs")."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from repogen import cli
from repogen.build import flow as build_mod
from repogen.repository import staging
from repogen.build.spec import EXAMPLE_DIR

ROOT = Path(__file__).resolve().parent.parent


def run_cli(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str]:
    rc = cli.main(list(argv))
    err = capsys.readouterr().err
    return rc, err


def one_error_line(err: str) -> str:
    """The error line; other stderr lines may only be warnings or build progress (rich, one per model)."""
    assert "Traceback" not in err and "Error:" not in err, err
    lines = [ln for ln in err.splitlines() if ln.startswith("repogen ")]
    assert len(lines) == 1, err
    return lines[0]


# -- spec files --------------------------------------------------------------------------------------------------

SPEC_CASES = {
    "binary": (b"\xff\xfe[[model]]\n\x00\x01", "not a TOML spec file: byte 0 is not UTF-8 text"),
    "deep": (("a = " + "[" * 5000 + "]" * 5000 + "\n").encode(), "nested too deeply"),
    "name_int": (b"[[model]]\nname = 5\n", "model[0].name: model name must be a string, got int 5"),
    "version_huge": (b'[[model]]\nversion = "99999999999999999999999"\n',
                     "model[0].version: version 99999999999999999999999 is above 9223372036854775807"),
    "version_int64p1": (b"[[model]]\nversion = 9223372036854775808\n", "is above 9223372036854775807"),
    "labels_folder": (b'[[model]]\nlabels = "a_folder"\n', "model[0].labels: "),
    "labels_version_name": (b'[[model]]\nlabels = "2"\n', "a labels file may not be called '2'"),
}


@pytest.mark.parametrize("case", sorted(SPEC_CASES))
def test_bad_spec_files(tmp_path: Path, capsys: pytest.CaptureFixture, case: str) -> None:
    body, message = SPEC_CASES[case]
    (tmp_path / "a_folder").mkdir()
    (tmp_path / "2").write_text("cat\ndog\n")
    spec = tmp_path / "repogen.toml"
    spec.write_bytes(body)
    out = tmp_path / "repo"
    rc, err = run_cli(capsys, "build", "--spec", str(spec), "--out", str(out), "--no-check")
    line = one_error_line(err)
    assert rc == 2 and line.startswith(f"repogen build: error: {spec}") and message in line, line
    if case == "labels_folder":
        assert line.endswith(f"{tmp_path / 'a_folder'} is not a file")
    assert not out.exists()


def test_largest_int64_version_is_accepted(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "repo"
    rc, _ = run_cli(capsys, "build", "--out", str(out), "--no-check", "--json", "--version-folder",
                    str(2**63 - 1))
    assert rc == 0 and (out / "tiny_cnn" / str(2**63 - 1) / "model.py").is_file()
    rc, err = run_cli(capsys, "build", "--out", str(tmp_path / "r2"), "--no-check", "--version-folder", str(2**63))
    assert rc == 2 and "--version-folder: version 9223372036854775808 is above" in one_error_line(err)


def test_max_batch_below_the_profile_max_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    spec = tmp_path / "repogen.toml"
    spec.write_text('[[model]]\nmax_batch_size = 4\ntarget = "paddle"\n[[model.profile]]\n'
                    "image = { min = [1, 3, 32, 32], max = [16, 3, 32, 32] }\n")
    rc = cli.main(["build", "--spec", str(spec), "--out", str(tmp_path / "repo"), "--no-check", "--json"])
    out, err = capsys.readouterr()
    assert rc == 0
    import json
    (model,) = json.loads(out)["models"]
    assert model["max_batch_size"] == 4
    assert any("max_batch_size 4 is below the optimisation profile's max batch 16" in w for w in model["warnings"])
    # equal: nothing to say
    spec.write_text(spec.read_text().replace("max_batch_size = 4", "max_batch_size = 16"))
    cli.main(["build", "--spec", str(spec), "--out", str(tmp_path / "repo2"), "--no-check", "--json"])
    (model,) = json.loads(capsys.readouterr().out)["models"]
    assert not any("below the optimisation profile" in w for w in model["warnings"])


# -- writing the repository --------------------------------------------------------------------------------------

def test_unwritable_out_parent(tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """The staging folder cannot be made (read-only parent): one line naming the path. Root ignores file
    modes, so the refusal is simulated where the kernel would raise it."""
    out = tmp_path / "ro" / "repo"

    def refuse(path: Path) -> Path:
        raise PermissionError(13, "Permission denied", str(path.parent))

    monkeypatch.setattr(staging, "make_staging", refuse)
    rc, err = run_cli(capsys, "build", "--out", str(out), "--no-check")
    line = one_error_line(err)
    assert rc == 2 and line == (f"repogen build: error: --out {out}: cannot write the repository: "
                                f"{out.parent}: Permission denied")


def test_unwritable_out_at_commit(tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "repo"
    out.mkdir()

    def refuse(tmp: Path, dest: Path, names: list[str]) -> None:
        raise PermissionError(13, "Permission denied", str(dest / names[0]))

    monkeypatch.setattr(staging, "commit", refuse)
    rc, err = run_cli(capsys, "build", "--out", str(out), "--no-check")
    assert rc == 2 and f"cannot write the repository: {out / 'tiny_cnn'}: Permission denied" in one_error_line(err)
    assert list(tmp_path.iterdir()) == [out] and not list(out.iterdir())  # staging folder removed


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file modes")
def test_read_only_out_for_real(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o555)
    try:
        rc, err = run_cli(capsys, "build", "--out", str(parent / "repo"), "--no-check")
        assert rc == 2 and "Permission denied" in one_error_line(err)
    finally:
        parent.chmod(0o755)


# -- serve / validate / check arguments --------------------------------------------------------------------------

def test_serve_missing_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rc, err = run_cli(capsys, "serve", str(tmp_path / "nope"))
    assert rc == 2 and one_error_line(err) == f"repogen serve: error: {tmp_path / 'nope'}: model repository folder not found"


@pytest.mark.parametrize("url,message", [
    ("http://[::1", "not a valid URL (Invalid IPv6 URL)"),
    ("http://127.0.0.1:99999", "not a valid URL"),
    ("http://127.0.0.1", "expected host:port"),
    ("ftp://127.0.0.1:8000", "scheme must be http"),
    ("https://127.0.0.1:8000", "scheme must be http"),
])
def test_validate_bad_server_url(capsys: pytest.CaptureFixture, url: str, message: str) -> None:
    rc, err = run_cli(capsys, "validate", str(ROOT / "sample_repo"), "--server", url)
    line = one_error_line(err)
    assert rc == 2 and line.startswith(f"repogen validate: error: --server {url!r}: ") and message in line


def _npz_cases(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    (tmp_path / "empty.npz").write_bytes(b"")
    (tmp_path / "text.npz").write_text("image,1,2,3\n")
    np.save(tmp_path / "plain.npy", np.zeros(3, np.float32))
    np.savez(tmp_path / "objects.npz", image=np.array([{"a": 1}, None], dtype=object))
    np.savez(tmp_path / "nothing.npz")
    return {"missing": (tmp_path / "missing.npz", "file not found"),
            "empty": (tmp_path / "empty.npz", "empty file"),
            "not_a_zip": (tmp_path / "text.npz", "not an .npz file"),
            "npy": (tmp_path / "plain.npy", "not an .npz file"),
            "objects": (tmp_path / "objects.npz", "holds object arrays"),
            "no_arrays": (tmp_path / "nothing.npz", "holds no arrays")}


@pytest.mark.parametrize("case", ["missing", "empty", "not_a_zip", "npy", "objects", "no_arrays"])
@pytest.mark.parametrize("command,option", [("check", "--inputs"), ("check", "--reference"),
                                            ("validate", "--inputs")])
def test_bad_npz_files(tmp_path: Path, capsys: pytest.CaptureFixture, case: str, command: str, option: str) -> None:
    path, message = _npz_cases(tmp_path)[case]
    target = str(EXAMPLE_DIR) if command == "check" else str(ROOT / "sample_repo")
    rc, err = run_cli(capsys, command, target, option, str(path))
    line = one_error_line(err)
    assert rc == 2 and line.startswith(f"repogen {command}: error: {option} {path}: ") and message in line, line


@pytest.mark.parametrize("case", ["empty", "not_a_zip", "objects", "no_arrays"])
def test_bad_calibration_npz(tmp_path: Path, capsys: pytest.CaptureFixture, case: str) -> None:
    path, message = _npz_cases(tmp_path)[case]
    rc, err = run_cli(capsys, "check", str(EXAMPLE_DIR), "--int8", "--calib-data", str(path))
    line = one_error_line(err)
    assert rc == 2 and line.startswith(f"repogen check: error: --calib-data {path}: ") and message in line, line


def test_inspect_json_into_a_closed_pipe() -> None:
    """`repogen inspect --json | head -c 1`: no BrokenPipeError traceback."""
    proc = subprocess.Popen([sys.executable, "-m", "repogen.cli", "inspect", str(EXAMPLE_DIR), "--json"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before anything is written
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 1
    assert "Traceback" not in err and "BrokenPipe" not in err and err == ""


class _AnswersEverything:
    """An HTTP endpoint that says yes to Triton's health and load calls, with no gRPC beside it."""

    def __enter__(self) -> int:
        import http.server
        import threading

        class Handler(http.server.BaseHTTPRequestHandler):
            def _ok(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = _ok

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self.httpd.server_address[1]

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_validate_refused_grpc_is_a_server_error(capsys: pytest.CaptureFixture) -> None:
    """Nothing answers gRPC: one server error naming the endpoint, not a failure of each model."""
    with _AnswersEverything() as port:
        rc, err = run_cli(capsys, "validate", str(ROOT / "sample_repo"), "--server", f"http://127.0.0.1:{port}")
        line = one_error_line(err)
        assert rc == 2 and line.startswith(f"repogen validate: error: no Triton gRPC endpoint answers at "
                                           f"127.0.0.1:{port + 1} (assumed: the HTTP port + 1; give the real "
                                           "one with --grpc-url)"), line
        closed = _closed_port()
        rc, err = run_cli(capsys, "validate", str(ROOT / "sample_repo"), "--server", f"http://127.0.0.1:{port}",
                          "--grpc-url", f"grpc://127.0.0.1:{closed}")
        line = one_error_line(err)
        assert rc == 2 and f"no Triton gRPC endpoint answers at 127.0.0.1:{closed}: " in line, line
        assert "assumed" not in line


def test_validate_refused_http_is_a_server_error_at_once(capsys: pytest.CaptureFixture) -> None:
    import time

    closed = _closed_port()
    started = time.monotonic()
    rc, err = run_cli(capsys, "validate", str(ROOT / "sample_repo"), "--server", f"http://127.0.0.1:{closed}")
    assert rc == 2 and time.monotonic() - started < 30  # not the minute a starting server gets
    assert one_error_line(err).startswith(f"repogen validate: error: no Triton answers at http://127.0.0.1:{closed}: ")


@pytest.mark.parametrize("argv,message", [
    (["check", str(EXAMPLE_DIR), "--seed", "-1"], "argument --seed: -1 is below 0"),
    (["validate", str(ROOT / "sample_repo"), "--requests", "-1"], "argument --requests: -1 is below 1"),
    (["serve", str(ROOT / "sample_repo"), "--http-port", "99999"], "argument --http-port: 99999 is not a TCP port"),
    (["serve", str(ROOT / "sample_repo"), "--grpc-port", "-5"], "argument --grpc-port: -5 is below 1"),
])
def test_out_of_range_numbers_are_usage_errors(capsys: pytest.CaptureFixture, argv: list[str], message: str) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and message in err and "Traceback" not in err


def test_check_shape_of_an_unknown_input(capsys: pytest.CaptureFixture) -> None:
    rc, err = run_cli(capsys, "check", str(EXAMPLE_DIR), "--shape", "nope:1x3x32x32")
    assert rc == 2 and "--shape nope: not an input of" in one_error_line(err) and "(inputs: image)" in err


def test_check_shape_too_big_for_memory(capsys: pytest.CaptureFixture) -> None:
    rc, err = run_cli(capsys, "check", str(EXAMPLE_DIR), "--shape", "image:99999999999x3x32x32")
    assert rc == 2 and "error: out of memory" in one_error_line(err)
