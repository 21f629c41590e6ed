"""The reference child process (started by runner.py): load a model, answer run requests, load the next model,
until stdin closes. ``argv[1]``: the address-space cap in bytes.

Frames on stdin/stdout: 8-byte big-endian length, then a pickle. Anything Paddle prints goes to stderr.
"""

from __future__ import annotations

import gc
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
    cap = int(sys.argv[1])
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    import warnings

    warnings.filterwarnings("ignore", message="No ccache found")
    from repogen.extras import require
    from repogen.ir import ModelSource
    from repogen.reference.predictor import make_predictor, run_predictor

    try:  # at once, so that Paddle's import (seconds) overlaps whatever the parent does before the first model
        require("paddle.inference", extra="paddle")
        broken = None
    except BaseException as exc:  # MemoryError / "failed to map segment" under a small cap
        broken = f"Paddle Inference could not load it: {summary(exc)}"
    inp = sys.stdin.buffer
    predictor = None
    while (msg := _read(inp)) is not None:
        if "load" in msg:
            predictor = None
            gc.collect()  # the previous model's predictor and parameters go before the next loads
            if broken:
                _write(out, {"error": broken, "fatal": True})
                continue
            m = msg["load"]
            source = ModelSource(m["format"], Path(m["model_file"]), Path(m["params_file"]) if m["params_file"] else None)
            try:
                predictor = make_predictor(source)
            except BaseException as exc:  # Paddle raises its own untyped errors (and MemoryError under the cap)
                _write(out, {"error": f"Paddle Inference could not load it: {summary(exc)}", "fatal": True})
                continue
            _write(out, {"inputs": list(predictor.get_input_names()),
                         "outputs": list(predictor.get_output_names())})
        elif predictor is None:
            _write(out, {"error": "no model loaded", "fatal": True})
        else:
            try:
                _write(out, {"outputs": run_predictor(predictor, msg["run"])})
            except BaseException as exc:
                _write(out, {"error": f"Paddle Inference could not run it: {summary(exc)}"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
