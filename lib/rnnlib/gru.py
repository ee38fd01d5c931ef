"""Gated recurrent unit (Cho et al., 2014), in PyTorch's form.

    r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)            reset gate
    z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)            update gate
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn))         candidate
    h' = (1 - z) * n + z * h

Gates stacked r, z, n (G = 3): W_ih (3H, D), W_hh (3H, H), b_ih (3H,),
b_hh (3H,). Unlike the LSTM, b_hn sits inside the product with r, so the two
affine maps ``a_x = W_ih x + b_ih`` and ``a_h = W_hh h + b_hh`` stay separate
and get different gradients in the n block.
"""

import numpy as np

from ._checks import check_cell_args, check_upstream
from ._projections import previous_states, projection_grads
from .activations import sigmoid


def _cell_forward(a_x, h_prev, W_hh, b_hh):
    """One step given a_x = W_ih x + b_ih (N, 3H). Returns h_next and a cache."""
    H = h_prev.shape[1]
    a_h = h_prev @ W_hh.T + b_hh  # (N, 3H)
    r = sigmoid(a_x[:, :H] + a_h[:, :H])  # (N, H)
    z = sigmoid(a_x[:, H : 2 * H] + a_h[:, H : 2 * H])
    hn = a_h[:, 2 * H :]  # W_hn h + b_hn, kept: the gradient of r needs it
    n = np.tanh(a_x[:, 2 * H :] + r * hn)
    h_next = (1 - z) * n + z * h_prev  # (N, H)
    return h_next, (r, z, n, hn)


def _cell_backward(dh_next, h_prev, r, z, n, hn, W_hh):
    """Gradients reaching a_x and a_h (both (N, 3H)), and dh_prev, for one step."""
    dn = dh_next * (1 - z)
    dz = dh_next * (h_prev - n)
    da_n = dn * (1 - n * n)  # through tanh
    da_r = da_n * hn * r * (1 - r)  # through r * hn, then sigmoid
    da_z = dz * z * (1 - z)
    da_x = np.concatenate([da_r, da_z, da_n], axis=1)  # (N, 3H)
    da_h = np.concatenate([da_r, da_z, da_n * r], axis=1)  # (N, 3H): r scales hn
    dh_prev = dh_next * z + da_h @ W_hh  # (N, H): direct path + through gates
    return da_x, da_h, dh_prev


def gru_step_forward(x_t, h_prev, params):
    """One GRU step (equations in the module docstring).

    Parameters
    ----------
    x_t : (N, D) array
    h_prev : (N, H) array
    params : dict with W_ih (3H, D), W_hh (3H, H), b_ih (3H,), b_hh (3H,),
        gates stacked r, z, n

    Returns
    -------
    h_next : (N, H) array
    cache : dict with x_t, h_prev, h_next, gates r, z, n and hn = W_hn h + b_hn
        (each (N, H)), and the params

    Taught in: Chapter 5 (LSTM and GRU).
    """
    x_t, states, p = check_cell_args(3, "x_t", x_t, {"h_prev": h_prev}, params)
    h_prev = states["h_prev"]
    a_x = x_t @ p["W_ih"].T + p["b_ih"]  # (N, 3H)
    h_next, (r, z, n, hn) = _cell_forward(a_x, h_prev, p["W_hh"], p["b_hh"])
    cache = {"x_t": x_t, "h_prev": h_prev, "h_next": h_next, "r": r, "z": z,
             "n": n, "hn": hn, "params": p}
    return h_next, cache


def gru_step_backward(dh_next, cache):
    """Backward pass of one GRU step.

    ``dh_next`` (N, H). ``h' = (1 - z) n + z h`` sends ``dh (1 - z)`` to n,
    ``dh (h - n)`` to z and ``dh z`` straight to h; n's pre-activation sends
    its gradient to ``W_in x + b_in`` as is, and to ``W_hn h + b_hn`` times r.

    Returns a dict with keys x_t (N, D), h_prev (N, H), W_ih, W_hh, b_ih, b_hh.

    Taught in: Chapter 5 (LSTM and GRU).
    """
    p = cache["params"]
    dh_next = check_upstream("dh_next", dh_next, cache["h_next"], "(N, H)")
    da_x, da_h, dh_prev = _cell_backward(
        dh_next, cache["h_prev"], cache["r"], cache["z"], cache["n"], cache["hn"],
        p["W_hh"])
    return {
        "x_t": da_x @ p["W_ih"],  # (N, D)
        "h_prev": dh_prev,  # (N, H)
        **projection_grads(cache["x_t"], cache["h_prev"], da_x, da_h),
    }


def gru_forward(x, h0, params):
    """Run the GRU over a whole sequence, batch first.

    Parameters
    ----------
    x : (N, T, D) array
    h0 : (N, H) array
    params : dict with W_ih (3H, D), W_hh (3H, H), b_ih (3H,), b_hh (3H,)

    Returns
    -------
    h_seq : (N, T, H) array
    cache : dict with x, h0, h_seq, the per-step r, z, n, hn stacked along
        time (each (N, T, H)) and the params

    Taught in: Chapter 5 (LSTM and GRU).
    """
    x, states, p = check_cell_args(3, "x", x, {"h0": h0}, params)
    h0 = states["h0"]
    N, T, _ = x.shape
    a_x = x @ p["W_ih"].T + p["b_ih"]  # (N, T, 3H): all input projections at once
    h_seq = np.empty((N, T, h0.shape[1]), dtype=x.dtype)  # (N, T, H)
    saved = {k: np.empty_like(h_seq) for k in ("r", "z", "n", "hn")}
    h = h0
    for t in range(T):
        h, step_cache = _cell_forward(a_x[:, t], h, p["W_hh"], p["b_hh"])
        h_seq[:, t] = h
        for name, value in zip(("r", "z", "n", "hn"), step_cache, strict=True):
            saved[name][:, t] = value
    cache = {"x": x, "h0": h0, "h_seq": h_seq, **saved, "params": p}
    return h_seq, cache


def gru_backward(dh_seq, cache):
    """Backpropagation through time for :func:`gru_forward`.

    ``dh_seq`` (N, T, H). Returns a dict with keys x (N, T, D), h0 (N, H),
    W_ih, W_hh, b_ih, b_hh.

    Taught in: Chapter 5 (LSTM and GRU).
    """
    h_seq, p = cache["h_seq"], cache["params"]
    dh_seq = check_upstream("dh_seq", dh_seq, h_seq, "(N, T, H)")
    N, T, H = h_seq.shape
    h_prev_seq = previous_states(cache["h0"], h_seq)  # (N, T, H)
    da_x = np.empty((N, T, 3 * H), dtype=h_seq.dtype)
    da_h = np.empty_like(da_x)
    dh = np.zeros_like(cache["h0"])  # nothing flows back from after step T
    for t in reversed(range(T)):
        da_x[:, t], da_h[:, t], dh = _cell_backward(
            dh_seq[:, t] + dh, h_prev_seq[:, t], cache["r"][:, t], cache["z"][:, t],
            cache["n"][:, t], cache["hn"][:, t], p["W_hh"])
    return {
        "x": da_x @ p["W_ih"],  # (N, T, D)
        "h0": dh,  # (N, H)
        **projection_grads(cache["x"], h_prev_seq, da_x, da_h),
    }
