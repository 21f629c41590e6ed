"""``repogen manifests``: objects built from the kubernetes / kserve client models (the models are the
schema), template overrides, and the Deployment's own tritonserver command run here against S3."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from repogen.cli import main
from repogen.deploy.k8s_models import build
from repogen.deploy.manifests import ManifestOptions, for_repository, render, repository_manifests
from repogen.repository import images
from repogen.errors import ConfigError
from repogen.harness.server import (_die_with_parent, _interpreter_path_env, _prepare_pytriton_backend,
                                    find_tritonserver, free_port, kill_process_group)
from repogen.storage.publish import publish
from tests.support.s3_fixtures import SAMPLE_REPO

pytestmark = pytest.mark.timeout(240)
URI = "s3://models/prod"
EP = "http://minio.storage.svc:9000"


NGC = "nvcr.io/nvidia/tritonserver:25.01-py3"


def _all(**kw) -> dict[str, dict]:
    opts = ManifestOptions(kserve=True, hpa=(2, 6), service_monitor=True, **({"image": NGC, "gpus": 1} | kw))
    return {f: yaml.safe_load(t) for f, t in render(URI, opts, EP).items()}


def test_every_object_builds_from_the_client_models(monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    docs = _all()
    assert set(docs) == {"deployment.yaml", "service.yaml", "hpa.yaml", "servicemonitor.yaml", "secret.yaml.example",
                         "inferenceservice.yaml", "serviceaccount.yaml"}
    dep = build(docs["deployment.yaml"], "V1Deployment", "deployment.yaml")
    c = dep.spec.template.spec.containers[0]
    assert c.command == ["tritonserver"]
    assert "--model-repository=s3://http://minio.storage.svc:9000/models/prod" in c.args
    assert "--model-control-mode=poll" in c.args
    assert sorted((p.name, p.container_port) for p in c.ports) == [("grpc", 8001), ("http", 8000), ("metrics", 8002)]
    assert c.liveness_probe.http_get.path == "/v2/health/live"
    assert c.readiness_probe.http_get.path == "/v2/health/ready"
    assert c.startup_probe.http_get.path == "/v2/health/ready"
    assert c.startup_probe.failure_threshold * c.startup_probe.period_seconds >= 600  # minutes for model loading
    assert c.resources.limits["nvidia.com/gpu"] == "1"
    assert dep.spec.template.spec.security_context.run_as_non_root is True
    assert c.security_context.allow_privilege_escalation is False
    secret_refs = {e.name: e.value_from.secret_key_ref.name for e in c.env if e.value_from}
    assert secret_refs == {"AWS_ACCESS_KEY_ID": "triton-s3-credentials", "AWS_SECRET_ACCESS_KEY": "triton-s3-credentials"}
    svc = build(docs["service.yaml"], "V1Service", "service.yaml")
    assert {p.port for p in svc.spec.ports} == {8000, 8001, 8002}
    hpa = build(docs["hpa.yaml"], "V2HorizontalPodAutoscaler", "hpa.yaml")
    assert (hpa.spec.min_replicas, hpa.spec.max_replicas) == (2, 6)
    assert hpa.spec.metrics[0].pods.metric.name == "avg_time_queue_us"
    isvc = build(docs["inferenceservice.yaml"], "V1beta1InferenceService", "inferenceservice.yaml")
    model = isvc.spec.predictor.model
    assert (model.model_format.name, model.protocol_version, model.storage_uri) == ("triton", "v2", URI)
    assert model.runtime_version == "25.01-py3"
    sa = build(docs["serviceaccount.yaml"], "V1ServiceAccount", "serviceaccount.yaml")
    assert sa.secrets[0].name == "triton-s3-credentials" and isvc.spec.predictor.service_account_name == sa.metadata.name
    secret = docs["secret.yaml.example"]
    assert secret["metadata"]["annotations"]["serving.kserve.io/s3-endpoint"] == "minio.storage.svc:9000"
    mon = docs["servicemonitor.yaml"]
    assert mon["spec"]["endpoints"][0]["port"] == "metrics"


@pytest.mark.parametrize("edit, words", [
    (("livenessProbe:", "livenessProbes:"), "unknown field(s) livenessProbes for V1Container"),
    (("containerPort: 8000", 'containerPort: "8000"'), "containerPort: expected int, got str '8000'"),
    (("          image: {{ image | tojson }}\n", ""), None),  # image is optional in the model: still builds
    (("- name: tritonserver", "- nmae: tritonserver"), "unknown field(s) nmae"),
    (("      labels:\n{{ labels(8) }}", "      labels: {app: other}"), "matchLabels does not select"),
])
def test_template_overrides_are_checked(tmp_path, edit, words):
    from repogen.deploy.manifests import BUILTIN

    text = (BUILTIN / "deployment.yaml.j2").read_text()
    assert edit[0] in text, edit
    (tmp_path / "deployment.yaml.j2").write_text(text.replace(*edit))
    opts = ManifestOptions(templates=tmp_path, image=NGC, gpus=1)
    if words is None:
        assert "image" not in yaml.safe_load(render(URI, opts)["deployment.yaml"])["spec"]["template"]["spec"]["containers"][0]
        return
    with pytest.raises(ConfigError) as err:
        render(URI, opts)
    assert "deployment.yaml" in str(err.value) and words in str(err.value)


def test_override_replaces_builtin_and_cli_never_overwrites(tmp_path, capsys):
    from repogen.deploy.manifests import BUILTIN

    user = tmp_path / "tpl"
    user.mkdir()
    (user / "service.yaml.j2").write_text((BUILTIN / "service.yaml.j2").read_text().replace("ClusterIP", "LoadBalancer"))
    out = tmp_path / "out"
    assert main(["manifests", URI, "--out", str(out), "--templates", str(user), "--gpus", "0", "--secret", "",
                 "--image", NGC]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["deployment.yaml", "service.yaml"]
    assert yaml.safe_load((out / "service.yaml").read_text())["spec"]["type"] == "LoadBalancer"
    dep = yaml.safe_load((out / "deployment.yaml").read_text())
    assert "nvidia.com/gpu" not in dep["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    before = (out / "deployment.yaml").read_text()
    capsys.readouterr()
    assert main(["manifests", URI, "--out", str(out), "--replicas", "3", "--image", NGC, "--gpus", "1"]) == 2
    assert "exists; pass --force" in capsys.readouterr().err
    assert (out / "deployment.yaml").read_text() == before
    assert main(["manifests", URI, "--out", str(out), "--replicas", "3", "--force", "--image", NGC, "--gpus", "1"]) == 0
    assert yaml.safe_load((out / "deployment.yaml").read_text())["spec"]["replicas"] == 3


@pytest.mark.parametrize("argv, words", [
    (["--name", "Triton_A"], "--name 'Triton_A': must be a DNS label"),
    (["--memory", "16 GB"], "--memory '16 GB': not a Kubernetes quantity"),
    (["--hpa", "4:2"], "--hpa 4:2"),
])
def test_bad_options(tmp_path, capsys, argv, words):
    assert main(["manifests", URI, "--out", str(tmp_path / "o"), *argv]) == 2
    assert words in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.e2e
def test_deployment_command_serves_from_s3(s3_env, bucket, tmp_path):
    """The rendered container's command and args, run here: only the binary path, the ports (8000-8002 may be
    taken) and loopback-only addresses are substituted, plus the backend folder the pip-installed binary needs.
    The manifest's own probe paths must answer 200 within the startup probe's budget."""
    uri = f"s3://{bucket}/prod"
    publish(SAMPLE_REPO, uri)
    # the repository's own record picks the image: a paddle-target model needs Paddle, not a GPU
    opts = for_repository(ManifestOptions(), repository_manifests(uri), uri)
    assert (opts.image, opts.gpus) == (images.CPU_IMAGE, 0)
    docs = {f: yaml.safe_load(t) for f, t in render(uri, replace(opts, image=NGC)).items()}
    c = docs["deployment.yaml"]["spec"]["template"]["spec"]["containers"][0]
    assert f"--model-repository=s3://http://127.0.0.1:{s3_env.port}/{bucket}/prod" in c["args"]
    ports = {p["name"]: free_port() for p in c["ports"]}
    fixed = {"--http-port=8000": f"--http-port={ports['http']}", "--grpc-port=8001": f"--grpc-port={ports['grpc']}",
             "--metrics-port=8002": f"--metrics-port={ports['metrics']}"}
    assert set(fixed) <= set(c["args"])
    exe = find_tritonserver()
    work = Path(tempfile.mkdtemp(dir=tmp_path))
    backends, env = _prepare_pytriton_backend(exe, work)
    argv = [str(exe)] + [fixed.get(a, a) for a in c["args"]] + [
        "--http-address=127.0.0.1", "--grpc-address=127.0.0.1", "--metrics-address=127.0.0.1",
        f"--backend-directory={backends}"]
    secrets = {"AWS_ACCESS_KEY_ID": s3_env.access_key, "AWS_SECRET_ACCESS_KEY": s3_env.secret_key}
    for e in c["env"]:
        env[e["name"]] = e["value"] if "value" in e else secrets[e["valueFrom"]["secretKeyRef"]["key"]]
    env.update(_interpreter_path_env())
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}  # only what the manifest gives
    log = tmp_path / "triton.log"
    with open(log, "wb") as f:
        proc = subprocess.Popen(argv, env={**clean, **env}, stdout=f, stderr=subprocess.STDOUT,
                                start_new_session=True, preexec_fn=_die_with_parent)
    try:
        def probe(name: str) -> int:
            path = c[name]["httpGet"]["path"]
            port = ports[c[name]["httpGet"]["port"]]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
                    return r.status
            except OSError:
                return 0

        budget = c["startupProbe"]["periodSeconds"] * c["startupProbe"]["failureThreshold"]
        deadline = time.monotonic() + min(budget, 120)
        while probe("startupProbe") != 200:
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        assert probe("livenessProbe") == 200 and probe("readinessProbe") == 200
        with urllib.request.urlopen(f"http://127.0.0.1:{ports['http']}/v2/models/tiny_cnn/ready", timeout=5) as r:
            assert r.status == 200
        with urllib.request.urlopen(f"http://127.0.0.1:{ports['metrics']}/metrics", timeout=5) as r:
            metrics = r.read().decode()
        # the counters the HPA's recording rule is built from
        assert "nv_inference_queue_duration_us" in metrics and "nv_inference_request_success" in metrics
    finally:
        kill_process_group(proc)


def test_image_and_gpus_follow_the_repository_record():
    """Plans: the NGC release of their TensorRT with one GPU; Python-backend models only: the CPU image with
    Paddle and no GPU; both: the serve-paddle image on the plans' release, with one GPU; what the user names
    wins."""
    paddle = [{"target": "paddle"}, {"target": "python"}, {"target": "ensemble"}]
    plans = [{"target": "ensemble"}, {"target": "tensorrt", "tensorrt": {"version": "10.8.0.43"}}]
    assert (lambda o: (o.image, o.gpus))(for_repository(ManifestOptions(), paddle, "r")) == (images.CPU_IMAGE, 0)
    assert (lambda o: (o.image, o.gpus))(for_repository(ManifestOptions(), plans, "r")) == (NGC, 1)
    mixed = (lambda o: (o.image, o.gpus))(for_repository(ManifestOptions(), paddle + plans, "r"))
    assert mixed == ("repogen/tritonserver-paddle:25.01", 1)
    assert for_repository(ManifestOptions(gpus=1), paddle, "r").image == images.PADDLE_GPU_IMAGE
    assert for_repository(ManifestOptions(image="mine:1"), plans, "r").image == "mine:1"
    with pytest.raises(ConfigError, match="several TensorRT versions"):
        for_repository(ManifestOptions(), plans + [{"target": "tensorrt", "tensorrt": {"version": "10.5.0"}}], "r")
