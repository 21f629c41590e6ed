"""Harness pieces that need no server: command lines, binary lookup, comparisons, inputs, process groups."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from repogen.interrupts import terminate_raises
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from repogen.errors import ConfigError, ServerError
from repogen.harness import container
from repogen.repository import images
from repogen.harness import server as srv
from repogen.harness.model_files import ModelFolder, TensorSpec, make_cases
from repogen.harness.validate import compare_output, config_differences


@pytest.mark.parametrize("engine", ["/usr/bin/docker", "/usr/bin/podman"])
def test_container_command_is_loopback_readonly_labelled_and_removed(engine):
    cmd = container.run_command(engine, Path("/data/repo"), "img:1", "repogen-triton-abc", 18000, 18001, True,
                                srv.container_server_args())
    assert cmd[:3] == [engine, "run", "--rm"]
    assert cmd[cmd.index("--name") + 1] == "repogen-triton-abc"
    assert cmd[cmd.index("--label") + 1] == "repogen.harness=1"
    gpu = ["--device", "nvidia.com/gpu=all"] if engine.endswith("podman") else ["--gpus", "all"]
    assert cmd[cmd.index(gpu[0]) + 1] == gpu[1]
    ports = [cmd[i + 1] for i, a in enumerate(cmd) if a == "-p"]
    assert ports == ["127.0.0.1:18000:8000", "127.0.0.1:18001:8001"]
    assert cmd[cmd.index("-v") + 1] == "/data/repo:/models:ro"
    assert "--model-control-mode=explicit" in cmd and "--allow-metrics=false" in cmd
    assert cmd.index("img:1") < cmd.index("--model-control-mode=explicit")
    no_gpu = container.run_command(engine, Path("/r"), "img", "n", 1, 2, False, [])
    assert gpu[0] not in no_gpu


def _manifest(folder: Path, target: str, trt: str | None = None) -> None:
    folder.mkdir(parents=True)
    (folder / "config.pbtxt").write_text("")
    (folder / "repogen.json").write_text(json.dumps({"target": target, "tensorrt": {"version": trt} if trt else None}))


def test_container_image_follows_the_manifests(tmp_path):
    _manifest(tmp_path / "a", "paddle")
    assert container.image_for(tmp_path, None, gpus=False) == images.CPU_IMAGE
    assert container.image_for(tmp_path, None, gpus=True) == images.PADDLE_GPU_IMAGE
    _manifest(tmp_path / "b", "tensorrt", "10.8.0.43")
    # the paddle model beside the plan needs Paddle: the serve-paddle image on the plan's NGC release
    assert container.image_for(tmp_path, None, gpus=True) == "repogen/tritonserver-paddle:25.01"
    assert container.image_for(tmp_path, ["b"], gpus=True) == "nvcr.io/nvidia/tritonserver:25.01-py3"
    assert container.image_for(tmp_path, ["a"], gpus=False) == images.CPU_IMAGE
    _manifest(tmp_path / "c", "tensorrt", "10.5.0")
    with pytest.raises(ServerError, match="several TensorRT versions"):
        container.image_for(tmp_path, None, gpus=True)
    assert container.image_for(tmp_path, ["c"], gpus=True) == "nvcr.io/nvidia/tritonserver:24.10-py3"


def test_docker_files_use_the_harness_release():
    """One release everywhere: the build image, the serving images and the harness's default."""
    root = Path(__file__).resolve().parents[1] / "docker"
    for name in ("Dockerfile.build", "Dockerfile.serve-paddle"):
        text = (root / name).read_text()
        assert f"_RELEASE={images.TRITON_RELEASE}" in text, name
    assert f"TRITON_RELEASE:-{images.TRITON_RELEASE}" in (root / "compose.yaml").read_text()


RUNC_REFUSAL = ("Error: runc: runc create failed: unable to start container process: error during container init: "
                "error setting rlimits for ready process: error setting rlimit type 7: operation not permitted: "
                "OCI permission denied")


