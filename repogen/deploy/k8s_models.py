"""Check rendered manifests against the ``kubernetes`` and ``kserve`` Python client models.

The clients' own deserializers drop unknown keys silently, so this walks each model's ``openapi_types`` /
``attribute_map`` itself: an unknown (misspelled) field, a value of the wrong type, a missing required field
(the model constructors validate those) or an enum value the model refuses is a ConfigError naming the file
and the field path. No schema is written here: the models are the schema.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
import types
from typing import Any

from repogen.errors import ConfigError
from repogen.extras import MissingExtraError, require

_PRIMITIVES = {"str": str, "int": int, "float": (int, float), "bool": bool}


def _model_class(name: str):
    k8s = require("kubernetes.client.models", extra="deploy", for_what="checking manifests")
    cls = getattr(k8s, name, None)
    if cls is None and name.startswith(("V1alpha", "V1beta")):
        cls = getattr(_kserve_models(), name, None)
    if cls is None:
        raise ConfigError(f"no client model named {name}")
    return cls


def _kserve_models():
    """``kserve.models`` without running ``kserve/__init__.py``: that imports KServe's model server, whose
    gRPC protos register the same ``inference.*`` symbols as tritonclient's and fail in any process that has
    imported tritonclient.grpc (the harness does). The models need only ``kserve.configuration``."""
    if "kserve.models" in sys.modules:
        return sys.modules["kserve.models"]
    spec = importlib.util.find_spec("kserve")
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtraError("kserve", "deploy", "checking InferenceService manifests")
    stub = "kserve" not in sys.modules
    if stub:
        pkg = types.ModuleType("kserve")
        pkg.__path__ = list(spec.submodule_search_locations)
        sys.modules["kserve"] = pkg
    try:
        return importlib.import_module("kserve.models")
    finally:
        if stub:  # a later ``import kserve`` runs the real __init__ and finds the submodules loaded
            del sys.modules["kserve"]


def build(data: Any, type_name: str, path: str) -> Any:
    """``data`` (parsed YAML) as an instance of the client type ``type_name``; strict."""
    m = re.fullmatch(r"[lL]ist\[(.*)\]", type_name)
    if m:
        if not isinstance(data, list):
            raise ConfigError(f"{path}: expected a list, got {type(data).__name__}")
        return [build(v, m.group(1), f"{path}[{i}]") for i, v in enumerate(data)]
    m = re.fullmatch(r"dict\(str, (.*)\)|[dD]ict\[str, (.*)\]", type_name)  # client releases spell it both ways
    if m:
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping, got {type(data).__name__}")
        return {k: build(v, m.group(1) or m.group(2), f"{path}.{k}") for k, v in data.items()}
    if type_name == "object":
        return data
    if type_name in _PRIMITIVES:
        ok = isinstance(data, _PRIMITIVES[type_name]) and not (type_name != "bool" and isinstance(data, bool))
        if not ok:
            raise ConfigError(f"{path}: expected {type_name}, got {type(data).__name__} {data!r}")
        return data
    if type_name in ("datetime", "date"):
        return data
    cls = _model_class(type_name)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a {type_name} mapping, got {type(data).__name__}")
    by_json = {j: a for a, j in cls.attribute_map.items()}
    unknown = sorted(set(data) - set(by_json))
    if unknown:
        raise ConfigError(f"{path}: unknown field(s) {', '.join(unknown)} for {type_name} "
                          f"(known: {', '.join(sorted(by_json))})")
    kwargs = {by_json[k]: build(v, cls.openapi_types[by_json[k]], f"{path}.{k}") for k, v in data.items()}
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path}: {type_name}: {exc}") from exc


def _labels_match(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def check_objects(docs: dict[str, tuple[dict, str | None]]) -> dict[str, Any]:
    """Build each document into its model, then check that the objects fit together. Returns the models."""
    models = {}
    for filename, (doc, type_name) in docs.items():
        if type_name is not None:
            models[filename] = build(doc, type_name, filename)
    dep = docs["deployment.yaml"][0]
    pod = dep["spec"]["template"]
    if not _labels_match(dep["spec"]["selector"]["matchLabels"], pod["metadata"].get("labels") or {}):
        raise ConfigError("deployment.yaml: spec.selector.matchLabels does not select the pod template's labels")
    container = pod["spec"]["containers"][0]
    port_names = {p.get("name") for p in container.get("ports", [])}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        get = (container.get(probe) or {}).get("httpGet")
        if not get:
            raise ConfigError(f"deployment.yaml: container {container['name']} has no {probe}.httpGet")
        if get["port"] not in port_names | {8000}:
            raise ConfigError(f"deployment.yaml: {probe} port {get['port']} is not a container port")
    svc = docs["service.yaml"][0]
    if not _labels_match(svc["spec"]["selector"], pod["metadata"]["labels"]):
        raise ConfigError("service.yaml: spec.selector does not select the Deployment's pods")
    for p in svc["spec"]["ports"]:
        if p["targetPort"] not in port_names:
            raise ConfigError(f"service.yaml: targetPort {p['targetPort']} is not a container port name")
    if "servicemonitor.yaml" in docs:
        mon = docs["servicemonitor.yaml"][0]
        if (mon.get("apiVersion"), mon.get("kind")) != ("monitoring.coreos.com/v1", "ServiceMonitor"):
            raise ConfigError("servicemonitor.yaml: expected apiVersion monitoring.coreos.com/v1, kind ServiceMonitor")
        if not _labels_match(mon["spec"]["selector"]["matchLabels"], svc["metadata"].get("labels") or {}):
            raise ConfigError("servicemonitor.yaml: selector does not match the Service's labels")
        for ep in mon["spec"]["endpoints"]:
            if ep["port"] not in {p["name"] for p in svc["spec"]["ports"]}:
                raise ConfigError(f"servicemonitor.yaml: endpoint port {ep['port']} is not a Service port name")
    if "hpa.yaml" in docs:
        ref = docs["hpa.yaml"][0]["spec"]["scaleTargetRef"]
        if (ref["kind"], ref["name"]) != ("Deployment", dep["metadata"]["name"]):
            raise ConfigError("hpa.yaml: scaleTargetRef does not name the Deployment")
    if "inferenceservice.yaml" in docs:
        model = docs["inferenceservice.yaml"][0]["spec"]["predictor"]["model"]
        if model["modelFormat"]["name"] != "triton" or model.get("protocolVersion") != "v2":
            raise ConfigError("inferenceservice.yaml: predictor.model must be modelFormat triton, protocolVersion v2")
    return models
