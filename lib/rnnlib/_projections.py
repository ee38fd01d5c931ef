"""Parameter gradients of the two affine maps inside every recurrent cell.

Every cell (RNN, LSTM, GRU) computes ``W_ih x + b_ih`` and ``W_hh h + b_hh``.
Given the gradients ``da_x`` and ``da_h`` that reach those two sums, the
parameter gradients are the same four lines for all cells. The arrays may be
one step, ``(N, .)``, or a whole sequence, ``(N, T, .)``: W and b are shared
across time, so BPTT sums their gradients over every step, which is one matmul
once time is folded into the batch axis.
"""

import numpy as np


def previous_states(s0, s_seq):
    """The state each step read: ``[s0, s_1, ..., s_{T-1}]``, shape (N, T, H)."""
    return np.concatenate([s0[:, None], s_seq[:, :-1]], axis=1)


def projection_grads(x, h_prev, da_x, da_h):
    """Gradients of W_ih, W_hh, b_ih and b_hh.

    x : (N, D) or (N, T, D); h_prev : (N, H) or (N, T, H), the state each step
    read; da_x, da_h : (N, G*H) or (N, T, G*H).
    """
    GH = da_x.shape[-1]
    da_x = da_x.reshape(-1, GH)  # (N*T, G*H)
    da_h = da_h.reshape(-1, GH)  # (N*T, G*H)
    return {
        "W_ih": da_x.T @ x.reshape(-1, x.shape[-1]),  # (G*H, D)
        "W_hh": da_h.T @ h_prev.reshape(-1, h_prev.shape[-1]),  # (G*H, H)
        "b_ih": da_x.sum(axis=0),  # (G*H,)
        "b_hh": da_h.sum(axis=0),  # (G*H,)
    }
