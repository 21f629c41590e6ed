"""Errors repogen raises on purpose. Every message names the file, op or field at fault."""

from __future__ import annotations


class RepogenError(Exception):
    """Base class: the CLI prints these as one plain line and exits non-zero."""


class ModelFormatError(RepogenError):
    """A model file is missing, truncated, corrupt or inconsistent with its companion files."""

    def __init__(self, path: object, detail: str, offset: int | None = None):
        where = f"{path}" + (f" at byte {offset}" if offset is not None else "")
        super().__init__(f"{where}: {detail}")
        self.path = path
        self.offset = offset
        self.detail = detail


class UnsupportedOpError(RepogenError):
    """One or more ops have no converter."""

    def __init__(self, ops: list[tuple[int, str, list[str]]], reasons: dict[str, str] | None = None):
        reasons = reasons or {}
        lines = [f"  #{pos} {op_type} -> {', '.join(outs) or '(no outputs)'}"
                 + (f": {reasons[op_type]}" if op_type in reasons else "") for pos, op_type, outs in ops]
        super().__init__("no converter for these ops:\n" + "\n".join(lines))
        self.ops = ops


class ConversionError(RepogenError):
    """A converter could not express an op (bad attribute, unsupported mode, shape mismatch)."""

    def __init__(self, op_type: str, detail: str, position: int | None = None):
        where = f"op #{position} {op_type}" if position is not None else f"op {op_type}"
        super().__init__(f"{where}: {detail}")
        self.op_type = op_type
        self.detail = detail
        self.position = position  # in the main block of the graph that was converted


class ConfigError(RepogenError):
    """A spec file, option or generated Triton config is invalid."""


class ServerError(RepogenError):
    """Triton could not be started, reached or did not load a model."""


class PaddleReferenceError(RepogenError):
    """The Paddle reference itself (Paddle Inference on the source model) failed, timed out or died: no verdict
    on repogen's output can be given."""

    def __init__(self, model_file: object, detail: str):
        super().__init__(f"{model_file}: the Paddle reference (Paddle Inference on CPU) failed: {detail}")
        self.model_file = model_file
        self.detail = detail
