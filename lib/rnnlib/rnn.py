"""A vanilla (Elman) RNN: one step, then a whole sequence from the same math.

    h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)      (or relu)

Shapes: x_t (N, D), x (N, T, D), h (N, H); parameters in PyTorch's layout
(G = 1): W_ih (H, D), W_hh (H, H), b_ih (H,), b_hh (H,).
"""

import numpy as np

from ._checks import check_cell_args, check_upstream
from ._projections import previous_states, projection_grads

NONLINEARITIES = ("tanh", "relu")


def _activate(a, nonlinearity):
    return np.tanh(a) if nonlinearity == "tanh" else np.maximum(a, 0)


def _activation_grad(h, nonlinearity):
    """d h / d a, written with the output h so the cache needs only h."""
    return 1 - h * h if nonlinearity == "tanh" else (h > 0).astype(h.dtype)


def _check_nonlinearity(nonlinearity):
    if nonlinearity not in NONLINEARITIES:
        raise ValueError(
            f"nonlinearity is {nonlinearity!r}; expected one of {NONLINEARITIES}"
        )


def rnn_step_forward(x_t, h_prev, params, nonlinearity="tanh"):
    """One RNN step: ``h_next = tanh(W_ih x_t + b_ih + W_hh h_prev + b_hh)``.

    Parameters
    ----------
    x_t : (N, D) array, the inputs at this time step
    h_prev : (N, H) array, the previous hidden state
    params : dict with W_ih (H, D), W_hh (H, H), b_ih (H,), b_hh (H,)
    nonlinearity : "tanh" or "relu", as in ``torch.nn.RNN``

    Returns
    -------
    h_next : (N, H) array
    cache : dict with x_t, h_prev, h_next, the params and the nonlinearity

    Taught in: Chapter 2 (An RNN cell in NumPy).
    """
    _check_nonlinearity(nonlinearity)
    x_t, states, p = check_cell_args(1, "x_t", x_t, {"h_prev": h_prev}, params)
    h_prev = states["h_prev"]
    a = x_t @ p["W_ih"].T + p["b_ih"] + h_prev @ p["W_hh"].T + p["b_hh"]  # (N, H)
    h_next = _activate(a, nonlinearity)  # (N, H)
    cache = {"x_t": x_t, "h_prev": h_prev, "h_next": h_next, "params": p,
             "nonlinearity": nonlinearity}
    return h_next, cache


def rnn_step_backward(dh_next, cache):
    """Backward pass of one RNN step.

    ``dh_next`` (N, H) is dLoss/dh_next. With ``da = dh_next * f'(a)``, where
    f' is ``1 - h_next**2`` for tanh and ``[h_next > 0]`` for relu:
    ``dx_t = da W_ih``, ``dh_prev = da W_hh``, ``dW_ih = da^T x_t``,
    ``dW_hh = da^T h_prev``, ``db_ih = db_hh = sum_n da``.

    Returns a dict with keys x_t (N, D), h_prev (N, H), W_ih, W_hh, b_ih, b_hh
    (each shaped like its parameter).

    Taught in: Chapter 3 (Backpropagation through time).
    """
    h_next, p = cache["h_next"], cache["params"]
    dh_next = check_upstream("dh_next", dh_next, h_next, "(N, H)")
    da = dh_next * _activation_grad(h_next, cache["nonlinearity"])  # (N, H)
    return {
        "x_t": da @ p["W_ih"],  # (N, D)
        "h_prev": da @ p["W_hh"],  # (N, H)
        **projection_grads(cache["x_t"], cache["h_prev"], da, da),
    }


def rnn_forward(x, h0, params, nonlinearity="tanh"):
    """Run the RNN over a whole sequence, batch first.

    ``h_t = f(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)`` for t = 1..T.

    Parameters
    ----------
    x : (N, T, D) array
    h0 : (N, H) array, the initial hidden state
    params : dict with W_ih (H, D), W_hh (H, H), b_ih (H,), b_hh (H,)
    nonlinearity : "tanh" or "relu"

    Returns
    -------
    h_seq : (N, T, H) array, the hidden state after every step
    cache : dict with x, h0, h_seq, the params and the nonlinearity

    Taught in: Chapter 2 (An RNN cell in NumPy).
    """
    _check_nonlinearity(nonlinearity)
    x, states, p = check_cell_args(1, "x", x, {"h0": h0}, params)
    h0 = states["h0"]
    N, T, _ = x.shape
    # The input's share of every step does not depend on h: one matmul for all t.
    a_x = x @ p["W_ih"].T + (p["b_ih"] + p["b_hh"])  # (N, T, H)
    h_seq = np.empty((N, T, h0.shape[1]), dtype=x.dtype)  # (N, T, H)
    h = h0
    for t in range(T):
        h = _activate(a_x[:, t] + h @ p["W_hh"].T, nonlinearity)  # (N, H)
        h_seq[:, t] = h
    cache = {"x": x, "h0": h0, "h_seq": h_seq, "params": p,
             "nonlinearity": nonlinearity}
    return h_seq, cache


def rnn_backward(dh_seq, cache):
    """Backpropagation through time for :func:`rnn_forward`.

    ``dh_seq`` (N, T, H) holds dLoss/dh_t coming from above (e.g. an output
    layer). Going backwards in time, the gradient reaching h_t is
    ``dh_seq[:, t]`` plus what flows back from step t+1; then, as in
    :func:`rnn_step_backward`, ``da_t = dh_t * f'(a_t)`` and
    ``dh_{t-1} = da_t W_hh``. Shared weights sum their gradients over t.

    Returns a dict with keys x (N, T, D), h0 (N, H), W_ih, W_hh, b_ih, b_hh.

    Taught in: Chapter 3 (Backpropagation through time).
    """
    h_seq, p = cache["h_seq"], cache["params"]
    dh_seq = check_upstream("dh_seq", dh_seq, h_seq, "(N, T, H)")
    T = h_seq.shape[1]
    da = np.empty_like(h_seq)  # (N, T, H) gradient of every pre-activation
    dh_prev = np.zeros_like(cache["h0"])  # nothing flows back from after step T
    for t in reversed(range(T)):
        dh = dh_seq[:, t] + dh_prev  # (N, H)
        da[:, t] = dh * _activation_grad(h_seq[:, t], cache["nonlinearity"])
        dh_prev = da[:, t] @ p["W_hh"]  # (N, H)
    h_prev_seq = previous_states(cache["h0"], h_seq)  # (N, T, H)
    return {
        "x": da @ p["W_ih"],  # (N, T, D)
        "h0": dh_prev,  # (N, H)
        **projection_grads(cache["x"], h_prev_seq, da, da),
    }

