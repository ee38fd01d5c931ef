"""Shared fixtures for the rnnlib tests: layer descriptions and a torch oracle.

Each recurrent layer is described once (how to call ours, how to call its
PyTorch twin) so that every test runs over RNN, LSTM and GRU, step and
sequence, without repeating itself.
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import rnnlib
import torch

PARAM_NAMES = ("W_ih", "W_hh", "b_ih", "b_hh")
# Shapes (N, T, D, H): T = 1 and N = 1 on purpose, plus a few ordinary ones.
SHAPES = [(1, 1, 3, 2), (3, 1, 2, 4), (1, 6, 1, 3), (2, 5, 3, 3), (4, 7, 5, 2)]


@dataclass
class Layer:
    """How to run one recurrent layer in rnnlib and in torch.

    ours(inputs, params) -> (outputs, cache); back(douts, cache) -> grads;
    theirs(module, tensors) -> outputs. outputs are lists; the LSTM's extra
    output is the final cell state (what lstm_backward's dc_last refers to).
    """

    name: str
    G: int
    step: bool
    states: tuple
    ours: Callable
    back: Callable
    make_module: Callable
    theirs: Callable

    @property
    def x_name(self):
        return "x_t" if self.step else "x"

    def inputs(self, rng, N, T, D, H, dtype=np.float64):
        x_shape = (N, D) if self.step else (N, T, D)
        arrays = {self.x_name: rng.standard_normal(x_shape)}
        for s in self.states:
            arrays[s] = rng.standard_normal((N, H))
        return {k: v.astype(dtype) for k, v in arrays.items()}


def random_params(rng, G, D, H, dtype=np.float64, scale=0.6):
    shapes = {"W_ih": (G * H, D), "W_hh": (G * H, H), "b_ih": (G * H,),
              "b_hh": (G * H,)}
    return {k: (scale * rng.standard_normal(s)).astype(dtype)
            for k, s in shapes.items()}


def _rnn_layer(nonlinearity, step):
    if step:
        return Layer(
            f"rnn_step_{nonlinearity}", 1, True, ("h_prev",),
            lambda a, p: _listify(rnnlib.rnn_step_forward(
                a["x_t"], a["h_prev"], p, nonlinearity)),
            lambda d, c: rnnlib.rnn_step_backward(d[0], c),
            lambda D, H: torch.nn.RNNCell(D, H, nonlinearity=nonlinearity),
            lambda m, t: [m(t["x_t"], t["h_prev"])],
        )
    return Layer(
        f"rnn_{nonlinearity}", 1, False, ("h0",),
        lambda a, p: _listify(rnnlib.rnn_forward(a["x"], a["h0"], p, nonlinearity)),
        lambda d, c: rnnlib.rnn_backward(d[0], c),
        lambda D, H: torch.nn.RNN(D, H, nonlinearity=nonlinearity, batch_first=True),
        lambda m, t: [m(t["x"], t["h0"][None])[0]],
    )


def _listify(result):
    """(out_1, ..., out_k, cache) -> ([out_1, ..., out_k], cache)."""
    *outs, cache = result
    return list(outs), cache


def _lstm_forward(a, p):
    h_seq, c_seq, cache = rnnlib.lstm_forward(a["x"], a["h0"], a["c0"], p)
    return [h_seq, c_seq[:, -1]], cache


def _torch_lstm(m, t):
    h_seq, (_, c_last) = m(t["x"], (t["h0"][None], t["c0"][None]))
    return [h_seq, c_last[0]]


LSTM_STEP = Layer(
    "lstm_step", 4, True, ("h_prev", "c_prev"),
    lambda a, p: _listify(rnnlib.lstm_step_forward(a["x_t"], a["h_prev"],
                                                   a["c_prev"], p)),
    lambda d, c: rnnlib.lstm_step_backward(d[0], d[1], c),
    torch.nn.LSTMCell,
    lambda m, t: list(m(t["x_t"], (t["h_prev"], t["c_prev"]))),
)
LSTM = Layer(
    "lstm", 4, False, ("h0", "c0"), _lstm_forward,
    lambda d, c: rnnlib.lstm_backward(d[0], c, dc_last=d[1]),
    lambda D, H: torch.nn.LSTM(D, H, batch_first=True),
    _torch_lstm,
)
GRU_STEP = Layer(
    "gru_step", 3, True, ("h_prev",),
    lambda a, p: _listify(rnnlib.gru_step_forward(a["x_t"], a["h_prev"], p)),
    lambda d, c: rnnlib.gru_step_backward(d[0], c),
    torch.nn.GRUCell,
    lambda m, t: [m(t["x_t"], t["h_prev"])],
)
GRU = Layer(
    "gru", 3, False, ("h0",),
    lambda a, p: _listify(rnnlib.gru_forward(a["x"], a["h0"], p)),
    lambda d, c: rnnlib.gru_backward(d[0], c),
    lambda D, H: torch.nn.GRU(D, H, batch_first=True),
    lambda m, t: [m(t["x"], t["h0"][None])[0]],
)

LAYERS = [_rnn_layer(nl, step) for nl in ("tanh", "relu") for step in (True, False)]
LAYERS += [LSTM_STEP, LSTM, GRU_STEP, GRU]


def run_torch(layer, inputs, params, douts, dtype=torch.float64):
    """Outputs and gradients (inputs and the four parameters) from torch."""
    D = inputs[layer.x_name].shape[-1]
    H = inputs[layer.states[0]].shape[-1]
    module = layer.make_module(D, H).to(dtype)
    rnnlib.params_to_torch(params, module)
    tensors = {k: torch.tensor(v, dtype=dtype, requires_grad=True)
               for k, v in inputs.items()}
    outs = layer.theirs(module, tensors)
    torch.autograd.backward(outs, [torch.tensor(d, dtype=dtype) for d in douts])
    grads = {k: t.grad.numpy() for k, t in tensors.items()}
    suffix = "" if layer.step else "_l0"
    for ours, theirs in rnnlib.torch_bridge.TORCH_NAMES.items():
        grads[ours] = getattr(module, theirs + suffix).grad.numpy()
    return [o.detach().numpy() for o in outs], grads


def scaled_error(actual, expected):
    """max |actual - expected| relative to the size of expected (at least 1)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    if actual.size == 0:
        return 0.0
    scale = max(1.0, float(np.max(np.abs(expected))))
    return float(np.max(np.abs(actual.astype(np.float64) - expected))) / scale


def numeric_check(layer, inputs, params, rng):
    """Relative errors of layer's backward vs centred differences, per array."""
    arrays = {**inputs, **params}
    outs, cache = layer.ours(arrays, arrays)
    douts = [rng.standard_normal(o.shape) for o in outs]
    grads = layer.back(douts, cache)

    def flat_outputs(_):
        outs, _cache = layer.ours(arrays, arrays)
        return np.concatenate([o.ravel() for o in outs])

    df = np.concatenate([d.ravel() for d in douts])
    return {name: rnnlib.rel_error(
                grads[name], rnnlib.numerical_gradient(flat_outputs, a, df))
            for name, a in arrays.items()}
