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
import uuid
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


def _podman_build(env: dict[str, str], tag: str, *args: str, stdin: str | None = None) -> None:
    """``podman build`` with the host's network and, as build-cpu-image.sh does, its CA bundle for pip (PyPI may
    be reached through a TLS proxy) and the pip cache."""
    extra = ["--volume", f"{CACHE / 'pip'}:/root/.cache/pip"]
    host_ca = Path("/etc/ssl/certs/ca-certificates.crt")
    if host_ca.is_file():
        extra += ["--volume", f"{host_ca}:/etc/ssl/certs/host-ca.crt:ro", "--build-arg",
                  "PIP_CERT=/etc/ssl/certs/host-ca.crt"]
    proc = subprocess.run(["podman", "build", "--network", "host", *extra, "-t", tag, *args], input=stdin,
                          capture_output=True, text=True, env=env, timeout=1200)
    assert proc.returncode == 0, f"podman build -t {tag}:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}"


def _test_tag(name: str) -> str:
    """A tag of this run only: two runs on one machine share podman's storage, and a run killed mid-build leaves
    a buildah working container holding its image, so a fixed tag would collide or be pinned."""
    return f"repogen/test-{name}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def _remove_test_images(env: dict[str, str], tags: list[str]) -> None:
    """The test's tags go (and the layers only they hold); the CPU image and its base stay for the next run.
    --force also removes a container using them: the tags are this run's own (``_test_tag``)."""
    for tag in tags:  # the derived image first: its base cannot go while a child holds it
        subprocess.run(["podman", "rmi", "--force", "--ignore", f"localhost/{tag}:latest"], capture_output=True,
                       text=True, env=env, timeout=300)
    listed = subprocess.run(["podman", "images", "--format", "{{.Repository}}"], capture_output=True, text=True,
                            env=env, timeout=60).stdout.split()
    assert not {f"localhost/{t}" for t in tags} & set(listed), listed


def test_docker_files_build_on_the_local_base(podman_env):
    """Dockerfile.build takes its base as a build argument; built here on the CPU image (the NGC base cannot be
    pulled here), its steps, COPYs, installs and entrypoint are what is tested. Dockerfile.serve-paddle is built
    and checked by test_every_kind_of_generated_python_model_loads_in_its_images."""
    tag = _test_tag("build")
    try:
        _podman_build(podman_env, tag, "--build-arg", f"BASE_IMAGE=localhost/{images.CPU_IMAGE}", "--build-arg",
                      "REQUIRE_TENSORRT=0", "-f", str(ROOT / "docker" / "Dockerfile.build"), str(ROOT))
        run = subprocess.run(["podman", "run", "--rm", tag, "--version"], capture_output=True,
                             text=True, env=podman_env, timeout=300)
        assert run.returncode == 0 and run.stdout.startswith("repogen"), run.stdout + run.stderr
    finally:
        _remove_test_images(podman_env, [tag])


#: imports each statement given on the command line; prints the ones that fail, one a line; exit 1 if any did
IMPORT_CHECK = """
import sys
failed = []
for statement in sys.argv[1:]:
    try:
        exec(statement, {})
    except Exception as exc:
        failed.append(f"{statement}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
print("\\n".join(failed))
try:
    import numpy
    print("numpy", numpy.__version__)
except ImportError:
    print("numpy missing")
sys.exit(1 if failed else 0)
"""
#: the CPU image with the packages that provide the served models' imports removed: a stand-in for the NGC
#: base (tritonserver and Python, none of those packages), which cannot be pulled here
STRIPPED_BASE = f"""
FROM localhost/{images.CPU_IMAGE}
USER root
ARG MODULES
RUN python3 -c "import importlib.metadata as md, sys; d = md.packages_distributions(); \\
print(' '.join(sorted({{x for m in sys.argv[1:] for x in d.get(m, [])}})))" $MODULES > /tmp/dists \\
 && python3 -m pip uninstall -y $(cat /tmp/dists) && rm /tmp/dists
"""


