"""Tier 2 ops (ops_target.md) against Paddle: comparisons and logic, indexing, sequences, grid sampling.

Each case is a tiny program saved by Paddle as PIR (dynamic dims), as a 2.x ProgramDesc (legacy op names)
and as PIR with static dims (tests/support/opcases.py); the converted network runs at two shapes and must match
Paddle Inference: floats within 1e-5 relative (1e-2 at fp16), integers and bools exactly.
"""

from __future__ import annotations

from tests.support.opcases import Case, Inp, emit_legacy, standard_tests

B = -1  # the dynamic batch dim


def _x(*dims, name="x", **kw):
    return Inp(name, (B,) + dims, **kw)


def _runs(*shapes_per_run):
    return tuple(shapes_per_run)


def _xy(shape_a, shape_b, y_shape=None):
    return _runs({"x": shape_a, "y": y_shape or shape_a}, {"x": shape_b, "y": y_shape or shape_b})


CASES: dict[str, Case] = {
    # --- logic.py
    "compare": Case((_x(6), _x(6, name="y")), _xy((2, 6), (3, 6))),
    "compare_broadcast": Case((_x(4, 6), Inp("y", (6,))), _runs({"x": (2, 4, 6), "y": (6,)}, {"x": (1, 4, 6), "y": (6,)})),
    "compare_int": Case((_x(5, dtype="int64", low=0, high=4), _x(5, name="y", dtype="int64", low=0, high=4)),
                        _xy((2, 5), (4, 5))),
    "logical": Case((_x(6), _x(6, name="y")), _xy((2, 6), (3, 6))),
    "logical_bool_in": Case((_x(7, dtype="bool"), _x(7, name="y", dtype="bool")), _xy((2, 7), (3, 7))),
    "bitwise": Case((_x(6, dtype="int32", low=-8, high=8), _x(6, name="y", dtype="int32", low=-8, high=8)),
                    _xy((2, 6), (3, 6))),
    "where": Case((_x(6), _x(6, name="y")), _xy((2, 6), (3, 6)), fp16=True),
    "where_broadcast": Case((_x(3, 6), Inp("y", (1, 6))), _runs({"x": (2, 3, 6), "y": (1, 6)}, {"x": (1, 3, 6), "y": (1, 6)}),
                            fp16=True),
    "isnan": Case((_x(6),), _runs({"x": (2, 6)}, {"x": (3, 6)})),
    # --- indexing.py
    "topk": Case((_x(5, 7),), _runs({"x": (2, 5, 7)}, {"x": (3, 5, 7)}), fp16=True),
    "argsort": Case((_x(5, 7),), _runs({"x": (2, 5, 7)}, {"x": (3, 5, 7)})),
    "cumsum": Case((_x(4, 5),), _runs({"x": (2, 4, 5)}, {"x": (3, 4, 5)}), fp16=True),
    "gather_nd": Case((_x(4, 5), Inp("i", (3, 2), "int64", 0, 4)), _runs({"x": (2, 4, 5), "i": (3, 2)},
                                                                         {"x": (3, 4, 5), "i": (3, 2)})),
    "index_select": Case((_x(6, 4), Inp("i", (3,), "int64", 0, 4)), _runs({"x": (2, 6, 4), "i": (3,)},
                                                                          {"x": (3, 6, 4), "i": (3,)})),
    "take_along_axis": Case((_x(6, 4), _x(6, 2, name="i", dtype="int64", low=0, high=4)),
                            _runs({"x": (2, 6, 4), "i": (2, 6, 2)}, {"x": (3, 6, 4), "i": (3, 6, 2)})),
    "flip_roll": Case((_x(4, 5),), _runs({"x": (2, 4, 5)}, {"x": (3, 4, 5)}), fp16=True),
    "tril_triu": Case((_x(5, 6),), _runs({"x": (2, 5, 6)}, {"x": (3, 5, 6)})),
    "dynamic_axes": Case((Inp("x", (B, B)),), _runs({"x": (2, 5)}, {"x": (3, 7)})),
    "one_hot": Case((_x(4, dtype="int64", low=0, high=6),), _runs({"x": (2, 4)}, {"x": (3, 4)})),
    "set_value": Case((_x(4, 5), _x(5, name="y")), _runs({"x": (2, 4, 5), "y": (2, 5)}, {"x": (3, 4, 5), "y": (3, 5)})),
    "put_along_axis": Case((_x(6, 4), _x(6, 1, name="i", dtype="int64", low=0, high=4), _x(6, 1, name="v")),
                           _runs({"x": (2, 6, 4), "i": (2, 6, 1), "v": (2, 6, 1)},
                                 {"x": (3, 6, 4), "i": (3, 6, 1), "v": (3, 6, 1)})),
    "index_put": Case((_x(6, 4), Inp("i", (3,), "int64", 0, 6), Inp("v", (4,))),
                      _runs({"x": (2, 6, 4), "i": (3,), "v": (4,)}, {"x": (3, 6, 4), "i": (3,), "v": (4,)})),
    # --- sequence.py
    "arange": Case((Inp("x", (B, B)),), _runs({"x": (2, 5)}, {"x": (3, 7)})),
    "linspace": Case((_x(5),), _runs({"x": (2, 5)}, {"x": (3, 5)})),
    "meshgrid": Case((Inp("x", (B,)), Inp("y", (B,))), _runs({"x": (3,), "y": (4,)}, {"x": (5,), "y": (2,)})),
    "einsum": Case((_x(3, 4), Inp("y", (4, 5))), _runs({"x": (2, 3, 4), "y": (4, 5)}, {"x": (1, 3, 4), "y": (4, 5)}),
                   fp16=True),
    "p_norm": Case((_x(4, 6),), _runs({"x": (2, 4, 6)}, {"x": (3, 4, 6)}), fp16=True),
    # --- grid_sample
    "grid_sample": Case((_x(3, 5, 6), _x(4, 7, 2, name="g", low=-1.2, high=1.2)),
                        _runs({"x": (2, 3, 5, 6), "g": (2, 4, 7, 2)}, {"x": (1, 3, 5, 6), "g": (1, 4, 7, 2)}),
                        fp16=True),
}