def test_rlimit_fallback_finds_or_writes_the_private_containers_conf(tmp_path, monkeypatch):
    import resource

    monkeypatch.delenv("CONTAINERS_CONF", raising=False)
    monkeypatch.setenv("REPOGEN_CONTAINER_CACHE", str(tmp_path / "cache"))
    assert container.rlimits_refused(RUNC_REFUSAL)
    assert container.rlimits_refused("Error: crun: setrlimit `RLIMIT_NOFILE`: Operation not permitted")
    assert not container.rlimits_refused("Error: image not known")
    assert container.rlimit_fallback("podman", "boom") is None
    env, note = container.rlimit_fallback("/usr/bin/podman", RUNC_REFUSAL)
    conf = tmp_path / "cache" / "containers.conf"
    assert env == {"CONTAINERS_CONF": str(conf)} and "\n" not in note
    assert "(error setting rlimit type 7: operation not permitted)" in note and "written now" in note
    # what was written: ulimits podman can apply here (within this process's hard limits), cgroupfs
    text = conf.read_text()
    nofile, nproc = (int(x) for x in re.search(r'"nofile=(\d+):\1", "nproc=(\d+):\2"', text).groups())
    hard_nofile, hard_nproc = (resource.getrlimit(r)[1] for r in (resource.RLIMIT_NOFILE, resource.RLIMIT_NPROC))
    assert 0 < nofile <= hard_nofile and (hard_nproc == resource.RLIM_INFINITY or 0 < nproc <= hard_nproc)
    assert 'cgroup_manager = "cgroupfs"' in text
    # a file already there (the image script's) is used as it is
    conf.write_text("# the script's\n")
    env, note = container.rlimit_fallback("podman", RUNC_REFUSAL)
    assert conf.read_text() == "# the script's\n" and "docker/build-cpu-image.sh wrote" in note
    # nothing to do for docker (its daemon's limits), or when the user's own CONTAINERS_CONF is in force
    assert container.rlimit_fallback("/usr/bin/docker", RUNC_REFUSAL) is None
    monkeypatch.setenv("CONTAINERS_CONF", "/etc/mine.conf")
    assert container.rlimit_fallback("podman", RUNC_REFUSAL) is None
    assert "/etc/mine.conf" in container.rlimit_hint("podman")


def test_find_engine_prefers_the_named_one(tmp_path, monkeypatch):
    fake = _fake_exe(tmp_path / "podman")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("REPOGEN_CONTAINER_ENGINE", raising=False)
    assert container.find_engine() == str(fake)
    with pytest.raises(ServerError, match="'docker' not found"):
        container.find_engine("docker")
    fake.unlink()
    with pytest.raises(ServerError, match="no container engine"):
        container.find_engine()


def test_local_command_binds_loopback_explicit_mode():
    cmd = srv.local_command(Path("/bin/tritonserver"), Path("/r"), 9000, 9001, Path("/b"))
    assert {"--http-address=127.0.0.1", "--grpc-address=127.0.0.1", "--http-port=9000", "--grpc-port=9001",
            "--model-control-mode=explicit", "--backend-directory=/b", "--allow-metrics=false"} <= set(cmd)


def test_strict_readiness_loads_every_model_at_startup_and_validate_does_not():
    cmd = srv.local_command(Path("/bin/tritonserver"), Path("/r"), 9000, 9001, None, startup_models=["a", "b"])
    assert {"--strict-readiness=true", "--load-model=a", "--load-model=b", "--exit-on-error=false"} <= set(cmd)
    assert "--strict-readiness=false" not in cmd
    inner = srv.container_server_args(startup_models=["a"])
    assert {"--strict-readiness=true", "--load-model=a"} <= set(inner)
    # validate loads through the API, model by model, to report each refusal: nothing at startup
    plain = srv.local_command(Path("/bin/tritonserver"), Path("/r"), 9000, 9001, None)
    assert "--strict-readiness=false" in plain and not [a for a in plain if a.startswith("--load-model")]


