"""Output layer, activations and the loss, against torch in float64."""

import warnings

import numpy as np
import pytest
import rnnlib
import torch
import torch.nn.functional as F
from rnnlib_helpers import scaled_error


@pytest.mark.parametrize("lead", [(4,), (3, 5)])
def test_affine_matches_torch_linear(lead):
    rng = np.random.default_rng(len(lead))
    H, V = 6, 4
    h = rng.standard_normal((*lead, H))
    W, b = rng.standard_normal((V, H)), rng.standard_normal(V)
    y, cache = rnnlib.affine_forward(h, W, b)
    dy = rng.standard_normal(y.shape)
    grads = rnnlib.affine_backward(dy, cache)

    linear = torch.nn.Linear(H, V).double()
    with torch.no_grad():
        linear.weight.copy_(torch.tensor(W))
        linear.bias.copy_(torch.tensor(b))
    h_t = torch.tensor(h, requires_grad=True)
    y_t = linear(h_t)
    y_t.backward(torch.tensor(dy))
    assert scaled_error(y, y_t.detach().numpy()) < 1e-12
    assert scaled_error(grads["h"], h_t.grad.numpy()) < 1e-12
    assert scaled_error(grads["W"], linear.weight.grad.numpy()) < 1e-12
    assert scaled_error(grads["b"], linear.bias.grad.numpy()) < 1e-12


def test_affine_gradient_check_and_float32():
    rng = np.random.default_rng(0)
    arrays = {"h": rng.standard_normal((2, 3, 4)), "W": rng.standard_normal((5, 4)),
              "b": rng.standard_normal(5)}
    report = rnnlib.grad_check_all(
        lambda a: rnnlib.affine_forward(a["h"], a["W"], a["b"]),
        rnnlib.affine_backward, arrays, rng)
    assert report.worst < 1e-7, str(report)
    y, cache = rnnlib.affine_forward(*(a.astype(np.float32) for a in arrays.values()))
    assert y.dtype == np.float32
    grads = rnnlib.affine_backward(np.ones_like(y), cache)
    assert all(g.dtype == np.float32 for g in grads.values())


@pytest.mark.parametrize("scale", [1.0, 50.0, 1e4])
def test_activations_match_torch_without_overflow(scale):
    rng = np.random.default_rng(1)
    z = scale * rng.standard_normal((4, 7))
    z_t = torch.tensor(z)
    with np.errstate(all="raise"):
        assert scaled_error(rnnlib.sigmoid(z), torch.sigmoid(z_t).numpy()) < 1e-15
        assert scaled_error(rnnlib.softmax(z), torch.softmax(z_t, -1).numpy()) < 1e-14
        assert scaled_error(rnnlib.softmax(z, axis=0),
                            torch.softmax(z_t, 0).numpy()) < 1e-14
        assert scaled_error(rnnlib.log_softmax(z),
                            torch.log_softmax(z_t, -1).numpy()) < 1e-14


def test_sigmoid_is_accurate_in_the_tails_and_keeps_dtype():
    z = np.array([-1e4, -40.0, -1.0, 0.0, 1.0, 40.0, 1e4])
    with np.errstate(all="raise"):
        s = rnnlib.sigmoid(z)
        s32 = rnnlib.sigmoid(z.astype(np.float32))
    np.testing.assert_allclose(s, torch.sigmoid(torch.tensor(z)).numpy(), rtol=1e-14)
    assert s32.dtype == np.float32 and s[3] == 0.5
    assert rnnlib.softmax(z.astype(np.float32)).dtype == np.float32


def _torch_loss(logits, targets, mask):
    """Masked mean cross-entropy and its gradient, by torch autograd."""
    V = logits.shape[-1]
    logits_t = torch.tensor(logits, requires_grad=True)
    per_position = F.cross_entropy(logits_t.reshape(-1, V),
                                   torch.tensor(targets).reshape(-1), reduction="none")
    mask_t = torch.tensor(mask, dtype=torch.float64).reshape(-1)
    loss = (per_position * mask_t).sum() / mask_t.sum()
    loss.backward()
    return loss.item(), logits_t.grad.numpy()