def build_cases(mode: str) -> dict:
    """Case name -> fn(*inputs); runs in the saving subprocess."""
    import paddle
    import paddle.nn.functional as F

    if mode == "legacy":
        _legacy_apis(paddle, F)

    def compare(x, y):
        return (x == y, x != y, x < y, x <= y, x > y, x >= y, paddle.equal(x, x), x < 0.25)

    def logical(x, y):
        a, b = x > 0, y > 0
        return (paddle.logical_and(a, b), paddle.logical_or(a, b), paddle.logical_xor(a, b), paddle.logical_not(a))

    def logical_bool_in(x, y):
        return (paddle.logical_and(x, y), paddle.logical_or(x, y), paddle.logical_xor(x, y), paddle.logical_not(y))

    def bitwise(x, y):
        return (paddle.bitwise_and(x, y), paddle.bitwise_or(x, y), paddle.bitwise_xor(x, y), paddle.bitwise_not(x),
                paddle.bitwise_and(x > 0, y > 0), paddle.bitwise_not(y > 0))

    def where(x, y):
        return (paddle.where(x > y, x, y), paddle.where(x > 0, x * 2.0, paddle.zeros_like(x)))

    def isnan(x):
        return paddle.isnan(paddle.sqrt(x)), paddle.isnan(x)

    def topk(x):
        v1, i1 = paddle.topk(x, 3)
        v2, i2 = paddle.topk(x, 2, axis=1, largest=False)
        if mode != "legacy":
            return v1, i1, v2, i2
        # top_k (v1): always the last axis, largest first
        v3, i3 = emit_legacy("top_k", {"X": [x]}, {"k": 4}, outs=("Out", "Indices"), out_dtypes=(x.dtype, "int64"))
        return v1, i1, v2, i2, v3, i3

    def argsort(x):
        return (paddle.argsort(x), paddle.argsort(x, axis=1, descending=True),
                paddle.sort(x, axis=-1, descending=True))

    def cumsum(x):
        return (paddle.cumsum(x, axis=1), paddle.cumsum(x, axis=-1), paddle.cumsum(x),
                paddle.cumsum((x > 0).astype("int64"), axis=2))

    def flip_roll(x):
        return (paddle.flip(x, [1]), paddle.flip(x, [1, 2]), paddle.roll(x, 2, axis=2),
                paddle.roll(x, [1, -2], axis=[1, 2]), paddle.roll(x, 3))

    def tril_triu(x):
        return paddle.tril(x), paddle.triu(x, 1), paddle.tril(x, -2), paddle.triu(x, -1)

    def set_value(x, y):
        setitem = paddle.static.setitem
        x = setitem(x * 1.0, (slice(None), slice(1, 3)), 0.5)
        x = setitem(x, (slice(None), 0), y)
        return setitem(x, (slice(None), slice(None), slice(None, None, 2)), -1.0)

    def arange(x):
        n = paddle.shape(x)[1]
        return (paddle.arange(n), paddle.arange(1.0, 3.0, 0.5, dtype="float32"),
                paddle.arange(0, n, 2, dtype="int32"), x + paddle.arange(n).astype("float32"))

    def linspace(x):
        return x + paddle.linspace(0.0, 1.0, 5, dtype="float32"), paddle.linspace(-2.0, 3.0, 11, dtype="float32")

    def meshgrid(x, y):
        a, b = paddle.meshgrid(x, y)
        return a, b

    def p_norm(x):
        return (paddle.linalg.norm(x, p=2, axis=-1), paddle.linalg.norm(x, p=1, axis=1, keepdim=True),
                paddle.linalg.norm(x, p=3, axis=2), paddle.linalg.norm(x, p=float("inf"), axis=-1),
                F.normalize(x, axis=-1))

    def grid_sample(x, g):
        return (F.grid_sample(x, g, mode="bilinear", padding_mode="zeros", align_corners=True),
                F.grid_sample(x, g, mode="bilinear", padding_mode="border", align_corners=False),
                F.grid_sample(x, g, mode="nearest", padding_mode="zeros", align_corners=False),
                F.grid_sample(x, g, mode="bilinear", padding_mode="reflection", align_corners=True),
                F.grid_sample(x, g, mode="bilinear", padding_mode="reflection", align_corners=False))

    return {
        "compare": compare,
        "compare_broadcast": compare,
        "compare_int": lambda x, y: compare(x, y)[:6],
        "logical": logical,
        "logical_bool_in": logical_bool_in,
        "bitwise": bitwise,
        "where": where,
        "where_broadcast": lambda x, y: paddle.where(x > y, x, y),
        "isnan": isnan,
        "topk": topk,
        "argsort": argsort,
        "cumsum": cumsum,
        "gather_nd": lambda x, i: paddle.gather_nd(x.transpose([1, 2, 0]), i),
        "index_select": lambda x, i: (paddle.index_select(x, i, axis=1), paddle.index_select(x, i[:2], axis=-1)),
        "take_along_axis": lambda x, i: paddle.take_along_axis(x, i, axis=2),
        "flip_roll": flip_roll,
        "tril_triu": tril_triu,
        "dynamic_axes": lambda x: (paddle.argsort(x, axis=-1, descending=True), paddle.flip(x, [1]),
                                   paddle.roll(x, 2, axis=1), paddle.tril(x, 1), paddle.cumsum(x, axis=1),
                                   paddle.topk(x, 2)[1]),
        "one_hot": lambda x: F.one_hot(x, 6),
        "set_value": set_value,
        "put_along_axis": lambda x, i, v: paddle.put_along_axis(x, i, v, axis=2),
        "index_put": lambda x, i, v: paddle.index_put(x.transpose([1, 0, 2]), (i,), v),
        "arange": arange,
        "linspace": linspace,
        "meshgrid": meshgrid,
        "einsum": lambda x, y: (paddle.einsum("bij,jk->bik", x, y), paddle.einsum("bij,bij->b", x, x)),
        "p_norm": p_norm,
        "grid_sample": grid_sample,
    }


