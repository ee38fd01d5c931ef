"""Bad input gives an error that names the argument and the shapes."""

import numpy as np
import pytest
import rnnlib


def _rnn(rng, N=2, T=3, D=4, H=3):
    params = {"W_ih": rng.standard_normal((H, D)), "W_hh": rng.standard_normal((H, H)),
              "b_ih": np.zeros(H), "b_hh": np.zeros(H)}
    return rng.standard_normal((N, T, D)), np.zeros((N, H)), params


def test_wrong_weight_shape_names_it():
    x, h0, params = _rnn(np.random.default_rng(0))
    params["W_hh"] = np.zeros((4, 3))
    with pytest.raises(ValueError, match=r"W_hh has shape \(4, 3\); expected "
                                         r"\(H, H\) = \(3, 3\)"):
        rnnlib.rnn_forward(x, h0, params)


def test_transposed_weight_gets_a_hint():
    x, h0, params = _rnn(np.random.default_rng(0))
    params["W_ih"] = params["W_ih"].T
    with pytest.raises(ValueError, match=r"W_ih has shape \(4, 3\); expected "
                                         r"\(H, D\) = \(3, 4\).*transpose"):
        rnnlib.rnn_step_forward(x[:, 0], h0, params)


def test_wrong_input_rank_and_state_shape():
    x, h0, params = _rnn(np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"x has shape \(2, 4\); expected \(N, T, D\)"):
        rnnlib.rnn_forward(x[:, 0], h0, params)
    with pytest.raises(ValueError, match=r"x_t has shape \(2, 3, 4\); expected "
                                         r"\(N, D\)"):
        rnnlib.rnn_step_forward(x, h0, params)
    with pytest.raises(ValueError, match=r"h0 has shape \(5, 3\); expected "
                                         r"\(N, H\) = \(2, 3\)"):
        rnnlib.rnn_forward(x, np.zeros((5, 3)), params)


def test_dtype_rules():
    x, h0, params = _rnn(np.random.default_rng(0))
    with pytest.raises(ValueError, match="x has dtype int64; expected float32 or "
                                         "float64"):
        rnnlib.rnn_forward(x.astype(np.int64), h0, params)
    with pytest.raises(ValueError, match="W_ih has dtype float64 but x has dtype "
                                         "float32"):
        rnnlib.rnn_forward(x.astype(np.float32), h0.astype(np.float32), params)


def test_nan_and_missing_params_are_reported():
    x, h0, params = _rnn(np.random.default_rng(0))
    x[1, 2, 0] = np.nan
    with pytest.raises(ValueError, match=r"x contains NaN or inf \(first at index "
                                         r"\(1, 2, 0\)\)"):
        rnnlib.rnn_forward(x, h0, params)
    x[1, 2, 0] = 0.0
    params["W_hh"] = params["W_hh"].copy()
    params["W_hh"][0, 0] = np.inf
    with pytest.raises(ValueError, match="W_hh contains NaN or inf"):
        rnnlib.rnn_forward(x, h0, params)
    del params["b_hh"]
    with pytest.raises(ValueError, match=r"params is missing \['b_hh'\]"):
        rnnlib.rnn_forward(x, h0, params)
    with pytest.raises(ValueError, match="nonlinearity is 'sigmoid'"):
        rnnlib.rnn_forward(x, h0, params, nonlinearity="sigmoid")


def test_wrong_upstream_gradient_shape():
    x, h0, params = _rnn(np.random.default_rng(0))
    h_seq, cache = rnnlib.rnn_forward(x, h0, params)
    with pytest.raises(ValueError, match=r"dh_seq has shape \(2, 3\); expected "
                                         r"\(N, T, H\) = \(2, 3, 3\)"):
        rnnlib.rnn_backward(h_seq[:, 0], cache)
    h_next, cache = rnnlib.rnn_step_forward(x[:, 0], h0, params)
    with pytest.raises(ValueError, match=r"dh_next has shape \(3, 2\); expected "
                                         r"\(N, H\) = \(2, 3\)"):
        rnnlib.rnn_step_backward(h_next.T, cache)


def test_affine_errors():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"W has shape \(5, 4\); expected \(V, H\) = "
                                         r"\(5, 3\)"):
        rnnlib.affine_forward(rng.standard_normal((2, 3)), np.zeros((5, 4)),
                              np.zeros(5))
    with pytest.raises(ValueError, match=r"b has shape \(4,\); expected \(V,\) = "
                                         r"\(5,\)"):
        rnnlib.affine_forward(rng.standard_normal((2, 3)), np.zeros((5, 3)),
                              np.zeros(4))


def test_gated_layers_spell_the_gate_count():
    rng = np.random.default_rng(1)
    x, h0 = rng.standard_normal((2, 3, 4)), np.zeros((2, 3))
    lstm = rnnlib.init_params("lstm", 4, 3, rng)
    lstm["W_hh"] = lstm["W_hh"].T
    with pytest.raises(ValueError, match=r"W_hh has shape \(3, 12\); expected "
                                         r"\(4\*H, H\) = \(12, 3\), with H = 3 "
                                         r"from h0 \(did you pass its transpose\?\)"):
        rnnlib.lstm_forward(x, h0, h0, lstm)
    gru = rnnlib.init_params("gru", 4, 3, rng)
    with pytest.raises(ValueError, match=r"c_prev has shape \(2, 5\); expected "
                                         r"\(N, H\) = \(2, 3\)"):
        rnnlib.lstm_step_forward(x[:, 0], h0, np.zeros((2, 5)),
                                 rnnlib.init_params("lstm", 4, 3, rng))
    with pytest.raises(ValueError, match=r"b_ih has shape \(3,\); expected "
                                         r"\(3\*H,\) = \(9,\)"):
        rnnlib.gru_forward(x, h0, {**gru, "b_ih": np.zeros(3)})


