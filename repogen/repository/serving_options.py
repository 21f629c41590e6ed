"""Serving settings a Triton engineer sets per model, beyond I/O: typed, checked, from TOML or the CLI.

- ``dynamic_batching``: on by default for every model that can batch (``dynamic_batching {}``); ``false``
  turns it off. Preferred batch sizes are only defaulted for TensorRT plans with several profiles (each
  profile's opt batch, the sizes its kernels were tuned for); never for Python-backend models, where a
  preferred size only makes the batcher wait.
- ``cpu_threads``: Paddle Inference math threads per instance of the paddle target; default (None) is
  computed by model.py when the instance starts: usable cores // CPU instances of the model.
- ``execution_context_allocation_strategy``: TensorRT backend parameter (``STATIC`` / ``ON_PROFILE_CHANGE``).
- ``version_policy``: ``"all"``, ``{latest = N}`` or ``{specific = [..]}``.
- ``response_cache``: ``response_cache { enable: true }`` (the server also needs ``--cache-config``).
- ``cuda_graphs``: ``true`` (graphs at the opt shapes, Triton's default) or a table
  ``{batch_sizes = [1, 4, 8], inputs = {x = [3, 224, 224]}}``: one ``graph_spec`` per batch size, dynamic
  non-batch dims from the table or the first profile's opt.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from repogen.errors import ConfigError

ALLOCATION_STRATEGIES = {"static": "STATIC", "on_profile_change": "ON_PROFILE_CHANGE"}
KEYS = {"cpu_threads", "execution_context_allocation_strategy", "version_policy", "response_cache",
        "instance_memory_mb"}


@dataclass
class VersionPolicy:
    kind: str  # "all" | "latest" | "specific"
    latest: int = 1
    versions: list[int] = field(default_factory=list)


@dataclass
class CudaGraphSpec:
    batch_sizes: list[int] = field(default_factory=list)
    inputs: dict[str, list[int]] = field(default_factory=dict)  # non-batch dims per input


def _int(value: Any, where: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{where}: expected an integer >= {minimum}, got {value!r}")
    return value


def _ints(value: Any, where: str, minimum: int = 1) -> list[int]:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where}: expected a non-empty list of integers, got {value!r}")
    return [_int(v, f"{where}[{i}]", minimum) for i, v in enumerate(value)]


def parse_version_policy(value: Any, where: str) -> VersionPolicy:
    """TOML: "all" | "latest" | {latest = N} | {specific = [1, 3]}; CLI: all | latest:N | specific:1,3."""
    if isinstance(value, str):
        head, _, rest = value.partition(":")
        if head == "all" and not rest:
            return VersionPolicy("all")
        if head == "latest":
            try:
                return VersionPolicy("latest", latest=_int(int(rest) if rest else 1, where))
            except ValueError:
                pass
        if head == "specific" and rest:
            try:
                return VersionPolicy("specific", versions=_ints([int(v) for v in rest.split(",")], where))
            except ValueError:
                pass
        raise ConfigError(f"{where}: {value!r} is not all, latest[:N] or specific:V[,V...]")
    if isinstance(value, dict) and len(value) == 1:
        (key, v), = value.items()
        if key == "latest":
            return VersionPolicy("latest", latest=_int(v, f"{where}.latest"))
        if key == "specific":
            return VersionPolicy("specific", versions=_ints(v, f"{where}.specific"))
    raise ConfigError(f"{where}: expected \"all\", {{latest = N}} or {{specific = [V, ...]}}, got {value!r}")


def parse_cuda_graphs(value: Any, where: str) -> tuple[bool, CudaGraphSpec | None]:
    if isinstance(value, bool):
        return value, None
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected true or false, or a table {{batch_sizes = [..], inputs = {{..}}}}, "
                          f"got {value!r}")
    unknown = sorted(set(value) - {"batch_sizes", "inputs"})
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (allowed: batch_sizes, inputs)")
    if "batch_sizes" not in value:
        raise ConfigError(f"{where}: needs batch_sizes (the batch sizes to capture CUDA graphs for)")
    inputs = value.get("inputs", {})
    if not isinstance(inputs, dict):
        raise ConfigError(f"{where}.inputs: expected a table input = [non-batch dims]")
    return True, CudaGraphSpec(_ints(value["batch_sizes"], f"{where}.batch_sizes"),
                               {k: _ints(v, f"{where}.inputs.{k}") for k, v in inputs.items()})


def apply_table(spec: Any, t: dict, where: str) -> None:
    """The keys of ``KEYS`` in one ``[[model]]`` table onto ``spec``."""
    if "cpu_threads" in t:
        spec.cpu_threads = _int(t["cpu_threads"], f"{where}.cpu_threads")
    if "execution_context_allocation_strategy" in t:
        spec.execution_context_allocation_strategy = allocation_strategy(
            t["execution_context_allocation_strategy"], f"{where}.execution_context_allocation_strategy")
    if "version_policy" in t:
        spec.version_policy = parse_version_policy(t["version_policy"], f"{where}.version_policy")
    if "instance_memory_mb" in t:  # the pipelines' per-request pixel budget (repogen/build/budget.py)
        spec.instance_memory_mb = _int(t["instance_memory_mb"], f"{where}.instance_memory_mb")
    if "response_cache" in t:
        if not isinstance(t["response_cache"], bool):
            raise ConfigError(f"{where}.response_cache: expected true or false, got {t['response_cache']!r}")
        spec.response_cache = t["response_cache"]


def allocation_strategy(value: Any, where: str) -> str:
    key = str(value).lower() if isinstance(value, str) else None
    if key not in ALLOCATION_STRATEGIES:
        raise ConfigError(f"{where}: {value!r} is not one of {', '.join(ALLOCATION_STRATEGIES)}")
    return key


# -- CLI -----------------------------------------------------------------------------------------------------------

CLI_DESTS = ("cpu_threads", "no_dynamic_batching", "response_cache", "version_policy",
             "execution_context_allocation_strategy", "cuda_graphs", "cuda_graph_batch_sizes", "instance_memory_mb")


def given_cli_options(values: dict[str, Any]) -> list[str]:
    """The options of ``values`` (argparse dest -> value, what the user gave) as the user spelled them."""
    return [f"--{d.replace('_', '-')}" for d in CLI_DESTS if values.get(d)]


def apply_cli(spec: Any, values: dict[str, Any], make_batching: Callable[..., Any]) -> None:
    """Serving options given on the command line (argparse dest -> value) onto a spec, checked as the spec
    file's keys are."""
    if values.get("no_dynamic_batching"):
        spec.dynamic_batching = make_batching(enabled=False)
    if values.get("cpu_threads") is not None:
        spec.cpu_threads = _int(values["cpu_threads"], "--cpu-threads")
    if values.get("execution_context_allocation_strategy"):
        spec.execution_context_allocation_strategy = allocation_strategy(
            values["execution_context_allocation_strategy"], "--execution-context-allocation-strategy")
    if values.get("version_policy"):
        spec.version_policy = parse_version_policy(values["version_policy"], "--version-policy")
    if values.get("response_cache"):
        spec.response_cache = True
    if values.get("instance_memory_mb") is not None:
        spec.instance_memory_mb = _int(values["instance_memory_mb"], "--instance-memory-mb")
    if values.get("cuda_graphs"):
        spec.cuda_graphs = True
    if values.get("cuda_graph_batch_sizes"):
        text = values["cuda_graph_batch_sizes"]
        try:
            sizes = [int(x) for x in text.split(",")]
        except ValueError:
            raise ConfigError(f"--cuda-graph-batch-sizes {text}: expected B,B,...") from None
        spec.cuda_graphs = True
        spec.cuda_graph_spec = CudaGraphSpec(_ints(sizes, "--cuda-graph-batch-sizes"))


