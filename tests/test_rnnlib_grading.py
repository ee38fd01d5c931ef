"""swapped_in(): a later part sees the course's earlier part, and only inside."""

import numpy as np
import pytest
import rnnlib
from rnnlib.grading import ReferenceWithheldError, swapped_in


def learner_step(x_t, h, params):  # a learner's buggy step: forgets b_hh
    return np.tanh(x_t @ params["W_ih"].T + params["b_ih"] + h @ params["W_hh"].T)


def learner_forward(x, h, params):
    states = []
    for t in range(x.shape[1]):
        h = learner_step(x[:, t], h, params)
        states.append(h)
    return np.stack(states, axis=1)


def course_step(x_t, h, params):
    return rnnlib.rnn_step_forward(x_t, h, params)[0]


def _args():
    rng = np.random.default_rng(0)
    params = {"W_ih": rng.standard_normal((3, 2)), "W_hh": rng.standard_normal((3, 3)),
              "b_ih": np.zeros(3), "b_hh": np.ones(3)}
    return rng.standard_normal((4, 5, 2)), np.zeros((4, 3)), params


def test_the_later_part_is_right_with_the_course_step_swapped_in():
    x, h0, params = _args()
    expected, _ = rnnlib.rnn_forward(x, h0, params)
    assert not np.allclose(learner_forward(x, h0, params), expected)
    with swapped_in(learner_forward, learner_step=course_step):
        np.testing.assert_allclose(learner_forward(x, h0, params), expected,
                                   atol=1e-12)
    assert learner_step is globals()["learner_step"]  # put back
    assert not np.allclose(learner_forward(x, h0, params), expected)


def test_restored_after_an_exception_and_a_new_name_is_removed():
    with pytest.raises(ZeroDivisionError):
        with swapped_in(learner_forward, learner_step=course_step, extra_name=1):
            raise ZeroDivisionError("raised inside the block")
    assert globals()["learner_step"].__name__ == "learner_step"
    assert "extra_name" not in globals()


def test_needs_a_python_function():
    with pytest.raises(TypeError, match="needs a Python function"):
        with swapped_in(np.tanh, learner_step=course_step):
            pass


def test_the_withheld_error_names_itself_as_a_runtime_error():
    assert issubclass(ReferenceWithheldError, RuntimeError)
