"""Paddle's ``rnn`` op (paddle.nn.LSTM / GRU / SimpleRNN) as TensorRT loops over the time axis.

Per layer and direction: the input projection ``x W_ih^T + b_ih`` of every step is one matrix multiply
before the loop; the loop iterates over it (a reverse iterator for the backward direction), keeps h (and c)
in recurrences and emits h per step (CONCATENATE forward, REVERSE backward, so both come out in time
order) and the last h / c (LAST_VALUE). Cell formulas as Paddle's (paddle.nn.LSTMCell / GRUCell, the
kernels of the ``rnn`` op), with gates split from a [B, G, H] view of the G*H gate columns:

* LSTM, gates i, f, c~, o: ``c = f*c + i*tanh(c~)``, ``h = o*tanh(c)`` (i, f, o through sigmoid);
* GRU, gates r, z, c~: ``r, z = sigmoid(x_r + h_r), sigmoid(x_z + h_z)``,
  ``c~ = tanh(x_c + r * (h W_hc^T + b_hc))`` (reset applied after the matmul), ``h = z*h + (1-z)*c~``;
* RNN_TANH / RNN_RELU: ``h = act(x W_ih^T + b_ih + h W_hh^T + b_hh)``.

The legacy LoD ops ``lstm`` / ``gru`` (fluid dynamic_lstm / dynamic_gru) work on LoD tensors, which
TensorRT has no form for; Paddle 3.3.1 no longer has an API that appends them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from repogen.trt.helpers import tensors as H
from repogen.trt.converter_table import converter, refuse

_GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}


def _matmul(ctx: Any, a: Any, b: Any) -> Any:
    none = ctx.trt.MatrixOperation.NONE
    return ctx.named(ctx.network.add_matrix_multiply(a, none, b, none)).get_output(0)


def _gate(ctx: Any, g: Any, k: int) -> Any:
    """Gate k of g [B, G, H] as [B, H]."""
    idx = ctx.const(np.asarray(k, dtype=np.int32))
    return ctx.named(ctx.network.add_gather(g, idx, 1)).get_output(0)


def _split_gates(ctx: Any, t: Any, gates: int, hidden: int) -> list[Any]:
    if gates == 1:
        return [t]
    layer = ctx.named(ctx.network.add_shuffle(t))
    layer.reshape_dims = (0, gates, hidden)  # 0 copies the (run-time) batch dim
    return [_gate(ctx, layer.get_output(0), k) for k in range(gates)]


def _act(ctx: Any, x: Any, kind: str) -> Any:
    return H.activation(ctx, x, kind)


def _cell(ctx: Any, mode: str, xg: Any, h: Any, c: Any, w_hh: Any, b_hh: Any, hidden: int) -> tuple[Any, Any]:
    """One step: xg = this step's x W_ih^T + b_ih [B, G*H]; returns the new (h, c)."""
    gates = _GATES[mode]
    hg = H.add(ctx, _matmul(ctx, h, w_hh), b_hh)
    if mode == "GRU":
        xr, xz, xc = _split_gates(ctx, xg, 3, hidden)
        hr, hz, hc = _split_gates(ctx, hg, 3, hidden)
        r = _act(ctx, H.add(ctx, xr, hr), "SIGMOID")
        z = _act(ctx, H.add(ctx, xz, hz), "SIGMOID")
        cand = _act(ctx, H.add(ctx, xc, H.mul(ctx, r, hc)), "TANH")
        # z*h + (1-z)*c~ written as c~ + z*(h - c~), as Paddle computes it
        return H.add(ctx, cand, H.mul(ctx, z, H.sub(ctx, h, cand))), None
    pre = H.add(ctx, xg, hg)
    if mode in ("RNN_TANH", "RNN_RELU"):
        return _act(ctx, pre, "TANH" if mode == "RNN_TANH" else "RELU"), None
    i, f, g, o = _split_gates(ctx, pre, gates, hidden)
    i, f, o = (_act(ctx, t, "SIGMOID") for t in (i, f, o))
    c_new = H.add(ctx, H.mul(ctx, f, c), H.mul(ctx, i, _act(ctx, g, "TANH")))
    return H.mul(ctx, o, _act(ctx, c_new, "TANH")), c_new


def _state(ctx: Any, s: Any, k: int) -> Any:
    """Row k of a [layers*directions, B, H] state as [B, H]."""
    idx = ctx.const(np.asarray(k, dtype=np.int32))
    return ctx.named(ctx.network.add_gather(s, idx, 0)).get_output(0)


def _trip_count(ctx: Any, x: Any) -> Any:
    """x's time dim (axis 0) as the 0-D INT32 tensor TensorRT's COUNT trip limit and loop outputs take."""
    t = H.dims_of(ctx, x)[0]
    if isinstance(t, (int, np.integer)):
        return ctx.const(np.asarray(int(t), dtype=np.int32))
    return ctx.cast(H.reshape(ctx, t, []), ctx.trt.DataType.INT32)


