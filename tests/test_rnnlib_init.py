"""init_params: the PyTorch bounds, orthogonality, IRNN, spectral radius."""

import numpy as np
import pytest
import rnnlib

KINDS = {"rnn": 1, "gru": 3, "lstm": 4}


@pytest.mark.parametrize("kind", KINDS)
def test_pytorch_scheme_bounds_and_layout(kind):
    G, D, H = KINDS[kind], 5, 16
    params = rnnlib.init_params(kind, D, H, np.random.default_rng(0))
    shapes = {"W_ih": (G * H, D), "W_hh": (G * H, H), "b_ih": (G * H,),
              "b_hh": (G * H,)}
    for name, p in params.items():
        assert p.shape == shapes[name] and p.dtype == np.float64
        assert np.abs(p).max() <= 1 / np.sqrt(H)
        # Uniform on the whole interval, not a narrower one: the extremes are near.
        assert np.abs(p).max() > 0.8 / np.sqrt(H)


def test_same_seed_same_params_and_float32():
    a = rnnlib.init_params("lstm", 3, 4, np.random.default_rng(1), dtype=np.float32)
    b = rnnlib.init_params("lstm", 3, 4, np.random.default_rng(1), dtype=np.float32)
    for name in a:
        assert a[name].dtype == np.float32
        np.testing.assert_array_equal(a[name], b[name])


@pytest.mark.parametrize("kind", KINDS)
def test_orthogonal_scheme(kind):
    G, D, H = KINDS[kind], 6, 8
    params = rnnlib.init_params(kind, D, H, np.random.default_rng(2),
                                scheme="orthogonal")
    for block in np.split(params["W_hh"], G):
        np.testing.assert_allclose(block.T @ block, np.eye(H), atol=1e-12)
    assert np.abs(params["W_ih"]).max() <= np.sqrt(6 / (D + H))
    assert not params["b_ih"].any() and not params["b_hh"].any()


def test_identity_scheme_is_the_irnn():
    params = rnnlib.init_params("rnn", 3, 5, np.random.default_rng(3),
                                scheme="identity")
    np.testing.assert_array_equal(params["W_hh"], np.eye(5))
    assert np.abs(params["W_ih"]).max() < 0.01
    assert not params["b_ih"].any() and not params["b_hh"].any()


@pytest.mark.parametrize("scheme", ["pytorch", "orthogonal", "identity"])
@pytest.mark.parametrize("kind", KINDS)
def test_spectral_radius_is_achieved(kind, scheme):
    G, H = KINDS[kind], 7
    params = rnnlib.init_params(kind, 2, H, np.random.default_rng(4), scheme=scheme,
                                spectral_radius=1.3)
    for block in np.split(params["W_hh"], G):
        assert np.isclose(np.abs(np.linalg.eigvals(block)).max(), 1.3, rtol=1e-10)


def test_forget_bias():
    H = 3
    params = rnnlib.init_params("lstm", 2, H, np.random.default_rng(5),
                                forget_bias=1.0)
    total = params["b_ih"] + params["b_hh"]
    np.testing.assert_array_equal(total[H : 2 * H], 1.0)
    assert np.all(total[:H] != 1.0)  # only the forget block changed
    with pytest.raises(ValueError, match="forget_bias applies to an LSTM only"):
        rnnlib.init_params("gru", 2, H, np.random.default_rng(5), forget_bias=1.0)
    with pytest.raises(ValueError, match="kind is 'cnn'"):
        rnnlib.init_params("cnn", 2, H, np.random.default_rng(5))