@pytest.mark.parametrize("shape", [(5, 4), (3, 6, 4), (1, 1, 2)])
@pytest.mark.parametrize("scale", [1.0, 1e4])
def test_cross_entropy_matches_torch(shape, scale):
    rng = np.random.default_rng(len(shape))
    logits = scale * rng.standard_normal(shape)
    targets = rng.integers(0, shape[-1], size=shape[:-1])
    mask = (rng.random(shape[:-1]) < 0.7).astype(np.float64)
    mask.flat[0] = 1.0
    for m in (None, mask):
        with np.errstate(all="raise"):
            loss, dlogits = rnnlib.softmax_cross_entropy(logits, targets, m)
        expected_loss, expected_grad = _torch_loss(
            logits, targets, np.ones(shape[:-1]) if m is None else m)
        assert abs(loss - expected_loss) <= 1e-10 * max(1.0, abs(expected_loss))
        assert scaled_error(dlogits, expected_grad) < 1e-12


def test_cross_entropy_mask_ignores_padding():
    rng = np.random.default_rng(2)
    logits = rng.standard_normal((2, 5, 3))
    targets = rng.integers(0, 3, size=(2, 5))
    mask = np.ones((2, 5))
    mask[1, 3:] = 0  # the second sequence is two steps shorter
    loss, dlogits = rnnlib.softmax_cross_entropy(logits, targets, mask)
    changed = logits.copy()
    changed[1, 3:] = 100 * rng.standard_normal((2, 3))
    loss_changed, _ = rnnlib.softmax_cross_entropy(changed, targets, mask)
    assert loss == loss_changed
    assert np.all(dlogits[1, 3:] == 0)
    # The loss is the mean over the 8 real positions: check by hand.
    p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    picked = np.take_along_axis(p, targets[..., None], -1)[..., 0]
    assert np.isclose(loss, -np.log(picked)[mask == 1].mean(), rtol=1e-13)


def test_cross_entropy_float32_and_bad_targets():
    logits = np.zeros((2, 3), dtype=np.float32)
    loss, dlogits = rnnlib.softmax_cross_entropy(logits, np.array([0, 2]))
    assert dlogits.dtype == np.float32 and np.isclose(loss, np.log(3))
    with pytest.raises(ValueError, match=r"targets contains 3, outside \[0, V\)"):
        rnnlib.softmax_cross_entropy(logits, np.array([0, 3]))
    with pytest.raises(ValueError, match=r"targets has shape \(3,\); expected \(N,\)"):
        rnnlib.softmax_cross_entropy(logits, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="mask is 0 everywhere"):
        rnnlib.softmax_cross_entropy(logits, np.array([0, 1]), np.zeros(2))
    with pytest.raises(ValueError, match="targets has dtype float64"):
        rnnlib.softmax_cross_entropy(logits, np.array([0.0, 1.0]))


def test_no_warnings_anywhere_for_huge_logits():
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss, dlogits = rnnlib.softmax_cross_entropy(logits, np.array([1, 2]))
    assert np.isfinite(loss) and np.isfinite(dlogits).all()
    # Hand-computed: position 0 costs 2e4, position 1 costs log 3.
    assert np.isclose(loss, (2e4 + np.log(3)) / 2, rtol=1e-12)


def test_cross_entropy_refuses_bad_masks_negative_targets_and_nan():
    """Each would otherwise give a wrong loss silently (-1 indexes the last class)."""
    logits = np.zeros((2, 3))
    with pytest.raises(ValueError, match=r"mask must hold only 0 and 1"):
        rnnlib.softmax_cross_entropy(logits, np.array([0, 1]), np.array([1, 0.5]))
    with pytest.raises(ValueError, match=r"targets contains -1, outside \[0, V\) = "
                                         r"\[0, 3\)"):
        rnnlib.softmax_cross_entropy(logits, np.array([0, -1]))
    logits[1, 2] = np.nan
    with pytest.raises(ValueError, match=r"logits contains NaN or inf \(first at "
                                         r"index \(1, 2\)\)"):
        rnnlib.softmax_cross_entropy(logits, np.array([0, 1]))
