"""Paddle model readers: every format into repogen.ir.Graph, without importing Paddle."""

from repogen.paddle.loader import detect, load_model

__all__ = ["load_model", "detect"]
