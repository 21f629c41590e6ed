"""Control flow: PIR ``if`` / legacy ``conditional_block`` + ``select_input`` through IIfConditional, PIR and
legacy ``while`` through an ILoop with a WHILE trip limit.

TensorRT's If takes bool/int32/half/float tensors only (If operator page): int64 branch results cross the
conditional as int32 and are cast back (values beyond int32 would not survive), int64 values the branches
read from outside are used directly (branches may read outside tensors). Legacy ``conditional_block``
sub-blocks are converted in place (both run; ``select_input`` then picks one through an IIfConditional),
which gives the same values as Paddle's lazy execution for side-effect-free blocks.
"""

from __future__ import annotations

from typing import Any

from repogen.trt.helpers import tensors as H
from repogen.trt.converter_table import converter

_IF_TYPES = ("BOOL", "INT32", "HALF", "FLOAT")


def _block(ctx: Any, index: int) -> Any:
    return ctx.graph.blocks[index]


def _convert(ctx: Any, ops: list) -> None:
    ctx.convert_ops([op for op in ops if op.type != "yield"], ctx.position)


def _scalar_bool(ctx: Any, t: Any) -> Any:
    """A condition as the 0-D BOOL tensor trip limits and conditions take."""
    if t.dtype != ctx.trt.DataType.BOOL:
        t = ctx.cast(t, ctx.trt.DataType.BOOL)
    return H.reshape(ctx, t, []) if len(t.shape) else t


def _read_names(ctx: Any, ops: list) -> list[str]:
    """Names the ops (and the blocks they own) read, in first-use order."""
    seen: dict[str, None] = {}
    for op in ops:
        for n in op.input_names():
            seen.setdefault(n, None)
        for b in op.blocks:
            for n in _read_names(ctx, _block(ctx, b).ops):
                seen.setdefault(n, None)
    return list(seen)


def _yielded(ctx: Any, ops: list) -> list[str]:
    last = ops[-1] if ops else None
    if last is None or last.type != "yield":
        raise ctx.fail("a PIR control-flow block must end in yield")
    return list(last.inputs.get("x") or [])


def _through_if(ctx: Any, ifc: Any, t: Any) -> Any:
    """t as the conditional's output type (int64 crosses as int32)."""
    return ctx.cast(t, ctx.trt.DataType.INT32) if t.dtype == ctx.trt.DataType.INT64 else t


def _if_outputs(ctx: Any, ifc: Any, trues: list[Any], falses: list[Any]) -> list[Any]:
    outs = []
    for t, f in zip(trues, falses):
        if t.dtype != f.dtype:
            f = ctx.cast(f, t.dtype)
        wide = t.dtype == ctx.trt.DataType.INT64
        t, f = _through_if(ctx, ifc, t), _through_if(ctx, ifc, f)
        if t.dtype.name not in _IF_TYPES:
            raise ctx.fail(f"a branch result of type {t.dtype.name} cannot leave a TensorRT conditional")
        o = ctx.named(ifc.add_output(t, f)).get_output(0)
        outs.append(ctx.cast(o, ctx.trt.DataType.INT64) if wide else o)
    return outs


@converter("if")
def if_(ctx, op):
    if len(op.blocks) != 2:
        raise ctx.fail(f"`if` owns {len(op.blocks)} blocks, expected 2 (true, false)")
    ifc = ctx.network.add_if_conditional()
    ctx.named(ifc.set_condition(_scalar_bool(ctx, ctx.input(op, "cond"))))
    blocks = [_block(ctx, b) for b in op.blocks]
    # outside values the branches read enter through IIfConditionalInputLayers, so their layers run only
    # when their branch is chosen; values TensorRT's If does not carry (int64) are read directly
    saved: dict[str, Any] = {}
    for name in _read_names(ctx, [o for b in blocks for o in b.ops]):
        t = ctx.tensors.get(name)
        if t is not None and t.dtype.name in _IF_TYPES:
            saved[name] = t
            ctx.tensors[name] = ctx.named(ifc.add_input(t)).get_output(0)
    results = []
    try:
        for b in blocks:
            _convert(ctx, b.ops)
            results.append([ctx.get(n) for n in _yielded(ctx, b.ops)])
    finally:
        ctx.tensors.update(saved)
    names = op.outputs.get("out") or []
    if len(results[0]) != len(names) or len(results[1]) != len(names):
        raise ctx.fail(f"branches yield {len(results[0])} / {len(results[1])} values for {len(names)} results")
    for name, t in zip(names, _if_outputs(ctx, ifc, results[0], results[1])):
        ctx.set(name, t)


