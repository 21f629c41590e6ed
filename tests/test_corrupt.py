"""Damaged model files end in a RepogenError naming the file, quickly and without large allocations."""

from __future__ import annotations

import json
import shutil
import struct
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from tests.support import zoo
from repogen.errors import ModelFormatError, RepogenError
from repogen.paddle import load_model

SRC_MODEL = "convnet"


def _copy(fmt: str, dst: Path, model: str = SRC_MODEL) -> Path:
    shutil.copytree(zoo.get(model, fmt), dst)
    return dst


def _load_bounded(path: Path, **kw: object) -> Exception | None:
    """Load; return the RepogenError raised (or None), failing on any other exception, >2 s or >64 MB."""
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        load_model(path, **kw)
        err = None
    except RepogenError as exc:
        err = exc
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert time.perf_counter() - t0 < 2.0, f"took {time.perf_counter() - t0:.1f}s"
    assert peak < 64 << 20, f"peak allocation {peak >> 20} MB"
    return err


def _offsets(size: int, count: int) -> list[int]:
    return sorted({int(x) for x in np.linspace(0, size - 1, count)} | {1, 2, 3, 4, 8, 12, 16, size - 1})


@pytest.mark.parametrize("fmt,name", [("paddle2", "inference.pdmodel"), ("fluid-combined", "__model__")])
def test_truncated_program(tmp_path: Path, fmt: str, name: str) -> None:
    d = _copy(fmt, tmp_path / "m")
    data = (zoo.get(SRC_MODEL, fmt) / name).read_bytes()
    failures = 0
    offsets = _offsets(len(data), 60)
    for cut in offsets:
        (d / name).write_bytes(data[:cut])
        err = _load_bounded(d)
        if err is not None:
            failures += 1
            assert isinstance(err, ModelFormatError) and name in str(err), err
    # a cut exactly between top-level fields can still be a valid (shorter) message; nearly all are not
    assert failures >= len(offsets) - 3


def test_truncated_params(tmp_path: Path) -> None:
    d = _copy("paddle2", tmp_path / "m")
    data = (zoo.get(SRC_MODEL, "paddle2") / "inference.pdiparams").read_bytes()
    for cut in _offsets(len(data), 80):
        (d / "inference.pdiparams").write_bytes(data[:cut])
        err = _load_bounded(d)
        assert isinstance(err, ModelFormatError) and "inference.pdiparams" in str(err), cut


def test_trailing_bytes_in_params(tmp_path: Path) -> None:
    d = _copy("pir", tmp_path / "m")
    with open(d / "inference.pdiparams", "ab") as f:
        f.write(b"\0" * 7)
    with pytest.raises(ModelFormatError, match="7 trailing bytes"):
        load_model(d)


@pytest.mark.parametrize("fmt,name", [("paddle2", "inference.pdmodel"), ("pir", "inference.json"),
                                      ("paddle2", "inference.pdiparams")])
def test_flipped_bytes(tmp_path: Path, fmt: str, name: str) -> None:
    d = _copy(fmt, tmp_path / "m")
    data = (zoo.get(SRC_MODEL, fmt) / name).read_bytes()
    rng = np.random.default_rng(0)
    for pos in rng.integers(0, len(data), 60):
        bad = bytearray(data)
        bad[pos] ^= 0xFF
        (d / name).write_bytes(bytes(bad))
        _load_bounded(d)  # any outcome but a RepogenError, a hang or a large allocation fails


def test_flipped_params_header_detected(tmp_path: Path) -> None:
    d = _copy("paddle2", tmp_path / "m")
    data = bytearray((zoo.get(SRC_MODEL, "paddle2") / "inference.pdiparams").read_bytes())
    for pos in (0, 3, 4, 11, 12, 15, 16, 19):  # version, LoD count, desc version, desc length
        bad = bytearray(data)
        bad[pos] ^= 0x5A
        (d / "inference.pdiparams").write_bytes(bytes(bad))
        err = _load_bounded(d)
        assert isinstance(err, ModelFormatError), pos


