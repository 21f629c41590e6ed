"""Read Paddle's serialized DenseTensor records (``.pdiparams`` / ``__params__`` / one file per variable).

Arrays are zero-copy views of a read-only mmap of the file, so loading costs only the header parsing.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from repogen.errors import ModelFormatError
from repogen.paddle.limits import MAX_ELEMENTS, check_shape
from repogen.paddle.programdesc import tensor_desc
from repogen.paddle.wire import Wire

_NP_DTYPE = {
    "bool": np.bool_, "int8": np.int8, "uint8": np.uint8, "int16": np.int16, "int32": np.int32,
    "int64": np.int64, "float16": np.float16, "float32": np.float32, "float64": np.float64,
    "complex64": np.complex64, "complex128": np.complex128,
    "bfloat16": np.uint16,  # no numpy bfloat16: the raw bits as stored; read_tensor widens them (bf16_to_float32)
}
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_I32 = struct.Struct("<i")


@dataclass(frozen=True)
class ParamSpec:
    """What the program says a parameter must look like; dims of -1 match anything."""

    name: str
    dtype: str
    dims: tuple[int, ...] | None


class _DescWire(Wire):
    """A Wire over a copied slice that reports offsets within the whole file."""

    def __init__(self, data: bytes, path: Path, base: int):
        super().__init__(data, path)
        self.base = base

    def fail(self, detail: str, offset: int) -> ModelFormatError:
        return ModelFormatError(self.path, f"TensorDesc: {detail}", self.base + offset)

    def desc(self) -> tuple[str, list[int]]:
        return tensor_desc(self, 0, len(self.data))


def numpy_dtype(dtype: str) -> np.dtype:
    return np.dtype(_NP_DTYPE[dtype])


def map_file(path: Path) -> memoryview | bytes:
    """A read-only view of the whole file (an mmap; empty files cannot be mapped)."""
    try:
        with open(path, "rb") as f:
            size = f.seek(0, 2)
            if size == 0:
                return b""
            return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except OSError as exc:
        raise ModelFormatError(path, f"cannot read parameters: {exc.strerror or exc}") from None


def read_tensor(buf, pos: int, path: Path, spec: ParamSpec) -> tuple[np.ndarray, int]:
    """Parse one tensor record at pos; return (array view, position after the record)."""
    size = len(buf)
    start = pos

    def need(n: int, what: str) -> None:
        if n > size - pos:
            raise ModelFormatError(path, f"truncated {what} of parameter {spec.name!r} "
                                         f"(needs {n} bytes, {size - pos} left)", pos)

    need(4, "tensor version")
    (version,) = _U32.unpack_from(buf, pos)
    if version != 0:
        raise ModelFormatError(path, f"parameter {spec.name!r}: unsupported tensor version {version} "
                                     "(wrong file, or a file that is not a Paddle parameters file)", pos)
    pos += 4
    need(8, "LoD level count")
    (levels,) = _U64.unpack_from(buf, pos)
    pos += 8
    if levels > (size - pos) // 8:
        raise ModelFormatError(path, f"parameter {spec.name!r}: LoD level count {levels} exceeds the file", pos - 8)
    for _ in range(levels):
        need(8, "LoD level size")
        (nbytes,) = _U64.unpack_from(buf, pos)
        pos += 8
        need(nbytes, "LoD level")
        pos += nbytes
    need(4, "tensor-desc version")
    (dversion,) = _U32.unpack_from(buf, pos)
    if dversion != 0:
        raise ModelFormatError(path, f"parameter {spec.name!r}: unsupported tensor-desc version {dversion}", pos)
    pos += 4
    need(4, "TensorDesc length")
    (dlen,) = _I32.unpack_from(buf, pos)
    if dlen < 0:
        raise ModelFormatError(path, f"parameter {spec.name!r}: negative TensorDesc length {dlen}", pos)
    pos += 4
    need(dlen, "TensorDesc")
    # parse the small TensorDesc from a copy: indexing bytes is much faster than indexing an mmap
    dtype, dims = _DescWire(bytes(buf[pos:pos + dlen]), path, pos).desc()
    pos += dlen
    bad = check_shape(dims, f"parameter {spec.name!r}", min_dim=0)
    if bad:
        raise ModelFormatError(path, bad, pos - dlen)
    numel = span = 1
    for d in dims:
        numel *= d
        span *= max(d, 1)
    # bounded before numpy sees the shape: numpy refuses [0, 2**62] too ("array is too big"), empty or not
    if span > MAX_ELEMENTS:
        raise ModelFormatError(path, f"parameter {spec.name!r} has shape {dims} "
                                     f"(more than {MAX_ELEMENTS} elements)", pos - dlen)
    # Paddle's post-training quantization stores frozen weights as int8 under their float declaration;
    # Paddle's loader keeps the file's type, and so does this one
    if spec.dtype != dtype and not (dtype == "int8" and spec.dtype in _FLOATS):
        raise ModelFormatError(path, f"parameter {spec.name!r} is {dtype} {dims} in the parameters file but the "
                                     f"program declares {spec.dtype} {list(spec.dims or [])} "
                                     "(parameters file of another model?)", start)
    # Paddle's own quantization tools declare scales as [1] / [C] and save them 0-D / [1, C]; Paddle's loader
    # keeps the file's shape, and so does this one where the two differ only by unit dims
    if spec.dims is not None and _squeezed(dims) != _squeezed(spec.dims) and (len(spec.dims) != len(dims)
                                  or any(a != b for a, b in zip(spec.dims, dims) if a >= 0)):
        raise ModelFormatError(path, f"parameter {spec.name!r} has shape {dims} in the parameters file but the "
                                     f"program declares {list(spec.dims)} (parameters file of another model?)", start)
    np_dtype = numpy_dtype(dtype)
    nbytes = numel * np_dtype.itemsize
    need(nbytes, "data")
    arr = np.frombuffer(buf, dtype=np_dtype, count=numel, offset=pos).reshape(dims)
    if dtype == "bfloat16":
        arr = bf16_to_float32(arr)
    return arr, pos + nbytes


def bf16_to_float32(bits: np.ndarray) -> np.ndarray:
    """bfloat16 bit patterns (uint16) as the float32 values they encode: bf16 is the upper half of an IEEE
    float32, so the widening is exact (NaN, inf and subnormals included). Converters then store the values in
    the network's precision like any float parameter (HALF under --fp16, where |v| > 65504 becomes inf)."""
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