# -- config.pbtxt context ------------------------------------------------------------------------------------------

def default_preferred_sizes(target: str, engine: Any, max_batch_size: int, groups: list) -> list[int]:
    """Each profile's opt batch for a plan with several profiles (the sizes its kernels were tuned for);
    nothing otherwise: with one profile the batcher's largest batch is already right, and for a Python
    model a preferred size only makes the batcher wait for a size that runs no faster."""
    from repogen.repository import profile_use
    if target != "tensorrt" or len(engine.profiles) < 2:
        return []
    used = sorted({i for s in profile_use.group_profile_sets(groups, len(engine.profiles)) for i in s})
    batch_inputs = [t.name for t in engine.inputs if t.shape and t.shape[0] == -1]
    sizes = sorted({int(engine.profiles[i][n][1][0]) for i in used for n in batch_inputs if n in engine.profiles[i]})
    sizes = [b for b in sizes if 1 <= b <= max_batch_size]
    return sizes if len(sizes) > 1 else []


def _graph_specs(spec: Any, engine: Any, max_batch_size: int) -> list[dict[str, Any]]:
    g = spec.cuda_graph_spec
    if g is None:
        return []
    unknown = sorted(set(g.inputs) - {t.name for t in engine.inputs})
    if unknown:
        raise ConfigError(f"{spec.name}: cuda_graphs.inputs names {unknown[0]!r}, which is not a model input")
    opt0 = engine.profiles[0] if engine.profiles else {}
    out = []
    for b in g.batch_sizes:
        inputs = []
        for t in engine.inputs:
            shape = list(t.shape[1:] if max_batch_size > 0 else t.shape)
            given = g.inputs.get(t.name)
            if given is not None:
                if len(given) != len(shape):
                    raise ConfigError(f"{spec.name}: cuda_graphs.inputs.{t.name} has rank {len(given)}, the input's "
                                      f"{'non-batch ' if max_batch_size > 0 else ''}rank is {len(shape)}")
                dims = list(given)
            else:
                off = 1 if max_batch_size > 0 else 0
                opt = opt0.get(t.name, (None, None, None))[1]
                dims = [d if d >= 0 else (int(opt[i + off]) if opt is not None else 1) for i, d in enumerate(shape)]
            inputs.append({"name": t.name, "dims": dims or [1]})
        out.append({"batch_size": b if max_batch_size > 0 else 0, "inputs": inputs})
    return out


