"""Post-training INT8 quantization without TensorRT's (removed) calibrators.

1. The FP32 network runs on the NumPy backend over calibration batches; the inputs of every conv2d /
   depthwise_conv2d / matmul / bmm / mul / fc are recorded (``numpy_trt.execute_all``).
2. A range ``amax`` per activation comes from the method:
   * ``max``: the largest |x| seen;
   * ``percentile``: the 99.99th percentile of |x| (outliers clipped);
   * ``entropy``: TensorRT's legacy entropy calibrator (IInt8EntropyCalibrator2): a 2048-bin histogram of
     |x| over [0, max]; for every cut ``i`` in 128..2048 the reference distribution P is ``hist[:i]`` with
     the clipped tail added to its last bin, the candidate Q merges ``hist[:i]`` into 128 levels and spreads
     each level evenly over its non-empty bins; the cut with the smallest KL(P || Q) gives
     ``amax = i * bin_width``.
3. The graph is rewritten with Paddle's own QDQ ops: ``quantize_linear`` + ``dequantize_linear`` (per
   tensor, range ``amax``) before each activation input, and for constant weights an int8 parameter +
   ``dequantize_linear`` per output channel (symmetric, range = the channel's abs max). The converters in
   converters/quant.py turn those into TensorRT Quantize/Dequantize layers, exactly as for a QAT model;
   everything else stays FP32 (``precision="int8"``).
4. Held-out batches (never used for calibration) measure the accuracy change: relative error against FP32
   and, for classifier-shaped outputs ([N, C]), top-1 agreement.

Calibration data: an ``.npz`` with one array per model input (leading dim = samples), or a folder of such
``.npz`` files (concatenated in name order; ``.npy`` files are accepted for single-input models). The last
20% of the samples (at least one) are held out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from repogen.errors import ConfigError
from repogen.npz import load_npz
from repogen.ir import Block, Graph, Op, Value

METHODS = ("max", "percentile", "entropy")
PERCENTILE = 99.99
BATCH = 8
_SAMPLES_PER_BATCH = 1 << 17  # |x| values kept per tensor and batch for percentile / entropy
_QUANT_OPS = {"conv2d": ("input", "filter"), "depthwise_conv2d": ("input", "filter"), "matmul": ("x", "y"),
              "bmm": ("x", "y"), "matmul_with_flatten": ("x", "y"), "fc": ("input", "w")}


# --- data -----------------------------------------------------------------------------------------------
def load_data(path: str | Path, graph: Graph) -> dict[str, np.ndarray]:
    """Calibration samples, one array per model input (samples along dim 0)."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"--calib-data {p}: does not exist")
    files = sorted(f for f in p.iterdir() if f.suffix in (".npz", ".npy")) if p.is_dir() else [p]
    if not files:
        raise ConfigError(f"--calib-data {p}: no .npz or .npy files in the folder")
    parts: dict[str, list[np.ndarray]] = {n: [] for n in graph.inputs}
    for f in files:
        if f.suffix == ".npy":
            if len(graph.inputs) != 1:
                raise ConfigError(f"{f}: .npy calibration files need a single-input model (inputs: "
                                  f"{', '.join(graph.inputs)}); use .npz with one array per input")
            try:
                parts[graph.inputs[0]].append(np.load(f, allow_pickle=False))
            except (OSError, ValueError, EOFError) as exc:
                raise ConfigError(f"--calib-data {f}: not a readable .npy: {exc}") from None
            continue
        z = load_npz(f, "--calib-data")  # empty, not a zip, object arrays: one ConfigError naming the file
        missing = [n for n in graph.inputs if n not in z]
        if missing:
            raise ConfigError(f"{f}: lacks {', '.join(missing)} (model inputs: {', '.join(graph.inputs)})")
        for n in graph.inputs:
            parts[n].append(z[n])
    data = {}
    for v in graph.input_values():
        arr = np.concatenate(parts[v.name], axis=0)
        if v.shape is not None and arr.ndim != len(v.shape):
            raise ConfigError(f"--calib-data {p}: input {v.name!r} has rank {arr.ndim}, the model wants "
                              f"{len(v.shape)} ({list(v.shape)})")
        data[v.name] = arr.astype(v.dtype)
    counts = {len(a) for a in data.values()}
    if len(counts) != 1:
        raise ConfigError(f"--calib-data {p}: inputs have different sample counts {sorted(counts)}")
    if counts.pop() < 2:
        raise ConfigError(f"--calib-data {p}: needs at least 2 samples (calibration and held-out)")
    return data


