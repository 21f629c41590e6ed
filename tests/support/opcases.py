"""Shared machinery for per-op tests: tiny Paddle programs saved once by Paddle itself, then converted with
the NumPy backend and compared with Paddle Inference on the same feeds.

A test module describes its cases as ``{name: Case}`` (plain data: input specs and the concrete shapes to
run) plus a ``build_cases()`` function returning ``{name: fn(*inputs) -> output or tuple}``, called in the
saving subprocess with paddle imported. Programs are saved per mode (``pir``; ``legacy`` = 2.x
ProgramDesc; ``pir-static`` = PIR with every input dim fixed at the first run shape) and cached under
tests.support.zoo.cache_root(), keyed by the test module's source so editing a case re-saves.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

MODES = ("pir", "legacy", "pir-static")


@dataclass(frozen=True)
class Inp:
    name: str
    shape: tuple[int, ...]  # -1 = dynamic
    dtype: str = "float32"
    low: float = -1.0
    high: float = 1.0


@dataclass(frozen=True)
class Case:
    inputs: tuple[Inp, ...]
    runs: tuple[dict[str, tuple[int, ...]], ...]  # concrete shapes per run; the first also fixes pir-static
    fp16: bool = False  # float outputs worth checking at fp16
    tags: tuple[str, ...] = field(default=())


def static_shape(case: Case, inp: Inp) -> tuple[int, ...]:
    return tuple(case.runs[0][inp.name])


def feeds(case: Case, run: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(run + 11)
    out = {}
    for inp in case.inputs:
        shape = case.runs[run][inp.name]
        if inp.dtype == "bool":
            out[inp.name] = rng.integers(0, 2, shape).astype(bool)
        elif inp.dtype.startswith("int"):
            out[inp.name] = rng.integers(int(inp.low), int(inp.high), shape).astype(inp.dtype)
        else:
            # distinct values: sorts and top-k have no ties whose order the two sides may pick differently
            n = int(np.prod(shape))
            vals = rng.permutation(n).astype(np.float64) / max(n - 1, 1)
            out[inp.name] = (inp.low + (inp.high - inp.low) * vals).reshape(shape).astype(inp.dtype)
    return out


# --- saving (subprocess) ----------------------------------------------------------------------------
def emit_legacy(op_type: str, inputs: dict, attrs: dict, out_dtype: Any = None, outs: Sequence[str] = ("Out",),
                out_dtypes: Sequence[Any] | None = None) -> Any:
    """Append a legacy (2.x) op by name: Paddle 3.3.1 sends many static APIs to PIR-only kernels even with
    the legacy IR selected, so the tests spell those ops out as Paddle 2.x appended them."""
    from paddle.base.layer_helper import LayerHelper

    helper = LayerHelper(op_type)
    first = next(iter(inputs.values()))[0] if inputs else None
    dtypes = out_dtypes or [out_dtype or first.dtype] * len(outs)
    results = [helper.create_variable_for_type_inference(dt) for dt in dtypes]
    helper.append_op(type=op_type, inputs=inputs, outputs={k: [v] for k, v in zip(outs, results)}, attrs=attrs)
    return results[0] if len(results) == 1 else results


def _load_module(path: str) -> Any:
    spec = importlib.util.spec_from_file_location("_opcases_target", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _save_all(module_path: str, mode: str, out: str) -> None:
    import paddle

    paddle.enable_static()
    mod = _load_module(module_path)
    if mode == "legacy":
        from tests.support import zoo
        zoo._install_legacy_shims()
    fns = mod.build_cases(mode)
    for name, case in mod.CASES.items():
        paddle.seed(0)
        main, startup = paddle.static.Program(), paddle.static.Program()
        with paddle.static.program_guard(main, startup):
            xs = [paddle.static.data(i.name, list(static_shape(case, i) if mode == "pir-static" else i.shape),
                                     i.dtype) for i in case.inputs]
            ys = fns[name](*xs)
            ys = list(ys) if isinstance(ys, (list, tuple)) else [ys]
        exe = paddle.static.Executor(paddle.CPUPlace())
        exe.run(startup)
        try:
            paddle.static.save_inference_model(os.path.join(out, name, "inference"), xs, ys, exe, program=main)
        except Exception as exc:
            raise RuntimeError(f"case {name}: {exc}") from exc


def saved_programs(module_file: str, tag: str, modes: Sequence[str] = MODES) -> dict[str, Path]:
    """mode -> directory holding one saved program per case (``dir / case name``), saving on first use."""
    from tests.support.zoo import cache_root

    digest = hashlib.sha256(Path(module_file).read_bytes() + Path(__file__).read_bytes()).hexdigest()[:12]
    root = cache_root() / f"{tag}-{digest}"
    out = {}
    for mode in modes:
        d = root / mode
        if not (d / ".complete").exists():
            root.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(dir=root))
            env = dict(os.environ, FLAGS_enable_pir_api="0" if mode == "legacy" else "1", GLOG_minloglevel="2")
            proc = subprocess.run([sys.executable, __file__, "_save", module_file, mode, str(tmp)], env=env,
                                  capture_output=True, text=True, timeout=600,
                                  cwd=str(Path(__file__).resolve().parents[2]))
            if proc.returncode != 0:
                shutil.rmtree(tmp, ignore_errors=True)
                raise RuntimeError(f"saving {tag} ({mode}) failed:\n{proc.stderr[-4000:]}")
            (tmp / ".complete").write_text("ok")
            try:
                os.rename(tmp, d)
            except OSError:  # another process won the race
                shutil.rmtree(tmp, ignore_errors=True)
        out[mode] = d
    return out


# --- running ------------------------------------------------------------------------------------------
def convert_and_compare(model: Path, case: Case, precision: str, static: bool = False) -> list[str]:
    """Convert, run every case shape (only the first when static), compare; returns failure messages."""
    from repogen.paddle import load_model
    from repogen.trt import numpy_trt
    from tests.support.judging import judge
    from repogen.trt.convert import convert_graph
    from repogen.trt.profiles import make_profiles
    from tests.support.zoo import reference_outputs

    graph = load_model(model)
    runs = case.runs[:1] if static else case.runs

    def spec(fn) -> list[str]:
        return [f"{i.name}:{'x'.join(str(fn(r[i.name][k] for r in runs)) for k in range(len(i.shape)))}"
                for i in case.inputs]

    # one profile covering every input ("x:..,y:.."), as --min-shapes/--max-shapes take it
    profiles = make_profiles(graph.input_values(), min_shapes=[",".join(spec(min))], max_shapes=[",".join(spec(max))])
    conv = convert_graph(graph, numpy_trt, precision=precision, profiles=profiles)
    if not static:
        assert any(-1 in shape for _, _, shape in conv.inputs), "the network should keep run-time dims"
    failures = []
    for run in range(len(runs)):
        fd = feeds(case, run)
        got = numpy_trt.execute(conv.network, fd)
        ref = list(reference_outputs(model, fd).values())
        assert len(ref) == len(graph.outputs)
        for k, (name, expected) in enumerate(zip(graph.outputs, ref)):
            actual = got[name]
            if expected.dtype.kind in "biu" or actual.dtype.kind in "biu":
                # integer and bool results are compared exactly, dtype included
                if actual.dtype != expected.dtype or actual.shape != expected.shape or \
                        not np.array_equal(actual, expected):
                    failures.append(f"run {run} output {k} ({name}): got {actual.dtype}{list(actual.shape)} "
                                    f"{actual.ravel()[:8]}, Paddle {expected.dtype}{list(expected.shape)} "
                                    f"{expected.ravel()[:8]}")
                continue
            r = judge(actual, expected, precision, name, network=conv.network, feeds=fd)
            if not r.passed or actual.dtype != expected.dtype:
                failures.append(f"run {run} output {k}: {r} dtype {actual.dtype} vs {expected.dtype}")
    return failures


def standard_tests(module_file: str, tag: str, cases: dict[str, Case]) -> tuple:
    """The test set of an op module: a module-scoped ``programs`` fixture, fp32 at every run shape as PIR and
    2.x, fp32 at the first shape as static PIR, fp16 for the cases marked so. Unpack into module globals:
    ``programs, test_fp32_dynamic, test_fp32_static, test_fp16 = standard_tests(__file__, "tag", CASES)``."""
    import pytest

    @pytest.fixture(scope="module")
    def programs() -> dict[str, Path]:
        return saved_programs(module_file, tag)

    def check(model: Path, case: str, precision: str, static: bool = False) -> None:
        failures = convert_and_compare(model / case, cases[case], precision, static=static)
        assert not failures, "\n".join(failures)

    @pytest.mark.parametrize("case", list(cases))
    @pytest.mark.parametrize("mode", ["pir", "legacy"])
    def test_fp32_dynamic(programs: dict, case: str, mode: str) -> None:
        check(programs[mode], case, "fp32")

    @pytest.mark.parametrize("case", list(cases))
    def test_fp32_static(programs: dict, case: str) -> None:
        check(programs["pir-static"], case, "fp32", static=True)

    @pytest.mark.parametrize("case", [c for c, v in cases.items() if v.fp16])
    def test_fp16(programs: dict, case: str) -> None:
        check(programs["pir"], case, "fp16")

    return programs, test_fp32_dynamic, test_fp32_static, test_fp16


if __name__ == "__main__" and len(sys.argv) == 5 and sys.argv[1] == "_save":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    _save_all(sys.argv[2], sys.argv[3], sys.argv[4])
