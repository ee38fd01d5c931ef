"""Numerical gradient checks: the test every backward pass must pass.

Centred differences, ``(f(x + h) - f(x - h)) / 2h``, have error O(h^2), so in
float64 with h = 1e-5 a correct backward pass agrees to a relative error of
about 1e-8 or better; a bug typically shows up as 1e-2 or worse.
"""

import numpy as np


def numerical_gradient(f, x, df, h=1e-5):
    """Centred-difference gradient of ``sum(f(x) * df)`` with respect to x.

    Parameters
    ----------
    f : callable, ``f(x) -> array``; it may also ignore its argument and read x
        through a closure, because x is perturbed in place.
    x : float array (use float64). Each entry is nudged by +-h and put back, so
        x holds its original values when the function returns.
    df : array shaped like f(x), the upstream gradient dLoss/df
    h : float, the step

    Returns
    -------
    grad : array shaped like x

    Taught in: Chapter 3 (Backpropagation through time).
    """
    grad = np.zeros_like(x)
    for ix in np.ndindex(x.shape):
        old = x[ix]
        x[ix] = old + h
        plus = np.array(f(x), copy=True)  # copy: f may return a view of x
        x[ix] = old - h
        minus = np.array(f(x), copy=True)
        x[ix] = old
        grad[ix] = np.sum((plus - minus) * df) / (2 * h)
    return grad


def rel_error(a, b):
    """Largest elementwise relative error ``|a - b| / max(1e-8, |a| + |b|)``.

    Expect below 1e-7 for a correct float64 backward pass checked with
    :func:`numerical_gradient`.

    Taught in: Chapter 3 (Backpropagation through time).
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b))))




class GradCheckReport(dict):
    """``{name: relative error}`` with ``.worst``, printed with what to expect."""

    @property
    def worst(self):
        return max(self.values(), default=0.0)

    def __str__(self):
        lines = [f"{name:>8}: {err:.1e}" for name, err in self.items()]
        lines.append(f"   worst: {self.worst:.1e}  (expect < 1e-7 in float64)")
        return "\n".join(lines)


def grad_check_all(forward, backward, arrays, rng, h=1e-5):
    """Compare ``backward`` with numerical gradients for every array.

    Parameters
    ----------
    forward : callable, ``forward(arrays) -> (out, cache)`` for a dict of
        arrays; ``out`` is one array.
    backward : callable, ``backward(dout, cache) -> grads``, a dict with a key
        for every key of ``arrays``.
    arrays : dict of name -> float64 array: the inputs and the parameters.
    rng : np.random.Generator, draws the random upstream gradient dout.

    Returns
    -------
    GradCheckReport, a dict name -> relative error with a ``.worst`` attribute.

    Example, for the whole RNN (params may hold extra keys, so pass ``a``)::

        arrays = {"x": x, "h0": h0, **params}
        report = grad_check_all(
            lambda a: rnn_forward(a["x"], a["h0"], a), rnn_backward, arrays, rng)
        print(report)

    Taught in: Chapter 3 (Backpropagation through time).
    """
    arrays = {name: np.array(a, dtype=np.float64) for name, a in arrays.items()}
    out, cache = forward(arrays)
    dout = rng.standard_normal(out.shape)
    grads = backward(dout, cache)
    report = GradCheckReport()
    for name, a in arrays.items():
        if name not in grads:
            raise ValueError(f"backward returned no gradient for {name!r}")
        if grads[name].shape != a.shape:
            raise ValueError(
                f"the gradient of {name} has shape {grads[name].shape}; "
                f"expected {name}'s shape {a.shape}"
            )
        numeric = numerical_gradient(lambda _: forward(arrays)[0], a, dout, h)
        report[name] = rel_error(grads[name], numeric)
    return report
