"""Real-model gaps (issue 17) against Paddle: run-time tile repeats, run-time interpolation sizes/scales,
slice/strided_slice bounds and steps from tensors, concat/split axes from tensors, boolean-mask index_put /
set_value.

Each case is a tiny program saved by Paddle as PIR (dynamic dims), as a 2.x ProgramDesc and as PIR with
static dims (tests/support/opcases.py); the converted network runs at two shapes and must match Paddle Inference:
floats within 1e-5 relative (1e-2 at fp16), integers and bools exactly.
"""

from __future__ import annotations

from tests.support.opcases import Case, Inp, standard_tests

B = -1


def _two(x_a, x_b, y_a=None, y_b=None, second="y"):
    if y_a is None:
        return ({"x": x_a}, {"x": x_b})
    return ({"x": x_a, second: y_a}, {"x": x_b, second: y_b})


CASES: dict[str, Case] = {
    # tile: repeat_times from a shape (run-time), from a folded constant
    "tile_runtime": Case((Inp("x", (B, 4)), Inp("y", (B, B))), _two((2, 4), (3, 4), (3, 2), (2, 3)), fp16=True),
    # interpolation: output size from another tensor's shape, scale from a tensor (folded / run-time)
    "interp_size_from_shape": Case((Inp("x", (B, 3, B, B)), Inp("y", (B, 1, B, B))),
                                   _two((1, 3, 4, 5), (2, 3, 3, 4), (1, 1, 7, 6), (2, 1, 5, 9)), fp16=True),
    "interp_scale_tensor": Case((Inp("x", (B, 2, B, B)),), _two((1, 2, 4, 5), (2, 2, 3, 3)), fp16=True),
    "interp_scale_runtime": Case((Inp("x", (B, 2, B, B)), Inp("y", (B,))), _two((1, 2, 4, 5), (2, 2, 3, 3), (2,), (3,)),
                                 fp16=True),
    # fractional scales on run-time dims: from a tensor (1.5 / 1.0 at run time) or a constant 1.5 / 0.7, where
    # TensorRT's length-ratio sampling would differ from Paddle's 1 / scale
    "interp_fractional": Case((Inp("x", (B, 2, B, B)), Inp("y", (B,))), _two((1, 2, 5, 7), (2, 2, 4, 6), (2,), (1,)),
                              fp16=True),
    # slice bounds and strided_slice steps from shapes
    "slice_runtime": Case((Inp("x", (B, B, 6)), Inp("y", (B, B))), _two((2, 7, 6), (3, 9, 6), (2, 3), (3, 2)),
                          fp16=True),
    "strided_runtime_steps": Case((Inp("x", (B, B)), Inp("y", (B,))), _two((2, 11), (3, 13), (2,), (3,)), fp16=True),
    # concat / split axes arriving as tensors that fold to constants
    "axis_tensors": Case((Inp("x", (B, 4, 6)),), _two((2, 4, 6), (3, 4, 6)), fp16=True),
    # pad3d paddings from a shape, every mode
    "pad_runtime": Case((Inp("x", (B, 2, B, B)), Inp("y", (B,))), _two((1, 2, 5, 6), (2, 2, 4, 7), (1,), (2,)),
                        fp16=True),
    # split sections from a shape (the -1 section resolved at run time)
    "split_runtime_sections": Case((Inp("x", (B, 9)), Inp("y", (B,))), _two((2, 9), (3, 9), (2,), (4,)), fp16=True),
    # boolean masks: values broadcast over the masked positions (select), one value per true element
    # (NonZero + scatter), x[mask] = v (index_put + a whole-tensor set_value), masked_select
    "index_put_mask": Case((Inp("x", (B, 4, 5)), Inp("v", (5,))), _two((2, 4, 5), (3, 4, 5), (5,), (5,), "v"),
                           fp16=True),
    "index_put_mask_rows": Case((Inp("x", (B, 6)),), _two((2, 6), (3, 6)), fp16=True),
}