def test_huge_lengths_are_checked(tmp_path: Path) -> None:
    """Lengths far beyond the file are refused before anything is allocated."""
    d = _copy("paddle2", tmp_path / "m")
    data = bytearray((zoo.get(SRC_MODEL, "paddle2") / "inference.pdiparams").read_bytes())
    for pos, fmt, value in ((4, "<Q", 1 << 60), (16, "<i", 1 << 30), (16, "<i", -5)):
        bad = bytearray(data)
        struct.pack_into(fmt, bad, pos, value)
        (d / "inference.pdiparams").write_bytes(bytes(bad))
        assert isinstance(_load_bounded(d), ModelFormatError)
    # a PIR parameter declared with an enormous shape
    p = _copy("pir", tmp_path / "p")
    doc = json.loads((p / "inference.json").read_text())
    first = next(op for op in doc["program"]["regions"][0]["blocks"][0]["ops"] if op["#"] == "p")
    first["O"]["TT"]["D"][1] = [1 << 40, 1 << 20]
    (p / "inference.json").write_text(json.dumps(doc))
    err = _load_bounded(p)
    assert isinstance(err, ModelFormatError) and first["A"][3] in str(err)
    # a protobuf length prefix claiming gigabytes
    prog = bytes([0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F]) + b"\0" * 10
    (d / "inference.pdmodel").write_bytes(prog)
    err = _load_bounded(d)
    assert isinstance(err, ModelFormatError) and "exceeds" in str(err) and err.offset == 0


def test_swapped_params_file(tmp_path: Path) -> None:
    for fmt, name in (("paddle2", "inference.pdiparams"), ("pir", "inference.pdiparams"),
                      ("fluid-combined", "__params__")):
        d = _copy(fmt, tmp_path / fmt)
        shutil.copy(zoo.get("tensors", fmt) / name, d / name)
        with pytest.raises(ModelFormatError, match="parameter '") as info:
            load_model(d)
        assert name in str(info.value)


def test_missing_separate_param_file(tmp_path: Path) -> None:
    d = _copy("fluid-separate", tmp_path / "m")
    victim = sorted(f for f in d.iterdir() if f.name not in ("__model__", ".complete"))[3]
    victim.unlink()
    with pytest.raises(ModelFormatError, match="missing") as info:
        load_model(d)
    assert victim.name in str(info.value)


def test_missing_params_file(tmp_path: Path) -> None:
    d = _copy("pir", tmp_path / "m")
    (d / "inference.pdiparams").unlink()
    with pytest.raises(ModelFormatError, match="no parameters file"):
        load_model(d)


@pytest.mark.parametrize("text", [
    "", "{", "[]", "null", '{"base_code": 3}', '{"base_code": {"magic": "pir", "version": 4}}',
    '{"base_code": {"magic": "pir", "version": 4}, "program": {"regions": []}}',
    '{"base_code": {"magic": "pir", "version": 4}, "program": {"regions": [{"blocks": [{"ops": [{"#": 5}]}]}]}}',
    '{"base_code": {"magic": "pir", "version": 4}, "program": {"regions": [{"blocks": [{"ops": '
    '[{"#": "1.relu", "I": [{"%": "x"}], "O": []}]}]}]}}',
    '{"base_code": {"magic": "pir", "version": 4}, "program": {"regions": [{"blocks": [{"ops": '
    '[{"#": "1.relu", "I": [], "O": [{"%": 3, "TT": {"#": "0.t_dtensor", "D": [{"#": "0.t_zz"}, [1]]}}]}]}]}}',
    "[" * 100000,
])
def test_garbage_json(tmp_path: Path, text: str) -> None:
    (tmp_path / "m.json").write_text(text)
    err = _load_bounded(tmp_path / "m.json")
    assert isinstance(err, ModelFormatError) and "m.json" in str(err)


