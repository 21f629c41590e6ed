"""paddle.nn.LSTM / GRU / SimpleRNN (the `rnn` op) against Paddle, converted into TensorRT loops.

Every case has a dynamic batch and a dynamic sequence length and runs at two shapes, as 2.x programs, PIR
and PIR with static dims (Paddle 3.3.1 PIR builds default zero states with `full_with_tensor`).
"""

from __future__ import annotations

import pytest

from tests.support.opcases import Case, Inp, standard_tests

B = T = -1
H = 4


def _x(time_major=False):
    return Inp("x", (T, B, 3) if time_major else (B, T, 3))


def _runs(time_major=False, states=0):
    shapes = []
    for b, t in ((2, 5), (3, 2)):
        run = {"x": (t, b, 3) if time_major else (b, t, 3)}
        for k in range(states):
            run[("h0", "c0")[k]] = (STATE_ROWS, b, H)
        shapes.append(run)
    return tuple(shapes)


STATE_ROWS = 4  # 2 layers x 2 directions in the explicit-state cases


def _states(n):
    return tuple(Inp(name, (STATE_ROWS, B, H)) for name in ("h0", "c0")[:n])


CASES: dict[str, Case] = {
    "lstm": Case((_x(),), _runs(), fp16=True),
    "lstm_2layer_bidirect": Case((_x(),), _runs(), fp16=True),
    "lstm_time_major_bidirect": Case((_x(True),), _runs(True)),
    "gru": Case((_x(),), _runs(), fp16=True),
    "gru_2layer_bidirect": Case((_x(),), _runs(), fp16=True),
    "gru_time_major": Case((_x(True),), _runs(True)),
    "rnn_tanh_bidirect": Case((_x(),), _runs()),
    "rnn_relu_2layer": Case((_x(),), _runs()),
    "lstm_states": Case((_x(),) + _states(2), _runs(states=2), fp16=True, tags=("states",)),
    "gru_states_time_major": Case((_x(True),) + _states(1), _runs(True, states=1), tags=("states",)),
}


def build_cases(mode: str) -> dict:
    """Case name -> fn(*inputs); runs in the saving subprocess."""
    import paddle.nn as nn

    def net(cls, layers=1, direction="forward", time_major=False, **kw):
        def run(x, *states):
            # built inside the program guard so the parameters belong to the saved program
            layer = cls(3, H, num_layers=layers, direction=direction, time_major=time_major, **kw)
            init = None if not states else (tuple(states) if len(states) == 2 else states[0])
            y, final = layer(x, init)
            return (y, *final) if isinstance(final, tuple) else (y, final)
        return run

    return {
        "lstm": net(nn.LSTM),
        "lstm_2layer_bidirect": net(nn.LSTM, 2, "bidirect"),
        "lstm_time_major_bidirect": net(nn.LSTM, 1, "bidirect", time_major=True),
        "gru": net(nn.GRU),
        "gru_2layer_bidirect": net(nn.GRU, 2, "bidirect"),
        "gru_time_major": net(nn.GRU, time_major=True),
        "rnn_tanh_bidirect": net(nn.SimpleRNN, 1, "bidirect"),
        "rnn_relu_2layer": net(nn.SimpleRNN, 2, activation="relu"),
        "lstm_states": net(nn.LSTM, 2, "bidirect"),
        "gru_states_time_major": net(nn.GRU, 2, "bidirect", time_major=True),
    }


programs, test_fp32_dynamic, test_fp32_static, test_fp16 = standard_tests(__file__, "ops_rnn", CASES)


def test_sequence_length_is_refused(programs, tmp_path):
    """An rnn op given per-sample lengths cannot be converted (masked steps): a ConversionError naming it."""
    from repogen.errors import ConversionError
    from repogen.paddle import load_model
    from repogen.trt import numpy_trt
    from repogen.trt.convert import convert_graph
    from repogen.trt.profiles import make_profiles

    graph = load_model(programs["legacy"] / "gru")
    rnn = next(op for op in graph.ops if op.type == "rnn")
    rnn.inputs["sequence_length"] = [graph.inputs[0]]
    profiles = make_profiles(graph.input_values(), min_shapes=["x:1x1x3"], max_shapes=["x:4x6x3"])
    with pytest.raises(ConversionError, match="rnn.*sequence_length"):
        convert_graph(graph, numpy_trt, profiles=profiles)
