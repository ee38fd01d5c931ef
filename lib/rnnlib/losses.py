"""Softmax cross-entropy over classes, averaged over the unmasked positions."""

import numpy as np

from ._checks import as_float_array, check_finite, check_shape
from .activations import log_softmax


def softmax_cross_entropy(logits, targets, mask=None):
    """Mean cross-entropy ``-log softmax(logits)[target]`` and its gradient.

    Parameters
    ----------
    logits : (N, T, V) or (N, V) float array
    targets : (N, T) or (N,) integer array with values in [0, V)
    mask : (N, T) or (N,) array of 0/1 (or bool), optional
        Positions with mask 0 (padding) add nothing to the loss and get a zero
        gradient. The mean is over the positions with mask 1.

    Returns
    -------
    loss : float
    dlogits : array shaped like ``logits``
        ``(softmax(logits) - one_hot(targets)) * mask / number_of_positions``.

    Taught in: Chapter 3 (Backpropagation through time).
    """
    logits = as_float_array("logits", logits)
    if logits.ndim not in (2, 3):
        raise ValueError(
            f"logits has shape {logits.shape}; expected (N, T, V) or (N, V)"
        )
    lead, V = logits.shape[:-1], logits.shape[-1]
    lead_symbols = "(N, T)" if logits.ndim == 3 else "(N,)"
    targets = _check_targets(np.asarray(targets), lead, lead_symbols, V)
    if mask is None:
        mask = np.ones(lead, dtype=logits.dtype)
    mask = _check_mask(np.asarray(mask), lead, lead_symbols, logits.dtype)
    check_finite({"logits": logits})
    count = mask.sum()
    if count == 0:
        raise ValueError("mask is 0 everywhere: no position to average over")

    log_p = log_softmax(logits)  # (..., V), stable even for logits ~ 1e4
    picked = np.take_along_axis(log_p, targets[..., None], axis=-1)[..., 0]
    loss = -(picked * mask).sum() / count

    with np.errstate(under="ignore"):  # tiny probabilities become exactly 0
        dlogits = np.exp(log_p)  # softmax, (..., V)
    dlogits -= targets[..., None] == np.arange(V)  # minus the one-hot target
    dlogits *= (mask / count)[..., None]  # padding gets exactly zero gradient
    return float(loss), dlogits


def _check_targets(targets, lead, lead_symbols, V):
    if not np.issubdtype(targets.dtype, np.integer):
        raise ValueError(f"targets has dtype {targets.dtype}; expected integers")
    check_shape("targets", targets, lead, lead_symbols)
    if targets.size and (targets.min() < 0 or targets.max() >= V):
        bad = targets.min() if targets.min() < 0 else targets.max()
        raise ValueError(f"targets contains {bad}, outside [0, V) = [0, {V})")
    return targets


def _check_mask(mask, lead, lead_symbols, dtype):
    check_shape("mask", mask, lead, lead_symbols)
    if not np.isin(mask, (0, 1)).all():
        raise ValueError("mask must hold only 0 and 1 (or False and True)")
    return mask.astype(dtype)
