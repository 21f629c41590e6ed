"""Which op runs where, and why: TensorRT regions and Python remainder regions of one model.

Rules, per op of the cleaned graph (``passes.clean_graph``):

* no converter in repogen (or TensorRT can never express it) -> Python, with the registry's reason;
* a converter, but a TensorRT layer limit is exceeded at the profile's max shapes (observed by running the
  partitioned model once at each profile's min, opt and max input shapes): the limit each converter declares
  (repogen.trt.registry.limit_reason: NMS candidates > 5000, TopK k > 3840, ...);
* the converter refused the op (a ConversionError naming it) -> Python, with the converter's words;
* the TensorRT builder refused the region holding the op (``forced``) -> Python, with the builder's words;
* ops with no inputs (constants) belong to no region: every region that reads one gets its own copy.

Consecutive ops with one placement form a region; the tensors crossing region boundaries get stable readable
names (``<producer op>_<position>_<slot>``), their shapes come from the graph (dims that vary between the
observed runs are -1), and a TensorRT region's profile for such a tensor spans what the runs observed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from repogen.errors import ConfigError, ConversionError
from repogen.ir import Graph, Op
from repogen.partition.regions import Region
from repogen.partition.runtime import make_runner
from repogen.trt import registry
from repogen.verify.conversion import random_inputs


@dataclass
class Placement:
    position: int
    op_type: str
    place: str  # "tensorrt" | "python" | "const"
    reason: str | None = None  # why not TensorRT

    def to_json(self) -> dict[str, Any]:
        return {"position": self.position, "op": self.op_type, "place": self.place} | (
            {"reason": self.reason} if self.reason else {})


@dataclass
class Partition:
    cleaned: Graph
    placements: list[Placement]
    regions: list[Region]
    observed: dict[str, tuple] = field(default_factory=dict)  # value -> shape at profile 0's opt shapes

    @property
    def partitioned(self) -> bool:
        return any(p.place == "python" for p in self.placements)

    def summary(self, params: dict[str, int] | None = None) -> dict[str, Any]:
        """Per model: ops (and share of ops and of parameters) in TensorRT, and why each other op is not."""
        counted = [p for p in self.placements if p.place != "const"]
        trt = [p for p in counted if p.place == "tensorrt"]
        by_op = _params_by_op(self.cleaned, _param_sizes(self.cleaned))  # folded weights count, not the originals
        total = sum(by_op.values()) or 1
        in_trt = sum(n for pos, n in by_op.items() if self.placements[pos].place == "tensorrt")
        return {
            "ops": len(counted), "tensorrt_ops": len(trt),
            "tensorrt_op_share": round(len(trt) / max(1, len(counted)), 4),
            "parameters": int(sum(by_op.values())), "tensorrt_parameters": int(in_trt),
            "tensorrt_parameter_share": round(in_trt / total, 4) if sum(by_op.values()) else None,
            "not_tensorrt": [p.to_json() for p in counted if p.place != "tensorrt"],
            "regions": [{"kind": r.kind, "ops": len([i for i in r.ops if self.placements[i].place != "const"]),
                         "inputs": [n for n, _, _ in r.inputs], "outputs": [n for n, _, _ in r.outputs]}
                        for r in self.regions],
        }


def _param_sizes(g: Graph) -> dict[str, int]:
    sizes = {n: int(np.asarray(a).size) for n, a in g.params.items()}
    for b in g.blocks:
        for n, v in b.values.items():
            if v.const is not None and v.persistable and n not in sizes:
                sizes[n] = int(np.asarray(v.const).size)
    return sizes


def _params_by_op(g: Graph, sizes: dict[str, int]) -> dict[int, int]:
    """Parameter elements each op reads (a parameter read by several ops counts for the first)."""
    seen, out = set(), {}
    for pos, op in enumerate(g.ops):
        n = 0
        for name in _reads(g, op):
            if name in sizes and name not in seen:
                seen.add(name)
                n += sizes[name]
        out[pos] = n
    return out


def _reads(g: Graph, op: Op) -> list[str]:
    """Values an op reads, including those its control-flow blocks read from outside."""
    names = list(op.input_names())
    for bi in op.blocks:
        for inner in g.blocks[bi].ops:
            names += _reads(g, inner)
    return names


def _writes(g: Graph, op: Op) -> list[str]:
    names = list(op.output_names())
    for bi in op.blocks:
        for inner in g.blocks[bi].ops:
            names += _writes(g, inner)
    return names


# -- placement -----------------------------------------------------------------------------------------------------

def initial_placements(g: Graph, forced: dict[int, str] | None = None) -> list[Placement]:
    has_converter, why_unsupported = registry.has_converter, registry.why_unsupported
    out = []
    for pos, op in enumerate(g.ops):
        if forced and pos in forced:
            out.append(Placement(pos, op.type, "python", forced[pos]))
        elif not list(op.input_names()) and not op.blocks and has_converter(op.type):
            out.append(Placement(pos, op.type, "const"))
        elif not has_converter(op.type):
            why = why_unsupported(op.type)
            out.append(Placement(pos, op.type, "python", f"no TensorRT converter ({why})" if why
                                 else "repogen has no TensorRT converter for it"))
        else:
            out.append(Placement(pos, op.type, "tensorrt"))
    return out


# -- regions -------------------------------------------------------------------------------------------------------

@dataclass
class _Draft:
    kind: str
    positions: list[int]  # non-constant ops
    consts: list[int] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)

    @property
    def all_positions(self) -> list[int]:
        return sorted(self.positions + self.consts)


def _drafts(g: Graph, placements: list[Placement]) -> list[_Draft]:
    drafts: list[_Draft] = []
    for p in placements:
        if p.place == "const":
            continue
        if drafts and drafts[-1].kind == p.place:
            drafts[-1].positions.append(p.position)
        else:
            drafts.append(_Draft(p.place, [p.position]))
    const_out = {n: p.position for p in placements if p.place == "const" for n in g.ops[p.position].output_names()}
    known = set(g.params) | {n for b in g.blocks for n, v in b.values.items() if v.const is not None}
    reads_later: list[set[str]] = []
    for d in drafts:
        d.consts = sorted({const_out[n] for i in d.positions for n in _reads(g, g.ops[i]) if n in const_out})
    for d in drafts:
        reads_later.append({n for i in d.positions for n in _reads(g, g.ops[i])})
    for k, d in enumerate(drafts):
        produced = {n for i in d.all_positions for n in _writes(g, g.ops[i])}
        needed = []
        for i in d.positions:
            for n in _reads(g, g.ops[i]):
                if n not in produced and n not in known and n not in const_out and n not in needed:
                    needed.append(n)
        d.inputs = needed
        later = set().union(*reads_later[k + 1:]) if k + 1 < len(drafts) else set()
        d.outputs = [n for i in d.positions for n in g.ops[i].output_names()
                     if n in later or n in g.outputs]
        d.outputs = list(dict.fromkeys(d.outputs))
    return drafts


def _io_dtype(dtype: str) -> str:
    # what a network input/output keeps (repogen.trt.convert._io_type): no float64 / int16 in TensorRT
    return {"float64": "float32", "int16": "int32"}.get(dtype, dtype)


def _boundary_names(g: Graph, drafts: list[_Draft]) -> dict[str, str]:
    producer = {}
    for pos, op in enumerate(g.ops):
        for slot, names in op.outputs.items():
            for j, n in enumerate(names):
                producer[n] = f"{op.type}_{pos}_{slot}" + (f"{j}" if len(names) > 1 else "")
    keep = set(g.inputs) | set(g.outputs)
    renames = {}
    for d in drafts:
        for n in d.outputs:
            if n not in keep:
                renames[n] = producer.get(n, n)
    return renames


def _draft_regions(g: Graph, drafts: list[_Draft], precision: str) -> list[Region]:
    """Regions over the graph's own value names (for observation runs)."""
    def io(names):
        return [(n, _io_dtype(g.value(n).dtype), tuple(g.value(n).shape or ())) for n in names]
    return [Region(d.kind, d.all_positions, [g.ops[i].type for i in d.all_positions], io(d.inputs), io(d.outputs),
                   {}, [], precision) for d in drafts]


