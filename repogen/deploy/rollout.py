"""Rolling a new model version onto running Triton servers with no failed request.

- **poll** (``--model-control-mode=poll``): publishing is the rollout. ``repogen publish`` writes the new
  version folder before ``config.pbtxt`` (repogen.storage.publish); Triton notices on its next poll, loads the
  new version and unloads the old one only once the new one is ready. :func:`wait_for_version` watches it.
- **explicit** (``--model-control-mode=explicit``): :func:`load_new_then_unload_old` drives Triton's
  repository API: load with a config override that serves the old *and* the new versions (unversioned
  requests go to the newest ready version), then load again with the configuration served before, whose
  version policy (``latest 1`` by default) drops the old one. At every instant a ready version exists. The
  new version must keep the model's inputs and outputs (a changed signature is a new model name).
"""

from __future__ import annotations

import json
import time
import urllib.error
from typing import Any

from repogen.errors import ServerError
from repogen.harness.server import http_request

LOAD_TIMEOUT_S = 300.0


def _request(url: str, method: str, path: str, body: dict | None = None, timeout: float = 10.0) -> tuple[int, str]:
    try:
        return http_request(url, method, path, body, timeout)
    except (OSError, urllib.error.URLError) as exc:
        raise ServerError(f"{url}: cannot reach Triton ({exc})") from exc


def ready_versions(url: str, model: str) -> list[int]:
    status, text = _request(url, "POST", "/v2/repository/index", {})
    if status != 200:
        raise ServerError(f"{url}: repository index failed: HTTP {status} {text}")
    return sorted(int(r["version"]) for r in json.loads(text or "[]")
                  if r.get("name") == model and r.get("state") == "READY" and str(r.get("version", "")).isdigit())


def _load(url: str, model: str, config: dict[str, Any] | None) -> None:
    body = {"parameters": {"config": json.dumps(config)}} if config is not None else {}
    status, text = _request(url, "POST", f"/v2/repository/models/{model}/load", body, timeout=LOAD_TIMEOUT_S)
    if status != 200:
        try:
            text = json.loads(text).get("error", text)
        except ValueError:
            pass
        raise ServerError(f"{url}: loading {model}: {text}")


def load_new_then_unload_old(url: str, model: str, new_version: int) -> dict[str, Any]:
    """Explicit-mode rollout on one server (HTTP ``host:port``): the new version is loaded and ready before
    the old one is unloaded. Returns the versions served before, during and after."""
    before = ready_versions(url, model)
    status, text = _request(url, "GET", f"/v2/models/{model}/config")
    if status != 200:
        raise ServerError(f"{url}: {model} is not loaded ({text}); load it before rolling out a version")
    original = json.loads(text)
    both = dict(original, version_policy={"specific": {"versions": sorted(set(before) | {new_version})}})
    _load(url, model, both)  # old and new side by side
    during = ready_versions(url, model)
    if new_version not in during:
        raise ServerError(f"{url}: version {new_version} of {model} did not become ready (ready: {during})")
    # The configuration served before, version policy included, drops the old versions. A plain load would
    # not do: Triton keeps the override when the repository's files look unchanged.
    _load(url, model, original)
    expected = policy_versions(original, sorted(set(during)))
    if new_version not in expected:
        raise ServerError(f"{url}: the version_policy {model} was served with does not keep version {new_version} "
                          f"(it keeps {expected})")
    # Triton answers the load once the kept versions are ready; the others unload in the background
    deadline = time.monotonic() + LOAD_TIMEOUT_S
    after = ready_versions(url, model)
    while after != expected and time.monotonic() < deadline:
        time.sleep(0.1)
        after = ready_versions(url, model)
    if after != expected:
        raise ServerError(f"{url}: {model} serves {after} after the rollout, expected {expected}")
    return {"before": before, "during": during, "after": after}


def policy_versions(config: dict[str, Any], available: list[int]) -> list[int]:
    """The versions a Triton ``version_policy`` (JSON form) keeps out of ``available`` (default: latest 1)."""
    policy = config.get("version_policy") or {}
    if "all" in policy:
        return available
    if "specific" in policy:
        wanted = {int(v) for v in policy["specific"].get("versions", [])}
        return [v for v in available if v in wanted]
    n = int((policy.get("latest") or {}).get("num_versions", 1) or 1)
    return available[-n:]


def wait_for_version(url: str, model: str, version: int, timeout: float = 120.0, only: bool = True) -> list[int]:
    """Poll mode: wait until ``version`` is ready (and, with ``only``, the sole ready version)."""
    deadline = time.monotonic() + timeout
    seen: list[int] = []
    while time.monotonic() < deadline:
        seen = ready_versions(url, model)
        if version in seen and (not only or seen == [version]):
            return seen
        time.sleep(0.2)
    raise ServerError(f"{url}: {model} version {version} not served alone after {timeout:.0f} s (ready: {seen})")
