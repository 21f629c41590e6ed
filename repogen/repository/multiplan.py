"""``repogen build --add-plan``: one model folder, TensorRT plans for several GPU architectures.

A TensorRT plan loads only on the compute capability (and TensorRT version) it was built on. Triton's
``cc_model_filenames`` maps a compute capability ("8.9") to a file name inside the version folder, and
``default_model_filename`` names the file used on any other GPU. So:

- the first build writes ``model.plan`` (the default, unchanged: existing repositories keep working);
- each plan added with ``--add-plan`` (run on a machine with the other GPU) is ``model_<cc>.plan``
  (``model_9.0.plan``), and ``config.pbtxt`` gets ``cc_model_filenames`` for every plan, the first one
  included, so each GPU Triton runs on picks its own plan.

What an added plan must share with the folder (one config.pbtxt and one server load them all): the Paddle
source files (sha256), precision, I/O names/dtypes/shapes, profiles, max batch size, serving settings (the
re-rendered config must equal the existing one apart from ``cc_model_filenames``; the existing config is also
cross-checked against the new engine with the build's own checker), and the TensorRT version. A capability
already present is replaced only with ``--force``. The folder is rebuilt in the staging area (old plans hard
linked, never written) and swapped in whole, so a failure leaves it byte-identical.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable

from repogen.errors import ConfigError
from repogen.repository import ownership
from repogen.repository.config import EngineDesc, cross_check, parse_config
from repogen.repository.layout import CONFIG, MANIFEST, PLAN_FILE
from repogen.repository.manifest import dumps, sha256

#: manifest keys an added plan must share with the plans already in the folder
_SHARED = ("target", "precision", "max_batch_size", "inputs", "outputs", "profiles")


def plan_filename(cc: str) -> str:
    """The file an added plan for compute capability ``cc`` is stored as (the first plan is model.plan)."""
    return f"model_{cc}.plan"


def existing_plans(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """file name -> {"compute_capability", "version"} for the plans a manifest lists (old single-plan
    manifests included: their one plan is model.plan)."""
    trt = manifest.get("tensorrt") or {}
    plans = trt.get("plans")
    if isinstance(plans, dict) and plans:
        return {str(f): dict(v) for f, v in plans.items()}
    cc = trt.get("compute_capability")
    return {PLAN_FILE: {"compute_capability": cc, "version": trt.get("version")}} if trt else {}


def check_destination(out: Path, name: str, version: int) -> ownership.Existing:
    """The repogen-built TensorRT model folder (with ``version``) a plan is added to; ConfigError otherwise."""
    dest = out / name
    existing = ownership.owned_model(dest, name)
    if existing is None:
        raise ConfigError(f"{dest}: --add-plan adds a plan to a TensorRT model folder repogen built; there is none "
                          "here (build it first without --add-plan)")
    if existing.manifest.get("target") != "tensorrt":
        raise ConfigError(f"{dest}: --add-plan needs a TensorRT model; this one is target "
                          f"{existing.manifest.get('target')!r}")
    if version not in existing.versions:
        have = ", ".join(map(str, existing.versions)) or "none"
        raise ConfigError(f"{dest}: --add-plan adds to version {version}, which does not exist (versions: {have}); "
                          "use --version-folder")
    return existing


def merge(existing: ownership.Existing, version: int, new_manifest: dict[str, Any], *, force: bool,
          engine: EngineDesc, render: Callable[[dict[str, str]], str]) -> tuple[str, dict[str, Any], str]:
    """Check the new plan against the folder; returns (plan file name, merged manifest, merged config text).

    ``new_manifest`` describes the new build (its ``tensorrt`` block holds this GPU's version and capability);
    ``render`` renders this build's config.pbtxt for a given cc -> file map."""
    dest = existing.path
    old = existing.manifest
    trt = new_manifest.get("tensorrt") or {}
    cc, trt_version = trt.get("compute_capability"), trt.get("version")
    if not cc:
        raise ConfigError(f"{dest}: --add-plan: nvidia-smi reported no compute capability for the plan just built, "
                          "so it cannot be listed in cc_model_filenames")
    plans = existing_plans(old)
    by_cc = {str(v.get("compute_capability")): f for f, v in plans.items()}
    versions = {str(v.get("version")) for v in plans.values()}
    if versions - {str(trt_version)}:
        raise ConfigError(f"{dest}: the existing plans were built with TensorRT {', '.join(sorted(versions))}, this "
                          f"one with TensorRT {trt_version}; one Triton server loads every plan of a model, so all "
                          "must come from the same TensorRT version")
    if cc in by_cc and not force:
        raise ConfigError(f"{dest}: version {version} already has a plan for compute capability {cc} "
                          f"({by_cc[cc]}); pass --force to replace it")
    new = json.loads(json.dumps(new_manifest))  # plain JSON types, as the old manifest was read back
    differ = [k for k in _SHARED if old.get(k) != new.get(k)]
    if old.get("source", {}).get("files") != new.get("source", {}).get("files"):
        differ.append("source files (sha256)")
    if differ:
        raise ConfigError(f"{dest}: the new plan differs from the model's existing plans in {', '.join(differ)}; "
                          "an added plan must be the same model built with the same options on another GPU")
    # the existing config must serve the new engine: the build's own cross-check
    config_path = dest / CONFIG
    where = f"{config_path} (existing) against the plan for {cc}"
    cross_check(parse_config(config_path.read_text(encoding="utf-8"), where), engine, name=old["model_name"],
                target="tensorrt", version_folder=str(version), where=where)
    filename = by_cc.get(cc, plan_filename(cc))
    plans[filename] = {"compute_capability": cc, "version": trt_version}
    cc_map = {str(v["compute_capability"]): f for f, v in sorted(plans.items())}
    text = render(cc_map)
    _check_other_versions(existing, version, cc_map, text)
    _check_same_config(config_path, text, cc_map)
    merged = dict(new)
    merged["tensorrt"] = dict(old.get("tensorrt") or {}) | {"cc_model_filenames": dict(sorted(cc_map.items())),
                                                            "plans": dict(sorted(plans.items()))}
    return filename, merged, text


def served_versions(config: Any, versions: list[int]) -> list[int]:
    """The version folders Triton loads under ``config``'s version_policy (default: the latest one)."""
    policy = config.version_policy
    if policy.HasField("all"):
        return list(versions)
    if policy.HasField("specific"):
        return [v for v in versions if v in set(policy.specific.versions)]
    n = policy.latest.num_versions if policy.HasField("latest") else 1
    return sorted(versions)[-max(n, 1):]


def _check_other_versions(existing: ownership.Existing, version: int, cc_map: dict[str, str],
                          config_text: str) -> None:
    # cc_model_filenames applies to every version folder Triton loads: one without one of the files would
    # fail to load on that GPU. Versions the policy does not load (older ones, by default) may lack them.
    config = parse_config(config_text, str(existing.path / CONFIG))
    for v in served_versions(config, existing.versions):
        missing = [f for f in cc_map.values() if v != version and not (existing.path / str(v) / f).is_file()]
        if missing:
            raise ConfigError(f"{existing.path}: version {v} has no {', '.join(missing)}, and the version_policy "
                              f"serves it: cc_model_filenames applies to every version Triton loads, so add the "
                              f"plan to version {v} as well first, or build the model under another --name")


def _check_same_config(config_path: Path, text: str, cc_map: dict[str, str]) -> None:
    old = parse_config(config_path.read_text(encoding="utf-8"), str(config_path))
    new = parse_config(text, f"config.pbtxt for {config_path.parent.name}")
    old.ClearField("cc_model_filenames")
    new.ClearField("cc_model_filenames")
    if old != new:
        fields = sorted({f.name for f, _ in old.ListFields()} ^ {f.name for f, _ in new.ListFields()}
                        | {f.name for f, v in new.ListFields() if getattr(old, f.name) != v})
        raise ConfigError(f"{config_path}: this build's serving settings differ from the existing config in "
                          f"{', '.join(fields)}; pass the same options as the first build (one config.pbtxt "
                          "serves every plan)")


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)  # the kept plans are never written: linked (or copied), never modified in place
    except OSError:
        shutil.copy2(src, dst)


