"""Gradient clipping, the standard cure for exploding gradients.

Pascanu, Mikolov & Bengio (2013), "On the difficulty of training recurrent
neural networks": rescale the whole gradient when its norm is too large, so
its direction is kept and only the step length changes.
"""

import numpy as np


def clip_grad_norm(grads, max_norm):
    """Rescale all gradients together so their global L2 norm is <= max_norm.

    ``total_norm = sqrt(sum over arrays of sum(g**2))``; every array is
    multiplied by ``min(1, max_norm / (total_norm + 1e-6))``, as
    ``torch.nn.utils.clip_grad_norm_`` does (the 1e-6 avoids dividing by 0).
    Also as in PyTorch, a non-finite norm is not hidden: a NaN norm makes
    every entry NaN, and an inf norm gives a scale of 0 (inf entries become
    NaN, the others 0).

    Parameters
    ----------
    grads : dict of name -> array
    max_norm : float

    Returns
    -------
    clipped : dict of new arrays (the inputs are not modified)
    total_norm : float, the norm before clipping

    Taught in: Chapter 4 (Vanishing and exploding gradients).
    """
    total_norm = float(np.sqrt(sum(np.sum(np.square(g)) for g in grads.values())))
    # np.minimum keeps a NaN (Python's min(1.0, nan) would return 1.0)
    scale = np.minimum(1.0, max_norm / (total_norm + 1e-6))
    clipped = {name: g * np.asarray(scale, dtype=g.dtype) for name, g in grads.items()}
    return clipped, total_norm


def clip_grad_value(grads, clip_value):
    """Clip every entry to ``[-clip_value, clip_value]``; returns new arrays.

    Like ``torch.nn.utils.clip_grad_value_``. Unlike norm clipping this can
    change the gradient's direction.

    Taught in: Chapter 4 (Vanishing and exploding gradients).
    """
    return {name: np.clip(g, -clip_value, clip_value) for name, g in grads.items()}
