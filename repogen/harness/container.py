"""Triton in a container, with docker or podman as the engine.

The harness runs one container per launch: ports published on 127.0.0.1 only, the repository mounted
read-only at ``/models``, a name starting with ``repogen-triton-`` and a ``repogen.harness`` label so
leftovers can be found, and a stop that lets tritonserver unload its models (``ENGINE stop -t``, which
sends SIGTERM and waits) before the container is removed.

The image follows the repository: plans need the NGC tritonserver image whose TensorRT built them
(``repogen.json`` records the TensorRT version); Python-backend models (paddle target, ``--target
numpy``) need Paddle in the image: ``repogen/tritonserver-cpu`` on a host without a GPU (built by
``docker/build-cpu-image.sh``), the ``docker/Dockerfile.serve-paddle`` image on a GPU host; plans beside
Python-backend models (pipeline stages, a partition's remainder) need that image built on the plans' NGC
release. ``repogen.repository.images.serving_image`` decides, for ``repogen manifests`` too.

Hosts without CAP_SYS_RESOURCE refuse the runtime's default rlimits ("error setting rlimit type 7:
operation not permitted"). When podman fails that way and ``CONTAINERS_CONF`` is not set, the harness runs
it again with the private containers.conf that ``docker/build-cpu-image.sh`` writes beside its cache
(ulimits below the hard limits, runc, cgroupfs), writing that file itself when it is not there, and says so
in one line (``rlimit_fallback``).
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import subprocess
from pathlib import Path

from repogen.errors import ConfigError, ServerError
from repogen.repository.images import serving_image

ENGINES = ("docker", "podman")
LABEL = "repogen.harness"
NAME_PREFIX = "repogen-triton-"
CONTAINER_HTTP, CONTAINER_GRPC, CONTAINER_METRICS = 8000, 8001, 8002

CONTAINERS_CONF = "containers.conf"
NOFILE_CAP, NPROC_CAP = 65536, 32768  # as docker/build-cpu-image.sh: ample for Triton, below most hard limits


def cache_dir() -> Path:
    """Where docker/build-cpu-image.sh keeps its cache and containers.conf (the same lookup as the script)."""
    explicit = os.environ.get("REPOGEN_CONTAINER_CACHE")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "repogen-container"


def rlimits_refused(log: str) -> bool:
    """The runtime could not apply the default rlimits (runc: "error setting rlimit type 7: operation not
    permitted"; crun: "setrlimit `RLIMIT_NOFILE`: Operation not permitted")."""
    text = log.lower()
    return ("setrlimit" in text or "setting rlimit" in text) and "not permitted" in text


def private_containers_conf(folder: Path | None = None) -> tuple[Path, bool]:
    """(path, written now): the containers.conf docker/build-cpu-image.sh wrote in ``folder`` (default
    ``cache_dir()``), or one with the same settings written there when it is missing: default ulimits below
    this process's hard limits, runc where installed (crun refuses mixed cgroup layouts), cgroupfs."""
    path = (folder or cache_dir()) / CONTAINERS_CONF
    if path.is_file():
        return path, False
    nofile = min(resource.getrlimit(resource.RLIMIT_NOFILE)[1], NOFILE_CAP)
    hard_nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    nproc = NPROC_CAP if hard_nproc == resource.RLIM_INFINITY else min(hard_nproc, NPROC_CAP)
    if nofile == resource.RLIM_INFINITY:
        nofile = NOFILE_CAP
    lines = ["[containers]", f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]', "[engine]"]
    if shutil.which("runc"):
        lines.append('runtime = "runc"')
    lines += ['cgroup_manager = "cgroupfs"', 'events_logger = "file"']
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)  # never a half-written file for a podman started beside us
    return path, True


def rlimit_fallback(engine: str, log: str) -> tuple[dict[str, str], str] | None:
    """When ``engine`` refused the default rlimits (``log``: its output): the environment that runs it with
    the private containers.conf, and the one line that says so; None when that cannot help (not podman, or
    the user's own CONTAINERS_CONF already in force)."""
    if not rlimits_refused(log) or Path(engine).name != "podman" or os.environ.get("CONTAINERS_CONF"):
        return None
    conf, written = private_containers_conf()
    found = re.search(r"(error setting rlimit type \d+|setrlimit[^:\n]*): operation not permitted", log, re.IGNORECASE)
    why = found.group(0) if found else "setrlimit: operation not permitted"
    origin = "written now with lower ulimits, runc, cgroupfs" if written else "the one docker/build-cpu-image.sh wrote"
    return ({"CONTAINERS_CONF": str(conf)},
            f"podman refused the default container rlimits ({why}); using CONTAINERS_CONF={conf} ({origin})")


