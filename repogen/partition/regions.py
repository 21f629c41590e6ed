"""A region: a run of ops of the cleaned graph that one Triton model executes.

Its description is plain JSON data (stored in the generated ``model.py``), so the served model rebuilds
exactly the sub-graph the build checked: it reads the original model files from its version folder, runs
the same clean-up pass, renames the tensors that cross region boundaries and keeps the listed ops.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from repogen import __version__
from repogen.errors import ConfigError
from repogen.ir import Block, Graph, Op, Value
from repogen.repository.config import render_template
from repogen.repository.layout import MODEL_PY


@dataclass
class Region:
    """kind "tensorrt": converted and built (a plan, or its NumPy stand-in); "python": run by Paddle."""

    kind: str
    ops: list[int] | None  # positions in the cleaned graph's main block; None = every op (whole model)
    op_types: list[str]  # the types at those positions, to notice a model that changed under the build
    inputs: list[tuple[str, str, tuple[int, ...]]]  # (name, numpy dtype, full shape with -1)
    outputs: list[tuple[str, str, tuple[int, ...]]]
    renames: dict[str, str] = field(default_factory=dict)  # graph value name -> boundary tensor name
    profiles: list[dict[str, tuple]] = field(default_factory=list)  # {input: (min, opt, max)}
    precision: str = "fp32"

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "ops": self.ops, "op_types": self.op_types,
                "inputs": [[n, d, list(s)] for n, d, s in self.inputs],
                "outputs": [[n, d, list(s)] for n, d, s in self.outputs],
                "renames": dict(self.renames), "precision": self.precision,
                "profiles": [{k: [list(x) for x in v] for k, v in p.items()} for p in self.profiles]}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Region":
        return cls(d["kind"], d["ops"], list(d["op_types"]),
                   [(n, t, tuple(s)) for n, t, s in d["inputs"]], [(n, t, tuple(s)) for n, t, s in d["outputs"]],
                   dict(d.get("renames") or {}),
                   [{k: tuple(tuple(x) for x in v) for k, v in p.items()} for p in d.get("profiles") or []],
                   d.get("precision", "fp32"))


def rename_values(graph: Graph, renames: dict[str, str]) -> Graph:
    """A copy of ``graph`` whose values in ``renames`` carry their boundary names everywhere they appear."""
    if not renames:
        return graph

    def r(n: str) -> str:
        return renames.get(n, n)

    blocks = []
    for b in graph.blocks:
        ops = [Op(op.type, op.source_type, {k: [r(n) for n in v] for k, v in op.inputs.items()},
                  {k: [r(n) for n in v] for k, v in op.outputs.items()}, op.attrs, op.blocks) for op in b.ops]
        values = {r(n): (Value(r(n), v.dtype, v.shape, v.persistable, v.const) if n in renames else v)
                  for n, v in b.values.items()}
        blocks.append(Block(b.index, b.parent, ops, values))
    return Graph(graph.source, blocks, [r(n) for n in graph.inputs], [r(n) for n in graph.outputs], graph.params)


def cut(cleaned: Graph, region: Region) -> Graph:
    """The region's sub-graph: its ops, its inputs as feeds, its outputs as fetches (``cleaned`` is the output
    of ``passes.clean_graph`` on the whole model)."""
    g = rename_values(cleaned, region.renames)
    if region.ops is None:
        ops = list(g.ops)
    else:
        if max(region.ops, default=-1) >= len(g.ops):
            raise ConfigError(f"region ops {region.ops} do not fit a graph of {len(g.ops)} ops: the model files "
                              "differ from the ones the repository was built from")
        ops = [g.ops[i] for i in region.ops]
    found = [op.type for op in ops]
    if region.ops is not None and found != region.op_types:
        raise ConfigError(f"region op types {found} differ from the built ones {region.op_types}: the model files "
                          "or repogen's clean-up pass changed since the build; rebuild the repository")
    if region.ops is None:
        return g  # the whole model keeps its own feeds and fetches (the engine may rename a fetch)
    main = Block(0, -1, ops, g.main.values)
    return Graph(g.source, [main] + list(g.blocks[1:]), [n for n, _, _ in region.inputs],
                 [n for n, _, _ in region.outputs], g.params)


def load_cleaned(model_file: Path) -> Graph:
    from repogen.paddle import load_model
    from repogen.trt.passes import clean_graph

    return clean_graph(load_model(model_file))


# -- what a region's model folder holds ----------------------------------------------------------------------------

STANDIN_TEMPLATE = "numpy_model.py.j2"
DESCRIPTIONS = {
    "tensorrt": "CPU stand-in for a TensorRT plan: runs the TensorRT network repogen converted from the model "
                "files in this version folder on repogen's NumPy backend, and refuses request shapes outside "
                "the optimization profiles, as the plan would.",
    "python": "Remainder of a partitioned model: runs the ops TensorRT cannot (see repogen.json) with Paddle, "
              "op by op, from the model files in this version folder.",
}


def render_region_py(model_file: str, region: Region) -> str:
    return render_template(STANDIN_TEMPLATE, {"repogen_version": __version__, "model_file": model_file,
                                              "region": region.to_json(), "description": DESCRIPTIONS[region.kind]})


def region_files(version: str, sources: list[Path], region: Region) -> dict[str, Any]:
    """A stand-in's (or a remainder's) version folder: the model files (the served model reads them at load)
    and model.py."""
    files: dict[str, Any] = {f"{version}/{f.name}": f for f in sources}
    files[f"{version}/{MODEL_PY}"] = render_region_py(sources[0].name, region).encode("utf-8")
    return files