def test_lstm_dc_last_defaults_to_zero_and_is_checked():
    rng = np.random.default_rng(2)
    x, h0, c0 = (rng.standard_normal(s) for s in ((2, 3, 4), (2, 3), (2, 3)))
    params = rnnlib.init_params("lstm", 4, 3, rng)
    h_seq, _, cache = rnnlib.lstm_forward(x, h0, c0, params)
    dh = rng.standard_normal(h_seq.shape)
    without = rnnlib.lstm_backward(dh, cache)
    zero = rnnlib.lstm_backward(dh, cache, dc_last=np.zeros((2, 3)))
    for name in without:
        np.testing.assert_array_equal(without[name], zero[name])
    with pytest.raises(ValueError, match=r"dc_last has shape \(3, 2\)"):
        rnnlib.lstm_backward(dh, cache, dc_last=np.zeros((3, 2)))


def test_nan_report_names_the_first_bad_index_of_several():
    """With two NaNs, the message points at the first one in C order."""
    x, h0, params = _rnn(np.random.default_rng(0))
    x[1, 2, 0] = np.nan
    x[0, 1, 3] = np.nan  # earlier in C order than (1, 2, 0)
    with pytest.raises(ValueError, match=r"x contains NaN or inf \(first at index "
                                         r"\(0, 1, 3\)\)"):
        rnnlib.rnn_forward(x, h0, params)


@pytest.mark.parametrize("kind, forward", [
    ("rnn", lambda x, h0, p: rnnlib.rnn_forward(x, h0, p)),
    ("lstm", lambda x, h0, p: rnnlib.lstm_forward(x, h0, h0, p)),
    ("gru", lambda x, h0, p: rnnlib.gru_forward(x, h0, p)),
])
def test_a_b_hh_that_would_broadcast_is_refused(kind, forward):
    """A (1,) b_hh broadcasts silently in h W^T + b; the check must name it."""
    rng = np.random.default_rng(3)
    G = {"rnn": 1, "gru": 3, "lstm": 4}[kind]
    x, h0 = rng.standard_normal((2, 3, 4)), np.zeros((2, 3))
    params = {**rnnlib.init_params(kind, 4, 3, rng), "b_hh": np.zeros(1)}
    rows = "H" if G == 1 else rf"{G}\*H"
    with pytest.raises(ValueError, match=rf"b_hh has shape \(1,\); expected "
                                         rf"\({rows},\) = \({3 * G},\)"):
        forward(x, h0, params)


def test_nan_in_an_initial_state_is_reported():
    """The initial states are checked for NaN like x and the weights."""
    x, h0, params = _rnn(np.random.default_rng(0))
    h0[1, 2] = np.nan
    with pytest.raises(ValueError, match=r"h0 contains NaN or inf \(first at index "
                                         r"\(1, 2\)\)"):
        rnnlib.rnn_forward(x, h0, params)
    rng = np.random.default_rng(4)
    c0 = np.zeros((2, 3))
    c0[0, 0] = np.inf
    with pytest.raises(ValueError, match="c0 contains NaN or inf"):
        rnnlib.lstm_forward(x, np.zeros((2, 3)), c0,
                            rnnlib.init_params("lstm", 4, 3, rng))


def test_upstream_gradient_of_another_dtype_is_refused():
    """A float32 gradient after a float64 forward would silently upcast."""
    x, h0, params = _rnn(np.random.default_rng(0))
    h_seq, cache = rnnlib.rnn_forward(x, h0, params)
    with pytest.raises(ValueError, match="dh_seq has dtype float32 but the forward "
                                         "output has dtype float64"):
        rnnlib.rnn_backward(h_seq.astype(np.float32), cache)
    y, cache = rnnlib.affine_forward(h_seq, np.ones((2, 3)), np.zeros(2))
    with pytest.raises(ValueError, match="dy has dtype float32 but the forward "
                                         "output has dtype float64"):
        rnnlib.affine_backward(y.astype(np.float32), cache)


def test_float16_is_not_accepted():
    """Only float32 and float64 are supported, not every float kind."""
    x, h0, params = _rnn(np.random.default_rng(0))
    with pytest.raises(ValueError, match="x has dtype float16; expected float32 or "
                                         "float64"):
        rnnlib.rnn_forward(x.astype(np.float16), h0, params)


def test_affine_refuses_a_1d_h_and_mixed_dtypes():
    """h @ W.T would work on a 1-D h, and mixing dtypes would upcast."""
    W, b = np.ones((5, 3)), np.zeros(5)
    with pytest.raises(ValueError, match=r"h has shape \(3,\); expected \(N, H\) or "
                                         r"\(N, T, H\)"):
        rnnlib.affine_forward(np.ones(3), W, b)
    with pytest.raises(ValueError, match="W has dtype float64 but h has dtype "
                                         "float32"):
        rnnlib.affine_forward(np.ones((2, 3), dtype=np.float32), W, b)


def test_lstm_step_dc_next_that_would_broadcast_is_refused():
    """A (1, H) dc_next broadcasts over the batch; it must be (N, H)."""
    rng = np.random.default_rng(5)
    x_t, h, c = (rng.standard_normal(s) for s in ((2, 4), (2, 3), (2, 3)))
    h_next, _, cache = rnnlib.lstm_step_forward(
        x_t, h, c, rnnlib.init_params("lstm", 4, 3, rng))
    with pytest.raises(ValueError, match=r"dc_next has shape \(1, 3\); expected "
                                         r"\(N, H\) = \(2, 3\)"):
        rnnlib.lstm_step_backward(np.ones_like(h_next), np.ones((1, 3)), cache)