def test_printed_validate_command_uses_the_running_program(tmp_path):
    from repogen.harness.serve import running_program, validate_command

    assert running_program("/x/cli.py", "repogen.cli") == [sys.executable, "-m", "repogen.cli"]
    assert running_program("/x/__main__.py", "repogen.cli.__main__") == [sys.executable, "-m", "repogen.cli"]
    (tmp_path / "venv" / "bin").mkdir(parents=True)
    script = _fake_exe(tmp_path / "venv" / "bin" / "repogen")
    link = tmp_path / "repogen"
    link.symlink_to(script)
    assert running_program(str(link), "") == [str(script)]  # resolved: the venv's own script
    line = validate_command("my repo", "127.0.0.1:8000", "127.0.0.1:8001", [str(script)])
    assert line == f"{script} validate 'my repo' --server http://127.0.0.1:8000 --grpc-url grpc://127.0.0.1:8001"


def _fake_exe(path: Path, body: str = "exit 0") -> Path:
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_find_tritonserver_precedence(tmp_path, monkeypatch):
    flag, env, on_path = (_fake_exe(tmp_path / n) for n in ("a", "b", "tritonserver"))
    monkeypatch.setenv("TRITONSERVER", str(env))
    monkeypatch.setenv("PATH", str(tmp_path))
    assert srv.find_tritonserver(str(flag)) == flag
    assert srv.find_tritonserver() == env
    monkeypatch.delenv("TRITONSERVER")
    assert srv.find_tritonserver() == on_path
    on_path.unlink()
    bundled = srv.find_tritonserver()
    assert bundled == srv.bundled_tritonserver() and bundled.name == "tritonserver"
    with pytest.raises(ServerError, match="not an executable"):
        srv.find_tritonserver(str(tmp_path / "missing"))


def test_bundled_backend_has_stub_for_this_python(tmp_path):
    exe = srv.bundled_tritonserver()
    backends, env = srv._prepare_pytriton_backend(exe, tmp_path)
    files = {p.name for p in (backends / "python").iterdir()}
    assert {"triton_python_backend_stub", "libtriton_python.so", "triton_python_backend_utils.py"} <= files
    assert env["LD_LIBRARY_PATH"].split(os.pathsep)[0].endswith("nvidia_pytriton.libs")
    assert Path(env["LD_LIBRARY_PATH"].split(os.pathsep)[0]).is_dir()
    assert srv._interpreter_path_env()["PATH"].startswith(str(Path(sys.executable).parent))


def test_attach_parses_urls():
    s = srv.attach("http://127.0.0.1:8000")
    assert (s.http_url, s.grpc_url, s.proc) == ("127.0.0.1:8000", "127.0.0.1:8001", None)
    s = srv.attach("http://h:1234,grpc://h:999")
    assert (s.http_url, s.grpc_url) == ("h:1234", "h:999")
    s = srv.attach("http://[::1]:8000", "grpc://[::1]:9001")
    assert (s.http_url, s.grpc_url) == ("[::1]:8000", "[::1]:9001")
    s = srv.attach("127.0.0.1:8000", "127.0.0.2:7000")  # bare host:port
    assert (s.http_url, s.grpc_url) == ("127.0.0.1:8000", "127.0.0.2:7000")
    with pytest.raises(ConfigError, match="expected host:port"):
        srv.attach("nohostport")
    with pytest.raises(ConfigError, match="--grpc-url 'http://h:1': scheme must be grpc"):
        srv.attach("http://h:1", "http://h:1")


