"""Clipping and optimisers against torch.nn.utils and torch.optim."""

import numpy as np
import pytest
import rnnlib
import torch


def _grads(rng, scale):
    return {"W": scale * rng.standard_normal((3, 4)),
            "b": scale * rng.standard_normal(3)}


def _torch_clip_grad_norm(grads, max_norm):
    """torch.nn.utils.clip_grad_norm_ in float64 on copies of grads."""
    tensors = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True)
               for g in grads.values()]
    for t, g in zip(tensors, grads.values(), strict=True):
        t.grad = torch.tensor(g)
    total = torch.nn.utils.clip_grad_norm_(tensors, max_norm=max_norm).item()
    return {name: t.grad.numpy() for name, t in zip(grads, tensors, strict=True)}, total


@pytest.mark.parametrize("scale", [0.01, 1.0, 100.0])
def test_clip_grad_norm_matches_torch(scale):
    rng = np.random.default_rng(0)
    grads = _grads(rng, scale)
    before = {k: v.copy() for k, v in grads.items()}
    clipped, total = rnnlib.clip_grad_norm(grads, max_norm=1.0)
    torch_clipped, torch_total = _torch_clip_grad_norm(grads, max_norm=1.0)
    assert np.isclose(total, torch_total, rtol=1e-14)
    for name in grads:
        np.testing.assert_allclose(clipped[name], torch_clipped[name], rtol=1e-14)
        np.testing.assert_array_equal(grads[name], before[name])  # not in place


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_clip_grad_norm_nonfinite_matches_torch(bad):
    # A NaN norm must not let the finite entries through unscaled (Python's
    # min(1.0, nan) is 1.0): PyTorch makes every entry NaN. An inf norm gives
    # a scale of 0, so inf entries become NaN and the others 0.
    grads = {"W": np.array([[bad, 1.0], [3.0, -2.0]]), "b": np.array([2.0, 0.5])}
    with np.errstate(invalid="ignore"):  # 0 * inf
        clipped, total = rnnlib.clip_grad_norm(grads, max_norm=1.0)
    torch_clipped, torch_total = _torch_clip_grad_norm(grads, max_norm=1.0)
    np.testing.assert_equal(total, torch_total)  # NaN equals NaN here
    for name in grads:
        # assert_array_equal counts NaN in the same places as equal
        np.testing.assert_array_equal(clipped[name], torch_clipped[name])


def test_clip_grad_value_matches_torch():
    rng = np.random.default_rng(1)
    grads = _grads(rng, 3.0)
    clipped = rnnlib.clip_grad_value(grads, 0.5)
    for name, g in grads.items():
        t = torch.zeros(g.shape, dtype=torch.float64, requires_grad=True)
        t.grad = torch.tensor(g)
        torch.nn.utils.clip_grad_value_([t], 0.5)
        np.testing.assert_array_equal(clipped[name], t.grad.numpy())
    assert not np.shares_memory(clipped["W"], grads["W"])


OPTIMISERS = [
    (lambda: rnnlib.SGD(lr=0.1), lambda p: torch.optim.SGD(p, lr=0.1)),
    (lambda: rnnlib.SGD(lr=0.1, momentum=0.9),
     lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9)),
    (lambda: rnnlib.Adagrad(lr=0.1, eps=1e-10),
     lambda p: torch.optim.Adagrad(p, lr=0.1, eps=1e-10)),
    (lambda: rnnlib.Adam(lr=0.01, betas=(0.8, 0.99), eps=1e-8),
     lambda p: torch.optim.Adam(p, lr=0.01, betas=(0.8, 0.99), eps=1e-8)),
]


@pytest.mark.parametrize("make_ours, make_theirs", OPTIMISERS,
                         ids=["sgd", "sgd_momentum", "adagrad", "adam"])
def test_optimiser_matches_torch_over_several_steps(make_ours, make_theirs):
    rng = np.random.default_rng(2)
    params = _grads(rng, 1.0)
    original = {k: v.copy() for k, v in params.items()}
    tensors = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    ours, theirs = make_ours(), make_theirs(list(tensors.values()))
    for _ in range(5):
        grads = _grads(rng, 1.0)
        params = ours.step(params, grads)
        for name, t in tensors.items():
            t.grad = torch.tensor(grads[name])
        theirs.step()
        for name, t in tensors.items():
            np.testing.assert_allclose(params[name], t.detach().numpy(),
                                       rtol=1e-12, atol=1e-14)
    assert not np.allclose(params["W"], original["W"])


def test_optimiser_does_not_modify_params_and_keeps_float32():
    params = {"W": np.ones((2, 2), dtype=np.float32)}
    grads = {"W": np.full((2, 2), 0.5, dtype=np.float32)}
    for opt in (rnnlib.SGD(0.1, momentum=0.5), rnnlib.Adagrad(0.1), rnnlib.Adam()):
        new = opt.step(params, grads)
        assert new["W"].dtype == np.float32
        np.testing.assert_array_equal(params["W"], 1.0)
