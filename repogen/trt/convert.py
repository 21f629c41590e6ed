"""Paddle graph -> strongly typed TensorRT network, op by op through the converter registry."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from repogen.errors import ConversionError, UnsupportedOpError
from repogen.ir import Graph
from repogen.trt import passes
from repogen.trt.context import ConversionContext
from repogen.trt.precision import keeps_fp32
from repogen.trt.profiles import Profile, make_profiles
from repogen.trt.registry import CONVERTERS, STRUCTURAL, _load, has_converter, why_unsupported

IOSpec = tuple[str, Any, tuple[int, ...]]  # (name, tensorrt DataType, shape with -1 for run-time dims)


@dataclass
class Conversion:
    builder: Any
    network: Any
    config: Any
    inputs: list[IOSpec]
    outputs: list[IOSpec]
    graph: Graph  # the cleaned graph the network was built from
    precision: str = "fp32"
    profiles: list[Profile] = field(default_factory=list)
    trt: Any = None


def find_unsupported(graph: Graph) -> list[tuple[int, str, list[str]]]:
    """(position, op type, output names) of every main-block op without a converter."""
    return [(pos, op.type, list(op.output_names()))
            for pos, op in enumerate(graph.ops) if not has_converter(op.type)]


def unsupported_reasons(missing: list[tuple[int, str, list[str]]]) -> dict[str, str]:
    """op type -> why TensorRT can never run it, for the ops of ``missing`` that have such a reason."""
    return {t: why for _, t, _ in missing if (why := why_unsupported(t)) is not None}


def _io_type(trt: Any, dtype: str) -> Any:
    """The type a network input/output keeps: the model's own (float64 has no TensorRT twin)."""
    return {"float32": trt.DataType.FLOAT, "float64": trt.DataType.FLOAT, "float16": trt.DataType.HALF,
            "bfloat16": trt.DataType.BF16, "int32": trt.DataType.INT32, "int64": trt.DataType.INT64,
            "int16": trt.DataType.INT32, "int8": trt.DataType.INT8, "uint8": trt.DataType.UINT8,
            "bool": trt.DataType.BOOL}[dtype]


def _output_name(name: str, taken: set[str]) -> str:
    """The engine's name for a graph output: its own, unless an input already has it (a legacy program whose
    loop updates its feed variable in place fetches that same variable), since an engine's tensor names are
    unique; then ``<name>_out`` (``_out2``... if that is taken too)."""
    if name not in taken:
        return name
    k, candidate = 1, f"{name}_out"
    while candidate in taken:
        k += 1
        candidate = f"{name}_out{k}"
    return candidate


def convert_ops(ctx: ConversionContext, ops: Sequence[Any], position: int | None = None) -> None:
    """Convert ops in order into ctx's network: the main block, or a control-flow sub-block (converters in
    converters/control.py call it with the owning op's ``position``, which then names errors)."""
    saved = ctx.op, ctx.position, ctx.keep_fp32
    for pos, op in enumerate(ops):
        if op.type in STRUCTURAL:
            continue
        where = pos if position is None else position
        ctx.op, ctx.position = op, where
        ctx.keep_fp32 = ctx.precision == "fp16" and keeps_fp32(op.type)
        if op.type not in CONVERTERS:
            raise ConversionError(op.type, "no converter (inside a control-flow block)", where)
        try:
            CONVERTERS[op.type](ctx, op)
        except ConversionError:
            raise
        except Exception as exc:  # a converter bug or a layer the backend rejected: name the op
            raise ConversionError(op.type, f"{type(exc).__name__}: {exc}", where) from exc
    if position is not None:
        ctx.op, ctx.position, ctx.keep_fp32 = saved


def convert_graph(graph: Graph, trt_module: Any, *, precision: str = "fp32",
                  profiles: Sequence[Profile] = (), clean: bool = True) -> Conversion:
    """Build the network; raises UnsupportedOpError listing every op without a converter."""
    trt = trt_module
    _load()
    if clean:
        graph = passes.clean_graph(graph)
    missing = find_unsupported(graph)
    if missing:
        raise UnsupportedOpError(missing, unsupported_reasons(missing))
    profiles = list(profiles) or make_profiles(graph.input_values())

    builder = trt.Builder(trt.Logger(trt.Logger.WARNING))
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    # int8: the Q/DQ pairs are ops of the graph (QAT model, or calibrate.quantize_graph); the rest is FP32
    ctx = ConversionContext(graph, trt, network, "fp32" if precision == "int8" else precision)

    inputs: list[IOSpec] = []
    for v in graph.input_values():
        if v.shape is None:
            raise ConversionError("feed", f"input {v.name!r} has unknown rank")
        io_type = _io_type(trt, v.dtype)
        t = network.add_input(v.name, io_type, tuple(int(d) for d in v.shape))
        inputs.append((v.name, io_type, tuple(v.shape)))
        ctx.set(v.name, t)  # under FP16 a float input is cast to HALF right away

    convert_ops(ctx, graph.ops)
    ctx.op, ctx.position, ctx.keep_fp32 = None, None, False

    outputs: list[IOSpec] = []
    marked: set[str] = set()
    input_names = {name for name, _, _ in inputs}
    for v in graph.output_values():
        t = ctx.tensors.get(v.name)
        if t is None:
            t = ctx.get(v.name)  # a constant output
        io_type = _io_type(trt, v.dtype)
        if t.dtype != io_type:
            t = ctx.cast(t, io_type)
        elif t.name in input_names or t.name in marked or id(t) in {id(x) for x in ctx._const_cache.values()}:
            t = ctx.named(network.add_identity(t)).get_output(0)
        name = _output_name(v.name, input_names | marked)
        t.name = name
        network.mark_output(t)
        marked.add(name)
        outputs.append((name, io_type, tuple(int(d) for d in t.shape)))

    config = builder.create_builder_config()
    for prof in profiles:
        p = builder.create_optimization_profile()
        for name, (lo, opt, hi) in prof.shapes.items():
            p.set_shape(name, lo, opt, hi)
        config.add_optimization_profile(p)
    conv = Conversion(builder, network, config, inputs, outputs, graph, precision, list(profiles), trt)
    conv.context = ctx  # keeps weight arrays alive until the engine is built
    return conv
