"""Matrix products: matrix multiply (with vector / transpose operations, broadcast batch dims) and einsum.

Semantics and the TensorRT pages they follow: docs/numpy-backend.md.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ._network import ILayer, Info, ITensor, NetworkCore
from ._support import broadcast_shapes, compute_in, require_type, run_broadcast_check, same_type
from ._types import FLOAT_TYPES, LayerType, MatrixOperation


class IMatrixMultiplyLayer(ILayer):
    _TYPE = LayerType.MATRIX_MULTIPLY
    _TYPE_NAME = "MatrixMultiply"

    def __init__(self, network: NetworkCore, a: ITensor, op0: MatrixOperation, b: ITensor, op1: MatrixOperation):
        super().__init__(network, [a, b])
        self.op0 = MatrixOperation(op0)
        self.op1 = MatrixOperation(op1)

    @staticmethod
    def _mat(shape: tuple[int, ...], op: MatrixOperation, left: bool) -> tuple[tuple[int, ...], int, int]:
        """(batch dims, rows, cols) of an operand after its operation; a vector is 1xK (left) or Kx1."""
        if op == MatrixOperation.VECTOR:
            return shape[:-1], (1 if left else shape[-1]), (shape[-1] if left else 1)
        r, c = shape[-2], shape[-1]
        if op == MatrixOperation.TRANSPOSE:
            r, c = c, r
        return shape[:-2], r, c

    def _infer(self, ins: list[Info | None]) -> list[Info]:
        a, b = ins
        t = same_type(self, [a, b])
        require_type(self, a, FLOAT_TYPES, "matrix multiply input")
        op0, op1 = MatrixOperation(self.op0), MatrixOperation(self.op1)
        for info, op, which in ((a, op0, "input 0"), (b, op1, "input 1")):
            need = 1 if op == MatrixOperation.VECTOR else 2
            if info.rank < need:
                raise self._fail(f"{which} of shape {info.shape} has rank < {need} for {op.name}")
        ba, ra, ca = self._mat(a.shape, op0, True)
        bb, rb, cb = self._mat(b.shape, op1, False)
        if len(ba) != len(bb):
            raise self._fail(
                f"batch ranks differ: {a.shape} ({op0.name}) vs {b.shape} ({op1.name}); TensorRT needs equal "
                "ranks (a VECTOR operand has one dimension less)"
            )
        if ca >= 0 and rb >= 0 and ca != rb:
            raise self._fail(f"inner dimensions differ: {a.shape} ({op0.name}) x {b.shape} ({op1.name})")
        batch = broadcast_shapes(self, [ba, bb]) if ba else ()
        shape = batch
        if op0 != MatrixOperation.VECTOR:
            shape += (ra,)
        if op1 != MatrixOperation.VECTOR:
            shape += (cb,)
        return [Info(t, tuple(shape))]

    def _run(self, xs: list[np.ndarray | None]) -> list[np.ndarray]:
        a, b = xs
        op0, op1 = MatrixOperation(self.op0), MatrixOperation(self.op1)
        ct = compute_in(a)
        A = a.astype(ct)
        B = b.astype(ct)
        A = A[..., None, :] if op0 == MatrixOperation.VECTOR else (np.swapaxes(A, -1, -2) if op0 == MatrixOperation.TRANSPOSE else A)
        B = B[..., :, None] if op1 == MatrixOperation.VECTOR else (np.swapaxes(B, -1, -2) if op1 == MatrixOperation.TRANSPOSE else B)
        run_broadcast_check(self, [np.empty(A.shape[:-2]), np.empty(B.shape[:-2])])
        if A.shape[-1] != B.shape[-2]:
            raise self._fail(f"run-time inner dimensions differ: {a.shape} x {b.shape}")
        y = np.matmul(A, B)
        if op1 == MatrixOperation.VECTOR:
            y = y[..., 0]
        if op0 == MatrixOperation.VECTOR:
            y = y[..., 0, :] if op1 != MatrixOperation.VECTOR else y[..., 0]
        return [np.asarray(y).astype(a.dtype)]


class IEinsumLayer(ILayer):
    _TYPE = LayerType.EINSUM
    _TYPE_NAME = "Einsum"

    def __init__(self, network: NetworkCore, inputs: Sequence[ITensor], equation: str):
        super().__init__(network, list(inputs))
        self.equation = equation

    def _infer(self, ins: list[Info | None]) -> list[Info]:
        t = same_type(self, ins)
        require_type(self, ins[0], FLOAT_TYPES, "input")
        eq = self.equation.replace(" ", "")
        if "..." in eq:
            raise self._fail("ellipsis in einsum equations is not supported by TensorRT")
        lhs, _, rhs = eq.partition("->")
        terms = lhs.split(",")
        if len(terms) != len(ins):
            raise self._fail(f"equation {eq!r} names {len(terms)} operands, {len(ins)} given")
        sizes: dict[str, int] = {}
        for term, info in zip(terms, ins):
            if len(term) != info.rank:
                raise self._fail(f"subscripts {term!r} do not match an input of rank {info.rank}")
            for ch, d in zip(term, info.shape):
                if d >= 0:
                    sizes[ch] = d
                else:
                    sizes.setdefault(ch, -1)
        if not _:
            rhs = "".join(sorted(c for c in set(lhs.replace(",", "")) if lhs.replace(",", "").count(c) == 1))
        return [Info(t, tuple(sizes.get(c, -1) for c in rhs))]

    def _run(self, xs: list[np.ndarray | None]) -> list[np.ndarray]:
        ct = compute_in(xs[0])
        return [np.einsum(self.equation, *[x.astype(ct) for x in xs], optimize=True).astype(xs[0].dtype)]