def write(existing: ownership.Existing, version: int, staged: Path, *, filename: str, plan: bytes,
          config_text: str, manifest: dict[str, Any]) -> list[str]:
    """The whole model folder in ``staged``: old files linked, the new plan, config.pbtxt and repogen.json."""
    from repogen.repository import staging
    shutil.copytree(existing.path, staged, symlinks=True, copy_function=_link_or_copy)
    target = staged / str(version) / filename
    if target.exists() or target.is_symlink():
        target.unlink()  # --force: drop the link to the replaced plan; the original file is not touched
    target.write_bytes(plan)
    staging.pause_point("copy")
    manifest = json.loads(json.dumps(manifest))
    manifest["tensorrt"]["plans"] = {f: v | {"sha256": sha256(staged / str(version) / f)}
                                     for f, v in manifest["tensorrt"]["plans"].items()
                                     if (staged / str(version) / f).is_file()}
    (staged / CONFIG).unlink()
    (staged / CONFIG).write_text(config_text, encoding="utf-8")
    # the ownership mark lists every file repogen wrote here, the added plan and the new config included
    files = sorted(f.relative_to(staged).as_posix() for f in staged.rglob("*") if f.is_file())
    manifest["files"] = {rel: sha256(staged / rel) for rel in files if rel != MANIFEST}
    (staged / MANIFEST).unlink()
    (staged / MANIFEST).write_text(dumps(manifest), encoding="utf-8")
    return files