def build_cases(mode: str) -> dict:
    """Case name -> fn(*inputs); runs in the saving subprocess."""
    import paddle
    import paddle.nn.functional as F

    def tile_runtime(x, y):
        n = paddle.shape(y)[1]
        return paddle.tile(x, [n, 2]), paddle.tile(x, paddle.concat([paddle.shape(y)[:1], paddle.shape(y)[:1]]))

    def interp_size_from_shape(x, y):
        hw = paddle.shape(y)[2:]
        return (F.interpolate(x, size=hw, mode="bilinear", align_corners=False),
                F.interpolate(x, size=[paddle.shape(y)[2], paddle.shape(y)[3]], mode="nearest"))

    def interp_scale_tensor(x):
        s = paddle.full([2], 2.0, "float32") * 1.0
        return F.interpolate(x, scale_factor=s, mode="bilinear"), F.interpolate(x, scale_factor=s, mode="nearest")

    def interp_scale_runtime(x, y):
        s = paddle.shape(y).astype("float32")  # 2.0 or 3.0, known only at run time
        s2 = paddle.concat([s, s])
        return F.interpolate(x, scale_factor=s2, mode="nearest"), F.interpolate(x, scale_factor=s2, mode="bilinear")

    def interp_fractional(x, y):
        s = (paddle.shape(y).astype("float32") + 1.0) / 2.0  # 1.5 or 1.0, known only at run time
        s2 = paddle.concat([s, s * 0.5 + 0.5])
        return (F.interpolate(x, scale_factor=s2, mode="bilinear", align_corners=False, align_mode=0),
                F.interpolate(x, scale_factor=s2, mode="bilinear", align_corners=False, align_mode=1),
                F.interpolate(x, scale_factor=s2, mode="nearest"),
                F.interpolate(x, scale_factor=1.5, mode="bilinear", align_corners=False),
                F.interpolate(x, scale_factor=[0.7, 1.3], mode="nearest"))

    def slice_runtime(x, y):
        a, b = paddle.shape(y)[0], paddle.shape(y)[1]
        return (x[:, a:], x[:, : -b], x[:, a: a + b], paddle.slice(x, [1, 2], [b, 1], [paddle.shape(x)[1], 5]))

    def strided_runtime_steps(x, y):
        k = paddle.shape(y)[0]
        n = paddle.shape(x)[1]
        return (paddle.strided_slice(x, [1], [0], [n], [k]),
                paddle.strided_slice(x, [1], [n - 1], [0], [-k]),
                paddle.strided_slice(x, [1], [1], [-1], [k + 1]))

    def axis_tensors(x):
        ax = paddle.full([], 1, "int32") + 1
        c = paddle.concat([x, x * 2.0], axis=ax)
        parts = paddle.split(x, [2, 4], axis=ax)
        return c, parts[0], parts[1]

    if mode == "legacy":
        from tests.support.opcases import emit_legacy

        paddle.index_put = lambda x, indices, value, accumulate=False: emit_legacy(
            "index_put", {"x": [x], "indices": list(indices), "value": [value]}, {"accumulate": accumulate},
            outs=("out",))
        paddle.masked_select = lambda x, m: emit_legacy("masked_select", {"X": [x], "Mask": [m]}, {}, outs=("Y",))

    def index_put_mask(x, v):
        m, m2 = x > 0.3, x[:, :, 0] > 0
        out = [paddle.index_put(x, (m,), paddle.full([1], 7.0, "float32")), paddle.index_put(x, (m2,), v)]
        if mode != "legacy":  # Paddle 3.3.1's legacy setitem cannot take a bool mask
            out += [paddle.static.setitem(x * 1.0, m, 2.0), paddle.static.setitem(x * 1.0, m2, v)]
        return tuple(out)

    def index_put_mask_rows(x):
        m = x > 0.1
        picked = paddle.masked_select(x, m)
        return paddle.index_put(x, (m,), picked * 2.0 + 1.0), picked

    def split_runtime_sections(x, y):
        n = paddle.shape(y)[0]
        a, b = paddle.split(x, [n, -1], axis=1)
        c, d, e = paddle.split(x, [2, n, paddle.shape(x)[1] - n - 2], axis=1)
        return a, b, c, d, e

    def pad_runtime(x, y):
        # paddings as one int32 tensor (the legacy Paddings input; Paddle 2.x cannot take a list of Variables)
        n = paddle.reshape(paddle.shape(y)[0], [1]).astype("int32")
        pads = paddle.concat([n, paddle.full([2], 1, "int32"), n])
        return tuple(F.pad(x, pads, mode=m, value=0.5 if m == "constant" else 0.0)
                     for m in ("constant", "reflect", "replicate", "circular"))

    return {
        "pad_runtime": pad_runtime,
        "split_runtime_sections": split_runtime_sections,
        "index_put_mask": index_put_mask,
        "index_put_mask_rows": index_put_mask_rows,
        "tile_runtime": tile_runtime,
        "interp_size_from_shape": interp_size_from_shape,
        "interp_scale_tensor": interp_scale_tensor,
        "interp_scale_runtime": interp_scale_runtime,
        "interp_fractional": interp_fractional,
        "slice_runtime": slice_runtime,
        "strided_runtime_steps": strided_runtime_steps,
        "axis_tensors": axis_tensors,
    }


programs, test_fp32_dynamic, test_fp32_static, test_fp16 = standard_tests(__file__, "ops_gaps", CASES)