def context(spec: Any, target: str, engine: Any, max_batch_size: int,
            cc_model_filenames: dict[str, str] | None = None) -> dict[str, Any]:
    """The serving settings for a config template (plain data)."""
    db = spec.dynamic_batching
    if max_batch_size > 0 and (db is None or db.enabled):
        preferred = (list(db.preferred_batch_size) if db is not None else
                     default_preferred_sizes(target, engine, max_batch_size, spec.instance_groups or []))
        batching = {"preferred_batch_size": preferred,
                    "max_queue_delay_microseconds": db.max_queue_delay_microseconds if db is not None else 0}
    elif db is not None and db.enabled:  # asked for on a model that cannot batch: the checker says so
        batching = {"preferred_batch_size": list(db.preferred_batch_size),
                    "max_queue_delay_microseconds": db.max_queue_delay_microseconds}
    else:
        batching = None
    vp = spec.version_policy
    plan = target == "tensorrt"
    return {
        "dynamic_batching": batching,
        "cuda_graph_specs": _graph_specs(spec, engine, max_batch_size) if plan and spec.cuda_graphs else [],
        "parameters": ({"execution_context_allocation_strategy":
                        ALLOCATION_STRATEGIES[spec.execution_context_allocation_strategy]}
                       if plan and spec.execution_context_allocation_strategy else {}),
        "version_policy": None if vp is None else {"kind": vp.kind, "latest": vp.latest, "versions": vp.versions},
        "response_cache": bool(spec.response_cache),
        # only when plans for several GPUs exist; one plan is default_model_filename
        "cc_model_filenames": dict(sorted((cc_model_filenames or {}).items()))
        if plan and len(cc_model_filenames or {}) > 1 else {},
    }


def paddle_target_notes(spec: Any) -> list[str]:
    """Settings that only mean something for a plan, left out of a paddle-target config."""
    notes = []
    if spec.execution_context_allocation_strategy:
        notes.append(f"{spec.name}: execution_context_allocation_strategy applies to TensorRT plans only; left out "
                     "of the paddle config")
    return notes


def check(config: Any, engine: Any, target: str, version_folder: str, add: Callable[[str], None]) -> None:
    """Cross-check the settings above in a parsed config (bundled or user template)."""
    from repogen.repository import profile_use
    mbs = config.max_batch_size
    strategy = config.parameters.get("execution_context_allocation_strategy")
    if strategy is not None:
        if target != "tensorrt":
            add("parameters execution_context_allocation_strategy only applies to TensorRT plans")
        elif strategy.string_value not in ALLOCATION_STRATEGIES.values():
            add(f"parameters execution_context_allocation_strategy {strategy.string_value!r} is not one of "
                f"{', '.join(ALLOCATION_STRATEGIES.values())}")
    if config.HasField("version_policy") and config.version_policy.HasField("specific"):
        versions = list(config.version_policy.specific.versions)
        if version_folder.isdigit() and int(version_folder) not in versions:
            add(f"version_policy specific {versions} does not include version {version_folder}, the one this "
                "repository holds: Triton would serve nothing")
    if config.HasField("version_policy") and config.version_policy.HasField("latest") \
            and config.version_policy.latest.num_versions < 1:
        add("version_policy latest num_versions must be >= 1")
    specs = list(config.optimization.cuda.graph_spec)
    if specs and target != "tensorrt":
        add("optimization.cuda.graph_spec only applies to TensorRT plans")
    for i, g in enumerate(specs if target == "tensorrt" else []):
        if mbs > 0 and not 1 <= g.batch_size <= mbs:
            add(f"optimization.cuda.graph_spec[{i}] batch_size {g.batch_size} is outside 1..{mbs}")
        shapes: dict[str, list[int]] = {}
        for key, value in g.input.items():
            t = engine.input(key)
            if t is None:
                add(f"optimization.cuda.graph_spec[{i}] input {key!r} is not an engine input")
                continue
            shapes[key] = ([int(g.batch_size)] if mbs > 0 else []) + [int(d) for d in value.dim]
        if engine.profiles and shapes and not any(profile_use.fits(p, shapes) for p in engine.profiles):
            shown = ", ".join(f"{k} {v}" for k, v in shapes.items())
            add(f"optimization.cuda.graph_spec[{i}] ({shown}) fits no optimisation profile: no graph can be captured")
    for cc, filename in config.cc_model_filenames.items():
        if target != "tensorrt":
            add("cc_model_filenames only applies to TensorRT plans")
            break
        if not all(part.isdigit() for part in cc.split(".")) or not filename or "/" in filename:
            add(f"cc_model_filenames {cc!r}: {filename!r} must map a compute capability (8.9) to a file name")
