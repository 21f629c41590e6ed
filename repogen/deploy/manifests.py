"""``repogen manifests REPO_URI --out DIR``: Kubernetes (and KServe) manifests for Triton serving a
repository on object storage, rendered from Jinja2 templates users can override (``--templates DIR``:
a file there replaces the built-in one of the same name and may import only the built-in macros), in the
bounded sandbox of repogen.repository.templating (a user's templates in a child process with a memory and
CPU cap).

Every rendered object is checked by building it from the ``kubernetes`` / ``kserve`` client models
(repogen.deploy.k8s_models): unknown or misspelled fields, wrong types and missing required fields are
errors naming the file and the field, so a template override cannot silently produce a manifest the API
server would reject or prune.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from repogen.errors import ConfigError
from repogen.extras import require, require_installed
from repogen.repository import templating
from repogen.repository.images import serving_image
from repogen.storage.uri import parse

BUILTIN = Path(__file__).resolve().parents[1] / "templates" / "k8s"
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti)?$")

# file written -> (template, model class for the check); the optional ones depend on options
PLAIN = {"deployment.yaml": ("deployment.yaml.j2", "V1Deployment"),
         "service.yaml": ("service.yaml.j2", "V1Service")}
HPA = {"hpa.yaml": ("hpa.yaml.j2", "V2HorizontalPodAutoscaler")}
MONITOR = {"servicemonitor.yaml": ("servicemonitor.yaml.j2", None)}  # a CRD: no client model, cross-checked
SECRET = {"secret.yaml.example": ("secret.yaml.example.j2", "V1Secret")}
KSERVE = {"inferenceservice.yaml": ("inferenceservice.yaml.j2", "V1beta1InferenceService")}
KSERVE_SA = {"serviceaccount.yaml": ("serviceaccount.yaml.j2", "V1ServiceAccount")}


@dataclass
class ManifestOptions:
    name: str = "triton"
    namespace: str = "default"
    image: str | None = None  # None: the image that serves what the repository holds (repository.images)
    replicas: int = 1
    gpus: int | None = None  # None: 1 when the repository holds TensorRT plans, else 0
    cpu: str = "4"
    memory: str = "16Gi"
    control_mode: str = "poll"  # poll: publishing rolls out; explicit: repogen publish --rollout
    poll_secs: int = 30
    secret: str | None = "triton-s3-credentials"
    region: str = "us-east-1"
    startup_minutes: int = 10
    hpa: tuple[int, int] | None = None
    hpa_metric: str = "avg_time_queue_us"
    hpa_target: str = "50000"  # microseconds of queue time per request, per pod
    service_monitor: bool = False
    kserve: bool = False
    service_account: str | None = None
    templates: Path | None = None
    extra_args: list[str] = field(default_factory=list)


def for_repository(opts: ManifestOptions, manifests: list[dict[str, Any]], where: str) -> ManifestOptions:
    """``opts`` with the image and GPU count the repository's own record asks for where the user left them out:
    the NGC release whose TensorRT built its plans (one GPU), or the CPU image with Paddle and repogen's runtime
    for Python-backend models (no GPU)."""
    if opts.image is not None and opts.gpus is not None:
        return opts
    chosen = serving_image(manifests, gpu_host=bool(opts.gpus), where=where)
    return replace(opts, image=opts.image or chosen.image, gpus=opts.gpus if opts.gpus is not None else int(chosen.gpu))


def repository_manifests(uri_text: str, endpoint_url: str | None = None) -> list[dict[str, Any]]:
    """The ``repogen.json`` of every model folder published under ``uri_text``: what the repository holds."""
    from repogen.storage import client as s3
    from repogen.storage.download import remote_models
    from repogen.storage.publish import remote_manifest

    for package in ("yaml", "kubernetes"):  # before the store is read: one missing extra, named once
        require_installed(package, extra="deploy")
    uri = parse(uri_text, endpoint_url)
    client = s3.make_client(uri)
    s3.check_bucket(client, uri)
    names = remote_models(client, uri)
    if not names:
        raise ConfigError(f"{uri_text}: no model folders published there; publish the repository first "
                          "(repogen publish), or pass --image and --gpus")
    return [m for m in (remote_manifest(client, uri, n) for n in names) if m]


def tritonserver_args(repository: str, opts: ManifestOptions) -> list[str]:
    args = [f"--model-repository={repository}", f"--model-control-mode={opts.control_mode}"]
    if opts.control_mode == "poll":
        args.append(f"--repository-poll-secs={opts.poll_secs}")
    elif opts.control_mode == "explicit":
        # explicit mode loads nothing by itself: without this a pod is ready (strict readiness counts loaded
        # models only) before it can answer anything; later versions arrive with repogen publish --rollout
        args.append("--load-model=*")
    return args + ["--http-port=8000", "--grpc-port=8001", "--metrics-port=8002", "--strict-readiness=true",
                   "--exit-on-error=false", "--log-info=true"] + list(opts.extra_args)


def check_options(uri_text: str, opts: ManifestOptions) -> None:
    for what, value in (("--name", opts.name), ("--namespace", opts.namespace)):
        if not _DNS_LABEL.match(value):
            raise ConfigError(f"{what} {value!r}: must be a DNS label (lowercase letters, digits, '-', at most 63)")
    for what, value in (("--cpu", opts.cpu), ("--memory", opts.memory)):
        if not _QUANTITY.match(value):
            raise ConfigError(f"{what} {value!r}: not a Kubernetes quantity (e.g. 4, 500m, 16Gi)")
    if opts.control_mode not in ("poll", "explicit", "none"):
        raise ConfigError(f"--control-mode {opts.control_mode}: expected poll, explicit or none")
    if opts.replicas < 1 or (opts.gpus is not None and opts.gpus < 0):
        raise ConfigError("--replicas must be >= 1 and --gpus >= 0")
    if opts.hpa and not (1 <= opts.hpa[0] <= opts.hpa[1]):
        raise ConfigError(f"--hpa {opts.hpa[0]}:{opts.hpa[1]}: expected MIN:MAX with 1 <= MIN <= MAX")


def context(uri_text: str, opts: ManifestOptions, endpoint_url: str | None = None) -> dict[str, Any]:
    uri = parse(uri_text, endpoint_url)
    check_options(uri_text, opts)
    if opts.image is None or opts.gpus is None:
        raise ConfigError("the serving image and GPU count are not known yet: resolve them with for_repository()")
    ep = urlsplit(uri.endpoint_url) if uri.endpoint_url else None
    return {
        "name": opts.name, "namespace": opts.namespace, "image": opts.image, "replicas": opts.replicas,
        "gpus": opts.gpus, "cpu": opts.cpu, "memory": opts.memory, "secret": opts.secret, "region": opts.region,
        "repository": uri.triton_path(), "storage_uri": uri.text, "endpoint_url": uri.endpoint_url,
        "endpoint_host": ep.netloc if ep else None, "endpoint_https": bool(ep and ep.scheme == "https"),
        "args": tritonserver_args(uri.triton_path(), opts), "control_mode": opts.control_mode,
        "startup_failures": max(1, opts.startup_minutes * 6), "grace_seconds": 30, "run_as_user": 1000,
        "shm_size": "1Gi", "hpa_min": opts.hpa[0] if opts.hpa else 1, "hpa_max": opts.hpa[1] if opts.hpa else 1,
        "hpa_metric": opts.hpa_metric, "hpa_target": opts.hpa_target,
        "runtime_version": opts.image.rsplit(":", 1)[-1] if ":" in opts.image.rsplit("/", 1)[-1] else "latest",
        "service_account": opts.service_account or (f"{opts.name}-storage" if opts.secret else None),
    }


def template_jobs(user_dir: Path | None, templates: list[str],
                  ctx: dict[str, Any]) -> list[tuple[templating.Job, bool]]:
    """(render job, is it the user's) per template: a file of ``user_dir`` replaces the bundled one of the same
    name and may import only the bundled macros (``_labels.j2``), never another file of that folder."""
    if user_dir is not None and not user_dir.is_dir():
        raise ConfigError(f"--templates {user_dir}: not a folder")
    bundled = templating.bundled_sources(BUILTIN)
    jobs = []
    for name in templates:
        path = user_dir / name if user_dir is not None else None
        if path is not None and (path.exists() or path.is_symlink()):
            sources = {str(path): templating.read_template(path, inside=user_dir)} | templating.bundled_macros(BUILTIN)
            jobs.append((templating.Job(str(path), str(path), sources, ctx), True))
        else:
            jobs.append((templating.Job(name, name, bundled, ctx), False))
    return jobs


def selected(opts: ManifestOptions) -> dict[str, tuple[str, str | None]]:
    files = dict(PLAIN)
    if opts.hpa:
        files |= HPA
    if opts.service_monitor:
        files |= MONITOR
    if opts.secret:
        files |= SECRET
    if opts.kserve:
        files |= KSERVE | (KSERVE_SA if opts.secret else {})
    return files


def render(uri_text: str, opts: ManifestOptions, endpoint_url: str | None = None) -> dict[str, str]:
    """File name -> rendered, checked YAML text."""
    yaml = require("yaml", extra="deploy")

    from repogen.deploy.k8s_models import check_objects

    ctx = context(uri_text, opts, endpoint_url)
    files = selected(opts)
    jobs = template_jobs(opts.templates, [template for template, _ in files.values()], ctx)
    # the user's templates render together in one child process, repogen's own here
    users = iter(templating.render_all([job for job, user in jobs if user], isolated=True))
    texts = [next(users) if user else templating.render(job, isolated=False) for job, user in jobs]
    out: dict[str, str] = {}
    docs: dict[str, tuple[dict, str | None]] = {}
    for (filename, (template, model)), text in zip(files.items(), texts):
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{template}: rendered {filename} is not valid YAML: {exc}") from exc
        if not isinstance(doc, dict):
            raise ConfigError(f"{template}: rendered {filename} is not one YAML mapping")
        out[filename] = text
        docs[filename] = (doc, model)
    check_objects(docs)
    return out


def write(uri_text: str, out_dir: Path, opts: ManifestOptions, endpoint_url: str | None = None,
          force: bool = False) -> list[Path]:
    """Render and check everything first, then write; an existing file is replaced only with ``force``."""
    rendered = render(uri_text, opts, endpoint_url)
    clash = [out_dir / f for f in rendered if (out_dir / f).exists()]
    if clash and not force:
        raise ConfigError(f"{clash[0]}: exists; pass --force to replace the manifests in {out_dir}")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for filename, text in rendered.items():
        tmp = out_dir / f".{filename}.tmp-{os.getpid()}"
        tmp.write_text(text)
        os.replace(tmp, out_dir / filename)
        written.append(out_dir / filename)
    return written