def test_port_in_use_and_explicit_port_error(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert srv.port_in_use(port)
        with pytest.raises(ServerError, match=f"--http-port {port}: already in use"):
            with srv.launch(tmp_path, http_port=port, models=[]):
                pass
    assert not srv.port_in_use(srv.free_port())


def test_docker_failure_removes_container(tmp_path, monkeypatch):
    """A fake docker CLI records its calls: the run is torn down and `docker rm -f <name>` follows."""
    log = tmp_path / "calls"
    _fake_exe(tmp_path / "docker", f'echo "$@" >> {log}\ncase "$1" in run) exec sleep 30;; esac')
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    repo = tmp_path / "repo"
    repo.mkdir()
    with pytest.raises(ServerError, match="not live"):
        with srv.launch(repo, "docker", models=[], ready_timeout=1.0, engine="docker", image="img:1"):
            pass
    calls = log.read_text().splitlines()
    run = next(c for c in calls if c.startswith("run "))
    name = run.split("--name ")[1].split()[0]
    assert name.startswith("repogen-triton-") and f"{repo.resolve()}:/models:ro" in run
    assert any(c.startswith("stop -t ") and c.endswith(name) for c in calls) and f"rm -f {name}" in calls


def test_refused_rlimits_retry_once_with_the_conf_then_say_what_to_do(tmp_path, monkeypatch):
    """A fake podman that refuses the rlimits whatever the config: one retry with CONTAINERS_CONF (and the
    stop/rm of that container with it too), then an error naming the fix, not the bare runtime error."""
    log = tmp_path / "calls"
    _fake_exe(tmp_path / "podman", f'echo "CONF=$CONTAINERS_CONF $@" >> {log}\n'
                                   f'case "$1" in run) echo "{RUNC_REFUSAL}" >&2; exit 126;; esac')
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("REPOGEN_CONTAINER_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("CONTAINERS_CONF", raising=False)
    repo = tmp_path / "repo"
    repo.mkdir()
    with pytest.raises(ServerError, match="podman refused the default container rlimits: lower default_ulimits "
                                          "in the containers.conf in force .*cache/containers.conf"):
        with srv.launch(repo, "docker", models=[], ready_timeout=5.0, engine="podman", image="img:1"):
            pass
    runs = [c for c in log.read_text().splitlines() if " run " in c]
    conf = tmp_path / "cache" / "containers.conf"
    assert [r.split()[0] for r in runs] == ["CONF=", f"CONF={conf}"]
    second = runs[1].split("--name ")[1].split()[0]
    assert any(c.startswith(f"CONF={conf} rm -f {second}") for c in log.read_text().splitlines())


def test_kill_process_group_ends_children_that_ignore_sigterm():
    proc = subprocess.Popen(["sh", "-c", "trap '' TERM; sleep 60 & sleep 60 & wait"], start_new_session=True)
    deadline = time.monotonic() + 5
    while len(srv.group_members(proc.pid)) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(srv.group_members(proc.pid)) == 3
    srv.kill_process_group(proc, grace=0.5)
    assert not srv.group_members(proc.pid)


def test_sigterm_becomes_system_exit_inside_launch_guard():
    with pytest.raises(SystemExit) as err:
        with terminate_raises():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
    assert err.value.code == 128 + signal.SIGTERM


def _cfg(text: str) -> model_config_pb2.ModelConfig:
    return text_format.Parse(text, model_config_pb2.ModelConfig())


def test_config_differences_allow_server_defaults_but_not_changes():
    gen = _cfg('name: "m" max_batch_size: 8 input { name: "x" data_type: TYPE_FP32 dims: [3, 4] } '
               'instance_group { count: 1 kind: KIND_CPU }')
    served = _cfg('name: "m" max_batch_size: 8 input { name: "x" data_type: TYPE_FP32 dims: [3, 4] } '
                  'instance_group { name: "m_0" count: 1 kind: KIND_CPU } backend: "python"')
    assert config_differences(gen, served) == []
    served.input[0].dims[1] = 5
    served.max_batch_size = 4
    diffs = config_differences(gen, served)
    assert any(d.startswith("max_batch_size: file 8, server 4") for d in diffs)
    assert any(d.startswith("input[0].dims: file [3, 4], server [3, 5]") for d in diffs)


def test_compare_output_catches_nan_shape_missing_and_tolerance():
    from repogen.verify import rule_for

    fp32, fp16 = rule_for("fp32"), rule_for("fp16")
    want = np.linspace(1, 2, 12, dtype=np.float32).reshape(3, 4)
    assert compare_output("grpc", "c", "y", want.copy(), want, fp32).ok
    nan = want.copy()
    nan[0, 0] = np.nan
    assert "NaN" in compare_output("grpc", "c", "y", nan, want, fp32).problem
    assert "shape" in compare_output("grpc", "c", "y", want[:2], want, fp32).problem
    assert not compare_output("grpc", "c", "y", None, want, fp32).ok
    off = compare_output("http", "c", "y", want * (1 + 1e-3), want, fp32)
    assert not off.ok and off.rel_err == pytest.approx(1e-3, rel=1e-2)
    assert compare_output("http", "c", "y", want * (1 + 1e-3), want, fp16).ok
    assert compare_output("http", "c", "y", np.zeros(0, np.float32).reshape(0, 4), want[:0], fp32).ok


def _model(dims, mbs, profiles) -> ModelFolder:
    cfg = model_config_pb2.ModelConfig(name="m", max_batch_size=mbs)
    spec = TensorSpec("x", np.float32, "FP32", dims)
    return ModelFolder("m", Path("."), cfg, {"profiles": profiles}, [spec], [])


def test_cases_follow_profile_and_batch_limits():
    m = _model([3, -1, -1], 16, [{"x": {"min": [1, 3, 8, 8], "opt": [2, 3, 16, 24], "max": [4, 3, 32, 32]}}])
    cases = make_cases(m)
    assert {k: v["x"].shape for k, v in cases.items()} == {"batch 1": (1, 3, 16, 24), "batch 4": (4, 3, 16, 24)}
    assert cases["batch 1"]["x"].dtype == np.float32
    fixed = _model([-1, 5], 0, [{"x": {"min": [1, 5], "opt": [2, 5], "max": [7, 5]}}])
    assert {k: v["x"].shape for k, v in make_cases(fixed).items()} == {"profile opt": (2, 5), "profile max": (7, 5)}
    given = make_cases(m, {"x": np.ones((1, 3, 8, 8))})
    assert given["given"]["x"].shape == (1, 3, 8, 8) and given["batch 4"]["x"].shape == (4, 3, 8, 8)


def test_detector_size_inputs_are_made_as_a_client_makes_them():
    """im_shape / im_size: the image's own H, W per batch row; scale_factor: ones; dtypes kept (random sizes make
    a correct detector differ from Paddle: see tests/test_standin.py for the served check)."""
    cfg = model_config_pb2.ModelConfig(name="det", max_batch_size=4)
    specs = [TensorSpec("im_shape", np.float32, "FP32", [2]), TensorSpec("image", np.float32, "FP32", [3, -1, -1]),
             TensorSpec("scale_factor", np.float32, "FP32", [2]), TensorSpec("im_size", np.int32, "INT32", [2])]
    prof = {"image": {"min": [1, 3, 32, 32], "opt": [2, 3, 48, 40], "max": [4, 3, 64, 64]}}
    cases = make_cases(ModelFolder("det", Path("."), cfg, {"profiles": [prof]}, specs, []))
    assert list(cases) == ["batch 1", "batch 4"]
    for feeds in cases.values():
        n = feeds["image"].shape[0]
        assert feeds["image"].shape[1:] == (3, 48, 40) and feeds["image"].std() > 0.5  # the image stays random
        assert feeds["im_shape"].dtype == np.float32 and feeds["im_size"].dtype == np.int32
        np.testing.assert_array_equal(feeds["im_shape"], [[48, 40]] * n)
        np.testing.assert_array_equal(feeds["im_size"], [[48, 40]] * n)
        np.testing.assert_array_equal(feeds["scale_factor"], np.ones((n, 2), np.float32))
    # no single NCHW image: nothing to take the size from, the inputs stay random
    flat = [TensorSpec("im_size", np.int32, "INT32", [2]), TensorSpec("x", np.float32, "FP32", [5])]
    odd = make_cases(ModelFolder("f", Path("."), cfg, {}, flat, []))["batch 4"]["im_size"]
    assert odd.shape == (4, 2) and odd.max() < 8


# -- metrics on loopback, shutdown order, batching verdict ---------------------------------------------------------

def test_metrics_bound_to_loopback_when_a_port_is_given():
    cmd = srv.local_command(Path("/bin/tritonserver"), Path("/r"), 9000, 9001, None, metrics_port=9002)
    assert {"--allow-metrics=true", "--metrics-address=127.0.0.1", "--metrics-port=9002"} <= set(cmd)
    assert "--allow-metrics=false" not in cmd and any(a.startswith("--exit-timeout-secs=") for a in cmd)
    from repogen.harness import container as ctr
    ccmd = ctr.run_command("podman", Path("/r"), "img", "n", 1, 2, False, srv.container_server_args(metrics=True),
                           metrics_port=3)
    assert [ccmd[i + 1] for i, a in enumerate(ccmd) if a == "-p"] == ["127.0.0.1:1:8000", "127.0.0.1:2:8001",
                                                                      "127.0.0.1:3:8002"]
    assert "--allow-metrics=true" in ccmd and "--metrics-port=8002" in ccmd and "--allow-metrics=false" not in ccmd


LEADER = r'''
import os, signal, subprocess, sys, time
out = sys.argv[1]
child = subprocess.Popen(["sh", "-c", f"trap 'echo term > {out}.child; exit 0' TERM; while :; do sleep 0.05; done"])
def on_term(signum, frame):
    time.sleep(0.5)
    with open(out, "w") as f:
        f.write("child signalled" if os.path.exists(out + ".child") else "child untouched")
    child.kill()
    child.wait()
    sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
open(out + ".ready", "w").close()
while True:
    time.sleep(0.05)
'''


def test_stop_signals_the_server_alone_first(tmp_path):
    """Like Triton: the server gets SIGTERM, unloads its models (ends its stubs) and exits; the stubs are
    never signalled directly unless they outlive it."""
    from repogen.harness import shutdown

    script = tmp_path / "leader.py"
    script.write_text(LEADER)
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, str(script), str(out)], start_new_session=True)
    deadline = time.monotonic() + 20
    while not (tmp_path / "out.ready").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert shutdown.stop_server_process(proc, exit_timeout=5, grace=1)
    assert out.read_text() == "child untouched"
    assert proc.returncode == 0 and not shutdown.group_members(proc.pid)