def run_regions(g: Graph, regions: Sequence[Region], feeds: dict[str, np.ndarray],
                runners: list[Any] | None = None) -> tuple[dict[str, np.ndarray], dict[str, tuple]]:
    """Run the regions in order on ``feeds``: (every boundary/graph output value, every observed shape)."""
    runners = runners or [make_runner(g, r) for r in regions]
    env = dict(feeds)
    shapes = {n: tuple(np.shape(a)) for n, a in feeds.items()}
    for region, runner in zip(regions, runners):
        outs, seen = runner.shapes({n: env[n] for n, _, _ in region.inputs})
        env.update(outs)
        shapes.update(seen)
    return env, shapes


def sample_feeds(g: Graph, shapes: dict[str, tuple], seed: int = 0) -> dict[str, np.ndarray]:
    return random_inputs(g, shapes, seed)


def partition_graph(cleaned: Graph, profiles: list[dict], precision: str = "fp32",
                    forced: dict[int, str] | None = None,
                    progress: Callable[[str], None] = lambda s: None) -> Partition:
    """Place every op of ``cleaned`` (the build's one cleaned graph, ``passes.clean_graph``), form regions,
    observe shapes at each profile's min/opt/max, name the boundaries. An op whose converter refuses it while
    a region is converted goes to Python with the converter's words."""
    forced = dict(forced or {})
    for _ in range(len(cleaned.ops) + 1):  # each converter refusal moves one op to Python
        try:
            return _partition(cleaned, profiles, precision, forced, progress)
        except _Refused as refused:
            forced[refused.position] = refused.reason
    raise ConfigError("the converters kept refusing ops")  # pragma: no cover - bounded by the op count


class _Refused(Exception):
    def __init__(self, position: int, reason: str):
        super().__init__(reason)
        self.position, self.reason = position, reason


