"""withheld(): the reference is unusable inside the block, and only there."""

import numpy as np
import pytest
import rnnlib
from rnnlib import grading
from rnnlib import rnn_step_forward as aliased_step


def _args():
    rng = np.random.default_rng(0)
    params = {"W_ih": rng.standard_normal((3, 2)), "W_hh": rng.standard_normal((3, 3)),
              "b_ih": np.zeros(3), "b_hh": np.zeros(3)}
    return rng.standard_normal((4, 2)), np.zeros((4, 3)), params


def test_alias_is_caught_and_message_names_the_function():
    x_t, h, params = _args()
    with grading.withheld(rnnlib.rnn_step_forward):
        with pytest.raises(grading.ReferenceWithheldError,
                           match="rnnlib.rnn_step_forward is not available"):
            aliased_step(x_t, h, params)
        with pytest.raises(RuntimeError, match="implement it yourself"):
            rnnlib.rnn.rnn_step_forward(x_t, h, params)
        # Other functions, including the sequence function, still work.
        h_seq, _ = rnnlib.rnn_forward(x_t[:, None], h, params)
    h_next, _ = aliased_step(x_t, h, params)
    np.testing.assert_allclose(h_next, h_seq[:, 0])


def test_restored_after_an_exception_and_nesting():
    x_t, h, params = _args()
    with pytest.raises(ZeroDivisionError):
        with grading.withheld(rnnlib.rnn_step_forward, rnnlib.rnn_step_backward):
            with grading.withheld(rnnlib.rnn_step_forward):
                pass
            raise ZeroDivisionError("raised inside the withheld block")
    h_next, cache = rnnlib.rnn_step_forward(x_t, h, params)
    assert set(rnnlib.rnn_step_backward(np.ones_like(h_next), cache)) >= {"x_t"}


def test_functions_with_closures_can_be_withheld():
    offset = 3

    def add_offset(v):
        return v + offset

    with grading.withheld(add_offset):
        with pytest.raises(grading.ReferenceWithheldError):
            add_offset(1)
    assert add_offset(1) == 4


def test_rejects_non_functions():
    with pytest.raises(TypeError):
        with grading.withheld(np.tanh):
            pass


def test_withholding_steps_leaves_sequences_working():
    rng = np.random.default_rng(1)
    x, h0 = rng.standard_normal((2, 3, 2)), rng.standard_normal((2, 4))
    lstm, gru = (rnnlib.init_params(k, 2, 4, rng) for k in ("lstm", "gru"))
    expected = (rnnlib.lstm_forward(x, h0, h0, lstm)[0],
                rnnlib.gru_forward(x, h0, gru)[0])
    steps = [rnnlib.rnn_step_forward, rnnlib.rnn_step_backward,
             rnnlib.lstm_step_forward, rnnlib.lstm_step_backward,
             rnnlib.gru_step_forward, rnnlib.gru_step_backward, rnnlib.sigmoid]
    with grading.withheld(*steps):
        h_lstm, _, cache = rnnlib.lstm_forward(x, h0, h0, lstm)
        rnnlib.lstm_backward(np.ones_like(h_lstm), cache)
        h_gru, cache = rnnlib.gru_forward(x, h0, gru)
        rnnlib.gru_backward(np.ones_like(h_gru), cache)
        with pytest.raises(grading.ReferenceWithheldError, match="rnnlib.sigmoid"):
            rnnlib.sigmoid(0.0)
    np.testing.assert_array_equal(h_lstm, expected[0])
    np.testing.assert_array_equal(h_gru, expected[1])


def test_withholding_building_blocks_leaves_their_users_working():
    rng = np.random.default_rng(2)
    blocks = [rnnlib.one_hot, rnnlib.log_softmax, rnnlib.numerical_gradient,
              rnnlib.rel_error, rnnlib.softmax]
    arrays = {"h": rng.standard_normal((2, 3)), "W": rng.standard_normal((4, 3)),
              "b": rng.standard_normal(4)}
    with grading.withheld(*blocks):
        x, y = rnnlib.data.remember_first(3, 4, 5, rng)
        rnnlib.data.copy_task(2, 3, 2, 5, rng)
        loss, _ = rnnlib.softmax_cross_entropy(rng.standard_normal((3, 5)), y)
        report = rnnlib.grad_check_all(
            lambda a: rnnlib.affine_forward(a["h"], a["W"], a["b"]),
            rnnlib.affine_backward, arrays, rng)
        with pytest.raises(grading.ReferenceWithheldError, match="rnnlib.one_hot"):
            rnnlib.data.one_hot([0], 2)
    assert x.shape == (3, 4, 5) and np.isfinite(loss) and report.worst < 1e-7
    assert rnnlib.one_hot([1], 2)[0, 1] == 1.0