def test_batching_verdict(monkeypatch):
    from types import SimpleNamespace

    from repogen.harness import batching

    assert batching.merged({"execution_count": 10}, 16) and not batching.merged({"execution_count": 16}, 16)
    assert not batching.merged({"execution_count": 0}, 16)
    cfg = model_config_pb2.ModelConfig(max_batch_size=8)
    cfg.dynamic_batching.SetInParent()
    model = SimpleNamespace(config=cfg, name="m")
    failures = []
    report = SimpleNamespace(dynamic_batching={"requests": 24, "server_executions": 24, "merged": False},
                             fail=failures.append)
    monkeypatch.setattr(batching, "burst", lambda *a, **k: ({"execution_count": 128, "batch_counts": {1: 128}}, 128, []))
    batching.require_merging(None, model, {}, report)
    assert report.dynamic_batching["configured"] and not report.dynamic_batching.get("merged")
    assert len(failures) == 1 and "never merged" in failures[0] and "128 batch-1 requests" in failures[0]
    failures.clear()
    monkeypatch.setattr(batching, "burst", lambda *a, **k: ({"execution_count": 40, "batch_counts": {3: 40}}, 128, []))
    report.dynamic_batching = {"requests": 24, "server_executions": 24, "merged": False}
    batching.require_merging(None, model, {}, report)
    assert not failures and report.dynamic_batching["merged"] and report.dynamic_batching["burst"]["requests"] == 128
    # without dynamic_batching in the config: no verdict, no burst
    report.dynamic_batching = {"requests": 24, "server_executions": 24, "merged": False}
    batching.require_merging(None, SimpleNamespace(config=model_config_pb2.ModelConfig(max_batch_size=8), name="m"), {}, report)
    assert report.dynamic_batching["configured"] is False and not failures and "burst" not in report.dynamic_batching