def _partition(g: Graph, profiles: list[dict], precision: str, forced: dict[int, str],
               progress: Callable[[str], None]) -> Partition:
    placements = initial_placements(g, forced)
    # One observation run per profile shape: ops a layer limit may concern run in Paddle during it (fast, and
    # limit-free); afterwards those within the limits go back to TensorRT. Shapes do not depend on who runs an op.
    pending = [p for p in placements if p.place == "tensorrt" and registry.has_limit(p.op_type)]
    if not pending and not any(p.place == "python" for p in placements):
        _convert_tensorrt_regions(g, _draft_regions(g, _drafts(g, placements), precision))
        return Partition(g, placements, [])  # every op converts and no layer limit applies: nothing to run
    for p in pending:
        p.place = "python"
    observed = _observe(g, _draft_regions(g, _drafts(g, placements), precision), profiles, progress)
    for p in pending:
        why = None
        for shapes in observed["max"]:
            why = why or registry.limit_reason(g.ops[p.position], shapes)
        p.place, p.reason = ("python", why) if why else ("tensorrt", None)
    drafts = _drafts(g, placements)
    regions = _final_regions(g, drafts, placements, observed, profiles, precision)
    # the observation converted every other TensorRT op already
    _convert_tensorrt_regions(g, regions, {p.position for p in pending if p.place == "tensorrt"})
    return Partition(g, placements, regions, observed["opt"][0] if observed["opt"] else {})


def _convert_tensorrt_regions(g: Graph, regions: list[Region], holding: set[int] | None = None) -> None:
    """Convert each TensorRT region (holding one of the ``holding`` positions, if given) on the NumPy backend:
    a converter that refuses one of its ops raises _Refused naming the op's position in ``g``."""
    for region in regions:
        if region.kind == "tensorrt" and (holding is None or holding & set(region.ops or ())):
            _runner(g, region)


def _runner(g: Graph, region: Region) -> Any:
    try:
        return make_runner(g, region)
    except ConversionError as exc:
        if exc.position is None or region.ops is None or not 0 <= exc.position < len(region.ops):
            raise
        position = region.ops[exc.position]
        raise _Refused(position, f"the converter refused it: {exc.detail}") from None


def _observe(g: Graph, regions: list[Region], profiles: list[dict], progress) -> dict[str, list[dict]]:
    runners = [_runner(g, r) for r in regions]
    out: dict[str, list[dict]] = {"min": [], "opt": [], "max": []}
    for pi, prof in enumerate(profiles):
        for k, which in enumerate(("min", "opt", "max")):
            progress(f"observe profile {pi} {which}")
            feeds = sample_feeds(g, {n: tuple(rng[k]) for n, rng in prof.items()}, seed=k)
            # integer inputs are often ids into small tables: zeros are valid for any table, and shapes rarely
            # depend on their values
            feeds = {n: np.zeros_like(a) if a.dtype.kind in "iub" else a for n, a in feeds.items()}
            out[which].append(run_regions(g, regions, feeds, runners)[1])
    return out


def _final_regions(g: Graph, drafts: list[_Draft], placements: list[Placement], observed: dict[str, list[dict]],
                   profiles: list[dict], precision: str) -> list[Region]:
    renames = _boundary_names(g, drafts)
    runs = [s for which in ("min", "opt", "max") for s in observed[which]]

    def shape(n: str) -> tuple[int, ...]:
        base = g.value(n).shape
        seen = [s[n] for s in runs if n in s]
        if base is None:
            if not seen:
                raise ConfigError(f"tensor {n}: unknown rank, and no run produced it")
            base = tuple(-1 for _ in seen[0])
        dims = []
        for i, d in enumerate(base):
            vary = len({s[i] for s in seen if len(s) == len(base)}) > 1
            dims.append(-1 if d < 0 or vary else int(d))
        return tuple(dims)

    regions = []
    for d in drafts:
        def io(names):
            return [(renames.get(n, n), _io_dtype(g.value(n).dtype), shape(n)) for n in names]
        region_profiles = []
        if d.kind == "tensorrt":
            for pi, prof in enumerate(profiles):
                rp = {}
                for n in d.inputs:
                    if n in prof:
                        rp[n] = tuple(tuple(int(x) for x in s) for s in prof[n])
                        continue
                    lo, opt, hi = (observed[w][pi].get(n) for w in ("min", "opt", "max"))
                    if lo is None or opt is None or hi is None:
                        raise ConfigError(f"tensor {n}: no observed shape to derive region profile {pi} from")
                    rp[renames.get(n, n)] = (tuple(min(a) for a in zip(lo, opt, hi)), tuple(opt),
                                             tuple(max(a) for a in zip(lo, opt, hi)))
                region_profiles.append(rp)
        pos = d.all_positions
        regions.append(Region(d.kind, pos, [g.ops[i].type for i in pos], io(d.inputs), io(d.outputs),
                              {k: v for k, v in renames.items() if k in set(d.inputs) | set(d.outputs)},
                              region_profiles, precision))
    return regions
