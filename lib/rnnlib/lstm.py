"""Long short-term memory (Hochreiter & Schmidhuber, 1997), PyTorch's form.

    i = sigmoid(W_ii x + b_ii + W_hi h + b_hi)      input gate
    f = sigmoid(W_if x + b_if + W_hf h + b_hf)      forget gate
    g = tanh(W_ig x + b_ig + W_hg h + b_hg)         candidate cell
    o = sigmoid(W_io x + b_io + W_ho h + b_ho)      output gate
    c' = f * c + i * g
    h' = o * tanh(c')

The four gates are stacked in the order i, f, g, o (G = 4): W_ih (4H, D),
W_hh (4H, H), b_ih (4H,), b_hh (4H,). Because both biases are simply added,
the pre-activations of all four gates are one matmul: a = W_ih x + W_hh h + b.
"""

import numpy as np

from ._checks import check_cell_args, check_upstream
from ._projections import previous_states, projection_grads
from .activations import sigmoid


def _gates(a, H):
    """Activate stacked pre-activations a (N, 4H) -> gates (N, 4H), i f g o."""
    gates = np.empty_like(a)
    gates[:, : 2 * H] = sigmoid(a[:, : 2 * H])  # i, f
    gates[:, 2 * H : 3 * H] = np.tanh(a[:, 2 * H : 3 * H])  # g
    gates[:, 3 * H :] = sigmoid(a[:, 3 * H :])  # o
    return gates


def _split(gates, H):
    """Views i, f, g, o of stacked gates (..., 4H), each (..., H)."""
    return (gates[..., k * H : (k + 1) * H] for k in range(4))


def _cell_backward(dh_next, dc_next, c_prev, gates, tanh_c):
    """Gradient of the stacked pre-activations, and dc_prev, for one step."""
    i, f, g, o = _split(gates, tanh_c.shape[1])  # each (N, H), views
    dc = dc_next + dh_next * o * (1 - tanh_c * tanh_c)  # c' reaches h' via tanh
    da = np.concatenate(
        [
            dc * g * i * (1 - i),  # sigmoid' = s (1 - s)
            dc * c_prev * f * (1 - f),
            dc * i * (1 - g * g),  # tanh' = 1 - tanh^2
            dh_next * tanh_c * o * (1 - o),
        ],
        axis=1,
    )  # (N, 4H)
    return da, dc * f


def lstm_step_forward(x_t, h_prev, c_prev, params):
    """One LSTM step (equations in the module docstring).

    Parameters
    ----------
    x_t : (N, D) array
    h_prev, c_prev : (N, H) arrays, previous hidden and cell state
    params : dict with W_ih (4H, D), W_hh (4H, H), b_ih (4H,), b_hh (4H,),
        gates stacked i, f, g, o

    Returns
    -------
    h_next, c_next : (N, H) arrays
    cache : dict with x_t, h_prev, c_prev, the activated gates (N, 4H),
        tanh(c_next) (N, H), h_next and the params

    Taught in: Chapter 5 (LSTM and GRU).
    """
    states = {"h_prev": h_prev, "c_prev": c_prev}
    x_t, states, p = check_cell_args(4, "x_t", x_t, states, params)
    h_prev, c_prev = states["h_prev"], states["c_prev"]
    H = h_prev.shape[1]
    a = x_t @ p["W_ih"].T + p["b_ih"] + h_prev @ p["W_hh"].T + p["b_hh"]  # (N, 4H)
    gates = _gates(a, H)  # (N, 4H)
    i, f, g, o = _split(gates, H)  # each (N, H)
    c_next = f * c_prev + i * g  # (N, H)
    tanh_c = np.tanh(c_next)
    h_next = o * tanh_c  # (N, H)
    cache = {"x_t": x_t, "h_prev": h_prev, "c_prev": c_prev, "gates": gates,
             "tanh_c": tanh_c, "h_next": h_next, "params": p}
    return h_next, c_next, cache


def lstm_step_backward(dh_next, dc_next, cache):
    """Backward pass of one LSTM step.

    ``dh_next``, ``dc_next`` (N, H) are the gradients reaching h_next and
    c_next. The cell state gets ``dc = dc_next + dh_next * o * (1 - tanh(c)^2)``;
    each gate's pre-activation gets dc (or dh) times the other factor of its
    product times its activation's derivative; see ``_cell_backward``.

    Returns a dict with keys x_t (N, D), h_prev (N, H), c_prev (N, H),
    W_ih, W_hh, b_ih, b_hh.

    Taught in: Chapter 5 (LSTM and GRU).
    """
    p = cache["params"]
    dh_next = check_upstream("dh_next", dh_next, cache["h_next"], "(N, H)")
    dc_next = check_upstream("dc_next", dc_next, cache["h_next"], "(N, H)")
    da, dc_prev = _cell_backward(dh_next, dc_next, cache["c_prev"], cache["gates"],
                                 cache["tanh_c"])  # (N, 4H), (N, H)
    return {
        "x_t": da @ p["W_ih"],  # (N, D)
        "h_prev": da @ p["W_hh"],  # (N, H)
        "c_prev": dc_prev,  # (N, H)
        **projection_grads(cache["x_t"], cache["h_prev"], da, da),
    }


