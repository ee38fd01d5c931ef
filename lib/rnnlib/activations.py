"""Numerically stable sigmoid, softmax and log-softmax.

None of them overflows, even for inputs like 1e4: we only ever exponentiate
non-positive numbers. Float inputs keep their dtype. Underflow of exp to 0 is
the right answer there, so we tell NumPy not to report it (it matters when a
test runs under ``np.errstate(all="raise")``).
"""

import numpy as np


def sigmoid(z):
    """Logistic function ``1 / (1 + exp(-z))``, elementwise, any shape.

    Written with ``e = exp(-|z|)`` in (0, 1], which never overflows:
    ``sigmoid(z) = 1 / (1 + e)`` for z >= 0 and ``e / (1 + e)`` for z < 0.
    Both branches are accurate to the last bit, also in the far tails.

    Taught in: Chapter 2 (An RNN cell in NumPy).
    """
    z = np.asarray(z)
    with np.errstate(under="ignore"):
        e = np.exp(-np.abs(z))  # in (0, 1]
    s = 1 / (1 + e)
    return np.where(z >= 0, s, e * s)


def log_softmax(z, axis=-1):
    """``log(softmax(z))`` along ``axis``, computed as ``z - logsumexp(z)``.

    Subtracting the maximum first makes every exponent <= 0. Any shape.

    Taught in: Chapter 3 (Backpropagation through time).
    """
    z = np.asarray(z)
    shifted = z - z.max(axis=axis, keepdims=True)  # every entry <= 0
    with np.errstate(under="ignore"):
        return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def softmax(z, axis=-1):
    """``exp(z) / sum(exp(z))`` along ``axis``; shift by the max for stability.

    Taught in: Chapter 2 (An RNN cell in NumPy).
    """
    z = np.asarray(z)
    with np.errstate(under="ignore"):
        e = np.exp(z - z.max(axis=axis, keepdims=True))  # in (0, 1]
        return e / e.sum(axis=axis, keepdims=True)
