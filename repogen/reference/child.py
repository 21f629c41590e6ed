"""The reference child process (started by runner.py): load one model, answer run requests until stdin closes.

Frames on stdin/stdout: 8-byte big-endian length, then a pickle. Anything Paddle prints goes to stderr.
"""

from __future__ import annotations

import os
import pickle
import resource
import struct
import sys
from pathlib import Path
from typing import Any, BinaryIO

_HEADER = struct.Struct(">Q")


def _read(stream: BinaryIO) -> Any:
    head = stream.read(_HEADER.size)
    if len(head) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack(head)
    return pickle.loads(stream.read(size))


def _write(stream: BinaryIO, obj: Any) -> None:
    data = pickle.dumps(obj, protocol=5)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def summary(exc: BaseException, limit: int = 600) -> str:
    """Paddle's message on one line: its 'Error Message Summary' part when it has one (the C++ stack is noise)."""
    text = str(exc) or type(exc).__name__
    if "Error Message Summary:" in text:
        text = text.split("Error Message Summary:", 1)[1]
    lines = [ln.strip() for ln in text.splitlines()]
    text = " ".join(ln for ln in lines if ln and not set(ln) <= set("-="))
    if type(exc).__name__ not in text:
        text = f"{type(exc).__name__}: {text}"
    return text[:limit]


def main() -> int:
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # Paddle's prints must not corrupt the frames
    inp = sys.stdin.buffer
    hello = _read(inp)
    if hello is None:
        return 0
    cap = hello["memory_bytes"]
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    from repogen.ir import ModelSource
    from repogen.reference.predictor import make_predictor, run_predictor

    source = ModelSource(hello["format"], Path(hello["model_file"]),
                         Path(hello["params_file"]) if hello["params_file"] else None)
    try:
        import warnings

        warnings.filterwarnings("ignore", message="No ccache found")
        predictor = make_predictor(source)
    except BaseException as exc:  # Paddle raises its own untyped errors (and MemoryError under the cap)
        _write(out, {"error": f"Paddle Inference could not load it: {summary(exc)}", "fatal": True})
        return 1
    _write(out, {"inputs": list(predictor.get_input_names()), "outputs": list(predictor.get_output_names())})
    while (feeds := _read(inp)) is not None:
        try:
            _write(out, {"outputs": run_predictor(predictor, feeds)})
        except BaseException as exc:
            _write(out, {"error": f"Paddle Inference could not run it: {summary(exc)}"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
