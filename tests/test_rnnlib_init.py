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


def test_orthogonal_w_ih_fills_the_glorot_interval():
    """U(-sqrt(6 / (D + H)), +): 16384 draws come within 20 % of the bound."""
    D, H = 64, 64
    W_ih = rnnlib.init_params("lstm", D, H, np.random.default_rng(6),
                              scheme="orthogonal")["W_ih"]
    limit = np.sqrt(6 / (D + H))
    # P(all 16384 draws below 0.8 * limit) = 0.8 ** 16384: never.
    assert 0.8 * limit < np.abs(W_ih).max() <= limit


def test_orthogonal_blocks_are_haar_uniform_not_sign_biased():
    """q[0, 0] of a Haar-uniform (4, 4) matrix has mean 0 and variance 1 / 4.

    QR alone makes R's diagonal negative where the input's is positive, so
    without the sign fix q[0, 0] = -|a00| / |a0| <= 0, with mean about -0.42.
    Over 1000 seeds the mean has a standard deviation of 0.5 / sqrt(1000) =
    0.016, so |mean| < 0.1 holds by more than six of them.
    """
    q00 = [rnnlib.init_params("rnn", 1, 4, np.random.default_rng(seed),
                              scheme="orthogonal")["W_hh"][0, 0]
           for seed in range(1000)]
    assert abs(np.mean(q00)) < 0.1
    assert np.var(q00) == pytest.approx(0.25, abs=0.05)


def test_irnn_input_weights_have_std_0_001():
    """N(0, 0.001^2) as in Le et al.: 4096 draws give a std within 10 %."""
    W_ih = rnnlib.init_params("rnn", 64, 64, np.random.default_rng(7),
                              scheme="identity")["W_ih"]
    # The sample std of n = 4096 normals is off by about 1 / sqrt(2n) = 1.1 %.
    assert 0.0009 < W_ih.std() < 0.0011


def test_an_unknown_scheme_is_refused():
    """A misspelt scheme must not fall through to one of the others."""
    with pytest.raises(ValueError, match="scheme is 'xavier'; expected one of"):
        rnnlib.init_params("rnn", 2, 3, np.random.default_rng(0), scheme="xavier")


def test_forget_bias_changes_only_the_forget_block():
    """Gate order i, f, g, o (PyTorch's nn.LSTM): the forget block is [H:2H]."""
    H = 4
    plain = rnnlib.init_params("lstm", 2, H, np.random.default_rng(8))
    biased = rnnlib.init_params("lstm", 2, H, np.random.default_rng(8),
                                forget_bias=1.0)
    for name in ("W_ih", "W_hh"):
        np.testing.assert_array_equal(biased[name], plain[name])
    for name, value in (("b_ih", 1.0), ("b_hh", 0.0)):
        np.testing.assert_array_equal(biased[name][H : 2 * H], value)
        np.testing.assert_array_equal(biased[name][:H], plain[name][:H])
        np.testing.assert_array_equal(biased[name][2 * H :], plain[name][2 * H :])