def lstm_forward(x, h0, c0, params):
    """Run the LSTM over a whole sequence, batch first.

    Parameters
    ----------
    x : (N, T, D) array
    h0, c0 : (N, H) arrays, initial hidden and cell state
    params : dict with W_ih (4H, D), W_hh (4H, H), b_ih (4H,), b_hh (4H,)

    Returns
    -------
    h_seq : (N, T, H) array, the hidden state after every step
    c_seq : (N, T, H) array, the cell state after every step
    cache : dict with x, h0, c0, h_seq, c_seq, gates (N, T, 4H),
        tanh_c (N, T, H) and the params

    Taught in: Chapter 5 (LSTM and GRU).
    """
    x, states, p = check_cell_args(4, "x", x, {"h0": h0, "c0": c0}, params)
    h0, c0 = states["h0"], states["c0"]
    N, T, _ = x.shape
    H = h0.shape[1]
    # The input's share of every gate does not depend on h: one matmul for all t.
    a_x = x @ p["W_ih"].T + (p["b_ih"] + p["b_hh"])  # (N, T, 4H)
    W_hh_T = p["W_hh"].T  # (H, 4H)
    gates = np.empty_like(a_x)  # (N, T, 4H)
    h_seq = np.empty((N, T, H), dtype=x.dtype)
    c_seq = np.empty_like(h_seq)
    tanh_c = np.empty_like(h_seq)
    h, c = h0, c0
    for t in range(T):
        gates[:, t] = _gates(a_x[:, t] + h @ W_hh_T, H)  # (N, 4H)
        i, f, g, o = _split(gates[:, t], H)  # each (N, H)
        c = c_seq[:, t] = f * c + i * g
        tanh_c[:, t] = np.tanh(c)
        h = h_seq[:, t] = o * tanh_c[:, t]
    cache = {"x": x, "h0": h0, "c0": c0, "h_seq": h_seq, "c_seq": c_seq,
             "gates": gates, "tanh_c": tanh_c, "params": p}
    return h_seq, c_seq, cache


def lstm_backward(dh_seq, cache, dc_last=None):
    """Backpropagation through time for :func:`lstm_forward`.

    Parameters
    ----------
    dh_seq : (N, T, H) array, dLoss/dh_t from above for every step
    cache : from :func:`lstm_forward`
    dc_last : (N, H) array, optional, dLoss/dc_T for the final cell state
        (e.g. when it is passed on to a next window); zero if omitted.

    Returns a dict with keys x (N, T, D), h0 (N, H), c0 (N, H), W_ih, W_hh,
    b_ih, b_hh. Walking back in time, the gradients reaching h_t and c_t are
    what comes from above plus what flows back from step t+1.

    Taught in: Chapter 5 (LSTM and GRU).
    """
    h_seq, c_seq, p = cache["h_seq"], cache["c_seq"], cache["params"]
    dh_seq = check_upstream("dh_seq", dh_seq, h_seq, "(N, T, H)")
    dc = np.zeros_like(cache["c0"])
    if dc_last is not None:
        dc = check_upstream("dc_last", dc_last, cache["c0"], "(N, H)")
    T = h_seq.shape[1]
    c_prev_seq = previous_states(cache["c0"], c_seq)  # (N, T, H)
    da = np.empty_like(cache["gates"])  # (N, T, 4H)
    dh = np.zeros_like(cache["h0"])  # nothing flows back from after step T
    for t in reversed(range(T)):
        da[:, t], dc = _cell_backward(dh_seq[:, t] + dh, dc, c_prev_seq[:, t],
                                      cache["gates"][:, t], cache["tanh_c"][:, t])
        dh = da[:, t] @ p["W_hh"]  # (N, H)
    h_prev_seq = previous_states(cache["h0"], h_seq)  # (N, T, H)
    return {
        "x": da @ p["W_ih"],  # (N, T, D)
        "h0": dh,  # (N, H)
        "c0": dc,  # (N, H)
        **projection_grads(cache["x"], h_prev_seq, da, da),
    }