def test_wrong_magic(tmp_path: Path) -> None:
    doc = json.loads((zoo.get(SRC_MODEL, "pir") / "inference.json").read_text())
    doc["base_code"]["magic"] = "onnx"
    (tmp_path / "m.json").write_text(json.dumps(doc))
    with pytest.raises(ModelFormatError, match="magic"):
        load_model(tmp_path / "m.json")
    # a params file that is not a tensor stream
    d = _copy("paddle2", tmp_path / "m")
    (d / "inference.pdiparams").write_bytes(b"PK\x03\x04" + b"\0" * 200)
    with pytest.raises(ModelFormatError, match="tensor version"):
        load_model(d)
    # a model file that is not a protobuf
    (d / "inference.pdmodel").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\xff" * 64)
    with pytest.raises(ModelFormatError):
        load_model(d)


def _rename_param(model: Path, old: str, new: str) -> None:
    """Rename variable old to new everywhere in a Fluid __model__ (through Paddle's own proto classes)."""
    from paddle.base.proto import framework_pb2

    prog = framework_pb2.ProgramDesc.FromString((model / "__model__").read_bytes())
    for block in prog.blocks:
        for var in block.vars:
            if var.name == old:
                var.name = new
        for op in block.ops:
            for slot in list(op.inputs) + list(op.outputs):
                slot.arguments[:] = [new if a == old else a for a in slot.arguments]
    (model / "__model__").write_bytes(prog.SerializeToString())


@pytest.mark.parametrize("name", ["../secret.txt", "/etc/hostname", "../outside_param", "sub/../w", "..",
                                  "linked_param"])
def test_separate_param_path_traversal(tmp_path: Path, name: str) -> None:
    d = _copy("fluid-separate", tmp_path / "m")
    victim = "conv2d_0.w_0"
    tensor = (d / victim).read_bytes()
    (tmp_path / "secret.txt").write_text("TOP-SECRET-CONTENT\n")
    (tmp_path / "outside_param").write_bytes(tensor)  # a valid tensor file, just outside the model folder
    (d / "sub").mkdir()
    (d / "w").write_bytes(tensor)
    (d / "linked_param").symlink_to(tmp_path / "outside_param")
    (d / victim).unlink()
    _rename_param(d, victim, name)
    with pytest.raises(ModelFormatError, match="parameter file") as info:
        load_model(d)
    msg = str(info.value)
    assert repr(name) in msg and "inside the model folder" in msg, msg
    assert "TOP-SECRET" not in msg and "\n" not in msg


def test_separate_param_symlink_inside_folder_is_read(tmp_path: Path) -> None:
    """A symlink that stays inside the model folder is an ordinary parameter file."""
    d = _copy("fluid-separate", tmp_path / "m")
    victim = "conv2d_0.w_0"
    want = load_model(d).params[victim].copy()
    (d / victim).rename(d / "real_w")
    (d / victim).symlink_to(d / "real_w")
    np.testing.assert_array_equal(load_model(d).params[victim], want)


def test_param_dims_too_big_for_numpy(tmp_path: Path) -> None:
    """dims [0, 2**62] (program and params agree) are refused before numpy is asked for the array."""
    from paddle.base.proto import framework_pb2

    d = _copy("fluid-separate", tmp_path / "m")
    victim = "conv2d_0.b_0"
    prog = framework_pb2.ProgramDesc.FromString((d / "__model__").read_bytes())
    for var in prog.blocks[0].vars:
        if var.name == victim:
            var.type.dense_tensor.tensor.dims[:] = [0, 1 << 62]
    (d / "__model__").write_bytes(prog.SerializeToString())
    data = bytearray((d / victim).read_bytes())
    (dlen,) = struct.unpack_from("<i", data, 16)
    desc = framework_pb2.VarType.TensorDesc.FromString(bytes(data[20:20 + dlen]))
    desc.dims[:] = [0, 1 << 62]
    raw = desc.SerializeToString()
    (d / victim).write_bytes(bytes(data[:16]) + struct.pack("<i", len(raw)) + raw)
    err = _load_bounded(d)
    assert isinstance(err, ModelFormatError) and victim in str(err), err
