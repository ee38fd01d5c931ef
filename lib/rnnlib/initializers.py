"""Weight initialisation schemes for the recurrent layers.

How W_hh starts decides whether gradients explode or vanish over long
sequences, so chapter 4 compares these schemes side by side.
"""

import numpy as np

GATES = {"rnn": 1, "gru": 3, "lstm": 4}
SCHEMES = ("pytorch", "orthogonal", "identity")


def init_params(kind, input_size, hidden_size, rng, *, scheme="pytorch",
                dtype=np.float64, spectral_radius=None, forget_bias=None):
    """New parameters for an "rnn", "lstm" or "gru" layer in PyTorch's layout.

    Schemes
    -------
    "pytorch"
        Every entry of all four arrays from U(-1/sqrt(H), 1/sqrt(H)), as
        ``torch.nn.RNN/LSTM/GRU`` do.
    "orthogonal"
        Each (H, H) gate block of W_hh a random orthogonal matrix (Saxe et
        al., 2014), each (H, D) block of W_ih Glorot-uniform,
        U(-sqrt(6 / (D + H)), +), biases 0.
    "identity"
        The IRNN of Le, Jaitly & Hinton (2015): W_hh blocks the identity,
        biases 0, W_ih small, N(0, 0.001^2). Meant for a relu RNN.

    Parameters
    ----------
    kind : "rnn", "lstm" or "gru" (G = 1, 4, 3)
    input_size, hidden_size : int, D and H
    rng : np.random.Generator
    scheme : see above
    dtype : np.float32 or np.float64
    spectral_radius : float, optional. Rescale each gate block of W_hh so its
        largest |eigenvalue| equals this value.
    forget_bias : float, optional, LSTM only. Set the forget gate's total bias
        (its block of b_ih; that of b_hh becomes 0). 1.0 is the classic choice
        (Gers et al., 2000; Jozefowicz et al., 2015): remember by default.

    Returns
    -------
    dict with W_ih (G*H, D), W_hh (G*H, H), b_ih (G*H,), b_hh (G*H,)

    Taught in: Chapter 2 (An RNN cell in NumPy: the default "pytorch" scheme);
    Chapter 4 (Vanishing and exploding gradients: the other schemes and
    spectral_radius); Chapter 5 (LSTM and GRU: forget_bias).
    """
    if kind not in GATES:
        raise ValueError(f"kind is {kind!r}; expected one of {tuple(GATES)}")
    if scheme not in SCHEMES:
        raise ValueError(f"scheme is {scheme!r}; expected one of {SCHEMES}")
    if forget_bias is not None and kind != "lstm":
        raise ValueError(f"forget_bias applies to an LSTM only, not to {kind!r}")
    G, D, H = GATES[kind], input_size, hidden_size
    if scheme == "pytorch":
        k = 1 / np.sqrt(H)
        shapes = {"W_ih": (G * H, D), "W_hh": (G * H, H), "b_ih": (G * H,),
                  "b_hh": (G * H,)}
        params = {name: rng.uniform(-k, k, size=s) for name, s in shapes.items()}
    else:
        params = _structured(scheme, G, D, H, rng)
    if spectral_radius is not None:
        params["W_hh"] = _with_spectral_radius(params["W_hh"], G, spectral_radius)
    if forget_bias is not None:
        params["b_ih"][H : 2 * H] = forget_bias  # gate order i, f, g, o
        params["b_hh"][H : 2 * H] = 0.0
    return {name: p.astype(dtype) for name, p in params.items()}


def _structured(scheme, G, D, H, rng):
    if scheme == "orthogonal":
        W_hh = np.concatenate([_orthogonal(H, rng) for _ in range(G)])  # (G*H, H)
        limit = np.sqrt(6 / (D + H))  # Glorot & Bengio (2010), per gate block
        W_ih = rng.uniform(-limit, limit, size=(G * H, D))
    else:  # identity
        W_hh = np.tile(np.eye(H), (G, 1))  # (G*H, H)
        W_ih = rng.normal(0.0, 0.001, size=(G * H, D))
    return {"W_ih": W_ih, "W_hh": W_hh, "b_ih": np.zeros(G * H),
            "b_hh": np.zeros(G * H)}


def _orthogonal(H, rng):
    """A random orthogonal (H, H) matrix, uniform over the orthogonal group."""
    q, r = np.linalg.qr(rng.standard_normal((H, H)))
    return q * np.sign(np.diag(r))  # fix signs, else QR's convention biases q


def _with_spectral_radius(W_hh, G, radius):
    H = W_hh.shape[1]
    blocks = []
    for block in np.split(W_hh, G):  # each (H, H)
        current = np.max(np.abs(np.linalg.eigvals(block)))
        if current == 0:
            raise ValueError("a W_hh block has spectral radius 0; cannot rescale")
        blocks.append(block * (radius / current))
    return np.concatenate(blocks).reshape(G * H, H)
