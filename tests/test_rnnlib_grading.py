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
            1 / 0
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