def _import_check(env: dict[str, str], image: str, statements: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(["podman", "run", "--rm", image, "python3", "-c", IMPORT_CHECK, *statements],
                          capture_output=True, text=True, env=env, timeout=600)


def test_every_kind_of_generated_python_model_loads_in_its_images(podman_env, tmp_path):
    """Issue 26 item 4. One repository with each kind of Python-backend model repogen writes: the paddle target
    (the example text detector and recognizer), their pipeline stages (_pre, _post) and the ocr_system BLS model,
    a whole --target numpy stand-in, and a partitioned model (NumPy stand-ins of its TensorRT regions, a Python
    remainder running cumprod with Paddle, an ensemble). On a CPU host it is served by the CPU image: every model
    loads there and answers as Paddle does. On a GPU host, by Dockerfile.serve-paddle: built on the CPU image with
    those packages removed (the NGC base cannot be pulled here), every import statement of the generated
    model.py files (read with ast, repogen followed through its run-time imports) must run in it."""
    import json

    from tests.support import zoo

    started = time.monotonic()
    exports, repo = tmp_path / "exports", tmp_path / "repo"
    proc = _repogen("examples", str(exports), "--kinds", "ocr_det,ocr_rec", env=podman_env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    builds = [
        [str(exports / "ocr_det"), str(exports / "ocr_rec"), "--target", "paddle"],
        [str(zoo.get("elementwise", "pir")), "--name", "elementwise", "--target", "numpy"],
        [str(zoo.get("cumprod_net", "pir")), "--name", "cumprod", "--target", "numpy", "--partition",
         "--min-shapes", "x:1x3x16x16", "--opt-shapes", "x:2x3x16x16", "--max-shapes", "x:4x3x32x32"],
    ]
    for args in builds:
        proc = _repogen("build", *args, "--out", str(repo), "--json", env=podman_env)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    folders = sorted(p for p in repo.iterdir() if p.is_dir())
    manifests = {p.name: json.loads((p / "repogen.json").read_text()) for p in folders}
    kinds = {(m["role"], m["target"]) for m in manifests.values()}
    assert {("model", "paddle"), ("pre", "python"), ("post", "python"), ("system", "python"), ("model", "numpy"),
            ("part", "numpy"), ("part", "python"), ("model", "ensemble")} <= kinds, kinds
    assert manifests["ocr_system"]["role"] == "system"
    # the images this repository is served with: the CPU image on a CPU host, serve-paddle on a GPU host
    assert images.serving_image(manifests.values()).image == images.CPU_IMAGE
    assert images.serving_image(manifests.values(), gpu_host=True).image == images.PADDLE_GPU_IMAGE
    built = time.monotonic()

    before = _ours(podman_env)
    proc = _repogen("validate", str(repo), "--server", "docker", "--engine", "podman", "--concurrency", "1",
                    "--requests", "5", "--window-ms", "100", "--max-windows", "3", "--level-budget-s", "5", "--json",
                    env=podman_env, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert report["ok"] and not report["failures"], report["failures"]
    reported = {m["model"]: m for m in report["models"]}
    # every folder was loaded and judged (stages through their pipelines, parts through their ensemble)
    assert set(reported) == {p.name for p in folders if manifests[p.name]["role"] != "part"}, sorted(reported)
    assert all(m["ok"] for m in reported.values())
    answered = ["PP-OCRv5_mobile_det", "PP-OCRv5_mobile_rec", "PP-OCRv5_mobile_det_pipeline",
                "PP-OCRv5_mobile_rec_pipeline", "ocr_system", "elementwise", "cumprod"]
    for name in answered:  # compared with Paddle (or PaddleX's pipeline) over both protocols
        checks = reported[name]["checks"]
        assert {c["protocol"] for c in checks} == {"http", "grpc"} and all(c["ok"] for c in checks), (name, checks)
    assert all(c["rel_err"] <= 1e-5 for c in reported["cumprod"]["checks"])
    assert not _ours(podman_env) - before  # the validate run's container is gone (others may run beside)
    validated = time.monotonic()

    statements = images.python_model_imports(folders)
    modules = sorted({s.split()[1].split(".")[0] for s in statements})
    assert {"cv2", "numpy", "paddle", "pyclipper", "repogen"} <= set(modules), modules
    base, image = _test_tag("serve-paddle-base"), _test_tag("serve-paddle")
    try:
        (tmp_path / "context").mkdir()
        _podman_build(podman_env, base, "--build-arg", f"MODULES={' '.join(modules)}", "-f", "-",
                      str(tmp_path / "context"), stdin=STRIPPED_BASE)
        bare = _import_check(podman_env, base, statements)
        missing = {line.split(": ")[0].split()[1].split(".")[0] for line in bare.stdout.splitlines() if ": " in line}
        assert bare.returncode == 1 and missing == set(modules), bare.stdout[-3000:] + bare.stderr[-2000:]
        _podman_build(podman_env, image, "--build-arg", f"BASE_IMAGE=localhost/{base}", "-f",
                      str(ROOT / "docker" / "Dockerfile.serve-paddle"), str(ROOT))
        served = _import_check(podman_env, image, statements)
        assert served.returncode == 0, served.stdout[-3000:] + served.stderr[-2000:]
        assert served.stdout.split()[-2:] == ["numpy", "1.26.4"], served.stdout
    finally:
        _remove_test_images(podman_env, [image, base])
    print(f"\nbuild {built - started:.0f} s, validate in the CPU image {validated - built:.0f} s, serve-paddle "
          f"image and {len(statements)} imports {time.monotonic() - validated:.0f} s", file=sys.stderr)


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
