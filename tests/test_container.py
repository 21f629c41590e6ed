"""The container path run for real: podman as the engine, the CPU Triton image built by docker/build-cpu-image.sh,
the docker/ files built on it, and `repogen validate/serve --server docker` end to end with no container left.

The first run on a fresh machine installs podman/runc/debootstrap (apt-get, as root) and builds the image
(a few minutes); later runs reuse the image (the build is layer-cached, seconds). Skipped, with the reason
printed, only where no container engine can be installed or run.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from repogen.harness import container
from repogen.repository import images

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_repo"
CACHE = Path(os.environ.get("REPOGEN_CONTAINER_CACHE", Path.home() / ".cache" / "repogen-container"))


def _install_podman() -> str | None:
    """podman, runc and debootstrap from Debian's packages when running as root; the reason when not."""
    if shutil.which("podman") and shutil.which("debootstrap"):
        return None
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return "podman is not installed and this is not a root Debian machine (apt-get install podman runc debootstrap)"
    for cmd in (["apt-get", "update", "-qq"],
                ["apt-get", "install", "-y", "-qq", "podman", "runc", "debootstrap", "catatonit"]):
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900,
                              env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        if proc.returncode != 0:
            return f"{' '.join(cmd)} failed: {proc.stderr.strip()[-300:]}"
    return None