def _direction(ctx: Any, mode: str, x: Any, count: Any, weights: list[np.ndarray], h0: Any, c0: Any,
               hidden: int, backward: bool) -> tuple[Any, Any, Any]:
    """One layer, one direction: (outputs [T, B, H], last h, last c or None)."""
    trt = ctx.trt
    w_ih, w_hh, b_ih, b_hh = weights
    wx = ctx.const(np.ascontiguousarray(w_ih.T)[None])  # [1, I, G*H]: broadcasts over the time dim
    xg_all = H.add(ctx, _matmul(ctx, x, wx), ctx.const(b_ih.reshape(1, 1, -1)))
    loop = ctx.network.add_loop()
    loop.add_trip_limit(count, trt.TripLimit.COUNT)
    xg = ctx.named(loop.add_iterator(xg_all, 0, backward)).get_output(0)
    h_rec = ctx.named(loop.add_recurrence(h0))
    c_rec = ctx.named(loop.add_recurrence(c0)) if c0 is not None else None
    h, c = _cell(ctx, mode, xg, h_rec.get_output(0), c_rec.get_output(0) if c_rec else None,
                 ctx.const(np.ascontiguousarray(w_hh.T)), ctx.const(b_hh.reshape(1, -1)), hidden)
    h_rec.set_input(1, h)
    if c_rec is not None:
        c_rec.set_input(1, c)
    kind = trt.LoopOutput.REVERSE if backward else trt.LoopOutput.CONCATENATE
    seq = ctx.named(loop.add_loop_output(h, kind, 0))
    seq.set_input(1, count)
    last_h = ctx.named(loop.add_loop_output(h_rec.get_output(0), trt.LoopOutput.LAST_VALUE)).get_output(0)
    last_c = (ctx.named(loop.add_loop_output(c_rec.get_output(0), trt.LoopOutput.LAST_VALUE)).get_output(0)
              if c_rec is not None else None)
    return seq.get_output(0), last_h, last_c


@converter("rnn")
def rnn(ctx, op):
    mode = str(ctx.attr(op, "mode", default="RNN_TANH"))
    if mode not in _GATES:
        raise ctx.fail(f"mode {mode!r} is not one of {', '.join(_GATES)}")
    if op.input("sequence_length") is not None:
        raise ctx.fail("sequence_length (per-sample lengths, masked steps) is not supported: pass padded "
                       "sequences without it")
    layers = int(ctx.attr(op, "num_layers", default=1))
    dirs = 2 if bool(ctx.attr(op, "is_bidirec", default=False)) else 1
    hidden = int(ctx.attr(op, "hidden_size"))
    gates = _GATES[mode]
    names = op.inputs.get("weight_list") or []
    if len(names) != 4 * layers * dirs:
        raise ctx.fail(f"weight_list has {len(names)} tensors, {layers} layer(s) x {dirs} direction(s) need "
                       f"{4 * layers * dirs}")
    arrays = [ctx.const_value(n) for n in names]
    if any(a is None for a in arrays):
        raise ctx.fail("weight_list tensors must be parameters (known when converting)")
    arrays = [np.asarray(a, dtype=np.float32) for a in arrays]
    half = 2 * layers * dirs  # weights first, then biases, each (W_ih, W_hh) / (b_ih, b_hh) per layer, direction
    states = ctx.inputs(op, "pre_state")
    if len(states) != (2 if mode == "LSTM" else 1):
        raise ctx.fail(f"{mode} takes {2 if mode == 'LSTM' else 1} initial state tensor(s), got {len(states)}")
    x = ctx.input(op, "x")
    count = _trip_count(ctx, x)
    last_h, last_c = [], []
    for layer in range(layers):
        outs = []
        for d in range(dirs):
            k = layer * dirs + d
            w_ih, w_hh = arrays[2 * k], arrays[2 * k + 1]
            b_ih, b_hh = arrays[half + 2 * k], arrays[half + 2 * k + 1]
            if w_ih.shape[0] != gates * hidden or w_hh.shape != (gates * hidden, hidden):
                raise ctx.fail(f"layer {layer} direction {d}: weights {w_ih.shape} / {w_hh.shape} do not fit "
                               f"{gates} gates of hidden size {hidden}")
            h0 = _state(ctx, states[0], k)
            c0 = _state(ctx, states[1], k) if mode == "LSTM" else None
            seq, h, c = _direction(ctx, mode, x, count, [w_ih, w_hh, b_ih, b_hh], h0, c0, hidden, d == 1)
            outs.append(seq)
            last_h.append(h)
            last_c.append(c)
        x = H.concat(ctx, outs, 2)
    ctx.output(op, x)
    finals = [last_h] + ([last_c] if mode == "LSTM" else [])
    for name, per_layer in zip(op.outputs.get("state") or [], finals):
        ctx.set(name, H.concat(ctx, [H.unsqueeze(ctx, t, [0]) for t in per_layer], 0))


# what these converters refuse (repogen ops --refused, docs/refused.md)
refuse(("rnn",), "`sequence_length` given (per-sample lengths)",
       "masked steps have no TensorRT RNN form: feed padded batches")
