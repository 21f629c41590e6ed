"""Paddle graph -> strongly typed TensorRT network, op by op through the converter registry."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from repogen.errors import ConversionError, UnsupportedOpError
from repogen.ir import Graph
from repogen.naming import rename_map
from repogen.trt import passes
from repogen.trt.context import ConversionContext
from repogen.trt.profiles import Profile, make_profiles
from repogen.trt.registry import has_converter, load_converters, why_unsupported

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
    #: the context the network was built in; it holds the weight arrays TensorRT reads when building
    context: ConversionContext | None = None


def find_unsupported(graph: Graph) -> list[tuple[int, str, list[str]]]:
    """(position, op type, output names) of every main-block op without a converter."""
    return [(pos, op.type, list(op.output_names()))
            for pos, op in enumerate(graph.ops) if not has_converter(op.type)]


def unsupported_reasons(missing: list[tuple[int, str, list[str]]]) -> dict[str, str]:
    """op type -> why TensorRT can never run it, for the ops of ``missing`` that have such a reason."""
    return {t: why for _, t, _ in missing if (why := why_unsupported(t)) is not None}


def convert_graph(graph: Graph, trt_module: Any, *, precision: str = "fp32",
                  profiles: Sequence[Profile] = (), clean: bool = True,
                  io_names: Mapping[str, str] | None = None) -> Conversion:
    """Build the network; raises UnsupportedOpError listing every op without a converter.

    ``io_names`` renames the network's inputs and outputs (graph name -> engine name, repogen/naming.py);
    the graph, and ``profiles``, keep the graph's names."""
    trt = trt_module
    load_converters()
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
        io_type = ctx.io_type(v.dtype)
        ctx.add_input(v.name, io_type, v.shape, engine_name=rename_map(io_names, v.name))
        inputs.append((rename_map(io_names, v.name), io_type, tuple(v.shape)))

    ctx.convert_ops(graph.ops)
    ctx.op, ctx.position, ctx.keep_fp32 = None, None, False

    outputs: list[IOSpec] = []
    for v in graph.output_values():
        t = ctx.tensors.get(v.name)
        if t is None:
            t = ctx.get(v.name)  # a constant output
        io_type = ctx.io_type(v.dtype)
        if io_type == trt.DataType.FLOAT and ctx.float_of(v.name) is not None:
            t = ctx.float_of(v.name)  # an FP32-kept op's result, not its HALF copy (precision policy)
        t = ctx.mark_output(ctx.cast(t, io_type), rename_map(io_names, v.name))
        outputs.append((t.name, io_type, tuple(int(d) for d in t.shape)))

    config = builder.create_builder_config()
    for prof in profiles:
        p = builder.create_optimization_profile()
        for name, (lo, opt, hi) in prof.shapes.items():
            p.set_shape(rename_map(io_names, name), lo, opt, hi)
        config.add_optimization_profile(p)
    return Conversion(builder, network, config, inputs, outputs, graph, precision, list(profiles), trt, ctx)