@pytest.fixture(scope="session")
def podman_env() -> dict[str, str]:
    reason = _install_podman()
    if reason:
        print(f"\nSKIP container tests: {reason}", file=sys.stderr)
        pytest.skip(reason)
    env = dict(os.environ, REPOGEN_CONTAINER_CACHE=str(CACHE), REPOGEN_CONTAINER_ENGINE="podman")
    env.pop("CONTAINERS_CONF", None)  # the build script writes the private one this sandbox needs
    started = time.monotonic()
    proc = subprocess.run(["bash", str(ROOT / "docker" / "build-cpu-image.sh"), "--engine", "podman"],
                          capture_output=True, text=True, env=env, timeout=1800)
    if proc.returncode != 0:
        if "operation not permitted" in proc.stderr.lower() and "unshare" in proc.stderr.lower():
            pytest.skip(f"podman cannot run containers here: {proc.stderr.strip()[-300:]}")
        raise AssertionError(f"docker/build-cpu-image.sh failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    print(f"\nCPU Triton image ready in {time.monotonic() - started:.0f} s", file=sys.stderr)
    env["CONTAINERS_CONF"] = str(CACHE / "containers.conf")
    return env


def _ours(env: dict[str, str]) -> set[str]:
    out = subprocess.run(["podman", "ps", "-a", "--filter", f"label={container.LABEL}", "--format", "{{.Names}}"],
                         capture_output=True, text=True, env=env, timeout=60).stdout
    return set(out.split())


def _repogen(*args: str, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "repogen.cli", *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


def test_validate_through_podman_and_the_cpu_image(podman_env):
    before = _ours(podman_env)
    proc = _repogen("validate", str(SAMPLE), "--server", "docker", "--engine", "podman", "--concurrency", "1,4",
                    "--requests", "20", "--json", env=podman_env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    import json

    report = json.loads(proc.stdout)
    assert report["ok"] and report["models"], report
    model = report["models"][0]
    protocols = {c["protocol"] for c in model["checks"]}
    assert protocols == {"http", "grpc"} and all(c["ok"] for c in model["checks"])
    assert not _ours(podman_env) - before  # the validate run's container is gone (others may run beside)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_serve_through_podman_stops_its_container_on_signals(podman_env, sig):
    before = _ours(podman_env)
    proc = subprocess.Popen([sys.executable, "-m", "repogen.cli", "serve", str(SAMPLE), "--server", "docker",
                             "--engine", "podman"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=podman_env, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        lines = []
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "press Ctrl-C" in line:
                break
        assert any("press Ctrl-C" in ln for ln in lines), "".join(lines) + proc.stderr.read()
        running = _ours(podman_env) - before
        assert len(running) == 1 and next(iter(running)).startswith(container.NAME_PREFIX)
        http = next(ln.split("http://")[1].strip() for ln in lines if "HTTP" in ln)
        import urllib.request

        with urllib.request.urlopen(f"http://{http}/v2/models/tiny_cnn/ready", timeout=10) as resp:
            assert resp.status == 200
        proc.send_signal(sig)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not _ours(podman_env) - before


def test_docker_files_build_on_the_local_base(podman_env):
    """Dockerfile.serve-paddle and Dockerfile.build take their base as a build argument; built here on the CPU
    image (the NGC bases cannot be pulled here), their steps, COPYs, installs and entrypoints are what is tested."""
    base = f"localhost/{images.CPU_IMAGE}"
    pip_cache = ["--volume", f"{CACHE / 'pip'}:/root/.cache/pip"]
    host_ca = Path("/etc/ssl/certs/ca-certificates.crt")
    if host_ca.is_file():  # as build-cpu-image.sh does: pip may reach PyPI through a TLS proxy
        pip_cache += ["--volume", f"{host_ca}:/etc/ssl/certs/host-ca.crt:ro", "--build-arg",
                      "PIP_CERT=/etc/ssl/certs/host-ca.crt"]
    tags = {"Dockerfile.serve-paddle": "repogen/test-serve-paddle", "Dockerfile.build": "repogen/test-build"}
    try:
        for dockerfile, extra in (("Dockerfile.serve-paddle", []),
                                  ("Dockerfile.build", ["--build-arg", "REQUIRE_TENSORRT=0"])):
            proc = subprocess.run(["podman", "build", "--network", "host", *pip_cache, "--build-arg",
                                   f"BASE_IMAGE={base}", *extra, "-f", str(ROOT / "docker" / dockerfile), "-t",
                                   tags[dockerfile], str(ROOT)], capture_output=True, text=True, env=podman_env,
                                  timeout=1200)
            assert proc.returncode == 0, f"{dockerfile}:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}"
        run = subprocess.run(["podman", "run", "--rm", "repogen/test-build", "--version"], capture_output=True,
                             text=True, env=podman_env, timeout=300)
        assert run.returncode == 0 and run.stdout.startswith("repogen"), run.stdout + run.stderr
        run = subprocess.run(["podman", "run", "--rm", "repogen/test-serve-paddle", "python3", "-c",
                              "import paddle, numpy; print(numpy.__version__)"], capture_output=True, text=True,
                             env=podman_env, timeout=300)
        assert run.returncode == 0 and run.stdout.strip().startswith("1.26"), run.stdout + run.stderr
    finally:
        # the test's tags go (and the layers only they hold); the CPU image and its base stay for the next run
        subprocess.run(["podman", "rmi", "--ignore", *(f"localhost/{t}:latest" for t in tags.values())],
                       capture_output=True, text=True, env=podman_env, timeout=300)
    listed = subprocess.run(["podman", "images", "--format", "{{.Repository}}"], capture_output=True, text=True,
                            env=podman_env, timeout=60).stdout.split()
    assert not {f"localhost/{t}" for t in tags.values()} & set(listed), listed


def test_partitioned_numpy_target_validates_in_the_container(podman_env, tmp_path):
    """--target numpy regions and a Python remainder (an op with no converter in the middle) joined by an
    ensemble: the stand-ins import repogen inside the container's server, as they would on a CPU cluster."""
    from tests.support import zoo
    repo = tmp_path / "repo"
    proc = _repogen("build", str(zoo.get("cumprod_net", "pir")), "--name", "cumprod", "--out", str(repo),
                    "--target", "numpy", "--partition", "--min-shapes", "x:1x3x16x16", "--opt-shapes",
                    "x:2x3x16x16", "--max-shapes", "x:4x3x32x32", "--json", env=podman_env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    before = _ours(podman_env)
    proc = _repogen("validate", str(repo), "--server", "docker", "--concurrency", "2", "--requests", "8",
                    "--json", env=podman_env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    import json

    report = json.loads(proc.stdout)
    (model,) = report["models"]
    assert model["model"] == "cumprod" and model["ok"]
    assert {c["protocol"] for c in model["checks"]} == {"http", "grpc"}
    assert all(c["ok"] and c["rel_err"] <= 1e-5 for c in model["checks"])
    assert not _ours(podman_env) - before


def test_refused_default_rlimits_fall_back_to_the_private_containers_conf(podman_env, tmp_path):
    """Issue 26 item 3: without CONTAINERS_CONF, podman on this sandbox fails with runc's "error setting rlimit
    type 7: operation not permitted". The harness then uses the containers.conf docker/build-cpu-image.sh
    wrote, or writes one where there is none, and says so in one line."""
    import json

    env = {k: v for k, v in podman_env.items() if k != "CONTAINERS_CONF"}
    probe = subprocess.run(["podman", "run", "--rm", f"localhost/{images.CPU_IMAGE}", "true"],
                           capture_output=True, text=True, env=env, timeout=120)
    if probe.returncode == 0:
        pytest.skip("podman applies its default rlimits on this host: there is nothing to fall back from")
    assert container.rlimits_refused(probe.stderr), probe.stderr  # the failure the fallback is for
    before = _ours(podman_env)
    for cache, origin in ((CACHE, "docker/build-cpu-image.sh wrote"), (tmp_path / "fresh", "written now")):
        proc = _repogen("validate", str(SAMPLE), "--server", "docker", "--engine", "podman", "--protocol", "grpc",
                        "--concurrency", "1", "--requests", "10", "--json",
                        env={**env, "REPOGEN_CONTAINER_CACHE": str(cache)})
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        report = json.loads(proc.stdout)
        assert report["ok"], report
        (note,) = report["notes"]
        assert "refused the default container rlimits (error setting rlimit type 7" in note, note
        assert f"CONTAINERS_CONF={cache / 'containers.conf'} " in note and origin in note, note
    assert (tmp_path / "fresh" / "containers.conf").is_file()
    assert not _ours(podman_env) - before