def _legacy_apis(paddle, F) -> None:
    """Legacy spellings for the APIs that Paddle 3.3.1 routes to PIR-only kernels (see emit_legacy)."""

    def binary(op):
        return lambda x, y, *a, **k: emit_legacy(op, {"X": [x], "Y": [y]}, {}, "bool")

    paddle.logical_or = binary("logical_or")
    paddle.logical_xor = binary("logical_xor")
    paddle.roll = lambda x, shifts, axis=None: emit_legacy(
        "roll", {"X": [x]}, {"shifts": list(shifts) if isinstance(shifts, (list, tuple)) else [shifts],
                             "axis": [] if axis is None else (list(axis) if isinstance(axis, (list, tuple)) else [axis])})
    paddle.triu = lambda x, diagonal=0: emit_legacy("tril_triu", {"X": [x]}, {"diagonal": diagonal, "lower": False})
    paddle.tril = lambda x, diagonal=0: emit_legacy("tril_triu", {"X": [x]}, {"diagonal": diagonal, "lower": True})

    def norm(x, p=2, axis=None, keepdim=False):
        return emit_legacy("p_norm", {"X": [x]}, {"porder": float(p), "axis": int(axis), "keepdim": bool(keepdim),
                                                 "epsilon": 1e-12, "asvector": False})

    paddle.linalg.norm = norm
    paddle.index_put = lambda x, indices, value, accumulate=False: emit_legacy(
        "index_put", {"x": [x], "indices": list(indices), "value": [value]}, {"accumulate": accumulate}, outs=("out",))
    F.normalize = lambda x, p=2, axis=1, epsilon=1e-12: x / paddle.maximum(norm(x, p, axis, True),
                                                                            paddle.full([1], epsilon, x.dtype))
    F.grid_sample = lambda x, grid, mode="bilinear", padding_mode="zeros", align_corners=True: emit_legacy(
        "grid_sampler", {"X": [x], "Grid": [grid]},
        {"mode": mode, "padding_mode": padding_mode, "align_corners": bool(align_corners)}, outs=("Output",))


programs, test_fp32_dynamic, test_fp32_static, test_fp16 = standard_tests(__file__, "ops_tier2", CASES)
