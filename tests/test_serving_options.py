"""Serving settings (repogen.repository.serving_options): TOML/CLI parsing, rendering, and the checks."""

from __future__ import annotations

import importlib.util
import json
import sys
import types
from pathlib import Path

import pytest

from repogen.errors import ConfigError
from repogen.repository.config import (EngineDesc, TensorDesc, config_context, cross_check, derive_max_batch,
                                   parse_config, render_and_check)
from repogen.repository.serving_options import CudaGraphSpec, VersionPolicy, parse_version_policy
from repogen.build.spec import EXAMPLE_DIR, DynamicBatching, InstanceGroup, ModelSpec, spec_from_table

ENGINE = EngineDesc([TensorDesc("x", "float32", (-1, 3, -1, -1))], [TensorDesc("y", "float32", (-1, 5))],
                    [{"x": ((1, 3, 16, 16), (2, 3, 32, 32), (4, 3, 64, 64))},
                     {"x": ((5, 3, 16, 16), (16, 3, 32, 32), (16, 3, 64, 64))}])


def render(target: str = "tensorrt", cc: dict | None = None, **kw):
    s = ModelSpec(source=Path("unused"), name="m", **kw)
    mbs = derive_max_batch(ENGINE, s.max_batch_size, s.instance_groups)
    ctx = config_context(name="m", target=target, engine=ENGINE, max_batch_size=mbs, spec=s,
                         default_kind="KIND_GPU" if target == "tensorrt" else "KIND_CPU", labels_filename=None,
                         cc_model_filenames=cc)
    return render_and_check(template=f"{target}.pbtxt.j2", context=ctx, engine=ENGINE, name="m", target=target,
                            version_folder="1")


def check(text: str, target: str = "tensorrt", version: str = "1") -> None:
    cross_check(parse_config(text, "t"), ENGINE, name="m", target=target, version_folder=version)


def test_toml_keys_parse() -> None:
    s = spec_from_table({"source": "@example", "cpu_threads": 3, "execution_context_allocation_strategy":
                         "on_profile_change", "version_policy": {"specific": [1, 2]}, "response_cache": True,
                         "cuda_graphs": {"batch_sizes": [1, 8], "inputs": {"image": [3, 32, 32]}},
                         "dynamic_batching": False}, Path.cwd(), "spec")
    assert s.cpu_threads == 3 and s.execution_context_allocation_strategy == "on_profile_change"
    assert s.version_policy == VersionPolicy("specific", versions=[1, 2]) and s.response_cache
    assert s.cuda_graphs and s.cuda_graph_spec == CudaGraphSpec([1, 8], {"image": [3, 32, 32]})
    assert s.dynamic_batching is not None and not s.dynamic_batching.enabled
    assert parse_version_policy("latest:2", "--version-policy") == VersionPolicy("latest", latest=2)
    assert parse_version_policy("all", "v").kind == "all"