@converter("conditional_block")
def conditional_block(ctx, op):
    # the block assigns the op's outputs; select_input picks between the two blocks' results
    for b in op.blocks:
        _convert(ctx, _block(ctx, b).ops)


@converter("select_input")
def select_input(ctx, op):
    xs = ctx.inputs(op, "x")
    if len(xs) != 2:
        raise ctx.fail(f"select_input over {len(xs)} values: only 2 (an if/else) are supported")
    ifc = ctx.network.add_if_conditional()
    ctx.named(ifc.set_condition(_scalar_bool(ctx, ctx.input(op, "mask"))))
    ctx.output(op, _if_outputs(ctx, ifc, [xs[1]], [xs[0]])[0])  # mask 1 selects x[1]


def _loop_state(ctx: Any, loop: Any, init: Any) -> Any:
    return ctx.named(loop.add_recurrence(init))


def _finish_loop(ctx: Any, loop: Any, recs: list[Any], nexts: list[Any]) -> list[Any]:
    outs = []
    for rec, nxt in zip(recs, nexts):
        if nxt.dtype != rec.get_output(0).dtype:
            nxt = ctx.cast(nxt, rec.get_output(0).dtype)
        rec.set_input(1, nxt)
        outs.append(ctx.named(loop.add_loop_output(rec.get_output(0), ctx.trt.LoopOutput.LAST_VALUE)).get_output(0))
    return outs


@converter("while")
def while_(ctx, op):
    if len(op.blocks) != 1:
        raise ctx.fail(f"`while` owns {len(op.blocks)} blocks, expected 1")
    body = _block(ctx, op.blocks[0])
    pir = bool(body.ops) and body.ops[-1].type == "yield"
    loop = ctx.network.add_loop()
    cond_name = op.input("cond")
    cond_rec = _loop_state(ctx, loop, _scalar_bool(ctx, ctx.input(op, "cond")))
    ctx.named(loop.add_trip_limit(cond_rec.get_output(0), ctx.trt.TripLimit.WHILE))
    if pir:
        # body block arguments (values %-1, %-2 ...) take `inputs` in order; yield gives cond, then the next values
        inputs = op.inputs.get("inputs") or []
        args = [n for n in body.values if n.startswith("%-")]
        if len(args) != len(inputs):
            raise ctx.fail(f"while body has {len(args)} block arguments for {len(inputs)} inputs")
        recs = [_loop_state(ctx, loop, ctx.get(n)) for n in inputs]
        for a, rec in zip(args, recs):
            ctx.tensors[a] = rec.get_output(0)
        _convert(ctx, body.ops)
        ys = _yielded(ctx, body.ops)
        if len(ys) != len(inputs) + 1:
            raise ctx.fail(f"while body yields {len(ys)} values, expected the condition and {len(inputs)}")
        next_cond, nexts = ctx.get(ys[0]), [ctx.get(n) for n in ys[1:]]
        names = op.outputs.get("out") or []
    else:
        # legacy: the loop state is the variables the body writes in place (the op's outputs)
        names = [n for n in op.outputs.get("out") or [] if n != cond_name]
        recs = [_loop_state(ctx, loop, ctx.get(n)) for n in names]
        for n, rec in zip(names, recs):
            ctx.tensors[n] = rec.get_output(0)
        ctx.tensors[cond_name] = cond_rec.get_output(0)
        _convert(ctx, body.ops)
        next_cond, nexts = ctx.get(cond_name), [ctx.get(n) for n in names]
    outs = _finish_loop(ctx, loop, [cond_rec] + recs, [_scalar_bool(ctx, next_cond)] + nexts)
    if not pir:
        ctx.tensors[cond_name] = H.reshape(ctx, outs[0], [1])  # Paddle's condition variable is [1]
    for name, t in zip(names, outs[1:]):
        ctx.set(name, t)