def rlimit_hint(engine: str, conf: str | None = None) -> str:
    """What to do when the rlimits are refused and the harness cannot fix it itself (``conf``: the
    containers.conf in force, default $CONTAINERS_CONF)."""
    if Path(engine).name == "podman":
        conf = conf or os.environ.get("CONTAINERS_CONF")
        return f"lower default_ulimits in the containers.conf in force ({conf}), see docs/docker.md"
    return "set lower default-ulimits in the docker daemon's daemon.json, see docs/docker.md"


def find_engine(explicit: str | None = None) -> str:
    """``--engine``, then ``$REPOGEN_CONTAINER_ENGINE``, then podman, then a docker with a daemon."""
    wanted = explicit or os.environ.get("REPOGEN_CONTAINER_ENGINE")
    if wanted:
        path = shutil.which(wanted)
        if path is None:
            raise ServerError(f"container engine {wanted!r} not found on PATH")
        return path
    podman = shutil.which("podman")
    if podman:
        return podman
    docker = shutil.which("docker")
    # a docker CLI without a reachable daemon cannot run anything; say so rather than fail at `run`
    if docker and subprocess.run([docker, "info"], capture_output=True, timeout=30).returncode == 0:
        return docker
    raise ServerError("no container engine: install podman or docker (with a running daemon), or use "
                      "--server local")


def image_for(repo: Path, models: list[str] | None, gpus: bool) -> str:
    """The image that can serve these models, from their ``repogen.json`` manifests."""
    manifests = []
    for folder in sorted(p for p in repo.iterdir() if p.is_dir()):
        if models is not None and folder.name not in models:
            continue
        try:
            manifests.append(json.loads((folder / "repogen.json").read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue  # not built by repogen: the repository's own business
    try:
        return serving_image(manifests, gpus, str(repo)).image
    except ConfigError as exc:
        raise ServerError(str(exc)) from None


def gpu_flags(engine: str) -> list[str]:
    # podman reaches GPUs through CDI (nvidia-ctk cdi generate); docker through its --gpus option
    return ["--device", "nvidia.com/gpu=all"] if Path(engine).name == "podman" else ["--gpus", "all"]


def run_command(engine: str, repo: Path, image: str, name: str, http_port: int, grpc_port: int,
                gpus: bool, server_args: list[str], metrics_port: int | None = None) -> list[str]:
    """``ENGINE run`` in the foreground (its output is the server log); tritonserver binds all interfaces
    inside its own network namespace, and only 127.0.0.1 is published on the host."""
    cmd = [engine, "run", "--rm", "--name", name, "--label", f"{LABEL}=1", "--init", "--shm-size=1g",
           "-p", f"127.0.0.1:{http_port}:{CONTAINER_HTTP}", "-p", f"127.0.0.1:{grpc_port}:{CONTAINER_GRPC}",
           *(["-p", f"127.0.0.1:{metrics_port}:{CONTAINER_METRICS}"] if metrics_port is not None else []),
           "-v", f"{repo.resolve()}:/models:ro"]
    if gpus:
        cmd += gpu_flags(engine)
    return cmd + [image, "tritonserver", "--model-repository=/models", *server_args]


def stop(engine: str, name: str, grace: float, env: dict[str, str] | None = None) -> None:
    """SIGTERM tritonserver and give it ``grace`` seconds to unload (Python models run finalize), then remove;
    ``env``: the engine environment the container was started with (CONTAINERS_CONF)."""
    full = {**os.environ, **(env or {})}
    try:
        subprocess.run([engine, "stop", "-t", str(max(1, int(grace))), name], capture_output=True,
                       timeout=grace + 30, env=full)
    except subprocess.TimeoutExpired:
        pass
    subprocess.run([engine, "rm", "-f", name], capture_output=True, timeout=60, env=full)


def leftovers(engine: str) -> list[str]:
    """Names of containers the harness started that still exist (running or not)."""
    proc = subprocess.run([engine, "ps", "-a", "--filter", f"label={LABEL}", "--format", "{{.Names}}"],
                          capture_output=True, text=True, timeout=60)
    return [n for n in proc.stdout.split() if n.startswith(NAME_PREFIX)]


def image_exists(engine: str, image: str) -> bool:
    return subprocess.run([engine, "image", "inspect", image], capture_output=True, timeout=60).returncode == 0
