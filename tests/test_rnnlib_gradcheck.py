"""The gradient-check tools themselves: they must pass good and catch bad."""

import numpy as np
import rnnlib


def test_numerical_gradient_of_a_known_function():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 2))
    x_before = x.copy()
    df = rng.standard_normal((3, 2))
    # d/dx sum(sin(x) * df) = cos(x) * df, by hand.
    numeric = rnnlib.numerical_gradient(np.sin, x, df)
    np.testing.assert_allclose(numeric, np.cos(x) * df, rtol=1e-8, atol=1e-10)
    np.testing.assert_array_equal(x, x_before)  # perturbations were undone


def test_numerical_gradient_through_a_closure():
    x = np.array([1.0, 2.0, 3.0])
    W = np.array([[1.0, -1.0, 0.5]])
    numeric = rnnlib.numerical_gradient(lambda _: W @ x, W, np.array([2.0]))
    np.testing.assert_allclose(numeric, 2 * x[None], rtol=1e-9)


def test_rel_error_by_hand():
    assert rnnlib.rel_error(np.array([1.0, 2.0]), np.array([1.0, 2.0])) == 0.0
    # |1 - 3| / (1 + 3) = 0.5 beats |2 - 2.2| / 4.2.
    assert np.isclose(rnnlib.rel_error([1.0, 2.0], [3.0, 2.2]), 0.5)
    # Both zero: the 1e-8 floor keeps the ratio finite.
    assert rnnlib.rel_error([0.0], [1e-12]) == 1e-12 / 1e-8


def test_grad_check_all_passes_the_library_and_catches_a_bug():
    rng = np.random.default_rng(1)
    arrays = {"x": rng.standard_normal((2, 3, 2)), "h0": rng.standard_normal((2, 3)),
              "W_ih": rng.standard_normal((3, 2)), "W_hh": rng.standard_normal((3, 3)),
              "b_ih": rng.standard_normal(3), "b_hh": rng.standard_normal(3)}

    def forward(a):
        return rnnlib.rnn_forward(a["x"], a["h0"], a)

    report = rnnlib.grad_check_all(forward, rnnlib.rnn_backward, arrays, rng)
    assert set(report) == set(arrays)
    assert report.worst < 1e-7 and "expect < 1e-7" in str(report)

    def buggy_backward(dout, cache):
        grads = rnnlib.rnn_backward(dout, cache)
        grads["W_hh"] = grads["W_hh"].T  # the classic transpose slip
        return grads

    report = rnnlib.grad_check_all(forward, buggy_backward, arrays, rng)
    assert report["W_hh"] > 1e-3 and report["x"] < 1e-7
