"""The output layer: one affine map applied at every time step.

    y = h W^T + b        (like torch.nn.Linear: W is (V, H), b is (V,))
"""

from ._checks import (
    as_float_array,
    check_ndim,
    check_same_dtype,
    check_shape,
    check_upstream,
)


def affine_forward(h, W, b):
    """Affine map ``y = h W^T + b`` over the last axis.

    Parameters
    ----------
    h : (N, H) or (N, T, H) array
    W : (V, H) array, laid out like ``nn.Linear.weight``
    b : (V,) array

    Returns
    -------
    y : (N, V) or (N, T, V) array
    cache : dict holding ``h`` and ``W`` (what backward needs) and ``y``
        (to check the upstream gradient's shape)

    Taught in: Chapter 2 (An RNN cell in NumPy).
    """
    h, W, b = (as_float_array(n, a) for n, a in (("h", h), ("W", W), ("b", b)))
    if h.ndim not in (2, 3):
        raise ValueError(f"h has shape {h.shape}; expected (N, H) or (N, T, H)")
    check_ndim("W", W, "(V, H)")
    V, H = W.shape[0], h.shape[-1]
    check_shape("W", W, (V, H), "(V, H)", f", with H = {H} from h")
    check_shape("b", b, (V,), "(V,)", f", with V = {V} from W")
    check_same_dtype({"h": h, "W": W, "b": b})
    y = h @ W.T + b  # (..., V)
    return y, {"h": h, "W": W, "y": y}


def affine_backward(dy, cache):
    """Gradients of ``y = h W^T + b``.

    ``dy`` has y's shape. Returns ``{"h": (..., H), "W": (V, H), "b": (V,)}``;
    the time axis, if any, is summed over for W and b because they are shared
    by all time steps.

    Taught in: Chapter 3 (Backpropagation through time).
    """
    h, W = cache["h"], cache["W"]
    symbols = "(N, V)" if h.ndim == 2 else "(N, T, V)"
    dy = check_upstream("dy", dy, cache["y"], symbols)
    V, H = W.shape
    dy_flat = dy.reshape(-1, V)  # (N*T, V): every position is one more example
    return {
        "h": dy @ W,  # (..., H)
        "W": dy_flat.T @ h.reshape(-1, H),  # (V, H)
        "b": dy_flat.sum(axis=0),  # (V,)
    }
