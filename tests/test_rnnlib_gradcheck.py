"""The gradient-check tools themselves: they must pass good and catch bad."""

import numpy as np
import pytest
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


def test_numerical_gradient_copies_what_f_returns():
    """f may return x itself; d/dx sum(x * 1) = 1 everywhere, by hand."""
    x = np.array([[0.5, -1.0, 2.0], [3.0, 0.0, -0.25]])
    numeric = rnnlib.numerical_gradient(lambda v: v, x, np.ones_like(x))
    np.testing.assert_allclose(numeric, np.ones_like(x), rtol=1e-9)


def test_report_worst_is_the_largest_error():
    """worst is what a learner compares with 1e-7, so it must be the max."""
    report = rnnlib.gradcheck.GradCheckReport(x=1e-9, W=0.25, b=3e-3)
    assert report.worst == 0.25
    assert "worst: 2.5e-01" in str(report)


def _sin_arrays():
    rng = np.random.default_rng(7)
    return {"x": rng.standard_normal((2, 3)), "W": rng.standard_normal((2, 3))}


def _sin_forward(a):
    """out = sin(x) * W, elementwise: d/dx = cos(x) W dout, d/dW = sin(x) dout."""
    return np.sin(a["x"]) * a["W"], (a["x"], a["W"])


def _sin_backward(dout, cache):
    x, W = cache
    return {"x": np.cos(x) * W * dout, "W": np.sin(x) * dout}


def test_grad_check_all_catches_a_backward_that_ignores_dout():
    """A backward that assumes dout is all ones must fail with a random dout."""
    rng = np.random.default_rng(8)
    report = rnnlib.grad_check_all(_sin_forward, _sin_backward, _sin_arrays(), rng)
    assert report.worst < 1e-7, str(report)

    def ignores_dout(dout, cache):
        return _sin_backward(np.ones_like(dout), cache)

    report = rnnlib.grad_check_all(_sin_forward, ignores_dout, _sin_arrays(), rng)
    assert report["x"] > 1e-2 and report["W"] > 1e-2
    assert report.worst == max(report["x"], report["W"])


def test_grad_check_all_names_a_transposed_gradient():
    """A (3, 2) gradient for a (2, 3) array has the right size, wrong shape."""
    def transposed(dout, cache):
        grads = _sin_backward(dout, cache)
        return {**grads, "W": grads["W"].T}

    with pytest.raises(ValueError, match=r"the gradient of W has shape \(3, 2\); "
                                         r"expected W's shape \(2, 3\)"):
        rnnlib.grad_check_all(_sin_forward, transposed, _sin_arrays(),
                              np.random.default_rng(9))


def test_grad_check_all_names_a_missing_gradient():
    """Every array must get a gradient; a forgotten one is named."""
    def forgets_W(dout, cache):
        return {"x": _sin_backward(dout, cache)["x"]}

    with pytest.raises(ValueError, match="backward returned no gradient for 'W'"):
        rnnlib.grad_check_all(_sin_forward, forgets_W, _sin_arrays(),
                              np.random.default_rng(9))