@pytest.mark.parametrize("key,value,message", [
    ("cpu_threads", 0, r"spec.cpu_threads: expected an integer >= 1, got 0"),
    ("cpu_threads", True, r"cpu_threads: expected an integer"),
    ("execution_context_allocation_strategy", "dynamic", r"'dynamic' is not one of static, on_profile_change"),
    ("version_policy", {"newest": 1}, r"version_policy: expected \"all\""),
    ("version_policy", "specific:", r"is not all, latest\[:N\] or specific"),
    ("response_cache", "yes", r"response_cache: expected true or false"),
    ("cuda_graphs", {"sizes": [1]}, r"cuda_graphs: unknown key 'sizes'"),
    ("cuda_graphs", {"batch_sizes": []}, r"batch_sizes: expected a non-empty list"),
])
def test_toml_keys_refused(key: str, value, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        spec_from_table({"source": "@example", key: value}, Path.cwd(), "spec")


def test_dynamic_batching_defaults() -> None:
    _, cfg = render("paddle")
    assert cfg.HasField("dynamic_batching") and not cfg.dynamic_batching.preferred_batch_size  # never for Python
    _, cfg = render("tensorrt")  # two profiles: each profile's opt batch
    assert list(cfg.dynamic_batching.preferred_batch_size) == [2, 16]
    _, cfg = render("tensorrt", instance_groups=[InstanceGroup(1, "KIND_GPU", [0], [0])])
    assert cfg.max_batch_size == 4 and not cfg.dynamic_batching.preferred_batch_size  # one profile in use
    text, cfg = render("tensorrt", dynamic_batching=DynamicBatching(enabled=False))
    assert not cfg.HasField("dynamic_batching") and "dynamic_batching" not in text


def test_plan_settings_render_and_check() -> None:
    text, cfg = render("tensorrt", execution_context_allocation_strategy="on_profile_change",
                       version_policy=VersionPolicy("latest", latest=2), response_cache=True, cuda_graphs=True,
                       cuda_graph_spec=CudaGraphSpec([1, 8], {"x": [3, 64, 64]}),
                       cc={"9.0": "model_sm90.plan", "8.9": "model_sm89.plan"})
    assert cfg.parameters["execution_context_allocation_strategy"].string_value == "ON_PROFILE_CHANGE"
    assert cfg.version_policy.latest.num_versions == 2 and cfg.response_cache.enable
    assert cfg.optimization.cuda.graphs
    assert [(g.batch_size, list(g.input["x"].dim)) for g in cfg.optimization.cuda.graph_spec] == \
        [(1, [3, 64, 64]), (8, [3, 64, 64])]
    assert dict(cfg.cc_model_filenames) == {"8.9": "model_sm89.plan", "9.0": "model_sm90.plan"}
    # dims default to the first profile's opt
    _, cfg = render("tensorrt", cuda_graphs=True, cuda_graph_spec=CudaGraphSpec([2]))
    assert list(cfg.optimization.cuda.graph_spec[0].input["x"].dim) == [3, 32, 32]
    # one plan: default_model_filename says it all
    _, cfg = render("tensorrt", cc={"9.0": "model.plan"})
    assert not cfg.cc_model_filenames
    _, cfg = render("paddle", version_policy=VersionPolicy("all"), response_cache=True,
                    execution_context_allocation_strategy="static")
    assert cfg.version_policy.HasField("all") and cfg.response_cache.enable and not cfg.parameters


def test_settings_refused_by_the_checker() -> None:
    text, _ = render("tensorrt", cuda_graphs=True, cuda_graph_spec=CudaGraphSpec([2]),
                     version_policy=VersionPolicy("specific", versions=[1]))
    with pytest.raises(ConfigError, match=r"specific \[2\] does not include version 1"):
        check(text.replace("versions: [ 1 ]", "versions: [ 2 ]"))
    with pytest.raises(ConfigError, match=r"graph_spec\[0\] \(x \[2, 3, 128, 128\]\) fits no optimisation profile"):
        check(text.replace("dim: [ 3, 32, 32 ]", "dim: [ 3, 128, 128 ]"))
    with pytest.raises(ConfigError, match=r"graph_spec\[0\] batch_size 32 is outside 1..16"):
        check(text.replace("batch_size: 2", "batch_size: 32"))
    paddle, _ = render("paddle")
    with pytest.raises(ConfigError, match=r"execution_context_allocation_strategy only applies to TensorRT"):
        check(paddle + 'parameters { key: "execution_context_allocation_strategy" value { string_value: "STATIC" } }\n',
              "paddle")
    with pytest.raises(ConfigError, match=r"'LAZY' is not one of STATIC, ON_PROFILE_CHANGE"):
        check(text + 'parameters { key: "execution_context_allocation_strategy" value { string_value: "LAZY" } }\n')
    with pytest.raises(ConfigError, match=r"cuda_graphs.inputs names 'z'"):
        render("tensorrt", cuda_graphs=True, cuda_graph_spec=CudaGraphSpec([1], {"z": [1]}))


def test_cli_options(tmp_path: Path) -> None:
    from repogen.cli import build_parser

    args = build_parser().parse_args(["build", "--out", str(tmp_path), "--cpu-threads", "2", "--no-dynamic-batching",
                                      "--version-policy", "specific:1,3", "--response-cache",
                                      "--execution-context-allocation-strategy", "static",
                                      "--cuda-graph-batch-sizes", "1,4"])
    from repogen.build.spec import specs_from_options
    from repogen.cli.build import build_options

    (s,) = specs_from_options(build_options(args))
    assert s.cpu_threads == 2 and not s.dynamic_batching.enabled and s.response_cache
    assert s.version_policy == VersionPolicy("specific", versions=[1, 3])
    assert s.execution_context_allocation_strategy == "static" and s.cuda_graph_spec.batch_sizes == [1, 4]
    spec_file = tmp_path / "r.toml"
    spec_file.write_text('[[model]]\nsource = "@example"\n')
    args = build_parser().parse_args(["build", "--out", str(tmp_path), "--spec", str(spec_file), "--cpu-threads", "2"])
    with pytest.raises(ConfigError, match=r"--cpu-threads cannot be combined with --spec"):
        specs_from_options(build_options(args))


def _load_model_py(path: Path) -> types.ModuleType:
    fake = types.ModuleType("triton_python_backend_utils")
    sys.modules["triton_python_backend_utils"] = fake
    try:
        spec = importlib.util.spec_from_file_location(f"model_py_{id(path)}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop("triton_python_backend_utils", None)
    return module


def test_paddle_cpu_threads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from repogen.build.flow import build_repository

    specs = [ModelSpec(source=EXAMPLE_DIR, name="auto", target="paddle", check=False),
             ModelSpec(source=EXAMPLE_DIR, name="fixed", target="paddle", check=False, cpu_threads=3)]
    build_repository(specs, tmp_path / "repo", progress=False)
    auto = _load_model_py(tmp_path / "repo" / "auto" / "1" / "model.py")
    fixed = _load_model_py(tmp_path / "repo" / "fixed" / "1" / "model.py")
    assert auto.CPU_THREADS is None and fixed.CPU_THREADS == 3
    monkeypatch.setattr(auto.os, "sched_getaffinity", lambda pid: set(range(8)))

    def config(*groups):
        return {"model_config": json.dumps({"instance_group": list(groups)})}
    assert auto._auto_cpu_threads(config({"count": 1, "kind": "KIND_CPU"})) == 8
    assert auto._auto_cpu_threads(config({"count": 2, "kind": "KIND_CPU"}, {"count": 1, "kind": "KIND_CPU"})) == 2
    assert auto._auto_cpu_threads(config({"count": 3, "kind": "KIND_CPU"}, {"count": 4, "kind": "KIND_GPU"})) == 2
    assert auto._auto_cpu_threads(config({"count": 16, "kind": "KIND_CPU"})) == 1
