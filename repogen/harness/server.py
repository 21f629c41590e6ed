"""Start (or attach to) a Triton server for one model repository, and always tear it down.

``launch()`` is the one entry point: a context manager yielding a :class:`TritonServer` whose
``http_url`` / ``grpc_url`` point at loopback ports. The server runs in its own process group so that
teardown can end everything it spawned (Python-backend stubs included), whatever way the block exits.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from repogen.errors import ServerError
from repogen.interrupts import terminate_raises
from repogen.harness import container
from repogen.repository import images
from repogen.harness.shutdown import (EXIT_TIMEOUT_S, STOP_GRACE_S, group_alive, group_members,  # noqa: F401
                                      kill_process_group, stop_server_process)

READY_TIMEOUT_S = 60.0
LOAD_TIMEOUT_S = 300.0  # one model's load (a big Paddle model on a busy CPU takes minutes)
LOG_TAIL_LINES = 40


def free_port() -> int:
    """A port nobody listens on right now (the kernel's pick); a race remains, so launches retry."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _site_packages() -> list[Path]:
    paths = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    return [Path(p) for p in paths]


def bundled_tritonserver() -> Path | None:
    for sp in _site_packages():
        exe = sp / "pytriton" / "tritonserver" / "bin" / "tritonserver"
        if exe.is_file():
            return exe
    return None


def find_tritonserver(explicit: str | None = None) -> Path:
    """``--tritonserver``, then ``$TRITONSERVER``, then PATH, then the nvidia-pytriton wheel's binary."""
    for candidate, origin in ((explicit, "--tritonserver"), (os.environ.get("TRITONSERVER"), "$TRITONSERVER")):
        if candidate:
            p = Path(candidate)
            if not (p.is_file() and os.access(p, os.X_OK)):
                raise ServerError(f"{origin} {candidate}: not an executable file")
            return p
    on_path = shutil.which("tritonserver")
    if on_path:
        return Path(on_path)
    bundled = bundled_tritonserver()
    if bundled:
        return bundled
    raise ServerError("no tritonserver found: pass --tritonserver, set $TRITONSERVER, put it on PATH, or install "
                      'the CPU tritonserver of nvidia-pytriton: pip install "repogen[serve]"')


def check_stub_numpy(version: str = np.__version__) -> None:
    """The bundled server's Python-backend stub imports this environment's numpy (``_interpreter_path_env``):
    with numpy 2 it answers every request with empty output tensors and no error (docs/triton.md), so a
    validation would fail every case with a reshape error that never names numpy."""
    if int(version.split(".")[0]) >= 2:
        raise ServerError(f"numpy {version} is installed in {sys.prefix}, and the Python-backend stub of the "
                          "bundled tritonserver (nvidia-pytriton) returns empty outputs with numpy 2: "
                          'pip install "numpy<2" (the serve extra pins numpy 1.26.4)')


def _is_pytriton_bundle(exe: Path) -> bool:
    return exe.resolve().parent.parent.name == "tritonserver" and exe.resolve().parent.parent.parent.name == "pytriton"


def _prepare_pytriton_backend(exe: Path, workdir: Path) -> tuple[Path, dict[str, str]]:
    """A backend directory holding the wheel's Python backend plus the stub built for this interpreter.

    The wheel ships one stub per Python version; the stub imports numpy / paddle from the environment
    whose ``bin`` leads PATH, so that must be the running interpreter's (with numpy 1.26, see
    docs/harness.md)."""
    root = exe.resolve().parent.parent  # .../pytriton/tritonserver
    ver = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = root / "python_backend_stubs" / ver / "triton_python_backend_stub"
    if not stub.is_file():
        raise ServerError(f"{stub}: nvidia-pytriton has no Python-backend stub for Python {ver}")
    backends = workdir / "backends"
    dest = backends / "python"
    shutil.copytree(root / "backends" / "python", dest, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(stub, dest / "triton_python_backend_stub")
    libs = root.parent.parent / "nvidia_pytriton.libs"
    env = {
        "LD_LIBRARY_PATH": os.pathsep.join(p for p in (str(libs), os.environ.get("LD_LIBRARY_PATH", "")) if p),
    }
    return backends, env


def _interpreter_path_env() -> dict[str, str]:
    bindir = str(Path(sys.executable).parent)
    return {"PATH": os.pathsep.join([bindir, os.environ.get("PATH", "")])}


def _metrics_args(port: int | None, address: str | None) -> list[str]:
    """Metrics on loopback (a port nobody else can reach), or off when no port is given."""
    if port is None:
        return ["--allow-metrics=false"]
    return ["--allow-metrics=true", "--allow-gpu-metrics=false", f"--metrics-port={port}"] + \
        ([f"--metrics-address={address}"] if address else [])


def readiness_args(startup_models: list[str] | None) -> list[str]:
    """Readiness flags. With ``startup_models`` (``repogen serve``): Triton loads them before its endpoints
    open and ``/v2/health/ready`` answers 200 only while every model is ready (strict readiness: what probes
    and scripts wait for); a model Triton refuses leaves the server up but not ready, its reason in the
    repository index (exit-on-error off; a port clash still ends it). Without: models are loaded one by one
    through the API afterwards (validate reports each refusal with its model) and ready means responsive;
    with nothing loaded at start, strict readiness would answer 200 before any model is there."""
    if startup_models is None:
        return ["--exit-on-error=true", "--strict-readiness=false"]
    return ["--exit-on-error=false", "--strict-readiness=true", *(f"--load-model={m}" for m in startup_models)]


def local_command(exe: Path, repo: Path, http_port: int, grpc_port: int, backend_dir: Path | None,
                  extra: list[str] | None = None, metrics_port: int | None = None,
                  startup_models: list[str] | None = None) -> list[str]:
    cmd = [str(exe), f"--model-repository={repo}", "--model-control-mode=explicit",
           "--http-address=127.0.0.1", f"--http-port={http_port}",
           "--grpc-address=127.0.0.1", f"--grpc-port={grpc_port}",
           *_metrics_args(metrics_port, "127.0.0.1"), *readiness_args(startup_models),
           f"--exit-timeout-secs={EXIT_TIMEOUT_S}"]
    if backend_dir is not None:
        cmd.append(f"--backend-directory={backend_dir}")
    return cmd + list(extra or [])


def gpu_available() -> bool:
    smi = shutil.which("nvidia-smi")
    if not smi:
        return False
    try:
        return subprocess.run([smi, "-L"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def container_server_args(extra: list[str] | None = None, metrics: bool = False,
                          startup_models: list[str] | None = None) -> list[str]:
    """tritonserver's arguments inside a container (ports are the image's defaults, published by the engine
    on 127.0.0.1 only; the metrics port too when ``metrics``)."""
    return ["--model-control-mode=explicit", f"--http-port={container.CONTAINER_HTTP}",
            f"--grpc-port={container.CONTAINER_GRPC}",
            *_metrics_args(container.CONTAINER_METRICS if metrics else None, None), *readiness_args(startup_models),
            f"--exit-timeout-secs={int(STOP_GRACE_S) - 2}", *(extra or [])]


def _die_with_parent() -> None:
    """Runs in the child before exec: if the harness is SIGKILLed, the kernel still ends the server."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def http_request(host_port: str, method: str, path: str, body: dict | None = None,
                 timeout: float = 5.0) -> tuple[int, str]:
    """(status, body text) of one request to Triton's HTTP API, with no client library: usable before the
    server is up. HTTP errors are answers; an unreachable server raises OSError / URLError."""
    data = json.dumps(body).encode() if body is not None else (b"" if method == "POST" else None)
    req = urllib.request.Request(f"http://{host_port}{path}", data=data, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


@dataclass
class TritonServer:
    """A reachable Triton. ``proc`` is None when attached to a server someone else runs."""

    http_url: str  # host:port, the form tritonclient takes
    grpc_url: str
    repo: Path | None
    proc: subprocess.Popen | None = None
    log_path: Path | None = None
    container: str | None = None
    kind: str = "url"
    engine: str | None = None  # docker or podman, for a container
    loaded: dict[str, str | None] = field(default_factory=dict)  # model -> None or Triton's load error
    metrics_url: str | None = None  # host:port of Prometheus metrics (loopback) when repogen started the server
    engine_env: dict[str, str] = field(default_factory=dict)  # the container engine's environment (CONTAINERS_CONF)
    notes: list[str] = field(default_factory=list)  # one line each, for the user: what the launch had to adapt

    # -- HTTP helpers with no client dependency: used before the server is known to be up ------------------
    def _request(self, method: str, path: str, body: dict | None = None, timeout: float = 5.0) -> tuple[int, str]:
        return http_request(self.http_url, method, path, body, timeout)

    def alive(self) -> bool:
        return self.proc is None or self.proc.poll() is None

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        if self.log_path is None or not self.log_path.exists():
            return "(no server log: attached to a running server)"
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def error_with_log(self, what: str) -> ServerError:
        code = self.proc.poll() if self.proc is not None else None
        state = f" (server exited with code {code})" if code is not None else ""
        return ServerError(f"{what}{state}\n--- tritonserver log, last lines ({self.log_path}) ---\n{self.log_tail()}")

    def wait_live(self, timeout: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if not self.alive():
                raise self.error_with_log(f"tritonserver for {self.repo} stopped before it was live")
            try:
                status, _ = self._request("GET", "/v2/health/live", timeout=1.0)
                if status == 200:
                    return
                last = f"HTTP {status}"
            except (OSError, urllib.error.URLError) as exc:
                last = str(exc)
            time.sleep(0.1)
        raise self.error_with_log(f"tritonserver at {self.http_url} not live after {timeout:.0f} s ({last})")

    def repository_index(self) -> list[dict]:
        status, text = self._request("POST", "/v2/repository/index", {})
        if status != 200:
            raise self.error_with_log(f"repository index failed: HTTP {status} {text}")
        return json.loads(text or "[]")

    def load(self, models: list[str], timeout: float = LOAD_TIMEOUT_S) -> dict[str, str | None]:
        """Load each model explicitly; returns model -> None, or Triton's reason in plain words."""
        for name in models:
            if not self.alive():
                raise self.error_with_log(f"tritonserver died while loading {name}")
            try:
                status, text = self._request("POST", f"/v2/repository/models/{name}/load", {}, timeout=timeout)
            except (OSError, urllib.error.URLError) as exc:
                raise self.error_with_log(f"loading {name}: {exc}") from exc
            if status == 200:
                self.loaded[name] = None
                continue
            try:
                reason = json.loads(text).get("error", text)
            except ValueError:
                reason = text
            self.loaded[name] = self._index_reason(name) or reason
        return dict(self.loaded)

    def _index_reason(self, name: str) -> str | None:
        """The repository index keeps the load error per version; it says more than the load response."""
        try:
            rows = [r for r in self.repository_index() if r.get("name") == name]
        except (ServerError, OSError, ValueError):
            return None
        reasons = [r.get("reason", "") for r in rows if r.get("reason")]
        return "; ".join(reasons) or None

    def check_ready(self, models: list[str], attached: bool = True) -> dict[str, str | None]:
        """Which models are being served, without loading anything (a load call on someone else's server
        reloads a model that is serving traffic); ``attached``: the server is someone else's."""
        for name in models:
            try:
                status, _ = self._request("GET", f"/v2/models/{name}/ready")
            except (OSError, urllib.error.URLError) as exc:
                raise ServerError(f"{self.http_url}: readiness of {name}: {exc}") from exc
            if status == 200:
                self.loaded[name] = None
            elif attached:
                why = self._index_reason(name)
                self.loaded[name] = (f"not ready on {self.http_url}" + (f" ({why})" if why else "") +
                                     "; repogen loads models only on a server it started (--load to load them)")
            else:
                self.loaded[name] = self._index_reason(name) or f"not ready on {self.http_url}"
        return dict(self.loaded)

    def ready(self) -> bool:
        """``/v2/health/ready`` answers 200 (with strict readiness: every model is loaded)."""
        try:
            return self._request("GET", "/v2/health/ready")[0] == 200
        except (OSError, urllib.error.URLError):
            return False

    def require_loaded(self, models: list[str], load: bool = True, attached: bool = True) -> None:
        errors = self.load(models) if load else self.check_ready(models, attached)
        bad = {m: e for m, e in errors.items() if m in models and e}
        if bad:
            lines = "\n".join(f"  {m}: {e}" for m, e in bad.items())
            raise self.error_with_log(f"Triton did not load these models from {self.repo}:\n{lines}")

    # -- teardown ----------------------------------------------------------------------------------------------
    def stop(self, grace: float = STOP_GRACE_S) -> None:
        """SIGTERM the server alone so it unloads its models (Python-backend ``finalize()`` runs), then the
        group after the grace period (shutdown.py); containers get ``stop -t`` then ``rm``."""
        if self.container:
            container.stop(self.engine, self.container, grace, self.engine_env)
        if self.proc is None:
            return
        stop_server_process(self.proc, EXIT_TIMEOUT_S, grace)


def _spawn(cmd: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen:
    full_env = dict(os.environ)
    full_env.update(env)
    with open(log_path, "ab") as log:
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=full_env, start_new_session=True, preexec_fn=_die_with_parent)


_PORT_CLASH = ("address already in use", "failed to start grpc", "failed to start http", "failed to start metrics",
               "port is already allocated")


@contextlib.contextmanager
def launch(repo: str | Path | None, server: str = "local", *, models: list[str] | None = None,
           image: str | None = None, tritonserver: str | None = None, http_port: int | None = None,
           grpc_port: int | None = None, ready_timeout: float = READY_TIMEOUT_S,
           extra_args: list[str] | None = None, require_models: bool = False,
           grpc_url: str | None = None, model_repository: str | None = None,
           server_env: dict[str, str] | None = None, engine: str | None = None,
           load_on_attach: bool = False, strict_readiness: bool = False) -> Iterator[TritonServer]:
    """Run Triton on ``repo`` for the duration of the block.

    ``server``: "local" (a tritonserver binary), "docker" (a container: ``engine`` docker or podman, the
    image from ``image`` or chosen from the models' manifests, see container.py), or the URL of a running
    server (``http://host:port`` for its HTTP endpoint; gRPC on HTTP port + 1 unless ``grpc_url`` or
    ``http://host:8000,grpc://host:8001`` says otherwise). ``models`` are loaded explicitly (all of the repository when
    None); load errors land in ``TritonServer.loaded`` unless ``require_models`` raises them.
    ``repo`` may be ``s3://...`` (repogen.storage): Triton reads the store, ``handle.repo`` is a verified
    local copy of the same objects (for the reference); ``model_repository`` / ``server_env`` carry that.
    On a server repogen did not start, models are only checked for readiness unless ``load_on_attach``.
    ``strict_readiness`` (``repogen serve``): ``models`` load at startup and ``/v2/health/ready`` answers 200
    only once every one of them is loaded (readiness_args); otherwise they load through the API afterwards.
    """
    if repo is not None and "://" in str(repo):
        from repogen.storage.serving import served_from_store
        with served_from_store(str(repo), models) as (copy, path, env):
            with launch(copy, server, models=models, image=image, tritonserver=tritonserver, http_port=http_port,
                        grpc_port=grpc_port, ready_timeout=ready_timeout, extra_args=extra_args,
                        require_models=require_models, grpc_url=grpc_url, model_repository=path,
                        server_env=env, load_on_attach=load_on_attach,
                        strict_readiness=strict_readiness) as handle:
                yield handle
        return
    repo_path = Path(repo).resolve() if repo is not None else None
    if repo_path is not None and not repo_path.is_dir():
        raise ServerError(f"{repo}: model repository folder not found")
    if models is None and repo_path is not None:
        models = sorted(p.name for p in repo_path.iterdir() if (p / "config.pbtxt").is_file())

    if server not in ("local", "docker"):
        handle = attach(server, grpc_url)
        handle.repo = repo_path
        handle.wait_live(ready_timeout)
        if models:
            if require_models:
                handle.require_loaded(models, load=load_on_attach)
            else:
                (handle.load if load_on_attach else handle.check_ready)(models)
        yield handle
        return

    for port, flag in ((http_port, "http"), (grpc_port, "grpc")):
        if port is not None and port_in_use(port):
            raise ServerError(f"--{flag}-port {port}: already in use on 127.0.0.1; pick another or leave it unset")
    if server == "docker":
        if model_repository:
            raise ServerError(f"{model_repository}: --server docker serves local folders only; "
                              "use --server local or the URL of a server reading the store")
        engine = container.find_engine(engine)
        gpus = gpu_available()
        image = image or container.image_for(repo_path, models, gpus)
        if not container.image_exists(engine, image):
            if image == images.CPU_IMAGE:
                hint = " (build it with docker/build-cpu-image.sh)"
            elif image.startswith(images.PADDLE_GPU_IMAGE.split(":")[0] + ":"):  # built here, never pulled
                hint = (f" (build it: {Path(engine).name} build -f docker/Dockerfile.serve-paddle --build-arg "
                        f"TRITON_RELEASE={image.rsplit(':', 1)[1]} -t {image} . ; or pass --image)")
            else:
                hint = f" ({Path(engine).name} pull {image}, or pass --image)"
            raise ServerError(f"container image {image} is not available to {Path(engine).name}{hint}")
    startup = list(models or []) if strict_readiness else None
    # with startup loads the endpoints open only once every model was loaded (or refused)
    live_timeout = ready_timeout + (LOAD_TIMEOUT_S * max(1, len(startup)) if startup is not None else 0)
    workdir = Path(tempfile.mkdtemp(prefix="repogen-triton-"))
    handle: TritonServer | None = None
    try:
        with terminate_raises():
            attempts = 1 if (http_port or grpc_port) else 3
            engine_env: dict[str, str] = {}  # CONTAINERS_CONF once the engine refused the default rlimits
            notes: list[str] = []
            attempt = tries = 0
            while True:
                tries += 1
                hp, gp = http_port or free_port(), grpc_port or free_port()
                while gp == hp:
                    gp = free_port()
                mp = free_port()
                while mp in (hp, gp):
                    mp = free_port()
                log_path = workdir / f"tritonserver-{tries}.log"
                if server == "docker":
                    name = f"{container.NAME_PREFIX}{uuid.uuid4().hex[:12]}"
                    cmd = container.run_command(engine, repo_path, image, name, hp, gp, gpus,
                                                container_server_args(extra_args, metrics=True,
                                                                      startup_models=startup),
                                                metrics_port=mp)
                    env: dict[str, str] = dict(engine_env)
                else:
                    name = None
                    exe = find_tritonserver(tritonserver)
                    if _is_pytriton_bundle(exe):
                        check_stub_numpy()
                    backend_dir, env = (_prepare_pytriton_backend(exe, workdir) if _is_pytriton_bundle(exe)
                                        else (None, {}))
                    env.update(_interpreter_path_env())
                    env.update(server_env or {})
                    cmd = local_command(exe, model_repository or repo_path, hp, gp, backend_dir, extra_args,
                                        metrics_port=mp, startup_models=startup)
                log_path.write_text("$ " + " ".join(cmd) + "\n")
                proc = _spawn(cmd, env, log_path)
                handle = TritonServer(f"127.0.0.1:{hp}", f"127.0.0.1:{gp}", repo_path, proc, log_path, name, server,
                                      engine=engine if server == "docker" else None,
                                      metrics_url=f"127.0.0.1:{mp}", engine_env=dict(engine_env), notes=notes)
                try:
                    handle.wait_live(live_timeout)
                    break
                except ServerError as exc:
                    log = handle.log_tail()
                    clash = any(s in log.lower() for s in _PORT_CLASH)
                    handle.stop()
                    if server == "docker" and container.rlimits_refused(log):
                        fallback = None if engine_env else container.rlimit_fallback(engine, log)
                        if fallback is None:
                            hint = container.rlimit_hint(engine, engine_env.get("CONTAINERS_CONF"))
                            raise ServerError(f"{Path(engine).name} refused the default container rlimits: "
                                              f"{hint}\n{exc}") from exc
                        engine_env, note = fallback
                        notes.append(note)
                        continue  # a retry with the private containers.conf is not a port-clash attempt
                    attempt += 1
                    if clash and attempt < attempts:
                        continue
                    raise
            if models and startup is not None:  # loaded at startup: read what Triton made of them, load nothing
                if require_models:
                    handle.require_loaded(models, load=False, attached=False)
                else:
                    handle.check_ready(models, attached=False)
            elif models:
                (handle.require_loaded if require_models else handle.load)(models)
            yield handle
    finally:
        if handle is not None:
            handle.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def attach(url: str, grpc_url: str | None = None) -> TritonServer:
    """A server someone else runs: never started or stopped here (URL parsing: endpoints.py)."""
    from repogen.harness.endpoints import server_urls

    http, grpc = server_urls(url, grpc_url)
    return TritonServer(http, grpc, None, kind="url")
