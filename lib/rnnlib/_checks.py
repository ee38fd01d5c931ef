"""Argument checks shared by every function, so each error names the argument.

A learner who passes ``W_ih.T`` with D = 3 and H = 4 should read "W_ih has
shape (3, 4); expected (H, D) = (4, 3), ..." at the call, not a broadcasting
error three lines deeper. Shapes cannot catch everything: a transposed W_hh is
(H, H) like W_hh, and so is a transposed W_ih when D = H; only a comparison of
values (with PyTorch, say) finds those.
The rules, in one place:

* arrays are float32 or float64, and all arrays of one call share one dtype
  (we never cast silently: a float64 weight would quietly upcast float32 data);
* shapes are checked against the dimension letters N, T, D, H, G;
* NaN and inf are rejected where the check is cheap compared with the work.
"""

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
PARAM_NAMES = ("W_ih", "W_hh", "b_ih", "b_hh")


def as_float_array(name, a):
    """Return ``a`` as an ndarray (no copy) after checking it is float32/64."""
    a = np.asarray(a)
    if a.dtype not in FLOAT_DTYPES:
        raise ValueError(f"{name} has dtype {a.dtype}; expected float32 or float64")
    return a


def check_ndim(name, a, symbols):
    """Check the number of dimensions against a spelling such as "(N, T, D)"."""
    ndim = len(symbols.strip("()").split(","))
    if a.ndim != ndim:
        raise ValueError(
            f"{name} has shape {a.shape}; expected {symbols}, "
            f"an array with {ndim} dimension{'s' if ndim > 1 else ''}"
        )


def check_shape(name, a, expected, symbols, note=""):
    """Raise ValueError unless ``a.shape == expected`` (spelled ``symbols``)."""
    expected = tuple(int(e) for e in expected)
    if a.shape == expected:
        return
    hint = ""
    if a.ndim == 2 and a.shape == expected[::-1]:
        hint = " (did you pass its transpose?)"
    raise ValueError(
        f"{name} has shape {a.shape}; expected {symbols} = {expected}{note}{hint}"
    )


def check_same_dtype(arrays):
    """All arrays in the dict ``{name: array}`` must share the first one's dtype."""
    (first, a0), *rest = arrays.items()
    for name, a in rest:
        if a.dtype != a0.dtype:
            raise ValueError(
                f"{name} has dtype {a.dtype} but {first} has dtype {a0.dtype}; "
                "use one dtype for all inputs and parameters, e.g. .astype(np.float32)"
            )


def check_finite(arrays):
    """Reject NaN and inf, naming the argument and the first bad index."""
    for name, a in arrays.items():
        bad = ~np.isfinite(a)
        if bad.any():
            index = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(f"{name} contains NaN or inf (first at index {index})")


def gate_rows(G):
    """How the rows of a stacked weight are spelled: "H" or "4*H"."""
    return "H" if G == 1 else f"{G}*H"


def check_params(params, G, D, H, h_name):
    """Check the four PyTorch-layout parameters of a cell with G gates.

    Extra keys in ``params`` are ignored, so a dict holding inputs as well as
    parameters can be passed (handy for gradient checks). Returns a new dict
    holding exactly the four parameters as arrays.
    """
    if not isinstance(params, dict):
        raise ValueError(f"params must be a dict with keys {PARAM_NAMES}")
    missing = [k for k in PARAM_NAMES if k not in params]
    if missing:
        raise ValueError(f"params is missing {missing}; expected keys {PARAM_NAMES}")
    p = {k: as_float_array(k, params[k]) for k in PARAM_NAMES}
    rows = gate_rows(G)
    note = f", with H = {H} from {h_name}" if H is not None else ""
    check_shape("W_ih", p["W_ih"], (G * H, D), f"({rows}, D)", note)
    check_shape("W_hh", p["W_hh"], (G * H, H), f"({rows}, H)", note)
    check_shape("b_ih", p["b_ih"], (G * H,), f"({rows},)", note)
    check_shape("b_hh", p["b_hh"], (G * H,), f"({rows},)", note)
    return p


def check_cell_args(G, x_name, x, states, params, finite=True):
    """Check the arguments of a recurrent step or sequence function.

    ``x`` is ``(N, D)`` when ``x_name`` is "x_t" (one step) and ``(N, T, D)``
    otherwise; every state in the dict ``states`` is ``(N, H)``. H is read from
    the first state. Returns ``(x, states, params)`` as arrays.
    """
    x = as_float_array(x_name, x)
    check_ndim(x_name, x, "(N, D)" if x_name == "x_t" else "(N, T, D)")
    states = {name: as_float_array(name, s) for name, s in states.items()}
    (h_name, h), *_ = states.items()
    check_ndim(h_name, h, "(N, H)")
    N, D, H = x.shape[0], x.shape[-1], h.shape[1]
    for name, s in states.items():
        check_shape(name, s, (N, H), "(N, H)")
    p = check_params(params, G, D, H, h_name)
    arrays = {x_name: x, **states, **p}
    check_same_dtype(arrays)
    if finite:
        check_finite(arrays)
    return x, states, p


def check_upstream(name, dout, like, symbols):
    """An upstream gradient must match the forward output's shape and dtype."""
    dout = as_float_array(name, dout)
    check_shape(name, dout, like.shape, symbols)
    check_same_dtype({"the forward output": like, name: dout})
    return dout