_FLOATS = ("float32", "float16", "bfloat16", "float64")


def _squeezed(dims: Sequence[int]) -> list[int]:
    return [d for d in dims if d != 1]


def read_combined(path: Path, specs: Sequence[ParamSpec]) -> dict[str, np.ndarray]:
    """All parameters from one combined file, stored in sorted(name) order."""
    buf = map_file(path)
    pos = 0
    out = {}
    for spec in sorted(specs, key=lambda s: s.name.encode()):
        if pos >= len(buf):
            raise ModelFormatError(path, f"parameters file ends before parameter {spec.name!r} "
                                         f"({len(out)} of {len(specs)} read)", pos)
        out[spec.name], pos = read_tensor(buf, pos, path, spec)
    if pos != len(buf):
        raise ModelFormatError(path, f"{len(buf) - pos} trailing bytes after the last of {len(specs)} parameters "
                                     "(parameters file of another model?)", pos)
    return out


def read_separate(folder: Path, specs: Sequence[ParamSpec]) -> dict[str, np.ndarray]:
    """Fluid layout: one file per parameter, named after the variable."""
    out = {}
    for spec in specs:
        path = param_file_in(folder, spec.name)
        if not path.is_file():
            raise ModelFormatError(path, f"parameter file for {spec.name!r} is missing")
        buf = map_file(path)
        out[spec.name], end = read_tensor(buf, 0, path, spec)
        if end != len(buf):
            raise ModelFormatError(path, f"{len(buf) - end} trailing bytes after parameter {spec.name!r}", end)
    return out


def param_file_in(folder: Path, name: str) -> Path:
    """The file of parameter ``name`` in a one-file-per-parameter model, refused unless it lies inside folder.

    The variable name comes from the program, so it is untrusted: a name with a separator, ``..``, an
    absolute name or a symlink out of the folder would make the reader open (and copy into a repository)
    a file that is not part of the model.
    """
    bad = None
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        bad = "is not a plain file name"
    elif Path(name).is_absolute() or Path(name).drive:
        bad = "is an absolute path"
    if bad is None:
        path = folder / name
        try:
            inside = path.resolve().is_relative_to(folder.resolve())
        except (OSError, RuntimeError, ValueError):  # symlink loops, names the OS refuses
            inside = False
        if inside:
            return path
        bad = "resolves outside the model folder (symlink)"
    raise ModelFormatError(folder / "__model__", f"variable {name!r}: its parameter file {name!r} {bad}; "
                                                 "parameter files must lie inside the model folder")


def attach(blocks: Sequence, params: dict[str, np.ndarray]) -> None:
    """Give every block value named like a parameter its data, with the file's shape and, where the program
    declares a float, int8 type (frozen quantized weights)."""
    for block in blocks:
        for name, value in block.values.items():
            if name in params:
                value.const = params[name]
                if params[name].dtype == np.int8:
                    value.dtype = "int8"
                value.shape = tuple(params[name].shape)