def split(data: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(calibration, held-out): the last 20% of the samples (at least one) are held out."""
    n = len(next(iter(data.values())))
    held = max(1, n // 5)
    return {k: v[: n - held] for k, v in data.items()}, {k: v[n - held:] for k, v in data.items()}


def batches(data: dict[str, np.ndarray], size: int = BATCH) -> Iterator[dict[str, np.ndarray]]:
    n = len(next(iter(data.values())))
    for i in range(0, n, size):
        yield {k: v[i:i + size] for k, v in data.items()}


# --- where Q/DQ goes ------------------------------------------------------------------------------------
def _weight_axis(op: Op, slot: str, rank: int) -> int:
    """The output-channel axis of a weight (per-channel scales run along it)."""
    if op.type in ("conv2d", "depthwise_conv2d"):
        return 0
    if op.type in ("matmul", "bmm"):
        return rank - 2 if op.attrs.get("transpose_y") else rank - 1
    return rank - 1  # fc w / mul y: [in, out]


def activation_inputs(graph: Graph) -> list[str]:
    """Float activations (not constants) feeding the ops that get INT8 kernels, in graph order."""
    names: list[str] = []
    for op in graph.ops:
        for slot in _QUANT_OPS.get(op.type, ()):
            n = op.input(slot)
            if n is None or graph.const(n) is not None or n in names:
                continue
            if graph.value(n).dtype in ("float32", "float64"):
                names.append(n)
    return names


# --- ranges ---------------------------------------------------------------------------------------------
@dataclass
class _Stats:
    amax: float = 0.0
    samples: list[np.ndarray] = field(default_factory=list)

    def add(self, x: np.ndarray, rng: np.random.Generator) -> None:
        a = np.abs(np.asarray(x, np.float32)).reshape(-1)
        self.amax = max(self.amax, float(a.max()) if a.size else 0.0)
        if a.size > _SAMPLES_PER_BATCH:
            a = rng.choice(a, _SAMPLES_PER_BATCH, replace=False)
        self.samples.append(a)


def _fp32_network(graph: Graph, trt: Any, feeds: dict[str, np.ndarray], precision: str = "fp32") -> Any:
    from repogen.trt.convert import convert_graph
    from repogen.trt.profiles import Profile

    profile = Profile({n: (tuple(np.shape(a)),) * 3 for n, a in feeds.items()})
    return convert_graph(graph, trt, precision=precision, profiles=[profile], clean=False)


def collect(graph: Graph, trt: Any, calib: dict[str, np.ndarray], names: list[str]) -> dict[str, _Stats]:
    """|x| statistics of the named graph values over every calibration batch (FP32 network)."""
    first = next(batches(calib))
    conv = _fp32_network(graph, trt, first)
    tensor_of = {n: conv.context.tensors[n].name for n in names}
    stats = {n: _Stats() for n in names}
    rng = np.random.default_rng(0)
    for feed in batches(calib):
        values = trt.execute_all(conv.network, feed)
        for n in names:
            stats[n].add(values[tensor_of[n]], rng)
    return stats


def entropy_amax(hist: np.ndarray, bin_width: float, levels: int = 128) -> float:
    """The KL-divergence-minimising clip of a |x| histogram (TensorRT's legacy entropy calibration)."""
    hist = hist.astype(np.float64)
    nbins = len(hist)
    if hist.sum() == 0:
        return 0.0
    best_i, best_kl = nbins, np.inf
    for i in range(levels, nbins + 1):
        ref = hist[:i]
        p = ref.copy()
        p[-1] += hist[i:].sum()
        starts = np.linspace(0, i, levels + 1).astype(int)[:-1]
        nonzero = ref > 0
        sums = np.add.reduceat(ref, starts)
        counts = np.add.reduceat(nonzero.astype(np.float64), starts)
        sizes = np.diff(np.append(starts, i))
        q = np.repeat(np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0), sizes) * nonzero
        q_sum = q.sum()
        if q_sum == 0:
            continue
        p, q = p / p.sum(), q / q_sum
        mask = p > 0
        q = np.where(mask & (q == 0), 1e-12, q)  # P mass Q cannot represent (the clipped tail in an empty bin)
        kl = float(np.sum(p[mask] * np.log(p[mask] / q[mask])))
        if kl < best_kl:
            best_kl, best_i = kl, i
    return best_i * bin_width


def ranges(stats: dict[str, _Stats], method: str) -> dict[str, float]:
    if method not in METHODS:
        raise ConfigError(f"--calib-method {method!r} is not one of {', '.join(METHODS)}")
    out = {}
    for n, s in stats.items():
        if method == "max" or s.amax == 0.0:
            out[n] = s.amax
            continue
        a = np.concatenate(s.samples)
        if method == "percentile":
            out[n] = float(np.percentile(a, PERCENTILE))
        else:
            hist, edges = np.histogram(a, bins=2048, range=(0.0, s.amax))
            out[n] = entropy_amax(hist, float(edges[1] - edges[0]))
    return out


# --- rewrite --------------------------------------------------------------------------------------------
def quantize_graph(graph: Graph, amax: dict[str, float]) -> Graph:
    """A copy of ``graph`` with QDQ ops before the INT8 ops' inputs (activations per tensor with ``amax``,
    constant weights per output channel)."""
    blocks = [Block(b.index, b.parent, list(b.ops), dict(b.values)) for b in graph.blocks]
    g = Graph(graph.source, blocks, list(graph.inputs), list(graph.outputs), dict(graph.params))
    values = g.main.values
    ops: list[Op] = []
    done: dict[str, str] = {}

    def param(name: str, arr: np.ndarray) -> str:
        values[name] = Value(name, str(arr.dtype), tuple(arr.shape), persistable=True, const=arr)
        return name

    def qattrs(axis: int) -> dict:
        return {"quant_axis": axis, "bit_length": 8, "qmin": -128, "qmax": 127, "round_type": 0, "is_test": True}

    for op in graph.ops:
        slots = _QUANT_OPS.get(op.type, ())
        new_inputs = dict(op.inputs)
        for slot in slots:
            n = op.input(slot)
            if n is None:
                continue
            w = g.const(n)
            if w is not None and w.dtype.kind == "f" and w.ndim >= 2:
                if n not in done:
                    axis = _weight_axis(op, slot, w.ndim)
                    w32 = np.asarray(w, np.float32)
                    s = np.abs(w32).max(axis=tuple(a for a in range(w.ndim) if a != axis)).astype(np.float32)
                    shape = [1] * w.ndim
                    shape[axis] = -1
                    step = np.where(s > 0, s / 127, 1).reshape(shape)
                    q = np.clip(np.rint(w32 / step), -128, 127).astype(np.int8)
                    out = f"{n}@int8_dequant"
                    ops.append(Op("dequantize_linear", "repogen.ptq",
                                  {"x": [param(f"{n}@int8", q)], "scale": [param(f"{n}@int8_scale", s)]},
                                  {"y": [out]}, qattrs(axis)))
                    values[out] = Value(out, "float32", tuple(w.shape))
                    done[n] = out
                new_inputs[slot] = [done[n]]
            elif n in amax and amax[n] > 0:
                if n not in done:
                    v = g.value(n)
                    s = param(f"{n}@act_scale", np.asarray([amax[n]], np.float32))
                    qn, dn = f"{n}@q", f"{n}@dq"
                    ops.append(Op("quantize_linear", "repogen.ptq", {"x": [n], "scale": [s]}, {"y": [qn]},
                                  qattrs(-1)))
                    ops.append(Op("dequantize_linear", "repogen.ptq", {"x": [qn], "scale": [s]}, {"y": [dn]},
                                  qattrs(-1)))
                    values[qn] = Value(qn, "float32", v.shape)
                    values[dn] = Value(dn, "float32", v.shape)
                    done[n] = dn
                new_inputs[slot] = [done[n]]
        if new_inputs != op.inputs:
            op = Op(op.type, op.source_type, new_inputs, dict(op.outputs), dict(op.attrs), list(op.blocks))
        ops.append(op)
    g.main.ops[:] = ops
    return g


# --- the whole procedure --------------------------------------------------------------------------------
@dataclass
class Int8Model:
    graph: Graph  # the cleaned graph with QDQ ops: convert it with precision="int8"
    method: str
    amax: dict[str, float]
    calibration_samples: int
    heldout: dict[str, np.ndarray]

    def summary(self) -> dict[str, Any]:
        return {"method": self.method, "calibration_samples": self.calibration_samples,
                "heldout_samples": len(next(iter(self.heldout.values()))), "quantized_tensors": len(self.amax)}


def quantize_model(graph: Graph, data: str | Path | dict[str, np.ndarray], method: str = "max",
                   trt: Any = None) -> Int8Model:
    """Calibrate a cleaned graph (repogen.trt.passes.clean_graph) and return its INT8 (QDQ) form."""
    if trt is None:
        from repogen.trt import numpy_trt as trt
    if method not in METHODS:
        raise ConfigError(f"--calib-method {method!r} is not one of {', '.join(METHODS)}")
    samples = data if isinstance(data, dict) else load_data(data, graph)
    calib, held = split(samples)
    names = activation_inputs(graph)
    if not names and not any(op.type in _QUANT_OPS for op in graph.ops):
        raise ConfigError("--int8: the model has no conv2d/matmul/mul/fc op to quantize")
    amax = ranges(collect(graph, trt, calib, names), method)
    qgraph = quantize_graph(graph, amax)
    # how close the INT8 network is to Paddle's FP32 on the held-out samples is the conversion check's to judge
    return Int8Model(qgraph, method, amax, len(next(iter(calib.values()))), held)
